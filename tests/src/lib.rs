//! Reusable fixtures for the end-to-end tests: where the built binaries are, throwaway git
//! repositories, real `sshd` build hosts, fake tracker and model APIs, and a running controller.

pub mod binaries;
pub mod sshd;
