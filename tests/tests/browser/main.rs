//! Browser tests: the WebDriver harness itself, and the web dashboard in real headless Chromium
//! against a scripted fake API and against a real controller.

mod dashboard;
mod fake_api;
mod harness;
mod live;
