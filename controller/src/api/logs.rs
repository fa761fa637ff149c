//! Log routes: an issue's stored entries and their live SSE follow, the agents' own session logs
//! (sublogs) read from the host that ran them, and the controller's own log file.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use itervox_protocol::IssueLogEntry;
use itervox_protocol::worker::{Empty, RequestBody, SublogRef, Sublogs};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState, json_answer, valid_name};
use crate::issue_logs::LogRecord;

/// `GET /issues/{id}/logs`: every stored entry, oldest first.
pub async fn issue_logs(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<IssueLogEntry>>, ApiError> {
    valid_name("identifier", &id)?;
    s.hub.flush().await;
    let id2 = id.clone();
    let logs = s
        .store
        .read(move |st| st.logs(&id2, 0))
        .await
        .map_err(|e| ApiError::internal("reading logs", e))?;
    Ok(axum::Json(logs.into_iter().map(|l| l.entry).collect()))
}

pub async fn clear_issue_logs(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.hub.flush().await;
    s.store
        .read(move |st| st.clear_logs(&id))
        .await
        .map_err(|e| ApiError::internal("clearing logs", e))?;
    Ok(json_answer(StatusCode::OK, json!({"ok": true})))
}

pub async fn clear_all_logs(State(s): State<ApiState>) -> Result<Response, ApiError> {
    s.hub.flush().await;
    s.store
        .read(|st| st.clear_all_logs())
        .await
        .map_err(|e| ApiError::internal("clearing logs", e))?;
    Ok(json_answer(StatusCode::OK, json!({"ok": true})))
}

pub async fn identifiers(State(s): State<ApiState>) -> Result<axum::Json<Vec<String>>, ApiError> {
    s.hub.flush().await;
    let ids = s
        .store
        .read(|st| st.log_identifiers())
        .await
        .map_err(|e| ApiError::internal("listing logs", e))?;
    Ok(axum::Json(ids))
}

fn log_event(id: u64, json: &str) -> Event {
    Event::default().id(id.to_string()).event("log").data(json)
}

struct Follow {
    s: ApiState,
    identifier: String,
    live: tokio::sync::broadcast::Receiver<Arc<LogRecord>>,
    last_sent: u64,
    /// Entries waiting to be sent (a replay from the store).
    queue: std::collections::VecDeque<Event>,
    first: bool,
    cursor: u64,
}

async fn replay(f: &mut Follow, after: u64) {
    f.s.hub.flush().await;
    let id = f.identifier.clone();
    let (logs, pruned) =
        f.s.store
            .read(move |st| {
                (
                    st.logs(&id, after).unwrap_or_default(),
                    st.pruned_through(&id).unwrap_or(0),
                )
            })
            .await;
    // A follower that fell behind further than the store keeps (or whose entries were cleared) is told
    // that it missed some, instead of silently jumping over them.
    if after > 0 && pruned > after {
        f.queue.push_back(
            Event::default().event("gap").data(
                json!({
                    "message": format!(
                        "entries after id {after} up to id {pruned} are no longer stored (the controller keeps the newest {} of an issue); the host's session journal still has them",
                        crate::store::MAX_LOGS_PER_ISSUE
                    )
                })
                .to_string(),
            ),
        );
    }
    for l in logs {
        if l.id > f.last_sent {
            f.queue.push_back(log_event(l.id, &l.json));
            f.last_sent = l.id;
        }
    }
}

/// `GET /issues/{id}/log-stream`: stored entries after the `Last-Event-ID` cursor, then live ones. A
/// cursor that no longer exists (cleared or pruned logs) gets `event: gap` and a full replay; a
/// follower that falls behind is resynchronised from the store.
pub async fn log_stream(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    valid_name("identifier", &id)?;
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("lastEventId").map(String::as_str))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let keep_alive = s.keep_alive;
    let stop = s.shutdown.clone();
    let live = s.hub.subscribe();
    let guard = s.metrics.sse_client();
    let follow = Follow {
        s,
        identifier: id,
        live,
        last_sent: 0,
        queue: Default::default(),
        first: true,
        cursor,
    };
    let stream = futures::stream::unfold((follow, guard), |(mut f, guard)| async move {
        loop {
            if f.first {
                f.first = false;
                let mut start = f.cursor;
                if f.cursor > 0 {
                    let id = f.identifier.clone();
                    let cursor = f.cursor;
                    f.s.hub.flush().await;
                    let known =
                        f.s.store
                            .read(move |st| st.logs(&id, cursor.saturating_sub(1)))
                            .await
                            .map(|l| l.first().is_some_and(|e| e.id == cursor))
                            .unwrap_or(false);
                    if !known {
                        f.queue.push_back(Event::default().event("gap").data(
                            json!({"message": "the requested position is gone; replaying everything"}).to_string(),
                        ));
                        start = 0;
                    }
                }
                f.last_sent = start;
                replay(&mut f, start).await;
            }
            if let Some(ev) = f.queue.pop_front() {
                return Some((Ok(ev), (f, guard)));
            }
            match f.live.recv().await {
                Ok(rec) => {
                    if rec.identifier == f.identifier && rec.id > f.last_sent {
                        f.last_sent = rec.id;
                        return Some((Ok(log_event(rec.id, &rec.json)), (f, guard)));
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let after = f.last_sent;
                    replay(&mut f, after).await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures::StreamExt::take_until(stream, stop.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive).text("keepalive")))
}

/// `GET /issues/{id}/sublogs`: the agent CLIs' own session logs, read on the host that ran the issue.
pub async fn sublogs(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<IssueLogEntry>>, ApiError> {
    valid_name("identifier", &id)?;
    let Some(link) = s.scheduler.issue_link(&id).await? else {
        return Ok(axum::Json(Vec::new()));
    };
    let body = RequestBody::ReadSublogs(SublogRef {
        issue: id,
        session_id: None,
    });
    let logs: Sublogs = link
        .call_bulk(body)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "host_unreachable", e.to_string()))?;
    Ok(axum::Json(logs.entries))
}

async fn clear_sublogs_on_host(s: &ApiState, id: String, session: Option<String>) -> Result<Response, ApiError> {
    let Some(link) = s.scheduler.issue_link(&id).await? else {
        return Ok(json_answer(StatusCode::OK, json!({"ok": true})));
    };
    let body = RequestBody::ClearSublogs(SublogRef {
        issue: id,
        session_id: session,
    });
    link.call_bulk::<Empty>(body)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "host_unreachable", e.to_string()))?;
    Ok(json_answer(StatusCode::OK, json!({"ok": true})))
}

pub async fn clear_sublogs(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    clear_sublogs_on_host(&s, id, None).await
}

pub async fn clear_sublog(
    State(s): State<ApiState>,
    Path((id, session)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    valid_name("sessionId", &session)?;
    clear_sublogs_on_host(&s, id, Some(session)).await
}

/// How much of the log file's end a new `/logs` follower sees first.
const TAIL_BYTES: u64 = 16 * 1024;

/// `GET /logs`: the controller's own log file: its last lines, then new ones as they are written
/// (following rotation). `?identifier=` keeps only lines about that issue.
pub async fn daemon_log(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Some(path) = s.daemon_log.clone() else {
        return Err(ApiError::not_supported("this controller does not write a log file"));
    };
    let filter = q.get("identifier").cloned();
    if let Some(f) = &filter {
        valid_name("identifier", f)?;
    }
    let needle = filter.map(|f| format!("\"issue\":\"{f}\""));
    let keep_alive = s.keep_alive;
    let stop = s.shutdown.clone();
    let guard = s.metrics.sse_client();
    struct Tail {
        path: std::path::PathBuf,
        pos: Option<u64>,
        partial: String,
        pending: std::collections::VecDeque<String>,
        needle: Option<String>,
        seq: u64,
    }
    let tail = Tail {
        path,
        pos: None,
        partial: String::new(),
        pending: Default::default(),
        needle,
        seq: 0,
    };
    let stream = futures::stream::unfold((tail, guard), |(mut t, guard)| async move {
        loop {
            if let Some(line) = t.pending.pop_front() {
                t.seq += 1;
                let ev = Event::default().id(t.seq.to_string()).event("log").data(line);
                return Some((Ok(ev), (t, guard)));
            }
            let (path, pos) = (t.path.clone(), t.pos);
            let read = tokio::task::spawn_blocking(move || read_from(&path, pos))
                .await
                .ok()
                .flatten();
            match read {
                Some((new_pos, text)) => {
                    let skip_partial_first = t.pos.is_none() && new_pos > TAIL_BYTES;
                    t.pos = Some(new_pos);
                    t.partial.push_str(&text);
                    let mut lines: Vec<String> = t.partial.split('\n').map(str::to_string).collect();
                    t.partial = lines.pop().unwrap_or_default();
                    if skip_partial_first && !lines.is_empty() {
                        lines.remove(0);
                    }
                    for l in lines {
                        if !l.is_empty() && t.needle.as_ref().is_none_or(|n| l.contains(n.as_str())) {
                            t.pending.push_back(l);
                        }
                    }
                    if t.pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
                None => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    });
    let stream = futures::StreamExt::take_until(stream, stop.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive).text("keepalive")))
}

/// Reads the file from `pos` (or its last `TAIL_BYTES` on the first call). A file shorter than `pos` was
/// rotated: read it from the start.
fn read_from(path: &std::path::Path, pos: Option<u64>) -> Option<(u64, String)> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = match pos {
        None => len.saturating_sub(TAIL_BYTES),
        Some(p) if p > len => 0,
        Some(p) => p,
    };
    if start == len {
        return Some((len, String::new()));
    }
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(4 * 1024 * 1024).read_to_end(&mut buf).ok()?;
    Some((start + buf.len() as u64, String::from_utf8_lossy(&buf).into_owned()))
}
