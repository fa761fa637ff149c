//! Wake-ups for journal followers: one inotify watcher (through `notify`) for the whole serve process,
//! watching each followed session folder once; followers also poll, so a missing or failed watcher
//! only makes them slower.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::watch;

#[derive(Default)]
struct Inner {
    /// Serialises watch/unwatch with the bookkeeping (never held by the event callback).
    ops: Mutex<Option<RecommendedWatcher>>,
    /// Followed folders: a change counter and how many followers use it.
    dirs: Mutex<HashMap<PathBuf, (watch::Sender<u64>, usize)>>,
}

/// The shared watcher.
#[derive(Clone)]
pub struct JournalWatch {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JournalWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWatch")
            .field("watching", &self.is_watching())
            .finish()
    }
}

/// One follower's interest in one folder; dropping it unwatches the folder when nobody else follows it.
pub struct Subscription {
    rx: watch::Receiver<u64>,
    dir: PathBuf,
    inner: Arc<Inner>,
}

impl JournalWatch {
    /// Starts the watcher; without inotify it still works, by polling.
    pub fn new() -> JournalWatch {
        let inner = Arc::new(Inner::default());
        let weak = Arc::downgrade(&inner);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let (Ok(event), Some(inner)) = (res, weak.upgrade()) else {
                return;
            };
            let dirs = inner.dirs.lock().unwrap_or_else(|p| p.into_inner());
            for path in &event.paths {
                let key = if dirs.contains_key(path.as_path()) {
                    Some(path.as_path())
                } else {
                    path.parent()
                };
                if let Some((tx, _)) = key.and_then(|k| dirs.get(k)) {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        });
        match watcher {
            Ok(w) => *inner.ops.lock().unwrap_or_else(|p| p.into_inner()) = Some(w),
            Err(e) => tracing::warn!(error = %e, "No inotify watcher; journal followers will poll."),
        }
        JournalWatch { inner }
    }

    /// True when changes are pushed (not only polled).
    pub fn is_watching(&self) -> bool {
        self.inner.ops.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Follows changes in `dir`.
    pub fn subscribe(&self, dir: &Path) -> Subscription {
        let mut ops = self.inner.ops.lock().unwrap_or_else(|p| p.into_inner());
        let (rx, first) = {
            let mut dirs = self.inner.dirs.lock().unwrap_or_else(|p| p.into_inner());
            let entry = dirs
                .entry(dir.to_path_buf())
                .or_insert_with(|| (watch::channel(0).0, 0));
            entry.1 += 1;
            (entry.0.subscribe(), entry.1 == 1)
        };
        if first
            && let Some(w) = ops.as_mut()
            && let Err(e) = w.watch(dir, RecursiveMode::NonRecursive)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "Cannot watch a session folder; polling it.");
        }
        Subscription {
            rx,
            dir: dir.to_path_buf(),
            inner: self.inner.clone(),
        }
    }
}

impl Default for JournalWatch {
    fn default() -> Self {
        JournalWatch::new()
    }
}

impl Subscription {
    /// Marks the current state seen; a later change wakes [`changed`](Self::changed).
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits for a change since the last [`mark_seen`](Self::mark_seen). Cancel-safe.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut ops = self.inner.ops.lock().unwrap_or_else(|p| p.into_inner());
        let last = {
            let mut dirs = self.inner.dirs.lock().unwrap_or_else(|p| p.into_inner());
            match dirs.get_mut(&self.dir) {
                Some(entry) if entry.1 > 1 => {
                    entry.1 -= 1;
                    false
                }
                Some(_) => {
                    dirs.remove(&self.dir);
                    true
                }
                None => false,
            }
        };
        if last && let Some(w) = ops.as_mut() {
            // The folder may be gone already (removed sessions); that is fine.
            let _ = w.unwatch(&self.dir);
        }
    }
}
