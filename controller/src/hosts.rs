//! Build hosts: the worker protocol client, one link per host (local child process or native SSH), the
//! pool's placement strategies, and how remote hosts are named, reached, trusted, provisioned and
//! checked.

use std::sync::Arc;

use crate::config::Config;

pub mod doctor;
pub mod host_spec;
pub mod install;
pub mod known_hosts;
pub mod link;
pub mod local;
pub mod pool;
pub mod remote;
pub mod ssh;
pub mod worker_client;

/// A connector for a remote host string (`[user@]host[:port]`) over native SSH.
pub fn remote_connector(name: &str, config: &Config) -> Result<Arc<dyn link::Connector>, String> {
    let spec = host_spec::HostSpec::parse(name).map_err(|e| e.to_string())?;
    Ok(Arc::new(remote::SshConnector::new(spec, &config.ssh)))
}

/// Parses a host string and returns its canonical form; the error names what is wrong.
pub fn parse_host(s: &str) -> Result<String, String> {
    host_spec::HostSpec::parse(s.trim())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}
