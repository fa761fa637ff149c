//! The outbox's SQLite table. It lives in the controller's database file beside tables other parts
//! own, so it only ever touches `tracker_outbox` and `tracker_outbox_meta`.
//!
//! A row is one write: `pending` until applied (`done`), replaced by a later write of the same kind
//! for the same issue (`superseded`), given up (`failed`) or dropped by an operator (`discarded`).
//! `in_flight` is set durably before the tracker is called and cleared after, so a write that was in
//! the air when the process died is known to have an unknown outcome when the file is reopened.
//! Times are Unix milliseconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{EntryStatus, OutboxEntry, OutboxError, TrackerWrite};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tracker_outbox (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    key                TEXT    NOT NULL UNIQUE,
    identifier         TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    payload            TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'pending',
    attempts           INTEGER NOT NULL DEFAULT 0,
    in_flight          INTEGER NOT NULL DEFAULT 0,
    outcome_unknown    INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    last_error_kind    TEXT,
    enqueued_at        INTEGER NOT NULL,
    next_attempt_at    INTEGER NOT NULL,
    rate_limited_until INTEGER,
    last_failed_at     INTEGER,
    finished_at        INTEGER
);
CREATE INDEX IF NOT EXISTS tracker_outbox_by_status ON tracker_outbox (status, identifier, id);
CREATE TABLE IF NOT EXISTS tracker_outbox_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

const COLUMNS: &str = "id, key, identifier, kind, payload, status, attempts, outcome_unknown, in_flight, \
                       last_error, last_error_kind, enqueued_at, next_attempt_at, rate_limited_until, last_failed_at";

/// A row as the flusher needs it: the entry plus whether its last attempt's outcome is unknown.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) entry: OutboxEntry,
    /// The last attempt may have been applied (timeout, 5xx, crash mid-request).
    pub(super) outcome_unknown: bool,
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

#[derive(Debug)]
pub(super) struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating) the database, makes the tables, turns interrupted attempts into
    /// unknown-outcome ones and prunes finished rows older than `keep_finished`.
    pub(super) fn open(path: &Path, keep_finished: Duration, now: DateTime<Utc>) -> Result<Self, OutboxError> {
        let err = |e: rusqlite::Error| OutboxError::Storage {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| OutboxError::Storage {
                path: path.to_path_buf(),
                message: format!("cannot create the folder: {e}"),
            })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal_mode = %mode, "The outbox database is not in WAL mode");
        }
        // Every enqueue is a promise to the caller; make it survive a power cut.
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute(
            "INSERT OR IGNORE INTO tracker_outbox_meta (name, value) VALUES ('schema_version', ?1)",
            params![SCHEMA_VERSION.to_string()],
        )
        .map_err(err)?;
        let version: String = conn
            .query_row(
                "SELECT value FROM tracker_outbox_meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if version.parse::<i64>().ok() != Some(SCHEMA_VERSION) {
            return Err(OutboxError::Storage {
                path: path.to_path_buf(),
                message: format!(
                    "tracker_outbox schema version {version} is not the {SCHEMA_VERSION} this build understands"
                ),
            });
        }
        conn.execute(
            "UPDATE tracker_outbox SET in_flight = 0, outcome_unknown = 1 WHERE in_flight = 1",
            [],
        )
        .map_err(err)?;
        let keep_ms = i64::try_from(keep_finished.as_millis()).unwrap_or(i64::MAX);
        conn.execute(
            "DELETE FROM tracker_outbox
             WHERE status IN ('done', 'superseded', 'discarded') AND finished_at < ?1",
            params![ms(now).saturating_sub(keep_ms)],
        )
        .map_err(err)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> OutboxError {
        OutboxError::Storage {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Adds a write unless its key is already known (then returns the existing id and `false`). A
    /// state move or branch record supersedes the same issue's pending ones of that kind.
    pub(super) fn insert(
        &mut self,
        key: &str,
        identifier: &str,
        write: &TrackerWrite,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool), OutboxError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| OutboxError::Storage {
            path: path.clone(),
            message: e.to_string(),
        };
        // IMMEDIATE: take the write lock first (waiting through the busy timeout). A deferred transaction
        // that reads first and then writes cannot wait: when another connection committed meanwhile,
        // SQLite refuses the upgrade at once (`SQLITE_BUSY_SNAPSHOT`) and the write would be lost.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let existing: Option<i64> = tx
            .query_row("SELECT id FROM tracker_outbox WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        if let Some(id) = existing {
            return Ok((id, false));
        }
        if !matches!(write, TrackerWrite::Comment { .. }) {
            tx.execute(
                "UPDATE tracker_outbox SET status = 'superseded', finished_at = ?1
                 WHERE identifier = ?2 AND kind = ?3 AND status = 'pending'",
                params![ms(now), identifier, write.kind()],
            )
            .map_err(err)?;
        }
        tx.execute(
            "INSERT INTO tracker_outbox (key, identifier, kind, payload, enqueued_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![key, identifier, write.kind(), write.payload(), ms(now)],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(err)?;
        Ok((id, true))
    }

    fn read_row(r: &Row<'_>) -> rusqlite::Result<Stored> {
        let kind: String = r.get(3)?;
        let payload: String = r.get(4)?;
        let status: String = r.get(5)?;
        let attempts: i64 = r.get(6)?;
        Ok(Stored {
            entry: OutboxEntry {
                id: r.get(0)?,
                key: r.get(1)?,
                identifier: r.get(2)?,
                write: TrackerWrite::from_stored(&kind, payload),
                status: if status == "failed" {
                    EntryStatus::Failed
                } else {
                    EntryStatus::Pending
                },
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                last_error: r.get(9)?,
                last_error_kind: r.get(10)?,
                degraded: false,
                enqueued_at: from_ms(r.get(11)?),
                next_attempt_at: from_ms(r.get(12)?),
                rate_limited_until: r.get::<_, Option<i64>>(13)?.map(from_ms),
                last_failed_at: r.get::<_, Option<i64>>(14)?.map(from_ms),
            },
            outcome_unknown: r.get::<_, i64>(7)? != 0 || r.get::<_, i64>(8)? != 0,
        })
    }

    fn rows(&self, sql_tail: &str, args: impl rusqlite::Params) -> Result<Vec<Stored>, OutboxError> {
        let sql = format!("SELECT {COLUMNS} FROM tracker_outbox {sql_tail}");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, Self::read_row)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The oldest pending write of each issue (the only one that may be attempted), oldest first.
    pub(super) fn heads(&self) -> Result<Vec<Stored>, OutboxError> {
        self.rows(
            "WHERE id IN (SELECT MIN(id) FROM tracker_outbox WHERE status = 'pending' GROUP BY identifier)
             ORDER BY id",
            [],
        )
    }

    /// Pending and given-up writes, oldest first.
    pub(super) fn visible(&self) -> Result<Vec<Stored>, OutboxError> {
        self.rows("WHERE status IN ('pending', 'failed') ORDER BY id", [])
    }

    pub(super) fn mark_in_flight(&self, id: i64) -> Result<(), OutboxError> {
        self.conn
            .execute("UPDATE tracker_outbox SET in_flight = 1 WHERE id = ?1", params![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub(super) fn mark_done(&self, id: i64, now: DateTime<Utc>) -> Result<(), OutboxError> {
        self.conn
            .execute(
                "UPDATE tracker_outbox SET status = CASE WHEN status = 'pending' THEN 'done' ELSE status END,
                 in_flight = 0, outcome_unknown = 0, finished_at = ?2 WHERE id = ?1",
                params![id, ms(now)],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records a failed attempt: the error, when to try next, and whether the write may have landed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mark_retry(
        &self,
        id: i64,
        count_attempt: bool,
        error: &str,
        kind: &str,
        outcome_unknown: bool,
        next_attempt_at: DateTime<Utc>,
        rate_limited_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        self.conn
            .execute(
                "UPDATE tracker_outbox SET in_flight = 0,
                    attempts = attempts + ?2,
                    outcome_unknown = MAX(outcome_unknown, ?5),
                    last_error = ?3, last_error_kind = ?4,
                    next_attempt_at = ?6, rate_limited_until = ?7, last_failed_at = ?8
                 WHERE id = ?1",
                params![
                    id,
                    i64::from(count_attempt),
                    error,
                    kind,
                    i64::from(outcome_unknown),
                    ms(next_attempt_at),
                    rate_limited_until.map(ms),
                    ms(now)
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Gives a write up (the tracker will never accept it); it stays visible for the operator.
    pub(super) fn mark_failed(&self, id: i64, error: &str, kind: &str, now: DateTime<Utc>) -> Result<(), OutboxError> {
        self.conn
            .execute(
                "UPDATE tracker_outbox SET in_flight = 0, attempts = attempts + 1,
                    status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END,
                    last_error = ?2, last_error_kind = ?3, last_failed_at = ?4
                 WHERE id = ?1",
                params![id, error, kind, ms(now)],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Makes a pending or given-up write due now; `false` when there is no such write.
    pub(super) fn retry(&self, id: i64, now: DateTime<Utc>) -> Result<bool, OutboxError> {
        self.conn
            .execute(
                "UPDATE tracker_outbox SET status = 'pending', next_attempt_at = ?2
                 WHERE id = ?1 AND status IN ('pending', 'failed')",
                params![id, ms(now)],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Drops a pending or given-up write; `false` when there is no such write.
    pub(super) fn discard(&self, id: i64, now: DateTime<Utc>) -> Result<bool, OutboxError> {
        self.conn
            .execute(
                "UPDATE tracker_outbox SET status = 'discarded', finished_at = ?2
                 WHERE id = ?1 AND status IN ('pending', 'failed')",
                params![id, ms(now)],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The status of a write by key (`pending`, `done`, …), for tests and diagnostics.
    pub(super) fn status_of(&self, key: &str) -> Result<Option<String>, OutboxError> {
        self.conn
            .query_row("SELECT status FROM tracker_outbox WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }
}
