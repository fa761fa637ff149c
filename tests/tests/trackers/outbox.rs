//! The durable outbox in front of the real adapters and the fake servers: a comment whose response
//! is lost is posted once, and rate limits delay writes without losing them.

use std::sync::Arc;
use std::time::Duration;

use itervox::config::{TrackerConfig, TrackerKind};
use itervox::tracker::github::GithubTracker;
use itervox::tracker::linear::LinearTracker;
use itervox::tracker::outbox::{Outbox, OutboxOptions, TrackerWrite};
use itervox_tests::fake_github::{FakeGithub, GithubFailure, NewGithubIssue};
use itervox_tests::fake_linear::{FakeLinear, LinearFailure, NewLinearIssue};
use tokio_util::sync::CancellationToken;

use crate::eventually;

fn fast() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..OutboxOptions::default()
    }
}

fn github(fake: &FakeGithub) -> GithubTracker {
    GithubTracker::new(
        &TrackerConfig {
            kind: TrackerKind::Github,
            api_key: Some("ghp_test".into()),
            project_slug: "octo/widgets".into(),
            endpoint: Some(fake.url()),
            ..TrackerConfig::default()
        },
        10,
    )
    .unwrap()
}

fn comment(body: &str) -> TrackerWrite {
    TrackerWrite::Comment { body: body.into() }
}

fn comment_posts(fake: &FakeGithub) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/comments"))
        .count()
}

#[tokio::test]
async fn github_a_comment_whose_response_was_lost_is_posted_once() {
    let fake = FakeGithub::start("octo/widgets", "ghp_test").await;
    let n = fake.add_issue(NewGithubIssue::new("work", &["In Progress"]));
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_with(&dir.path().join("itervox.db"), Arc::new(github(&fake)), fast()).unwrap();

    fake.fail_next(Some("POST"), Some("/comments"), GithubFailure::LoseResponse);
    outbox
        .enqueue("run-1:input", &format!("#{n}"), comment("Agent needs your input"))
        .unwrap();
    let first = outbox.flush_now().await.unwrap();
    assert_eq!(first.retried, 1, "a 502 is an unknown outcome");
    assert_eq!(fake.issue(n).unwrap().comments.len(), 1, "but the server applied it");

    let second = outbox.flush_now().await.unwrap();
    assert_eq!(second.applied, 1);
    let comments = fake.issue(n).unwrap().comments;
    assert_eq!(comments.len(), 1, "no duplicate");
    assert!(comments[0].starts_with("Agent needs your input"));
    assert!(comments[0].contains("<!-- itervox:key:run-1:input -->"));
    assert_eq!(comment_posts(&fake), 1, "the retry only looked");
}

#[tokio::test]
async fn github_a_timed_out_comment_that_landed_later_is_not_posted_again() {
    let fake = FakeGithub::start("octo/widgets", "ghp_test").await;
    let n = fake.add_issue(NewGithubIssue::new("work", &["In Progress"]));
    let dir = tempfile::tempdir().unwrap();
    let adapter = github(&fake).with_request_timeout(Duration::from_millis(300)).unwrap();
    let outbox = Outbox::open_with(&dir.path().join("itervox.db"), Arc::new(adapter), fast()).unwrap();

    fake.fail_next(
        Some("POST"),
        Some("/comments"),
        // Far past the 300 ms client timeout, so the client gives up first even on a stalled machine.
        GithubFailure::Delay(Duration::from_secs(5)),
    );
    outbox
        .enqueue("run-2:summary", &format!("#{n}"), comment("Summary"))
        .unwrap();
    assert_eq!(outbox.flush_now().await.unwrap().retried, 1);
    eventually("the slow request to land", || async {
        (fake.issue(n).unwrap().comments.len() == 1).then_some(())
    })
    .await;

    assert_eq!(outbox.flush_now().await.unwrap().applied, 1);
    assert_eq!(fake.issue(n).unwrap().comments.len(), 1);
    assert_eq!(comment_posts(&fake), 1);
}

#[tokio::test]
async fn linear_a_comment_whose_response_was_lost_is_posted_once() {
    let fake = FakeLinear::start("lin_api_test").await;
    let id = fake.add_issue(NewLinearIssue::new("work", "In Progress"));
    let adapter = LinearTracker::new(
        &TrackerConfig {
            kind: TrackerKind::Linear,
            api_key: Some("lin_api_test".into()),
            endpoint: Some(fake.url()),
            ..TrackerConfig::default()
        },
        10,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_with(&dir.path().join("itervox.db"), Arc::new(adapter), fast()).unwrap();

    fake.fail_next(Some("ItervoxCommentCreate"), LinearFailure::LoseResponse);
    outbox.enqueue("run-3:done", &id, comment("Finished")).unwrap();
    assert_eq!(outbox.flush_now().await.unwrap().retried, 1);
    assert_eq!(outbox.flush_now().await.unwrap().applied, 1);
    assert_eq!(fake.issue(&id).unwrap().comments.len(), 1);
    assert_eq!(fake.count("ItervoxCommentCreate"), 1);
    assert_eq!(fake.count("ItervoxCommentWithMarker"), 1);
}

#[tokio::test]
async fn the_run_loop_waits_out_a_rate_limit_and_then_applies_the_writes() {
    let fake = FakeGithub::start("octo/widgets", "ghp_test").await;
    let n = fake.add_issue(NewGithubIssue::new("work", &["Todo"]));
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_with(&dir.path().join("itervox.db"), Arc::new(github(&fake)), fast()).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let outbox = outbox.clone();
        let cancel = cancel.clone();
        async move { outbox.run(cancel).await }
    });

    fake.fail_next(None, None, GithubFailure::SecondaryRateLimit { retry_after_secs: 5 });
    let id = format!("#{n}");
    outbox
        .enqueue(
            "run-4:start",
            &id,
            TrackerWrite::MoveState {
                state: "In Progress".into(),
            },
        )
        .unwrap();
    outbox.enqueue("run-4:hello", &id, comment("Started")).unwrap();

    let limited = eventually("the rate limit to be recorded", || async {
        outbox.entries().unwrap().first().and_then(|e| e.rate_limited_until)
    })
    .await;
    eventually("both writes to land", || async {
        let v = fake.issue(n).unwrap();
        (v.labels == vec!["In Progress".to_string()] && v.comments.len() == 1).then_some(())
    })
    .await;
    let after_limit: Vec<_> = fake
        .requests()
        .into_iter()
        .skip_while(|r| r.status != 403)
        .skip(1)
        .collect();
    assert!(!after_limit.is_empty());
    assert!(chrono::Utc::now() >= limited);
    // The tracker shows a write a moment before the outbox has recorded its answer.
    eventually("the outbox to be empty", || async {
        outbox.entries().unwrap().is_empty().then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
}
