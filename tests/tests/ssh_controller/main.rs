//! The real controller over real `sshd` build hosts (issue 3 end to end): placement and per-host caps,
//! a host's sshd dying mid-session, refused and unreachable hosts, and the host-pool API, all observed
//! through the HTTP API. Needs root (the lab runs sshd) and the built binaries.

mod harness;

mod bulk_channel;
mod distribution;
mod outage;
mod pool_api;
mod refusals;
