//! Issue routes: the enriched tracker list, one issue, and the operator actions on an issue.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use itervox_protocol::api::TrackerIssue;
use itervox_protocol::worker::Backend;
use serde::Deserialize;
use serde_json::json;

use super::body::Body;
use super::{ApiError, ApiState, json_answer, valid_name};

/// `GET /issues`.
pub async fn list(State(s): State<ApiState>) -> Result<axum::Json<Vec<TrackerIssue>>, ApiError> {
    Ok(axum::Json(s.scheduler.list_issues().await?))
}

/// `GET /issues/{id}`: fetched live from the tracker (with comments) and enriched.
pub async fn detail(State(s): State<ApiState>, Path(id): Path<String>) -> Result<axum::Json<TrackerIssue>, ApiError> {
    valid_name("identifier", &id)?;
    let tracker = s.scheduler.tracker();
    let issue = tracker
        .fetch_issue(&id)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "tracker_error",
                format!("could not fetch {id}: {e}"),
            )
        })?
        .ok_or_else(|| ApiError::not_found(format!("issue {id} not found in the tracker")))?;
    let mut enriched = s.scheduler.enrich(vec![issue]).await?;
    enriched
        .pop()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("issue {id} not found")))
}

/// `POST /issues/{id}/cancel` and `DELETE /issues/{id}`.
pub async fn cancel(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.scheduler.cancel(&id).await?;
    Ok(json_answer(
        StatusCode::OK,
        json!({"cancelled": true, "identifier": id}),
    ))
}

pub async fn resume(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.scheduler.resume(&id).await?;
    Ok(json_answer(StatusCode::OK, json!({"resumed": true, "identifier": id})))
}

pub async fn terminate(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.scheduler.terminate(&id).await?;
    Ok(json_answer(
        StatusCode::OK,
        json!({"terminated": true, "identifier": id}),
    ))
}

pub async fn reanalyze(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.scheduler.reanalyze(&id).await?;
    Ok(json_answer(StatusCode::OK, json!({"queued": true, "identifier": id})))
}

pub async fn ai_review(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.scheduler.ai_review(&id).await?;
    Ok(json_answer(
        StatusCode::ACCEPTED,
        json!({"queued": true, "identifier": id}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    profile: String,
}

pub async fn profile(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Body(b): Body<ProfileBody>,
) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    let p = (!b.profile.trim().is_empty()).then(|| b.profile.trim().to_string());
    let set = s.scheduler.set_profile(&id, p).await?;
    Ok(json_answer(
        StatusCode::OK,
        json!({"ok": true, "identifier": id, "profile": set.unwrap_or_default()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendBody {
    backend: String,
}

pub async fn backend(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Body(b): Body<BackendBody>,
) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    let backend = match b.backend.as_str() {
        "" => None,
        "claude" => Some(Backend::Claude),
        "codex" => Some(Backend::Codex),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown backend {other:?}: expected \"claude\", \"codex\" or \"\" to clear"
            ))
            .with_field("backend"));
        }
    };
    let set = s.scheduler.set_backend(&id, backend).await?;
    Ok(json_answer(
        StatusCode::OK,
        json!({"ok": true, "identifier": id, "backend": set.unwrap_or_default()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    message: String,
}

pub async fn provide_input(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Body(b): Body<InputBody>,
) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    if b.message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty").with_field("message"));
    }
    s.scheduler.provide_input(&id, b.message).await?;
    Ok(json_answer(StatusCode::ACCEPTED, json!({"ok": true, "identifier": id})))
}

pub async fn dismiss_input(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.scheduler.dismiss_input(&id).await?;
    Ok(json_answer(StatusCode::ACCEPTED, json!({"ok": true, "identifier": id})))
}
