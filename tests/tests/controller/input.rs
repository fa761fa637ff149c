//! Input-required: `[demo:needs-input]` shows in `inputRequired` with the question; `provide-input`
//! resumes the same session on the same host and it succeeds; `dismiss-input` pauses the issue.

use itervox_tests::controller::snap;
use itervox_tests::project::IssueSpec;
use serde_json::json;

use crate::{Setup, s};

#[tokio::test]
async fn provided_input_resumes_the_same_session_which_succeeds() {
    let t = Setup::start(
        &[IssueSpec::new(
            "Q-1",
            "Todo",
            "Ask first. [demo:needs-input] [demo:sleep=1]",
        )],
        &[],
    )
    .await;

    // The asking turn runs for a fraction of a second, so the test does not try to catch it running:
    // the history rows below show that both turns were this one session.
    let st = t
        .wait("Q-1 input required", |s| snap::input_required(s, "Q-1").is_some())
        .await;
    let row = snap::input_required(&st, "Q-1").unwrap().clone();
    assert!(
        s(&row, "context").contains("should the note also say who asked"),
        "{row}"
    );
    assert!(!s(&row, "sessionId").is_empty(), "{row}");
    assert_eq!(s(&row, "workerHost"), "local", "{row}");
    assert!(!s(&row, "queuedAt").is_empty(), "{row}");
    assert!(snap::running(&st, "Q-1").is_none());
    let issue = t.api.get("/issues/Q-1").await.unwrap();
    assert_eq!(s(&issue, "orchestratorState"), "input_required", "{issue}");

    // Input for an issue that is not waiting is refused.
    let (code, body) = t
        .api
        .call("POST", "/issues/NOPE-9/provide-input", Some(json!({"message": "x"})))
        .await
        .unwrap();
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("not_input_required")),
        "{body}"
    );

    let (code, body) = t
        .api
        .call(
            "POST",
            "/issues/Q-1/provide-input",
            Some(json!({"message": "Ada Lovelace"})),
        )
        .await
        .unwrap();
    assert_eq!(code, 202, "{body}");
    assert_eq!(body, json!({"ok": true, "identifier": "Q-1"}));

    let st = t
        .wait("Q-1 succeeded", |s| {
            snap::history(s, "Q-1")
                .first()
                .is_some_and(|h| h["status"] == "succeeded")
        })
        .await;
    assert!(snap::input_required(&st, "Q-1").is_none());
    let hist = snap::history(&st, "Q-1");
    let statuses: Vec<&str> = hist.iter().map(|h| s(h, "status")).collect();
    assert_eq!(statuses, ["succeeded", "input_required"], "{hist:#?}");
    for h in &hist {
        assert_eq!(s(h, "sessionId"), s(&row, "sessionId"), "the same session: {h:#}");
        assert_eq!(s(h, "workerHost"), "local");
    }
    t.wait_tracker_state("Q-1", "Done").await;
    // The answer reached the agent: it is in the note it committed.
    let notes = std::fs::read_to_string(t.worktree("Q-1").join("DEMO_NOTES.md")).expect("note written");
    assert!(notes.contains("answer: Ada Lovelace"), "{notes}");
    // One session folder on the host: nothing was started afresh.
    let sessions: Vec<_> = std::fs::read_dir(t.project.workspaces.join(".itervox/sessions"))
        .unwrap()
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
}

#[tokio::test]
async fn dismissed_input_pauses_the_issue() {
    let t = Setup::start(
        &[IssueSpec::new(
            "Q-2",
            "Todo",
            "Ask first. [demo:needs-input] [demo:sleep=1]",
        )],
        &[],
    )
    .await;
    t.wait("Q-2 input required", |s| snap::input_required(s, "Q-2").is_some())
        .await;

    let (code, body) = t.api.call("POST", "/issues/Q-2/dismiss-input", None).await.unwrap();
    assert_eq!(code, 202, "{body}");
    assert_eq!(body, json!({"ok": true, "identifier": "Q-2"}));
    let st = t
        .wait("Q-2 paused", |s| {
            snap::paused(s, "Q-2") && snap::input_required(s, "Q-2").is_none()
        })
        .await;
    assert_eq!(st["pauseReasons"]["Q-2"], "user_dismissed_input", "{st:#}");
    assert_eq!(st["counts"]["paused"], 1);
    assert!(snap::running(&st, "Q-2").is_none());
    // Dismissing again is refused: it no longer waits for input.
    let (code, body) = t.api.call("POST", "/issues/Q-2/dismiss-input", None).await.unwrap();
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("not_input_required")),
        "{body}"
    );
    // Still paused after a poll: nothing re-dispatches it.
    let (code, _) = t.api.call("POST", "/refresh", None).await.unwrap();
    assert_eq!(code, 202);
    // Give a wrong re-dispatch a few poll cycles to show up.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let st = t.state_now().await;
    assert!(
        snap::paused(&st, "Q-2") && snap::running(&st, "Q-2").is_none(),
        "{st:#}"
    );
}
