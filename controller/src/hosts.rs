//! Remote build hosts: how a host is named, reached over native SSH, trusted, provisioned and checked.

pub mod doctor;
pub mod host_spec;
pub mod install;
pub mod known_hosts;
pub mod ssh;
