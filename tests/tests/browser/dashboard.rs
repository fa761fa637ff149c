//! The web dashboard in real headless Chromium: served by `itervox::dashboard::router()` next to
//! an `/api/v1` that only answers 401, or next to the scripted fake API of `fake_api.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::any;
use itervox_protocol::LogEventKind;
use itervox_protocol::api::{ConfigInvalid, RunningRow, TrackerErrorInfo};
use itervox_tests::browser::{Browser, PageServer, wait_until};
use serde_json::{Value, json};

use crate::fake_api::{FakeApi, busy_snapshot, empty_snapshot, log_line, sample_issues};

const TOKEN: &str = "s3cret-token";

/// Fails the test if the page logged a script error (uncaught exception, console.error, CSP
/// violation); failed network loads, such as an expected 401, are not script errors.
async fn assert_no_script_errors(browser: &Browser, name: &str) {
    let errors = browser.script_errors().await.unwrap();
    if !errors.is_empty() {
        browser.dump(&format!("{name}-script-errors")).await;
    }
    assert!(errors.is_empty(), "script errors on {name}: {errors:#?}");
}

/// Opens `path` of a server running `app` in a fresh browser.
async fn open(app: Router, path: &str) -> (PageServer, Browser) {
    let server = PageServer::start(app).await.expect("bind loopback");
    let browser = Browser::launch().await.expect("launch chromium");
    browser.goto(&server.url(path)).await.unwrap();
    (server, browser)
}

/// Unwraps, dumping the page to `tests/artifacts/{name}.*` first when it failed.
async fn check<T, E: std::fmt::Display>(browser: &Browser, name: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => {
            browser.dump(name).await;
            panic!("{name}: {err}");
        }
    }
}

async fn wait_live(browser: &Browser) {
    let result = browser.wait_for_text("[data-testid=connection-status]", "Live").await;
    check(browser, "wait-live", result).await;
}

fn row(testid: &str, identifier: &str) -> String {
    format!("[data-testid={testid}][data-identifier=\"{identifier}\"]")
}

// ---- Token ------------------------------------------------------------------------------------

/// What the locked API saw: each request's URI and Authorization header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// The API answers every call with 401 and remembers the Authorization headers it saw.
fn locked_api(seen: Seen) -> Router {
    let handler = move |uri: Uri, headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            seen.lock().unwrap().push((uri.to_string(), auth));
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}})),
            )
                .into_response()
        }
    };
    Router::new()
        .route("/api/v1/{*rest}", any(handler))
        .merge(itervox::dashboard::router())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_only_answers_401_gets_the_token_prompt_and_the_typed_token() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (_server, browser) = open(locked_api(seen.clone()), "/").await;

    let prompt = browser.wait_for("#token-prompt").await;
    check(&browser, "locked-prompt", prompt).await;
    assert_eq!(
        browser.text_of("[data-testid=connection-status]").await.unwrap(),
        "Token needed"
    );
    browser.screenshot("dashboard-token-prompt").await.unwrap();
    assert_no_script_errors(&browser, "locked page").await;

    browser.type_into("#token-input", "typed-token").await.unwrap();
    browser.click("#token-submit").await.unwrap();

    let seen_header = wait_until(Duration::from_secs(20), "a request with the typed token", || async {
        Ok(seen
            .lock()
            .unwrap()
            .iter()
            .find(|(_, auth)| auth.as_deref() == Some("Bearer typed-token"))
            .cloned())
    })
    .await
    .unwrap();
    assert!(seen_header.0.starts_with("/api/v1/"), "{seen_header:?}");

    // Still 401: the prompt comes back and says the token was rejected.
    let error = browser.wait_for_text("#token-error", "rejected").await;
    check(&browser, "locked-rejected", error).await;
    browser.wait_for("#token-prompt").await.unwrap();
    assert_no_script_errors(&browser, "locked page after a wrong token").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_unlocks_the_dashboard_and_rides_on_every_call() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    fake.update(|w| w.token = Some(TOKEN.into()));
    let (_server, browser) = open(fake.app(), "/").await;

    browser.wait_for("#token-prompt").await.unwrap();
    browser.type_into("#token-input", "wrong").await.unwrap();
    browser.click("#token-submit").await.unwrap();
    browser.wait_for_text("#token-error", "rejected").await.unwrap();

    browser.type_into("#token-input", TOKEN).await.unwrap();
    browser.click("#token-submit").await.unwrap();
    wait_live(&browser).await;
    browser.wait_gone("#token-prompt").await.unwrap();
    browser.wait_for_count("[data-testid=running-row]", 2).await.unwrap();

    let bearer = format!("Bearer {TOKEN}");
    fake.wait_for_request("GET /state with the token", |r| {
        r.path == "/state" && r.authorization.as_deref() == Some(bearer.as_str())
    })
    .await;
    // EventSource cannot send headers: the token rides in the query.
    fake.wait_for_request("GET /events with ?token=", |r| {
        r.path == "/events" && r.query == format!("token={TOKEN}")
    })
    .await;
    let stored = browser
        .execute("return sessionStorage.getItem('itervox.apiToken');", vec![])
        .await
        .unwrap();
    assert_eq!(stored, TOKEN);

    // Reloading keeps the tab's token: no prompt.
    browser.refresh().await.unwrap();
    wait_live(&browser).await;
    assert!(
        !browser
            .find("#token-prompt")
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    assert_no_script_errors(&browser, "token unlock").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_address_is_taken_once_and_removed_from_it() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    fake.update(|w| w.token = Some(TOKEN.into()));
    let (server, browser) = open(fake.app(), &format!("/hosts?token={TOKEN}")).await;

    wait_live(&browser).await;
    assert_eq!(browser.current_url().await.unwrap(), server.url("/hosts"));
    browser.wait_for_count("[data-testid=host-row]", 2).await.unwrap();
    assert!(
        !browser
            .find("#token-prompt")
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    let bearer = format!("Bearer {TOKEN}");
    fake.wait_for_request("GET /state with the token", |r| {
        r.path == "/state" && r.authorization.as_deref() == Some(bearer.as_str())
    })
    .await;
    assert_no_script_errors(&browser, "token in address").await;
    browser.quit().await;
}

// ---- Overview ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_the_snapshot_and_follows_its_changes() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (_server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;

    let capacity = browser.text_of("[data-testid=stat-capacity]").await.unwrap();
    assert!(capacity.contains("2 / 4"), "{capacity}");
    let tokens = browser.text_of("[data-testid=stat-tokens]").await.unwrap();
    assert!(tokens.contains("70.7k / 18.4k"), "{tokens}");
    let cost = browser.text_of("[data-testid=stat-cost]").await.unwrap();
    assert!(cost.contains("$1.23"), "{cost}");

    let demo1 = browser.text_of(&row("running-row", "DEMO-1")).await.unwrap();
    for needle in [
        "Add the login endpoint",
        "build-1",
        "claude",
        "backend",
        "cargo test -p api",
        "15.3k",
    ] {
        assert!(demo1.contains(needle), "{needle:?} missing from {demo1:?}");
    }
    let demo2 = browser.text_of(&row("running-row", "DEMO-2")).await.unwrap();
    for needle in ["local", "codex", "reviewer", "review"] {
        assert!(demo2.contains(needle), "{needle:?} missing from {demo2:?}");
    }

    // The elapsed time counts up between snapshots.
    let elapsed_css = format!("{} [data-testid=running-elapsed]", row("running-row", "DEMO-1"));
    let first = browser.text_of(&elapsed_css).await.unwrap();
    assert!(first.starts_with("2m "), "{first}");
    wait_until(Duration::from_secs(20), "the elapsed time to tick", || async {
        let now = browser.text_of(&elapsed_css).await?;
        Ok((now != first).then_some(()))
    })
    .await
    .unwrap();

    let retry = browser.text_of(&row("retry-row", "DEMO-3")).await.unwrap();
    assert!(
        retry.contains("2 / 5") && retry.contains("agent exited with status 1"),
        "{retry}"
    );
    let due = browser
        .text_of(&format!("{} [data-testid=retry-due]", row("retry-row", "DEMO-3")))
        .await
        .unwrap();
    assert!(due.starts_with("in 9m") || due.starts_with("in 10m"), "{due}");
    let paused = browser.text_of(&row("paused-row", "DEMO-4")).await.unwrap();
    assert!(paused.contains("open PR awaiting review"), "{paused}");

    let history = browser.find_all("[data-testid=history-row]").await.unwrap();
    let mut order = Vec::new();
    for r in &history {
        order.push(r.attribute("data-identifier").await.unwrap().unwrap_or_default());
    }
    assert_eq!(order, ["DEMO-9", "DEMO-8"], "history is newest first");
    let old = browser.text_of(&row("history-row", "DEMO-8")).await.unwrap();
    assert!(
        old.contains("failed") && old.contains("build-2") && old.contains("turn limit reached"),
        "{old}"
    );

    // A new snapshot arrives over SSE and shows without a reload.
    fake.update(|w| {
        w.snapshot.running.push(RunningRow {
            identifier: "DEMO-6".into(),
            state: "Todo".into(),
            started_at: w.snapshot.generated_at.clone(),
            worker_host: Some("build-9".into()),
            ..RunningRow::default()
        });
    });
    browser.wait_for(&row("running-row", "DEMO-6")).await.unwrap();
    browser
        .wait_for_text("[data-testid=stat-capacity]", "3 / 4")
        .await
        .unwrap();
    browser.screenshot("dashboard-overview").await.unwrap();
    assert_no_script_errors(&browser, "overview").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_resume_from_the_overview_send_their_requests() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (_server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;

    browser
        .click(&format!("{} [data-testid=action-cancel]", row("running-row", "DEMO-1")))
        .await
        .unwrap();
    fake.wait_for_request("POST cancel", |r| {
        r.method == "POST" && r.path == "/issues/DEMO-1/cancel"
    })
    .await;
    browser
        .wait_for_text("[data-testid=toast-ok]", "DEMO-1 cancelled")
        .await
        .unwrap();
    let paused = browser
        .wait_for_text(&row("paused-row", "DEMO-1"), "cancelled from the dashboard")
        .await;
    check(&browser, "cancel", paused).await;
    assert!(
        browser
            .find_all(&row("running-row", "DEMO-1"))
            .await
            .unwrap()
            .is_empty()
    );

    browser
        .click(&format!("{} [data-testid=action-resume]", row("paused-row", "DEMO-1")))
        .await
        .unwrap();
    fake.wait_for_request("POST resume", |r| {
        r.method == "POST" && r.path == "/issues/DEMO-1/resume"
    })
    .await;
    browser.wait_gone(&row("paused-row", "DEMO-1")).await.unwrap();

    // Terminate asks first; cancelling the dialog sends nothing.
    browser
        .click(&format!(
            "{} [data-testid=action-terminate]",
            row("running-row", "DEMO-2")
        ))
        .await
        .unwrap();
    browser.wait_for("#confirm-dialog").await.unwrap();
    browser.click("[data-testid=confirm-cancel]").await.unwrap();
    browser.wait_gone("#confirm-dialog").await.unwrap();
    browser
        .click(&format!(
            "{} [data-testid=action-terminate]",
            row("running-row", "DEMO-2")
        ))
        .await
        .unwrap();
    browser.click("[data-testid=confirm-ok]").await.unwrap();
    fake.wait_for_request("POST terminate", |r| {
        r.method == "POST" && r.path == "/issues/DEMO-2/terminate"
    })
    .await;
    let terminates = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/issues/DEMO-2/terminate")
        .count();
    assert_eq!(terminates, 1);
    assert_no_script_errors(&browser, "cancel and resume").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_box_keeps_typed_text_across_snapshots_and_sends_it() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (_server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;

    let box_css = "[data-testid=reply-box][data-identifier=\"DEMO-5\"]";
    let context = browser
        .text_of(&format!("{box_css} [data-testid=reply-context]"))
        .await
        .unwrap();
    assert!(context.contains("Redis or SQLite"), "{context}");

    let input = format!("{box_css} [data-testid=reply-input]");
    browser.type_into(&input, "Use SQLite").await.unwrap();
    // A snapshot arrives while the answer is being written.
    fake.update(|w| w.snapshot.max_concurrent_agents = 6);
    browser
        .wait_for_text("[data-testid=stat-capacity]", "/ 6")
        .await
        .unwrap();
    browser
        .find(&input)
        .await
        .unwrap()
        .type_text(", please.")
        .await
        .unwrap();
    assert_eq!(
        browser.find(&input).await.unwrap().property("value").await.unwrap(),
        "Use SQLite, please."
    );

    browser
        .click(&format!("{box_css} [data-testid=reply-send]"))
        .await
        .unwrap();
    let sent = fake
        .wait_for_request("POST provide-input", |r| r.path == "/issues/DEMO-5/provide-input")
        .await;
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.json(), json!({"message": "Use SQLite, please."}));
    browser.wait_gone(box_css).await.unwrap();
    browser.wait_gone("[data-testid=input-required]").await.unwrap();
    assert_no_script_errors(&browser, "reply box").await;
    browser.quit().await;
}

// ---- Issue page -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_page_shows_the_issue_and_follows_its_live_log() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    fake.push_log("DEMO-1", log_line("sess-1", 1, LogEventKind::Text, "Reading the code"));
    fake.push_log("DEMO-1", log_line("sess-1", 2, LogEventKind::Action, "cargo test"));
    fake.update(|w| {
        w.sublogs.insert(
            "DEMO-1".into(),
            vec![
                log_line("sub-a", 1, LogEventKind::Subagent, "explore the repo"),
                log_line("sub-b", 1, LogEventKind::Text, "writing tests"),
                log_line("sub-a", 2, LogEventKind::Action, "rg login"),
            ],
        );
    });
    let (_server, browser) = open(fake.app(), "/issues/DEMO-1").await;
    wait_live(&browser).await;

    browser
        .wait_for_text("[data-testid=issue-description]", "Return a session cookie.")
        .await
        .unwrap();
    let comment = browser.text_of("[data-testid=issue-comment]").await.unwrap();
    assert!(comment.contains("ada") && comment.contains("argon2"), "{comment}");
    browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "running")
        .await
        .unwrap();
    assert_eq!(browser.title().await.unwrap(), "DEMO-1 · Itervox");

    let lines = browser.wait_for_count("[data-testid=log-line]", 2).await;
    check(&browser, "issue-log-initial", lines).await;
    browser
        .wait_for_text("[data-testid=log-status]", "Following live")
        .await
        .unwrap();

    // Live lines append; a replayed line (same session and seq) is shown once.
    fake.push_log("DEMO-1", log_line("sess-1", 3, LogEventKind::Turn, "turn 1 done"));
    fake.push_log("DEMO-1", log_line("sess-1", 3, LogEventKind::Turn, "turn 1 done"));
    fake.push_log(
        "DEMO-1",
        log_line("sess-1", 4, LogEventKind::Pr, "https://example.invalid/pr/1"),
    );
    browser
        .wait_for_text("[data-testid=log-view]", "https://example.invalid/pr/1")
        .await
        .unwrap();
    let lines = browser.find_all("[data-testid=log-line]").await.unwrap();
    assert_eq!(lines.len(), 4, "the duplicate was shown");

    // Sub-agent logs, grouped per session.
    browser.click("[data-testid=sublogs-load]").await.unwrap();
    let sessions = browser.wait_for_count("[data-testid=sublog-session]", 2).await.unwrap();
    assert_eq!(
        sessions[0].attribute("data-session-id").await.unwrap().as_deref(),
        Some("sub-a")
    );
    let summary = sessions[0].find("summary").await.unwrap().text().await.unwrap();
    assert!(summary.contains("2 lines"), "{summary}");

    // Profile and backend pickers.
    browser
        .click("[data-testid=profile-picker] option[value=reviewer]")
        .await
        .unwrap();
    let profile = fake
        .wait_for_request("POST profile", |r| r.path == "/issues/DEMO-1/profile")
        .await;
    assert_eq!(profile.json(), json!({"profile": "reviewer"}));
    browser
        .click("[data-testid=backend-picker] option[value=codex]")
        .await
        .unwrap();
    let backend = fake
        .wait_for_request("POST backend", |r| r.path == "/issues/DEMO-1/backend")
        .await;
    assert_eq!(backend.json(), json!({"backend": "codex"}));

    // Actions follow the live state: cancel only while running, resume only while paused.
    let cancel = browser.find("[data-testid=action-cancel]").await.unwrap();
    assert!(cancel.is_enabled().await.unwrap());
    assert!(
        !browser
            .find("[data-testid=action-resume]")
            .await
            .unwrap()
            .is_enabled()
            .await
            .unwrap()
    );
    cancel.click().await.unwrap();
    browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "paused")
        .await
        .unwrap();
    browser.click("[data-testid=action-resume]").await.unwrap();
    fake.wait_for_request("POST resume", |r| r.path == "/issues/DEMO-1/resume")
        .await;
    browser.click("[data-testid=action-reanalyze]").await.unwrap();
    fake.wait_for_request("POST reanalyze", |r| r.path == "/issues/DEMO-1/reanalyze")
        .await;
    browser.click("[data-testid=action-ai-review]").await.unwrap();
    fake.wait_for_request("POST ai-review", |r| r.path == "/issues/DEMO-1/ai-review")
        .await;

    browser.screenshot_full_page("dashboard-issue").await.unwrap();
    assert_no_script_errors(&browser, "issue page").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_page_shows_the_reply_box_and_an_unknown_issue_readably() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (server, browser) = open(fake.app(), "/issues/DEMO-5").await;
    wait_live(&browser).await;
    browser.wait_for("[data-testid=reply-box]").await.unwrap();
    browser.click("[data-testid=reply-dismiss]").await.unwrap();
    fake.wait_for_request("POST dismiss-input", |r| r.path == "/issues/DEMO-5/dismiss-input")
        .await;
    browser.wait_gone("[data-testid=reply-box]").await.unwrap();
    browser
        .wait_for_text("[data-testid=issue-orchestrator-state]", "paused")
        .await
        .unwrap();

    browser.goto(&server.url("/issues/NOPE-1")).await.unwrap();
    let error = browser
        .wait_for_text("[data-testid=issue-error]", "no issue NOPE-1")
        .await;
    check(&browser, "unknown-issue", error).await;
    let text = browser.text_of("[data-testid=issue-error]").await.unwrap();
    assert!(text.contains("HTTP 404") && text.contains("not_found"), "{text}");
    assert_no_script_errors(&browser, "unknown issue").await;
    browser.quit().await;
}

// ---- Board ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_groups_issues_by_state_and_says_why_idle() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (server, browser) = open(fake.app(), "/board").await;
    wait_live(&browser).await;

    let columns = browser.wait_for_count("[data-testid=board-column]", 6).await;
    let columns = check(&browser, "board", columns).await;
    let mut titles = Vec::new();
    for column in &columns {
        titles.push(column.attribute("data-state").await.unwrap().unwrap_or_default());
    }
    assert_eq!(
        titles,
        ["Backlog", "Todo", "In Progress", "Done", "Cancelled", "Triage"]
    );

    let card = |id: &str| format!("[data-testid=issue-card][data-identifier=\"{id}\"]");
    let demo6 = browser.text_of(&card("DEMO-6")).await.unwrap();
    assert!(demo6.contains("Why idle: blocked by DEMO-1"), "{demo6}");
    let demo1 = browser
        .text_of(&format!("{} [data-testid=orchestrator-state]", card("DEMO-1")))
        .await
        .unwrap();
    assert_eq!(demo1, "running");
    let demo5 = browser
        .text_of(&format!("{} [data-testid=orchestrator-state]", card("DEMO-5")))
        .await
        .unwrap();
    assert_eq!(demo5, "input required");

    browser.type_into("[data-testid=board-filter]", "docs").await.unwrap();
    browser.wait_for_count("[data-testid=issue-card]", 1).await.unwrap();

    // A snapshot change refetches the list (throttled).
    let fetches = || fake.requests().iter().filter(|r| r.path == "/issues").count();
    let before = fetches();
    fake.update(|w| {
        w.issues.push(itervox_protocol::api::TrackerIssue {
            identifier: "DEMO-11".into(),
            title: "More docs".into(),
            state: "Todo".into(),
            ..Default::default()
        });
        w.snapshot.max_concurrent_agents = 5;
    });
    browser.wait_for_count("[data-testid=issue-card]", 2).await.unwrap();
    assert!(fetches() > before);

    browser.click(&card("DEMO-6")).await.unwrap();
    browser
        .wait_for_text("[data-testid=issue-description]", "No description.")
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap(), server.url("/issues/DEMO-6"));
    assert_no_script_errors(&browser, "board").await;
    browser.quit().await;
}

// ---- Hosts ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_pool_adds_and_removes_hosts_and_shows_api_errors() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (_server, browser) = open(fake.app(), "/hosts").await;
    wait_live(&browser).await;

    let host = |h: &str| format!("[data-testid=host-row][data-host=\"{h}\"]");
    let build1 = browser.text_of(&host("build-1")).await.unwrap();
    assert!(
        build1.contains("up") && build1.contains("1 / 2") && build1.contains("13 ms"),
        "{build1}"
    );
    let build2 = browser.text_of(&host("build-2")).await.unwrap();
    assert!(
        build2.contains("down") && build2.contains("connection refused"),
        "{build2}"
    );

    // A duplicate: the API's 409 message is shown by the form.
    browser
        .type_into("[data-testid=add-host-host]", "build-1")
        .await
        .unwrap();
    browser.click("[data-testid=add-host-submit]").await.unwrap();
    let error = browser
        .wait_for_text("[data-testid=add-host-error]", "already in the pool")
        .await;
    let error = check(&browser, "add-host-409", error).await;
    assert!(error.contains("HTTP 409"), "{error}");

    // Unparsable: 400 with the field.
    browser
        .type_into("[data-testid=add-host-host]", "bad host")
        .await
        .unwrap();
    browser.click("[data-testid=add-host-submit]").await.unwrap();
    let error = browser
        .wait_for_text("[data-testid=add-host-error]", "cannot parse host")
        .await
        .unwrap();
    assert!(error.contains("field: host"), "{error}");

    browser
        .type_into("[data-testid=add-host-host]", "builder@build-3:2222")
        .await
        .unwrap();
    browser
        .type_into("[data-testid=add-host-description]", "the new one")
        .await
        .unwrap();
    browser.click("[data-testid=add-host-submit]").await.unwrap();
    let added = fake
        .wait_for_request("POST /ssh-hosts", |r| {
            r.method == "POST" && r.path == "/ssh-hosts" && r.body.contains("build-3")
        })
        .await;
    assert_eq!(
        added.json(),
        json!({"host": "builder@build-3:2222", "description": "the new one"})
    );
    browser.wait_for(&host("builder@build-3:2222")).await.unwrap();
    browser.wait_gone("[data-testid=add-host-error]").await.unwrap();

    // Remove without draining.
    browser
        .click(&format!("{} [data-testid=host-remove]", host("build-2")))
        .await
        .unwrap();
    browser.wait_for("#confirm-dialog").await.unwrap();
    let drain = browser.find("[data-testid=confirm-option]").await.unwrap();
    assert_eq!(drain.property("checked").await.unwrap(), true);
    drain.click().await.unwrap();
    browser.click("[data-testid=confirm-ok]").await.unwrap();
    let removed = fake
        .wait_for_request("DELETE /ssh-hosts/build-2", |r| {
            r.method == "DELETE" && r.path == "/ssh-hosts/build-2"
        })
        .await;
    assert_eq!(removed.query, "drain=false");
    browser.wait_gone(&host("build-2")).await.unwrap();

    // Dispatch strategy.
    browser
        .click("[data-testid=dispatch-strategy] option[value=least-loaded]")
        .await
        .unwrap();
    let strategy = fake
        .wait_for_request("PUT dispatch-strategy", |r| r.path == "/settings/dispatch-strategy")
        .await;
    assert_eq!(strategy.method, "PUT");
    assert_eq!(strategy.json(), json!({"strategy": "least-loaded"}));
    browser.screenshot("dashboard-hosts").await.unwrap();
    assert_no_script_errors(&browser, "hosts").await;
    browser.quit().await;
}

// ---- Settings ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_send_their_changes_and_hide_the_project_filter_without_projects() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (server, browser) = open(fake.app(), "/settings").await;
    wait_live(&browser).await;

    browser
        .wait_for_text("[data-testid=workers-current]", "4")
        .await
        .unwrap();
    browser.click("[data-testid=workers-plus]").await.unwrap();
    let plus = fake
        .wait_for_request("POST workers delta", |r| r.path == "/settings/workers")
        .await;
    assert_eq!(plus.json(), json!({"delta": 1}));
    browser
        .wait_for_text("[data-testid=workers-current]", "5")
        .await
        .unwrap();
    browser.type_into("[data-testid=workers-input]", "2").await.unwrap();
    browser.click("[data-testid=workers-set]").await.unwrap();
    fake.wait_for_request("POST workers absolute", |r| {
        r.path == "/settings/workers" && r.json() == json!({"workers": 2})
    })
    .await;
    browser
        .wait_for_text("[data-testid=workers-current]", "2")
        .await
        .unwrap();

    browser
        .click("[data-testid=agent-mode] option[value=teams]")
        .await
        .unwrap();
    fake.wait_for_request("POST agent-mode", |r| {
        r.path == "/settings/agent-mode" && r.json() == json!({"mode": "teams"})
    })
    .await;
    browser.click("[data-testid=auto-clear]").await.unwrap();
    fake.wait_for_request("POST auto-clear", |r| {
        r.path == "/settings/workspace/auto-clear" && r.json() == json!({"enabled": true})
    })
    .await;

    browser
        .type_into("[data-testid=states-active]", "Todo, Doing")
        .await
        .unwrap();
    browser.click("[data-testid=states-save]").await.unwrap();
    let states = fake
        .wait_for_request("PUT tracker states", |r| r.path == "/settings/tracker/states")
        .await;
    assert_eq!(states.method, "PUT");
    assert_eq!(
        states.json(),
        json!({"activeStates": ["Todo", "Doing"], "terminalStates": ["Done", "Cancelled"],
               "completionState": "Done", "backlogStates": ["Backlog"]})
    );

    // A new profile.
    let new = "[data-testid=profile-new]";
    browser
        .type_into(&format!("{new} [data-testid=profile-name]"), "frontend")
        .await
        .unwrap();
    browser
        .type_into(&format!("{new} [data-testid=profile-command]"), "claude --model opus")
        .await
        .unwrap();
    browser
        .click(&format!("{new} [data-testid=profile-save]"))
        .await
        .unwrap();
    let saved = fake
        .wait_for_request("PUT profile", |r| r.path == "/settings/profiles/frontend")
        .await;
    assert_eq!(saved.json(), json!({"command": "claude --model opus"}));
    browser
        .wait_for("[data-testid=profile][data-profile=frontend]")
        .await
        .unwrap();

    // The tracker has no projects (501): the section is hidden.
    fake.wait_for_request("GET /projects", |r| r.path == "/projects").await;
    browser.wait_gone("[data-testid=settings-projects]").await.unwrap();

    // Clearing the workspaces asks first.
    browser.click("[data-testid=clear-workspaces]").await.unwrap();
    browser.wait_for("#confirm-dialog").await.unwrap();
    browser.click("[data-testid=confirm-ok]").await.unwrap();
    fake.wait_for_request("DELETE /workspaces", |r| {
        r.method == "DELETE" && r.path == "/workspaces"
    })
    .await;

    // With a Linear-like tracker the project filter appears and saves the selection.
    fake.update(|w| w.projects_supported = true);
    browser.goto(&server.url("/settings")).await.unwrap();
    browser.wait_for_count("[data-testid=project-option]", 2).await.unwrap();
    browser
        .click("[data-testid=project-option][value=alpha]")
        .await
        .unwrap();
    browser.click("[data-testid=project-filter-save]").await.unwrap();
    let filter = fake
        .wait_for_request("PUT /projects/filter", |r| {
            r.method == "PUT" && r.path == "/projects/filter"
        })
        .await;
    assert_eq!(filter.json(), json!({"slugs": ["alpha"]}));
    browser
        .wait_for_text("[data-testid=project-filter-current]", "Only: alpha")
        .await
        .unwrap();
    assert_no_script_errors(&browser, "settings").await;
    browser.quit().await;
}

// ---- Connection and errors --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_event_stream_shows_the_banner_until_it_reconnects() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (_server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;
    assert!(
        !browser
            .find("[data-testid=connection-banner]")
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );

    // The server drops the stream and refuses the next attempts.
    fake.update(|w| w.events_fail = 2);
    fake.drop_event_streams();
    let banner = browser
        .wait_for_text("[data-testid=connection-banner]", "Disconnected — reconnecting")
        .await;
    check(&browser, "banner", banner).await;
    browser.screenshot("dashboard-disconnected").await.unwrap();
    // Changes made meanwhile arrive once the stream is back.
    fake.update(|w| w.snapshot.max_concurrent_agents = 9);

    wait_live(&browser).await;
    browser.wait_gone("[data-testid=connection-banner]").await.unwrap();
    browser
        .wait_for_text("[data-testid=stat-capacity]", "/ 9")
        .await
        .unwrap();
    let attempts = fake.requests().iter().filter(|r| r.path == "/events").count();
    assert!(
        attempts >= 4,
        "first connection, two refused, one that worked: {attempts}"
    );
    assert_no_script_errors(&browser, "reconnect").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_tracker_errors_are_shown_prominently() {
    let fake = FakeApi::new(empty_snapshot(), Vec::new());
    let (_server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;
    browser.wait_for("[data-testid=running-empty]").await.unwrap();

    fake.update(|w| {
        w.snapshot.config_invalid = Some(ConfigInvalid {
            path: "/srv/project/WORKFLOW.md".into(),
            error: "tracker.kind: unknown tracker \"jira\"".into(),
        });
        w.snapshot.last_tracker_error = Some(TrackerErrorInfo {
            at: w.snapshot.generated_at.clone(),
            op: "poll".into(),
            kind: "rate_limited".into(),
            message: "Linear answered 429".into(),
            reset_at: None,
            consecutive_failures: 3,
        });
    });
    let config = browser
        .wait_for_text("[data-testid=config-invalid-banner]", "/srv/project/WORKFLOW.md")
        .await
        .unwrap();
    assert!(config.contains("unknown tracker \"jira\""), "{config}");
    let tracker = browser
        .wait_for_text("[data-testid=tracker-error-banner]", "Linear answered 429")
        .await
        .unwrap();
    assert!(
        tracker.contains("rate limited during poll") && tracker.contains("3 consecutive failures"),
        "{tracker}"
    );

    fake.update(|w| {
        w.snapshot.config_invalid = None;
        w.snapshot.last_tracker_error = None;
    });
    browser.wait_gone("[data-testid=config-invalid-banner]").await.unwrap();
    browser.wait_gone("[data-testid=tracker-error-banner]").await.unwrap();
    assert_no_script_errors(&browser, "error banners").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_page_closes_its_streams() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    let (server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;
    // More page loads than a browser's six connections per server: each would hang if the pages
    // left behind kept their streams.
    for path in [
        "/issues/DEMO-1",
        "/board",
        "/issues/DEMO-2",
        "/hosts",
        "/issues/DEMO-1",
        "/settings",
        "/",
    ] {
        browser.goto(&server.url(path)).await.unwrap();
        wait_live(&browser).await;
    }
    wait_until(
        Duration::from_secs(20),
        "only the current page's stream open",
        || async { Ok((fake.open_streams() == 1).then_some(())) },
    )
    .await
    .unwrap_or_else(|err| panic!("{err}: {} streams open", fake.open_streams()));
    assert_no_script_errors(&browser, "navigation").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_layout_never_scrolls_sideways() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    fake.push_log(
        "DEMO-1",
        log_line(
            "sess-1",
            1,
            LogEventKind::Action,
            "cargo test --workspace --all-targets -- --nocapture",
        ),
    );
    let (server, browser) = open(fake.app(), "/").await;
    browser.emulate_device(390, 844, true).await.unwrap();
    for (path, name) in [
        ("/", "overview"),
        ("/board", "board"),
        ("/issues/DEMO-1", "issue"),
        ("/hosts", "hosts"),
        ("/settings", "settings"),
        ("/logs", "logs"),
    ] {
        browser.goto(&server.url(path)).await.unwrap();
        wait_live(&browser).await;
        browser.wait_for("main .card, main .board").await.unwrap();
        let widths = browser
            .execute(
                "const d = document.documentElement; return [d.scrollWidth, d.clientWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert_eq!(client, 390, "the phone viewport is in effect");
        browser
            .screenshot_full_page(&format!("dashboard-phone-{name}"))
            .await
            .unwrap();
        assert!(scroll <= client, "{path} is {scroll}px wide in a {client}px viewport");
    }
    assert_no_script_errors(&browser, "phone").await;
    browser.quit().await;
}

// ---- Modules ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pure_modules_compute_what_the_views_show() {
    let fake = FakeApi::new(empty_snapshot(), Vec::new());
    let (_server, browser) = open(fake.app(), "/").await;
    wait_live(&browser).await;
    let results = browser
        .execute_async(include_str!("module_checks.js"), vec![])
        .await
        .unwrap();
    let results = results.as_array().expect("a list of results");
    assert!(results.len() > 50, "only {} checks ran", results.len());
    let failures: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failures.is_empty(), "failed module checks: {failures:#?}");
    assert_no_script_errors(&browser, "module checks").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_the_page_says_so_without_script_errors() {
    // The dashboard alone: every /api/v1 call gets the router's JSON 404.
    let (_server, browser) = open(itervox::dashboard::router(), "/board").await;
    let boot = browser
        .wait_for_text("[data-testid=boot-error-banner]", "Could not load the state")
        .await;
    let boot = check(&browser, "no-api", boot).await;
    assert!(
        boot.contains("no API route GET /api/v1/state") && boot.contains("HTTP 404"),
        "{boot}"
    );
    browser
        .wait_for_text("[data-testid=connection-banner]", "Disconnected — reconnecting")
        .await
        .unwrap();
    browser
        .wait_for_text("[data-testid=board-error]", "Could not load the issues")
        .await
        .unwrap();
    browser.screenshot("dashboard-no-api").await.unwrap();
    assert_no_script_errors(&browser, "no api").await;
    browser.quit().await;
}

/// Controls without an accessible name, and buttons and links without text, on the current page.
const UNLABELLED: &str = r#"
const named = (el) => (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.title;
const bad = [];
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type !== 'hidden' && !named(el)) bad.push(el.outerHTML.slice(0, 120));
}
for (const el of document.querySelectorAll('button, a[href]')) {
  if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.outerHTML.slice(0, 120));
}
return bad;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_has_an_accessible_name() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    fake.update(|w| w.projects_supported = true);
    let (server, browser) = open(fake.app(), "/").await;
    for path in ["/", "/board", "/issues/DEMO-5", "/hosts", "/settings", "/logs"] {
        browser.goto(&server.url(path)).await.unwrap();
        wait_live(&browser).await;
        browser.wait_for("main .card, main .board").await.unwrap();
        if path == "/settings" {
            browser.wait_for("[data-testid=project-option]").await.unwrap();
        }
        let bad = browser.execute(UNLABELLED, vec![]).await.unwrap();
        assert_eq!(bad, json!([]), "unlabelled controls on {path}");
    }
    assert_no_script_errors(&browser, "labels").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_page_tails_the_daemon_log_and_filters_by_issue() {
    let fake = FakeApi::new(busy_snapshot(), sample_issues());
    fake.push_log("DEMO-1", log_line("sess-1", 1, LogEventKind::Text, "hello"));
    let (_server, browser) = open(fake.app(), "/logs").await;
    wait_live(&browser).await;
    browser
        .wait_for_text("[data-testid=daemon-log-status]", "Following live")
        .await
        .unwrap();

    fake.push_daemon_line(None, "plain text line from the daemon");
    fake.push_daemon_line(
        Some("DEMO-1"),
        r#"{"timestamp":"2026-12-04T10:00:00Z","level":"WARN","fields":{"message":"agent stalled","issue":"DEMO-1"}}"#,
    );
    let log = browser.wait_for_text("[data-testid=daemon-log]", "agent stalled").await;
    let log = check(&browser, "daemon-log", log).await;
    assert!(log.contains("plain text line from the daemon"), "{log}");
    assert!(log.contains("issue=DEMO-1") && log.contains("warn"), "{log}");

    // Filter by an issue that has logs: the stream is reopened with ?identifier=.
    browser
        .click("[data-testid=daemon-log-filter] option[value=DEMO-1]")
        .await
        .unwrap();
    fake.wait_for_request("GET /logs?identifier=DEMO-1", |r| {
        r.path == "/logs" && r.query.contains("identifier=DEMO-1")
    })
    .await;
    browser
        .wait_for_text("[data-testid=daemon-log-status]", "Following live")
        .await
        .unwrap();
    fake.push_daemon_line(None, "not about DEMO-1");
    fake.push_daemon_line(Some("DEMO-1"), "about DEMO-1");
    browser
        .wait_for_text("[data-testid=daemon-log]", "about DEMO-1")
        .await
        .unwrap();
    let lines = browser.find_all("[data-testid=daemon-log-line]").await.unwrap();
    assert_eq!(lines.len(), 1, "the view restarts with the filter");

    browser.click("[data-testid=clear-all-logs]").await.unwrap();
    browser.click("[data-testid=confirm-ok]").await.unwrap();
    fake.wait_for_request("DELETE /logs", |r| r.method == "DELETE" && r.path == "/logs")
        .await;
    assert_no_script_errors(&browser, "logs page").await;
    browser.quit().await;
}
