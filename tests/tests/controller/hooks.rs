//! Workspace hooks under the real controller: `after_create`, `before_run` and `after_run` run in the
//! issue's worktree with the issue's environment and their output reaches the issue's log through the
//! API; a failing `before_run` fails the attempt, which is retried with the hook named in the error.

use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::project::{IssueSpec, Project};
use serde_json::Value;

use crate::{Setup, eventually, s};

const HOOKS: &str = "hooks:\n  \
    after_create: echo created $ITERVOX_ISSUE_IDENTIFIER in $(basename \"$PWD\")\n  \
    before_run: 'if [ \"$ITERVOX_ISSUE_IDENTIFIER\" = H-2 ]; then echo no build tools here >&2; exit 3; fi; echo ready to run'\n  \
    after_run: echo ran $ITERVOX_ISSUE_IDENTIFIER\n  \
    timeout_ms: 60000\n";

fn messages(logs: &[Value]) -> Vec<String> {
    logs.iter().map(|e| s(e, "message").to_string()).collect()
}

#[tokio::test]
async fn hook_output_reaches_the_issue_log_and_a_failing_before_run_fails_the_attempt() {
    let project = Project::new(
        &[
            IssueSpec::new("H-1", "Todo", "Quick. [demo:sleep=1]"),
            IssueSpec::new("H-2", "Todo", "Quick. [demo:sleep=1]"),
        ],
        "",
        HOOKS,
    );
    let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, &[])
        .await
        .expect("controller starts");
    let api = Api::new(&ctl.api(), None);
    let t = Setup { project, ctl, api };

    t.wait("H-1 succeeded", |s| {
        snap::history(s, "H-1")
            .first()
            .is_some_and(|h| h["status"] == "succeeded")
    })
    .await;
    // after_run runs once the agent has exited; its output follows the session's last entries.
    let logs = eventually("H-1's after_run output in its log", || async {
        let logs = t.logs("H-1").await;
        messages(&logs)
            .iter()
            .any(|m| m == "after_run: ran H-1")
            .then_some(logs)
    })
    .await;
    let msgs = messages(&logs);
    let at = |want: &str| {
        msgs.iter()
            .position(|m| m == want)
            .unwrap_or_else(|| panic!("{want:?} not in H-1's log: {msgs:#?}"))
    };
    let created = at("after_create: created H-1 in H-1");
    let ready = at("before_run: ready to run");
    let ran = at("after_run: ran H-1");
    assert!(created < ready && ready < ran, "hooks in order: {msgs:#?}");
    assert_eq!(
        msgs.iter().filter(|m| m.starts_with("after_create: created")).count(),
        1,
        "after_create runs once, for the new worktree: {msgs:#?}"
    );

    let st = t
        .wait("H-2 waiting for a retry", |s| snap::retrying(s, "H-2").is_some())
        .await;
    let retry = snap::retrying(&st, "H-2").unwrap();
    let err = s(retry, "error");
    assert!(
        err.contains("before_run") && err.contains("no build tools here"),
        "the retry names the hook and quotes its output: {retry:#}"
    );
    let hist = snap::history(&st, "H-2");
    assert_eq!(s(hist[0], "status"), "failed", "{hist:#?}");
    let h2 = eventually("H-2's before_run output in its log", || async {
        let logs = t.logs("H-2").await;
        messages(&logs)
            .iter()
            .any(|m| m == "before_run: no build tools here")
            .then_some(logs)
    })
    .await;
    let agent_entries = |logs: &[Value]| {
        logs.iter()
            .filter(|e| matches!(s(e, "event"), "text" | "action" | "turn"))
            .count()
    };
    assert!(agent_entries(&logs) > 0, "H-1's agent logged its work: {logs:#?}");
    assert_eq!(agent_entries(&h2), 0, "H-2's agent never started: {h2:#?}");
    // Dispatch moved it to the working state (through the tracker write queue); it stays active.
    t.wait_tracker_state("H-2", "In Progress").await;
}

/// The host's entries reach the issue's log while it still prepares the worktree: the host starting on
/// it, then each line a slow `after_create` hook prints, before the hook has finished.
#[tokio::test]
async fn the_hosts_entries_arrive_while_a_slow_after_create_still_runs() {
    // The hook prints its first line, then waits until the test has looked and opens the gate.
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = gate_dir.path().join("gate");
    let project = Project::new(
        &[IssueSpec::new("P-1", "Todo", "Quick. [demo:sleep=1]")],
        "",
        &format!(
            "hooks:\n  after_create: echo warming up; while [ ! -e '{}' ]; do sleep 0.1; done; echo warmed up\n  \
             timeout_ms: 60000\n",
            gate.display()
        ),
    );
    let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, &[])
        .await
        .expect("controller starts");
    let api = Api::new(&ctl.api(), None);
    let t = Setup { project, ctl, api };

    let early = eventually("the hook's first line in P-1's log", || async {
        let msgs = messages(&t.logs("P-1").await);
        msgs.iter().any(|m| m == "after_create: warming up").then_some(msgs)
    })
    .await;
    assert!(
        early.iter().any(|m| m.contains("preparing the worktree of P-1")),
        "{early:#?}"
    );
    assert!(
        !early.iter().any(|m| m == "after_create: warmed up"),
        "the host's entries came only with the end of the hook: {early:#?}"
    );
    std::fs::write(&gate, "").unwrap();
    let logs = eventually("the hook's output in P-1's log", || async {
        let msgs = messages(&t.logs("P-1").await);
        msgs.iter().any(|m| m == "after_create: warmed up").then_some(msgs)
    })
    .await;
    let at = |want: &str| logs.iter().position(|m| m.contains(want)).unwrap();
    assert!(
        at("preparing the worktree of P-1") < at("after_create: warmed up"),
        "{logs:#?}"
    );
    t.wait("P-1 succeeded", |s| {
        snap::history(s, "P-1")
            .first()
            .is_some_and(|h| h["status"] == "succeeded")
    })
    .await;
}
