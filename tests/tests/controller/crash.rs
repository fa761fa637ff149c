//! A controller killed with SIGKILL mid-session: the restarted controller keeps its history, re-attaches
//! to the session that kept running on its host, and stores every log entry exactly once; pending input
//! and pauses survive it.

use itervox_tests::controller::snap;
use itervox_tests::project::IssueSpec;

use crate::{Setup, eventually, journal_log_seqs, s, seqs_by_session, tail};

#[tokio::test]
async fn a_killed_controller_reattaches_and_the_session_finishes_once() {
    let mut t = Setup::start(&[IssueSpec::new("K-1", "Todo", "Quick. [demo:sleep=1]")], &[]).await;
    t.wait("K-1 done", |s| {
        snap::history(s, "K-1")
            .first()
            .is_some_and(|h| h["status"] == "succeeded")
    })
    .await;

    // A long session starts once its file appears in the tracker.
    let spec = IssueSpec::new("K-2", "Todo", "Long. [demo:sleep=15]");
    std::fs::write(
        t.project.issues_dir.join("K-2.md"),
        format!(
            "---\nidentifier: K-2\ntitle: {}\nstate: Todo\ncreated: 2026-12-01T09:00:00Z\n---\n{}\n",
            spec.title, spec.body
        ),
    )
    .unwrap();
    let st = t.wait("K-2 running", |s| snap::running(s, "K-2").is_some()).await;
    let session = s(snap::running(&st, "K-2").unwrap(), "sessionId").to_string();
    let before = eventually("K-2 to have logged agent entries", || async {
        let logs = t.logs("K-2").await;
        (logs.iter().filter(|e| e["seq"].is_u64()).count() >= 3).then_some(logs)
    })
    .await;
    let before_max = before.iter().filter_map(|e| e["seq"].as_u64()).max().unwrap();

    t.ctl.kill9().await;
    t.restart().await;

    // History from before the crash is there at once.
    let st = t.state_now().await;
    let k1 = snap::history(&st, "K-1");
    assert_eq!(k1.len(), 1, "{st:#}");
    assert_eq!(s(k1[0], "status"), "succeeded");

    let st = t
        .wait("K-2 finished after the restart", |s| {
            snap::running(s, "K-2").is_none() && !snap::history(s, "K-2").is_empty()
        })
        .await;
    let hist = snap::history(&st, "K-2");
    assert_eq!(
        hist.len(),
        1,
        "one run, no second attempt: {hist:#?}\n{}",
        tail(&t.ctl.output(), 40)
    );
    assert_eq!(s(hist[0], "status"), "succeeded", "{:#}", hist[0]);
    assert_eq!(s(hist[0], "sessionId"), session);
    assert_eq!(hist[0]["attempt"], 1);
    assert!(snap::retrying(&st, "K-2").is_none());
    t.wait_tracker_state("K-2", "Done").await;
    let sessions = std::fs::read_dir(t.project.workspaces.join(".itervox/sessions"))
        .unwrap()
        .count();
    assert_eq!(sessions, 2, "one session for each issue, none started again");

    // Every entry exactly once, from before and after the restart.
    let logs = t.logs("K-2").await;
    let by = seqs_by_session(&logs);
    assert_eq!(by.keys().collect::<Vec<_>>(), [&session], "{by:?}");
    let seqs = &by[&session];
    assert_eq!(
        seqs,
        &journal_log_seqs(&t.session_dir(&session)),
        "/logs holds the journal's log entries once"
    );
    assert!(
        seqs.iter().any(|q| *q <= before_max) && seqs.iter().any(|q| *q > before_max),
        "{seqs:?}"
    );
    let dispatched = logs
        .iter()
        .filter(|e| s(e, "message").starts_with("Dispatched"))
        .count();
    assert_eq!(dispatched, 1, "dispatched once: {logs:#?}");
}

/// Leases (`ssh.host_lost_after_ms`) are for remote hosts, which can be cut off from the controller; a
/// session on the controller's own machine outlives a controller that stays away far longer than that.
#[tokio::test]
async fn a_local_session_outlives_a_controller_absence_longer_than_the_host_lease() {
    let mut t = Setup::start_with(
        &[IssueSpec::new("K-9", "Todo", "Long. [demo:sleep=40]")],
        &[],
        "ssh:\n  host_lost_after_ms: 1000\n",
    )
    .await;
    let st = t.wait("K-9 running", |s| snap::running(s, "K-9").is_some()).await;
    let session = s(snap::running(&st, "K-9").unwrap(), "sessionId").to_string();
    eventually("K-9 to have logged agent entries", || async {
        let logs = t.logs("K-9").await;
        (logs.iter().filter(|e| e["seq"].is_u64()).count() >= 2).then_some(())
    })
    .await;

    t.ctl.kill9().await;
    // Away for several lease periods: a leased session would have stopped itself by now.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let exit = t.session_dir(&session).join("exit.json");
    assert!(
        !exit.exists(),
        "the local session ended while the controller was away: {}",
        std::fs::read_to_string(&exit).unwrap_or_default()
    );
    t.restart().await;

    let st = t
        .wait("K-9 finished after the restart", |s| {
            snap::running(s, "K-9").is_none() && !snap::history(s, "K-9").is_empty()
        })
        .await;
    let hist = snap::history(&st, "K-9");
    assert_eq!(hist.len(), 1, "one run, no second attempt: {hist:#?}");
    assert_eq!(s(hist[0], "status"), "succeeded", "{:#}", hist[0]);
    assert_eq!(s(hist[0], "sessionId"), session);
}

#[tokio::test]
async fn pending_input_and_pauses_survive_a_killed_controller() {
    let mut t = Setup::start(
        &[
            IssueSpec::new("K-3", "Todo", "Ask first. [demo:needs-input] [demo:sleep=1]"),
            IssueSpec::new("K-4", "Todo", "Long. [demo:sleep=100]"),
        ],
        &[],
    )
    .await;
    let st = t
        .wait("K-3 waiting for input and K-4 running", |s| {
            snap::input_required(s, "K-3").is_some() && snap::running(s, "K-4").is_some()
        })
        .await;
    let question = snap::input_required(&st, "K-3").unwrap().clone();
    let (code, body) = t.api.call("POST", "/issues/K-4/cancel", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    t.wait("K-4 paused", |s| {
        snap::paused(s, "K-4") && snap::running(s, "K-4").is_none()
    })
    .await;

    t.ctl.kill9().await;
    t.restart().await;

    let st = t.state_now().await;
    let again = snap::input_required(&st, "K-3").expect("K-3 still waits for input");
    assert_eq!(again["sessionId"], question["sessionId"]);
    assert_eq!(again["context"], question["context"]);
    assert!(snap::paused(&st, "K-4"), "K-4 still paused: {st:#}");
    assert_eq!(st["pauseReasons"]["K-4"], "user_cancelled");

    let (code, body) = t
        .api
        .call(
            "POST",
            "/issues/K-3/provide-input",
            Some(serde_json::json!({"message": "Grace Hopper"})),
        )
        .await
        .unwrap();
    assert_eq!(code, 202, "{body}");
    let st = t
        .wait("K-3 succeeded", |s| {
            snap::history(s, "K-3")
                .first()
                .is_some_and(|h| h["status"] == "succeeded")
        })
        .await;
    assert_eq!(snap::history(&st, "K-3")[0]["sessionId"], question["sessionId"]);
    t.wait_tracker_state("K-3", "Done").await;
    let notes = std::fs::read_to_string(t.worktree("K-3").join("DEMO_NOTES.md")).expect("note written");
    assert!(notes.contains("answer: Grace Hopper"), "{notes}");
    // K-4 was never dispatched again.
    let st = t.state_now().await;
    assert!(
        snap::paused(&st, "K-4") && snap::running(&st, "K-4").is_none(),
        "{st:#}"
    );
    assert_eq!(snap::history(&st, "K-4").len(), 1);
}
