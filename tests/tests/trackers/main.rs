//! The tracker adapters against fake Linear and GitHub servers on loopback, and the durable outbox
//! against them: what a scheduler relies on (pagination, filters, writes visible in the tracker,
//! rate limits honoured, comments posted once), and the real controller driven through them.

mod controlled;
mod controller_github;
mod controller_linear;
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

#[test]
fn from_config_builds_every_adapter() {
    use itervox::config::{Config, TrackerConfig, TrackerKind};
    let dir = tempfile::tempdir().unwrap();
    let build = |kind, slug: &str| {
        let config = Config {
            tracker: TrackerConfig {
                kind,
                api_key: Some("key".into()),
                project_slug: slug.into(),
                endpoint: Some("http://127.0.0.1:9".into()),
                issues_dir: dir.path().join("issues"),
                ..TrackerConfig::default()
            },
            ..Config::default()
        };
        itervox::tracker::from_config(&config).map(|t| t.kind())
    };
    assert_eq!(build(TrackerKind::Local, "").unwrap(), "local");
    assert_eq!(build(TrackerKind::Memory, "").unwrap(), "memory");
    assert_eq!(build(TrackerKind::Linear, "").unwrap(), "linear");
    assert_eq!(build(TrackerKind::Github, "octo/widgets").unwrap(), "github");
    assert!(build(TrackerKind::Github, "not-a-slug").is_err());
}
