//! A scripted stand-in for the controller's `/api/v1`, built from the protocol crate's wire types
//! and answering as API.md says, so the dashboard can be driven in Chromium before (and apart from)
//! the real API server. It records every request for the tests to assert on.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{SecondsFormat, Utc};
use itervox_protocol::api::{
    AddHostRequest, ErrorBody, ErrorEnvelope, HistoryRow, HostRow, HostStatus, InputRequiredRow, IssueComment,
    ModelOption, OrchestratorState, ProfileDef, RetryRow, RunKind, RunStatus, RunningRow, StateSnapshot, Totals,
    TrackerIssue,
};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use itervox_tests::browser::wait_until;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path below `/api/v1`, e.g. `/issues/DEMO-1/cancel`.
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: String,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The fake's mutable world.
pub struct World {
    /// When set, every route needs `Authorization: Bearer <token>` (SSE: or `?token=`).
    pub token: Option<String>,
    pub snapshot: StateSnapshot,
    pub issues: Vec<TrackerIssue>,
    pub logs: BTreeMap<String, Vec<IssueLogEntry>>,
    pub sublogs: BTreeMap<String, Vec<IssueLogEntry>>,
    /// false: `/projects` answers 501 like the GitHub and local trackers.
    pub projects_supported: bool,
    /// The next this-many `/events` requests answer 503.
    pub events_fail: u32,
    requests: Vec<Recorded>,
    event_id: u64,
}

struct Shared {
    world: Mutex<World>,
    snapshots: watch::Sender<StateSnapshot>,
    log_lines: broadcast::Sender<(String, IssueLogEntry)>,
    /// Daemon log lines: (the issue they mention, if any; the raw line).
    daemon_lines: broadcast::Sender<(Option<String>, String)>,
    close_streams: broadcast::Sender<()>,
    /// SSE responses currently being streamed to a client.
    open_streams: Arc<AtomicUsize>,
}

/// Counts an SSE response as open until the server drops it (the client went away or the stream
/// ended).
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(counter: &Arc<AtomicUsize>) -> OpenStream {
        counter.fetch_add(1, Ordering::SeqCst);
        OpenStream(counter.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The fake API; clones share one world.
#[derive(Clone)]
pub struct FakeApi {
    shared: Arc<Shared>,
}

impl FakeApi {
    pub fn new(snapshot: StateSnapshot, issues: Vec<TrackerIssue>) -> FakeApi {
        let (snapshots, _) = watch::channel(snapshot.clone());
        let (log_lines, _) = broadcast::channel(256);
        let (daemon_lines, _) = broadcast::channel(256);
        let (close_streams, _) = broadcast::channel(4);
        FakeApi {
            shared: Arc::new(Shared {
                world: Mutex::new(World {
                    token: None,
                    snapshot,
                    issues,
                    logs: BTreeMap::new(),
                    sublogs: BTreeMap::new(),
                    projects_supported: false,
                    events_fail: 0,
                    requests: Vec::new(),
                    event_id: 0,
                }),
                snapshots,
                log_lines,
                daemon_lines,
                close_streams,
                open_streams: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// The dashboard router plus this fake under `/api/v1`.
    pub fn app(&self) -> Router {
        Router::new()
            .route("/api/v1/{*rest}", any(handle))
            .with_state(self.shared.clone())
            .merge(itervox::dashboard::router())
    }

    /// Changes the world and publishes the new snapshot (counts recomputed, fresh generatedAt).
    pub fn update(&self, change: impl FnOnce(&mut World)) {
        let snapshot = {
            let mut world = self.shared.world.lock().unwrap();
            change(&mut world);
            refresh_snapshot(&mut world.snapshot);
            world.snapshot.clone()
        };
        self.shared.snapshots.send_replace(snapshot);
    }

    /// Appends a log line to an issue's buffer and sends it to its live followers.
    pub fn push_log(&self, identifier: &str, entry: IssueLogEntry) {
        self.shared
            .world
            .lock()
            .unwrap()
            .logs
            .entry(identifier.to_string())
            .or_default()
            .push(entry.clone());
        let _ = self.shared.log_lines.send((identifier.to_string(), entry));
    }

    /// Sends a line of the daemon's log to `/logs` followers (`issue`: the issue it is about).
    pub fn push_daemon_line(&self, issue: Option<&str>, line: &str) {
        let _ = self
            .shared
            .daemon_lines
            .send((issue.map(String::from), line.to_string()));
    }

    /// Ends every open SSE stream, as a restarting server would.
    pub fn drop_event_streams(&self) {
        let _ = self.shared.close_streams.send(());
    }

    /// How many SSE responses are being streamed right now.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.world.lock().unwrap().requests.clone()
    }

    /// Waits for a request matching `matches`, up to 20 s.
    pub async fn wait_for_request(&self, what: &str, matches: impl Fn(&Recorded) -> bool) -> Recorded {
        let matches = &matches;
        wait_until(Duration::from_secs(20), what, || async move {
            Ok(self.requests().into_iter().find(|r| matches(r)))
        })
        .await
        .unwrap_or_else(|err| panic!("{err}; requests seen: {:#?}", self.requests()))
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn refresh_snapshot(s: &mut StateSnapshot) {
    s.generated_at = now();
    s.counts.running = s.running.len() as u32;
    s.counts.retrying = s.retrying.len() as u32;
    s.counts.paused = s.paused.len() as u32;
}

fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            code: code.into(),
            message: message.into(),
            field: field.map(String::from),
        },
    };
    (status, axum::Json(envelope)).into_response()
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn accepted(value: Value) -> Response {
    (StatusCode::ACCEPTED, axum::Json(value)).into_response()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches("/api/v1").to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut world = shared.world.lock().unwrap();
    world.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });

    let segments: Vec<String> = path.trim_start_matches('/').split('/').map(decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let is_stream =
        matches!(segs.as_slice(), ["events"] | ["issues", _, "log-stream"] | ["logs"]) && method == Method::GET;

    if let Some(token) = world.token.clone() {
        let by_header = authorization.as_deref() == Some(format!("Bearer {token}").as_str());
        let by_query = is_stream && query_param(&query, "token").as_deref() == Some(token.as_str());
        if !by_header && !by_query {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
                None,
            );
        }
    }

    let json_body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let m = method.as_str();
    let changed = |world: &mut World| refresh_snapshot(&mut world.snapshot);
    let response = match (m, segs.as_slice()) {
        ("GET", ["state"]) => ok(serde_json::to_value(&world.snapshot).unwrap()),
        ("GET", ["events"]) => {
            if world.events_fail > 0 {
                world.events_fail -= 1;
                return error(StatusCode::SERVICE_UNAVAILABLE, "orchestrator_busy", "try again", None);
            }
            drop(world);
            return events(&shared);
        }
        ("POST", ["refresh"]) => accepted(json!({"queued": true, "coalesced": false, "queuedAt": now()})),
        ("GET", ["issues"]) => ok(serde_json::to_value(&world.issues).unwrap()),
        ("GET", ["issues", id]) => match world.issues.iter().find(|i| i.identifier == *id) {
            Some(issue) => ok(serde_json::to_value(issue).unwrap()),
            None => error(StatusCode::NOT_FOUND, "not_found", &format!("no issue {id}"), None),
        },
        ("POST", ["issues", id, "cancel"]) => {
            let id = id.to_string();
            if let Some(pos) = world.snapshot.running.iter().position(|r| r.identifier == id) {
                world.snapshot.running.remove(pos);
                world.snapshot.paused.push(id.clone());
                world
                    .snapshot
                    .pause_reasons
                    .insert(id.clone(), "cancelled from the dashboard".into());
                changed(&mut world);
                ok(json!({"cancelled": true, "identifier": id}))
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "not_running",
                    &format!("{id} is not running"),
                    None,
                )
            }
        }
        ("POST", ["issues", id, "resume"]) => {
            let id = id.to_string();
            if let Some(pos) = world.snapshot.paused.iter().position(|p| *p == id) {
                world.snapshot.paused.remove(pos);
                world.snapshot.pause_reasons.remove(&id);
                changed(&mut world);
                ok(json!({"resumed": true, "identifier": id}))
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "not_paused",
                    &format!("{id} is not paused"),
                    None,
                )
            }
        }
        ("POST", ["issues", id, "terminate"]) => {
            let id = id.to_string();
            world.snapshot.running.retain(|r| r.identifier != id);
            world.snapshot.paused.retain(|p| *p != id);
            changed(&mut world);
            ok(json!({"terminated": true, "identifier": id}))
        }
        ("POST", ["issues", id, "reanalyze"]) => ok(json!({"queued": true, "identifier": id})),
        ("POST", ["issues", id, "ai-review"]) => accepted(json!({"queued": true, "identifier": id})),
        ("POST", ["issues", id, "profile"]) => {
            let profile = json_body["profile"].as_str().unwrap_or_default().to_string();
            if !profile.is_empty() && !world.snapshot.available_profiles.contains(&profile) {
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("unknown profile {profile:?}"),
                    Some("profile"),
                )
            } else {
                let id = id.to_string();
                if let Some(issue) = world.issues.iter_mut().find(|i| i.identifier == id) {
                    issue.agent_profile = (!profile.is_empty()).then(|| profile.clone());
                }
                ok(json!({"ok": true, "identifier": id, "profile": profile}))
            }
        }
        ("POST", ["issues", id, "backend"]) => {
            let backend = json_body["backend"].as_str().unwrap_or_default().to_string();
            let id = id.to_string();
            if let Some(issue) = world.issues.iter_mut().find(|i| i.identifier == id) {
                issue.agent_backend = (!backend.is_empty()).then(|| backend.clone());
            }
            ok(json!({"ok": true, "identifier": id, "backend": backend}))
        }
        ("POST", ["issues", id, "provide-input"]) => {
            let id = id.to_string();
            let message = json_body["message"].as_str().unwrap_or_default();
            if message.trim().is_empty() {
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "message is empty",
                    Some("message"),
                )
            } else if let Some(pos) = world.snapshot.input_required.iter().position(|r| r.identifier == id) {
                world.snapshot.input_required.remove(pos);
                changed(&mut world);
                accepted(json!({"ok": true, "identifier": id}))
            } else {
                error(
                    StatusCode::CONFLICT,
                    "not_input_required",
                    &format!("{id} is not waiting for input"),
                    None,
                )
            }
        }
        ("POST", ["issues", id, "dismiss-input"]) => {
            let id = id.to_string();
            world.snapshot.input_required.retain(|r| r.identifier != id);
            world.snapshot.paused.push(id.clone());
            world
                .snapshot
                .pause_reasons
                .insert(id.clone(), "input request dismissed".into());
            changed(&mut world);
            accepted(json!({"ok": true, "identifier": id}))
        }
        ("GET", ["issues", id, "logs"]) => ok(json!(world.logs.get(*id).cloned().unwrap_or_default())),
        ("DELETE", ["issues", id, "logs"]) => {
            world.logs.remove(*id);
            ok(json!({"ok": true}))
        }
        ("GET", ["issues", id, "log-stream"]) => {
            let id = id.to_string();
            drop(world);
            return log_stream(&shared, id);
        }
        ("GET", ["issues", id, "sublogs"]) => ok(json!(world.sublogs.get(*id).cloned().unwrap_or_default())),
        ("DELETE", ["issues", id, "sublogs"]) => {
            world.sublogs.remove(*id);
            ok(json!({"ok": true}))
        }
        ("GET", ["logs", "identifiers"]) => ok(json!(world.logs.keys().collect::<Vec<_>>())),
        ("DELETE", ["logs"]) => {
            world.logs.clear();
            ok(json!({"ok": true}))
        }
        ("GET", ["logs"]) => {
            let filter = query_param(&query, "identifier");
            drop(world);
            return daemon_log(&shared, filter);
        }
        ("DELETE", ["issues", id, "sublogs", session]) => {
            if let Some(entries) = world.sublogs.get_mut(*id) {
                entries.retain(|e| e.session_id.as_deref() != Some(*session));
            }
            ok(json!({"ok": true}))
        }
        ("POST", ["settings", "workers"]) => {
            let current = i64::from(world.snapshot.max_concurrent_agents);
            let wanted = json_body["workers"]
                .as_i64()
                .or_else(|| json_body["delta"].as_i64().map(|d| current + d))
                .unwrap_or(current)
                .clamp(1, 50);
            world.snapshot.max_concurrent_agents = wanted as u32;
            changed(&mut world);
            ok(json!({"workers": wanted}))
        }
        ("POST", ["settings", "agent-mode"]) => {
            let mode = json_body["mode"].as_str().unwrap_or_default().to_string();
            world.snapshot.agent_mode = Some(mode.clone());
            changed(&mut world);
            ok(json!({"ok": true, "mode": mode}))
        }
        ("PUT", ["settings", "tracker", "states"]) => {
            let strings = |key: &str| -> Vec<String> {
                json_body[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default()
            };
            world.snapshot.active_states = strings("activeStates");
            world.snapshot.terminal_states = strings("terminalStates");
            world.snapshot.backlog_states = strings("backlogStates");
            world.snapshot.completion_state = json_body["completionState"].as_str().map(String::from);
            changed(&mut world);
            ok(json!({"ok": true}))
        }
        ("GET", ["ssh-hosts"]) => ok(serde_json::to_value(&world.snapshot.ssh_hosts).unwrap()),
        ("POST", ["ssh-hosts"]) => match serde_json::from_value::<AddHostRequest>(json_body.clone()) {
            Err(err) => error(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                &format!("invalid body: {err}"),
                None,
            ),
            Ok(req) if req.host.trim().is_empty() || req.host.contains(' ') => error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot parse host {:?}: expected [user@]name[:port]", req.host),
                Some("host"),
            ),
            Ok(req) if world.snapshot.ssh_hosts.iter().any(|h| h.host == req.host) => error(
                StatusCode::CONFLICT,
                "conflict",
                &format!("host {} is already in the pool", req.host),
                Some("host"),
            ),
            Ok(req) => {
                world.snapshot.ssh_hosts.push(HostRow {
                    host: req.host.clone(),
                    description: req.description,
                    status: Some(HostStatus::Connecting),
                    capacity: 2,
                    ..HostRow::default()
                });
                changed(&mut world);
                (StatusCode::CREATED, axum::Json(json!({"ok": true, "host": req.host}))).into_response()
            }
        },
        ("DELETE", ["ssh-hosts", host]) => {
            let before = world.snapshot.ssh_hosts.len();
            world.snapshot.ssh_hosts.retain(|h| h.host != *host);
            if world.snapshot.ssh_hosts.len() == before {
                error(StatusCode::NOT_FOUND, "not_found", &format!("no host {host}"), None)
            } else {
                changed(&mut world);
                ok(json!({"ok": true}))
            }
        }
        ("PUT", ["settings", "dispatch-strategy"]) => {
            world.snapshot.dispatch_strategy = json_body["strategy"].as_str().map(String::from);
            changed(&mut world);
            ok(json!({"ok": true}))
        }
        ("POST", ["settings", "workspace", "auto-clear"]) => {
            let enabled = json_body["enabled"].as_bool().unwrap_or(false);
            world.snapshot.auto_clear_workspace = Some(enabled);
            changed(&mut world);
            ok(json!({"ok": true, "autoClearWorkspace": enabled}))
        }
        ("POST", ["settings", "inline-input"]) => {
            world.snapshot.inline_input = json_body["enabled"].as_bool();
            changed(&mut world);
            ok(json!({"ok": true}))
        }
        ("GET", ["settings", "profiles"]) => ok(json!({"profiles": world.snapshot.profile_defs})),
        ("PUT", ["settings", "profiles", name]) => match serde_json::from_value::<ProfileDef>(json_body.clone()) {
            Ok(def) => {
                let name = name.to_string();
                world.snapshot.profile_defs.insert(name.clone(), def);
                if !world.snapshot.available_profiles.contains(&name) {
                    world.snapshot.available_profiles.push(name);
                }
                changed(&mut world);
                ok(json!({"ok": true}))
            }
            Err(err) => error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid profile: {err}"),
                Some("command"),
            ),
        },
        ("DELETE", ["settings", "profiles", name]) => {
            world.snapshot.profile_defs.remove(*name);
            world.snapshot.available_profiles.retain(|p| p != name);
            changed(&mut world);
            ok(json!({"ok": true}))
        }
        ("GET", ["settings", "reviewer"]) => ok(json!({
            "profile": world.snapshot.reviewer_profile.clone().unwrap_or_default(),
            "autoReview": world.snapshot.auto_review.unwrap_or(false),
        })),
        ("PUT", ["settings", "reviewer"]) => {
            world.snapshot.reviewer_profile = json_body["profile"].as_str().map(String::from);
            world.snapshot.auto_review = json_body["autoReview"].as_bool();
            changed(&mut world);
            ok(json!({"ok": true}))
        }
        ("GET", ["projects"]) if !world.projects_supported => error(
            StatusCode::NOT_IMPLEMENTED,
            "not_supported",
            "the github tracker has no projects",
            None,
        ),
        ("GET", ["projects"]) => ok(json!({"projects": [
            {"id": "p1", "name": "Alpha", "slug": "alpha"},
            {"id": "p2", "name": "Beta", "slug": "beta"},
        ]})),
        ("GET", ["projects", "filter"]) => ok(json!({"filter": world.snapshot.active_project_filter})),
        ("PUT", ["projects", "filter"]) => {
            let slugs: Option<Vec<String>> = serde_json::from_value(json_body["slugs"].clone()).ok();
            world.snapshot.active_project_filter = slugs.clone();
            changed(&mut world);
            ok(json!({"ok": true, "filter": slugs}))
        }
        ("DELETE", ["workspaces"]) => accepted(json!({"ok": true})),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route {m} {path}"),
            None,
        ),
    };
    let snapshot = world.snapshot.clone();
    drop(world);
    shared.snapshots.send_if_modified(|current| {
        if *current == snapshot {
            false
        } else {
            *current = snapshot;
            true
        }
    });
    response
}

/// `/events`: the current snapshot at once, then every change; ends when told to.
fn events(shared: &Arc<Shared>) -> Response {
    let receiver = shared.snapshots.subscribe();
    let close = shared.close_streams.subscribe();
    let guard = OpenStream::new(&shared.open_streams);
    let shared = shared.clone();
    let stream = futures::stream::unfold(
        (receiver, close, true, shared, guard),
        |(mut receiver, mut close, first, shared, guard)| async move {
            if !first {
                tokio::select! {
                    changed = receiver.changed() => changed.ok()?,
                    _ = close.recv() => return None,
                }
            }
            let snapshot = receiver.borrow_and_update().clone();
            let id = {
                let mut world = shared.world.lock().unwrap();
                world.event_id += 1;
                world.event_id
            };
            let event = Event::default().id(id.to_string()).json_data(&snapshot).ok()?;
            Some((Ok::<_, Infallible>(event), (receiver, close, false, shared, guard)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// `/issues/{id}/log-stream`: `event: log` for every line pushed after the connection opened.
fn log_stream(shared: &Arc<Shared>, identifier: String) -> Response {
    let lines = shared.log_lines.subscribe();
    let close = shared.close_streams.subscribe();
    let guard = OpenStream::new(&shared.open_streams);
    let stream = futures::stream::unfold(
        (lines, close, identifier, guard),
        |(mut lines, mut close, identifier, guard)| async move {
            loop {
                tokio::select! {
                    line = lines.recv() => {
                        let (issue, entry) = line.ok()?;
                        if issue != identifier {
                            continue;
                        }
                        let id = format!("{}:{}", entry.session_id.clone().unwrap_or_default(), entry.seq.unwrap_or(0));
                        let event = Event::default().event("log").id(id).json_data(&entry).ok()?;
                        return Some((Ok::<_, Infallible>(event), (lines, close, identifier, guard)));
                    }
                    _ = close.recv() => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// `/logs`: the daemon's log lines as plain `data:` frames, filtered by `?identifier=`.
fn daemon_log(shared: &Arc<Shared>, filter: Option<String>) -> Response {
    let lines = shared.daemon_lines.subscribe();
    let close = shared.close_streams.subscribe();
    let guard = OpenStream::new(&shared.open_streams);
    let stream = futures::stream::unfold(
        (lines, close, filter, guard),
        |(mut lines, mut close, filter, guard)| async move {
            loop {
                tokio::select! {
                    line = lines.recv() => {
                        let (issue, text) = line.ok()?;
                        if filter.is_some() && issue != filter {
                            continue;
                        }
                        let event = Event::default().data(text);
                        return Some((Ok::<_, Infallible>(event), (lines, close, filter, guard)));
                    }
                    _ = close.recv() => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

// ---- Sample data ------------------------------------------------------------------------------

fn ago(seconds: i64) -> String {
    (Utc::now() - chrono::Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ahead(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An empty but valid snapshot: nothing running, default settings.
pub fn empty_snapshot() -> StateSnapshot {
    let mut s = StateSnapshot {
        max_concurrent_agents: 3,
        max_retries: 5,
        switch_window_hours: 24,
        ..StateSnapshot::default()
    };
    refresh_snapshot(&mut s);
    s
}

/// A busy controller: two running sessions (one on a build host), a retry, a paused issue, one
/// waiting for input, history, two hosts, profiles and tracker states.
pub fn busy_snapshot() -> StateSnapshot {
    let mut profile_defs = BTreeMap::new();
    profile_defs.insert(
        "backend".to_string(),
        ProfileDef {
            command: "claude --model sonnet".into(),
            prompt: Some("You work on the Rust backend.".into()),
            backend: Some("claude".into()),
            ..ProfileDef::default()
        },
    );
    profile_defs.insert(
        "reviewer".to_string(),
        ProfileDef {
            command: "codex".into(),
            backend: Some("codex".into()),
            ..ProfileDef::default()
        },
    );
    let mut pause_reasons = BTreeMap::new();
    pause_reasons.insert("DEMO-4".to_string(), "open PR awaiting review".to_string());
    let mut s = StateSnapshot {
        running: vec![
            RunningRow {
                identifier: "DEMO-1".into(),
                state: "In Progress".into(),
                turn_count: 3,
                tokens: 15_300,
                input_tokens: 12_000,
                output_tokens: 3_300,
                elapsed_ms: 125_000,
                started_at: ago(125),
                title: Some("Add the login endpoint".into()),
                session_id: Some("sess-1".into()),
                worker_host: Some("build-1".into()),
                backend: Some("claude".into()),
                profile: Some("backend".into()),
                kind: Some(RunKind::Worker),
                last_event: Some("action".into()),
                last_message: Some("cargo test -p api".into()),
                last_event_at: Some(ago(4)),
                ..RunningRow::default()
            },
            RunningRow {
                identifier: "DEMO-2".into(),
                state: "In Progress".into(),
                turn_count: 1,
                tokens: 800,
                input_tokens: 700,
                output_tokens: 100,
                elapsed_ms: 20_000,
                started_at: ago(20),
                title: Some("Review the cache PR".into()),
                backend: Some("codex".into()),
                profile: Some("reviewer".into()),
                kind: Some(RunKind::Reviewer),
                ..RunningRow::default()
            },
        ],
        retrying: vec![RetryRow {
            identifier: "DEMO-3".into(),
            attempt: 2,
            due_at: ahead(600),
            error: Some("agent exited with status 1".into()),
        }],
        paused: vec!["DEMO-4".into()],
        pause_reasons,
        input_required: vec![InputRequiredRow {
            identifier: "DEMO-5".into(),
            session_id: "sess-5".into(),
            context: "Which database should the cache use: Redis or SQLite?".into(),
            queued_at: ago(60),
            backend: Some("claude".into()),
            profile: None,
            worker_host: Some("build-1".into()),
        }],
        history: vec![
            HistoryRow {
                identifier: "DEMO-8".into(),
                started_at: ago(4000),
                finished_at: ago(3600),
                elapsed_ms: 400_000,
                turn_count: 7,
                tokens: 52_000,
                input_tokens: 40_000,
                output_tokens: 12_000,
                title: Some("Older run".into()),
                status: Some(RunStatus::Failed),
                worker_host: Some("build-2".into()),
                backend: Some("claude".into()),
                error: Some("turn limit reached".into()),
                ..HistoryRow::default()
            },
            HistoryRow {
                identifier: "DEMO-9".into(),
                started_at: ago(700),
                finished_at: ago(300),
                elapsed_ms: 400_000,
                turn_count: 4,
                tokens: 21_000,
                input_tokens: 18_000,
                output_tokens: 3_000,
                title: Some("Newest run".into()),
                status: Some(RunStatus::Succeeded),
                backend: Some("codex".into()),
                ..HistoryRow::default()
            },
        ],
        max_concurrent_agents: 4,
        max_retries: 5,
        switch_window_hours: 24,
        agent_mode: Some("solo".into()),
        available_profiles: vec!["backend".into(), "reviewer".into()],
        available_models: BTreeMap::from([(
            "claude".to_string(),
            vec![ModelOption {
                id: "claude-sonnet-4-5".into(),
                label: "Sonnet 4.5".into(),
            }],
        )]),
        profile_defs,
        reviewer_profile: Some("reviewer".into()),
        auto_review: Some(false),
        tracker_kind: Some("linear".into()),
        active_states: vec!["Todo".into(), "In Progress".into()],
        terminal_states: vec!["Done".into(), "Cancelled".into()],
        completion_state: Some("Done".into()),
        backlog_states: vec!["Backlog".into()],
        ssh_hosts: vec![
            HostRow {
                host: "build-1".into(),
                description: "fast box".into(),
                status: Some(HostStatus::Up),
                running: 1,
                capacity: 2,
                latency_ms: Some(12.5),
                ..HostRow::default()
            },
            HostRow {
                host: "build-2".into(),
                description: String::new(),
                status: Some(HostStatus::Down),
                running: 0,
                capacity: 2,
                last_error: Some("connection refused".into()),
                ..HostRow::default()
            },
        ],
        dispatch_strategy: Some("round-robin".into()),
        auto_clear_workspace: Some(false),
        inline_input: Some(true),
        totals: Some(Totals {
            input_tokens: 70_700,
            output_tokens: 18_400,
            cost_usd_estimated: Some(1.234),
        }),
        ..StateSnapshot::default()
    };
    refresh_snapshot(&mut s);
    s
}

/// Tracker issues matching [`busy_snapshot`], plus idle and backlog ones.
pub fn sample_issues() -> Vec<TrackerIssue> {
    let issue = |id: &str, title: &str, state: &str, orch: OrchestratorState| TrackerIssue {
        identifier: id.into(),
        title: title.into(),
        state: state.into(),
        orchestrator_state: orch,
        ..TrackerIssue::default()
    };
    let mut demo1 = issue(
        "DEMO-1",
        "Add the login endpoint",
        "In Progress",
        OrchestratorState::Running,
    );
    demo1.description = Some("Users sign in with email and password.\nReturn a session cookie.".into());
    demo1.comments = vec![IssueComment {
        author: "ada".into(),
        body: "Please use argon2 for the hashes.".into(),
        created_at: Some(ago(7200)),
    }];
    demo1.labels = vec!["backend".into()];
    demo1.priority = Some(2);
    demo1.agent_profile = Some("backend".into());
    let mut demo6 = issue("DEMO-6", "Write the docs", "Todo", OrchestratorState::Idle);
    demo6.ineligible_reason = Some("blocked by DEMO-1".into());
    demo6.blocked_by = vec!["DEMO-1".into()];
    vec![
        demo1,
        issue(
            "DEMO-2",
            "Review the cache PR",
            "In Progress",
            OrchestratorState::Running,
        ),
        issue("DEMO-3", "Fix the flaky test", "Todo", OrchestratorState::Retrying),
        issue("DEMO-4", "Cache layer", "In Progress", OrchestratorState::Paused),
        issue(
            "DEMO-5",
            "Pick a database",
            "In Progress",
            OrchestratorState::InputRequired,
        ),
        demo6,
        issue("DEMO-7", "Someday: dark mode", "Backlog", OrchestratorState::Idle),
        issue("DEMO-8", "Shipped thing", "Done", OrchestratorState::Idle),
        issue("DEMO-10", "Needs triage", "Triage", OrchestratorState::Idle),
    ]
}

/// A log line of session `session` with sequence `seq`.
pub fn log_line(session: &str, seq: u64, event: LogEventKind, message: &str) -> IssueLogEntry {
    let mut entry = IssueLogEntry::new(LogLevel::Info, event, message, now());
    entry.session_id = Some(session.into());
    entry.seq = Some(seq);
    entry
}
