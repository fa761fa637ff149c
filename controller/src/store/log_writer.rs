//! The batching writer of log entries: a dedicated thread drains a bounded channel and appends whatever
//! has queued in one transaction, so a burst of agent output costs one commit, not one per line.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{MAX_LOGS_PER_ISSUE, StoreHandle, StoredLog};

enum Msg {
    Entries(Vec<Arc<StoredLog>>),
    Flush(oneshot::Sender<()>),
}

/// Queue of log entries on their way into the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

/// Entries written between prunes of one issue's log: the store holds between `MAX_LOGS_PER_ISSUE` and
/// that many more, which is also how far a follower resynchronised from the store may have fallen behind
/// before it misses entries.
const PRUNE_EVERY: u64 = 10_000;

/// The most entries one `write` may carry.
pub const MAX_BATCH: usize = 128;

/// Queued `write`s (so at most `QUEUE * MAX_BATCH` entries wait for the database).
const QUEUE: usize = 256;

impl LogWriter {
    /// Starts the writer thread on `store`. It ends when every `LogWriter` clone is dropped.
    pub fn spawn(store: StoreHandle) -> LogWriter {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        std::thread::Builder::new()
            .name("itervox-log-writer".into())
            .spawn(move || {
                let mut since_prune: HashMap<Arc<str>, u64> = HashMap::new();
                let mut batch = Vec::with_capacity(1024);
                let mut flushes = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Entries(mut e) => batch.append(&mut e),
                            Msg::Flush(done) => flushes.push(done),
                        }
                        if batch.len() < 4096 {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !batch.is_empty() {
                        let result = store.with(|s| s.append_logs(&batch));
                        if let Err(e) = result {
                            tracing::error!(error = %e, entries = batch.len(), "Could not store log entries");
                        }
                        for e in batch.drain(..) {
                            *since_prune.entry(e.identifier.clone()).or_default() += 1;
                        }
                        for (identifier, n) in since_prune.iter_mut() {
                            if *n >= PRUNE_EVERY {
                                *n = 0;
                                let _ = store.with(|s| s.prune_logs(identifier, MAX_LOGS_PER_ISSUE));
                            }
                        }
                    }
                    for done in flushes.drain(..) {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawn log writer thread");
        LogWriter { tx }
    }

    /// Queues entries (at most [`MAX_BATCH`] at a time is what keeps the queue bounded); waits when the
    /// queue is full (backpressure on the producer).
    pub async fn write(&self, entries: Vec<Arc<StoredLog>>) {
        debug_assert!(entries.len() <= MAX_BATCH);
        if let Err(e) = self.tx.send(Msg::Entries(entries)).await {
            let lost = match e.0 {
                Msg::Entries(v) => v.len(),
                Msg::Flush(_) => 0,
            };
            tracing::error!(entries = lost, "Log writer has stopped; entries dropped");
        }
    }

    /// Waits until everything queued before this call is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
