//! The GitHub adapter against the fake GitHub REST API.

use std::time::Duration;

use itervox::config::{TrackerConfig, TrackerKind};
use itervox::tracker::github::GithubTracker;
use itervox::tracker::{Issue, Tracker, TrackerError};
use itervox_tests::fake_github::{FakeGithub, GithubFailure, NewGithubIssue};

use crate::eventually;

const TOKEN: &str = "ghp_test";
const REPO: &str = "octo/widgets";

fn config(endpoint: String) -> TrackerConfig {
    TrackerConfig {
        kind: TrackerKind::Github,
        api_key: Some(TOKEN.into()),
        project_slug: REPO.into(),
        endpoint: Some(endpoint),
        ..TrackerConfig::default()
    }
}

fn adapter(fake: &FakeGithub) -> GithubTracker {
    GithubTracker::new(&config(fake.url()), 10).unwrap()
}

fn identifiers(issues: &[Issue]) -> Vec<String> {
    issues.iter().map(|i| i.identifier.clone()).collect()
}

fn todo(title: &str) -> NewGithubIssue {
    NewGithubIssue::new(title, &["Todo"])
}

#[tokio::test]
async fn candidates_keep_their_order_across_pages_and_exclude_pull_requests() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let mut expected = Vec::new();
    for n in 0..230 {
        let number = fake.add_issue(todo(&format!("issue {n}")));
        expected.push(format!("#{number}"));
        if n % 50 == 0 {
            fake.add_pull_request("a PR", "feature", &["Todo"]);
            fake.add_issue(NewGithubIssue::new("not on the board", &["bug"]));
        }
    }
    expected.reverse(); // GitHub lists newest first.
    let t = adapter(&fake);
    let got = t.fetch_candidates(&["todo".into()]).await.unwrap();
    assert_eq!(identifiers(&got), expected);
    assert!(
        got.iter().all(|i| i.state == "Todo"),
        "the state keeps the configuration's spelling"
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "235 labelled items are three pages of 100");
    for r in &requests {
        assert_eq!(r.path, "/repos/octo/widgets/issues");
        assert_eq!(r.authorization.as_deref(), Some("Bearer ghp_test"));
        assert_eq!(r.accept.as_deref(), Some("application/vnd.github+json"));
        assert!(r.api_version.is_some());
        let q = r.query.as_deref().unwrap_or_default();
        assert!(
            q.contains("labels=todo") && q.contains("state=open") && q.contains("per_page=100"),
            "{q}"
        );
    }
    assert!(requests[1].query.as_deref().unwrap().contains("page=2"));
}

#[tokio::test]
async fn empty_state_and_identifier_lists_make_no_request() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    fake.add_issue(todo("a"));
    let t = adapter(&fake);
    assert!(t.fetch_candidates(&[]).await.unwrap().is_empty());
    assert!(t.fetch_by_identifiers(&[]).await.unwrap().is_empty());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn states_labels_and_blockers_follow_the_label_conventions() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let done = fake.add_issue(NewGithubIssue {
        closed: true,
        ..NewGithubIssue::new("finished", &["Todo"])
    });
    let cancelled = fake.add_issue(NewGithubIssue {
        closed: true,
        ..NewGithubIssue::new("dropped", &["cancelled"])
    });
    let active = fake.add_issue(NewGithubIssue {
        body: Some(format!("Blocked by #{done} and #{cancelled}.\nSee #1 for context.")),
        ..NewGithubIssue::new("work", &["Bug", "in progress", "P2"])
    });
    let backlog = fake.add_issue(NewGithubIssue::new("later", &["Backlog"]));
    fake.add_issue(NewGithubIssue::new("no state", &["bug"]));
    let t = adapter(&fake);

    let got = t
        .fetch_candidates(&["Todo".into(), "In Progress".into(), "Backlog".into()])
        .await
        .unwrap();
    assert_eq!(identifiers(&got), vec![format!("#{active}"), format!("#{backlog}")]);
    let work = &got[0];
    assert_eq!(work.id, active.to_string());
    assert_eq!(work.state, "In Progress");
    assert_eq!(work.labels, vec!["bug", "in progress", "p2"], "labels are lower-cased");
    assert_eq!(work.priority, Some(2));
    assert_eq!(
        work.url.as_deref(),
        Some(format!("https://github.com/{REPO}/issues/{active}").as_str())
    );
    let blockers: Vec<(String, Option<String>)> = work
        .blocked_by
        .iter()
        .map(|b| (b.identifier.clone(), b.state.clone()))
        .collect();
    assert_eq!(
        blockers,
        vec![
            (format!("#{done}"), Some("Done".to_string())),
            (format!("#{cancelled}"), Some("Cancelled".to_string()))
        ],
        "closed blockers are looked up and are terminal"
    );

    let closed = t.fetch_candidates(&["Done".into(), "Cancelled".into()]).await.unwrap();
    let states: Vec<(String, String)> = closed.iter().map(|i| (i.identifier.clone(), i.state.clone())).collect();
    assert_eq!(
        states,
        vec![
            (format!("#{cancelled}"), "Cancelled".to_string()),
            (format!("#{done}"), "Done".to_string())
        ]
    );
}

#[tokio::test]
async fn refresh_by_identifiers_skips_missing_ones_and_pull_requests() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let a = fake.add_issue(todo("a"));
    let b = fake.add_issue(NewGithubIssue::new("b", &["In Progress"]));
    let pr = fake.add_pull_request("pr", "feature", &["Todo"]);
    let t = adapter(&fake);
    let got = t
        .fetch_by_identifiers(&[
            format!("#{a}"),
            b.to_string(),
            format!("{REPO}#{b}"),
            format!("#{pr}"),
            "#999".into(),
            "ENG-1".into(),
        ])
        .await
        .unwrap();
    let states: Vec<(String, String)> = got.iter().map(|i| (i.identifier.clone(), i.state.clone())).collect();
    assert_eq!(
        states,
        vec![
            (format!("#{a}"), "Todo".into()),
            (format!("#{b}"), "In Progress".into())
        ]
    );
    assert!(
        t.fetch_issue(&format!("#{pr}")).await.unwrap().is_none(),
        "a PR is never an issue"
    );
    assert!(t.fetch_issue("#999").await.unwrap().is_none());
}

#[tokio::test]
async fn a_malformed_record_is_skipped_in_lists_and_fails_a_refresh() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let good = fake.add_issue(todo("good"));
    let bad = fake.add_issue(todo("bad"));
    fake.make_malformed(bad);
    let t = adapter(&fake);
    assert_eq!(
        identifiers(&t.fetch_candidates(&["Todo".into()]).await.unwrap()),
        vec![format!("#{good}")]
    );
    assert!(matches!(
        t.fetch_by_identifiers(&[format!("#{good}"), format!("#{bad}")]).await,
        Err(TrackerError::Malformed(_))
    ));
    assert!(matches!(
        t.fetch_issue(&format!("#{bad}")).await,
        Err(TrackerError::Malformed(_))
    ));
}

#[tokio::test]
async fn state_moves_swap_labels_and_close_or_reopen() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(NewGithubIssue::new("work", &["bug", "Todo"]));
    let id = format!("#{n}");
    let t = adapter(&fake);

    t.move_state(&id, "In Progress").await.unwrap();
    let v = fake.issue(n).unwrap();
    assert!(v.open);
    assert_eq!(v.labels, vec!["bug", "In Progress"], "other labels are kept");

    t.move_state(&id, "Done").await.unwrap();
    let v = fake.issue(n).unwrap();
    assert!(!v.open, "a terminal state closes the issue");
    assert_eq!(v.state_reason.as_deref(), Some("completed"));
    assert_eq!(v.labels, vec!["bug"], "the default terminal state needs no label");
    assert_eq!(t.fetch_issue(&id).await.unwrap().unwrap().state, "Done");

    t.move_state(&id, "todo").await.unwrap();
    let v = fake.issue(n).unwrap();
    assert!(v.open, "an active state reopens a closed issue");
    assert_eq!(
        v.labels,
        vec!["bug", "Todo"],
        "GitHub matches the existing label case-insensitively"
    );
    assert_eq!(t.fetch_issue(&id).await.unwrap().unwrap().state, "Todo");

    t.move_state(&id, "Cancelled").await.unwrap();
    let v = fake.issue(n).unwrap();
    assert!(!v.open);
    assert_eq!(v.state_reason.as_deref(), Some("not_planned"));
    assert_eq!(
        v.labels,
        vec!["bug", "Cancelled"],
        "a non-default terminal state is labelled so it reads back"
    );
    assert_eq!(t.fetch_issue(&id).await.unwrap().unwrap().state, "Cancelled");

    assert!(matches!(t.move_state("#999", "Done").await, Err(TrackerError::NotFound(i)) if i == "#999"));
}

#[tokio::test]
async fn comments_and_the_branch_marker() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(todo("work"));
    fake.add_comment(n, "alice", "Please also update the docs.");
    let id = format!("#{n}");
    let t = adapter(&fake);

    t.add_comment(&id, "Agent done.\n<!-- itervox:key:k1 -->")
        .await
        .unwrap();
    assert!(t.has_comment_with_marker(&id, "<!-- itervox:key:k1 -->").await.unwrap());
    assert!(!t.has_comment_with_marker(&id, "<!-- itervox:key:k2 -->").await.unwrap());

    t.record_branch(&id, "itervox/1-work").await.unwrap();
    t.record_branch(&id, "itervox/1-work").await.unwrap();
    assert_eq!(fake.issue(n).unwrap().comments.len(), 3, "the marker is written once");
    t.record_branch(&id, "itervox/1-rework").await.unwrap();
    let comments = fake.issue(n).unwrap().comments;
    assert_eq!(comments.len(), 3, "a new branch updates the marker comment");
    assert!(comments[2].contains("<!-- itervox:branch:itervox/1-rework -->"));

    let issue = t.fetch_issue(&id).await.unwrap().unwrap();
    assert_eq!(issue.branch_name.as_deref(), Some("itervox/1-rework"));
    assert_eq!(issue.comments.len(), 3);
    assert_eq!(issue.comments[0].author, "alice");
    assert_eq!(issue.comments[0].body, "Please also update the docs.");
}

#[tokio::test]
async fn without_a_marker_the_branch_comes_from_a_linked_pull_request() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(todo("work"));
    let pr = fake.add_pull_request("Fix work", "feature/fix-work", &[]);
    fake.cross_reference(n, pr);
    let t = adapter(&fake);
    let issue = t.fetch_issue(&format!("#{n}")).await.unwrap().unwrap();
    assert_eq!(issue.branch_name.as_deref(), Some("feature/fix-work"));
}

#[tokio::test]
async fn an_unchanged_listing_is_answered_from_the_etag_cache_for_free() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(todo("a"));
    let t = adapter(&fake);
    let first = t.fetch_candidates(&["Todo".into()]).await.unwrap();
    let remaining = fake.remaining();
    assert_eq!(t.rate_budget().unwrap().remaining, Some(remaining));

    let second = t.fetch_candidates(&["Todo".into()]).await.unwrap();
    assert_eq!(first, second);
    let last = fake.requests().last().cloned().unwrap();
    assert_eq!(last.status, 304);
    assert!(last.if_none_match.is_some());
    assert_eq!(fake.remaining(), remaining, "a 304 costs no budget");
    assert_eq!(t.rate_budget().unwrap().remaining, Some(remaining));

    fake.set_labels(n, &["In Progress"]);
    assert!(
        t.fetch_candidates(&["Todo".into()]).await.unwrap().is_empty(),
        "a change is seen"
    );
    assert_eq!(fake.requests().last().unwrap().status, 200);
}

#[tokio::test]
async fn a_secondary_rate_limit_holds_requests_for_retry_after() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(todo("a"));
    let t = adapter(&fake);
    fake.fail_next(None, None, GithubFailure::SecondaryRateLimit { retry_after_secs: 5 });
    let before = chrono::Utc::now();
    let reset = match t.fetch_candidates(&["Todo".into()]).await {
        Err(TrackerError::RateLimited { reset_at: Some(r) }) => r,
        other => panic!("expected a rate limit, got {other:?}"),
    };
    assert!(reset >= before + chrono::Duration::milliseconds(4900));
    let sent = fake.requests().len();
    assert!(matches!(
        t.add_comment(&format!("#{n}"), "x").await,
        Err(TrackerError::RateLimited { .. })
    ));
    assert_eq!(fake.requests().len(), sent, "nothing is sent before the reset");
    eventually("the secondary limit to pass", || async {
        t.fetch_candidates(&["Todo".into()]).await.ok()
    })
    .await;
    assert!(chrono::Utc::now() >= reset);
}

#[tokio::test]
async fn a_429_without_retry_after_waits_a_minute() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    fake.add_issue(todo("a"));
    let t = adapter(&fake);
    fake.fail_next(None, None, GithubFailure::TooManyRequests { retry_after_secs: None });
    let before = chrono::Utc::now();
    match t.fetch_candidates(&["Todo".into()]).await {
        Err(TrackerError::RateLimited { reset_at: Some(r) }) => {
            assert!(r >= before + chrono::Duration::seconds(59), "{r}");
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    let sent = fake.requests().len();
    assert!(t.fetch_candidates(&["Todo".into()]).await.is_err());
    assert_eq!(fake.requests().len(), sent);
}

#[tokio::test]
async fn an_exhausted_budget_waits_for_the_reset() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    fake.add_issue(todo("a"));
    let t = adapter(&fake);
    fake.fail_next(
        None,
        None,
        GithubFailure::PrimaryExhausted {
            reset_in: Duration::from_secs(6),
        },
    );
    let reset = match t.fetch_candidates(&["Todo".into()]).await {
        Err(TrackerError::RateLimited { reset_at: Some(r) }) => r,
        other => panic!("expected a rate limit, got {other:?}"),
    };
    assert_eq!(t.rate_budget().unwrap().remaining, Some(0));
    let sent = fake.requests().len();
    assert!(t.fetch_candidates(&["Todo".into()]).await.is_err());
    assert_eq!(fake.requests().len(), sent, "nothing is sent before the reset");
    eventually("the budget to reset", || async {
        t.fetch_candidates(&["Todo".into()]).await.ok()
    })
    .await;
    assert!(chrono::Utc::now() >= reset);
}

#[tokio::test]
async fn polling_reads_leave_the_reserve_to_writes() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(todo("a"));
    fake.set_rate_limit(100, 11, Duration::from_secs(3600));
    let t = adapter(&fake);
    t.fetch_candidates(&["Todo".into()]).await.unwrap(); // 11 -> 10: at the reserve
    t.fetch_candidates(&["In Progress".into()]).await.unwrap(); // 10 -> 9: below it
    let sent = fake.requests().len();
    assert!(matches!(
        t.fetch_candidates(&["Backlog".into()]).await,
        Err(TrackerError::RateLimited { reset_at: Some(_) })
    ));
    assert_eq!(fake.requests().len(), sent);
    t.add_comment(&format!("#{n}"), "writes still go through")
        .await
        .unwrap();
    assert_eq!(fake.issue(n).unwrap().comments.len(), 1);
}

#[tokio::test]
async fn an_enterprise_endpoint_keeps_its_path_prefix() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    for n in 0..150 {
        fake.add_issue(todo(&format!("issue {n}")));
    }
    let t = GithubTracker::new(&config(fake.enterprise_url()), 10).unwrap();
    assert_eq!(t.fetch_candidates(&["Todo".into()]).await.unwrap().len(), 150);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn errors_map_to_their_kinds() {
    let fake = FakeGithub::start(REPO, TOKEN).await;
    let n = fake.add_issue(todo("a"));
    let wrong = GithubTracker::new(
        &TrackerConfig {
            api_key: Some("nope".into()),
            ..config(fake.url())
        },
        10,
    )
    .unwrap();
    assert!(matches!(
        wrong.fetch_candidates(&["Todo".into()]).await,
        Err(TrackerError::Auth(_))
    ));

    let t = adapter(&fake);
    fake.fail_next(None, None, GithubFailure::ServerError);
    assert!(matches!(
        t.fetch_issue(&format!("#{n}")).await,
        Err(TrackerError::Transport(_))
    ));

    let slow = adapter(&fake).with_request_timeout(Duration::from_millis(300)).unwrap();
    fake.fail_next(None, None, GithubFailure::Delay(Duration::from_secs(3)));
    match slow.fetch_issue(&format!("#{n}")).await {
        Err(TrackerError::Transport(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}
