//! Store round trips on a real (temporary) SQLite file, including reopening it.

use chrono::{Duration, TimeZone, Utc};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};

use super::*;

fn run(id: &str, identifier: &str, status: RunState) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        identifier: identifier.into(),
        title: Some("t".into()),
        attempt: 1,
        kind: "worker".into(),
        host: "local".into(),
        session_id: format!("s-{id}"),
        workspace: None,
        backend: "claude".into(),
        profile: None,
        status,
        started_at: Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap(),
        finished_at: None,
        turn_count: 0,
        input_tokens: 10,
        output_tokens: 20,
        cost_usd: Some(0.5),
        error: None,
        last_seq: 0,
        agent_ref: None,
        pr_url: None,
        branch: None,
        issue_state: Some("Todo".into()),
        resumed: false,
    }
}

fn log(id: u64, identifier: &str, session: &str, seq: u64) -> StoredLog {
    let mut entry = IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, format!("m{seq}"), "t".into());
    entry.session_id = Some(session.into());
    entry.seq = Some(seq);
    StoredLog::new(id, identifier, entry)
}

#[test]
fn runs_survive_reopen_and_split_into_active_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/itervox.db");
    {
        let s = Store::open(&path).unwrap();
        s.insert_run(&run("r1", "A-1", RunState::Running)).unwrap();
        let mut done = run("r2", "A-2", RunState::Succeeded);
        done.finished_at = Some(done.started_at + Duration::seconds(5));
        s.insert_run(&done).unwrap();
    }
    let s = Store::open(&path).unwrap();
    let active = s.active_runs().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0], run("r1", "A-1", RunState::Running));
    let history = s.history(10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, RunState::Succeeded);
    assert_eq!(s.totals().unwrap(), (20, 40, Some(1.0)));
}

#[test]
fn logs_are_ordered_deduplicated_and_prunable() {
    let mut s = Store::open_in_memory().unwrap();
    s.append_logs(&[log(1, "A-1", "s1", 1), log(2, "A-1", "s1", 2), log(3, "B-1", "s2", 1)])
        .unwrap();
    // The same (session, seq) again is ignored, even under another id.
    s.append_logs(&[log(4, "A-1", "s1", 2), log(5, "A-1", "s1", 3)])
        .unwrap();
    let a: Vec<u64> = s.logs("A-1", 0).unwrap().iter().map(|l| l.entry.seq.unwrap()).collect();
    assert_eq!(a, vec![1, 2, 3]);
    assert_eq!(s.logs("A-1", 2).unwrap().len(), 1);
    assert_eq!(s.max_log_seq("s1").unwrap(), 3);
    assert_eq!(s.max_log_id().unwrap(), 5);
    assert_eq!(s.log_identifiers().unwrap(), vec!["A-1".to_string(), "B-1".to_string()]);
    assert_eq!(s.pruned_through("A-1").unwrap(), 0, "nothing removed yet");
    s.prune_logs("A-1", 1).unwrap();
    assert_eq!(s.logs("A-1", 0).unwrap().len(), 1);
    // A-1's ids 1 and 2 are gone (5 is kept); B-1 lost nothing.
    assert_eq!(s.pruned_through("A-1").unwrap(), 2);
    assert_eq!(s.pruned_through("B-1").unwrap(), 0);
    s.prune_logs("A-1", 1).unwrap();
    assert_eq!(
        s.pruned_through("A-1").unwrap(),
        2,
        "a prune that removes nothing moves nothing"
    );
    s.clear_logs("B-1").unwrap();
    assert_eq!(s.log_identifiers().unwrap(), vec!["A-1".to_string()]);
    assert_eq!(s.pruned_through("B-1").unwrap(), 3);
    s.clear_all_logs().unwrap();
    assert!(s.log_identifiers().unwrap().is_empty());
    assert_eq!(s.pruned_through("A-1").unwrap(), 5);
    assert_eq!(
        s.pruned_through("C-1").unwrap(),
        5,
        "clearing everything counts for every issue"
    );
}

#[test]
fn queues_and_records_round_trip() {
    let s = Store::open_in_memory().unwrap();
    let due = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 10).unwrap();
    let retry = RetryRecord {
        identifier: "A-1".into(),
        attempt: 2,
        due_at: due,
        error: Some("exit 1".into()),
        prefer_host: Some("local".into()),
    };
    s.set_retry(&retry).unwrap();
    assert_eq!(s.retries().unwrap(), vec![retry]);
    s.remove_retry("A-1").unwrap();
    assert!(s.retries().unwrap().is_empty());

    let paused = PausedRecord {
        identifier: "A-2".into(),
        reason: "user_cancelled".into(),
        paused_at: due,
        host: Some("h".into()),
        session_id: Some("s".into()),
        agent_ref: Some("ref".into()),
        backend: Some("claude".into()),
    };
    s.set_paused(&paused).unwrap();
    assert_eq!(s.paused().unwrap(), vec![paused]);

    let input = InputRecord {
        identifier: "A-3".into(),
        run_id: "r".into(),
        session_id: "s".into(),
        host: "h".into(),
        context: "Which DB?".into(),
        queued_at: due,
        backend: None,
        profile: None,
        attempt: 1,
        reply: None,
        question_posted: false,
    };
    s.set_input(&input).unwrap();
    assert_eq!(s.inputs().unwrap(), vec![input]);

    s.set_override(
        "A-4",
        &OverrideRecord {
            profile: Some("fast".into()),
            backend: None,
        },
    )
    .unwrap();
    assert_eq!(s.overrides().unwrap().len(), 1);
    s.set_override("A-4", &OverrideRecord::default()).unwrap();
    assert!(s.overrides().unwrap().is_empty());

    s.add_stale_session("h", "s-old").unwrap();
    s.add_stale_session("h", "s-old").unwrap();
    assert_eq!(s.stale_sessions("h").unwrap(), vec!["s-old".to_string()]);
    s.remove_stale_session("h", "s-old").unwrap();
    assert!(s.stale_sessions("h").unwrap().is_empty());
}

#[tokio::test]
async fn log_writer_batches_and_flushes() {
    let handle = StoreHandle::new(Store::open_in_memory().unwrap());
    let writer = LogWriter::spawn(handle.clone());
    for seq in 1..=500 {
        writer.write(vec![log(seq, "A-1", "s1", seq)]).await;
    }
    writer.flush().await;
    assert_eq!(handle.with(|s| s.logs("A-1", 0).unwrap().len()), 500);
}
