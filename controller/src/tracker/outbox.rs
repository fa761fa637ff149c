//! The durable tracker write queue. State moves, comments and branch records are enqueued with an
//! idempotency key into SQLite (the `tracker_outbox` table of the controller's database) and applied
//! to the tracker by a flusher, so a tracker outage, a rate limit or a restart delays a write but
//! never loses or doubles it.
//!
//! Rules:
//! - **Idempotent enqueue.** A key is accepted once; enqueueing it again returns the existing entry.
//! - **FIFO per issue.** Only the oldest pending write of an issue is attempted; a failing write
//!   holds back the later writes of its issue (never those of other issues).
//! - **Supersede.** A new state move replaces the same issue's unflushed move (likewise branch
//!   records); comments are never dropped.
//! - **Backoff.** Failures retry after 2 s, 4 s, 8 s … capped at 5 min; a rate limit waits for the
//!   tracker's reset, and no write of any issue is attempted before it. A write the
//!   tracker will never accept (the issue is gone, the tracker cannot do it) is given up and stays
//!   listed for the operator.
//! - **No duplicate comments.** Every comment carries a hidden `<!-- itervox:key:<key> -->`
//!   marker. When an attempt ends with an unknown outcome (timeout, 5xx, or a crash while the
//!   request was in the air, which the table records before each call), the next attempt first asks
//!   the tracker whether a comment with that marker exists.
//! - **Restarts.** Pending writes stay in the table and are retried after reopening.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{SharedTracker, TrackerError};

mod store;
#[cfg(test)]
mod tests;

use store::{Store, Stored};

/// One write to the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerWrite {
    MoveState { state: String },
    Comment { body: String },
    RecordBranch { branch: String },
}

impl TrackerWrite {
    /// The entry kind shown to operators (`update_state`, `comment`, `record_branch`).
    pub fn kind(&self) -> &'static str {
        match self {
            TrackerWrite::MoveState { .. } => "update_state",
            TrackerWrite::Comment { .. } => "comment",
            TrackerWrite::RecordBranch { .. } => "record_branch",
        }
    }

    /// The state a move targets.
    pub fn target_state(&self) -> Option<&str> {
        match self {
            TrackerWrite::MoveState { state } => Some(state),
            _ => None,
        }
    }

    fn payload(&self) -> &str {
        match self {
            TrackerWrite::MoveState { state } => state,
            TrackerWrite::Comment { body } => body,
            TrackerWrite::RecordBranch { branch } => branch,
        }
    }

    fn from_stored(kind: &str, payload: String) -> Self {
        match kind {
            "update_state" => TrackerWrite::MoveState { state: payload },
            "record_branch" => TrackerWrite::RecordBranch { branch: payload },
            _ => TrackerWrite::Comment { body: payload },
        }
    }
}

/// Whether a listed entry is still being tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Pending,
    /// Given up: the tracker will never accept it (`last_error` says why). `retry` revives it.
    Failed,
}

/// A queued write as operators see it (`outboxEntries` in the snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub key: String,
    pub identifier: String,
    pub write: TrackerWrite,
    pub status: EntryStatus,
    /// Failed attempts so far (rate-limit waits are not counted).
    pub attempts: u32,
    pub last_error: Option<String>,
    /// `TrackerError::kind()` of the last failure.
    pub last_error_kind: Option<String>,
    /// Failed at least `OutboxOptions::degraded_after` times.
    pub degraded: bool,
    pub enqueued_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub rate_limited_until: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database {}: {message}", .path.display())]
    Storage { path: PathBuf, message: String },
    #[error("outbox key {key:?} is not usable: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("outbox entry {0} does not exist or is already finished")]
    EntryNotFound(i64),
}

/// Timing of retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxOptions {
    /// Wait after the first failure; doubles per failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Failures after which an entry is flagged `degraded`.
    pub degraded_after: u32,
    /// Finished entries (and their keys) are kept this long, then pruned on open.
    pub keep_finished: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            degraded_after: 5,
            keep_finished: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The wait before the next attempt after `attempts` failures.
pub fn backoff(attempts: u32, options: &OutboxOptions) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    options
        .initial_backoff
        .saturating_mul(1u32 << exponent)
        .min(options.max_backoff)
}

/// The hidden marker a comment carries so that a retry can tell whether it already landed.
pub fn idempotency_marker(key: &str) -> String {
    format!("<!-- itervox:key:{key} -->")
}

/// What one flush pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Writes applied (including comments found already posted).
    pub applied: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Writes given up.
    pub given_up: usize,
    /// Pending writes left.
    pub pending: usize,
}

/// A handle to the queue; clones share it.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tracker: SharedTracker,
    /// Held only for short, synchronous statements; never across an `.await`.
    store: Mutex<Store>,
    options: OutboxOptions,
    /// Wakes the run loop when something was enqueued or retried.
    wake: Notify,
    /// One flush pass at a time (the run loop and `flush_now` may race).
    flushing: tokio::sync::Mutex<()>,
    /// The tracker said it is rate limited until then: no write of any issue is attempted before.
    held_until: Mutex<Option<DateTime<Utc>>>,
}

impl Outbox {
    /// Opens the queue in the database at `path` (created when missing, WAL mode) in front of
    /// `tracker`, with the default timing.
    pub fn open(path: &Path, tracker: SharedTracker) -> Result<Self, OutboxError> {
        Self::open_with(path, tracker, OutboxOptions::default())
    }

    pub fn open_with(path: &Path, tracker: SharedTracker, options: OutboxOptions) -> Result<Self, OutboxError> {
        let store = Store::open(path, options.keep_finished, Utc::now())?;
        Ok(Outbox {
            inner: Arc::new(Inner {
                tracker,
                store: Mutex::new(store),
                options,
                wake: Notify::new(),
                flushing: tokio::sync::Mutex::new(()),
                held_until: Mutex::new(None),
            }),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A poisoned lock only means a panic elsewhere mid-statement; SQLite kept its consistency.
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a write for `identifier` under `key` (letters, digits and `._:/@+-`, no `--`, at most
    /// 200 characters). Returns the entry id; a key seen before returns the existing entry and
    /// queues nothing.
    pub fn enqueue(&self, key: &str, identifier: &str, write: TrackerWrite) -> Result<i64, OutboxError> {
        validate_key(key)?;
        let (id, created) = self.store().insert(key, identifier, &write, Utc::now())?;
        if created {
            tracing::debug!(id, key, identifier, kind = write.kind(), "Tracker write queued");
            self.inner.wake.notify_one();
        }
        Ok(id)
    }

    /// Pending and given-up entries, oldest first.
    pub fn entries(&self) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = self.store().visible()?;
        Ok(rows.into_iter().map(|r| self.view(r)).collect())
    }

    /// The state each issue is moving to, for issues with an unflushed move (the scheduler overlays
    /// these on what the tracker says, so a finished issue is not dispatched again).
    pub fn pending_moves(&self) -> Result<Vec<(String, String)>, OutboxError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.status == EntryStatus::Pending)
            .filter_map(|e| Some((e.identifier.clone(), e.write.target_state()?.to_string())))
            .collect())
    }

    /// `pending`, `done`, `superseded`, `failed` or `discarded` for a key; `None` when unknown.
    pub fn status_of(&self, key: &str) -> Result<Option<String>, OutboxError> {
        self.store().status_of(key)
    }

    /// Makes an entry due now (reviving a given-up one) and wakes the flusher.
    pub fn retry(&self, id: i64) -> Result<(), OutboxError> {
        if !self.store().retry(id, Utc::now())? {
            return Err(OutboxError::EntryNotFound(id));
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Drops an entry without applying it.
    pub fn discard(&self, id: i64) -> Result<(), OutboxError> {
        if self.store().discard(id, Utc::now())? {
            Ok(())
        } else {
            Err(OutboxError::EntryNotFound(id))
        }
    }

    fn view(&self, row: Stored) -> OutboxEntry {
        let mut entry = row.entry;
        entry.degraded = entry.attempts >= self.inner.options.degraded_after;
        entry
    }

    /// Attempts every pending write now, ignoring backoff timers but not rate-limit resets.
    pub async fn flush_now(&self) -> Result<FlushReport, OutboxError> {
        self.flush(true).await
    }

    /// Attempts the writes whose time has come.
    pub async fn flush_due(&self) -> Result<FlushReport, OutboxError> {
        self.flush(false).await
    }

    async fn flush(&self, ignore_backoff: bool) -> Result<FlushReport, OutboxError> {
        let _pass = self.inner.flushing.lock().await;
        let mut report = FlushReport::default();
        let mut held_back: HashSet<String> = HashSet::new();
        loop {
            let now = Utc::now();
            if self.held_until().is_some_and(|t| t > now) {
                break;
            }
            let heads = self.store().heads()?;
            let next = heads.into_iter().find(|h| {
                let e = &h.entry;
                !held_back.contains(&e.identifier)
                    && (ignore_backoff || e.next_attempt_at <= now)
                    && e.rate_limited_until.is_none_or(|t| t <= now)
            });
            let Some(row) = next else { break };
            let id = row.entry.id;
            self.store().mark_in_flight(id)?;
            let result = self.attempt(&row).await;
            let now = Utc::now();
            match result {
                Ok(()) => {
                    self.store().mark_done(id, now)?;
                    report.applied += 1;
                    tracing::debug!(id, identifier = %row.entry.identifier, kind = row.entry.write.kind(), "Tracker write applied");
                }
                Err(e) => {
                    held_back.insert(row.entry.identifier.clone());
                    let stop = self.record_failure(&row, &e, now)?;
                    if matches!(e, TrackerError::NotFound(_) | TrackerError::NotSupported(_)) {
                        report.given_up += 1;
                    } else {
                        report.retried += 1;
                    }
                    if stop {
                        break;
                    }
                }
            }
        }
        report.pending = self
            .entries()?
            .iter()
            .filter(|e| e.status == EntryStatus::Pending)
            .count();
        Ok(report)
    }

    /// One attempt at one write.
    async fn attempt(&self, row: &Stored) -> Result<(), TrackerError> {
        let tracker = &self.inner.tracker;
        let e = &row.entry;
        match &e.write {
            TrackerWrite::MoveState { state } => tracker.move_state(&e.identifier, state).await,
            TrackerWrite::RecordBranch { branch } => tracker.record_branch(&e.identifier, branch).await,
            TrackerWrite::Comment { body } => {
                let marker = idempotency_marker(&e.key);
                if row.outcome_unknown && tracker.has_comment_with_marker(&e.identifier, &marker).await? {
                    tracing::info!(identifier = %e.identifier, key = %e.key, "Comment already posted by an earlier attempt");
                    return Ok(());
                }
                tracker.add_comment(&e.identifier, &format!("{body}\n\n{marker}")).await
            }
        }
    }

    /// Records a failed attempt; returns whether the pass should stop (a rate limit).
    fn record_failure(&self, row: &Stored, error: &TrackerError, now: DateTime<Utc>) -> Result<bool, OutboxError> {
        let e = &row.entry;
        let message = error.to_string();
        let kind = error.kind();
        let store = self.store();
        match error {
            TrackerError::NotFound(_) | TrackerError::NotSupported(_) => {
                tracing::warn!(identifier = %e.identifier, key = %e.key, error = %message, "Giving up a tracker write the tracker will never accept");
                store.mark_failed(e.id, &message, kind, now)?;
                Ok(false)
            }
            TrackerError::RateLimited { reset_at } => {
                let until = reset_at
                    .filter(|t| *t > now)
                    .unwrap_or_else(|| now + chrono_duration(self.inner.options.initial_backoff));
                store.mark_retry(e.id, false, &message, kind, false, until, Some(until), now)?;
                *self.inner.held_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
                Ok(true)
            }
            other => {
                let attempts = e.attempts.saturating_add(1);
                let next = now + chrono_duration(backoff(attempts, &self.inner.options));
                let unknown = matches!(other, TrackerError::Transport(_));
                tracing::warn!(identifier = %e.identifier, key = %e.key, attempts, error = %message, next_attempt_at = %next.to_rfc3339(), "Tracker write failed; will retry");
                store.mark_retry(e.id, true, &message, kind, unknown, next, None, now)?;
                Ok(false)
            }
        }
    }

    fn held_until(&self) -> Option<DateTime<Utc>> {
        *self.inner.held_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the next pending write becomes due; `None` when nothing is pending.
    fn next_due(&self) -> Result<Option<DateTime<Utc>>, OutboxError> {
        let held = self.held_until();
        Ok(self
            .store()
            .heads()?
            .iter()
            .map(|h| {
                let e = &h.entry;
                let due = e
                    .rate_limited_until
                    .map_or(e.next_attempt_at, |r| r.max(e.next_attempt_at));
                held.map_or(due, |t| t.max(due))
            })
            .min())
    }

    /// Flushes due writes until `cancel` fires, sleeping until the next one is due or something is
    /// enqueued. Storage errors are logged and retried after a pause.
    pub async fn run(&self, cancel: CancellationToken) {
        const IDLE_RECHECK: Duration = Duration::from_secs(60);
        loop {
            // Cancel-safe: a pass dropped mid-attempt leaves that entry marked in flight, which the
            // next open (or pass) treats as an unknown outcome.
            let wait = match cancel.run_until_cancelled(self.flush_due()).await {
                None => return,
                Some(Ok(_)) => match self.next_due() {
                    Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default().min(IDLE_RECHECK),
                    Ok(None) => IDLE_RECHECK,
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot read the tracker outbox");
                        IDLE_RECHECK
                    }
                },
                Some(Err(e)) => {
                    tracing::error!(error = %e, "Cannot flush the tracker outbox");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Makes free text (an identifier such as GitHub's `#12`, a branch or session name) usable inside a
/// key: characters outside the key alphabet, `:` (the usual separator), `+` (the escape) and a `-`
/// right after a `-` become `+HH` per UTF-8 byte, so distinct texts stay distinct keys.
pub fn key_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let plain = c.is_ascii_alphanumeric() || "._/@".contains(c) || (c == '-' && !out.ends_with('-'));
        if plain {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("+{b:02X}"));
            }
        }
    }
    out
}

fn validate_key(key: &str) -> Result<(), OutboxError> {
    let reason = if key.is_empty() {
        Some("it is empty")
    } else if key.len() > 200 {
        Some("it is longer than 200 characters")
    } else if !key.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c)) {
        Some("only letters, digits and ._:/@+- are allowed")
    } else if key.contains("--") {
        Some("`--` would end the hidden marker comment")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(OutboxError::InvalidKey {
            key: key.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}
