//! Golden JSON round trips: each wire type parses from its documented JSON and serializes back to
//! exactly the same JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::*;
use crate::log_entry::*;
use crate::worker::*;

/// Parses `golden` as `T`, serializes it again and checks the JSON is unchanged.
#[track_caller]
fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug + PartialEq>(golden: Value) -> T {
    let parsed: T = serde_json::from_value(golden.clone()).unwrap_or_else(|e| panic!("parse {golden}: {e}"));
    let back = serde_json::to_value(&parsed).expect("serialize");
    assert_eq!(back, golden, "round trip changed the JSON");
    let reparsed: T = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(reparsed, parsed);
    parsed
}

#[test]
fn controller_hello() {
    let f: ControllerFrame = round_trip(json!({
        "type": "hello", "protocol": 1, "controllerVersion": "0.1.0", "workspaceRoot": "~/.itervox/workspaces"
    }));
    assert!(matches!(f, ControllerFrame::Hello(h) if h.protocol == 1));
}

#[test]
fn requests() {
    let f: ControllerFrame = round_trip(json!({
        "id": 3, "type": "prepare_workspace", "issue": "ITX-1", "repo": "/srv/repo.git",
        "baseBranch": "main", "branch": "itervox/ITX-1",
        "hooks": {"afterCreate": "make deps", "timeoutMs": 60000}
    }));
    let ControllerFrame::Request(Request {
        id: 3,
        body: RequestBody::PrepareWorkspace(p),
    }) = f
    else {
        panic!("wrong variant: {f:?}")
    };
    assert_eq!(p.hooks.after_create.as_deref(), Some("make deps"));

    let f: ControllerFrame = round_trip(json!({
        "id": 4, "type": "start_session", "sessionId": "s-1", "issue": "ITX-1", "workspace": "/w/ITX-1",
        "backend": "claude", "command": "claude", "env": {"A": "1"}, "prompt": "do it",
        "resumeSessionRef": "abc", "permissionMode": "bypass", "turnTimeoutMs": 3600000,
        "readTimeoutMs": 30000, "hooks": {"timeoutMs": 1000}
    }));
    assert!(matches!(
        f,
        ControllerFrame::Request(Request {
            body: RequestBody::StartSession(_),
            ..
        })
    ));

    // The lease is optional: a start_session without it (an older controller) still parses, with no lease.
    let f: ControllerFrame = round_trip(json!({
        "id": 16, "type": "start_session", "sessionId": "s-2", "issue": "ITX-2", "workspace": "/w/ITX-2",
        "backend": "demo", "command": "", "env": {}, "prompt": "go", "permissionMode": "sandbox",
        "turnTimeoutMs": 0, "readTimeoutMs": 0, "hooks": {"timeoutMs": 60000}, "leaseMs": 3000
    }));
    let ControllerFrame::Request(Request {
        body: RequestBody::StartSession(with_lease),
        ..
    }) = f
    else {
        panic!("wrong variant: {f:?}")
    };
    assert_eq!(with_lease.lease_ms, Some(3000));
    let older: ControllerFrame = serde_json::from_value(json!({
        "id": 17, "type": "start_session", "sessionId": "s-3", "issue": "ITX-3", "workspace": "/w/ITX-3",
        "backend": "demo", "command": "", "prompt": "go", "turnTimeoutMs": 0, "readTimeoutMs": 0
    }))
    .expect("a start_session without leaseMs parses");
    let ControllerFrame::Request(Request {
        body: RequestBody::StartSession(older),
        ..
    }) = older
    else {
        panic!("wrong variant")
    };
    assert_eq!(older.lease_ms, None);
    assert!(
        !serde_json::to_value(&older)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("leaseMs"),
        "no lease, no key"
    );

    for (golden, kind) in [
        (
            json!({"id": 5, "type": "attach", "sessionId": "s-1", "fromSeq": 12}),
            "attach",
        ),
        (json!({"id": 6, "type": "list_sessions"}), "list_sessions"),
        (json!({"id": 7, "type": "ping"}), "ping"),
        (
            json!({"id": 18, "type": "ping", "leaseToken": 1764900000123u64}),
            "ping",
        ),
        (
            json!({"id": 8, "type": "cancel", "sessionId": "s-1", "graceMs": 2000}),
            "cancel",
        ),
        (
            json!({"id": 9, "type": "send_input", "sessionId": "s-1", "message": "yes"}),
            "send_input",
        ),
        (
            json!({"id": 10, "type": "read_sublogs", "issue": "ITX-1"}),
            "read_sublogs",
        ),
        (
            json!({"id": 11, "type": "clear_sublogs", "issue": "ITX-1", "sessionId": "x"}),
            "clear_sublogs",
        ),
        (
            json!({"id": 12, "type": "remove_workspace", "issue": "ITX-1", "hooks": {"timeoutMs": 5}}),
            "remove_workspace",
        ),
        (json!({"id": 13, "type": "list_workspaces"}), "list_workspaces"),
        (json!({"id": 14, "type": "detach", "sessionId": "s-1"}), "detach"),
        (
            json!({"id": 15, "type": "remove_session", "sessionId": "s-1"}),
            "remove_session",
        ),
    ] {
        let f: ControllerFrame = round_trip(golden);
        let ControllerFrame::Request(r) = f else {
            panic!("not a request")
        };
        assert_eq!(r.body.kind(), kind);
    }
}

#[test]
fn prepare_workspace_asks_for_progress_only_when_it_wants_it() {
    let f: ControllerFrame = round_trip(json!({
        "id": 2, "type": "prepare_workspace", "issue": "ITX-1", "repo": "/r", "baseBranch": "main",
        "branch": "itervox/ITX-1", "hooks": {"timeoutMs": 60000}, "progress": true
    }));
    let ControllerFrame::Request(Request {
        body: RequestBody::PrepareWorkspace(p),
        ..
    }) = f
    else {
        panic!("wrong variant")
    };
    assert!(p.progress);
    // An older controller's request: no key, no progress frames; and false is not written.
    let older: PrepareWorkspace = serde_json::from_value(json!({
        "issue": "ITX-1", "repo": "/r", "baseBranch": "main", "branch": "itervox/ITX-1"
    }))
    .unwrap();
    assert!(!older.progress);
    assert!(
        !serde_json::to_value(&older)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("progress")
    );
}

#[test]
fn unknown_request_type_is_an_error() {
    let r: Result<ControllerFrame, _> = serde_json::from_value(json!({"id": 1, "type": "format_disk"}));
    assert!(r.is_err());
}

#[test]
fn worker_frames() {
    let f: WorkerFrame = round_trip(json!({
        "type": "hello", "protocol": 1, "workerVersion": "0.1.0", "hostname": "b1", "cpus": 2,
        "load1": 0.5, "memFreeBytes": 1024, "workspaceRoot": "/root/.itervox/workspaces",
        "sessions": [{"sessionId": "s-1", "issue": "ITX-1", "status": "running", "pid": 42, "lastSeq": 7,
                      "turn": 1, "startedAt": "2026-12-04T10:00:00Z"}]
    }));
    assert!(matches!(f, WorkerFrame::Hello(h) if h.sessions.len() == 1));

    let f: WorkerFrame = round_trip(json!({"type": "ok", "id": 3, "path": "/w/ITX-1", "created": true, "branch": "b"}));
    let WorkerFrame::Ok(ok) = f else { panic!() };
    let p: PreparedWorkspace = serde_json::from_value(Value::Object(ok.result)).unwrap();
    assert!(p.created);

    round_trip::<WorkerFrame>(
        json!({"type": "error", "id": 3, "code": "hook_failed", "message": "after_create exited 1"}),
    );

    let f: WorkerFrame = round_trip(json!({
        "type": "progress", "id": 3,
        "entry": {"level": "info", "event": "info", "message": "after_create: npm ci", "time": "2026-12-04T10:00:00Z"}
    }));
    let WorkerFrame::Progress(p) = f else {
        panic!("not progress: {f:?}")
    };
    assert_eq!((p.id, p.entry.message.as_str()), (3, "after_create: npm ci"));

    let f: WorkerFrame = round_trip(json!({
        "type": "log", "sessionId": "s-1", "seq": 4,
        "entry": {"level": "info", "event": "action", "message": "cargo test", "tool": "Bash",
                  "time": "2026-12-04T10:00:00Z", "sessionId": "s-1", "seq": 4}
    }));
    let WorkerFrame::Event(ev) = f else { panic!() };
    assert_eq!((ev.session_id(), ev.seq()), ("s-1", 4));

    round_trip::<WorkerFrame>(json!({
        "type": "turn", "sessionId": "s-1", "seq": 5, "turn": 1, "inputTokens": 10, "outputTokens": 20,
        "costUsd": 0.01, "agentSessionRef": "abc", "toolCalls": 2, "resultText": "Done.", "isError": false
    }));
    round_trip::<WorkerFrame>(json!({"type": "input_required", "sessionId": "s-1", "seq": 6, "context": "Which DB?"}));
    let f: WorkerFrame = round_trip(json!({
        "type": "session_exit", "sessionId": "s-1", "seq": 7, "turn": 1, "status": "input_required",
        "exitCode": 0, "branch": "itervox/ITX-1", "rateLimited": false
    }));
    let WorkerFrame::Event(SessionEvent::SessionExit(exit)) = f else {
        panic!()
    };
    assert_eq!(exit.status, ExitStatus::InputRequired);
}

#[test]
fn lease_tokens_are_optional_everywhere() {
    let f: ControllerFrame = round_trip(json!({"id": 7, "type": "ping"}));
    assert_eq!(
        f,
        ControllerFrame::Request(Request {
            id: 7,
            body: RequestBody::Ping(Ping { lease_token: None })
        })
    );
    let f: ControllerFrame = round_trip(json!({"id": 8, "type": "ping", "leaseToken": 42}));
    assert_eq!(
        f,
        ControllerFrame::Request(Request {
            id: 8,
            body: RequestBody::Ping(Ping { lease_token: Some(42) })
        })
    );
    let pong: Pong = round_trip(json!({"load1": 0.5, "cpus": 2, "running": 0, "leaseToken": 42}));
    assert_eq!(pong.lease_token, Some(42));
    let older: Pong = serde_json::from_value(json!({"load1": 0.5, "cpus": 2, "running": 0})).unwrap();
    assert_eq!(older.lease_token, None);
    let hello: WorkerFrame = round_trip(json!({
        "type": "hello", "protocol": 1, "workerVersion": "0.1.0", "hostname": "h", "cpus": 2, "load1": 0.0,
        "memFreeBytes": 1, "workspaceRoot": "/w", "sessions": [], "leaseToken": 7
    }));
    assert!(matches!(hello, WorkerFrame::Hello(h) if h.lease_token == Some(7)));
}

#[test]
fn ok_helper_flattens_result() {
    let f = WorkerFrame::ok(
        9,
        &Pong {
            load1: 0.25,
            cpus: 4,
            running: 1,
            lease_token: None,
        },
    );
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        json!({"type": "ok", "id": 9, "load1": 0.25, "cpus": 4, "running": 1})
    );
    assert_eq!(
        serde_json::to_value(WorkerFrame::ok(1, &Empty {})).unwrap(),
        json!({"type": "ok", "id": 1})
    );
}

#[test]
fn log_entry_omits_absent_keys() {
    let e = IssueLogEntry::new(
        LogLevel::Warn,
        LogEventKind::Warn,
        "rate limited",
        "2026-12-04T10:00:00Z".into(),
    );
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"level": "warn", "event": "warn", "message": "rate limited", "time": "2026-12-04T10:00:00Z"})
    );
    for kind in ["text", "action", "subagent", "pr", "turn", "error", "warn", "info"] {
        let e: IssueLogEntry =
            serde_json::from_value(json!({"level": "info", "event": kind, "message": "", "time": "t"})).unwrap();
        assert_eq!(serde_json::to_value(e.event).unwrap(), json!(kind));
        assert_eq!(e.event.as_str(), kind);
    }
}

#[test]
fn state_snapshot_minimal_and_full() {
    let minimal = json!({
        "generatedAt": "2026-12-04T10:00:00Z", "counts": {"running": 0, "retrying": 0, "paused": 0},
        "running": [], "retrying": [], "paused": [], "maxConcurrentAgents": 10, "maxRetries": 5,
        "maxSwitchesPerIssuePerWindow": 0, "switchWindowHours": 6, "rateLimits": null,
        "history": [], "inputRequired": [], "availableProfiles": [], "profileDefs": {},
        "availableModels": {}, "activeStates": [], "terminalStates": [], "backlogStates": [], "sshHosts": []
    });
    let s: StateSnapshot = round_trip(minimal);
    assert!(s.rate_limits.is_none());

    round_trip::<StateSnapshot>(json!({
        "generatedAt": "2026-12-04T10:00:00Z", "counts": {"running": 1, "retrying": 1, "paused": 1},
        "running": [{"identifier": "ITX-1", "state": "In Progress", "turnCount": 2, "tokens": 30,
                     "inputTokens": 10, "outputTokens": 20, "elapsedMs": 1500, "startedAt": "2026-12-04T09:59:00Z",
                     "sessionId": "s-1", "workerHost": "local", "backend": "claude", "kind": "worker",
                     "lastEvent": "action", "lastMessage": "cargo test"}],
        "retrying": [{"identifier": "ITX-2", "attempt": 2, "dueAt": "2026-12-04T10:00:10Z", "error": "exit 1"}],
        "paused": ["ITX-3"], "maxConcurrentAgents": 10, "maxRetries": 5,
        "maxSwitchesPerIssuePerWindow": 0, "switchWindowHours": 6,
        "rateLimits": {"requestsLimit": 1500, "requestsRemaining": 1400, "requestsReset": "2026-12-04T11:00:00Z"},
        "history": [{"identifier": "ITX-4", "startedAt": "a", "finishedAt": "b", "elapsedMs": 5, "turnCount": 1,
                     "tokens": 3, "inputTokens": 1, "outputTokens": 2, "status": "succeeded"}],
        "pauseReasons": {"ITX-3": "user_cancelled"},
        "inputRequired": [{"identifier": "ITX-5", "sessionId": "s-5", "context": "Which DB?", "queuedAt": "c"}],
        "agentMode": "solo", "availableProfiles": ["fast"],
        "profileDefs": {"fast": {"command": "claude --model x", "backend": "claude"}},
        "availableModels": {"claude": [{"id": "m", "label": "M"}]},
        "activeStates": ["Todo"], "terminalStates": ["Done"], "backlogStates": [],
        "sshHosts": [{"host": "b1", "description": "", "status": "up", "running": 1, "capacity": 2, "latencyMs": 1.5}],
        "dispatchStrategy": "round-robin",
        "totals": {"inputTokens": 1, "outputTokens": 2, "costUsdEstimated": null},
        "configInvalid": {"path": "WORKFLOW.md", "error": "line 3"}
    }));
}

#[test]
fn tracker_issue() {
    let i: TrackerIssue = round_trip(json!({
        "identifier": "ITX-1", "title": "Fix it", "state": "Todo", "description": "body",
        "labels": ["bug"], "priority": 1, "blockedBy": ["ITX-0"],
        "comments": [{"author": "ana", "body": "hi", "createdAt": "2026-12-04T10:00:00Z"}],
        "orchestratorState": "idle", "ineligibleReason": "blocked_by:ITX-0"
    }));
    assert_eq!(i.orchestrator_state, OrchestratorState::Idle);
}

#[test]
fn error_envelope() {
    round_trip::<ErrorEnvelope>(
        json!({"error": {"code": "bad_request", "message": "workers must be a number", "field": "workers"}}),
    );
}
