//! Tests of the WebDriver harness against a static page served by a tiny axum server.

use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use itervox_tests::browser::{Browser, BrowserError, PageServer, wait_until};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Harness page</title></head>
<body>
  <h1 id="heading">Hello</h1>
  <label for="name">Name</label><input id="name" type="text">
  <button id="greet" type="button">Greet</button>
  <button id="fail" type="button">Fail</button>
  <p id="out"></p>
  <p id="hidden" hidden>secret</p>
  <ul><li class="item">a</li><li class="item">b</li><li class="item">c</li></ul>
  <script src="/page.js"></script>
</body></html>"#;

const SCRIPT: &str = r#"
document.getElementById('greet').addEventListener('click', () => {
  // Answer later, so the test has to wait for it.
  setTimeout(() => {
    document.getElementById('out').textContent = 'Hello, ' + document.getElementById('name').value + '!';
  }, 300);
});
document.getElementById('fail').addEventListener('click', () => {
  console.error('deliberate console error');
  setTimeout(() => { throw new Error('deliberate uncaught error'); }, 0);
});
"#;

async fn serve_page() -> PageServer {
    let router = Router::new().route("/", get(|| async { Html(PAGE) })).route(
        "/page.js",
        get(|| async { ([("content-type", "text/javascript")], SCRIPT) }),
    );
    PageServer::start(router).await.expect("bind loopback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_a_static_page() {
    let server = serve_page().await;
    let browser = Browser::launch().await.expect("launch chromium");
    browser.goto(&server.url("/")).await.unwrap();

    assert_eq!(browser.title().await.unwrap(), "Harness page");
    assert_eq!(browser.current_url().await.unwrap(), server.url("/"));
    assert_eq!(browser.text_of("#heading").await.unwrap(), "Hello");
    assert_eq!(browser.find_all(".item").await.unwrap().len(), 3);
    assert_eq!(
        browser.find("#name").await.unwrap().attribute("type").await.unwrap(),
        Some("text".to_string())
    );

    let hidden = browser.find("#hidden").await.unwrap();
    assert!(!hidden.is_displayed().await.unwrap());
    let missing = browser.find("#nothing-here").await.unwrap_err();
    assert!(missing.is_no_such_element(), "{missing}");

    browser.type_into("#name", "Ada").await.unwrap();
    assert_eq!(
        browser.find("#name").await.unwrap().property("value").await.unwrap(),
        "Ada"
    );
    browser.click("#greet").await.unwrap();
    let greeting = browser.wait_for_text("#out", "Hello, Ada!").await.unwrap();
    assert_eq!(greeting, "Hello, Ada!");

    let sum = browser
        .execute("return arguments[0] + arguments[1];", vec![2.into(), 40.into()])
        .await
        .unwrap();
    assert_eq!(sum, 42);
    let later = browser
        .execute_async(
            "const done = arguments[arguments.length - 1]; setTimeout(() => done(document.title), 50);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(later, "Harness page");

    let shot = browser.screenshot("harness-static-page").await.unwrap();
    let bytes = fs_err::read(&shot).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {}", shot.display());

    assert!(browser.script_errors().await.unwrap().is_empty());
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collects_console_errors_across_navigations() {
    let server = serve_page().await;
    let browser = Browser::launch().await.expect("launch chromium");
    browser.goto(&server.url("/")).await.unwrap();
    browser.click("#fail").await.unwrap();

    let errors = wait_until(Duration::from_secs(20), "two script errors", || async {
        let errors = browser.script_errors().await?;
        Ok((errors.len() >= 2).then_some(errors))
    })
    .await
    .unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.source == "console-api" && e.message.contains("deliberate console error")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.source == "javascript" && e.message.contains("deliberate uncaught error")),
        "{errors:?}"
    );

    // Entries read before a navigation are kept after it.
    browser.goto(&server.url("/?again")).await.unwrap();
    browser.wait_for("#heading").await.unwrap();
    assert!(browser.script_errors().await.unwrap().len() >= 2);

    // A failed load is a network entry, not a script error.
    browser.goto(&server.url("/missing")).await.unwrap();
    let entries = wait_until(Duration::from_secs(20), "a network entry", || async {
        let entries = browser.console_entries().await?;
        Ok(entries.iter().any(|e| e.source == "network").then_some(entries))
    })
    .await
    .unwrap();
    let network = entries.iter().find(|e| e.source == "network").unwrap();
    assert!(!network.is_script_error());
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_names_what_it_waited_for() {
    let server = serve_page().await;
    let browser = Browser::launch().await.expect("launch chromium");
    browser.goto(&server.url("/")).await.unwrap();

    let err = browser
        .wait_for_within("#never-appears", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, BrowserError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("#never-appears"), "{err}");

    let err = browser
        .execute("throw new Error('script exploded');", vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrowserError::WebDriver { error, .. } if error == "javascript error"),
        "{err}"
    );
    assert!(err.to_string().contains("script exploded"), "{err}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_browser_ends_chromedriver_and_chromium() {
    let browser = Browser::launch().await.expect("launch chromium");
    let driver = browser.driver_pid();
    let chromium = browser.chromium_pid().expect("chromedriver reports Chromium's pid");
    assert!(alive(driver) && alive(chromium));

    drop(browser);

    wait_until(Duration::from_secs(20), "chromedriver and chromium to exit", || async {
        Ok((!alive(driver) && !alive(chromium)).then_some(()))
    })
    .await
    .unwrap();
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match fs_err::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
