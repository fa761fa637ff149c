//! The worker's integration tests: the real `itervox-worker` binary over its stdio, with real git
//! repositories, real processes and shell-script agents.

mod harness;
mod protocol;
mod sessions;
mod workspaces;
