//! Settings writes through the API land in WORKFLOW.md: concurrent calls all land, the rest of the file
//! stays byte-for-byte, a person's concurrent edit of other keys is kept, and a broken one is a 409.

use axum::http::StatusCode;

use super::{WORKFLOW, call, code, fixture};
use crate::config::edit::{Edit, apply_edits_with};
use crate::config::load::load_workflow;

/// The prompt body: everything after the closing `---` line.
fn body(text: &str) -> &str {
    let close = text[4..].find("\n---\n").expect("closing ---") + 4 + 5;
    &text[close..]
}

/// Asserts `lines` of the original all appear in `text`, in order.
fn keeps_lines_in_order(original: &str, text: &str, skip: &[&str]) {
    let mut rest = text.lines();
    for line in original.lines().filter(|l| !skip.iter().any(|s| l.contains(s))) {
        assert!(
            rest.by_ref().any(|l| l == line),
            "line {line:?} was lost or moved:\n{text}"
        );
    }
}

/// Polls `/state` until `pred` holds (60 s at most).
async fn wait_state(f: &super::Fixture, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, state, _) = call(f, "GET", "/api/v1/state", "", None).await;
        if pred(&state) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out; last state: {state}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_settings_calls_all_land_and_keep_the_rest_byte_for_byte() {
    let f = fixture(None);
    let calls = [
        ("POST", "/api/v1/settings/workers", r#"{"workers":7}"#),
        ("POST", "/api/v1/settings/agent-mode", r#"{"mode":"teams"}"#),
        (
            "PUT",
            "/api/v1/settings/dispatch-strategy",
            r#"{"strategy":"least-loaded"}"#,
        ),
        ("POST", "/api/v1/settings/workspace/auto-clear", r#"{"enabled":true}"#),
        ("POST", "/api/v1/settings/inline-input", r#"{"enabled":true}"#),
        (
            "PUT",
            "/api/v1/settings/profiles/frontend",
            r#"{"command":"claude","prompt":"UI work"}"#,
        ),
        (
            "PUT",
            "/api/v1/settings/tracker/states",
            r#"{"activeStates":["Todo","In Progress","Review"]}"#,
        ),
    ];
    let answers = futures::future::join_all(calls.iter().map(|(m, u, b)| call(&f, m, u, b, None))).await;
    for ((m, u, _), (st, body, _)) in calls.iter().zip(&answers) {
        assert_eq!(*st, StatusCode::OK, "{m} {u}: {body}");
    }
    let text = f.workflow_text();
    let wf = load_workflow(&f.workflow_path()).unwrap();
    let a = &wf.config.agent;
    assert_eq!(a.max_concurrent_agents, 7);
    assert_eq!(a.agent_mode.as_str(), "teams");
    assert_eq!(a.dispatch_strategy.as_str(), "least-loaded");
    assert!(a.inline_input);
    assert!(wf.config.workspace.auto_clear);
    assert_eq!(a.profiles["frontend"].prompt.as_deref(), Some("UI work"));
    assert!(a.profiles.contains_key("reviewer"), "the existing profile survived");
    assert_eq!(wf.config.tracker.active_states, ["Todo", "In Progress", "Review"]);
    assert_eq!(body(&text), body(WORKFLOW), "the prompt body is byte-for-byte the same");
    keeps_lines_in_order(WORKFLOW, &text, &["max_concurrent_agents:", "active_states:"]);
    assert!(text.contains("  max_concurrent_agents: 7\n"), "{text}");
    // The running configuration is the file's (the snapshot is republished at most every PUBLISH_EVERY).
    wait_state(&f, |s| s["maxConcurrentAgents"] == 7 && s["agentMode"] == "teams").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_between_api_calls_is_kept() {
    let f = fixture(None);
    let (st, _, _) = call(
        &f,
        "POST",
        "/api/v1/settings/agent-mode",
        r#"{"mode":"subagents"}"#,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // A person edits another key and adds a comment; the watcher has not told the scheduler yet.
    let edited = f
        .workflow_text()
        .replace(
            "interval_ms: 3600000 # an hour",
            "interval_ms: 1800000 # half an hour, by hand",
        )
        .replace("agent:\n", "agent:\n  # edited by a person\n");
    std::fs::write(f.workflow_path(), &edited).unwrap();
    let (st, body, _) = call(&f, "POST", "/api/v1/settings/workers", r#"{"delta":2}"#, None).await;
    assert_eq!((st, &body["workers"]), (StatusCode::OK, &serde_json::json!(5)));
    let text = f.workflow_text();
    assert_eq!(
        text,
        edited.replace("max_concurrent_agents: 3", "max_concurrent_agents: 5"),
        "only the API's key changed"
    );
    // The person's edit is adopted with the API's.
    wait_state(&f, |s| {
        s["pollIntervalMs"] == 1_800_000 && s["maxConcurrentAgents"] == 5
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_on_disk_is_a_409_and_stays_untouched() {
    let f = fixture(None);
    let broken = WORKFLOW.replace("max_concurrent_agents: 3", "max_concurrent_agents: [unclosed");
    std::fs::write(f.workflow_path(), &broken).unwrap();
    let (st, body, _) = call(&f, "POST", "/api/v1/settings/workers", r#"{"workers":6}"#, None).await;
    assert_eq!((st, code(&body)), (StatusCode::CONFLICT, "conflict"), "{body}");
    assert_eq!(f.workflow_text(), broken, "the person's file is left for them to fix");
    let (_, state, _) = call(&f, "GET", "/api/v1/state", "", None).await;
    assert_eq!(state["maxConcurrentAgents"], 3);
    // Fixed by hand: the next call lands.
    std::fs::write(f.workflow_path(), WORKFLOW).unwrap();
    let (st, _, _) = call(&f, "POST", "/api/v1/settings/workers", r#"{"workers":6}"#, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        f.workflow_text(),
        WORKFLOW.replace("max_concurrent_agents: 3", "max_concurrent_agents: 6")
    );
}

/// A person saves the file while an API write is between reading it and replacing it (editors take no
/// lock): the person's edit must not be overwritten with the stale copy.
#[test]
fn a_persons_save_racing_an_api_write_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    std::fs::write(&path, WORKFLOW).unwrap();
    let human = WORKFLOW.replace("interval_ms: 3600000", "interval_ms: 60000");
    let mut raced = false;
    let outcome = apply_edits_with(
        &path,
        &[Edit::set(&["agent", "max_concurrent_agents"], 9)],
        &|_| None,
        &mut |_, _| {
            if !raced {
                raced = true;
                std::fs::write(&path, &human).unwrap();
            }
        },
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        human.replace("max_concurrent_agents: 3", "max_concurrent_agents: 9")
    );
    assert_eq!(outcome.workflow.config.polling.interval_ms, 60_000);
    assert_eq!(outcome.workflow.config.agent.max_concurrent_agents, 9);
}
