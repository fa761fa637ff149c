//! The host pool routes: list with health, add, remove (optionally draining).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use itervox_protocol::api::{AddHostRequest, HostRow};

use super::body::Body;
use super::{ApiError, ApiState, json_answer, valid_name};
use crate::scheduler::SettingsChange;

pub async fn list(State(s): State<ApiState>) -> axum::Json<Vec<HostRow>> {
    axum::Json(s.scheduler.snapshot().snapshot.ssh_hosts.clone())
}

/// `POST /ssh-hosts`: 201 when added, 400 for an unparsable host, 409 when already present.
pub async fn add(State(s): State<ApiState>, Body(b): Body<AddHostRequest>) -> Result<Response, ApiError> {
    let host = b.host.trim().to_string();
    if host.is_empty() {
        return Err(ApiError::bad_request("host must not be empty").with_field("host"));
    }
    crate::hosts::parse_host(&host).map_err(|e| ApiError::bad_request(e).with_field("host"))?;
    let v = s
        .scheduler
        .settings(SettingsChange::AddHost {
            host,
            description: b.description,
        })
        .await?;
    Ok(json_answer(StatusCode::CREATED, v))
}

/// `DELETE /ssh-hosts/{host}[?drain=true]`.
pub async fn remove(
    State(s): State<ApiState>,
    Path(host): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    valid_name("host", &host)?;
    let drain = match q.get("drain").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(
                ApiError::bad_request(format!("drain must be true or false, not {other:?}")).with_field("drain"),
            );
        }
    };
    let v = s.scheduler.settings(SettingsChange::RemoveHost { host, drain }).await?;
    Ok(json_answer(StatusCode::OK, v))
}
