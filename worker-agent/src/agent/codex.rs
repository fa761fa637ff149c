//! Codex CLI: the command line of one turn (`codex exec --json … -`, `… resume <thread> -`) and the
//! parser of its JSONL events (`thread.started`, `item.*`, `turn.completed`, `turn.failed`, `error`).
//!
//! `codex exec resume` accepts neither `--sandbox` nor the approval flag itself, but options given to
//! `exec` before the `resume` subcommand apply to the resumed thread, so every flag goes there. Exec
//! mode has no `--ask-for-approval`; the sandbox mode pins the policy with `-c approval_policy="never"`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use itervox_protocol::worker::PermissionMode;
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use serde_json::{Map, Value, json};

use super::command_line::{LaunchHost, launch, split_words};
use super::json_line::{Line, decode};
use super::pr_url::PrTracker;
use super::rate_limit::LimitSignal;
use super::tool_summary::shell_command_text;
use super::{
    AgentCommand, AgentError, AgentEvent, OutcomeStatus, OutputParser, TurnOutcome, TurnRequest, TurnSummary, base_env,
    entry_time, sentinel, truncate,
};

/// The command of one Codex turn.
pub(crate) fn command(req: &TurnRequest<'_>, host: &LaunchHost) -> Result<AgentCommand, AgentError> {
    let mut words = split_words(req.command)?;
    if !words[1..].iter().any(|w| w == "exec") {
        words.insert(1, "exec".to_string());
    }
    words.push("--json".into());
    match req.permission_mode {
        PermissionMode::Bypass => words.push("--dangerously-bypass-approvals-and-sandbox".into()),
        PermissionMode::Sandbox => {
            words.extend(["--sandbox", "workspace-write", "-c", "approval_policy=\"never\""].map(String::from))
        }
    }
    words.push("--skip-git-repo-check".into());
    if let Some(reference) = req.resume_ref {
        words.push("resume".into());
        words.push(reference.to_string());
    }
    // The prompt comes from stdin.
    words.push("-".into());
    let (program, args) = launch(words, host);
    Ok(AgentCommand {
        program,
        args,
        env: base_env(req),
        stdin: req.prompt.as_bytes().to_vec(),
        cwd: req.workspace.to_path_buf(),
    })
}

const TERMINAL: &[&str] = &["turn.completed", "turn.failed"];

/// The parser of `codex exec --json` output.
#[derive(Debug, Default)]
pub struct CodexParser {
    thread_ref: Option<String>,
    prs: PrTracker,
    /// Items whose start was already logged (and counted as a tool call).
    started: HashSet<String>,
    tool_calls: u32,
    turns: u32,
    completed_turns: u32,
    totals: TurnSummary,
    /// The last `agent_message` of the current turn and of the run.
    turn_message: Option<String>,
    last_message: Option<String>,
    failure: Option<String>,
    last_error: Option<String>,
    limit: LimitSignal,
    lost_terminal_line: bool,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl CodexParser {
    pub fn new() -> CodexParser {
        CodexParser::default()
    }

    fn log(out: &mut Vec<AgentEvent>, entry: IssueLogEntry) {
        out.push(AgentEvent::Log(entry));
    }

    fn pr_entries(&mut self, text: &str, time: &str, out: &mut Vec<AgentEvent>) {
        for url in self.prs.new_urls(text) {
            let entry = IssueLogEntry::new(LogLevel::Info, LogEventKind::Pr, url.clone(), time.to_string())
                .with_detail(json!({ "url": url }).to_string());
            Self::log(out, entry);
        }
    }

    /// Counts an item as a tool call once (at its start, or at its completion when no start was seen).
    fn count_once(&mut self, item: &Value) -> bool {
        let id = s(item, "id").unwrap_or_default().to_string();
        if self.started.contains(&id) {
            return false;
        }
        self.started.insert(id);
        self.tool_calls += 1;
        true
    }

    fn on_item_started(&mut self, item: &Value, time: &str, out: &mut Vec<AgentEvent>) {
        match s(item, "type").unwrap_or_default() {
            "command_execution" => {
                self.count_once(item);
                let command = shell_command_text(s(item, "command").unwrap_or_default());
                Self::log(
                    out,
                    IssueLogEntry::new(LogLevel::Info, LogEventKind::Action, command, time.to_string())
                        .with_tool("shell"),
                );
            }
            "mcp_tool_call" => {
                self.count_once(item);
                Self::log(out, mcp_entry(item, time));
            }
            "collab_tool_call" => {
                self.count_once(item);
                Self::log(out, collab_entry(item, time));
            }
            "web_search" => {
                self.count_once(item);
                let query = s(item, "query").unwrap_or_default().to_string();
                Self::log(
                    out,
                    IssueLogEntry::new(LogLevel::Info, LogEventKind::Action, query, time.to_string())
                        .with_tool("web_search"),
                );
            }
            _ => {}
        }
    }

    fn on_item_completed(&mut self, item: &Value, now: DateTime<Utc>, time: &str, out: &mut Vec<AgentEvent>) {
        let status = s(item, "status").unwrap_or("completed");
        let failed_status = matches!(status, "failed" | "declined");
        match s(item, "type").unwrap_or_default() {
            "agent_message" => {
                let text = s(item, "text").unwrap_or_default();
                if text.trim().is_empty() {
                    return;
                }
                self.turn_message = Some(text.to_string());
                self.last_message = Some(text.to_string());
                Self::log(
                    out,
                    IssueLogEntry::new(
                        LogLevel::Info,
                        LogEventKind::Text,
                        truncate(text, 64 * 1024),
                        time.to_string(),
                    ),
                );
                self.pr_entries(text, time, out);
            }
            "command_execution" => {
                self.count_once(item);
                let command = shell_command_text(s(item, "command").unwrap_or_default());
                let output = s(item, "aggregated_output").unwrap_or_default();
                let exit_code = item.get("exit_code").and_then(Value::as_i64);
                let detail = json!({
                    "status": status,
                    "exit_code": exit_code,
                    "output_size": output.len(),
                });
                let failed = failed_status || exit_code.is_some_and(|c| c != 0);
                let entry = if failed {
                    let code = exit_code.map_or_else(|| status.to_string(), |c| format!("exit code {c}"));
                    IssueLogEntry::new(
                        LogLevel::Warn,
                        LogEventKind::Warn,
                        truncate(&format!("{command} — {code}"), 600),
                        time.to_string(),
                    )
                } else {
                    IssueLogEntry::new(LogLevel::Info, LogEventKind::Action, command, time.to_string())
                };
                Self::log(out, entry.with_tool("shell").with_detail(detail.to_string()));
                self.pr_entries(output, time, out);
            }
            "file_change" => {
                self.count_once(item);
                let changes: Vec<String> = item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .map(|c| format!("{} {}", s(c, "kind").unwrap_or("update"), s(c, "path").unwrap_or("?")))
                            .collect()
                    })
                    .unwrap_or_default();
                let message = truncate(&changes.join(", "), 300);
                let (level, event) = if failed_status {
                    (LogLevel::Warn, LogEventKind::Warn)
                } else {
                    (LogLevel::Info, LogEventKind::Action)
                };
                Self::log(
                    out,
                    IssueLogEntry::new(level, event, message, time.to_string())
                        .with_tool("apply_patch")
                        .with_detail(json!({ "status": status }).to_string()),
                );
            }
            "mcp_tool_call" => {
                let fresh = self.count_once(item);
                let error = item.get("error").and_then(|e| s(e, "message").or_else(|| e.as_str()));
                if let Some(error) = error.filter(|_| failed_status || item.get("error").is_some_and(|e| !e.is_null()))
                {
                    let mut entry = mcp_entry(item, time);
                    entry.level = LogLevel::Warn;
                    entry.event = LogEventKind::Warn;
                    entry.message = truncate(&format!("{} — {error}", entry.message), 600);
                    Self::log(out, entry);
                } else if fresh {
                    Self::log(out, mcp_entry(item, time));
                }
            }
            "collab_tool_call" if self.count_once(item) => {
                Self::log(out, collab_entry(item, time));
            }
            "web_search" if self.count_once(item) => {
                let query = s(item, "query").unwrap_or_default().to_string();
                Self::log(
                    out,
                    IssueLogEntry::new(LogLevel::Info, LogEventKind::Action, query, time.to_string())
                        .with_tool("web_search"),
                );
            }
            "todo_list" => {
                let items = item.get("items").and_then(Value::as_array);
                let first = items
                    .and_then(|i| i.iter().find_map(|t| s(t, "text")))
                    .unwrap_or_default();
                let more = items.map_or(0, Vec::len).saturating_sub(1);
                let message = if more > 0 {
                    format!("{first} (+{more} more)")
                } else {
                    first.to_string()
                };
                Self::log(
                    out,
                    IssueLogEntry::new(LogLevel::Info, LogEventKind::Action, message, time.to_string())
                        .with_tool("todo"),
                );
            }
            "error" => {
                let message = s(item, "message").unwrap_or("error").to_string();
                self.limit.note_text(&message, now);
                self.last_error = Some(message.clone());
                Self::log(
                    out,
                    IssueLogEntry::new(
                        LogLevel::Warn,
                        LogEventKind::Warn,
                        truncate(&message, 2000),
                        time.to_string(),
                    ),
                );
            }
            // reasoning and anything new: nothing for the log.
            _ => {}
        }
    }

    fn end_turn(&mut self, usage: Option<&Value>, failure: Option<String>, time: &str, out: &mut Vec<AgentEvent>) {
        self.turns += 1;
        let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
        let cached = n("cached_input_tokens");
        let is_error = failure.is_some();
        let summary = TurnSummary {
            input_tokens: n("input_tokens").saturating_sub(cached),
            cached_input_tokens: cached,
            output_tokens: n("output_tokens"),
            cost_usd: None,
            agent_session_ref: self.thread_ref.clone(),
            tool_calls: std::mem::take(&mut self.tool_calls),
            result_text: failure.or_else(|| self.turn_message.take()),
            is_error,
        };
        self.totals.input_tokens += summary.input_tokens;
        self.totals.cached_input_tokens += summary.cached_input_tokens;
        self.totals.output_tokens += summary.output_tokens;
        let message = format!(
            "Turn {} {}: {} input tokens ({} cached), {} output tokens",
            self.turns,
            if is_error { "failed" } else { "ended" },
            summary.input_tokens,
            summary.cached_input_tokens,
            summary.output_tokens,
        );
        let detail = json!({
            "inputTokens": summary.input_tokens,
            "cachedInputTokens": summary.cached_input_tokens,
            "outputTokens": summary.output_tokens,
            "reasoningOutputTokens": n("reasoning_output_tokens"),
            "toolCalls": summary.tool_calls,
            "isError": is_error,
        });
        let level = if is_error { LogLevel::Warn } else { LogLevel::Info };
        Self::log(
            out,
            IssueLogEntry::new(level, LogEventKind::Turn, message, time.to_string()).with_detail(detail.to_string()),
        );
        out.push(AgentEvent::TurnEnd(summary));
    }

    fn on_line(&mut self, line: &Map<String, Value>, now: DateTime<Utc>, time: &str, out: &mut Vec<AgentEvent>) {
        let v = Value::Object(line.clone());
        match s(&v, "type").unwrap_or_default() {
            "thread.started" => {
                let id = s(&v, "thread_id").unwrap_or("?").to_string();
                self.thread_ref = Some(id.clone());
                Self::log(
                    out,
                    IssueLogEntry::new(
                        LogLevel::Info,
                        LogEventKind::Info,
                        format!("Codex thread {id} started"),
                        time.to_string(),
                    )
                    .with_detail(json!({ "thread_id": id }).to_string()),
                );
            }
            "turn.started" => {
                self.turn_message = None;
            }
            "item.started" => {
                if let Some(item) = v.get("item") {
                    self.on_item_started(item, time, out);
                }
            }
            "item.completed" => {
                if let Some(item) = v.get("item") {
                    self.on_item_completed(item, now, time, out);
                }
            }
            "turn.completed" => {
                self.completed_turns += 1;
                self.end_turn(v.get("usage"), None, time, out);
            }
            "turn.failed" => {
                let message = v
                    .get("error")
                    .and_then(|e| s(e, "message").or_else(|| e.as_str()))
                    .unwrap_or("the turn failed")
                    .to_string();
                self.limit.note_text(&message, now);
                self.failure = Some(message.clone());
                Self::log(
                    out,
                    IssueLogEntry::new(
                        LogLevel::Error,
                        LogEventKind::Error,
                        truncate(&message, 2000),
                        time.to_string(),
                    ),
                );
                self.end_turn(v.get("usage"), Some(message), time, out);
            }
            "error" => {
                let message = s(&v, "message").unwrap_or("error").to_string();
                self.limit.note_text(&message, now);
                self.last_error = Some(message.clone());
                Self::log(
                    out,
                    IssueLogEntry::new(
                        LogLevel::Warn,
                        LogEventKind::Warn,
                        truncate(&message, 2000),
                        time.to_string(),
                    ),
                );
            }
            // item.updated (to-do progress) and anything new.
            _ => {}
        }
    }
}

fn mcp_entry(item: &Value, time: &str) -> IssueLogEntry {
    let server = s(item, "server").unwrap_or("mcp");
    let tool = s(item, "tool").unwrap_or("tool");
    let args = item
        .get("arguments")
        .filter(|a| !a.is_null())
        .map(Value::to_string)
        .unwrap_or_default();
    IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Action,
        truncate(&args, 300),
        time.to_string(),
    )
    .with_tool(format!("mcp:{server}/{tool}"))
}

fn collab_entry(item: &Value, time: &str) -> IssueLogEntry {
    let tool = s(item, "tool").unwrap_or("collab");
    let prompt = s(item, "prompt").unwrap_or(tool);
    IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Subagent,
        truncate(prompt, 300),
        time.to_string(),
    )
    .with_tool(tool.to_string())
    .with_detail(json!({ "phase": "spawn", "receivers": item.get("receiver_thread_ids") }).to_string())
}

impl OutputParser for CodexParser {
    fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Vec<AgentEvent> {
        let time = entry_time(now);
        let mut out = Vec::new();
        match decode(line, TERMINAL) {
            Line::Blank => {}
            Line::NotJson { text } => {
                self.last_error = Some(text.clone());
                Self::log(
                    &mut out,
                    IssueLogEntry::new(
                        LogLevel::Warn,
                        LogEventKind::Warn,
                        format!("Unparsable agent output: {}", truncate(&text, 500)),
                        time,
                    ),
                );
            }
            Line::Oversized { bytes, kind, terminal } => {
                if terminal {
                    self.lost_terminal_line = true;
                }
                let kind = kind.unwrap_or_else(|| "unknown".into());
                Self::log(
                    &mut out,
                    IssueLogEntry::new(
                        LogLevel::Warn,
                        LogEventKind::Warn,
                        format!("Skipped an oversized agent output line ({bytes} bytes, type {kind})"),
                        time,
                    ),
                );
            }
            Line::Object(map) => self.on_line(&map, now, &time, &mut out),
        }
        out
    }

    fn finish(&mut self, exit_code: Option<i32>, _now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome) {
        let failed_reason = if let Some(failure) = &self.failure {
            Some(failure.clone())
        } else if self.lost_terminal_line {
            Some("the agent's final turn line was larger than 16 MiB and could not be read".to_string())
        } else if exit_code != Some(0) {
            Some(self.last_error.clone().unwrap_or_else(|| match exit_code {
                Some(code) => format!("codex exited with code {code}"),
                None => "codex was killed by a signal".to_string(),
            }))
        } else if self.completed_turns == 0 {
            Some("codex exited without completing a turn".to_string())
        } else {
            None
        };
        let mut outcome = TurnOutcome {
            agent_session_ref: self.thread_ref.clone(),
            pr_url: self.prs.last().map(str::to_string),
            input_tokens: self.totals.input_tokens,
            cached_input_tokens: self.totals.cached_input_tokens,
            output_tokens: self.totals.output_tokens,
            cost_usd: None,
            turns: self.turns,
            ..TurnOutcome::default()
        };
        if let Some(reason) = failed_reason {
            outcome.status = OutcomeStatus::Failed;
            outcome.error = Some(reason);
            outcome.rate_limited = self.limit.limited;
            outcome.rate_limit_reset_at = self.limit.reset_at();
        } else if let Some(question) = self.last_message.as_deref().and_then(sentinel::question) {
            outcome.status = OutcomeStatus::InputRequired;
            outcome.question = Some(question);
        }
        (Vec::new(), outcome)
    }
}
