//! The demo agent's output: Claude Code stream-json lines in the real CLI's shapes (`system/init`,
//! one `assistant` line per content block, `user` tool results with `tool_use_result`, `system/api_retry`,
//! synthetic API-error messages, `result` with usage, cost and `modelUsage`), each flushed as written
//! and mirrored into the session transcript. Token counts are estimates from the text sizes.

use std::io::Write;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::session::{History, SessionFile};

/// The model name the demo agent reports.
pub const MODEL: &str = "itervox-demo";
/// Estimated size of the system prompt and tool definitions, in tokens.
const BASE_INPUT_TOKENS: u64 = 2_000;
/// Prices used for the cost estimate, per million tokens.
const INPUT_USD_PER_MTOK: f64 = 3.0;
const OUTPUT_USD_PER_MTOK: f64 = 15.0;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn short_id() -> String {
    Uuid::new_v4().simple().to_string()[..24].to_string()
}

/// How a turn ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Success,
    /// The API failed for good (HTTP status, error type).
    ApiError(u16, &'static str),
    /// The agent could not do the task.
    Failed,
}

/// Writes one turn's stream-json.
pub struct Stream<'a> {
    out: &'a mut dyn Write,
    session: &'a SessionFile,
    session_id: String,
    cwd: String,
    started: Instant,
    /// Characters of conversation so far (prompt, messages, results), for input estimates.
    context_chars: usize,
    api_calls: u32,
    input_tokens: u64,
    output_tokens: u64,
    /// Set when stdout could not be written (the reader went away).
    pub broken: bool,
}

impl<'a> Stream<'a> {
    pub fn new(out: &'a mut dyn Write, session: &'a SessionFile, session_id: &str, cwd: &str) -> Stream<'a> {
        Stream {
            out,
            session,
            session_id: session_id.to_string(),
            cwd: cwd.to_string(),
            started: Instant::now(),
            context_chars: 0,
            api_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            broken: false,
        }
    }

    fn print(&mut self, line: &Value) {
        if self.broken {
            return;
        }
        let written = writeln!(self.out, "{line}").and_then(|()| self.out.flush());
        if written.is_err() {
            self.broken = true;
        }
    }

    /// The transcript form of a stream line: the same message with the session file's fields.
    fn record(&self, kind: &str, message: &Value, extra: Map<String, Value>) {
        let mut line = Map::new();
        line.insert("type".into(), json!(kind));
        line.insert("message".into(), message.clone());
        line.insert("uuid".into(), json!(Uuid::new_v4().to_string()));
        line.insert("timestamp".into(), json!(now()));
        line.insert("cwd".into(), json!(self.cwd));
        line.insert("sessionId".into(), json!(self.session_id));
        line.insert("isSidechain".into(), json!(false));
        line.insert("version".into(), json!("itervox-demo"));
        line.extend(extra);
        self.session.append(&Value::Object(line));
    }

    /// The `system/init` line that opens every turn.
    pub fn init(&mut self, permission_mode: &str) {
        let line = json!({
            "type": "system",
            "subtype": "init",
            "cwd": self.cwd,
            "session_id": self.session_id,
            "tools": ["Task", "Bash", "Edit", "Glob", "Grep", "Read", "TodoWrite", "Write"],
            "mcp_servers": [],
            "model": MODEL,
            "permissionMode": permission_mode,
            "slash_commands": [],
            "apiKeySource": "none",
            "claude_code_version": "itervox-demo",
            "output_style": "default",
            "agents": [],
            "skills": [],
            "plugins": [],
            "uuid": Uuid::new_v4().to_string(),
        });
        self.print(&line);
    }

    /// The user's prompt, which stream-json does not echo but the transcript keeps.
    pub fn prompt(&mut self, prompt: &str) {
        self.context_chars += prompt.len();
        self.record("user", &json!({ "role": "user", "content": prompt }), Map::new());
    }

    /// One API message from the model: a line per content block, all sharing the message id.
    fn message(&mut self, blocks: Vec<Value>) {
        self.api_calls += 1;
        let input = BASE_INPUT_TOKENS + (self.context_chars / 4) as u64;
        let size: usize = blocks.iter().map(|b| b.to_string().len()).sum();
        let output = (size / 4) as u64 + 1;
        self.input_tokens += input;
        self.output_tokens += output;
        self.context_chars += size;
        let id = format!("msg_demo_{}", short_id());
        for block in blocks {
            let message = json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [block],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": input,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "service_tier": "standard",
                },
                "context_management": null,
            });
            self.print(&json!({
                "type": "assistant",
                "message": message,
                "parent_tool_use_id": null,
                "session_id": self.session_id,
                "uuid": Uuid::new_v4().to_string(),
                "timestamp": now(),
                "request_id": format!("req_demo_{}", short_id()),
            }));
            self.record("assistant", &message, Map::new());
        }
    }

    /// The model says `text`.
    pub fn text(&mut self, text: &str) {
        self.message(vec![json!({ "type": "text", "text": text })]);
    }

    /// The model says `text` (if any) and calls `tool` with `input`; returns the call's id.
    pub fn call(&mut self, text: Option<&str>, tool: &str, input: Value) -> String {
        let id = format!("toolu_demo_{}", short_id());
        let mut blocks = Vec::new();
        if let Some(text) = text {
            blocks.push(json!({ "type": "text", "text": text }));
        }
        blocks.push(json!({ "type": "tool_use", "id": id, "name": tool, "input": input }));
        self.message(blocks);
        id
    }

    /// The result of call `id`; `structured` is the CLI's `tool_use_result` object.
    pub fn tool_result(&mut self, id: &str, content: &str, is_error: bool, structured: Value) {
        self.context_chars += content.len();
        let message = json!({
            "role": "user",
            "content": [{ "tool_use_id": id, "type": "tool_result", "content": content, "is_error": is_error }],
        });
        self.print(&json!({
            "type": "user",
            "message": message,
            "parent_tool_use_id": null,
            "session_id": self.session_id,
            "uuid": Uuid::new_v4().to_string(),
            "timestamp": now(),
            "tool_use_result": structured,
        }));
        let mut extra = Map::new();
        extra.insert("toolUseResult".into(), structured);
        self.record("user", &message, extra);
    }

    /// A retried API request (`system/api_retry`).
    pub fn api_retry(&mut self, attempt: u32, max: u32, delay_ms: u64, status: u16, error: &str) {
        self.print(&json!({
            "type": "system",
            "subtype": "api_retry",
            "attempt": attempt,
            "max_retries": max,
            "retry_delay_ms": delay_ms,
            "error_status": status,
            "error": error,
            "session_id": self.session_id,
            "uuid": Uuid::new_v4().to_string(),
        }));
    }

    /// The synthetic assistant message the CLI prints when the API failed for good.
    pub fn api_error(&mut self, status: u16, error_type: &str, text: &str) {
        let message = json!({
            "id": Uuid::new_v4().to_string(),
            "type": "message",
            "role": "assistant",
            "model": "<synthetic>",
            "content": [{ "type": "text", "text": text }],
            "stop_reason": "stop_sequence",
            "stop_sequence": "",
            "usage": { "input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
            "context_management": null,
        });
        self.print(&json!({
            "type": "assistant",
            "message": message,
            "parent_tool_use_id": null,
            "session_id": self.session_id,
            "uuid": Uuid::new_v4().to_string(),
            "timestamp": now(),
            "error": "unknown",
            "is_api_error_message": true,
            "api_error_status": status,
            "api_error_type": error_type,
        }));
        let mut extra = Map::new();
        extra.insert("isApiErrorMessage".into(), json!(true));
        self.record("assistant", &message, extra);
    }

    /// The `result` line that ends the turn; returns the session's history with this turn's usage.
    pub fn result(&mut self, text: &str, ending: Ending, history: &History) -> History {
        let is_error = ending != Ending::Success;
        let api_error = match ending {
            Ending::ApiError(status, kind) => Some((status, kind)),
            _ => None,
        };
        let turn_cost =
            self.input_tokens as f64 * INPUT_USD_PER_MTOK / 1e6 + self.output_tokens as f64 * OUTPUT_USD_PER_MTOK / 1e6;
        let mut updated = history.clone();
        updated.input_tokens += self.input_tokens;
        updated.output_tokens += self.output_tokens;
        updated.cost_usd += turn_cost;
        let model_usage = |input: u64, output: u64, cost: f64| {
            json!({ MODEL: {
                "inputTokens": input,
                "outputTokens": output,
                "cacheReadInputTokens": 0,
                "cacheCreationInputTokens": 0,
                "webSearchRequests": 0,
                "costUSD": cost,
            }})
        };
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.print(&json!({
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "duration_ms": elapsed,
            "duration_api_ms": elapsed / 2,
            "num_turns": self.api_calls.max(1),
            "result": text,
            "stop_reason": if api_error.is_some() { "stop_sequence" } else { "end_turn" },
            "session_id": self.session_id,
            "total_cost_usd": updated.cost_usd,
            "usage": {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": self.output_tokens,
                "service_tier": "standard",
            },
            "modelUsage": model_usage(updated.input_tokens, updated.output_tokens, updated.cost_usd),
            "model_usage_since_last_result": model_usage(self.input_tokens, self.output_tokens, turn_cost),
            "permission_denials": [],
            "terminal_reason": if api_error.is_some() { "api_error" } else { "completed" },
            "api_error_status": api_error.map(|(status, _)| status),
            "api_error_type": api_error.map(|(_, kind)| kind),
            "uuid": Uuid::new_v4().to_string(),
            "result_index": 0,
        }));
        updated
    }
}
