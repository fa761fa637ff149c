//! The scheduler stops runs the tracker or the clock no longer justifies: an issue moved to a terminal
//! state or out of the active states while its agent runs is stopped and released (not paused, not
//! retried), and an agent silent for longer than `agent.stall_timeout_ms` is stopped as `stalled` and
//! retried with the backoff.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::project::{IssueSpec, Project};

use crate::control::agent_pgid;
use crate::{Setup, eventually, group_alive, s};

/// Rewrites the `state:` line of an issue's tracker file, atomically (temp file and rename), as a person
/// editing the file would.
fn set_tracker_state(t: &Setup, id: &str, state: &str) {
    let text = t.project.issue_text(id);
    assert!(!text.is_empty(), "{id} has a tracker file");
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("state:") {
                format!("state: {state}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let tmp = t.project.issues_dir.join(format!(".{id}.md.tmp"));
    std::fs::write(&tmp, edited).unwrap();
    std::fs::rename(&tmp, t.project.issues_dir.join(format!("{id}.md"))).unwrap();
}

/// The history row of `session`, once there is one.
fn row_of<'a>(st: &'a serde_json::Value, id: &str, session: &str) -> Option<&'a serde_json::Value> {
    snap::history(st, id).into_iter().find(|h| h["sessionId"] == session)
}

#[tokio::test]
async fn issues_moved_out_of_the_active_states_stop_their_agents_and_are_released() {
    // Ten seconds between the demo agent's steps: neither run can finish on its own during the test.
    let t = Setup::start(
        &[
            IssueSpec::new("M-1", "Todo", "Long. [demo:sleep=100]"),
            IssueSpec::new("M-2", "Todo", "Long. [demo:sleep=100]"),
        ],
        &[],
    )
    .await;
    let st = t
        .wait("M-1 and M-2 running", |s| {
            snap::running(s, "M-1").is_some() && snap::running(s, "M-2").is_some()
        })
        .await;
    let first = s(snap::running(&st, "M-1").unwrap(), "sessionId").to_string();
    let second = s(snap::running(&st, "M-2").unwrap(), "sessionId").to_string();
    let pgid1 = agent_pgid(&t, &first).await;
    let pgid2 = agent_pgid(&t, &second).await;
    t.wait_tracker_state("M-1", "In Progress").await;
    t.wait_tracker_state("M-2", "In Progress").await;

    // Someone closes M-1 and sends M-2 back to the backlog while their agents work.
    set_tracker_state(&t, "M-1", "Done");
    set_tracker_state(&t, "M-2", "Backlog");

    let st = t
        .wait("both runs stopped", |s| {
            row_of(s, "M-1", &first).is_some() && row_of(s, "M-2", &second).is_some()
        })
        .await;
    let row1 = row_of(&st, "M-1", &first).unwrap();
    assert_eq!(s(row1, "status"), "cancelled", "{row1:#}");
    assert_eq!(s(row1, "error"), "the issue moved to Done", "{row1:#}");
    let row2 = row_of(&st, "M-2", &second).unwrap();
    assert_eq!(s(row2, "status"), "cancelled", "{row2:#}");
    assert_eq!(
        s(row2, "error"),
        "the issue left the active states (Backlog)",
        "{row2:#}"
    );
    eventually("both agents' process groups to be gone", || async {
        (!group_alive(pgid1) && !group_alive(pgid2)).then_some(())
    })
    .await;

    // Released, not paused and not retried: nothing runs again while the states stay as they are,
    // and the controller did not write its completion state over the person's edit.
    t.api.call("POST", "/refresh", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = t.state_now().await;
    for id in ["M-1", "M-2"] {
        assert!(snap::running(&st, id).is_none(), "{id} runs again: {st:#}");
        assert!(snap::retrying(&st, id).is_none(), "{id} is retried: {st:#}");
        assert!(!snap::paused(&st, id), "{id} is paused: {st:#}");
        assert_eq!(snap::history(&st, id).len(), 1, "{id}: {st:#}");
    }
    assert_eq!(t.project.issue_state("M-1").as_deref(), Some("Done"));
    assert_eq!(t.project.issue_state("M-2").as_deref(), Some("Backlog"));
    let logs = t.logs("M-1").await;
    assert!(
        logs.iter()
            .any(|e| s(e, "message").contains("The issue moved to Done; stopping its agent")),
        "the issue's log says why its agent stopped: {logs:#?}"
    );
}

#[tokio::test]
async fn a_silent_agent_is_stopped_as_stalled_and_retried_after_the_backoff() {
    // The agent waits 20 s between steps; the controller gives up on silence after 8 s (long enough
    // that a stalled test machine still finds the agent's group alive when it looks it up).
    let project = Project::new(
        &[IssueSpec::new("S-1", "Todo", "Slow. [demo:sleep=200]")],
        "  stall_timeout_ms: 8000\n",
        "",
    );
    let started = Utc::now();
    let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, &[])
        .await
        .expect("controller starts");
    let api = Api::new(&ctl.api(), None);
    let t = Setup { project, ctl, api };

    let st = t.wait("S-1 running", |s| snap::running(s, "S-1").is_some()).await;
    let session = s(snap::running(&st, "S-1").unwrap(), "sessionId").to_string();
    let pgid = agent_pgid(&t, &session).await;

    let st = t
        .wait("S-1 stalled and waiting for its retry", |s| {
            row_of(s, "S-1", &session).is_some() && snap::retrying(s, "S-1").is_some()
        })
        .await;
    let seen = Utc::now();
    let row = row_of(&st, "S-1", &session).unwrap();
    assert_eq!(s(row, "status"), "stalled", "{row:#}");
    assert_eq!(s(row, "error"), "no progress within stall_timeout_ms", "{row:#}");
    let retry = snap::retrying(&st, "S-1").unwrap();
    assert_eq!(retry["attempt"], 2, "{retry:#}");
    assert!(s(retry, "error").contains("stalled"), "{retry:#}");
    // The stall is noticed 8 s or more after the start, and the first backoff is 10 s.
    let due: DateTime<Utc> = s(retry, "dueAt").parse().expect("dueAt is RFC 3339");
    let (low, high) = (started + TimeDelta::seconds(17), seen + TimeDelta::seconds(11));
    assert!(low <= due && due <= high, "dueAt {due} within [{low}, {high}]");
    assert!(snap::running(&st, "S-1").is_none(), "{st:#}");
    assert!(!snap::paused(&st, "S-1"), "{st:#}");
    eventually("the stalled agent's process group to be gone", || async {
        (!group_alive(pgid)).then_some(())
    })
    .await;
    let logs = t.logs("S-1").await;
    assert!(
        logs.iter()
            .any(|e| s(e, "message").contains("No progress for too long")),
        "the issue's log says why its agent stopped: {logs:#?}"
    );
}
