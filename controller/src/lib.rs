//! The Itervox controller: polls a tracker, schedules one agent session per issue on a pool of build
//! hosts, and serves the `/api/v1` REST + SSE API, the web dashboard and the terminal UI.
//!
//! See ARCHITECTURE.md at the repository root for the map of modules and their invariants.

pub mod config;
pub mod hosts;
pub mod tracker;
