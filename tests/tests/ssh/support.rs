//! Helpers shared by the SSH tests: a client for a lab with a given host key policy, and bounded waits.

use std::time::Duration;

use itervox::config::{HostKeyPolicy, SshConfig};
use itervox::hosts::ssh::SshClient;
use itervox_tests::sshd::SshLab;

/// Generous limit for anything that should happen "soon" on a shared, noisy machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The lab's settings with `policy`.
pub fn config(lab: &SshLab, policy: HostKeyPolicy) -> SshConfig {
    SshConfig {
        strict_host_key_checking: policy,
        ..lab.ssh_config()
    }
}

/// A client for the lab with `policy`.
pub fn client(lab: &SshLab, policy: HostKeyPolicy) -> SshClient {
    SshClient::from_config(&config(lab, policy))
}
