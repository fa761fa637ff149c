//! The Itervox build-host worker: keeps repository mirrors and per-issue worktrees, runs hooks and agent
//! sessions under detached supervisors, journals their output as structured log entries, and speaks the
//! worker protocol on stdio.

pub mod agent;
pub mod atomic_file;
pub mod cli;
pub mod demo_agent;
pub mod file_lock;
pub mod hooks;
pub mod host_info;
pub mod identifier;
pub mod layout;
pub mod line_reader;
pub mod process_group;
pub mod process_identity;
pub mod serve;
pub mod session;
pub mod sublogs;
pub mod timestamp;
pub mod workspace;
