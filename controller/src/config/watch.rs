//! Hot reload of WORKFLOW.md: a task polls the file's content hash (every second in production) and
//! reports a valid change as [`WatchEvent::Reloaded`] and a broken one as [`WatchEvent::Invalid`]
//! (the caller keeps its last good config and shows `configInvalid`), then `Reloaded` again once the
//! file is fixed. The controller's own writes are not reported: the API notes them on the
//! [`WatchHandle`] (best through [`WatchHandle::apply_edits`], which notes the hash before the file is
//! replaced).
//!
//! A broken content is reported only once it has stayed the same for one more poll, so an editor that
//! truncates and then writes the file does not flash `configInvalid`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::edit::{self, Edit, EditError, EditOutcome};
use super::load::{ConfigError, parse_workflow};
use super::{Workflow, content_hash};

/// How often the file is read in production.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The file changed and loads: the new workflow.
    Reloaded(Workflow),
    /// The file changed and does not load; keep the last good config.
    Invalid(ConfigError),
}

/// Hashes of writes the controller made itself; at most this many are remembered.
const OWN_WRITES_KEPT: usize = 64;

#[derive(Debug, Default)]
struct OwnWrites {
    /// `(new hash, hash of the file the write was based on, if known)`, oldest first.
    entries: VecDeque<(u64, Option<u64>)>,
}

impl OwnWrites {
    fn note(&mut self, new_hash: u64, previous: Option<u64>) {
        if self.entries.len() >= OWN_WRITES_KEPT {
            self.entries.pop_front();
        }
        self.entries.push_back((new_hash, previous));
    }

    fn take(&mut self, hash: u64) -> Option<Option<u64>> {
        let i = self.entries.iter().position(|(h, _)| *h == hash)?;
        self.entries.remove(i).map(|(_, previous)| previous)
    }
}

/// The handle of a running watcher; cheap to clone. The task stops when its token is cancelled or
/// the event receiver is dropped.
#[derive(Debug, Clone)]
pub struct WatchHandle {
    path: PathBuf,
    own_writes: Arc<Mutex<OwnWrites>>,
    last_seen: Arc<AtomicU64>,
}

impl WatchHandle {
    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hash of the content the watcher last loaded, reported or skipped as the controller's own.
    pub fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Acquire)
    }

    /// The file now has content hash `hash` because the controller wrote it: do not report it.
    pub fn note_own_write(&self, hash: u64) {
        self.lock().note(hash, None);
    }

    /// The controller wrote `new_hash` over a file whose hash was `previous_hash`. Not reported when
    /// the watcher had already seen `previous_hash`; otherwise the write carried someone else's change
    /// along and is reported as a reload.
    pub fn note_own_edit(&self, previous_hash: u64, new_hash: u64) {
        self.lock().note(new_hash, Some(previous_hash));
    }

    /// [`edit::apply_edits`] on the watched file, noting the write before the file is replaced.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn apply_edits(&self, edits: &[Edit]) -> Result<EditOutcome, EditError> {
        edit::apply_edits_with(
            &self.path,
            edits,
            &|name| std::env::var(name).ok(),
            &mut |previous, new| self.note_own_edit(previous, new),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OwnWrites> {
        self.own_writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts watching `workflow`'s file, taking its `content_hash` as the content already loaded.
pub fn spawn_watcher(
    workflow: &Workflow,
    interval: Duration,
    cancel: CancellationToken,
) -> (WatchHandle, mpsc::Receiver<WatchEvent>) {
    let (tx, rx) = mpsc::channel(16);
    let handle = WatchHandle {
        path: workflow.path.clone(),
        own_writes: Arc::default(),
        last_seen: Arc::new(AtomicU64::new(workflow.content_hash)),
    };
    let poller = Poller {
        path: workflow.path.clone(),
        last_seen: workflow.content_hash,
        pending_invalid: None,
        own_writes: handle.own_writes.clone(),
        shared_last_seen: handle.last_seen.clone(),
    };
    tokio::spawn(poller.run(interval, cancel, tx));
    (handle, rx)
}

/// Stands for "the file could not be read" in the hash comparisons.
const UNREADABLE: u64 = 0;

struct Poller {
    path: PathBuf,
    /// Hash of the content last loaded or reported.
    last_seen: u64,
    /// A broken content seen once, reported if it is still there at the next poll.
    pending_invalid: Option<u64>,
    own_writes: Arc<Mutex<OwnWrites>>,
    /// `last_seen`, published for the handle.
    shared_last_seen: Arc<AtomicU64>,
}

impl Poller {
    async fn run(mut self, interval: Duration, cancel: CancellationToken, tx: mpsc::Sender<WatchEvent>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tx.closed() => return,
                _ = ticker.tick() => {}
            }
            let read = tokio::fs::read(&self.path).await;
            let event = self.observe(read);
            self.shared_last_seen.store(self.last_seen, Ordering::Release);
            if let Some(event) = event {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    sent = tx.send(event) => if sent.is_err() { return },
                }
            }
        }
    }

    /// Decides what one read of the file means.
    fn observe(&mut self, read: std::io::Result<Vec<u8>>) -> Option<WatchEvent> {
        let hash = match &read {
            Ok(bytes) => content_hash(bytes),
            Err(_) => UNREADABLE,
        };
        if hash == self.last_seen {
            self.pending_invalid = None;
            return None;
        }
        let own = self
            .own_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(hash);
        if let Some(previous) = own
            && previous.is_none_or(|p| p == self.last_seen)
        {
            self.last_seen = hash;
            self.pending_invalid = None;
            return None;
        }
        match self.load(read) {
            Ok(workflow) => {
                self.last_seen = hash;
                self.pending_invalid = None;
                Some(WatchEvent::Reloaded(workflow))
            }
            Err(error) if self.pending_invalid == Some(hash) => {
                self.last_seen = hash;
                self.pending_invalid = None;
                tracing::warn!(%error, "WORKFLOW.md changed and does not load; keeping the last good configuration");
                Some(WatchEvent::Invalid(error))
            }
            Err(_) => {
                self.pending_invalid = Some(hash);
                None
            }
        }
    }

    fn load(&self, read: std::io::Result<Vec<u8>>) -> Result<Workflow, ConfigError> {
        let bytes = read.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Missing {
                path: self.path.clone(),
            },
            _ => ConfigError::Unreadable {
                path: self.path.clone(),
                message: e.to_string(),
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Unreadable {
            path: self.path.clone(),
            message: "not UTF-8 text".into(),
        })?;
        parse_workflow(&self.path, &text, &|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests;
