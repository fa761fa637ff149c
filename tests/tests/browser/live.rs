//! The web dashboard in real headless Chromium against a real `itervox run` controller with the
//! scripted demo agent (no fake API): a live run and its growing log, cancel and resume from the
//! buttons, a reply that resumes an input-required issue, a host added from the form, the token
//! prompt, and screenshots of the main screens in `target/screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use itervox_tests::browser::{Browser, wait_until};
use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::project::{IssueSpec, Project};

const LONG: Duration = Duration::from_secs(60);
const TOKEN: &str = "live-dashboard-token";

/// `target/screenshots/` of the workspace.
fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    fs_err::create_dir_all(&dir).unwrap();
    dir
}

/// A full-page screenshot, kept as `target/screenshots/{name}.png`.
async fn shot(browser: &Browser, name: &str) {
    let path = browser.screenshot_full_page(&format!("live-{name}")).await.unwrap();
    fs_err::copy(&path, screenshots_dir().join(format!("{name}.png"))).unwrap();
}

/// Fails the test when the page logged a script error (failed loads such as an expected 401 are not).
async fn assert_no_script_errors(browser: &Browser, name: &str) {
    let errors = browser.script_errors().await.unwrap();
    if !errors.is_empty() {
        browser.dump(&format!("live-{name}-script-errors")).await;
    }
    assert!(errors.is_empty(), "script errors on {name}: {errors:#?}");
}

/// Unwraps, dumping the page to `tests/artifacts/live-{name}.*` first when it failed.
async fn check<T, E: std::fmt::Display>(browser: &Browser, name: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => {
            browser.dump(&format!("live-{name}")).await;
            panic!("{name}: {err}");
        }
    }
}

fn row(testid: &str, identifier: &str) -> String {
    format!("[data-testid={testid}][data-identifier=\"{identifier}\"]")
}

/// A project with a few issues in every column, and its controller.
async fn start(issues: &[IssueSpec], env: &[(&str, &str)]) -> (Project, ControllerProcess, Api) {
    let mut all = issues.to_vec();
    all.push(IssueSpec::new("LIVE-8", "Backlog", "Not planned yet."));
    all.push(IssueSpec::new("LIVE-9", "Done", "Already done."));
    let project = Project::new(&all, "", "");
    let controller = ControllerProcess::start(&project.workflow, &project.state_dir, env)
        .await
        .expect("the controller starts");
    let token = env.iter().find(|(k, _)| *k == "ITERVOX_API_TOKEN").map(|(_, v)| *v);
    let api = Api::new(&controller.api(), token);
    (project, controller, api)
}

async fn open(controller: &ControllerProcess, path: &str) -> Browser {
    let browser = Browser::launch().await.expect("launch chromium");
    browser.goto(&format!("{}{path}", controller.base)).await.unwrap();
    browser
}

async fn wait_live(browser: &Browser) {
    let result = browser.wait_for_text("[data-testid=connection-status]", "Live").await;
    check(browser, "wait-live", result).await;
}

async fn log_lines(browser: &Browser) -> usize {
    browser
        .find_all("[data-testid=log-line]")
        .await
        .map(|l| l.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_streams_its_log_and_is_cancelled_and_resumed_from_the_buttons() {
    let (_project, controller, api) = start(&[IssueSpec::new("LIVE-1", "Todo", "[demo:sleep=60]")], &[]).await;
    let browser = open(&controller, "/").await;
    wait_live(&browser).await;

    let running = browser.wait_for(&row("running-row", "LIVE-1")).await;
    check(&browser, "running-row", running).await;
    shot(&browser, "overview").await;
    assert_no_script_errors(&browser, "overview").await;

    browser
        .goto(&format!("{}/issues/LIVE-1", controller.base))
        .await
        .unwrap();
    let state = browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "running")
        .await;
    check(&browser, "issue-running", state).await;
    let status = browser
        .wait_for_text("[data-testid=log-status]", "Following live")
        .await;
    check(&browser, "log-following", status).await;
    let first = wait_until(LONG, "a first log line", || async {
        Ok(Some(log_lines(&browser).await).filter(|n| *n > 0))
    })
    .await;
    let first = check(&browser, "first-log-line", first).await;
    // The agent keeps working: new lines arrive without reloading the page.
    let grown = wait_until(LONG, "the log to grow live", || async {
        Ok(Some(log_lines(&browser).await).filter(|n| *n > first))
    })
    .await;
    check(&browser, "log-grows", grown).await;
    shot(&browser, "issue-detail").await;

    browser.click("[data-testid=action-cancel]").await.unwrap();
    let paused = browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "paused")
        .await;
    check(&browser, "issue-paused", paused).await;
    let s = api
        .wait_state(LONG, "LIVE-1 paused", |s| snap::paused(s, "LIVE-1"))
        .await
        .unwrap();
    assert!(snap::running(&s, "LIVE-1").is_none(), "{s:#}");

    let resume = browser.find("[data-testid=action-resume]").await.unwrap();
    assert!(resume.is_enabled().await.unwrap());
    resume.click().await.unwrap();
    let s = api
        .wait_state(LONG, "LIVE-1 running again", |s| {
            !snap::paused(s, "LIVE-1") && snap::running(s, "LIVE-1").is_some()
        })
        .await
        .unwrap();
    assert!(
        snap::history(&s, "LIVE-1").iter().any(|r| r["status"] == "cancelled"),
        "the cancelled run is in the history: {s:#}"
    );
    let again = browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "running")
        .await;
    check(&browser, "issue-running-again", again).await;
    assert_no_script_errors(&browser, "issue page").await;

    // Stop the agent so it does not outlive the test.
    let (status, body) = api.call("POST", "/issues/LIVE-1/cancel", None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_resumes_the_agent_and_a_new_host_shows_in_the_pool() {
    let (project, controller, api) = start(
        &[IssueSpec::new(
            "LIVE-3",
            "Todo",
            "Pick a license. [demo:needs-input] [demo:sleep=1]",
        )],
        &[],
    )
    .await;
    let browser = open(&controller, "/").await;
    wait_live(&browser).await;

    let box_css = row("reply-box", "LIVE-3");
    let reply_box = browser.wait_for(&box_css).await;
    check(&browser, "reply-box", reply_box).await;
    let context = browser
        .text_of(&format!("{box_css} [data-testid=reply-context]"))
        .await
        .unwrap();
    assert!(!context.trim().is_empty(), "the question is shown");
    browser
        .type_into(&format!("{box_css} [data-testid=reply-input]"), "Use the MIT license.")
        .await
        .unwrap();
    browser
        .click(&format!("{box_css} [data-testid=reply-send]"))
        .await
        .unwrap();
    let gone = browser.wait_gone(&box_css).await;
    check(&browser, "reply-box-gone", gone).await;
    let s = api
        .wait_state(LONG, "the answered run to succeed", |s| {
            snap::history(s, "LIVE-3").iter().any(|r| r["status"] == "succeeded")
        })
        .await
        .unwrap();
    assert!(snap::input_required(&s, "LIVE-3").is_none(), "{s:#}");
    let logs = api.get("/issues/LIVE-3/logs").await.unwrap();
    assert!(logs.to_string().contains("MIT"), "the reply reached the agent: {logs}");
    let deadline = tokio::time::Instant::now() + LONG;
    while project.issue_state("LIVE-3").as_deref() != Some("Done") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            project.issue_text("LIVE-3")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_script_errors(&browser, "reply").await;

    browser.goto(&format!("{}/board", controller.base)).await.unwrap();
    let card = browser.wait_for(&row("issue-card", "LIVE-8")).await;
    check(&browser, "board", card).await;
    shot(&browser, "board").await;

    // A host that cannot be reached: it is listed, and shown as not up.
    browser.goto(&format!("{}/hosts", controller.base)).await.unwrap();
    wait_live(&browser).await;
    browser
        .type_into("[data-testid=add-host-host]", "builder@127.0.0.1:1")
        .await
        .unwrap();
    browser.click("[data-testid=add-host-submit]").await.unwrap();
    let host = "[data-testid=host-row][data-host=\"builder@127.0.0.1:1\"]";
    let added = browser.wait_for(host).await;
    check(&browser, "host-added", added).await;
    let status = wait_until(LONG, "the new host's status", || async {
        let status = browser.find(host).await?.attribute("data-status").await?;
        Ok(status.filter(|s| s == "down" || s == "connecting"))
    })
    .await;
    check(&browser, "host-status", status).await;
    let hosts = api.get("/ssh-hosts").await.unwrap();
    assert!(hosts.to_string().contains("builder@127.0.0.1:1"), "{hosts}");
    let workflow = std::fs::read_to_string(&project.workflow).unwrap();
    assert!(workflow.contains("127.0.0.1:1"), "persisted: {workflow}");
    shot(&browser, "hosts").await;

    browser.goto(&format!("{}/settings", controller.base)).await.unwrap();
    let settings = browser.wait_for("[data-testid=workers-current]").await;
    check(&browser, "settings", settings).await;
    shot(&browser, "settings").await;
    assert_no_script_errors(&browser, "board, hosts and settings").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_the_page_asks_for_it_and_then_works() {
    let (_project, controller, api) = start(
        &[IssueSpec::new("LIVE-5", "Todo", "[demo:sleep=60]")],
        &[("ITERVOX_API_TOKEN", TOKEN)],
    )
    .await;
    let (status, _) = Api::new(&controller.api(), None)
        .call("GET", "/state", None)
        .await
        .unwrap();
    assert_eq!(status, 401, "the API is locked");
    let browser = open(&controller, "/").await;

    let prompt = browser.wait_for("#token-prompt").await;
    check(&browser, "token-prompt", prompt).await;
    shot(&browser, "token-prompt").await;
    browser.type_into("#token-input", "not-the-token").await.unwrap();
    browser.click("#token-submit").await.unwrap();
    let rejected = browser.wait_for_text("#token-error", "rejected").await;
    check(&browser, "token-rejected", rejected).await;

    browser.type_into("#token-input", TOKEN).await.unwrap();
    browser.click("#token-submit").await.unwrap();
    wait_live(&browser).await;
    browser.wait_gone("#token-prompt").await.unwrap();
    let running = browser.wait_for(&row("running-row", "LIVE-5")).await;
    check(&browser, "token-running-row", running).await;
    browser
        .goto(&format!("{}/issues/LIVE-5", controller.base))
        .await
        .unwrap();
    let lines = wait_until(LONG, "log lines with the token", || async {
        Ok(Some(log_lines(&browser).await).filter(|n| *n > 0))
    })
    .await;
    check(&browser, "token-log", lines).await;
    assert_no_script_errors(&browser, "token").await;

    let (status, body) = api.call("POST", "/issues/LIVE-5/cancel", None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_itervox_demo_runs_its_sample_issues_live_in_the_dashboard() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = ControllerProcess::start_demo(&tmp.path().join("demo"), &[])
        .await
        .expect("itervox demo starts");
    let api = Api::new(&controller.api(), None);
    let s = api.state().await.unwrap();
    assert_eq!(s["demoMode"], true, "{s:#}");
    let browser = open(&controller, "/").await;
    wait_live(&browser).await;

    // The sample issues run, several at once.
    let running = wait_until(LONG, "two running sessions", || async {
        let rows = browser.find_all("[data-testid=running-row]").await?;
        Ok((rows.len() >= 2).then_some(rows.len()))
    })
    .await;
    check(&browser, "demo-running", running).await;

    // ITX-3 asks which license to use; the answer from the dashboard resumes it and it finishes.
    let box_css = row("reply-box", "ITX-3");
    let reply_box = browser.wait_for_within(&box_css, LONG).await;
    check(&browser, "demo-reply-box", reply_box).await;
    shot(&browser, "demo-overview").await;
    browser
        .type_into(&format!("{box_css} [data-testid=reply-input]"), "MIT, please.")
        .await
        .unwrap();
    browser
        .click(&format!("{box_css} [data-testid=reply-send]"))
        .await
        .unwrap();
    let gone = browser.wait_gone(&box_css).await;
    check(&browser, "demo-reply-sent", gone).await;
    api.wait_state(LONG, "ITX-3 to succeed", |s| {
        snap::history(s, "ITX-3").iter().any(|r| r["status"] == "succeeded")
    })
    .await
    .unwrap();
    assert_no_script_errors(&browser, "demo overview").await;

    // Stop the agents still running so they do not outlive the test.
    let s = api.state().await.unwrap();
    for r in s["running"].as_array().cloned().unwrap_or_default() {
        let id = r["identifier"].as_str().unwrap_or_default();
        let _ = api.call("POST", &format!("/issues/{id}/cancel"), None).await;
    }
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_issue_with_a_hash_identifier_has_a_working_page_and_live_log() {
    use itervox_tests::fake_github::{FakeGithub, NewGithubIssue};
    let fake = FakeGithub::start("octo/widgets", "ghp_live").await;
    let n = fake.add_issue(NewGithubIssue {
        body: Some("[demo:sleep=60]".into()),
        ..NewGithubIssue::new("Hash identifiers", &["Todo"])
    });
    let tracker = format!(
        "tracker:\n  kind: github\n  api_key: $GITHUB_TOKEN\n  endpoint: {}\n  project_slug: octo/widgets\n  \
         active_states: [Todo, In Progress]\n  terminal_states: [Done]\n  working_state: In Progress\n  \
         completion_state: Done\n",
        fake.url()
    );
    let project = Project::with_tracker(&[], &tracker, "", "");
    let controller = ControllerProcess::start(&project.workflow, &project.state_dir, &[("GITHUB_TOKEN", "ghp_live")])
        .await
        .expect("the controller starts");
    let api = Api::new(&controller.api(), None);
    let id = format!("#{n}");
    let browser = open(&controller, "/").await;
    wait_live(&browser).await;

    let link = format!("{} a", row("running-row", &id));
    let running = browser.wait_for(&link).await;
    check(&browser, "github-running-row", running).await;
    // The overview re-renders its rows on every snapshot: a row found a moment ago may be gone.
    let clicked = wait_until(LONG, "a click on the running row's link", || async {
        Ok(browser.click(&link).await.ok())
    })
    .await;
    check(&browser, "github-click-row", clicked).await;
    let state = browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "running")
        .await;
    check(&browser, "github-issue-running", state).await;
    assert_eq!(
        browser.current_url().await.unwrap(),
        format!("{}/issues/%23{n}", controller.base)
    );
    let description = browser
        .wait_for_text("[data-testid=issue-description]", "[demo:sleep=60]")
        .await;
    check(&browser, "github-issue-description", description).await;
    let status = browser
        .wait_for_text("[data-testid=log-status]", "Following live")
        .await;
    check(&browser, "github-log-following", status).await;
    let first = wait_until(LONG, "a first log line", || async {
        Ok(Some(log_lines(&browser).await).filter(|n| *n > 0))
    })
    .await;
    let first = check(&browser, "github-first-log-line", first).await;
    let grown = wait_until(LONG, "the log to grow live", || async {
        Ok(Some(log_lines(&browser).await).filter(|n| *n > first))
    })
    .await;
    check(&browser, "github-log-grows", grown).await;

    browser.click("[data-testid=action-cancel]").await.unwrap();
    api.wait_state(LONG, "the issue paused", |s| snap::paused(s, &id))
        .await
        .unwrap();
    assert_no_script_errors(&browser, "github issue page").await;
    browser.quit().await;
}
