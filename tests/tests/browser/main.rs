//! Browser tests: the WebDriver harness itself, and the web dashboard in real headless Chromium.

mod dashboard;
mod fake_api;
mod harness;
