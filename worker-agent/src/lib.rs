//! The Itervox build-host worker: keeps repository mirrors and per-issue worktrees, runs hooks and agent
//! sessions under detached supervisors, journals their output as structured log entries, and speaks the
//! worker protocol on stdio.
//!
//! Map: [`cli`] (the command line) → [`serve`] (the protocol server: handshake, concurrent requests,
//! one stdout writer, journal followers) → [`workspace`] (mirrors and worktrees) and [`session`]
//! (session folders, the detached per-turn [`session::supervisor`], the [`session::journal`], dead
//! supervisor detection in [`session::reconcile`]). Below them: [`hooks`], [`process_group`],
//! [`line_reader`], [`file_lock`], [`layout`] (paths under the root), [`identifier`] (sanitisation).
//! The agent CLIs themselves are behind [`agent`] (command lines and output parsers).
//!
//! Invariants: stdout of `serve` carries protocol frames only; a session's journal has exactly one
//! writer at a time (the holder of its supervisor lock); a session ends only by its agent exiting,
//! a timeout, or an explicit cancel, never because a connection or a serve process went away.

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
