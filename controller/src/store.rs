//! The controller's durable state: one SQLite database (`<state dir>/itervox.db`) holding run history,
//! session log entries, the retry queue, paused issues, pending input, per-issue overrides and sessions
//! to clean up on hosts. A restart of the controller loses nothing.
//!
//! `Store` is synchronous and owned behind `StoreHandle`'s mutex (short critical sections, never held
//! across an `.await`). Log entries, the one high-volume write, go through a batching writer thread.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

mod log_writer;
mod logs;

pub use log_writer::{LogWriter, MAX_BATCH};
pub use logs::{LogLine, StoredLog};

/// A database failure; the message names the operation.
#[derive(Debug, thiserror::Error)]
#[error("state database: {op}: {source}")]
pub struct StoreError {
    op: &'static str,
    #[source]
    source: rusqlite::Error,
}

trait Ctx<T> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, rusqlite::Error> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError { op, source })
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL,
    title TEXT,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    session_id TEXT NOT NULL,
    workspace TEXT,
    backend TEXT NOT NULL,
    profile TEXT,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    turn_count INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    error TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    agent_ref TEXT,
    pr_url TEXT,
    branch TEXT,
    issue_state TEXT,
    resumed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_by_identifier ON runs(identifier);

CREATE TABLE IF NOT EXISTS retry_queue (
    identifier TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL,
    due_at TEXT NOT NULL,
    error TEXT,
    prefer_host TEXT
);

CREATE TABLE IF NOT EXISTS paused (
    identifier TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_at TEXT NOT NULL,
    host TEXT,
    session_id TEXT,
    agent_ref TEXT,
    backend TEXT
);

CREATE TABLE IF NOT EXISTS input_required (
    identifier TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    host TEXT NOT NULL,
    context TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    backend TEXT,
    profile TEXT,
    attempt INTEGER NOT NULL,
    reply TEXT,
    question_posted INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS overrides (
    identifier TEXT PRIMARY KEY,
    profile TEXT,
    backend TEXT
);

CREATE TABLE IF NOT EXISTS stale_sessions (
    host TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (host, session_id)
);

CREATE TABLE IF NOT EXISTS issue_hosts (
    identifier TEXT PRIMARY KEY,
    host TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS open_prs (
    identifier TEXT PRIMARY KEY,
    url TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Where a run stands. `Running` rows are re-attached after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Stalled,
    InputRequired,
    Lost,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Stalled => "stalled",
            RunState::InputRequired => "input_required",
            RunState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "cancelled" => RunState::Cancelled,
            "stalled" => RunState::Stalled,
            "input_required" => RunState::InputRequired,
            "lost" => RunState::Lost,
            _ => RunState::Failed,
        }
    }
}

/// One run (an attempt of an issue on a host), running or finished.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub identifier: String,
    pub title: Option<String>,
    pub attempt: u32,
    /// `worker` or `reviewer`.
    pub kind: String,
    pub host: String,
    pub session_id: String,
    pub workspace: Option<String>,
    pub backend: String,
    pub profile: Option<String>,
    pub status: RunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub turn_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    pub error: Option<String>,
    /// Highest journal seq whose effect (tokens, turns, outcome) is recorded here.
    pub last_seq: u64,
    pub agent_ref: Option<String>,
    pub pr_url: Option<String>,
    pub branch: Option<String>,
    /// The tracker state the issue had at dispatch.
    pub issue_state: Option<String>,
    /// True when the run continued an existing agent session (input reply, resume after pause).
    pub resumed: bool,
}

/// An issue waiting in the retry queue.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRecord {
    pub identifier: String,
    pub attempt: u32,
    pub due_at: DateTime<Utc>,
    pub error: Option<String>,
    pub prefer_host: Option<String>,
}

/// A paused issue, with what is needed to resume its agent session.
#[derive(Debug, Clone, PartialEq)]
pub struct PausedRecord {
    pub identifier: String,
    pub reason: String,
    pub paused_at: DateTime<Utc>,
    pub host: Option<String>,
    pub session_id: Option<String>,
    pub agent_ref: Option<String>,
    pub backend: Option<String>,
}

/// An issue whose agent asked a question.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    pub identifier: String,
    pub run_id: String,
    pub session_id: String,
    pub host: String,
    pub context: String,
    pub queued_at: DateTime<Utc>,
    pub backend: Option<String>,
    pub profile: Option<String>,
    pub attempt: u32,
    /// The human's answer, once given (kept until the resumed run starts).
    pub reply: Option<String>,
    /// The question was posted as a tracker comment.
    pub question_posted: bool,
}

/// Per-issue profile/backend choice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OverrideRecord {
    pub profile: Option<String>,
    pub backend: Option<String>,
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| DateTime::<Utc>::UNIX_EPOCH)
}

/// Most log entries kept per issue; older ones are pruned.
pub const MAX_LOGS_PER_ISSUE: u64 = 20_000;

/// The database. Synchronous; see `StoreHandle` for shared use.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating when needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).ctx("open")?;
        Store::init(conn)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory().ctx("open")?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .ctx("busy timeout")?;
        // Larger pages for a database that is mostly log rows of tens of kilobytes: fewer pages (and WAL
        // frames, each with its header and checksum) per row. Only a new database takes it.
        conn.pragma_update(None, "page_size", 16384).ctx("page_size")?;
        conn.pragma_update(None, "journal_mode", "WAL").ctx("journal_mode")?;
        conn.pragma_update(None, "synchronous", "NORMAL").ctx("synchronous")?;
        conn.execute_batch(SCHEMA).ctx("schema")?;
        conn.execute_batch(logs::SCHEMA).ctx("log schema")?;
        let mut store = Store { conn };
        store.migrate_log_entries()?;
        store
            .conn
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '2')",
                [],
            )
            .ctx("schema version")?;
        Ok(store)
    }

    /// A transaction that holds the write lock from its start (`BEGIN IMMEDIATE`, waiting through the
    /// busy timeout): other connections write to the same database, and a deferred transaction that
    /// reads first cannot wait for the lock when it then writes.
    fn write_tx(&mut self, op: &'static str) -> Result<rusqlite::Transaction<'_>, StoreError> {
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx(op)
    }

    // ----- runs -----

    pub fn insert_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO runs (run_id, identifier, title, attempt, kind, host, session_id, workspace,
                    backend, profile, status, started_at, finished_at, turn_count, input_tokens, output_tokens,
                    cost_usd, error, last_seq, agent_ref, pr_url, branch, issue_state, resumed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                    ?21, ?22, ?23, ?24)",
                params![
                    r.run_id,
                    r.identifier,
                    r.title,
                    r.attempt,
                    r.kind,
                    r.host,
                    r.session_id,
                    r.workspace,
                    r.backend,
                    r.profile,
                    r.status.as_str(),
                    ts(&r.started_at),
                    r.finished_at.as_ref().map(ts),
                    r.turn_count,
                    r.input_tokens as i64,
                    r.output_tokens as i64,
                    r.cost_usd,
                    r.error,
                    r.last_seq as i64,
                    r.agent_ref,
                    r.pr_url,
                    r.branch,
                    r.issue_state,
                    r.resumed,
                ],
            )
            .ctx("insert run")?;
        Ok(())
    }

    /// Saves a run's whole record (same as insert; rows are keyed by run id).
    pub fn save_run(&self, r: &RunRecord) -> Result<(), StoreError> {
        self.insert_run(r)
    }

    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.conn
            .query_row(&format!("{RUN_SELECT} WHERE run_id = ?1"), [run_id], run_from_row)
            .optional()
            .ctx("read run")
    }

    /// Runs still marked running (to re-attach after a restart).
    pub fn active_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!("{RUN_SELECT} WHERE status = 'running' ORDER BY started_at"))
            .ctx("active runs")?;
        let rows = st.query_map([], run_from_row).ctx("active runs")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("active runs")
    }

    /// Finished runs, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "{RUN_SELECT} WHERE status != 'running' ORDER BY finished_at DESC, started_at DESC LIMIT ?1"
            ))
            .ctx("history")?;
        let rows = st.query_map([limit as i64], run_from_row).ctx("history")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("history")
    }

    /// Token and cost totals over every run.
    pub fn totals(&self) -> Result<(u64, u64, Option<f64>), StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0), SUM(cost_usd) FROM runs",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, Option<f64>>(2)?,
                    ))
                },
            )
            .ctx("totals")
    }

    // ----- retry queue -----

    pub fn set_retry(&self, r: &RetryRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO retry_queue (identifier, attempt, due_at, error, prefer_host) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.identifier, r.attempt, ts(&r.due_at), r.error, r.prefer_host],
            )
            .ctx("set retry")?;
        Ok(())
    }

    pub fn remove_retry(&self, identifier: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM retry_queue WHERE identifier = ?1", [identifier])
            .ctx("remove retry")?;
        Ok(())
    }

    pub fn retries(&self) -> Result<Vec<RetryRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT identifier, attempt, due_at, error, prefer_host FROM retry_queue ORDER BY due_at")
            .ctx("retries")?;
        let rows = st
            .query_map([], |r| {
                Ok(RetryRecord {
                    identifier: r.get(0)?,
                    attempt: r.get(1)?,
                    due_at: parse_ts(&r.get::<_, String>(2)?),
                    error: r.get(3)?,
                    prefer_host: r.get(4)?,
                })
            })
            .ctx("retries")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("retries")
    }

    // ----- paused -----

    pub fn set_paused(&self, p: &PausedRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO paused (identifier, reason, paused_at, host, session_id, agent_ref, backend)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    p.identifier,
                    p.reason,
                    ts(&p.paused_at),
                    p.host,
                    p.session_id,
                    p.agent_ref,
                    p.backend
                ],
            )
            .ctx("set paused")?;
        Ok(())
    }

    pub fn remove_paused(&self, identifier: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM paused WHERE identifier = ?1", [identifier])
            .ctx("remove paused")?;
        Ok(())
    }

    pub fn paused(&self) -> Result<Vec<PausedRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT identifier, reason, paused_at, host, session_id, agent_ref, backend FROM paused ORDER BY paused_at")
            .ctx("paused")?;
        let rows = st
            .query_map([], |r| {
                Ok(PausedRecord {
                    identifier: r.get(0)?,
                    reason: r.get(1)?,
                    paused_at: parse_ts(&r.get::<_, String>(2)?),
                    host: r.get(3)?,
                    session_id: r.get(4)?,
                    agent_ref: r.get(5)?,
                    backend: r.get(6)?,
                })
            })
            .ctx("paused")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("paused")
    }

    // ----- input required -----

    pub fn set_input(&self, i: &InputRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO input_required (identifier, run_id, session_id, host, context, queued_at, backend,
                    profile, attempt, reply, question_posted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    i.identifier,
                    i.run_id,
                    i.session_id,
                    i.host,
                    i.context,
                    ts(&i.queued_at),
                    i.backend,
                    i.profile,
                    i.attempt,
                    i.reply,
                    i.question_posted
                ],
            )
            .ctx("set input")?;
        Ok(())
    }

    pub fn remove_input(&self, identifier: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM input_required WHERE identifier = ?1", [identifier])
            .ctx("remove input")?;
        Ok(())
    }

    pub fn inputs(&self) -> Result<Vec<InputRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT identifier, run_id, session_id, host, context, queued_at, backend, profile, attempt, reply,
                    question_posted FROM input_required ORDER BY queued_at",
            )
            .ctx("inputs")?;
        let rows = st
            .query_map([], |r| {
                Ok(InputRecord {
                    identifier: r.get(0)?,
                    run_id: r.get(1)?,
                    session_id: r.get(2)?,
                    host: r.get(3)?,
                    context: r.get(4)?,
                    queued_at: parse_ts(&r.get::<_, String>(5)?),
                    backend: r.get(6)?,
                    profile: r.get(7)?,
                    attempt: r.get(8)?,
                    reply: r.get(9)?,
                    question_posted: r.get(10)?,
                })
            })
            .ctx("inputs")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("inputs")
    }

    // ----- overrides -----

    pub fn set_override(&self, identifier: &str, o: &OverrideRecord) -> Result<(), StoreError> {
        if o.profile.is_none() && o.backend.is_none() {
            self.conn
                .execute("DELETE FROM overrides WHERE identifier = ?1", [identifier])
                .ctx("clear override")?;
        } else {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO overrides (identifier, profile, backend) VALUES (?1, ?2, ?3)",
                    params![identifier, o.profile, o.backend],
                )
                .ctx("set override")?;
        }
        Ok(())
    }

    pub fn overrides(&self) -> Result<Vec<(String, OverrideRecord)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT identifier, profile, backend FROM overrides ORDER BY identifier")
            .ctx("overrides")?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    OverrideRecord {
                        profile: r.get(1)?,
                        backend: r.get(2)?,
                    },
                ))
            })
            .ctx("overrides")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("overrides")
    }

    // ----- host affinity, stale sessions, open PRs -----

    /// Remembers the host that holds an issue's worktree.
    pub fn set_issue_host(&self, identifier: &str, host: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO issue_hosts (identifier, host) VALUES (?1, ?2)",
                params![identifier, host],
            )
            .ctx("set issue host")?;
        Ok(())
    }

    pub fn issue_hosts(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT identifier, host FROM issue_hosts")
            .ctx("issue hosts")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .ctx("issue hosts")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("issue hosts")
    }

    pub fn remove_issue_host(&self, identifier: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM issue_hosts WHERE identifier = ?1", [identifier])
            .ctx("remove issue host")?;
        Ok(())
    }

    /// Records a session that must be cancelled when its host is reachable again.
    pub fn add_stale_session(&self, host: &str, session_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO stale_sessions (host, session_id) VALUES (?1, ?2)",
                params![host, session_id],
            )
            .ctx("add stale session")?;
        Ok(())
    }

    pub fn stale_sessions(&self, host: &str) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT session_id FROM stale_sessions WHERE host = ?1")
            .ctx("stale sessions")?;
        let rows = st.query_map([host], |r| r.get::<_, String>(0)).ctx("stale sessions")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("stale sessions")
    }

    pub fn remove_stale_session(&self, host: &str, session_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM stale_sessions WHERE host = ?1 AND session_id = ?2",
                params![host, session_id],
            )
            .ctx("remove stale session")?;
        Ok(())
    }

    pub fn set_open_pr(&self, identifier: &str, url: Option<&str>) -> Result<(), StoreError> {
        match url {
            Some(url) => self
                .conn
                .execute(
                    "INSERT OR REPLACE INTO open_prs (identifier, url) VALUES (?1, ?2)",
                    params![identifier, url],
                )
                .ctx("set open pr")?,
            None => self
                .conn
                .execute("DELETE FROM open_prs WHERE identifier = ?1", [identifier])
                .ctx("clear open pr")?,
        };
        Ok(())
    }

    pub fn open_prs(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT identifier, url FROM open_prs")
            .ctx("open prs")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .ctx("open prs")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("open prs")
    }

    // ----- meta -----

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ctx("read meta")
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .ctx("write meta")?;
        Ok(())
    }
}

const RUN_SELECT: &str =
    "SELECT run_id, identifier, title, attempt, kind, host, session_id, workspace, backend, profile,
    status, started_at, finished_at, turn_count, input_tokens, output_tokens, cost_usd, error, last_seq, agent_ref,
    pr_url, branch, issue_state, resumed FROM runs";

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        identifier: r.get(1)?,
        title: r.get(2)?,
        attempt: r.get(3)?,
        kind: r.get(4)?,
        host: r.get(5)?,
        session_id: r.get(6)?,
        workspace: r.get(7)?,
        backend: r.get(8)?,
        profile: r.get(9)?,
        status: RunState::parse(&r.get::<_, String>(10)?),
        started_at: parse_ts(&r.get::<_, String>(11)?),
        finished_at: r.get::<_, Option<String>>(12)?.map(|s| parse_ts(&s)),
        turn_count: r.get(13)?,
        input_tokens: r.get::<_, i64>(14)? as u64,
        output_tokens: r.get::<_, i64>(15)? as u64,
        cost_usd: r.get(16)?,
        error: r.get(17)?,
        last_seq: r.get::<_, i64>(18)? as u64,
        agent_ref: r.get(19)?,
        pr_url: r.get(20)?,
        branch: r.get(21)?,
        issue_state: r.get(22)?,
        resumed: r.get(23)?,
    })
}

/// The store shared by the scheduler, runs and API handlers.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    inner: Arc<Mutex<Store>>,
}

impl StoreHandle {
    pub fn new(store: Store) -> Self {
        StoreHandle {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `f` with the store locked. Keep `f` short; never call it while holding another lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut guard: MutexGuard<'_, Store> = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Like `with`, on a blocking thread, for async callers doing reads of unbounded size.
    pub async fn read<T: Send + 'static>(&self, f: impl FnOnce(&mut Store) -> T + Send + 'static) -> T {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.with(f)).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests;
