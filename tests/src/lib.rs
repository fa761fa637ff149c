//! Reusable fixtures for the end-to-end tests: where the built binaries are, a real controller process
//! and an API client, an SSE reader, real `sshd` build hosts and the `ssh` client aimed at them, fake tracker and model APIs, headless
//! Chromium.

pub mod binaries;
pub mod browser;
pub mod controller;
pub mod fake_anthropic;
pub mod fake_github;
pub mod fake_linear;
pub mod fake_openai;
pub mod openssh;
pub mod project;
pub mod sse;
pub mod sshd;
