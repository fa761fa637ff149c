//! Claude Code: the command line of one turn (`-p --output-format stream-json --verbose`, permission
//! flags, `--resume`), also used for the demo agent, and the parser of its stream-json output.
//!
//! Facts the parser relies on (Claude Code 2.1): every turn starts with `system/init` (the session id)
//! and ends with `result`; `result.subtype` is `success` even for API errors, so `is_error` and
//! `terminal_reason` decide; a background subagent gives two init/result pairs in one process, so the
//! parser reads to EOF; `total_cost_usd` and `modelUsage` are cumulative over the whole agent session
//! (a resumed session includes earlier processes), so per-turn usage is derived from differences.

use chrono::{DateTime, Duration, Utc};
use itervox_protocol::worker::{Backend, PermissionMode};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use serde_json::{Map, Value, json};

use super::claude_content::{Origin, ToolIndex, assistant_entries, tool_result_entries};
use super::command_line::{LaunchHost, launch, split_words};
use super::json_line::{Line, decode};
use super::pr_url::PrTracker;
use super::rate_limit::{LimitSignal, ResetSource, is_limit_status, reset_from_epoch};
use super::{
    AgentCommand, AgentError, AgentEvent, OutcomeStatus, OutputParser, TurnOutcome, TurnRequest, TurnSummary, base_env,
    entry_time, sentinel, truncate,
};

/// The command of one Claude Code (or demo agent) turn.
pub(crate) fn command(req: &TurnRequest<'_>, host: &LaunchHost) -> Result<AgentCommand, AgentError> {
    // The demo agent is our own binary: its path stays a path, never goes through a shell.
    let mut words = match req.backend {
        Backend::Demo => vec!["demo-agent".to_string()],
        _ => split_words(req.command)?,
    };
    words.extend(["-p", "--output-format", "stream-json", "--verbose"].map(String::from));
    if req.backend != Backend::Demo {
        match req.permission_mode {
            PermissionMode::Bypass => words.push("--dangerously-skip-permissions".into()),
            PermissionMode::Sandbox => words.extend(["--permission-mode", "acceptEdits"].map(String::from)),
        }
    }
    if let Some(reference) = req.resume_ref {
        words.push("--resume".into());
        words.push(reference.to_string());
    }
    let mut env = base_env(req);
    env.insert("CLAUDE_CODE_LOG_DIR".into(), req.log_dir.display().to_string());
    if req.backend == Backend::Claude
        && host.is_root
        && req.permission_mode == PermissionMode::Bypass
        && !env.contains_key("IS_SANDBOX")
    {
        // Claude Code refuses --dangerously-skip-permissions as root without it.
        env.insert("IS_SANDBOX".into(), "1".into());
    }
    let (program, args) = match req.backend {
        Backend::Demo => (req.self_exe.to_path_buf(), words),
        _ => launch(words, host),
    };
    Ok(AgentCommand {
        program,
        args,
        env,
        stdin: req.prompt.as_bytes().to_vec(),
        cwd: req.workspace.to_path_buf(),
    })
}

/// Token and cost counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Usage {
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
    cost: f64,
}

impl Usage {
    fn saturating_sub(self, other: Usage) -> Usage {
        Usage {
            input: self.input.saturating_sub(other.input),
            cache_creation: self.cache_creation.saturating_sub(other.cache_creation),
            cache_read: self.cache_read.saturating_sub(other.cache_read),
            output: self.output.saturating_sub(other.output),
            cost: (self.cost - other.cost).max(0.0),
        }
    }

    /// The sum over the models of a `modelUsage`-shaped object; `None` when it is absent or empty.
    fn from_model_usage(value: Option<&Value>) -> Option<Usage> {
        let models = value?.as_object().filter(|m| !m.is_empty())?;
        let mut sum = Usage::default();
        for model in models.values() {
            let n = |k: &str| model.get(k).and_then(Value::as_u64).unwrap_or(0);
            sum.input += n("inputTokens");
            sum.cache_creation += n("cacheCreationInputTokens");
            sum.cache_read += n("cacheReadInputTokens");
            sum.output += n("outputTokens");
            sum.cost += model.get("costUSD").and_then(Value::as_f64).unwrap_or(0.0);
        }
        Some(sum)
    }

    /// A result's own `usage` object (without cost).
    fn from_usage(value: Option<&Value>) -> Usage {
        let n = |k: &str| value.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
        Usage {
            input: n("input_tokens"),
            cache_creation: n("cache_creation_input_tokens"),
            cache_read: n("cache_read_input_tokens"),
            output: n("output_tokens"),
            cost: 0.0,
        }
    }
}

/// Turns the cumulative counters of successive `result` lines into per-turn counts.
#[derive(Debug, Default, Clone)]
struct UsageLedger {
    /// `modelUsage` of the previous result of this process.
    last_model_usage: Option<Usage>,
    /// `total_cost_usd` of the previous result of this process.
    last_total_cost: Option<f64>,
}

impl UsageLedger {
    fn turn_usage(&mut self, result: &Map<String, Value>) -> Usage {
        let cumulative = Usage::from_model_usage(result.get("modelUsage"));
        let since_last = Usage::from_model_usage(result.get("model_usage_since_last_result"));
        let own = Usage::from_usage(result.get("usage"));
        let total_cost = result.get("total_cost_usd").and_then(Value::as_f64);
        let turn = match (cumulative, self.last_model_usage) {
            (Some(cum), Some(prev)) => cum.saturating_sub(prev),
            (Some(_), None) => since_last.unwrap_or(Usage {
                cost: total_cost.unwrap_or(0.0),
                ..own
            }),
            (None, _) => Usage {
                cost: match (total_cost, self.last_total_cost) {
                    (Some(now), Some(before)) => (now - before).max(0.0),
                    (Some(now), None) => now,
                    _ => 0.0,
                },
                ..own
            },
        };
        if cumulative.is_some() {
            self.last_model_usage = cumulative;
        }
        if total_cost.is_some() {
            self.last_total_cost = total_cost;
        }
        turn
    }
}

/// The parser of Claude Code's `--output-format stream-json --verbose` output.
#[derive(Debug, Default)]
pub struct ClaudeParser {
    session_ref: Option<String>,
    cwd: Option<String>,
    tools: ToolIndex,
    prs: PrTracker,
    ledger: UsageLedger,
    /// Tool calls since the last `result`.
    tool_calls: u32,
    results: u32,
    totals: TurnSummary,
    cost_seen: bool,
    any_error_result: bool,
    /// The failure text of the latest error result.
    error_result_text: Option<String>,
    /// The text of the latest `result` (or of the last main-agent text when there was none).
    final_text: Option<String>,
    last_main_text: Option<String>,
    last_error: Option<String>,
    /// A question the CLI reported through a denied `AskUserQuestion` call.
    vendor_question: Option<String>,
    limit: LimitSignal,
    lost_terminal_line: bool,
}

const TERMINAL: &[&str] = &["result"];

impl ClaudeParser {
    pub fn new() -> ClaudeParser {
        ClaudeParser::default()
    }

    fn pr_entries(&mut self, texts: &[String], time: &str, out: &mut Vec<AgentEvent>) {
        for text in texts {
            for url in self.prs.new_urls(text) {
                let entry = IssueLogEntry::new(LogLevel::Info, LogEventKind::Pr, url.clone(), time.to_string())
                    .with_detail(json!({ "url": url }).to_string());
                out.push(AgentEvent::Log(entry));
            }
        }
    }

    fn on_system(&mut self, line: &Map<String, Value>, now: DateTime<Utc>, time: &str, out: &mut Vec<AgentEvent>) {
        let s = |k: &str| line.get(k).and_then(Value::as_str);
        match s("subtype").unwrap_or_default() {
            "init" => {
                if let Some(id) = s("session_id") {
                    self.session_ref = Some(id.to_string());
                }
                if let Some(cwd) = s("cwd") {
                    self.cwd = Some(cwd.to_string());
                }
                let model = s("model").unwrap_or("unknown model");
                let session = s("session_id").unwrap_or("?");
                let mut detail = Map::new();
                for key in ["session_id", "model", "cwd", "permissionMode", "claude_code_version"] {
                    if let Some(v) = line.get(key) {
                        detail.insert(key.into(), v.clone());
                    }
                }
                let entry = IssueLogEntry::new(
                    LogLevel::Info,
                    LogEventKind::Info,
                    format!("Claude Code session {session} started ({model})"),
                    time.to_string(),
                )
                .with_detail(Value::Object(detail).to_string());
                out.push(AgentEvent::Log(entry));
            }
            "api_retry" => {
                let status = line.get("error_status").and_then(Value::as_i64);
                let error = s("error").unwrap_or("error");
                let attempt = line.get("attempt").and_then(Value::as_u64).unwrap_or(0);
                let max = line.get("max_retries").and_then(Value::as_u64).unwrap_or(0);
                let delay_ms = line.get("retry_delay_ms").and_then(Value::as_u64).unwrap_or(0);
                if status.is_some_and(is_limit_status) || matches!(error, "rate_limit" | "overloaded") {
                    self.limit
                        .note_reset(ResetSource::RetryDelay, now + Duration::milliseconds(delay_ms as i64));
                }
                let status_text = status.map_or_else(String::new, |s| format!(" {s}"));
                let message = format!(
                    "API error{status_text} ({error}); retry {attempt}/{max} in {:.1} s",
                    delay_ms as f64 / 1000.0
                );
                let detail = json!({
                    "attempt": attempt, "maxRetries": max, "retryDelayMs": delay_ms,
                    "errorStatus": status, "error": error,
                });
                out.push(AgentEvent::Log(
                    IssueLogEntry::new(LogLevel::Warn, LogEventKind::Warn, message, time.to_string())
                        .with_detail(detail.to_string()),
                ));
            }
            "task_started" => {
                let description = s("description").unwrap_or("subagent");
                let mut detail = Map::new();
                detail.insert("phase".into(), json!("started"));
                for (key, name) in [
                    ("task_id", "taskId"),
                    ("subagent_type", "subagentType"),
                    ("is_backgrounded", "background"),
                ] {
                    if let Some(v) = line.get(key) {
                        detail.insert(name.into(), v.clone());
                    }
                }
                out.push(AgentEvent::Log(
                    IssueLogEntry::new(
                        LogLevel::Info,
                        LogEventKind::Subagent,
                        format!("Subagent started: {description}"),
                        time.to_string(),
                    )
                    .with_tool("Agent")
                    .with_detail(Value::Object(detail).to_string()),
                ));
            }
            "task_notification" => {
                let status = s("status").unwrap_or("finished");
                let summary = s("summary").unwrap_or_default();
                let level = if matches!(status, "completed" | "finished") {
                    LogLevel::Info
                } else {
                    LogLevel::Warn
                };
                let message = if summary.is_empty() {
                    format!("Subagent {status}")
                } else {
                    format!("Subagent {status}: {}", truncate(summary, 600))
                };
                let detail = json!({ "phase": "finished", "taskId": s("task_id"), "status": status });
                out.push(AgentEvent::Log(
                    IssueLogEntry::new(level, LogEventKind::Subagent, message, time.to_string())
                        .with_tool("Agent")
                        .with_detail(detail.to_string()),
                ));
                let texts = vec![summary.to_string()];
                self.pr_entries(&texts, time, out);
            }
            // task_progress, task_updated, background_tasks_changed, status: bookkeeping.
            _ => {}
        }
    }

    fn on_assistant(&mut self, line: &Map<String, Value>, now: DateTime<Utc>, time: &str, out: &mut Vec<AgentEvent>) {
        let message = line.get("message").cloned().unwrap_or(Value::Null);
        let synthetic = line.get("is_api_error_message").and_then(Value::as_bool) == Some(true)
            || message.get("model").and_then(Value::as_str) == Some("<synthetic>");
        if synthetic {
            let text = super::claude_content::result_text(message.get("content"));
            let text = if text.is_empty() { "API error".to_string() } else { text };
            let status = line.get("api_error_status").and_then(Value::as_i64);
            let kind = line.get("error").and_then(Value::as_str).unwrap_or_default();
            if status.is_some_and(is_limit_status) || matches!(kind, "rate_limit" | "overloaded") {
                self.limit.note();
            }
            self.limit.note_text(&text, now);
            self.last_error = Some(text.clone());
            let detail = json!({ "apiErrorStatus": status, "error": kind });
            out.push(AgentEvent::Log(
                IssueLogEntry::new(
                    LogLevel::Error,
                    LogEventKind::Error,
                    truncate(&text, 2000),
                    time.to_string(),
                )
                .with_detail(detail.to_string()),
            ));
            return;
        }
        let origin = origin_of(self.cwd.as_deref(), line, time);
        let is_main = origin.agent_id.is_none();
        let content = assistant_entries(message.get("content").unwrap_or(&Value::Null), &origin, &mut self.tools);
        self.tool_calls += content.tool_calls;
        if is_main && let Some(last) = content.texts.last() {
            self.last_main_text = Some(last.clone());
        }
        out.extend(content.entries.into_iter().map(AgentEvent::Log));
        self.pr_entries(&content.texts, time, out);
    }

    fn on_user(&mut self, line: &Map<String, Value>, time: &str, out: &mut Vec<AgentEvent>) {
        let content = line
            .get("message")
            .and_then(|m| m.get("content"))
            .cloned()
            .unwrap_or(Value::Null);
        let origin = origin_of(self.cwd.as_deref(), line, time);
        let results = tool_result_entries(&content, line.get("tool_use_result"), &origin, &mut self.tools);
        out.extend(results.entries.into_iter().map(AgentEvent::Log));
        self.pr_entries(&results.texts, time, out);
    }

    fn on_result(&mut self, line: &Map<String, Value>, now: DateTime<Utc>, time: &str, out: &mut Vec<AgentEvent>) {
        self.results += 1;
        let is_error = line.get("is_error").and_then(Value::as_bool).unwrap_or(false)
            || line
                .get("subtype")
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with("error"));
        let errors: Vec<&str> = line
            .get("errors")
            .and_then(Value::as_array)
            .map(|e| e.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let result_text = line
            .get("result")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| (!errors.is_empty()).then(|| errors.join("; ")));
        let usage = self.ledger.turn_usage(line);
        let cost = line.get("total_cost_usd").map(|_| usage.cost);
        let summary = TurnSummary {
            input_tokens: usage.input + usage.cache_creation,
            cached_input_tokens: usage.cache_read,
            output_tokens: usage.output,
            cost_usd: cost,
            agent_session_ref: line
                .get("session_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| self.session_ref.clone()),
            tool_calls: std::mem::take(&mut self.tool_calls),
            result_text: result_text.clone(),
            is_error,
        };
        if let Some(id) = &summary.agent_session_ref {
            self.session_ref = Some(id.clone());
        }

        if is_error {
            self.any_error_result = true;
            let status = line.get("api_error_status").and_then(Value::as_i64);
            if status.is_some_and(is_limit_status) {
                self.limit.note();
            }
            let text = result_text.clone().unwrap_or_else(|| {
                let reason = line.get("terminal_reason").and_then(Value::as_str).unwrap_or("error");
                format!("the agent reported an error result ({reason})")
            });
            self.limit.note_text(&text, now);
            // API errors were already logged from the synthetic assistant line.
            if self.last_error.as_deref() != Some(text.as_str()) {
                out.push(AgentEvent::Log(IssueLogEntry::new(
                    LogLevel::Error,
                    LogEventKind::Error,
                    truncate(&text, 2000),
                    time.to_string(),
                )));
            }
            self.last_error = Some(text.clone());
            self.error_result_text = Some(text);
        }
        if let Some(text) = &result_text {
            self.final_text = Some(text.clone());
            if !is_error {
                self.pr_entries(std::slice::from_ref(text), time, out);
            }
        }
        if let Some(question) = denied_question(line) {
            self.vendor_question = Some(question);
        }

        let n = self.results;
        let cost_text = cost.map_or_else(String::new, |c| format!(", ${c:.4}"));
        let message = format!(
            "Turn {n} ended{}: {} input tokens ({} cached), {} output tokens{cost_text}",
            if is_error { " with an error" } else { "" },
            summary.input_tokens,
            summary.cached_input_tokens,
            summary.output_tokens,
        );
        let detail = json!({
            "inputTokens": summary.input_tokens,
            "cachedInputTokens": summary.cached_input_tokens,
            "outputTokens": summary.output_tokens,
            "costUsd": cost,
            "toolCalls": summary.tool_calls,
            "isError": is_error,
            "numTurns": line.get("num_turns"),
            "terminalReason": line.get("terminal_reason"),
            "durationMs": line.get("duration_ms"),
        });
        let level = if is_error { LogLevel::Warn } else { LogLevel::Info };
        out.push(AgentEvent::Log(
            IssueLogEntry::new(level, LogEventKind::Turn, message, time.to_string()).with_detail(detail.to_string()),
        ));

        self.totals.input_tokens += summary.input_tokens;
        self.totals.cached_input_tokens += summary.cached_input_tokens;
        self.totals.output_tokens += summary.output_tokens;
        if let Some(c) = cost {
            self.cost_seen = true;
            self.totals.cost_usd = Some(self.totals.cost_usd.unwrap_or(0.0) + c);
        }
        out.push(AgentEvent::TurnEnd(summary));
    }

    fn on_rate_limit_event(&mut self, line: &Map<String, Value>, time: &str, out: &mut Vec<AgentEvent>) {
        let Some(info) = line.get("rate_limit_info") else {
            return;
        };
        let status = info.get("status").and_then(Value::as_str).unwrap_or_default();
        if status != "rejected" {
            return;
        }
        let using_overage = info.get("isUsingOverage").and_then(Value::as_bool).unwrap_or(false);
        if using_overage {
            return;
        }
        let reset = info.get("resetsAt").and_then(reset_from_epoch);
        let kind = info.get("rateLimitType").and_then(Value::as_str).unwrap_or("usage");
        match reset {
            Some(at) => self.limit.note_reset(ResetSource::Vendor, at),
            None => self.limit.note(),
        }
        let message = match reset {
            Some(at) => format!("Rate limit reached ({kind}); resets at {}", entry_time(at)),
            None => format!("Rate limit reached ({kind})"),
        };
        out.push(AgentEvent::Log(
            IssueLogEntry::new(LogLevel::Warn, LogEventKind::Warn, message, time.to_string())
                .with_detail(Value::Object(object_of(info)).to_string()),
        ));
    }
}

/// The origin of a stream-json line: subagent lines carry `parent_tool_use_id` (and `agent_id`).
fn origin_of<'a>(cwd: Option<&'a str>, line: &'a Map<String, Value>, time: &'a str) -> Origin<'a> {
    let agent_id = line.get("agent_id").and_then(Value::as_str).or_else(|| {
        line.get("parent_tool_use_id")
            .and_then(Value::as_str)
            .map(|_| "subagent")
    });
    Origin { cwd, agent_id, time }
}

fn object_of(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// The question of an `AskUserQuestion` call the CLI denied in print mode (its explicit "ask a human").
fn denied_question(result: &Map<String, Value>) -> Option<String> {
    let denials = result.get("permission_denials")?.as_array()?;
    let denial = denials
        .iter()
        .find(|d| d.get("tool_name").and_then(Value::as_str) == Some("AskUserQuestion"))?;
    let input = denial.get("tool_input")?;
    let questions: Vec<&str> = match input.get("questions") {
        Some(Value::Array(qs)) => qs
            .iter()
            .filter_map(|q| q.get("question").and_then(Value::as_str))
            .collect(),
        _ => input.get("question").and_then(Value::as_str).into_iter().collect(),
    };
    (!questions.is_empty()).then(|| questions.join("\n"))
}

impl OutputParser for ClaudeParser {
    fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Vec<AgentEvent> {
        let time = entry_time(now);
        let mut out = Vec::new();
        match decode(line, TERMINAL) {
            Line::Blank => {}
            Line::NotJson { text } => {
                self.last_error = Some(text.clone());
                out.push(AgentEvent::Log(IssueLogEntry::new(
                    LogLevel::Warn,
                    LogEventKind::Warn,
                    format!("Unparsable agent output: {}", truncate(&text, 500)),
                    time,
                )));
            }
            Line::Oversized { bytes, kind, terminal } => {
                if terminal {
                    self.lost_terminal_line = true;
                }
                let kind = kind.unwrap_or_else(|| "unknown".into());
                out.push(AgentEvent::Log(IssueLogEntry::new(
                    LogLevel::Warn,
                    LogEventKind::Warn,
                    format!("Skipped an oversized agent output line ({bytes} bytes, type {kind})"),
                    time,
                )));
            }
            Line::Object(map) => match map.get("type").and_then(Value::as_str).unwrap_or_default() {
                "system" => self.on_system(&map, now, &time, &mut out),
                "assistant" => self.on_assistant(&map, now, &time, &mut out),
                "user" => self.on_user(&map, &time, &mut out),
                "result" => self.on_result(&map, now, &time, &mut out),
                "rate_limit_event" => self.on_rate_limit_event(&map, &time, &mut out),
                // stream_event (partial messages) and anything new: nothing for the log.
                _ => {}
            },
        }
        out
    }

    fn finish(&mut self, exit_code: Option<i32>, _now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome) {
        let final_text = self.final_text.clone().or_else(|| self.last_main_text.clone());
        let failed_reason = if self.lost_terminal_line {
            Some("the agent's result line was larger than 16 MiB and could not be read".to_string())
        } else if self.any_error_result {
            Some(
                self.error_result_text
                    .clone()
                    .unwrap_or_else(|| "the agent reported an error".into()),
            )
        } else if exit_code != Some(0) {
            Some(self.last_error.clone().unwrap_or_else(|| match exit_code {
                Some(code) => format!("the agent exited with code {code}"),
                None => "the agent was killed by a signal".to_string(),
            }))
        } else if self.results == 0 {
            Some("the agent exited without reporting a result".to_string())
        } else {
            None
        };
        let mut outcome = TurnOutcome {
            agent_session_ref: self.session_ref.clone(),
            pr_url: self.prs.last().map(str::to_string),
            input_tokens: self.totals.input_tokens,
            cached_input_tokens: self.totals.cached_input_tokens,
            output_tokens: self.totals.output_tokens,
            cost_usd: self.cost_seen.then_some(self.totals.cost_usd.unwrap_or(0.0)),
            turns: self.results,
            ..TurnOutcome::default()
        };
        if let Some(reason) = failed_reason {
            outcome.status = OutcomeStatus::Failed;
            outcome.error = Some(reason);
            outcome.rate_limited = self.limit.limited;
            outcome.rate_limit_reset_at = self.limit.reset_at();
        } else if let Some(question) = final_text.as_deref().and_then(sentinel::question) {
            outcome.status = OutcomeStatus::InputRequired;
            outcome.question = Some(question);
        } else if let Some(question) = self.vendor_question.clone() {
            outcome.status = OutcomeStatus::InputRequired;
            outcome.question = Some(question);
        }
        (Vec::new(), outcome)
    }
}
