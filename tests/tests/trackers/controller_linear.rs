//! The real controller against the fake Linear: dispatch and completion moves, the question comment
//! posted once across a restart, a failing tracker (readiness, `lastTrackerError`), failing writes
//! retried from the outbox, the project filter, and the rate-limit budget (and a rate limit) in the snapshot.

use std::time::Duration;

use itervox_tests::controller::snap;
use itervox_tests::fake_linear::{FakeLinear, LinearFailure, NewLinearIssue};
use serde_json::json;

use crate::controlled::{LINEAR_KEY, LONG, linear_project, ready, start, succeeded, until};

fn issue(title: &str, state: &str, description: &str) -> NewLinearIssue {
    NewLinearIssue {
        description: Some(description.into()),
        ..NewLinearIssue::new(title, state)
    }
}

fn state_of(fake: &FakeLinear, id: &str) -> String {
    fake.issue(id).map(|i| i.state).unwrap_or_default()
}

fn questions(fake: &FakeLinear, id: &str) -> usize {
    fake.issue(id)
        .map(|i| i.comments.iter().filter(|c| c.contains("needs your input")).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn linear_dispatch_moves_the_issue_and_the_question_is_posted_once_across_a_restart() {
    let fake = FakeLinear::start(LINEAR_KEY).await;
    let work = fake.add_issue(issue("Tidy the README", "Todo", "[demo:sleep=6]"));
    let ask = fake.add_issue(issue("Pick a license", "Todo", "[demo:needs-input] [demo:sleep=1]"));
    // The first question comment's answer is lost: the outbox cannot know it landed and must not post it twice.
    fake.fail_next(Some("ItervoxCommentCreate"), LinearFailure::LoseResponse);
    let project = linear_project(&fake.url(), "");
    let (controller, api) = start(&project).await;

    until("the issue moved to the working state", &controller, || {
        (state_of(&fake, &work) == "In Progress").then_some(())
    })
    .await;
    let s = api
        .wait_state(LONG, "the run to be listed", |s| {
            snap::running(s, &work).is_some() || succeeded(s, &work)
        })
        .await
        .unwrap();
    assert!(
        snap::history(&s, &work).iter().all(|r| r["status"] != "failed"),
        "{s:#}"
    );
    until("the issue moved to the completion state", &controller, || {
        (state_of(&fake, &work) == "Done").then_some(())
    })
    .await;
    let s = api
        .wait_state(LONG, "a succeeded run", |s| succeeded(s, &work))
        .await
        .unwrap();
    assert_eq!(snap::history(&s, &work).len(), 1, "one run: {s:#}");

    api.wait_state(LONG, "the question", |s| snap::input_required(s, &ask).is_some())
        .await
        .unwrap();
    until("the question comment in Linear", &controller, || {
        (questions(&fake, &ask) > 0).then_some(())
    })
    .await;
    let marker_checks = fake.count("ItervoxCommentWithMarker");
    assert!(
        marker_checks >= 1,
        "after a lost answer the outbox asks before posting again"
    );

    let mut controller = controller;
    controller.kill9().await;
    let controller = controller.restart().await.unwrap();
    let api = itervox_tests::controller::Api::new(&controller.api(), None);
    let polls = fake.count("ItervoxIssues");
    until("five polls after the restart", &controller, || {
        (fake.count("ItervoxIssues") >= polls + 5).then_some(())
    })
    .await;
    let s = api.state().await.unwrap();
    assert!(
        snap::input_required(&s, &ask).is_some(),
        "still waiting for input: {s:#}"
    );
    assert_eq!(questions(&fake, &ask), 1, "{:?}", fake.issue(&ask));

    // A reply in a tracker comment resumes the session, which then finishes.
    fake.add_comment(&ask, "Ada", "Use the MIT license.");
    until("the answered issue in the completion state", &controller, || {
        (state_of(&fake, &ask) == "Done").then_some(())
    })
    .await;
    api.wait_state(LONG, "the answered issue's run to succeed", |s| succeeded(s, &ask))
        .await
        .unwrap();
    assert_eq!(questions(&fake, &ask), 1, "{:?}", fake.issue(&ask));
    // Each move is sent once (a move still queued when the next one of its issue comes is replaced by it).
    let moves: Vec<(String, String)> = fake
        .requests()
        .iter()
        .filter(|r| r.operation_name == "ItervoxIssueUpdateState")
        .map(|r| {
            let state = fake.state_name(r.variables["stateId"].as_str().unwrap_or_default());
            (r.variables["id"].as_str().unwrap_or_default().to_string(), state)
        })
        .collect();
    let distinct: std::collections::HashSet<&(String, String)> = moves.iter().collect();
    assert_eq!(distinct.len(), moves.len(), "a move was sent twice: {moves:?}");
    assert!(
        moves.iter().all(|(_, state)| state == "In Progress" || state == "Done"),
        "{moves:?}"
    );
    for id in [&work, &ask] {
        let uuid = fake.issue(id).unwrap().id;
        assert!(moves.contains(&(uuid, "Done".to_string())), "{id}: {moves:?}");
    }
    let work_uuid = fake.issue(&work).unwrap().id;
    assert!(moves.contains(&(work_uuid, "In Progress".to_string())), "{moves:?}");
}

#[tokio::test]
async fn linear_outage_keeps_sessions_running_and_fails_readiness_after_three_polls() {
    let fake = FakeLinear::start(LINEAR_KEY).await;
    let work = fake.add_issue(issue("Long task", "Todo", "[demo:sleep=40]"));
    let project = linear_project(&fake.url(), "");
    let (controller, api) = start(&project).await;

    api.wait_state(LONG, "the run", |s| snap::running(s, &work).is_some())
        .await
        .unwrap();
    assert_eq!(ready(&api).await.0, 200);

    // Two failed polls in a row: reported, still ready.
    for _ in 0..2 {
        fake.fail_next(Some("ItervoxIssues"), LinearFailure::ServerError);
    }
    // Then a slow success: the reported error stays in the snapshot for seconds, not one poll
    // interval, so a stalled test machine still sees it.
    fake.fail_next(Some("ItervoxIssues"), LinearFailure::Delay(Duration::from_secs(4)));
    let s = api
        .wait_state(LONG, "a reported tracker error", |s| {
            s["lastTrackerError"]["consecutiveFailures"].as_u64() >= Some(1)
        })
        .await
        .unwrap();
    assert_eq!(s["lastTrackerError"]["op"], "poll", "{s:#}");
    let (status, body) = ready(&api).await;
    assert_eq!(status, 200, "one or two failed polls do not fail readiness: {body}");
    api.wait_state(LONG, "the error to clear", |s| s.get("lastTrackerError").is_none())
        .await
        .unwrap();

    // An outage: every poll fails for a while (about 9 s at the 300 ms poll interval).
    for _ in 0..30 {
        fake.fail_next(Some("ItervoxIssues"), LinearFailure::ServerError);
    }
    let deadline = tokio::time::Instant::now() + LONG;
    let down = loop {
        let (status, body) = ready(&api).await;
        if status == 503 {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "never unready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(down["ready"], false, "{down}");
    let s = api.state().await.unwrap();
    assert!(
        s["lastTrackerError"]["consecutiveFailures"].as_u64() >= Some(3),
        "unready only after three failures: {s:#}"
    );
    assert!(snap::running(&s, &work).is_some(), "the session keeps running: {s:#}");

    // The outage ends: ready again, the error gone, the session still there.
    let deadline = tokio::time::Instant::now() + LONG;
    while ready(&api).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = api
        .wait_state(LONG, "the error to clear", |s| s.get("lastTrackerError").is_none())
        .await
        .unwrap();
    assert!(
        snap::running(&s, &work).is_some() || succeeded(&s, &work),
        "the session survived the outage: {s:#}"
    );
    assert!(
        snap::history(&s, &work).iter().all(|r| r["status"] == "succeeded"),
        "{s:#}"
    );
    drop(controller);
}

#[tokio::test]
async fn linear_failing_state_moves_are_retried_from_the_outbox_and_land_once() {
    let fake = FakeLinear::start(LINEAR_KEY).await;
    let work = fake.add_issue(issue("Flaky writes", "Todo", "[demo:sleep=2]"));
    for _ in 0..3 {
        fake.fail_next(Some("ItervoxIssueUpdateState"), LinearFailure::ServerError);
    }
    let project = linear_project(&fake.url(), "");
    let (controller, api) = start(&project).await;

    until("the issue in the completion state", &controller, || {
        (state_of(&fake, &work) == "Done").then_some(())
    })
    .await;
    let s = api
        .wait_state(LONG, "the run to succeed", |s| succeeded(s, &work))
        .await
        .unwrap();
    let updates = fake.count("ItervoxIssueUpdateState");
    assert!(
        updates >= 4,
        "three failures, then at least one move that lands: {updates}"
    );
    // Nothing more is written, and the issue is not dispatched again.
    let polls = fake.count("ItervoxIssues");
    until("five more polls", &controller, || {
        (fake.count("ItervoxIssues") >= polls + 5).then_some(())
    })
    .await;
    assert_eq!(fake.count("ItervoxIssueUpdateState"), updates, "each move lands once");
    assert_eq!(state_of(&fake, &work), "Done");
    let s2 = api.state().await.unwrap();
    assert_eq!(snap::history(&s2, &work).len(), 1, "one run: {s:#}");
}

#[tokio::test]
async fn linear_projects_and_the_persisted_project_filter() {
    let fake = FakeLinear::start(LINEAR_KEY).await;
    fake.add_project("Alpha", "alpha-1a2b");
    fake.add_project("Beta", "beta-3c4d");
    let a = fake.add_issue(NewLinearIssue {
        project: Some("alpha-1a2b".into()),
        ..NewLinearIssue::new("In alpha", "Backlog")
    });
    let b = fake.add_issue(NewLinearIssue {
        project: Some("beta-3c4d".into()),
        ..NewLinearIssue::new("In beta", "Backlog")
    });
    fake.set_rate_limit(1500, 1400, Duration::from_secs(3600));
    let project = linear_project(&fake.url(), "  project_slug: alpha-1a2b\n");
    let (controller, api) = start(&project).await;

    let projects = api.get("/projects").await.unwrap();
    let slugs: Vec<&str> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["alpha-1a2b", "beta-3c4d"], "{projects}");
    assert_eq!(projects["projects"][0]["name"], "Alpha");
    assert_eq!(api.get("/projects/filter").await.unwrap(), json!({"filter": null}));

    let listed = |api: &itervox_tests::controller::Api| {
        let api = api.clone();
        async move {
            let issues = api.get("/issues").await.unwrap();
            let mut ids: Vec<String> = issues
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["identifier"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    let deadline = tokio::time::Instant::now() + LONG;
    while listed(&api).await != [a.clone()] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "default filter (project_slug) never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The rate-limit headers feed the snapshot.
    let s = api
        .wait_state(LONG, "the rate limits", |s| s["rateLimits"]["requestsLimit"] == 1500)
        .await
        .unwrap();
    let remaining = s["rateLimits"]["requestsRemaining"].as_u64().unwrap();
    assert!(remaining < 1400 && remaining > 1000, "{s:#}");
    assert!(s["rateLimits"]["requestsReset"].is_string(), "{s:#}");

    let (status, body) = api
        .call("PUT", "/projects/filter", Some(json!({"slugs": ["beta-3c4d"]})))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["filter"], json!(["beta-3c4d"]), "{body}");
    assert_eq!(
        api.get("/projects/filter").await.unwrap(),
        json!({"filter": ["beta-3c4d"]})
    );
    let text = std::fs::read_to_string(&project.workflow).unwrap();
    assert!(text.contains("project_filter") && text.contains("beta-3c4d"), "{text}");
    let deadline = tokio::time::Instant::now() + LONG;
    while listed(&api).await != [b.clone()] {
        assert!(tokio::time::Instant::now() < deadline, "the new filter never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.operation_name == "ItervoxIssues")
        .unwrap();
    assert!(
        last.variables["filter"].to_string().contains("beta-3c4d"),
        "{:?}",
        last.variables
    );

    // The filter survives a restart (it is in WORKFLOW.md).
    let mut controller = controller;
    controller.terminate().await.unwrap();
    let controller = controller.restart().await.unwrap();
    let api = itervox_tests::controller::Api::new(&controller.api(), None);
    assert_eq!(
        api.get("/projects/filter").await.unwrap(),
        json!({"filter": ["beta-3c4d"]})
    );
    let deadline = tokio::time::Instant::now() + LONG;
    while listed(&api).await != [b.clone()] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the persisted filter was not applied after a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // [] = all projects.
    let (status, body) = api
        .call("PUT", "/projects/filter", Some(json!({"slugs": []})))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    let deadline = tokio::time::Instant::now() + LONG;
    while listed(&api).await != both {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the empty filter never listed both"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn linear_rate_limit_shows_in_the_snapshot_and_polling_resumes_after_the_reset() {
    let fake = FakeLinear::start(LINEAR_KEY).await;
    let idle = fake.add_issue(NewLinearIssue::new("Not yet", "Backlog"));
    let project = linear_project(&fake.url(), "");
    let (controller, api) = start(&project).await;
    api.wait_state(LONG, "a first poll", |s| s["rateLimits"]["requestsLimit"] == 5000)
        .await
        .unwrap();

    fake.fail_next(
        Some("ItervoxIssues"),
        // Long enough that the snapshot still shows the limit when a stalled test machine looks.
        LinearFailure::RateLimited {
            reset_in: Duration::from_secs(10),
        },
    );
    let s = api
        .wait_state(LONG, "the rate limit", |s| {
            s["lastTrackerError"]["kind"] == "rate_limited"
        })
        .await
        .unwrap();
    assert!(s["lastTrackerError"]["resetAt"].is_string(), "{s:#}");
    assert_eq!(s["rateLimits"]["requestsRemaining"], 0, "{s:#}");
    // After the reset polling resumes and the error clears.
    let during = fake.count("ItervoxIssues");
    let s = api
        .wait_state(LONG, "polling to resume", |s| {
            s.get("lastTrackerError").is_none() && s["rateLimits"]["requestsRemaining"].as_u64() > Some(0)
        })
        .await
        .unwrap();
    assert!(fake.count("ItervoxIssues") > during, "{s:#}");
    let issues = api.get("/issues").await.unwrap();
    assert!(issues.to_string().contains(&idle), "{issues}");
    drop(controller);
}
