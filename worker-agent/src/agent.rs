//! The agent-CLI seam of the worker: how to start one turn of an agent (its command line, environment and
//! stdin) and how to turn its stdout into log entries and a turn outcome.
//!
//! The supervisor owns the process; this module only knows the CLIs. Backends: Claude Code
//! (`agent/claude.rs`, also used for the demo agent, which prints the same stream-json) and Codex
//! (`agent/codex.rs`). Shared pieces: splitting and launching the configured command
//! (`agent/command_line.rs`), decoding stdout lines (`agent/json_line.rs`), the input-required sentinel
//! (`agent/sentinel.rs`), rate-limit classification (`agent/rate_limit.rs`), tool-call summaries
//! (`agent/tool_summary.rs`), Claude message content (`agent/claude_content.rs`, shared with the sublog
//! reader) and pull-request URLs (`agent/pr_url.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use itervox_protocol::IssueLogEntry;
use itervox_protocol::worker::{Backend, PermissionMode};

pub mod claude;
pub mod claude_content;
pub mod codex;
pub mod command_line;
pub mod json_line;
pub mod pr_url;
pub mod rate_limit;
pub mod sentinel;
pub mod tool_summary;

#[cfg(test)]
mod tests;

pub use claude::ClaudeParser;
pub use codex::CodexParser;
pub use command_line::LaunchHost;

/// Everything needed to build one turn's command line.
#[derive(Debug, Clone)]
pub struct TurnRequest<'a> {
    pub backend: Backend,
    /// The configured agent command (may carry flags); ignored for the demo backend.
    pub command: &'a str,
    /// This turn's prompt (the rendered template on turn 1, the human's reply or continuation text later).
    pub prompt: &'a str,
    /// The agent's own session id to resume, for turns after the first.
    pub resume_ref: Option<&'a str>,
    pub permission_mode: PermissionMode,
    /// The worktree: the agent's working directory.
    pub workspace: &'a Path,
    /// Extra environment from the controller.
    pub env: &'a BTreeMap<String, String>,
    /// Per-issue folder for the agent's own logs (`CLAUDE_CODE_LOG_DIR`, Codex tee files).
    pub log_dir: &'a Path,
    /// This worker binary, for the demo backend (`<self> demo-agent ...`).
    pub self_exe: &'a Path,
}

/// A fully resolved command: what the supervisor spawns (in its own process group) for one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Variables added to (or overriding) the worker's environment.
    pub env: BTreeMap<String, String>,
    /// Bytes written to the agent's stdin, which is then closed (the prompt).
    pub stdin: Vec<u8>,
    pub cwd: PathBuf,
}

/// Why a command could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("the agent command is empty")]
    EmptyCommand,
    #[error("the prompt contains a NUL byte")]
    NulInPrompt,
    #[error("cannot parse the agent command {command:?}: {reason}")]
    BadCommand { command: String, reason: String },
}

/// What the parser found in one line of the agent's stdout.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A log entry (the supervisor stamps `sessionId` and `seq`).
    Log(IssueLogEntry),
    /// The agent finished a turn (a `result` line, a `turn.completed`); a process may report several.
    TurnEnd(TurnSummary),
}

/// One agent-reported turn.
///
/// Token counts are this turn's own (never cumulative over the agent session, so summing the summaries
/// of a run gives the run's total): `input_tokens` are input tokens not served from the prompt cache
/// (Claude: `input_tokens + cache_creation_input_tokens`; Codex: `input_tokens - cached_input_tokens`),
/// `cached_input_tokens` the ones read from it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnSummary {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache (added field; not part of `input_tokens`).
    pub cached_input_tokens: u64,
    /// This turn's cost (Claude reports it; Codex does not).
    pub cost_usd: Option<f64>,
    pub agent_session_ref: Option<String>,
    pub tool_calls: u32,
    pub result_text: Option<String>,
    pub is_error: bool,
}

/// How the turn ended, decided once the process has exited and all its output was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutcomeStatus {
    #[default]
    Succeeded,
    Failed,
    /// The final message asked a human (sentinel or vendor signal).
    InputRequired,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnOutcome {
    pub status: OutcomeStatus,
    /// Failure text for `Failed`.
    pub error: Option<String>,
    /// The agent's question for `InputRequired`.
    pub question: Option<String>,
    pub agent_session_ref: Option<String>,
    pub pr_url: Option<String>,
    /// True when the failure was a rate limit or an overload (only set on `Failed`).
    pub rate_limited: bool,
    pub rate_limit_reset_at: Option<DateTime<Utc>>,
    /// Sum of the process's turn summaries (added fields).
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    /// Number of agent-reported turns (`result` / `turn.completed` lines) the process printed.
    pub turns: u32,
}

/// Parses an agent's stdout line by line. Never fails: a malformed, partial or oversized line becomes a
/// `warn` entry (or is skipped) and parsing goes on.
pub trait OutputParser: Send {
    /// One line of stdout, without its newline. `now` stamps the entries.
    fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Vec<AgentEvent>;
    /// Called once after the process exited (`exit_code` is `None` when it was killed by a signal).
    fn finish(&mut self, exit_code: Option<i32>, now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome);
}

/// Builds the command line of one turn for the request's backend, for this host (its login shell and
/// whether the worker runs as root; see [`build_command_on`]).
pub fn build_command(req: &TurnRequest<'_>) -> Result<AgentCommand, AgentError> {
    build_command_on(req, &LaunchHost::current())
}

/// [`build_command`] for an explicit host description (tests use it to pin the shell and the uid).
///
/// Claude Code: `<command> -p --output-format stream-json --verbose <permission flags> [--resume ref]`.
/// Codex: `<codex> exec <configured flags> --json <permission flags> --skip-git-repo-check [resume ref] -`.
/// Demo: `<self_exe> demo-agent -p --output-format stream-json --verbose [--resume ref]`.
/// A program that is not an absolute path runs through the login shell (`$SHELL -lc 'exec …'`) so
/// nvm/asdf installs are found; the prompt always goes to stdin.
pub fn build_command_on(req: &TurnRequest<'_>, host: &LaunchHost) -> Result<AgentCommand, AgentError> {
    if req.prompt.contains('\0') {
        return Err(AgentError::NulInPrompt);
    }
    match req.backend {
        Backend::Claude | Backend::Demo => claude::command(req, host),
        Backend::Codex => codex::command(req, host),
    }
}

/// A fresh parser for the backend's output format.
pub fn parser_for(backend: Backend) -> Box<dyn OutputParser> {
    match backend {
        Backend::Claude | Backend::Demo => Box::new(ClaudeParser::new()),
        Backend::Codex => Box::new(CodexParser::new()),
    }
}

/// The `time` of an entry produced at `now`.
pub(crate) fn entry_time(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `text` cut to at most `max` bytes (on a character boundary), with an ellipsis when it was cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The environment every agent process gets on top of the request's: `ITERVOX_AGENT=1` always wins.
pub(crate) fn base_env(req: &TurnRequest<'_>) -> BTreeMap<String, String> {
    let mut env = req.env.clone();
    env.insert("ITERVOX_AGENT".into(), "1".into());
    env
}
