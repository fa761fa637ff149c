//! Drives Debian's real headless Chromium through chromedriver with a small W3C WebDriver client,
//! and serves test pages on loopback: the harness of the dashboard's browser tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), itervox_tests::browser::BrowserError> {
//! use itervox_tests::browser::{Browser, PageServer};
//! let server = PageServer::start(itervox::dashboard::router()).await.expect("bind loopback");
//! let browser = Browser::launch().await?;
//! browser.goto(&server.url("/")).await?;
//! browser.wait_for("#token-prompt").await?;
//! browser.screenshot("token-prompt").await?;
//! assert!(browser.script_errors().await?.is_empty());
//! # Ok(()) }
//! ```
//!
//! End-to-end tests against a real controller follow the same shape: start the `itervox` binary
//! (see [`crate::binaries::bin_path`]) on a loopback port, point [`Browser::goto`] at its URL, and
//! drive the page through the `data-testid`s the dashboard exposes (`running-row`, `log-view`,
//! `action-cancel`, `reply-box`, `add-host-form`, `#token-prompt`, …), asserting with
//! [`Browser::wait_for_text`] and friends, then [`Browser::script_errors`] at the end.
//!
//! Every `Browser` runs its own chromedriver (own process group, free loopback port) and its own
//! Chromium profile in a temporary folder; dropping it kills both process trees and reaps the
//! driver. Console output is collected from chromedriver's browser log (`goog:loggingPrefs`), so
//! errors survive page navigations.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`), matching [`CHROMIUM`]'s version.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long waits last unless told otherwise: generous, because the machine is shared and slow.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a wait re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What can go wrong while driving the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot start {path}: {source}")]
    Spawn { path: PathBuf, source: io::Error },
    #[error("cannot prepare the browser profile in {path}: {source}")]
    Profile { path: PathBuf, source: io::Error },
    #[error("chromedriver did not become ready on 127.0.0.1:{port} within {waited:?}; its output:\n{output}")]
    DriverNotReady {
        port: u16,
        waited: Duration,
        output: String,
    },
    #[error("WebDriver request {command} failed: {source}")]
    Http { command: String, source: reqwest::Error },
    /// The driver answered with a WebDriver error (`no such element`, `stale element reference`,
    /// `javascript error`, `session not created`, …).
    #[error("WebDriver {command} answered `{error}`: {message}")]
    WebDriver {
        command: String,
        error: String,
        message: String,
    },
    #[error("WebDriver {command} answered something unexpected: {body}")]
    Protocol { command: String, body: String },
    #[error("timed out after {waited:?} waiting for {what}{last}")]
    Timeout {
        what: String,
        waited: Duration,
        /// The last error seen while waiting, if any, as `": <error>"`.
        last: String,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl BrowserError {
    /// Whether this is WebDriver's `no such element`.
    pub fn is_no_such_element(&self) -> bool {
        matches!(self, BrowserError::WebDriver { error, .. } if error == "no such element")
    }
}

/// One entry of the browser's console log, as chromedriver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConsoleEntry {
    /// `SEVERE`, `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    /// `javascript` (uncaught errors), `console-api` (console.*), `network` (failed loads, which
    /// include every 4xx/5xx answer a page fetched), `security` (CSP violations), …
    #[serde(default)]
    pub source: String,
    pub message: String,
    #[serde(default)]
    pub timestamp: i64,
}

impl ConsoleEntry {
    /// A script error or a security violation: an uncaught exception, `console.error`, a CSP block.
    /// Network entries are excluded: an HTTP error answer is the server's doing, not the page's.
    pub fn is_script_error(&self) -> bool {
        self.level == "SEVERE" && self.source != "network"
    }
}

/// How to launch Chromium.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Window size in CSS pixels.
    pub width: u32,
    pub height: u32,
    /// More Chromium command-line switches.
    pub extra_args: Vec<String>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            width: 1280,
            height: 900,
            extra_args: Vec::new(),
        }
    }
}

/// A chromedriver process in its own process group; dropping it kills the group (the driver and
/// the Chromium it launched) and reaps the driver.
struct DriverProcess {
    child: Child,
    output: PathBuf,
}

impl DriverProcess {
    fn output(&self) -> String {
        let text = fs_err::read_to_string(&self.output).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // The driver was spawned as the leader of its own group, and Chromium's processes
            // stay in it; one signal ends the whole tree.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session driven over WebDriver.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:{port}` of the chromedriver.
    base: String,
    session: String,
    /// The Chromium browser process id, as chromedriver reports it.
    chromium_pid: Option<u32>,
    /// Console entries read from the driver so far (the driver hands each out once).
    console: Mutex<Vec<ConsoleEntry>>,
    /// Declared before `profile`: the processes die before their profile folder is deleted.
    driver: DriverProcess,
    profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.base)
            .field("session", &self.session)
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with the default window (1280×900).
    pub async fn launch() -> Result<Browser, BrowserError> {
        Browser::launch_with(BrowserOptions::default()).await
    }

    /// Starts chromedriver and a headless Chromium.
    pub async fn launch_with(options: BrowserOptions) -> Result<Browser, BrowserError> {
        // reqwest is built without a default TLS provider; plain HTTP to loopback needs none, but
        // building a client still wants one installed. Another test may have installed it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|source| BrowserError::Http {
                command: "build client".into(),
                source,
            })?;

        let profile = tempfile::Builder::new()
            .prefix("itervox-chromium-")
            .tempdir()
            .map_err(|source| BrowserError::Profile {
                path: std::env::temp_dir(),
                source,
            })?;
        for sub in ["home", "config", "cache", "user-data"] {
            let path = profile.path().join(sub);
            fs_err::create_dir_all(&path).map_err(|source| BrowserError::Profile { path, source })?;
        }

        let mut last_error = None;
        for _ in 0..3 {
            match start_driver(&http, profile.path()).await {
                Ok((driver, base)) => {
                    let mut browser = Browser {
                        http,
                        base,
                        session: String::new(),
                        chromium_pid: None,
                        console: Mutex::new(Vec::new()),
                        driver,
                        profile,
                    };
                    browser.new_session(&options).await?;
                    return Ok(browser);
                }
                // Most likely another process took the port between probing and binding.
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("three attempts ran"))
    }

    async fn new_session(&mut self, options: &BrowserOptions) -> Result<(), BrowserError> {
        let user_data = self.profile.path().join("user-data");
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-default-browser-check",
            "--no-proxy-server",
            "--disable-dev-shm-usage",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        args.push(format!("--window-size={},{}", options.width, options.height));
        args.extend(options.extra_args.iter().cloned());
        let body = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "timeouts": { "script": 30000, "pageLoad": 60000, "implicit": 0 },
                }
            }
        });
        let value = self
            .raw("POST", &format!("{}/session", self.base), Some(body), "new session")
            .await?;
        let session = value
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| BrowserError::Protocol {
                command: "new session".into(),
                body: value.to_string(),
            })?;
        self.session = session.to_string();
        self.chromium_pid = value
            .pointer("/capabilities/goog:processID")
            .and_then(Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok());
        Ok(())
    }

    /// The process id of chromedriver.
    pub fn driver_pid(&self) -> u32 {
        self.driver.child.id()
    }

    /// The process id of the Chromium browser process, when the driver reported it.
    pub fn chromium_pid(&self) -> Option<u32> {
        self.chromium_pid
    }

    /// Ends the session politely (Chromium closes its windows), then kills what is left.
    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.raw("DELETE", &url, None, "delete session"),
        )
        .await;
        drop(self);
    }

    // ---- Raw protocol -------------------------------------------------------------------------

    async fn raw(&self, method: &str, url: &str, body: Option<Value>, command: &str) -> Result<Value, BrowserError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid HTTP method");
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|source| BrowserError::Http {
            command: command.to_string(),
            source,
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| BrowserError::Http {
            command: command.to_string(),
            source,
        })?;
        let parsed: Value = serde_json::from_str(&text).map_err(|_| BrowserError::Protocol {
            command: command.to_string(),
            body: text.chars().take(500).collect(),
        })?;
        let value = parsed.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(BrowserError::WebDriver {
                command: command.to_string(),
                error: error.to_string(),
                message: value
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        if !status.is_success() {
            return Err(BrowserError::Protocol {
                command: command.to_string(),
                body: text.chars().take(500).collect(),
            });
        }
        Ok(value)
    }

    /// A command on this session: `path` is relative to `/session/{id}`.
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, BrowserError> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let command = format!("{method} {path}");
        self.raw(method, &url, body, &command).await
    }

    // ---- Navigation ---------------------------------------------------------------------------

    /// Loads `url` and waits for the page's load event.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await?;
        Ok(())
    }

    /// The address bar.
    pub async fn current_url(&self) -> Result<String, BrowserError> {
        let value = self.cmd("GET", "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// The document title.
    pub async fn title(&self) -> Result<String, BrowserError> {
        let value = self.cmd("GET", "/title", None).await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// Reloads the page.
    pub async fn refresh(&self) -> Result<(), BrowserError> {
        self.cmd("POST", "/refresh", Some(json!({}))).await?;
        Ok(())
    }

    /// Resizes the window (CSS pixels), e.g. to a phone's 390×844.
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<(), BrowserError> {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await?;
        Ok(())
    }

    /// Emulates a device's screen through Chrome DevTools: a `width`×`height` CSS-pixel viewport,
    /// and with `mobile` the meta-viewport handling and overlay scrollbars of a phone. (A headless
    /// window cannot be made narrower than 500 px, so phones need this.)
    pub async fn emulate_device(&self, width: u32, height: u32, mobile: bool) -> Result<(), BrowserError> {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await?;
        Ok(())
    }

    // ---- Elements -----------------------------------------------------------------------------

    /// The first element matching a CSS selector, now (no waiting).
    pub async fn find(&self, css: &str) -> Result<Element<'_>, BrowserError> {
        let value = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        self.element(value, css)
    }

    /// Every element matching a CSS selector, now.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>, BrowserError> {
        let value = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        self.elements(value, css)
    }

    fn element(&self, value: Value, css: &str) -> Result<Element<'_>, BrowserError> {
        let id = value
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| BrowserError::Protocol {
                command: format!("find {css}"),
                body: value.to_string(),
            })?;
        Ok(Element {
            browser: self,
            id: id.to_string(),
            css: css.to_string(),
        })
    }

    fn elements(&self, value: Value, css: &str) -> Result<Vec<Element<'_>>, BrowserError> {
        value
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|v| self.element(v, css))
            .collect()
    }

    /// Waits (up to [`DEFAULT_TIMEOUT`]) for a displayed element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Result<Element<'_>, BrowserError> {
        self.wait_for_within(css, DEFAULT_TIMEOUT).await
    }

    /// Waits up to `timeout` for a displayed element matching `css`.
    pub async fn wait_for_within(&self, css: &str, timeout: Duration) -> Result<Element<'_>, BrowserError> {
        let what = format!("a visible element matching `{css}`");
        wait_until(timeout, &what, || async {
            for element in self.find_all(css).await? {
                if element.is_displayed().await? {
                    return Ok(Some(element));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Waits until no displayed element matches `css`.
    pub async fn wait_gone(&self, css: &str) -> Result<(), BrowserError> {
        let what = format!("no visible element matching `{css}`");
        wait_until(DEFAULT_TIMEOUT, &what, || async {
            for element in self.find_all(css).await? {
                if element.is_displayed().await? {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }

    /// Waits until the first visible element matching `css` has text containing `needle`;
    /// returns the whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> Result<String, BrowserError> {
        let what = format!("`{css}` to show text containing {needle:?}");
        let seen = std::cell::RefCell::new(String::new());
        let result = wait_until(DEFAULT_TIMEOUT, &what, || async {
            for element in self.find_all(css).await? {
                if !element.is_displayed().await? {
                    continue;
                }
                let text = element.text().await?;
                if text.contains(needle) {
                    return Ok(Some(text));
                }
                *seen.borrow_mut() = text;
            }
            Ok(None)
        })
        .await;
        let seen = seen.into_inner();
        match result {
            Err(BrowserError::Timeout { what, waited, last }) if last.is_empty() => Err(BrowserError::Timeout {
                what,
                waited,
                last: format!(": last text seen was {seen:?}"),
            }),
            other => other,
        }
    }

    /// Waits until `css` matches exactly `count` elements (visible or not); returns them.
    pub async fn wait_for_count(&self, css: &str, count: usize) -> Result<Vec<Element<'_>>, BrowserError> {
        let what = format!("{count} elements matching `{css}`");
        wait_until(DEFAULT_TIMEOUT, &what, || async {
            let found = self.find_all(css).await?;
            Ok((found.len() == count).then_some(found))
        })
        .await
    }

    /// Waits for `css`, then clicks it.
    pub async fn click(&self, css: &str) -> Result<(), BrowserError> {
        self.wait_for(css).await?.click().await
    }

    /// Waits for `css`, clears it, then types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<(), BrowserError> {
        let element = self.wait_for(css).await?;
        element.clear().await?;
        element.type_text(text).await
    }

    /// The text of the first visible element matching `css` (waits for it).
    pub async fn text_of(&self, css: &str) -> Result<String, BrowserError> {
        self.wait_for(css).await?.text().await
    }

    // ---- Scripts ------------------------------------------------------------------------------

    /// Runs `script` as a function body with `arguments` = `args`; returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
            .await
    }

    /// Runs an asynchronous script: it receives a callback as its last argument and finishes by
    /// calling it with the result.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    // ---- Evidence -----------------------------------------------------------------------------

    /// Saves a PNG of the viewport as `tests/artifacts/{name}.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf, BrowserError> {
        let value = self.cmd("GET", "/screenshot", None).await?;
        let encoded = value.as_str().ok_or_else(|| BrowserError::Protocol {
            command: "screenshot".into(),
            body: value.to_string().chars().take(200).collect(),
        })?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|err| BrowserError::Protocol {
                command: "screenshot".into(),
                body: format!("not base64: {err}"),
            })?;
        let path = artifacts_dir().join(format!("{name}.png"));
        write_artifact(&path, &png)?;
        Ok(path)
    }

    /// Saves a PNG of the whole page, beyond the viewport, as `tests/artifacts/{name}.png`
    /// (through chromedriver's Chrome DevTools passthrough).
    pub async fn screenshot_full_page(&self, name: &str) -> Result<PathBuf, BrowserError> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await?;
        let size = metrics
            .get("cssContentSize")
            .or_else(|| metrics.get("contentSize"))
            .cloned()
            .unwrap_or(Value::Null);
        // While capturing beyond the viewport the page is laid out without a scrollbar, so it
        // is as wide as the window, not as the content box measured with one.
        let window = self
            .execute("return window.innerWidth;", vec![])
            .await?
            .as_f64()
            .unwrap_or(0.0);
        let width = size.get("width").and_then(Value::as_f64).unwrap_or(1280.0).max(window);
        let height = size.get("height").and_then(Value::as_f64).unwrap_or(900.0);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await?;
        let encoded = shot.get("data").and_then(Value::as_str).unwrap_or_default();
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|err| BrowserError::Protocol {
                command: "Page.captureScreenshot".into(),
                body: format!("not base64: {err}"),
            })?;
        let path = artifacts_dir().join(format!("{name}.png"));
        write_artifact(&path, &png)?;
        Ok(path)
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Result<Value, BrowserError> {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": command, "params": params })),
        )
        .await
    }

    /// Saves a screenshot, the page's HTML and the console log under `tests/artifacts/` for a
    /// post-mortem; errors while doing so are ignored (this runs when something already failed).
    pub async fn dump(&self, name: &str) {
        let _ = self.screenshot(name).await;
        if let Ok(html) = self.execute("return document.documentElement.outerHTML;", vec![]).await {
            let _ = write_artifact(
                &artifacts_dir().join(format!("{name}.html")),
                html.as_str().unwrap_or_default().as_bytes(),
            );
        }
        if let Ok(entries) = self.console_entries().await {
            let text: Vec<String> = entries
                .iter()
                .map(|e| format!("{} {} {}", e.level, e.source, e.message))
                .collect();
            let _ = write_artifact(
                &artifacts_dir().join(format!("{name}.console.txt")),
                text.join("\n").as_bytes(),
            );
        }
    }

    /// Every console entry since the session started.
    pub async fn console_entries(&self) -> Result<Vec<ConsoleEntry>, BrowserError> {
        let value = self.cmd("POST", "/se/log", Some(json!({ "type": "browser" }))).await?;
        let fresh: Vec<ConsoleEntry> = serde_json::from_value(value.clone()).map_err(|_| BrowserError::Protocol {
            command: "browser log".into(),
            body: value.to_string().chars().take(500).collect(),
        })?;
        let mut all = self.console.lock().expect("console log lock");
        all.extend(fresh);
        Ok(all.clone())
    }

    /// Script errors since the session started: uncaught exceptions, `console.error`, CSP
    /// violations (not failed network loads; see [`ConsoleEntry::is_script_error`]).
    pub async fn script_errors(&self) -> Result<Vec<ConsoleEntry>, BrowserError> {
        Ok(self
            .console_entries()
            .await?
            .into_iter()
            .filter(ConsoleEntry::is_script_error)
            .collect())
    }
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    /// The selector that found it, for error messages.
    css: String,
}

impl<'b> Element<'b> {
    async fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Result<Value, BrowserError> {
        self.browser
            .cmd(method, &format!("/element/{}{}", self.id, what), body)
            .await
            .map_err(|err| match err {
                BrowserError::WebDriver {
                    command,
                    error,
                    message,
                } => BrowserError::WebDriver {
                    command: format!("{command} on `{}`", self.css),
                    error,
                    message,
                },
                other => other,
            })
    }

    /// Scrolls it to the middle of the viewport, then clicks it. (WebDriver only scrolls elements
    /// that are out of view, so one half-hidden under a sticky header would get its click
    /// intercepted; a person would scroll it clear first, and so does this.)
    pub async fn click(&self) -> Result<(), BrowserError> {
        self.browser
            .execute(
                "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});",
                vec![json!({ ELEMENT_KEY: self.id })],
            )
            .await?;
        self.cmd("POST", "/click", Some(json!({}))).await?;
        Ok(())
    }

    /// Types text into it, as key presses.
    pub async fn type_text(&self, text: &str) -> Result<(), BrowserError> {
        self.cmd("POST", "/value", Some(json!({ "text": text }))).await?;
        Ok(())
    }

    /// Empties an input or text area.
    pub async fn clear(&self) -> Result<(), BrowserError> {
        self.cmd("POST", "/clear", Some(json!({}))).await?;
        Ok(())
    }

    /// Its rendered text.
    pub async fn text(&self) -> Result<String, BrowserError> {
        let value = self.cmd("GET", "/text", None).await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// An attribute, `None` when absent.
    pub async fn attribute(&self, name: &str) -> Result<Option<String>, BrowserError> {
        let value = self.cmd("GET", &format!("/attribute/{name}"), None).await?;
        Ok(value.as_str().map(String::from))
    }

    /// A DOM property (`value`, `checked`, …).
    pub async fn property(&self, name: &str) -> Result<Value, BrowserError> {
        self.cmd("GET", &format!("/property/{name}"), None).await
    }

    /// Whether it is rendered visibly.
    pub async fn is_displayed(&self) -> Result<bool, BrowserError> {
        let value = self.cmd("GET", "/displayed", None).await?;
        Ok(value.as_bool().unwrap_or(false))
    }

    /// Whether it is enabled (not `disabled`).
    pub async fn is_enabled(&self) -> Result<bool, BrowserError> {
        let value = self.cmd("GET", "/enabled", None).await?;
        Ok(value.as_bool().unwrap_or(false))
    }

    /// The first descendant matching `css`.
    pub async fn find(&self, css: &str) -> Result<Element<'b>, BrowserError> {
        let value = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        self.browser.element(value, &format!("{} {css}", self.css))
    }

    /// Every descendant matching `css`.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element<'b>>, BrowserError> {
        let value = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        self.browser.elements(value, &format!("{} {css}", self.css))
    }
}

/// Polls `probe` every 100 ms until it yields `Some`, or fails with [`BrowserError::Timeout`]
/// naming `what` and the last error the probe returned (errors are retried: elements go stale
/// while a page re-renders).
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> Result<T, BrowserError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, BrowserError>>,
{
    let started = Instant::now();
    let mut last = String::new();
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last = format!(": last error: {err}"),
        }
        if started.elapsed() >= timeout {
            return Err(BrowserError::Timeout {
                what: what.to_string(),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Where screenshots and dumps go: `tests/artifacts/` (gitignored).
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

fn write_artifact(path: &Path, bytes: &[u8]) -> Result<(), BrowserError> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(|source| BrowserError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    fs_err::write(path, bytes).map_err(|source| BrowserError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A free TCP port on 127.0.0.1 (free when probed; the caller retries if it is taken meanwhile).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts chromedriver on a free loopback port and waits until it reports ready.
async fn start_driver(http: &reqwest::Client, profile: &Path) -> Result<(DriverProcess, String), BrowserError> {
    let port = free_port().map_err(|source| BrowserError::Spawn {
        path: CHROMEDRIVER.into(),
        source,
    })?;
    let output = profile.join(format!("chromedriver-{port}.log"));
    let log = fs_err::File::create(&output).map_err(|source| BrowserError::Profile {
        path: output.clone(),
        source,
    })?;
    let log_err = log.try_clone().map_err(|source| BrowserError::Profile {
        path: output.clone(),
        source,
    })?;
    let mut command = Command::new(CHROMEDRIVER);
    command
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .current_dir(profile)
        // Chromium writes its crash database and NSS store under $HOME and the XDG folders:
        // keep them in the throwaway profile.
        .env("HOME", profile.join("home"))
        .env("XDG_CONFIG_HOME", profile.join("config"))
        .env("XDG_CACHE_HOME", profile.join("cache"))
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.into_file()))
        .stderr(Stdio::from(log_err.into_file()))
        .process_group(0);
    let child = command.spawn().map_err(|source| BrowserError::Spawn {
        path: CHROMEDRIVER.into(),
        source,
    })?;
    let mut driver = DriverProcess { child, output };
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if driver.has_exited() {
            return Err(BrowserError::DriverNotReady {
                port,
                waited: started.elapsed(),
                output: driver.output(),
            });
        }
        if driver_ready(http, &base).await {
            return Ok((driver, base));
        }
        if started.elapsed() > DEFAULT_TIMEOUT {
            return Err(BrowserError::DriverNotReady {
                port,
                waited: started.elapsed(),
                output: driver.output(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Whether the chromedriver at `base` answers `/status` with `ready: true`.
async fn driver_ready(http: &reqwest::Client, base: &str) -> bool {
    let Ok(response) = http.get(format!("{base}/status")).send().await else {
        return false;
    };
    let Ok(body) = response.json::<Value>().await else {
        return false;
    };
    body.pointer("/value/ready").and_then(Value::as_bool) == Some(true)
}

/// An axum router served on a free 127.0.0.1 port for the browser to load; stops on drop.
#[derive(Debug)]
pub struct PageServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    /// Binds 127.0.0.1:0 and serves `router` in a background task.
    pub async fn start(router: axum::Router) -> io::Result<PageServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(PageServer { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
