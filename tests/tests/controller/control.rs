//! Operator control of a running session: cancel pauses it and kills the agent's process group, resume
//! runs it again to the end; `DELETE /issues/{id}` does what cancel does; terminate releases it without
//! pausing; refusals for the wrong state.

use itervox_tests::controller::snap;
use itervox_tests::project::{IssueSpec, git_output};
use serde_json::{Value, json};

use crate::{Setup, eventually, group_alive, s};

/// Waits until the session's host state names the agent's process group, and returns it.
pub(crate) async fn agent_pgid(t: &Setup, session: &str) -> i32 {
    let path = t.session_dir(session).join("state.json");
    eventually(&format!("the agent's pgid in {}", path.display()), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let pgid = v["pgid"].as_i64()? as i32;
        (pgid > 1 && group_alive(pgid)).then_some(pgid)
    })
    .await
}

#[tokio::test]
async fn cancel_pauses_and_kills_the_agent_and_resume_finishes_it() {
    let t = Setup::start(&[IssueSpec::new("C-1", "Todo", "Long. [demo:sleep=25]")], &[]).await;
    let st = t.wait("C-1 running", |s| snap::running(s, "C-1").is_some()).await;
    let session = s(snap::running(&st, "C-1").unwrap(), "sessionId").to_string();
    let pgid = agent_pgid(&t, &session).await;

    let (code, body) = t.api.call("POST", "/issues/C-1/cancel", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"cancelled": true, "identifier": "C-1"}));
    let st = t
        .wait("C-1 paused", |s| {
            snap::paused(s, "C-1") && snap::running(s, "C-1").is_none()
        })
        .await;
    assert_eq!(st["pauseReasons"]["C-1"], "user_cancelled", "{st:#}");
    let hist = snap::history(&st, "C-1");
    assert_eq!(s(hist[0], "status"), "cancelled", "{hist:#?}");
    eventually("the agent's process group to be gone", || async {
        (!group_alive(pgid)).then_some(())
    })
    .await;
    // Paused stays paused across polls.
    t.api.call("POST", "/refresh", None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let st = t.state_now().await;
    assert!(
        snap::paused(&st, "C-1") && snap::running(&st, "C-1").is_none(),
        "{st:#}"
    );
    // Cancel of an issue that is not running.
    let (code, body) = t.api.call("POST", "/issues/C-1/cancel", None).await.unwrap();
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("not_running")),
        "{body}"
    );

    let (code, body) = t.api.call("POST", "/issues/C-1/resume", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"resumed": true, "identifier": "C-1"}));
    let st = t.wait("C-1 running again", |s| snap::running(s, "C-1").is_some()).await;
    assert!(!snap::paused(&st, "C-1"));
    let st = t
        .wait("C-1 succeeded", |s| {
            snap::history(s, "C-1")
                .first()
                .is_some_and(|h| h["status"] == "succeeded")
        })
        .await;
    let statuses: Vec<&str> = snap::history(&st, "C-1").iter().map(|h| s(h, "status")).collect();
    assert_eq!(statuses, ["succeeded", "cancelled"]);
    let hist = snap::history(&st, "C-1");
    assert_eq!(s(hist[0], "sessionId"), session, "resume continues the paused session");
    assert_eq!(s(hist[0], "workerHost"), "local");
    t.wait_tracker_state("C-1", "Done").await;
    // The resumed session did the interrupted work.
    let log = git_output(&t.worktree("C-1"), &["log", "--format=%an|%s", "main..itervox/C-1"]);
    assert_eq!(
        log.trim(),
        "Itervox Demo Agent|C-1: record the demo agent's note",
        "{log}"
    );
    // Resume of an issue that is not paused.
    let (code, body) = t.api.call("POST", "/issues/C-1/resume", None).await.unwrap();
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("not_paused")),
        "{body}"
    );
}

#[tokio::test]
async fn terminate_releases_without_pausing_and_the_issue_runs_again() {
    let t = Setup::start(&[IssueSpec::new("C-2", "Todo", "Long. [demo:sleep=25]")], &[]).await;
    let st = t.wait("C-2 running", |s| snap::running(s, "C-2").is_some()).await;
    let first = s(snap::running(&st, "C-2").unwrap(), "sessionId").to_string();
    let pgid = agent_pgid(&t, &first).await;

    let (code, body) = t.api.call("POST", "/issues/C-2/terminate", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"terminated": true, "identifier": "C-2"}));
    let st = t
        .wait("C-2's first session stopped", |s| {
            snap::history(s, "C-2").iter().any(|h| h["sessionId"] == first.as_str())
        })
        .await;
    let row = snap::history(&st, "C-2")
        .into_iter()
        .find(|h| h["sessionId"] == first.as_str())
        .unwrap();
    assert_eq!(s(row, "status"), "cancelled", "{row:#}");
    assert!(s(row, "error").contains("terminated"), "{row:#}");
    assert!(!snap::paused(&st, "C-2"), "terminate does not pause: {st:#}");
    eventually("the agent's process group to be gone", || async {
        (!group_alive(pgid)).then_some(())
    })
    .await;

    // The claim is released and the issue is still active, so it is dispatched again: a new session.
    let st = t
        .wait("C-2 dispatched again", |s| {
            snap::running(s, "C-2").is_some_and(|r| r["sessionId"] != first.as_str())
                || snap::history(s, "C-2").len() >= 2
        })
        .await;
    assert!(!snap::paused(&st, "C-2"));
    assert!(
        t.project
            .issue_state("C-2")
            .is_some_and(|s| s == "In Progress" || s == "Todo" || s == "Done")
    );

    // Once nothing is running, paused or waiting, terminate has nothing to act on: 404.
    t.wait("C-2 succeeded", |s| {
        snap::history(s, "C-2")
            .first()
            .is_some_and(|h| h["status"] == "succeeded")
    })
    .await;
    t.wait_tracker_state("C-2", "Done").await;
    let (code, body) = t.api.call("POST", "/issues/C-2/terminate", None).await.unwrap();
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn delete_of_a_running_issue_cancels_it_like_the_cancel_route() {
    let t = Setup::start(&[IssueSpec::new("C-3", "Todo", "Long. [demo:sleep=100]")], &[]).await;
    let st = t.wait("C-3 running", |s| snap::running(s, "C-3").is_some()).await;
    let session = s(snap::running(&st, "C-3").unwrap(), "sessionId").to_string();
    let pgid = agent_pgid(&t, &session).await;

    let (code, body) = t.api.call("DELETE", "/issues/C-3", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"cancelled": true, "identifier": "C-3"}));
    let st = t
        .wait("C-3 paused", |s| {
            snap::paused(s, "C-3") && snap::running(s, "C-3").is_none()
        })
        .await;
    assert_eq!(st["pauseReasons"]["C-3"], "user_cancelled", "{st:#}");
    assert_eq!(s(snap::history(&st, "C-3")[0], "status"), "cancelled");
    eventually("the agent's process group to be gone", || async {
        (!group_alive(pgid)).then_some(())
    })
    .await;
}
