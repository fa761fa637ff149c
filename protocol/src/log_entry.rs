//! `IssueLogEntry`: one structured line of an agent session's log, as journaled by the worker and
//! served by `/issues/{id}/logs`, `/log-stream` and `/sublogs`.

use serde::{Deserialize, Serialize};

/// Severity of a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// What a log entry reports. The wire names are the contract's `event` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEventKind {
    /// Text the agent wrote (its reasoning or answer).
    Text,
    /// A tool call (`tool` names it, `message` is a human summary: the file, the command, the pattern).
    Action,
    /// A subagent was started (Claude Code's Task/Agent tool, Codex collab calls).
    Subagent,
    /// A pull request URL seen in the agent's output.
    Pr,
    /// End of a turn, with its token counts in `message`/`detail`.
    Turn,
    Error,
    Warn,
    Info,
}

impl LogEventKind {
    /// The wire name (`text`, `action`, …), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            LogEventKind::Text => "text",
            LogEventKind::Action => "action",
            LogEventKind::Subagent => "subagent",
            LogEventKind::Pr => "pr",
            LogEventKind::Turn => "turn",
            LogEventKind::Error => "error",
            LogEventKind::Warn => "warn",
            LogEventKind::Info => "info",
        }
    }
}

/// One structured log line.
///
/// `{"level":"info","event":"action","message":"cargo test","tool":"Bash","time":"2026-12-04T10:00:00Z",
/// "sessionId":"s-1","seq":4}`. `tool` and `detail` appear only where they apply; `seq` is the
/// per-session sequence number the worker assigned (the resume cursor of `/log-stream`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueLogEntry {
    pub level: LogLevel,
    pub event: LogEventKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// RFC 3339 UTC time the entry was produced.
    pub time: String,
    /// Extra structured detail as a JSON string (for example a shell command's exit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl IssueLogEntry {
    /// An entry with the given level, kind and message, stamped with `time`, and nothing else.
    pub fn new(level: LogLevel, event: LogEventKind, message: impl Into<String>, time: String) -> Self {
        IssueLogEntry {
            level,
            event,
            message: message.into(),
            tool: None,
            time,
            detail: None,
            session_id: None,
            seq: None,
        }
    }

    /// Sets `tool`.
    pub fn with_tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets `detail`.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}
