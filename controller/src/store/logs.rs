//! The issue logs in the database: entries are stored as rows of consecutive entries of one issue (one
//! row per issue per write, not one per entry), each session's highest stored journal seq (what makes
//! delivery exactly-once across restarts), and how far pruning or clearing has removed entries.
//!
//! A row's `body` holds its entries as lines `<id> <json>\n`; serialized JSON never holds a raw newline.
//! A row of thousands of entries costs one b-tree insert instead of thousands with their index entries,
//! which is what lets the store keep up with a worker replaying a long journal.

use std::collections::HashMap;
use std::sync::Arc;

use itervox_protocol::IssueLogEntry;
use rusqlite::{OptionalExtension, params};

use super::{Ctx, Store, StoreError};
use crate::hosts::worker_client::ReceivedLog;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS log_rows (
    first_id INTEGER PRIMARY KEY,
    last_id INTEGER NOT NULL,
    identifier TEXT NOT NULL,
    entries INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_rows_by_identifier ON log_rows(identifier, last_id);
-- Per agent session, the highest journal seq whose entry is stored: an entry at or below it is a
-- repeat (a re-attach after a restart) and is not stored again.
CREATE TABLE IF NOT EXISTS log_sessions (
    session_id TEXT PRIMARY KEY,
    max_seq INTEGER NOT NULL
);
-- Per issue ('*' for all of them), the highest log id removed by pruning or clearing: a follower whose
-- cursor is below it has missed entries and is told so.
CREATE TABLE IF NOT EXISTS log_pruned (
    identifier TEXT PRIMARY KEY,
    max_id INTEGER NOT NULL
);
"#;

/// Most entries one row holds; a longer write is split.
const ROW_ENTRIES: usize = 512;

/// A log entry on its way into the store and to live followers: its controller-wide id (the SSE event
/// id), its issue, its place in its session's journal and the entry serialized once.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    pub id: u64,
    pub identifier: Arc<str>,
    pub session_id: Option<Arc<str>>,
    pub seq: Option<u64>,
    /// The entry as stored and served.
    pub json: String,
}

impl StoredLog {
    pub fn new(id: u64, identifier: Arc<str>, entry: &IssueLogEntry) -> StoredLog {
        StoredLog {
            id,
            identifier,
            session_id: entry.session_id.as_deref().map(Arc::from),
            seq: entry.seq,
            json: serde_json::to_string(entry).unwrap_or_default(),
        }
    }

    /// A session's entry as the worker sent it (its JSON already names `session` and its seq).
    pub fn received(identifier: Arc<str>, session: Arc<str>, log: ReceivedLog) -> StoredLog {
        StoredLog {
            id: 0,
            identifier,
            session_id: Some(session),
            seq: Some(log.seq),
            json: log.json,
        }
    }
}

/// A stored entry read back: its id and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub id: u64,
    pub json: String,
}

impl LogLine {
    /// The entry itself (None for a line that no longer parses as one).
    pub fn entry(&self) -> Option<IssueLogEntry> {
        serde_json::from_str(&self.json).ok()
    }
}

impl Store {
    /// Moves entries stored one row each (the first schema) into rows of entries, in one transaction.
    pub(super) fn migrate_log_entries(&mut self) -> Result<(), StoreError> {
        let old: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_entries')",
                [],
                |r| r.get(0),
            )
            .ctx("look for old log table")?;
        if !old {
            return Ok(());
        }
        let tx = self.write_tx("migrate log entries")?;
        tx.execute_batch(
            "INSERT OR IGNORE INTO log_rows (first_id, last_id, identifier, entries, body)
                 SELECT id, id, identifier, 1, id || ' ' || json || char(10) FROM log_entries;
             INSERT OR REPLACE INTO log_sessions (session_id, max_seq)
                 SELECT session_id, MAX(seq) FROM log_entries
                 WHERE session_id IS NOT NULL AND seq IS NOT NULL GROUP BY session_id;
             DROP TABLE log_entries;",
        )
        .ctx("migrate log entries")?;
        tx.commit().ctx("migrate log entries")
    }

    /// Appends entries in one transaction, as one row per run of entries of the same issue; an entry
    /// whose session already has that seq (or a later one) stored is skipped.
    pub fn append_logs<L: std::borrow::Borrow<StoredLog>>(&mut self, logs: &[L]) -> Result<(), StoreError> {
        let tx = self.write_tx("log transaction")?;
        {
            let mut max_seq = tx
                .prepare_cached("SELECT max_seq FROM log_sessions WHERE session_id = ?1")
                .ctx("append logs")?;
            let mut set_seq = tx
                .prepare_cached("INSERT OR REPLACE INTO log_sessions (session_id, max_seq) VALUES (?1, ?2)")
                .ctx("append logs")?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO log_rows (first_id, last_id, identifier, entries, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .ctx("append logs")?;
            // Per session: the highest seq stored, and whether this call raised it.
            let mut sessions: HashMap<&str, (Option<u64>, bool)> = HashMap::new();
            let mut body = String::new();
            let mut i = 0;
            while i < logs.len() {
                let identifier = &logs[i].borrow().identifier;
                let (mut first, mut last, mut n) = (None, 0, 0usize);
                body.clear();
                while let Some(l) = logs.get(i).map(|l| l.borrow())
                    && l.identifier == *identifier
                    && n < ROW_ENTRIES
                {
                    i += 1;
                    if let (Some(session), Some(seq)) = (l.session_id.as_deref(), l.seq) {
                        let known = match sessions.get_mut(session) {
                            Some(known) => known,
                            None => {
                                let stored: Option<i64> = max_seq
                                    .query_row([session], |r| r.get(0))
                                    .optional()
                                    .ctx("append logs")?;
                                sessions.entry(session).or_insert((stored.map(|s| s as u64), false))
                            }
                        };
                        if known.0.is_some_and(|max| seq <= max) {
                            continue;
                        }
                        *known = (Some(seq), true);
                    }
                    body.push_str(itoa::Buffer::new().format(l.id));
                    body.push(' ');
                    body.push_str(&l.json);
                    body.push('\n');
                    first.get_or_insert(l.id);
                    last = l.id;
                    n += 1;
                }
                if let Some(first) = first {
                    insert
                        .execute(params![first as i64, last as i64, identifier.as_ref(), n as i64, body])
                        .ctx("append logs")?;
                }
            }
            for (session, (max, raised)) in sessions {
                if let (Some(max), true) = (max, raised) {
                    set_seq.execute(params![session, max as i64]).ctx("append logs")?;
                }
            }
        }
        tx.commit().ctx("commit logs")
    }

    /// Every stored entry of an issue, oldest first, with ids above `after_id`.
    pub fn logs(&self, identifier: &str, after_id: u64) -> Result<Vec<LogLine>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT body FROM log_rows WHERE identifier = ?1 AND last_id > ?2 ORDER BY first_id")
            .ctx("read logs")?;
        let mut rows = st.query(params![identifier, after_id as i64]).ctx("read logs")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().ctx("read logs")? {
            let body = row.get_ref(0).ctx("read logs")?.as_str().unwrap_or_default();
            for line in body.lines() {
                let Some((id, json)) = line.split_once(' ') else {
                    continue;
                };
                if let Ok(id) = id.parse::<u64>()
                    && id > after_id
                {
                    out.push(LogLine {
                        id,
                        json: json.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Whether entry `id` of an issue is stored (one row read, not the log after it).
    pub fn has_log(&self, identifier: &str, id: u64) -> Result<bool, StoreError> {
        let body: Option<String> = self
            .conn
            .query_row(
                "SELECT body FROM log_rows WHERE identifier = ?1 AND first_id <= ?2 AND last_id >= ?2",
                params![identifier, id as i64],
                |r| r.get(0),
            )
            .optional()
            .ctx("find a log entry")?;
        // A row's ids may skip those its write left out (repeats of a session's seq).
        let prefix = format!("{id} ");
        Ok(body.is_some_and(|b| b.lines().any(|l| l.starts_with(&prefix))))
    }

    /// The highest stored seq of a session (0 when none).
    pub fn max_log_seq(&self, session_id: &str) -> Result<u64, StoreError> {
        self.query_u64(
            "SELECT COALESCE(MAX(max_seq), 0) FROM log_sessions WHERE session_id = ?1",
            [session_id],
            "max log seq",
        )
    }

    /// The highest journal seq of a session whose effect is recorded: the runs' `last_seq` and the
    /// stored log entries (0 when none). The next run of the session follows from the seq after it.
    pub fn session_cursor(&self, session_id: &str) -> Result<u64, StoreError> {
        let runs = self.query_u64(
            "SELECT COALESCE(MAX(last_seq), 0) FROM runs WHERE session_id = ?1",
            [session_id],
            "session cursor",
        )?;
        Ok(runs.max(self.max_log_seq(session_id)?))
    }

    /// The highest log id ever used, stored or since removed (0 when none): new ids go above it, so a
    /// follower's cursor never points at a reused id.
    pub fn max_log_id(&self) -> Result<u64, StoreError> {
        self.query_u64(
            "SELECT MAX((SELECT COALESCE(MAX(last_id), 0) FROM log_rows),
                        (SELECT COALESCE(MAX(max_id), 0) FROM log_pruned))",
            [],
            "max log id",
        )
    }

    pub fn clear_logs(&mut self, identifier: &str) -> Result<(), StoreError> {
        let tx = self.write_tx("clear logs")?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT MAX(last_id) FROM log_rows WHERE identifier = ?1",
                [identifier],
                |r| r.get(0),
            )
            .ctx("clear logs")?;
        tx.execute("DELETE FROM log_rows WHERE identifier = ?1", [identifier])
            .ctx("clear logs")?;
        if let Some(last) = last {
            record_pruned(&tx, identifier, last)?;
        }
        tx.commit().ctx("clear logs")
    }

    pub fn clear_all_logs(&mut self) -> Result<(), StoreError> {
        let tx = self.write_tx("clear all logs")?;
        let last: Option<i64> = tx
            .query_row("SELECT MAX(last_id) FROM log_rows", [], |r| r.get(0))
            .ctx("clear all logs")?;
        tx.execute("DELETE FROM log_rows", []).ctx("clear all logs")?;
        if let Some(last) = last {
            record_pruned(&tx, "*", last)?;
        }
        tx.commit().ctx("clear all logs")
    }

    /// The highest log id of `identifier` that pruning or clearing removed (0 when none was).
    pub fn pruned_through(&self, identifier: &str) -> Result<u64, StoreError> {
        self.query_u64(
            "SELECT COALESCE(MAX(max_id), 0) FROM log_pruned WHERE identifier IN (?1, '*')",
            [identifier],
            "pruned logs",
        )
    }

    /// The one non-negative integer `sql` gives (a `COALESCE`d maximum).
    fn query_u64(&self, sql: &str, params: impl rusqlite::Params, op: &'static str) -> Result<u64, StoreError> {
        self.conn
            .query_row(sql, params, |r| r.get::<_, i64>(0))
            .map(|v| v as u64)
            .ctx(op)
    }

    /// Issues that have log entries, sorted.
    pub fn log_identifiers(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT identifier FROM log_rows ORDER BY identifier")
            .ctx("log identifiers")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).ctx("log identifiers")?;
        rows.collect::<Result<Vec<_>, _>>().ctx("log identifiers")
    }

    /// Keeps at least the newest `keep` entries of an issue, removing whole rows that lie entirely
    /// before them (so up to one row more than `keep` may stay).
    pub fn prune_logs(&mut self, identifier: &str, keep: u64) -> Result<(), StoreError> {
        let tx = self.write_tx("prune logs")?;
        // Newest rows first: the first row reached after `keep` entries and everything older go.
        let cut = {
            let mut st = tx
                .prepare_cached("SELECT last_id, entries FROM log_rows WHERE identifier = ?1 ORDER BY last_id DESC")
                .ctx("prune logs")?;
            let mut rows = st.query([identifier]).ctx("prune logs")?;
            let mut kept = 0u64;
            let mut cut = None;
            while let Some(row) = rows.next().ctx("prune logs")? {
                if kept >= keep {
                    cut = Some(row.get::<_, i64>(0).ctx("prune logs")?);
                    break;
                }
                kept += row.get::<_, i64>(1).ctx("prune logs")? as u64;
            }
            cut
        };
        if let Some(cut) = cut {
            tx.execute(
                "DELETE FROM log_rows WHERE identifier = ?1 AND last_id <= ?2",
                params![identifier, cut],
            )
            .ctx("prune logs")?;
            record_pruned(&tx, identifier, cut)?;
        }
        tx.commit().ctx("prune logs")
    }
}

fn record_pruned(tx: &rusqlite::Transaction<'_>, identifier: &str, max_id: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO log_pruned (identifier, max_id) VALUES (?1, ?2)
         ON CONFLICT(identifier) DO UPDATE SET max_id = MAX(max_id, excluded.max_id)",
        params![identifier, max_id],
    )
    .ctx("record pruned logs")?;
    Ok(())
}
