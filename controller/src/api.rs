//! The `/api/v1` REST + SSE API (design/API.md): `router()` builds it around an `ApiState`; handlers are
//! thin: they validate input, ask the scheduler, and render answers or the error envelope.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::issue_logs::LogHub;
use crate::scheduler::SchedulerHandle;
use crate::store::StoreHandle;

pub mod auth;
pub mod body;
pub mod error;
mod hosts;
mod issues;
mod logs;
pub mod metrics;
pub mod openapi;
mod settings;
mod state;

pub use error::ApiError;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub scheduler: SchedulerHandle,
    pub hub: LogHub,
    pub store: StoreHandle,
    /// `ITERVOX_API_TOKEN`, when set.
    pub token: Option<Arc<str>>,
    /// The controller's own log file (`GET /logs` tails it).
    pub daemon_log: Option<PathBuf>,
    pub metrics: Arc<metrics::Metrics>,
    /// SSE keep-alive interval (25 s; tests shorten it).
    pub keep_alive: Duration,
    /// Fires at shutdown; SSE streams end with it so the server can drain.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Checks an identifier or host name from a URL before it goes anywhere near a path or a command.
pub fn valid_name(kind: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '#' | '@' | ':' | '[' | ']' | '/'))
        && !s.split('/').any(|part| part == ".." || part == ".");
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("{s:?} is not a valid {kind}")).with_field(kind.to_string()))
    }
}

/// Builds the whole API router (without the dashboard).
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/health", get(state::health))
        .route("/ready", get(state::ready))
        .route("/openapi.json", get(openapi::serve))
        .route("/state", get(state::state))
        .route("/events", get(state::events))
        .route("/refresh", post(state::refresh))
        .route("/metrics", get(metrics::metrics))
        .route("/issues", get(issues::list))
        .route("/issues/{id}", get(issues::detail).delete(issues::cancel))
        .route("/issues/{id}/cancel", post(issues::cancel))
        .route("/issues/{id}/resume", post(issues::resume))
        .route("/issues/{id}/terminate", post(issues::terminate))
        .route("/issues/{id}/reanalyze", post(issues::reanalyze))
        .route("/issues/{id}/ai-review", post(issues::ai_review))
        .route("/issues/{id}/profile", post(issues::profile))
        .route("/issues/{id}/backend", post(issues::backend))
        .route("/issues/{id}/provide-input", post(issues::provide_input))
        .route("/issues/{id}/dismiss-input", post(issues::dismiss_input))
        .route(
            "/issues/{id}/logs",
            get(logs::issue_logs).delete(logs::clear_issue_logs),
        )
        .route("/issues/{id}/log-stream", get(logs::log_stream))
        .route("/issues/{id}/sublogs", get(logs::sublogs).delete(logs::clear_sublogs))
        .route("/issues/{id}/sublogs/{session}", delete(logs::clear_sublog))
        .route("/logs", get(logs::daemon_log).delete(logs::clear_all_logs))
        .route("/logs/identifiers", get(logs::identifiers))
        .route("/settings/workers", post(settings::workers))
        .route("/settings/agent-mode", post(settings::agent_mode))
        .route("/settings/tracker/states", put(settings::tracker_states))
        .route("/settings/workspace/auto-clear", post(settings::auto_clear))
        .route("/settings/inline-input", post(settings::inline_input))
        .route("/settings/models", get(settings::models))
        .route("/settings/profiles", get(settings::profiles))
        .route(
            "/settings/profiles/{name}",
            put(settings::put_profile).delete(settings::delete_profile),
        )
        .route(
            "/settings/reviewer",
            get(settings::reviewer).put(settings::put_reviewer),
        )
        .route("/settings/dispatch-strategy", put(settings::dispatch_strategy))
        .route("/settings/ssh-hosts", get(hosts::list).post(hosts::add))
        .route("/settings/ssh-hosts/{host}", delete(hosts::remove))
        .route("/ssh-hosts", get(hosts::list).post(hosts::add))
        .route("/ssh-hosts/{host}", delete(hosts::remove))
        .route("/projects", get(settings::projects))
        .route(
            "/projects/filter",
            get(settings::project_filter).put(settings::put_project_filter),
        )
        .route("/workspaces", delete(settings::clear_workspaces))
        .fallback(not_found);
    let token = state.token.clone();
    Router::new()
        .nest("/api/v1", api)
        .layer(middleware::from_fn(envelope_for_bare_errors))
        .layer(middleware::from_fn_with_state(token, auth::require_token))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

/// Gives the framework's own bare answers (405 for a wrong method) the JSON envelope, keeping `Allow`.
async fn envelope_for_bare_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED && resp.headers().get(header::CONTENT_TYPE).is_none() {
        let allow = resp.headers().get(header::ALLOW).cloned();
        let mut out = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{method} is not allowed on {path}{}",
                allow
                    .as_ref()
                    .and_then(|a| a.to_str().ok())
                    .map(|a| format!("; allowed: {a}"))
                    .unwrap_or_default()
            ),
        )
        .into_response();
        if let Some(a) = allow {
            out.headers_mut().insert(header::ALLOW, a);
        }
        return out;
    }
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// A `{"ok":true,...}`-style JSON answer with a status.
pub fn json_answer(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

#[cfg(test)]
mod tests;
