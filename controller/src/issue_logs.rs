//! The per-issue log pipeline: every log entry gets a controller-wide id (the `/log-stream` event id),
//! goes to the store through the batching writer, and is broadcast to live followers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use itervox_protocol::IssueLogEntry;
use tokio::sync::broadcast;

use crate::store::{LogWriter, MAX_BATCH, StoreHandle, StoredLog};

/// Publishes log entries. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Held from taking an id until the entry is broadcast, so followers (which skip ids at or below the
    /// last one they sent) see ids in order.
    order: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    tx: broadcast::Sender<Arc<StoredLog>>,
    writer: LogWriter,
    store: StoreHandle,
}

/// How many entries a live follower may fall behind before it is resynchronised from the store: a
/// replayed journal arrives at hundreds of thousands of entries a second, and a viewer that pauses for
/// a few dozen milliseconds should not have to go back to the store (or miss pruned entries).
const BROADCAST_CAPACITY: usize = 32_768;

impl LogHub {
    pub fn new(store: StoreHandle) -> LogHub {
        let start = store.with(|s| s.max_log_id()).unwrap_or(0) + 1;
        let writer = LogWriter::spawn(store.clone());
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        LogHub {
            inner: Arc::new(Inner {
                order: tokio::sync::Mutex::new(()),
                next_id: AtomicU64::new(start),
                tx,
                writer,
                store,
            }),
        }
    }

    pub fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    /// Stores and broadcasts an entry for `identifier`; returns its id.
    pub async fn publish(&self, identifier: &str, entry: IssueLogEntry) -> u64 {
        self.publish_many(identifier, vec![entry]).await
    }

    /// Stores and broadcasts entries for `identifier`, in order, with consecutive ids (each entry
    /// serialized once, for the store and every follower); returns the last id (0 for none).
    pub async fn publish_many(&self, identifier: &str, entries: Vec<IssueLogEntry>) -> u64 {
        let identifier: Arc<str> = identifier.into();
        let stored = entries
            .iter()
            .map(|entry| StoredLog::new(0, identifier.clone(), entry))
            .collect();
        self.publish_stored(stored).await
    }

    /// Stores and broadcasts entries already serialized (their ids are assigned here), in order, with
    /// consecutive ids; returns the last id (0 for none).
    pub async fn publish_stored(&self, entries: Vec<StoredLog>) -> u64 {
        let mut last = 0;
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let chunk = entries.by_ref().take(MAX_BATCH);
            let _order = self.inner.order.lock().await;
            let first = self.inner.next_id.load(Ordering::Relaxed);
            let stored: Vec<Arc<StoredLog>> = chunk
                .enumerate()
                .map(|(i, mut l)| {
                    l.id = first + i as u64;
                    Arc::new(l)
                })
                .collect();
            self.inner.next_id.store(first + stored.len() as u64, Ordering::Relaxed);
            last = first + stored.len() as u64 - 1;
            // Queued for the store before followers see them: a follower that falls behind replays from
            // the store after a flush, which must find every entry it was not sent.
            self.inner.writer.write(stored.clone()).await;
            for r in stored {
                let _ = self.inner.tx.send(r);
            }
        }
        last
    }

    /// Live entries of every issue, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredLog>> {
        self.inner.tx.subscribe()
    }

    /// Waits until every published entry is in the store.
    pub async fn flush(&self) {
        self.inner.writer.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use itervox_protocol::{LogEventKind, LogLevel};

    /// Live followers drop any id at or below the last one they sent, so entries must reach them in id
    /// order even when many tasks publish at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_publishers_broadcast_in_id_order() {
        let store = StoreHandle::new(crate::store::Store::open_in_memory().unwrap());
        let hub = LogHub::new(store);
        let mut rx = hub.subscribe();
        const TASKS: usize = 8;
        const EACH: usize = 300;
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let hub = hub.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..EACH {
                    let e = IssueLogEntry::new(LogLevel::Info, LogEventKind::Info, format!("{t}/{i}"), String::new());
                    hub.publish("A-1", e).await;
                }
            }));
        }
        let mut last = 0;
        for _ in 0..TASKS * EACH {
            let rec = rx.recv().await.unwrap();
            assert!(rec.id > last, "id {} broadcast after {last}", rec.id);
            last = rec.id;
        }
        for h in handles {
            h.await.unwrap();
        }
    }
}
