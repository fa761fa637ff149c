//! Following one session's journal on one stream (`attach`): replay from `fromSeq`, then every new line
//! as it is appended, until `detach`, another `attach` of the same session, or the end of the stream.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame_writer::FrameTx;
use super::journal_watch::Subscription;
use crate::session::journal::JournalCursor;

/// How many journal bytes one read hands to the writer at most (soft; lines are never split).
const BATCH_BYTES: usize = 1024 * 1024;
/// Reads of a journal that is being appended to are at least this far apart, so a burst of appends
/// (one wake-up each) goes out as one batch: one read, one write to stdout, fewer and fuller SSH
/// packets. The first append after a quiet spell is read at once.
const MIN_READ_INTERVAL: Duration = Duration::from_millis(4);

/// Copies journal lines with `seq >= from_seq` to `tx` until cancelled or stdout is gone.
pub async fn follow(
    tx: FrameTx,
    dir: PathBuf,
    from_seq: u64,
    mut changes: Subscription,
    poll: Duration,
    cancel: CancellationToken,
) {
    let mut cursor = Some(JournalCursor::new(&dir, from_seq));
    // One timer for the whole follow, moved rather than made anew per wait.
    let poll_sleep = tokio::time::sleep(poll);
    tokio::pin!(poll_sleep);
    loop {
        let read_at = Instant::now();
        changes.mark_seen();
        let Some(mut c) = cursor.take() else {
            return;
        };
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let result = c.read_available(&mut out, BATCH_BYTES);
            (c, result.map(|more| (out, more)))
        })
        .await;
        let more = match read {
            Ok((c, Ok((out, more)))) => {
                cursor = Some(c);
                if cancel.is_cancelled() {
                    return;
                }
                if !out.is_empty() && !tx.send_lines(out).await {
                    return;
                }
                more
            }
            Ok((c, Err(e))) => {
                cursor = Some(c);
                tracing::warn!(dir = %dir.display(), error = %e, "Reading the journal failed; retrying.");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "A journal read task failed; stopping this follower.");
                return;
            }
        };
        if more {
            continue;
        }
        poll_sleep.as_mut().reset(read_at + poll);
        // Cancel-safe: every arm only waits.
        let woken = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = changes.changed() => true,
            () = &mut poll_sleep => false,
        };
        let next_read = read_at + MIN_READ_INTERVAL;
        if woken && next_read > Instant::now() {
            poll_sleep.as_mut().reset(next_read);
            tokio::select! {
                _ = cancel.cancelled() => return,
                () = &mut poll_sleep => {}
            }
        }
    }
}
