//! Build hosts: the worker protocol client, one link per host (local child process or SSH), and the
//! pool's placement strategies.

pub mod link;
pub mod local;
pub mod pool;
pub mod worker_client;

use std::sync::Arc;

use crate::config::Config;

/// A connector for a remote host string (`[user@]host[:port]`) over native SSH.
pub fn remote_connector(name: &str, config: &Config) -> Result<Arc<dyn link::Connector>, String> {
    let _ = config;
    Err(format!("cannot connect to {name}: SSH support is being built"))
}

/// Parses and normalises a host string; the error names what is wrong.
pub fn parse_host(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) || s.starts_with('-') {
        return Err(format!("{s:?} is not a host: expected [user@]host[:port]"));
    }
    Ok(s.to_string())
}
