//! The tracker adapters against fake Linear and GitHub servers on loopback, and the durable outbox
//! against them: what a scheduler relies on (pagination, filters, writes visible in the tracker,
//! rate limits honoured, comments posted once).

mod github;
mod linear;
mod outbox;

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns `Some`, or fails after 20 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
