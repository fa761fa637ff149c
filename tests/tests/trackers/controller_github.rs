//! The real controller against the fake GitHub: dispatch and completion as label moves and a close,
//! the question comment posted once across a restart, the rate-limit budget in the snapshot, and the
//! Linear-only project routes answering `not_supported`.

use std::time::Duration;

use itervox_tests::controller::{Api, snap};
use itervox_tests::fake_github::{FakeGithub, GithubFailure, NewGithubIssue};

use crate::controlled::{GITHUB_TOKEN, LONG, github_project, start, succeeded, until};

fn issue(title: &str, label: &str, body: &str) -> NewGithubIssue {
    NewGithubIssue {
        body: Some(body.into()),
        ..NewGithubIssue::new(title, &[label, "enhancement"])
    }
}

fn questions(fake: &FakeGithub, n: u64) -> usize {
    fake.issue(n)
        .map(|i| i.comments.iter().filter(|c| c.contains("needs your input")).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn github_dispatch_moves_labels_closes_and_posts_the_question_once_across_a_restart() {
    let fake = FakeGithub::start("octo/widgets", GITHUB_TOKEN).await;
    // Long enough that the working-state label lands (after one failed attempt and its 2 s backoff)
    // before the run finishes and its completion move would supersede it.
    let work = fake.add_issue(issue("Tidy the README", "Todo", "[demo:sleep=30]"));
    let ask = fake.add_issue(issue("Pick a license", "Todo", "[demo:needs-input] [demo:sleep=1]"));
    fake.set_rate_limit(5000, 4321, Duration::from_secs(3600));
    // A state-label write fails before the tracker takes it.
    fake.fail_next(Some("POST"), Some("/labels"), GithubFailure::ServerError);
    // The question comment fails twice (retried after 2 s, then 4 s).
    let ask_comments = format!("/issues/{ask}/comments");
    fake.fail_next(Some("POST"), Some(&ask_comments), GithubFailure::ServerError);
    fake.fail_next(Some("POST"), Some(&ask_comments), GithubFailure::ServerError);
    let project = github_project(&fake.url());
    let (mut controller, _) = start(&project).await;
    let (work_id, ask_id) = (format!("#{work}"), format!("#{ask}"));
    let question_posts = |ok: bool| {
        fake.requests()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method == "POST" && r.path.ends_with(&ask_comments) && (r.status < 300) == ok)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };

    // The controller dies while the question comment waits in its outbox; the next one posts it.
    until("a failed question post", &controller, || {
        (!question_posts(false).is_empty()).then_some(())
    })
    .await;
    controller.kill9().await;
    let at_restart = fake.requests().len();
    let controller = controller.restart().await.unwrap();
    let api = Api::new(&controller.api(), None);
    until("the question comment", &controller, || {
        (questions(&fake, ask) > 0).then_some(())
    })
    .await;
    let posted = question_posts(true);
    assert_eq!(posted.len(), 1, "{:?}", fake.issue(ask));
    assert!(
        posted[0] >= at_restart,
        "the restarted controller posted it from the outbox"
    );
    api.wait_state(LONG, "the question", |s| snap::input_required(s, &ask_id).is_some())
        .await
        .unwrap();
    // `#` travels percent-encoded in API paths.
    let detail = api.get(&format!("/issues/%23{ask}")).await.unwrap();
    assert_eq!(detail["identifier"], ask_id, "{detail:#}");
    assert_eq!(detail["orchestratorState"], "input_required", "{detail:#}");

    until("the working-state label", &controller, || {
        let i = fake.issue(work)?;
        (i.labels.iter().any(|l| l == "In Progress") || !i.open).then_some(())
    })
    .await;
    until("the issue closed as done", &controller, || {
        fake.issue(work).is_some_and(|i| !i.open).then_some(())
    })
    .await;
    let s = api
        .wait_state(LONG, "a succeeded run", |s| succeeded(s, &work_id))
        .await
        .unwrap();
    let closed = fake.issue(work).unwrap();
    assert!(
        closed.labels.contains(&"enhancement".to_string()),
        "other labels stay: {closed:?}"
    );
    assert!(
        !closed.labels.iter().any(|l| l == "In Progress" || l == "Todo"),
        "{closed:?}"
    );
    let adds: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path == format!("/repos/octo/widgets/issues/{work}/labels") && r.status < 300
        })
        .map(|r| r.body.clone().unwrap_or_default().to_string())
        .collect();
    assert!(
        adds.iter().any(|b| b.contains("In Progress")),
        "moved to the working state first: {adds:?}"
    );
    assert!(
        snap::history(&s, &work_id).iter().all(|r| r["status"] == "succeeded"),
        "{s:#}"
    );

    // The rate-limit headers feed the snapshot.
    let s = api
        .wait_state(LONG, "the rate limits", |s| s["rateLimits"]["requestsLimit"] == 5000)
        .await
        .unwrap();
    let remaining = s["rateLimits"]["requestsRemaining"].as_u64().unwrap();
    assert!(remaining <= 4321 && remaining > 4000, "{s:#}");
    assert!(remaining >= fake.remaining(), "the budget an answer reported: {s:#}");

    // Projects are Linear-only.
    for (method, path, body) in [
        ("GET", "/projects", None),
        ("GET", "/projects/filter", None),
        ("PUT", "/projects/filter", Some(serde_json::json!({"slugs": ["x"]}))),
    ] {
        let (status, body) = api.call(method, path, body).await.unwrap();
        assert_eq!(status, 501, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_supported", "{method} {path}: {body}");
    }

    // More polls post nothing again; a reply in a comment resumes the session, which finishes.
    let seen = fake.requests().len();
    until("more tracker traffic", &controller, || {
        (fake.requests().len() >= seen + 10).then_some(())
    })
    .await;
    assert_eq!(questions(&fake, ask), 1, "{:?}", fake.issue(ask));
    fake.add_comment(ask, "ada", "Use the MIT license.");
    until("the answered issue closed", &controller, || {
        fake.issue(ask).is_some_and(|i| !i.open).then_some(())
    })
    .await;
    assert_eq!(questions(&fake, ask), 1, "{:?}", fake.issue(ask));
}

#[tokio::test]
async fn local_tracker_has_no_projects() {
    let project = itervox_tests::project::Project::new(&[], "", "");
    let (_controller, api) = start(&project).await;
    for path in ["/projects", "/projects/filter"] {
        let (status, body) = api.call("GET", path, None).await.unwrap();
        assert_eq!(status, 501, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_supported", "{path}: {body}");
    }
}
