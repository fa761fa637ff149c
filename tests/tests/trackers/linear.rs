//! The Linear adapter against the fake Linear GraphQL API.

use std::time::Duration;

use itervox::config::{TrackerConfig, TrackerKind};
use itervox::tracker::linear::LinearTracker;
use itervox::tracker::{Tracker, TrackerError};
use itervox_tests::fake_linear::{FakeLinear, LinearFailure, NewLinearIssue};

use crate::eventually;

const KEY: &str = "lin_api_test";

fn config(fake: &FakeLinear) -> TrackerConfig {
    TrackerConfig {
        kind: TrackerKind::Linear,
        api_key: Some(KEY.into()),
        endpoint: Some(fake.url()),
        ..TrackerConfig::default()
    }
}

fn adapter(fake: &FakeLinear) -> LinearTracker {
    LinearTracker::new(&config(fake), 10).unwrap()
}

fn todo(title: &str) -> NewLinearIssue {
    NewLinearIssue::new(title, "Todo")
}

#[tokio::test]
async fn candidates_keep_their_order_across_pages() {
    let fake = FakeLinear::start(KEY).await;
    let mut expected = Vec::new();
    for n in 0..120 {
        let id = fake.add_issue(todo(&format!("issue {n}")));
        expected.push(id);
        if n % 10 == 0 {
            fake.add_issue(NewLinearIssue::new("finished", "Done"));
        }
    }
    let t = adapter(&fake);
    let got = t
        .fetch_candidates(&["todo".into(), "In progress".into()])
        .await
        .unwrap();
    let ids: Vec<String> = got.iter().map(|i| i.identifier.clone()).collect();
    assert_eq!(ids, expected, "every Todo issue, in Linear's order, nothing else");
    assert_eq!(fake.count("ItervoxIssues"), 3, "120 issues are three pages of 50");

    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.authorization.as_deref() == Some(KEY)));
    assert_eq!(requests[0].variables["first"], 50);
    assert!(requests[0].variables["after"].is_null());
    assert_eq!(requests[1].variables["after"], serde_json::json!(got[49].id));
    assert_eq!(
        t.rate_budget().unwrap().remaining,
        Some(4997),
        "the budget comes from the response headers"
    );
}

#[tokio::test]
async fn empty_state_and_identifier_lists_make_no_request() {
    let fake = FakeLinear::start(KEY).await;
    fake.add_issue(todo("a"));
    let t = adapter(&fake);
    assert!(t.fetch_candidates(&[]).await.unwrap().is_empty());
    assert!(t.fetch_by_identifiers(&[]).await.unwrap().is_empty());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn issues_are_normalised() {
    let fake = FakeLinear::start(KEY).await;
    let blocker = fake.add_issue(NewLinearIssue::new("blocker", "In Progress"));
    let id = fake.add_issue(NewLinearIssue {
        description: Some("Do the thing".into()),
        priority: 2.0,
        labels: vec!["Bug".into(), "Needs-REVIEW".into()],
        ..todo("main")
    });
    fake.add_blocks(&blocker, &id);
    fake.add_comment(&id, "Ada", "first");
    fake.add_comment(&id, "Bob", "second");
    let t = adapter(&fake);

    let listed = t.fetch_candidates(&["Todo".into()]).await.unwrap();
    assert_eq!(listed.len(), 1);
    let i = &listed[0];
    assert_eq!(i.labels, vec!["bug", "needs-review"], "labels are lower-cased");
    assert_eq!(i.priority, Some(2));
    assert_eq!(i.description.as_deref(), Some("Do the thing"));
    assert_eq!(
        i.url.as_deref(),
        Some(format!("https://linear.app/fake/issue/{id}").as_str())
    );
    assert_eq!(
        i.branch_name.as_deref(),
        Some(format!("{}-work", id.to_lowercase()).as_str())
    );
    assert_eq!(i.blocked_by.len(), 1);
    assert_eq!(i.blocked_by[0].identifier, blocker);
    assert_eq!(i.blocked_by[0].state.as_deref(), Some("In Progress"));
    assert!(i.created_at.is_some());

    let full = t.fetch_issue(&id).await.unwrap().unwrap();
    let bodies: Vec<&str> = full.comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, vec!["first", "second"]);
    assert_eq!(full.comments[0].author, "Ada");
    assert!(t.fetch_issue("ENG-999").await.unwrap().is_none());
}

#[tokio::test]
async fn refresh_by_identifiers_is_one_batched_request() {
    let fake = FakeLinear::start(KEY).await;
    fake.add_team("OPS");
    let a = fake.add_issue(todo("a"));
    let b = fake.add_issue(NewLinearIssue::new("b", "Done"));
    let ops = fake.add_issue(NewLinearIssue {
        team_key: "OPS".into(),
        ..todo("ops")
    });
    let t = adapter(&fake);
    let got = t
        .fetch_by_identifiers(&[a.clone(), b.clone(), ops.clone(), "ENG-404".into(), "#7".into()])
        .await
        .unwrap();
    let mut ids: Vec<String> = got.iter().map(|i| i.identifier.clone()).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![a.clone(), b.clone(), ops.clone()],
        "missing ones are left out"
    );
    assert_eq!(fake.count("ItervoxIssues"), 1);
    assert_eq!(got.iter().find(|i| i.identifier == b).unwrap().state, "Done");
}

#[tokio::test]
async fn a_malformed_record_is_skipped_in_lists_and_fails_a_refresh() {
    let fake = FakeLinear::start(KEY).await;
    let good = fake.add_issue(todo("good"));
    let bad = fake.add_issue(todo("bad"));
    fake.make_malformed(&bad);
    let t = adapter(&fake);

    let listed = t.fetch_candidates(&["Todo".into()]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].identifier, good);

    assert!(matches!(
        t.fetch_by_identifiers(&[good.clone(), bad.clone()]).await,
        Err(TrackerError::Malformed(_))
    ));
    assert!(matches!(t.fetch_issue(&bad).await, Err(TrackerError::Malformed(_))));
    assert_eq!(t.fetch_by_identifiers(&[good]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_project_filter_limits_candidates() {
    let fake = FakeLinear::start(KEY).await;
    fake.add_project("Alpha", "alpha1");
    fake.add_project("Beta", "beta2");
    let in_alpha = fake.add_issue(NewLinearIssue {
        project: Some("alpha1".into()),
        ..todo("a")
    });
    let in_beta = fake.add_issue(NewLinearIssue {
        project: Some("beta2".into()),
        ..todo("b")
    });
    let nowhere = fake.add_issue(todo("c"));
    let t = LinearTracker::new(
        &TrackerConfig {
            project_slug: "alpha1".into(),
            ..config(&fake)
        },
        10,
    )
    .unwrap();
    let ids = |v: Vec<itervox::tracker::Issue>| v.into_iter().map(|i| i.identifier).collect::<Vec<_>>();
    let states = ["Todo".to_string()];

    assert_eq!(ids(t.fetch_candidates(&states).await.unwrap()), vec![in_alpha.clone()]);
    t.set_project_filter(Some(vec!["beta2".into()])).unwrap();
    assert_eq!(ids(t.fetch_candidates(&states).await.unwrap()), vec![in_beta.clone()]);
    t.set_project_filter(Some(vec![])).unwrap();
    assert_eq!(
        ids(t.fetch_candidates(&states).await.unwrap()),
        vec![in_alpha.clone(), in_beta, nowhere]
    );
    t.set_project_filter(None).unwrap();
    assert_eq!(ids(t.fetch_candidates(&states).await.unwrap()), vec![in_alpha]);

    let projects = t.list_projects().await.unwrap();
    let slugs: Vec<&str> = projects.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, vec!["alpha1", "beta2"]);
    assert_eq!(projects[0].name, "Alpha");
}

#[tokio::test]
async fn a_state_move_lands_in_linear() {
    let fake = FakeLinear::start(KEY).await;
    let a = fake.add_issue(todo("a"));
    let b = fake.add_issue(todo("b"));
    let t = adapter(&fake);

    t.move_state(&a, "in progress").await.unwrap();
    assert_eq!(fake.issue(&a).unwrap().state, "In Progress");
    t.move_state(&b, "Done").await.unwrap();
    assert_eq!(fake.issue(&b).unwrap().state, "Done");
    assert_eq!(fake.count("ItervoxWorkflowStates"), 1, "the team's states are cached");

    let updates = fake.count("ItervoxIssueUpdateState");
    t.move_state(&b, "Done").await.unwrap();
    assert_eq!(
        fake.count("ItervoxIssueUpdateState"),
        updates,
        "a move to the current state sends nothing"
    );

    assert!(matches!(
        t.move_state(&a, "Shipped").await,
        Err(TrackerError::UnknownState { state, .. }) if state == "Shipped"
    ));
    assert!(matches!(
        t.move_state("ENG-404", "Done").await,
        Err(TrackerError::NotFound(id)) if id == "ENG-404"
    ));
}

#[tokio::test]
async fn comments_are_posted_and_found_by_marker() {
    let fake = FakeLinear::start(KEY).await;
    let a = fake.add_issue(todo("a"));
    let t = adapter(&fake);
    t.add_comment(&a, "Done.\n<!-- itervox:key:k1 -->").await.unwrap();
    assert_eq!(fake.issue(&a).unwrap().comments, vec!["Done.\n<!-- itervox:key:k1 -->"]);
    assert!(t.has_comment_with_marker(&a, "<!-- itervox:key:k1 -->").await.unwrap());
    assert!(!t.has_comment_with_marker(&a, "<!-- itervox:key:k2 -->").await.unwrap());
    assert!(matches!(
        t.add_comment("ENG-404", "x").await,
        Err(TrackerError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_ratelimited_answer_holds_every_request_until_the_reset() {
    let fake = FakeLinear::start(KEY).await;
    let a = fake.add_issue(todo("a"));
    let t = adapter(&fake);
    fake.fail_next(
        None,
        LinearFailure::RateLimited {
            reset_in: Duration::from_secs(6),
        },
    );

    let reset = match t.fetch_candidates(&["Todo".into()]).await {
        Err(TrackerError::RateLimited { reset_at: Some(reset) }) => reset,
        other => panic!("expected a rate limit with a reset, got {other:?}"),
    };
    assert!(reset > chrono::Utc::now(), "the reset is in the future");
    let sent = fake.requests().len();
    assert!(matches!(
        t.move_state(&a, "Done").await,
        Err(TrackerError::RateLimited { .. })
    ));
    assert!(matches!(t.fetch_issue(&a).await, Err(TrackerError::RateLimited { .. })));
    assert_eq!(fake.requests().len(), sent, "nothing is sent before the reset");

    let got = eventually("the rate limit to reset", || async {
        t.fetch_candidates(&["Todo".into()]).await.ok()
    })
    .await;
    assert_eq!(got.len(), 1);
    assert!(chrono::Utc::now() >= reset);
}

#[tokio::test]
async fn an_http_429_honours_retry_after() {
    let fake = FakeLinear::start(KEY).await;
    fake.add_issue(todo("a"));
    let t = adapter(&fake);
    fake.fail_next(None, LinearFailure::TooManyRequests { retry_after_secs: 5 });
    let before = chrono::Utc::now();
    match t.fetch_candidates(&["Todo".into()]).await {
        Err(TrackerError::RateLimited { reset_at: Some(r) }) => {
            assert!(
                r >= before + chrono::Duration::milliseconds(4900),
                "{r} is about five seconds away"
            );
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    let sent = fake.requests().len();
    assert!(t.fetch_candidates(&["Todo".into()]).await.is_err());
    assert_eq!(fake.requests().len(), sent);
    eventually("the retry-after to pass", || async {
        t.fetch_candidates(&["Todo".into()]).await.ok()
    })
    .await;
}

#[tokio::test]
async fn polling_reads_leave_the_reserve_to_writes() {
    let fake = FakeLinear::start(KEY).await;
    let a = fake.add_issue(todo("a"));
    fake.set_rate_limit(1000, 101, Duration::from_secs(3600));
    let t = adapter(&fake);
    // 101 -> 100 remaining: exactly the 10 % reserve, still allowed.
    t.fetch_candidates(&["Todo".into()]).await.unwrap();
    t.fetch_candidates(&["Todo".into()]).await.unwrap();
    let sent = fake.requests().len();
    assert!(matches!(
        t.fetch_candidates(&["Todo".into()]).await,
        Err(TrackerError::RateLimited { reset_at: Some(_) })
    ));
    assert!(matches!(
        t.fetch_by_identifiers(std::slice::from_ref(&a)).await,
        Err(TrackerError::RateLimited { .. })
    ));
    assert_eq!(fake.requests().len(), sent, "shed reads are not sent");
    t.move_state(&a, "Done").await.unwrap();
    assert_eq!(fake.issue(&a).unwrap().state, "Done", "writes still go through");
    let budget = t.rate_budget().unwrap();
    assert_eq!(budget.limit, Some(1000));
    assert!(budget.remaining.unwrap() < 100);
}

#[tokio::test]
async fn errors_map_to_their_kinds() {
    let fake = FakeLinear::start(KEY).await;
    let a = fake.add_issue(todo("a"));
    let wrong = LinearTracker::new(
        &TrackerConfig {
            api_key: Some("wrong".into()),
            ..config(&fake)
        },
        10,
    )
    .unwrap();
    assert!(matches!(
        wrong.fetch_candidates(&["Todo".into()]).await,
        Err(TrackerError::Auth(_))
    ));

    let t = adapter(&fake);
    fake.fail_next(None, LinearFailure::ServerError);
    assert!(matches!(t.fetch_issue(&a).await, Err(TrackerError::Transport(_))));
    fake.fail_next(None, LinearFailure::NotJson);
    assert!(matches!(t.fetch_issue(&a).await, Err(TrackerError::Malformed(_))));

    let slow = adapter(&fake).with_request_timeout(Duration::from_millis(300)).unwrap();
    fake.fail_next(None, LinearFailure::Delay(Duration::from_secs(3)));
    match slow.fetch_issue(&a).await {
        Err(TrackerError::Transport(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}
