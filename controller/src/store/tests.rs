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
    StoredLog::new(id, identifier.into(), &entry)
}

fn seqs(s: &Store, identifier: &str, after: u64) -> Vec<u64> {
    s.logs(identifier, after)
        .unwrap()
        .iter()
        .map(|l| l.entry().expect("stored JSON parses").seq.unwrap())
        .collect()
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
    assert_eq!(seqs(&s, "A-1", 0), vec![1, 2, 3]);
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
    assert_eq!(s.max_log_id().unwrap(), 5, "ids removed by clearing are not used again");
    s.append_logs(&[log(6, "A-1", "s1", 3), log(7, "A-1", "s1", 4)])
        .unwrap();
    assert_eq!(
        seqs(&s, "A-1", 0),
        vec![4],
        "a cleared entry of a session is not stored again when its journal is replayed"
    );
}

#[test]
fn long_writes_are_split_into_rows_and_read_back_from_any_id() {
    let mut s = Store::open_in_memory().unwrap();
    // Two issues interleaved in one write, and one issue's run longer than a row holds.
    let mut batch = Vec::new();
    for i in 1..=1500u64 {
        batch.push(log(i, "A-1", "s1", i));
    }
    batch.push(log(1501, "B-1", "s2", 1));
    for i in 1502..=1600u64 {
        batch.push(log(i, "A-1", "s1", i - 1));
    }
    s.append_logs(&batch).unwrap();
    let rows: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM log_rows", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, 5,
        "1500 entries in 3 rows of at most 512, B-1's row, the rest of A-1's"
    );
    let all = s.logs("A-1", 0).unwrap();
    assert_eq!(all.len(), 1599);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert_eq!(seqs(&s, "A-1", 0), (1..=1599).collect::<Vec<u64>>());
    // Single entries are found in their rows; an id of another issue, or one never used, is not.
    assert!(s.has_log("A-1", 1).unwrap() && s.has_log("A-1", 700).unwrap() && s.has_log("A-1", 1600).unwrap());
    assert!(!s.has_log("A-1", 1501).unwrap() && s.has_log("B-1", 1501).unwrap());
    assert!(!s.has_log("A-1", 1601).unwrap() && !s.has_log("C-1", 1).unwrap());
    // From the middle of a row, and from B-1's id (not an A-1 id at all).
    assert_eq!(s.logs("A-1", 700).unwrap().first().map(|l| l.id), Some(701));
    assert_eq!(s.logs("A-1", 1501).unwrap().first().map(|l| l.id), Some(1502));
    assert_eq!(s.logs("B-1", 0).unwrap().len(), 1);
    // Pruning keeps at least the newest 600 and removes whole rows before them.
    s.prune_logs("A-1", 600).unwrap();
    let kept = s.logs("A-1", 0).unwrap();
    assert!(kept.len() >= 600 && kept.len() < 600 + 512, "kept {}", kept.len());
    assert_eq!(kept.last().unwrap().id, 1600);
    assert_eq!(s.pruned_through("A-1").unwrap(), kept[0].id - 1);
    assert_eq!(s.logs("B-1", 0).unwrap().len(), 1, "B-1 is untouched");
}

#[test]
fn a_session_is_stored_exactly_once_across_writes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("itervox.db");
    {
        let mut s = Store::open(&path).unwrap();
        s.append_logs(&[log(1, "A-1", "s1", 1), log(2, "A-1", "s1", 2)])
            .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    // A re-attach after a restart replays the journal from an older seq: only what is new is stored.
    s.append_logs(&[log(3, "A-1", "s1", 1), log(4, "A-1", "s1", 2), log(5, "A-1", "s1", 3)])
        .unwrap();
    assert_eq!(seqs(&s, "A-1", 0), vec![1, 2, 3]);
    assert_eq!(s.max_log_seq("s1").unwrap(), 3);
    assert_eq!(s.max_log_seq("s-other").unwrap(), 0);
    // Entries without a session (the controller's own notes) are always stored.
    let note = StoredLog::new(
        6,
        "A-1".into(),
        &IssueLogEntry::new(LogLevel::Info, LogEventKind::Info, "note".to_string(), "t".into()),
    );
    s.append_logs(&[note.clone(), note]).unwrap();
    assert_eq!(s.logs("A-1", 5).unwrap().len(), 2);
    // A repeat in the middle of a write is left out of its row, and not found by its id.
    s.append_logs(&[
        log(10, "A-1", "s1", 4),
        log(11, "A-1", "s1", 2),
        log(12, "A-1", "s1", 5),
    ])
    .unwrap();
    assert!(s.has_log("A-1", 10).unwrap() && s.has_log("A-1", 12).unwrap());
    assert!(!s.has_log("A-1", 11).unwrap());
}

#[test]
fn entries_stored_one_row_each_by_the_first_schema_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("itervox.db");
    let entry = |seq: u64| {
        let mut e = IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, format!("m{seq}"), "t".into());
        e.session_id = Some("s1".into());
        e.seq = Some(seq);
        serde_json::to_string(&e).unwrap()
    };
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE log_entries (id INTEGER PRIMARY KEY, identifier TEXT NOT NULL, session_id TEXT,
                 seq INTEGER, json TEXT NOT NULL);",
        )
        .unwrap();
        for (id, seq) in [(1u64, 1u64), (2, 2), (4, 3)] {
            c.execute(
                "INSERT INTO log_entries (id, identifier, session_id, seq, json) VALUES (?1, 'A-1', 's1', ?2, ?3)",
                params![id as i64, seq as i64, entry(seq)],
            )
            .unwrap();
        }
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(seqs(&s, "A-1", 0), vec![1, 2, 3]);
    assert_eq!(s.logs("A-1", 2).unwrap().first().map(|l| l.id), Some(4));
    assert_eq!(s.max_log_seq("s1").unwrap(), 3);
    assert_eq!(s.max_log_id().unwrap(), 4);
    let old: i64 = s
        .conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'log_entries'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the old table is gone");
    s.append_logs(&[log(5, "A-1", "s1", 3), log(6, "A-1", "s1", 4)])
        .unwrap();
    assert_eq!(seqs(&s, "A-1", 0), vec![1, 2, 3, 4]);
    drop(s);
    // Opening again finds nothing to migrate.
    let s = Store::open(&path).unwrap();
    assert_eq!(seqs(&s, "A-1", 0), vec![1, 2, 3, 4]);
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
        writer.write(vec![Arc::new(log(seq, "A-1", "s1", seq))]).await;
    }
    writer.flush().await;
    assert_eq!(handle.with(|s| s.logs("A-1", 0).unwrap().len()), 500);
}
