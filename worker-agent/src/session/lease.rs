//! The controller's lease on this host's sessions (see `itervox_protocol::worker::Ping`). The serve
//! process hands out lease tokens (its clock when it answered) and renews the lease when a ping echoes
//! one, *as of the token's time*: `<root>/.itervox/controller.lease`, whose modification time is the
//! renewal. The supervisor of a session started with `leaseMs` stops its turn when the lease was not
//! renewed for that long, because the controller will have declared the session lost and retried it
//! elsewhere.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::layout::Layout;

/// The lease file of a workspace root.
pub fn lease_file(layout: &Layout) -> PathBuf {
    layout.sessions_dir().with_file_name("controller.lease")
}

/// A lease token for an answer sent now: this host's clock in ms since the Unix epoch.
pub fn token_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Renews the lease of `layout` as of the time `token` was handed out (never later than now, never
/// moving an existing renewal back). A failure is logged: the worst outcome of a missed renewal is a
/// session stopped early, which the controller retries.
pub fn renew(layout: &Layout, token: u64) {
    let path = lease_file(layout);
    let as_of = (SystemTime::UNIX_EPOCH + Duration::from_millis(token)).min(SystemTime::now());
    if last_renewal(&path).is_some_and(|r| r >= as_of) {
        return;
    }
    if let Err(e) = renew_as_of(&path, as_of) {
        tracing::warn!(error = %e, "Cannot renew the controller lease.");
    }
}

/// Sets the lease file's modification time to `as_of` (creating the file when missing).
fn renew_as_of(path: &Path, as_of: SystemTime) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_modified(as_of)
}

/// When the lease was last renewed (`None` when never).
fn last_renewal(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Watches the lease of `layout` on behalf of one turn: when it was not renewed for `lease` (counting
/// from `since` at the latest), sets the returned flag and cancels `cancel`. Stops when `cancel` fires
/// for any other reason.
pub fn watch(
    layout: &Layout,
    lease: Duration,
    since: SystemTime,
    cancel: CancellationToken,
) -> std::sync::Arc<AtomicBool> {
    let expired = std::sync::Arc::new(AtomicBool::new(false));
    let flag = expired.clone();
    let path = lease_file(layout);
    let check = (lease / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(check) => {}
            }
            let renewed = last_renewal(&path).map_or(since, |r| r.max(since));
            let silent = SystemTime::now().duration_since(renewed).unwrap_or_default();
            if silent > lease {
                tracing::warn!(
                    silent_ms = silent.as_millis() as u64,
                    lease_ms = lease.as_millis() as u64,
                    "The controller's lease expired: stopping the turn."
                );
                flag.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
        }
    });
    expired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unrenewed_lease_cancels_and_a_renewed_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open(tmp.path().join("root").to_str().unwrap(), None).unwrap();
        std::fs::create_dir_all(layout.sessions_dir()).unwrap();
        renew(&layout, token_now());
        assert!(lease_file(&layout).exists());

        let kept = CancellationToken::new();
        // The kept lease is renewed every 100 ms but lasts 3 s, so a stall of the test machine does
        // not let it lapse between two renewals.
        let kept_flag = watch(&layout, Duration::from_secs(3), SystemTime::now(), kept.clone());
        let lapsed = CancellationToken::new();
        let lapsed_layout = Layout::open(tmp.path().join("other").to_str().unwrap(), None).unwrap();
        std::fs::create_dir_all(lapsed_layout.sessions_dir()).unwrap();
        let lapsed_flag = watch(
            &lapsed_layout,
            Duration::from_millis(600),
            SystemTime::now(),
            lapsed.clone(),
        );
        // Renew the first root for 4 s (longer than its lease); the second is never renewed.
        let until = std::time::Instant::now() + Duration::from_secs(4);
        while std::time::Instant::now() < until {
            renew(&layout, token_now());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(lapsed.is_cancelled(), "the unrenewed lease expired");
        assert!(lapsed_flag.load(Ordering::SeqCst));
        assert!(!kept.is_cancelled(), "the renewed lease holds");
        assert!(!kept_flag.load(Ordering::SeqCst));
        kept.cancel();
    }

    #[tokio::test]
    async fn a_late_ping_renews_only_as_of_its_token() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open(tmp.path().join("root").to_str().unwrap(), None).unwrap();
        std::fs::create_dir_all(layout.sessions_dir()).unwrap();
        let old_token = token_now();
        let since = SystemTime::now();
        let cancel = CancellationToken::new();
        let expired = watch(&layout, Duration::from_millis(700), since, cancel.clone());
        // A ping echoing a token from before the watch keeps arriving (stale frames delivered late):
        // it renews nothing beyond that token's time, so the lease still runs out.
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until && !cancel.is_cancelled() {
            renew(&layout, old_token);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(cancel.is_cancelled(), "stale renewals do not extend the lease");
        assert!(expired.load(Ordering::SeqCst));
        // A renewal never moves the lease back, and a token from the future counts as now.
        renew(&layout, token_now() + 3_600_000);
        let renewed = last_renewal(&lease_file(&layout)).unwrap();
        assert!(renewed <= SystemTime::now());
        renew(&layout, old_token);
        assert_eq!(last_renewal(&lease_file(&layout)).unwrap(), renewed);
    }
}
