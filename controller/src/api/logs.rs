//! Log routes: an issue's stored entries and their live SSE follow, the agents' own session logs
//! (sublogs) read from the host that ran them, and the controller's own log file.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use itervox_protocol::IssueLogEntry;
use itervox_protocol::worker::{Empty, RequestBody, SublogRef, Sublogs};
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{ApiError, ApiState, json_answer, valid_name};
use crate::store::StoredLog;

/// `GET /issues/{id}/logs`: every stored entry, oldest first.
pub async fn issue_logs(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    s.hub.flush().await;
    let id2 = id.clone();
    let logs = s
        .store
        .read(move |st| st.logs(&id2, 0))
        .await
        .map_err(|e| ApiError::internal("reading logs", e))?;
    // The stored JSON as it is: an array of the entries, nothing parsed and serialized again.
    let mut body = String::with_capacity(2 + logs.iter().map(|l| l.json.len() + 1).sum::<usize>());
    body.push('[');
    for (i, l) in logs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&l.json);
    }
    body.push(']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
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

/// What one `/log-stream` follower is sent, as SSE text: events are framed here and handed to the
/// connection in chunks of whatever is ready (a burst of entries is one write, not one per entry).
#[derive(Default)]
struct SseText {
    /// Chunks ready to go, oldest first, and the one being filled.
    ready: std::collections::VecDeque<Bytes>,
    filling: String,
}

/// A chunk is handed over once it holds this much.
const SSE_CHUNK: usize = 64 * 1024;

impl SseText {
    /// One event; `data` is a single line (compact JSON).
    fn event(&mut self, id: Option<u64>, event: &str, data: &str) {
        if let Some(id) = id {
            self.filling.push_str("id: ");
            self.filling.push_str(itoa::Buffer::new().format(id));
            self.filling.push('\n');
        }
        self.filling.push_str("event: ");
        self.filling.push_str(event);
        self.filling.push_str("\ndata: ");
        self.filling.push_str(data);
        self.filling.push_str("\n\n");
        if self.filling.len() >= SSE_CHUNK {
            self.cut();
        }
    }

    fn log(&mut self, id: u64, json: &str) {
        self.event(Some(id), "log", json);
    }

    fn gap(&mut self, message: &str) {
        self.event(None, "gap", &json!({ "message": message }).to_string());
    }

    fn cut(&mut self) {
        if !self.filling.is_empty() {
            let chunk = std::mem::take(&mut self.filling);
            self.ready.push_back(Bytes::from(chunk));
        }
    }

    fn full(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The next chunk to send, cutting the one being filled when nothing else is ready.
    fn take(&mut self) -> Option<Bytes> {
        if self.ready.is_empty() {
            self.cut();
        }
        self.ready.pop_front()
    }
}

struct Follow {
    s: ApiState,
    identifier: String,
    live: tokio::sync::broadcast::Receiver<Arc<StoredLog>>,
    last_sent: u64,
    out: SseText,
    first: bool,
    cursor: u64,
    keep_alive: Duration,
    /// When this follower last sent something (an entry or a keep-alive).
    last_write: tokio::time::Instant,
    closed: bool,
}

impl Follow {
    /// A live entry: sent when it is this follower's issue's and newer than what it has.
    fn live_entry(&mut self, rec: &StoredLog) {
        if *rec.identifier == *self.identifier && rec.id > self.last_sent {
            self.last_sent = rec.id;
            self.out.log(rec.id, &rec.json);
        }
    }
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
        f.out.gap(&format!(
            "entries after id {after} up to id {pruned} are no longer stored (the controller keeps the newest {} of an issue); the host's session journal still has them",
            crate::store::MAX_LOGS_PER_ISSUE
        ));
    }
    for l in logs {
        if l.id > f.last_sent {
            f.out.log(l.id, &l.json);
            f.last_sent = l.id;
        }
    }
}

/// The next chunk for a follower: the replay on the first call, then live entries, as many as are
/// already waiting (up to a chunk); a keep-alive comment after `keep_alive` without sending anything
/// (however busy other issues keep the live channel).
async fn next_chunk(f: &mut Follow) -> Option<Bytes> {
    let chunk = next_chunk_inner(f).await;
    f.last_write = tokio::time::Instant::now();
    chunk
}

async fn next_chunk_inner(f: &mut Follow) -> Option<Bytes> {
    if f.first {
        f.first = false;
        let mut start = f.cursor;
        if f.cursor > 0 {
            let id = f.identifier.clone();
            let cursor = f.cursor;
            f.s.hub.flush().await;
            let known = f.s.store.read(move |st| st.has_log(&id, cursor)).await.unwrap_or(false);
            if !known {
                f.out.gap("the requested position is gone; replaying everything");
                start = 0;
            }
        }
        f.last_sent = start;
        replay(f, start).await;
    }
    loop {
        if f.out.full() {
            return f.out.take();
        }
        // Whatever is already waiting goes out together.
        loop {
            match f.live.try_recv() {
                Ok(rec) => {
                    f.live_entry(&rec);
                    if f.out.full() {
                        break;
                    }
                }
                Err(TryRecvError::Lagged(_)) => {
                    let after = f.last_sent;
                    replay(f, after).await;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    f.closed = true;
                    break;
                }
            }
        }
        if let Some(chunk) = f.out.take() {
            return Some(chunk);
        }
        if f.closed {
            return None;
        }
        // Cancel-safe: a broadcast receive that loses the race keeps its place.
        tokio::select! {
            r = f.live.recv() => match r {
                Ok(rec) => f.live_entry(&rec),
                Err(RecvError::Lagged(_)) => {
                    let after = f.last_sent;
                    replay(f, after).await;
                }
                Err(RecvError::Closed) => f.closed = true,
            },
            _ = tokio::time::sleep_until(f.last_write + f.keep_alive) => {
                return Some(Bytes::from_static(b":keepalive\n\n"));
            }
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
) -> Result<Response, ApiError> {
    valid_name("identifier", &id)?;
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("lastEventId").map(String::as_str))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let stop = s.shutdown.clone();
    let live = s.hub.subscribe();
    let guard = s.metrics.sse_client();
    let follow = Follow {
        keep_alive: s.keep_alive,
        last_write: tokio::time::Instant::now(),
        s,
        identifier: id,
        live,
        last_sent: 0,
        out: SseText::default(),
        first: true,
        cursor,
        closed: false,
    };
    let stream = futures::stream::unfold((follow, guard), |(mut f, guard)| async move {
        let chunk = next_chunk(&mut f).await?;
        Some((Ok::<_, Infallible>(chunk), (f, guard)))
    });
    let stream = futures::StreamExt::take_until(stream, stop.cancelled_owned());
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
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
