//! The controller's lease on this host's sessions: the serve process renews it on every frame a
//! controller sends (`<root>/.itervox/controller.lease`, its modification time is the renewal), and the
//! supervisor of a session started with `leaseMs` stops its turn when the lease was not renewed for that
//! long, because the controller will have declared the session lost and retried it elsewhere.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::layout::Layout;

/// Renewals closer together than this are skipped (a busy stream would otherwise write for every frame).
const RENEW_EVERY: Duration = Duration::from_millis(200);

/// The lease file of a workspace root.
pub fn lease_file(layout: &Layout) -> PathBuf {
    layout.sessions_dir().with_file_name("controller.lease")
}

/// Renews the lease of one workspace root, at most every [`RENEW_EVERY`].
#[derive(Debug, Default)]
pub struct Renewer {
    last: Mutex<Option<std::time::Instant>>,
}

impl Renewer {
    /// Marks the controller as present now. A failure is logged: the worst outcome of a missed renewal
    /// is a session stopped early, which the controller retries.
    pub fn renew(&self, layout: &Layout) {
        let now = std::time::Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|l| now.duration_since(l) < RENEW_EVERY) {
                return;
            }
            *last = Some(now);
        }
        if let Err(e) = renew_now(&lease_file(layout)) {
            tracing::warn!(error = %e, "Cannot renew the controller lease.");
        }
    }
}

/// Sets the lease file's modification time to now (creating it when missing).
pub fn renew_now(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_modified(SystemTime::now())
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
        let renewer = Renewer::default();
        renewer.renew(&layout);
        assert!(lease_file(&layout).exists());

        let kept = CancellationToken::new();
        let kept_flag = watch(&layout, Duration::from_millis(600), SystemTime::now(), kept.clone());
        let lapsed = CancellationToken::new();
        let lapsed_layout = Layout::open(tmp.path().join("other").to_str().unwrap(), None).unwrap();
        std::fs::create_dir_all(lapsed_layout.sessions_dir()).unwrap();
        let lapsed_flag = watch(
            &lapsed_layout,
            Duration::from_millis(600),
            SystemTime::now(),
            lapsed.clone(),
        );
        // Renew the first root for 2 s; the second is never renewed.
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            renewer.renew(&layout);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(lapsed.is_cancelled(), "the unrenewed lease expired");
        assert!(lapsed_flag.load(Ordering::SeqCst));
        assert!(!kept.is_cancelled(), "the renewed lease holds");
        assert!(!kept_flag.load(Ordering::SeqCst));
        kept.cancel();
    }
}
