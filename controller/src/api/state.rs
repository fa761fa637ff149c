//! Probes, the state snapshot, its SSE stream, and refresh.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;

use super::{ApiError, ApiState, json_answer};

/// `GET /health`: liveness; 200 with no body.
pub async fn health() -> StatusCode {
    StatusCode::OK
}

/// `GET /ready`: 200 when polling works and the controller is not draining, else 503.
pub async fn ready(State(s): State<ApiState>) -> Response {
    let frame = s.scheduler.snapshot();
    let r = &frame.readiness;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r.clone())).into_response()
}

/// `GET /state`: the latest snapshot, serialized once for every reader.
pub async fn state(State(s): State<ApiState>) -> Response {
    let frame = s.scheduler.snapshot();
    ([(header::CONTENT_TYPE, "application/json")], frame.json.clone()).into_response()
}

/// `GET /events`: a full snapshot now and after every change. A slow client skips to the newest
/// snapshot instead of queueing old ones, so memory never grows with a slow reader.
pub async fn events(State(s): State<ApiState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.scheduler.watch_snapshot();
    let guard = s.metrics.sse_client();
    let stream = futures::stream::unfold((rx, true, guard), |(mut rx, first, guard)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let frame = rx.borrow_and_update().clone();
        let ev = Event::default()
            .id(frame.version.to_string())
            .data(String::from_utf8_lossy(&frame.json));
        Some((Ok(ev), (rx, false, guard)))
    });
    let stream = futures::StreamExt::take_until(stream, s.shutdown.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(s.keep_alive).text("keepalive"))
}

/// `POST /refresh`: an immediate poll (joined with one already running).
pub async fn refresh(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let answer = s.scheduler.refresh().await?;
    Ok(json_answer(
        StatusCode::ACCEPTED,
        json!({
            "queued": true,
            "coalesced": answer.coalesced,
            "queuedAt": answer.queued_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }),
    ))
}
