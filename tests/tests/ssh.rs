//! The SSH layer (`itervox::hosts`) against real OpenSSH servers from the lab fixture: connections and
//! channels, host key policies, authentication, dead-peer detection, worker installation, host checks,
//! and the deploy scripts.

mod ssh {
    pub mod support;

    mod auth;
    mod cli;
    mod connect;
    mod deploy_files;
    mod doctor;
    mod host_keys;
    mod install;
    mod liveness;
}
