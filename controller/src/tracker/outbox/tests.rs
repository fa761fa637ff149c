//! Tests of the outbox against a real SQLite file and an in-memory tracker that can be scripted to
//! fail before or after applying a write (the fake-server tests live in the `tests` crate).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::tracker::memory::MemoryTracker;
use crate::tracker::{Issue, Tracker};

/// How a scripted write fails.
#[derive(Debug, Clone)]
enum Mode {
    /// Fails without applying.
    Before(TrackerError),
    /// Applies, then reports this error (the response was lost).
    AfterApply(TrackerError),
    /// Applies, then never answers.
    HangAfterApply,
}

/// A memory tracker whose writes can be made to fail, per issue, in order.
#[derive(Debug)]
struct Scripted {
    memory: MemoryTracker,
    script: Mutex<VecDeque<(Option<String>, Mode)>>,
    /// Issues every write to fails (until cleared).
    broken: Mutex<Vec<String>>,
    writes: AtomicUsize,
    marker_checks: AtomicUsize,
}

impl Scripted {
    fn new(identifiers: &[&str]) -> Arc<Self> {
        Arc::new(Scripted {
            memory: MemoryTracker::new(
                identifiers
                    .iter()
                    .map(|id| Issue {
                        id: id.to_string(),
                        identifier: id.to_string(),
                        title: format!("title {id}"),
                        state: "Todo".into(),
                        ..Issue::default()
                    })
                    .collect(),
            ),
            script: Mutex::new(VecDeque::new()),
            broken: Mutex::new(Vec::new()),
            writes: AtomicUsize::new(0),
            marker_checks: AtomicUsize::new(0),
        })
    }

    fn push(&self, identifier: Option<&str>, mode: Mode) {
        self.script
            .lock()
            .unwrap()
            .push_back((identifier.map(str::to_string), mode));
    }

    fn break_issue(&self, identifier: &str, broken: bool) {
        let mut b = self.broken.lock().unwrap();
        b.retain(|i| i != identifier);
        if broken {
            b.push(identifier.to_string());
        }
    }

    fn comments(&self, identifier: &str) -> Vec<String> {
        self.memory
            .get(identifier)
            .map(|i| i.comments.into_iter().map(|c| c.body).collect())
            .unwrap_or_default()
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    async fn write<F>(&self, identifier: &str, apply: F) -> Result<(), TrackerError>
    where
        F: std::future::Future<Output = Result<(), TrackerError>>,
    {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.broken.lock().unwrap().iter().any(|b| b == identifier) {
            return Err(TrackerError::Transport(format!("{identifier} is unreachable")));
        }
        let mode = {
            let mut script = self.script.lock().unwrap();
            let pos = script
                .iter()
                .position(|(id, _)| id.as_deref().is_none_or(|i| i == identifier));
            pos.and_then(|p| script.remove(p)).map(|(_, m)| m)
        };
        match mode {
            None => apply.await,
            Some(Mode::Before(e)) => Err(e),
            Some(Mode::AfterApply(e)) => {
                apply.await?;
                Err(e)
            }
            Some(Mode::HangAfterApply) => {
                apply.await?;
                std::future::pending().await
            }
        }
    }
}

#[async_trait]
impl Tracker for Scripted {
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn fetch_candidates(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        self.memory.fetch_candidates(states).await
    }
    async fn fetch_by_identifiers(&self, ids: &[String]) -> Result<Vec<Issue>, TrackerError> {
        self.memory.fetch_by_identifiers(ids).await
    }
    async fn fetch_issue(&self, identifier: &str) -> Result<Option<Issue>, TrackerError> {
        self.memory.fetch_issue(identifier).await
    }
    async fn move_state(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        self.write(identifier, self.memory.move_state(identifier, state)).await
    }
    async fn add_comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        self.write(identifier, self.memory.add_comment(identifier, body)).await
    }
    async fn record_branch(&self, identifier: &str, branch: &str) -> Result<(), TrackerError> {
        self.write(identifier, self.memory.record_branch(identifier, branch))
            .await
    }
    async fn has_comment_with_marker(&self, identifier: &str, marker: &str) -> Result<bool, TrackerError> {
        self.marker_checks.fetch_add(1, Ordering::SeqCst);
        Ok(self.comments(identifier).iter().any(|c| c.contains(marker)))
    }
}

fn fast() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        degraded_after: 3,
        ..OutboxOptions::default()
    }
}

fn open(dir: &tempfile::TempDir, tracker: Arc<Scripted>) -> Outbox {
    Outbox::open_with(&dir.path().join("state/itervox.db"), tracker, fast()).unwrap()
}

fn move_to(state: &str) -> TrackerWrite {
    TrackerWrite::MoveState { state: state.into() }
}

fn comment(body: &str) -> TrackerWrite {
    TrackerWrite::Comment { body: body.into() }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let o = OutboxOptions::default();
    let secs: Vec<u64> = (1..=10).map(|a| backoff(a, &o).as_secs()).collect();
    assert_eq!(secs, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(backoff(u32::MAX, &o), Duration::from_secs(300));
}

#[tokio::test]
async fn writes_are_applied_in_order_and_keys_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1"]);
    let outbox = open(&dir, t.clone());
    let first = outbox.enqueue("run1:start", "A-1", move_to("In Progress")).unwrap();
    assert_eq!(
        outbox.enqueue("run1:start", "A-1", move_to("Done")).unwrap(),
        first,
        "a known key queues nothing"
    );
    outbox.enqueue("run1:note", "A-1", comment("Working on it")).unwrap();
    outbox
        .enqueue(
            "run1:branch",
            "A-1",
            TrackerWrite::RecordBranch {
                branch: "itervox/A-1".into(),
            },
        )
        .unwrap();
    assert_eq!(outbox.entries().unwrap().len(), 3);

    let report = outbox.flush_now().await.unwrap();
    assert_eq!(
        report,
        FlushReport {
            applied: 3,
            pending: 0,
            ..FlushReport::default()
        }
    );
    let issue = t.memory.get("A-1").unwrap();
    assert_eq!(issue.state, "In Progress");
    assert_eq!(issue.branch_name.as_deref(), Some("itervox/A-1"));
    assert_eq!(
        t.comments("A-1"),
        vec!["Working on it\n\n<!-- itervox:key:run1:note -->".to_string()],
        "a comment carries its hidden key marker"
    );
    assert!(outbox.entries().unwrap().is_empty());
    assert_eq!(outbox.status_of("run1:start").unwrap().as_deref(), Some("done"));
    outbox.enqueue("run1:start", "A-1", move_to("Done")).unwrap();
    assert_eq!(
        outbox.flush_now().await.unwrap().applied,
        0,
        "a finished key is not queued again"
    );
}

#[tokio::test]
async fn a_failing_issue_holds_back_only_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1", "B-1"]);
    let outbox = open(&dir, t.clone());
    t.break_issue("A-1", true);
    outbox.enqueue("a1", "A-1", comment("first")).unwrap();
    outbox.enqueue("a2", "A-1", move_to("Done")).unwrap();
    outbox.enqueue("b1", "B-1", move_to("Done")).unwrap();

    let report = outbox.flush_now().await.unwrap();
    assert_eq!((report.applied, report.retried, report.pending), (1, 1, 2));
    assert_eq!(t.memory.get("B-1").unwrap().state, "Done");
    assert_eq!(
        t.memory.get("A-1").unwrap().state,
        "Todo",
        "the move waits behind the failed comment"
    );
    assert_eq!(t.writes(), 2, "the second write of A-1 was not attempted");
    let entries = outbox.entries().unwrap();
    assert_eq!(entries[0].attempts, 1);
    assert_eq!(entries[0].last_error_kind.as_deref(), Some("outage"));
    assert!(entries[0].next_attempt_at > entries[0].enqueued_at);

    t.break_issue("A-1", false);
    outbox.flush_now().await.unwrap();
    assert_eq!(t.memory.get("A-1").unwrap().state, "Done");
    assert_eq!(t.comments("A-1").len(), 1);
}

#[tokio::test]
async fn a_later_move_supersedes_an_unflushed_one_but_comments_stay() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1"]);
    let outbox = open(&dir, t.clone());
    outbox.enqueue("m1", "A-1", move_to("In Progress")).unwrap();
    outbox.enqueue("c1", "A-1", comment("one")).unwrap();
    outbox.enqueue("m2", "A-1", move_to("Done")).unwrap();
    outbox.enqueue("c2", "A-1", comment("two")).unwrap();
    assert_eq!(
        outbox.pending_moves().unwrap(),
        vec![("A-1".to_string(), "Done".to_string())]
    );

    outbox.flush_now().await.unwrap();
    assert_eq!(t.memory.moves(), vec![("A-1".to_string(), "Done".to_string())]);
    assert_eq!(t.comments("A-1").len(), 2);
    assert_eq!(outbox.status_of("m1").unwrap().as_deref(), Some("superseded"));
    assert!(outbox.pending_moves().unwrap().is_empty());
}

#[tokio::test]
async fn a_comment_whose_response_was_lost_is_not_posted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1"]);
    let outbox = open(&dir, t.clone());
    t.push(None, Mode::AfterApply(TrackerError::Transport("HTTP 502".into())));
    outbox.enqueue("k1", "A-1", comment("Agent needs your input")).unwrap();

    let report = outbox.flush_now().await.unwrap();
    assert_eq!(report.retried, 1);
    assert_eq!(t.comments("A-1").len(), 1, "the server applied it");
    let report = outbox.flush_now().await.unwrap();
    assert_eq!(report.applied, 1);
    assert_eq!(
        t.comments("A-1").len(),
        1,
        "the retry found the marker and did not post again"
    );
    assert_eq!(t.marker_checks.load(Ordering::SeqCst), 1);

    // A failure the tracker reports before applying does not need the check.
    t.push(None, Mode::Before(TrackerError::Malformed("422".into())));
    outbox.enqueue("k2", "A-1", comment("second")).unwrap();
    outbox.flush_now().await.unwrap();
    outbox.flush_now().await.unwrap();
    assert_eq!(t.comments("A-1").len(), 2);
    assert_eq!(t.marker_checks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pending_writes_survive_a_restart_and_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1", "B-1"]);
    {
        let outbox = open(&dir, t.clone());
        t.break_issue("A-1", true);
        outbox.enqueue("a-move", "A-1", move_to("Done")).unwrap();
        outbox.enqueue("b-note", "B-1", comment("hello")).unwrap();
        // The comment's request goes out, lands, and the process dies before the answer.
        t.push(Some("B-1"), Mode::HangAfterApply);
        tokio::select! {
            _ = outbox.flush_now() => panic!("the pass should hang on the unanswered request"),
            () = wait_until("the comment to land", || t.comments("B-1").len() == 1) => {}
        }
    }
    assert_eq!(t.comments("B-1").len(), 1);

    t.break_issue("A-1", false);
    let outbox = open(&dir, t.clone());
    let entries = outbox.entries().unwrap();
    assert_eq!(entries.len(), 2, "both writes are still queued after reopening");
    assert_eq!(entries[0].identifier, "A-1");
    assert_eq!(entries[0].attempts, 1);

    let report = outbox.flush_now().await.unwrap();
    assert_eq!(report.applied, 2);
    assert_eq!(t.memory.get("A-1").unwrap().state, "Done");
    assert_eq!(
        t.comments("B-1").len(),
        1,
        "the interrupted comment was found, not re-posted"
    );
    assert_eq!(t.marker_checks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rate_limit_pauses_every_write_until_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1", "B-1"]);
    let outbox = open(&dir, t.clone());
    // Far enough out that a stalled machine still records the failure before the reset.
    let reset = Utc::now() + chrono::Duration::seconds(3);
    t.push(None, Mode::Before(TrackerError::RateLimited { reset_at: Some(reset) }));
    outbox.enqueue("a", "A-1", move_to("Done")).unwrap();
    outbox.enqueue("b", "B-1", move_to("Done")).unwrap();

    let report = outbox.flush_now().await.unwrap();
    assert_eq!((report.applied, report.retried), (0, 1));
    assert_eq!(t.writes(), 1, "the pass stops at the rate limit");
    let entries = outbox.entries().unwrap();
    assert_eq!(
        entries[0].rate_limited_until,
        Some(DateTime::from_timestamp_millis(reset.timestamp_millis()).unwrap())
    );
    assert_eq!(entries[0].attempts, 0, "waiting for a rate limit is not a failure");

    outbox.flush_now().await.unwrap();
    // Only meaningful when that pass ended before the reset (a stall may have carried it past).
    if Utc::now() < reset {
        assert_eq!(t.writes(), 1, "nothing is attempted for that issue before the reset");
    }
    wait_until("the reset", || Utc::now() > reset).await;
    let report = outbox.flush_now().await.unwrap();
    assert_eq!(report.applied, 2);
}

#[tokio::test]
async fn writes_the_tracker_refuses_for_good_are_given_up_and_can_be_revived() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1"]);
    let outbox = open(&dir, t.clone());
    let gone = outbox.enqueue("gone", "Z-9", move_to("Done")).unwrap();
    let report = outbox.flush_now().await.unwrap();
    assert_eq!((report.given_up, report.pending), (1, 0));
    let entries = outbox.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, EntryStatus::Failed);
    assert_eq!(entries[0].last_error_kind.as_deref(), Some("not_found"));

    outbox.retry(gone).unwrap();
    assert_eq!(outbox.entries().unwrap()[0].status, EntryStatus::Pending);
    outbox.flush_now().await.unwrap();
    outbox.discard(gone).unwrap();
    assert!(outbox.entries().unwrap().is_empty());
    assert_eq!(outbox.discard(gone), Err(OutboxError::EntryNotFound(gone)));
    assert_eq!(outbox.retry(424242), Err(OutboxError::EntryNotFound(424242)));
}

#[tokio::test]
async fn repeated_failures_back_off_and_flag_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1"]);
    // A first wait far longer than any pause a loaded machine can put between the two `flush_due`
    // calls below (with `fast()`'s 20 ms the second call was sometimes already past it).
    let options = OutboxOptions {
        initial_backoff: Duration::from_secs(60),
        max_backoff: Duration::from_secs(600),
        ..fast()
    };
    let outbox = Outbox::open_with(&dir.path().join("state/itervox.db"), t.clone(), options).unwrap();
    t.break_issue("A-1", true);
    outbox.enqueue("k", "A-1", move_to("Done")).unwrap();
    outbox.flush_due().await.unwrap();
    let after_one = outbox.entries().unwrap()[0].clone();
    outbox.flush_due().await.unwrap();
    assert_eq!(t.writes(), 1, "a write is not retried before its backoff ends");
    for _ in 0..2 {
        outbox.flush_now().await.unwrap();
    }
    let after_three = outbox.entries().unwrap()[0].clone();
    assert_eq!(after_three.attempts, 3);
    assert!(after_three.degraded);
    assert!(!after_one.degraded);
    let gap = |e: &OutboxEntry| e.next_attempt_at - e.last_failed_at.unwrap();
    assert!(gap(&after_three) > gap(&after_one), "the wait grows");
}

#[tokio::test]
async fn the_run_loop_flushes_what_is_enqueued_until_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let t = Scripted::new(&["A-1"]);
    let outbox = open(&dir, t.clone());
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let outbox = outbox.clone();
        let cancel = cancel.clone();
        async move { outbox.run(cancel).await }
    });
    t.push(None, Mode::Before(TrackerError::Transport("blip".into())));
    outbox.enqueue("k", "A-1", move_to("Done")).unwrap();
    wait_until("the move to be applied after one retry", || {
        t.memory.get("A-1").is_some_and(|i| i.state == "Done")
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn keys_that_would_break_the_marker_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir, Scripted::new(&[]));
    for bad in ["", "a b", "x-->y", "emoji🙂", &"k".repeat(201)] {
        assert!(
            matches!(
                outbox.enqueue(bad, "A-1", move_to("Done")),
                Err(OutboxError::InvalidKey { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(outbox.enqueue("run-1f2e:input@3/a+b.c", "A-1", move_to("Done")).is_ok());
}

#[test]
fn key_parts_make_any_identifier_a_valid_distinct_key() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir, Scripted::new(&[]));
    let texts = [
        "#12",
        "ENG-7",
        "octo/widgets#3",
        "a--b",
        "a-+2D",
        "x:y",
        "naïve branch",
        "_12",
        "+23",
    ];
    let parts: Vec<String> = texts.iter().map(|t| key_part(t)).collect();
    assert_eq!(parts[0], "+2312");
    assert_eq!(parts[1], "ENG-7", "Linear identifiers are kept as they are");
    for (text, part) in texts.iter().zip(&parts) {
        assert!(
            outbox.enqueue(&format!("move:{part}:1"), text, move_to("Done")).is_ok(),
            "{text:?} -> {part:?}"
        );
    }
    let distinct: std::collections::HashSet<&String> = parts.iter().collect();
    assert_eq!(distinct.len(), texts.len(), "{parts:?}");
}

#[test]
fn the_table_lives_beside_other_tables_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("itervox.db");
    {
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch(
                "CREATE TABLE runs (id INTEGER PRIMARY KEY, note TEXT); INSERT INTO runs (note) VALUES ('kept');",
            )
            .unwrap();
    }
    let outbox = Outbox::open_with(&path, Scripted::new(&["A-1"]), fast()).unwrap();
    outbox.enqueue("k", "A-1", move_to("Done")).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let note: String = conn.query_row("SELECT note FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(note, "kept");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tracker_outbox%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, vec!["tracker_outbox", "tracker_outbox_meta"]);
}

/// The controller's other connections (the run store, the log writer) commit to the same database all
/// the time; an enqueue racing them waits for the write lock instead of failing (a deferred transaction
/// that reads first cannot wait: SQLite answers `SQLITE_BUSY_SNAPSHOT` at once).
#[test]
fn enqueue_waits_for_writers_on_other_connections() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("itervox.db");
    let outbox = Outbox::open_with(&path, Scripted::new(&["A-1"]), fast()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (path, stop, commits) = (path.clone(), stop.clone(), commits.clone());
        std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            conn.execute_batch("CREATE TABLE IF NOT EXISTS churn (x INTEGER)")
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                // Like the controller's own writers: the write lock first.
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                for i in 0..50 {
                    tx.execute("INSERT INTO churn (x) VALUES (?1)", [i]).unwrap();
                }
                tx.commit().unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    while commits.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    // Enqueue until the other connection has committed many times in between (however the two
    // threads happen to be scheduled on a busy machine).
    let before = commits.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut failures = Vec::new();
    let mut n = 0;
    while n < 1000 || (commits.load(Ordering::Relaxed) < before + 10 && std::time::Instant::now() < deadline) {
        if let Err(e) = outbox.enqueue(&format!("move:A-1:{n}"), "A-1", move_to("Done")) {
            failures.push(e.to_string());
        }
        n += 1;
        // Both sides pause between writes, as the controller's do, so neither starves the other.
        std::thread::sleep(Duration::from_micros(100));
    }
    let during = commits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        during >= 10,
        "the other connection kept writing while the enqueues ran ({during} commits)"
    );
    assert!(
        failures.is_empty(),
        "{} of {n} enqueues failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}
