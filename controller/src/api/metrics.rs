//! `GET /metrics`: Prometheus text.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;

pub use crate::metrics::{Metrics, SseGuard};

pub async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    let frame = s.scheduler.snapshot();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(&frame.snapshot),
    )
}
