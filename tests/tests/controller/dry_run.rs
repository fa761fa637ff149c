//! `ITERVOX_DRY_RUN=1`: the scheduler polls and decides, says what it would dispatch, and starts nothing.

use std::time::Duration;

use itervox_tests::controller::snap;
use itervox_tests::project::IssueSpec;

use crate::{Setup, eventually, s};

#[tokio::test]
async fn dry_run_dispatches_nothing() {
    let t = Setup::start(
        &[IssueSpec::new("D-1", "Todo", "Would run. [demo:sleep=1]")],
        &[("ITERVOX_DRY_RUN", "1")],
    )
    .await;
    let st = t.state_now().await;
    assert_eq!(st["dryRun"], true, "the snapshot says dry run: {st:#}");

    // The issue was considered and found eligible, and the log says it would be dispatched.
    let issue = eventually("D-1 to be judged", || async {
        let issues = t.api.get("/issues").await.ok()?;
        issues
            .as_array()?
            .iter()
            .find(|i| i["identifier"] == "D-1" && i["ineligibleReason"] == "dry_run")
            .cloned()
    })
    .await;
    assert_eq!(s(&issue, "orchestratorState"), "idle", "{issue}");
    let logs = t.logs("D-1").await;
    assert!(logs.iter().any(|e| s(e, "message").contains("Dry run")), "{logs:#?}");

    // Several poll cycles later nothing ran and nothing changed.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let st = t.state_now().await;
    assert!(
        snap::running(&st, "D-1").is_none() && snap::history(&st, "D-1").is_empty(),
        "{st:#}"
    );
    assert_eq!(st["counts"]["running"], 0);
    assert_eq!(
        t.project.issue_state("D-1").as_deref(),
        Some("Todo"),
        "the tracker is untouched"
    );
    assert!(!t.worktree("D-1").exists(), "no worktree was created");
    let sessions = std::fs::read_dir(t.project.workspaces.join(".itervox/sessions"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(sessions, 0, "no session was started");
    let logs = t.logs("D-1").await;
    assert!(logs.iter().all(|e| e["seq"].is_null()), "no agent output: {logs:#?}");
    assert_eq!(
        logs.iter().filter(|e| s(e, "message").contains("Dry run")).count(),
        1,
        "the would-dispatch note is not repeated every poll: {logs:#?}"
    );
}
