//! The demo agent's on-disk session: a transcript in Claude Code's session-file format
//! (`<log dir>/<session id>.jsonl`, so the sublog reader shows demo sessions like real ones) plus its
//! own `demo-state` lines, from which a resumed turn learns the original task, whether a question is
//! waiting for its answer, what was committed and the session's cumulative usage.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// What earlier turns of the session left behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The prompt of the session's first turn.
    pub task: Option<String>,
    /// The last turn ended with a question.
    pub question_pending: bool,
    /// The short id of the commit the session made.
    pub commit: Option<String>,
    /// Cumulative input tokens, output tokens and cost of earlier turns.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// An open session file.
#[derive(Debug)]
pub struct SessionFile {
    path: Option<PathBuf>,
    /// Opened on the first append and kept open (one open per line made chatty turns slow).
    file: std::cell::RefCell<Option<std::fs::File>>,
}

impl SessionFile {
    /// The session `id`'s file in `dir` (created on first write). Without a folder nothing is kept.
    pub fn new(dir: Option<&Path>, id: &str) -> SessionFile {
        SessionFile {
            path: dir.map(|d| d.join(format!("{id}.jsonl"))),
            file: std::cell::RefCell::new(None),
        }
    }

    /// What earlier turns recorded (empty for a new session or an unreadable file).
    pub fn history(&self) -> History {
        let mut history = History::default();
        let Some(text) = self.path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) else {
            return history;
        };
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if value.get("type").and_then(Value::as_str) != Some("demo-state") {
                continue;
            }
            if history.task.is_none() {
                history.task = value.get("task").and_then(Value::as_str).map(str::to_string);
            }
            history.question_pending = value.get("questionPending").and_then(Value::as_bool).unwrap_or(false);
            if let Some(commit) = value.get("commit").and_then(Value::as_str) {
                history.commit = Some(commit.to_string());
            }
            let n = |k: &str| value.get(k).and_then(Value::as_u64).unwrap_or(0);
            history.input_tokens = n("inputTokens");
            history.output_tokens = n("outputTokens");
            history.cost_usd = value.get("costUsd").and_then(Value::as_f64).unwrap_or(0.0);
        }
        history
    }

    /// Appends one transcript line. Failing to keep the transcript never fails the turn.
    pub fn append(&self, line: &Value) {
        let Some(path) = &self.path else {
            return;
        };
        let mut slot = self.file.borrow_mut();
        if slot.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            *slot = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        }
        if let Some(file) = slot.as_mut() {
            // One write per line, so a reader never sees half a line.
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }

    /// Records the state a later turn needs.
    pub fn save_state(&self, session_id: &str, history: &History) {
        self.append(&json!({
            "type": "demo-state",
            "sessionId": session_id,
            "task": history.task,
            "questionPending": history.question_pending,
            "commit": history.commit,
            "inputTokens": history.input_tokens,
            "outputTokens": history.output_tokens,
            "costUsd": history.cost_usd,
        }));
    }
}
