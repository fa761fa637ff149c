//! The agent-CLI seam of the worker: how to start one turn of an agent (its command line, environment and
//! stdin) and how to turn its stdout into log entries and a turn outcome.
//!
//! The supervisor owns the process; this module only knows the CLIs. Backends: Claude Code
//! (`agent/claude.rs`, also used for the demo agent, which prints the same stream-json) and Codex
//! (`agent/codex.rs`). Shared pieces: the input-required sentinel (`agent/sentinel.rs`) and rate-limit
//! classification (`agent/rate_limit.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use itervox_protocol::IssueLogEntry;
use itervox_protocol::worker::{Backend, PermissionMode};

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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnSummary {
    pub input_tokens: u64,
    pub output_tokens: u64,
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
    pub rate_limited: bool,
    pub rate_limit_reset_at: Option<DateTime<Utc>>,
}

/// Parses an agent's stdout line by line. Never fails: a malformed, partial or oversized line becomes a
/// `warn` entry (or is skipped) and parsing goes on.
pub trait OutputParser: Send {
    /// One line of stdout, without its newline. `now` stamps the entries.
    fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Vec<AgentEvent>;
    /// Called once after the process exited (`exit_code` is `None` when it was killed by a signal).
    fn finish(&mut self, exit_code: Option<i32>, now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome);
}

/// Builds the command line of one turn for the request's backend.
///
/// Interim version (Claude-style flags only; the full backends replace it): the program is exec'd
/// directly when it is an absolute path, else through `sh -lc`.
pub fn build_command(req: &TurnRequest<'_>) -> Result<AgentCommand, AgentError> {
    if req.prompt.contains('\0') {
        return Err(AgentError::NulInPrompt);
    }
    let mut args: Vec<String> = Vec::new();
    let program = match req.backend {
        Backend::Demo => {
            args.push("demo-agent".into());
            req.self_exe.to_path_buf()
        }
        _ => {
            let mut words = req.command.split_whitespace();
            let program = words.next().ok_or(AgentError::EmptyCommand)?;
            args.extend(words.map(String::from));
            PathBuf::from(program)
        }
    };
    args.extend(["-p", "--output-format", "stream-json", "--verbose"].map(String::from));
    if let Some(r) = req.resume_ref {
        args.push("--resume".into());
        args.push(r.to_string());
    }
    let mut env = req.env.clone();
    env.insert("ITERVOX_AGENT".into(), "1".into());
    env.insert("CLAUDE_CODE_LOG_DIR".into(), req.log_dir.display().to_string());
    let (program, args) = if program.is_absolute() {
        (program, args)
    } else {
        let line = std::iter::once(program.display().to_string())
            .chain(args)
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        (PathBuf::from("/bin/sh"), vec!["-lc".into(), format!("exec {line}")])
    };
    Ok(AgentCommand {
        program,
        args,
        env,
        stdin: req.prompt.as_bytes().to_vec(),
        cwd: req.workspace.to_path_buf(),
    })
}

/// A fresh parser for the backend's output format.
pub fn parser_for(backend: Backend) -> Box<dyn OutputParser> {
    let _ = backend;
    Box::new(RawLines)
}

/// Placeholder parser until the backends land: every line becomes a text entry.
struct RawLines;

impl OutputParser for RawLines {
    fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Vec<AgentEvent> {
        vec![AgentEvent::Log(IssueLogEntry::new(
            itervox_protocol::LogLevel::Info,
            itervox_protocol::LogEventKind::Text,
            String::from_utf8_lossy(line),
            now.to_rfc3339(),
        ))]
    }

    fn finish(&mut self, exit_code: Option<i32>, _now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome) {
        let status = if exit_code == Some(0) {
            OutcomeStatus::Succeeded
        } else {
            OutcomeStatus::Failed
        };
        (
            Vec::new(),
            TurnOutcome {
                status,
                ..TurnOutcome::default()
            },
        )
    }
}
