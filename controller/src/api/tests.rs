//! The router called in-process (no socket) around a real scheduler with an in-memory tracker: auth,
//! the error envelope, 404/405, body validation, and the read routes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::scheduler::{SchedulerHandle, SchedulerOptions};
use crate::store::{Store, StoreHandle};
use crate::tracker::memory::MemoryTracker;
use crate::tracker::{Issue, SharedTracker};

pub(super) struct Fixture {
    pub(super) app: axum::Router,
    pub(super) dir: tempfile::TempDir,
    pub(super) cancel: tokio_util::sync::CancellationToken,
    pub(super) hub: crate::issue_logs::LogHub,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Fixture {
    pub(super) fn workflow_path(&self) -> std::path::PathBuf {
        self.dir.path().join("WORKFLOW.md")
    }

    pub(super) fn workflow_text(&self) -> String {
        std::fs::read_to_string(self.workflow_path()).unwrap()
    }
}

/// The fixture's WORKFLOW.md: comments, an unusual key order and a prompt body that API edits must keep
/// byte-for-byte.
pub(super) const WORKFLOW: &str = "---
# Test workflow: comments and key order must survive API edits.
polling:
  interval_ms: 3600000 # an hour: tests poll with /refresh
tracker:
  kind: memory
  active_states: [Todo, In Progress]   # flow style kept
  terminal_states: [Done, Cancelled]
agent:
  # how many at once
  max_concurrent_agents: 3
  profiles:
    reviewer:
      command: claude
      prompt: Review the pull request.
---
Work on {{ issue.identifier }}.

  Indented line, trailing spaces   
Last line without newline";

pub(super) fn fixture(token: Option<&str>) -> Fixture {
    fixture_with(token, Duration::from_secs(25))
}

/// A fixture whose SSE streams send a keep-alive after `keep_alive` of silence.
pub(super) fn fixture_with(token: Option<&str>, keep_alive: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    std::fs::write(&path, WORKFLOW).unwrap();
    let workflow = crate::config::load::load_workflow(&path).unwrap();
    assert_eq!(workflow.config.tracker.kind, crate::config::TrackerKind::Memory);
    let tracker: SharedTracker = Arc::new(MemoryTracker::new(vec![Issue {
        id: "T-1".into(),
        identifier: "T-1".into(),
        title: "First".into(),
        state: "Backlog".into(),
        ..Issue::default()
    }]));
    let store = StoreHandle::new(Store::open_in_memory().unwrap());
    let outbox = crate::tracker::outbox::Outbox::open(&dir.path().join("outbox.db"), tracker.clone()).unwrap();
    let hub = crate::issue_logs::LogHub::new(store.clone());
    let cancel = tokio_util::sync::CancellationToken::new();
    let scheduler = SchedulerHandle::spawn(
        SchedulerOptions {
            workflow,
            tracker,
            store: store.clone(),
            hub: hub.clone(),
            dry_run: true,
            demo_mode: false,
            worker_binary: Some(dir.path().join("no-such-worker")),
            cancel_grace: Duration::from_secs(1),
            watch: None,
            outbox,
        },
        cancel.clone(),
        tokio_util::task::TaskTracker::new(),
    );
    let app = router(ApiState {
        metrics: scheduler.metrics(),
        scheduler,
        hub: hub.clone(),
        store,
        token: token.map(Arc::from),
        daemon_log: None,
        keep_alive,
        shutdown: cancel.clone(),
    });
    Fixture { app, dir, cancel, hub }
}

pub(super) async fn call(
    f: &Fixture,
    method: &str,
    uri: &str,
    body: &str,
    token: Option<&str>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = f
        .app
        .clone()
        .oneshot(req.body(AxumBody::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, headers)
}

pub(super) fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

mod contract;
mod settings_writes;

#[tokio::test]
async fn token_is_required_except_for_health() {
    let f = fixture(Some("s3cret"));
    assert_eq!(call(&f, "GET", "/api/v1/health", "", None).await.0, StatusCode::OK);
    let (st, body, _) = call(&f, "GET", "/api/v1/state", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert_eq!(
        call(&f, "GET", "/api/v1/state", "", Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&f, "GET", "/api/v1/state", "", Some("s3cret")).await.0,
        StatusCode::OK
    );
    // ?token= only on SSE routes.
    assert_eq!(
        call(&f, "GET", "/api/v1/state?token=s3cret", "", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_use_the_envelope() {
    let f = fixture(None);
    let (st, body, _) = call(&f, "GET", "/api/v1/nope", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, body, headers) = call(&f, "GET", "/api/v1/refresh", "", None).await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert!(headers.get(header::ALLOW).unwrap().to_str().unwrap().contains("POST"));
}

#[tokio::test]
async fn bodies_are_validated() {
    let f = fixture(None);
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/provide-input", "{oops", None).await;
    assert_eq!((st, code(&body)), (StatusCode::BAD_REQUEST, "invalid_json"));
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/provide-input", "{}", None).await;
    assert_eq!(
        (st, code(&body), body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "bad_request", Some("message"))
    );
    let (st, body, _) = call(
        &f,
        "POST",
        "/api/v1/issues/T-1/provide-input",
        r#"{"message":"hi"}"#,
        None,
    )
    .await;
    assert_eq!((st, code(&body)), (StatusCode::CONFLICT, "not_input_required"));
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(2 << 20));
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/provide-input", &big, None).await;
    assert_eq!((st, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/backend", r#"{"backend":"gpt"}"#, None).await;
    assert_eq!((st, code(&body)), (StatusCode::BAD_REQUEST, "bad_request"));
    let (st, body, _) = call(&f, "POST", "/api/v1/settings/agent-mode", r#"{"mode":"swarm"}"#, None).await;
    assert_eq!(
        (st, code(&body), body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "bad_request", Some("mode"))
    );
    let (st, _, _) = call(&f, "POST", "/api/v1/issues/..%2Fetc/cancel", "", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn issue_actions_answer_as_documented() {
    let f = fixture(None);
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/cancel", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_FOUND, "not_running"));
    let (st, body, _) = call(&f, "DELETE", "/api/v1/issues/T-1", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_FOUND, "not_running"));
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/resume", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_FOUND, "not_paused"));
    let (st, body, _) = call(&f, "POST", "/api/v1/refresh", "", None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(body["queued"], true);
    let (st, body, _) = call(&f, "GET", "/api/v1/issues/T-1", "", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["identifier"], "T-1");
    assert_eq!(body["orchestratorState"], "idle");
    let (st, body, _) = call(&f, "GET", "/api/v1/issues/T-404", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/profile", r#"{"profile":"nope"}"#, None).await;
    assert_eq!((st, code(&body)), (StatusCode::BAD_REQUEST, "bad_request"));
    let (st, body, _) = call(&f, "POST", "/api/v1/issues/T-1/backend", r#"{"backend":"codex"}"#, None).await;
    assert_eq!((st, body["backend"].as_str()), (StatusCode::OK, Some("codex")));
}

#[tokio::test]
async fn state_and_probes() {
    let f = fixture(None);
    let (st, body, _) = call(&f, "GET", "/api/v1/state", "", None).await;
    assert_eq!(st, StatusCode::OK);
    for key in [
        "generatedAt",
        "counts",
        "running",
        "retrying",
        "paused",
        "maxConcurrentAgents",
        "rateLimits",
    ] {
        assert!(body.get(key).is_some(), "snapshot lacks {key}: {body}");
    }
    let (st, body, _) = call(&f, "GET", "/api/v1/ssh-hosts", "", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body[0]["host"], "local");
    let (st, body, _) = call(&f, "GET", "/api/v1/projects", "", None).await;
    assert_eq!((st, code(&body)), (StatusCode::NOT_IMPLEMENTED, "not_supported"));
    let (_, body, _) = call(&f, "GET", "/api/v1/settings/models", "", None).await;
    assert!(body["claude"].is_array() && body["codex"].is_array());
}

/// Reads SSE text from `body` until `needle` appears in it, or 10 s pass.
async fn read_sse_until(body: &mut AxumBody, text: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut from = 0;
    while !text[from..].contains(needle) {
        // Only the new text (and a needle's length before it) is searched again.
        from = text.len().saturating_sub(needle.len());
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} within 10 s; read so far (tail): {}",
                    &text[from.saturating_sub(2000)..]
                )
            })
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

/// Opens `/log-stream` of `identifier` in-process; its body is read as it streams.
async fn open_log_stream(f: &Fixture, identifier: &str) -> AxumBody {
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri(format!("/api/v1/issues/{identifier}/log-stream"))
                .body(AxumBody::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body()
}

/// A follower of a quiet issue gets keep-alives even while other issues' entries keep the live channel
/// busy (a proxy would otherwise close the idle-looking connection).
#[tokio::test]
async fn a_quiet_follower_gets_keepalives_while_other_issues_are_busy() {
    use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
    let f = fixture_with(None, Duration::from_millis(200));
    let mut body = open_log_stream(&f, "T-1").await;
    let hub = f.hub.clone();
    let busy = tokio::spawn(async move {
        for i in 0.. {
            let e = IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, format!("other {i}"), "t".into());
            hub.publish("T-2", e).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut text = String::new();
    let got = tokio::time::timeout(
        Duration::from_secs(20),
        read_sse_until(&mut body, &mut text, ":keepalive"),
    )
    .await;
    busy.abort();
    assert!(got.is_ok(), "no keep-alive while T-2 was busy; got {text:?}");
    assert!(!text.contains("other "), "another issue's entries leaked: {text:?}");
}

/// A `/log-stream` follower that falls so far behind that the entries it missed were pruned from the store
/// gets `event: gap` saying so, then goes on with what is stored, in order; it is never silently moved
/// past entries.
#[tokio::test]
async fn a_follower_that_fell_behind_past_pruned_entries_is_told_of_the_gap() {
    use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
    let f = fixture(None);
    let entry = |i: usize| IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, format!("line {i}"), "t".into());
    let mut body = open_log_stream(&f, "T-1").await;
    let first = f.hub.publish("T-1", entry(0)).await;
    let mut text = String::new();
    read_sse_until(&mut body, &mut text, "line 0").await;

    // The follower reads nothing while 60 000 more entries are published: far past the live buffer
    // (32 768), and the store keeps only the newest 20 000 to 30 000.
    let total = 60_000;
    for i in 1..=total {
        f.hub.publish("T-1", entry(i)).await;
    }
    f.hub.flush().await;
    let last = format!("line {total}\"");
    read_sse_until(&mut body, &mut text, &last).await;
    let gap = text
        .find("event: gap")
        .unwrap_or_else(|| panic!("no gap event after id {first}"));
    assert!(text[gap..].contains("no longer stored"), "{}", &text[gap..gap + 400]);
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order");
    assert!(
        ids.len() < total,
        "some entries were pruned, so fewer arrived: {}",
        ids.len()
    );
    assert!(ids.len() >= 20_000, "everything stored arrived: {}", ids.len());
}
