//! The Itervox build-host worker: keeps repository mirrors and per-issue worktrees, runs hooks and agent
//! sessions under detached supervisors, journals their output as structured log entries, and speaks the
//! worker protocol on stdio.

pub mod agent;
pub mod demo_agent;
pub mod sublogs;
