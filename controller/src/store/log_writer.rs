//! The batching writer of log entries: a dedicated thread drains a bounded channel and appends whatever
//! has queued in one transaction, so a burst of agent output costs one commit, not one per line.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::{MAX_LOGS_PER_ISSUE, StoreHandle, StoredLog};

enum Msg {
    Entry(StoredLog),
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

/// Entries written between prunes of one issue's log.
const PRUNE_EVERY: u64 = 2_000;

impl LogWriter {
    /// Starts the writer thread on `store`. It ends when every `LogWriter` clone is dropped.
    pub fn spawn(store: StoreHandle) -> LogWriter {
        let (tx, mut rx) = mpsc::channel::<Msg>(8192);
        std::thread::Builder::new()
            .name("itervox-log-writer".into())
            .spawn(move || {
                let mut since_prune: HashMap<String, u64> = HashMap::new();
                let mut batch = Vec::with_capacity(1024);
                let mut flushes = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Entry(e) => batch.push(e),
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
                            let n = since_prune.entry(e.identifier).or_default();
                            *n += 1;
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

    /// Queues an entry; waits when the queue is full (backpressure on the producer).
    pub async fn write(&self, entry: StoredLog) {
        if self.tx.send(Msg::Entry(entry)).await.is_err() {
            tracing::error!("Log writer has stopped; entry dropped");
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
