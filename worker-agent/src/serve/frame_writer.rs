//! The one task that owns stdout: it writes whole protocol lines handed to it over a bounded channel, so
//! answers and events from concurrent tasks never interleave within a line.

use itervox_protocol::worker::WorkerFrame;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many pending buffers may queue before senders wait.
const QUEUE: usize = 256;

/// A handle to the stdout writer. Every buffer sent must be whole lines.
#[derive(Debug, Clone)]
pub struct FrameTx {
    tx: mpsc::Sender<Vec<u8>>,
}

impl FrameTx {
    /// Queues one frame; false when the writer has stopped (stdout is gone).
    pub async fn send(&self, frame: &WorkerFrame) -> bool {
        let mut line = match serde_json::to_vec(frame) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "Cannot encode a frame.");
                return true;
            }
        };
        line.push(b'\n');
        self.send_lines(line).await
    }

    /// Queues complete, already encoded lines (journal lines pass through as they are).
    pub async fn send_lines(&self, lines: Vec<u8>) -> bool {
        debug_assert!(lines.is_empty() || lines.ends_with(b"\n"));
        self.tx.send(lines).await.is_ok()
    }
}

/// Starts the writer on `out`. It ends when every [`FrameTx`] is dropped or a write fails.
pub fn spawn_writer<W>(mut out: W) -> (FrameTx, JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let task = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if let Err(e) = out.write_all(&buf).await {
                tracing::info!(error = %e, "stdout closed; no more frames can be sent.");
                return;
            }
            // Batch what is already queued into one flush.
            while let Ok(more) = rx.try_recv() {
                if let Err(e) = out.write_all(&more).await {
                    tracing::info!(error = %e, "stdout closed; no more frames can be sent.");
                    return;
                }
            }
            if let Err(e) = out.flush().await {
                tracing::info!(error = %e, "stdout closed; no more frames can be sent.");
                return;
            }
        }
    });
    (FrameTx { tx }, task)
}
