//! Settings routes: each change is validated, written into WORKFLOW.md and applied at once; plus the
//! read-only settings views, the Linear project filter and clearing workspaces.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use itervox_protocol::api::{ProfileDef, ReviewerSettings, TrackerStatesRequest, WorkersRequest};
use serde::Deserialize;
use serde_json::json;

use super::body::Body;
use super::{ApiError, ApiState, json_answer, valid_name};
use crate::config::{AgentMode, DispatchStrategy};
use crate::scheduler::SettingsChange;
use crate::tracker::TrackerError;

async fn change(s: &ApiState, c: SettingsChange) -> Result<Response, ApiError> {
    let v = s.scheduler.settings(c).await?;
    Ok(json_answer(StatusCode::OK, v))
}

pub async fn workers(State(s): State<ApiState>, Body(b): Body<WorkersRequest>) -> Result<Response, ApiError> {
    if b.workers.is_none() && b.delta.is_none() {
        return Err(ApiError::bad_request("give \"workers\" (absolute) or \"delta\" (relative)").with_field("workers"));
    }
    change(
        &s,
        SettingsChange::Workers {
            workers: b.workers,
            delta: b.delta,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: String,
}

pub async fn agent_mode(State(s): State<ApiState>, Body(b): Body<ModeBody>) -> Result<Response, ApiError> {
    let mode = AgentMode::parse(&b.mode).ok_or_else(|| {
        ApiError::bad_request(format!("unknown mode {:?}: expected solo, subagents or teams", b.mode))
            .with_field("mode")
    })?;
    change(&s, SettingsChange::AgentMode(mode)).await
}

pub async fn tracker_states(
    State(s): State<ApiState>,
    Body(b): Body<TrackerStatesRequest>,
) -> Result<Response, ApiError> {
    change(&s, SettingsChange::TrackerStates(b)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnabledBody {
    enabled: bool,
}

pub async fn auto_clear(State(s): State<ApiState>, Body(b): Body<EnabledBody>) -> Result<Response, ApiError> {
    change(&s, SettingsChange::AutoClear(b.enabled)).await
}

pub async fn inline_input(State(s): State<ApiState>, Body(b): Body<EnabledBody>) -> Result<Response, ApiError> {
    change(&s, SettingsChange::InlineInput(b.enabled)).await
}

/// `GET /settings/models`: `agent.available_models`, with an entry for every backend.
pub async fn models(State(s): State<ApiState>) -> axum::Json<serde_json::Value> {
    let frame = s.scheduler.snapshot();
    let mut models = serde_json::Map::new();
    for backend in ["claude", "codex"] {
        models.insert(backend.into(), json!([]));
    }
    for (k, v) in &frame.snapshot.available_models {
        models.insert(k.clone(), serde_json::to_value(v).unwrap_or_default());
    }
    axum::Json(serde_json::Value::Object(models))
}

pub async fn profiles(State(s): State<ApiState>) -> axum::Json<serde_json::Value> {
    let frame = s.scheduler.snapshot();
    axum::Json(json!({ "profiles": frame.snapshot.profile_defs }))
}

pub async fn put_profile(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Body(def): Body<ProfileDef>,
) -> Result<Response, ApiError> {
    valid_name("name", &name)?;
    change(&s, SettingsChange::PutProfile { name, def }).await
}

pub async fn delete_profile(State(s): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    valid_name("name", &name)?;
    change(&s, SettingsChange::DeleteProfile(name)).await
}

pub async fn reviewer(State(s): State<ApiState>) -> axum::Json<ReviewerSettings> {
    let frame = s.scheduler.snapshot();
    axum::Json(ReviewerSettings {
        profile: frame.snapshot.reviewer_profile.clone().unwrap_or_default(),
        auto_review: frame.snapshot.auto_review.unwrap_or(false),
    })
}

pub async fn put_reviewer(State(s): State<ApiState>, Body(b): Body<ReviewerSettings>) -> Result<Response, ApiError> {
    change(
        &s,
        SettingsChange::Reviewer {
            profile: b.profile,
            auto_review: b.auto_review,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyBody {
    strategy: String,
}

pub async fn dispatch_strategy(State(s): State<ApiState>, Body(b): Body<StrategyBody>) -> Result<Response, ApiError> {
    let st = DispatchStrategy::parse(&b.strategy).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown strategy {:?}: expected round-robin or least-loaded",
            b.strategy
        ))
        .with_field("strategy")
    })?;
    change(&s, SettingsChange::DispatchStrategy(st)).await
}

fn tracker_err(e: TrackerError) -> ApiError {
    match e {
        TrackerError::NotSupported(_) => ApiError::not_supported("projects are only available with the Linear tracker"),
        other => ApiError::new(StatusCode::BAD_GATEWAY, "tracker_error", other.to_string()),
    }
}

/// `GET /projects` (Linear only).
pub async fn projects(State(s): State<ApiState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let tracker = s.scheduler.tracker();
    let projects = tracker.list_projects().await.map_err(tracker_err)?;
    let list: Vec<_> = projects
        .into_iter()
        .map(|p| json!({"id": p.id, "name": p.name, "slug": p.slug}))
        .collect();
    Ok(axum::Json(json!({ "projects": list })))
}

pub async fn project_filter(State(s): State<ApiState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if s.scheduler.snapshot().snapshot.tracker_kind.as_deref() != Some("linear") {
        return Err(ApiError::not_supported(
            "the project filter is only available with the Linear tracker",
        ));
    }
    let frame = s.scheduler.snapshot();
    Ok(axum::Json(json!({ "filter": frame.snapshot.active_project_filter })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[serde(default)]
    slugs: Option<Vec<String>>,
}

pub async fn put_project_filter(State(s): State<ApiState>, Body(b): Body<FilterBody>) -> Result<Response, ApiError> {
    if s.scheduler.snapshot().snapshot.tracker_kind.as_deref() != Some("linear") {
        return Err(ApiError::not_supported(
            "the project filter is only available with the Linear tracker",
        ));
    }
    if let Some(slugs) = &b.slugs {
        for slug in slugs {
            valid_name("slugs", slug)?;
        }
    }
    change(&s, SettingsChange::ProjectFilter(b.slugs)).await
}

/// `DELETE /workspaces`: stops every run, then removes every worktree on every host in the background.
pub async fn clear_workspaces(State(s): State<ApiState>) -> Result<Response, ApiError> {
    s.scheduler.clear_workspaces().await?;
    Ok(json_answer(StatusCode::ACCEPTED, json!({"ok": true})))
}
