//! Claude message content as log entries: assistant `text` and `tool_use` blocks, and the user-side
//! `tool_result` blocks that answer them. Shared by the live stream-json parser and the reader of
//! Claude Code's own session transcripts, which store messages in the same shape.

use std::collections::HashMap;

use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use serde_json::{Map, Value, json};

use super::tool_summary::{is_shell_tool, is_subagent_tool, summarize};
use super::truncate;

/// Longest text entry kept (an agent's final report can be long, but not unbounded).
const MAX_TEXT: usize = 64 * 1024;
/// Longest error excerpt kept from a failed tool call.
const MAX_ERROR: usize = 600;

/// A tool call waiting for its result.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub summary: String,
}

/// The tool calls of one stream, by `tool_use` id, so results can be labelled with their tool.
#[derive(Debug, Default, Clone)]
pub struct ToolIndex {
    calls: HashMap<String, ToolCall>,
}

impl ToolIndex {
    fn insert(&mut self, id: &str, call: ToolCall) {
        self.calls.insert(id.to_string(), call);
    }

    fn take(&mut self, id: &str) -> Option<ToolCall> {
        self.calls.remove(id)
    }
}

/// Where a message came from: the working directory (to shorten paths), the subagent that wrote it
/// (none for the main agent) and the time to stamp entries with.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub cwd: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub time: &'a str,
}

impl Origin<'_> {
    fn entry(&self, level: LogLevel, event: LogEventKind, message: impl Into<String>) -> IssueLogEntry {
        IssueLogEntry::new(level, event, message, self.time.to_string())
    }

    /// `detail` with the subagent's id added, rendered as the entry's JSON string.
    fn detail(&self, mut detail: Map<String, Value>) -> Option<String> {
        if let Some(agent) = self.agent_id {
            detail.insert("agentId".into(), Value::String(agent.to_string()));
        }
        (!detail.is_empty()).then(|| Value::Object(detail).to_string())
    }

    fn with_detail(&self, mut entry: IssueLogEntry, detail: Map<String, Value>) -> IssueLogEntry {
        entry.detail = self.detail(detail);
        entry
    }
}

/// What an assistant message contained.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AssistantContent {
    pub entries: Vec<IssueLogEntry>,
    /// The text blocks, in order.
    pub texts: Vec<String>,
    /// Number of `tool_use` blocks.
    pub tool_calls: u32,
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Log entries for the content blocks of an assistant message (`message.content`).
pub fn assistant_entries(content: &Value, origin: &Origin<'_>, tools: &mut ToolIndex) -> AssistantContent {
    let mut out = AssistantContent::default();
    let blocks: Vec<&Value> = match content {
        Value::Array(blocks) => blocks.iter().collect(),
        Value::String(_) => vec![content],
        _ => Vec::new(),
    };
    for block in blocks {
        let kind = match block {
            Value::String(_) => "text",
            other => other.get("type").and_then(Value::as_str).unwrap_or_default(),
        };
        match kind {
            "text" => {
                let text = block
                    .as_str()
                    .or_else(|| block.get("text").and_then(Value::as_str))
                    .unwrap_or_default();
                if text.trim().is_empty() {
                    continue;
                }
                out.texts.push(text.to_string());
                let entry = origin.entry(LogLevel::Info, LogEventKind::Text, truncate(text, MAX_TEXT));
                out.entries.push(origin.with_detail(entry, Map::new()));
            }
            "tool_use" | "server_tool_use" => {
                out.tool_calls += 1;
                let name = block.get("name").and_then(Value::as_str).unwrap_or("tool");
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                let summary = summarize(name, &input, origin.cwd);
                if let Some(id) = block.get("id").and_then(Value::as_str) {
                    tools.insert(
                        id,
                        ToolCall {
                            name: name.to_string(),
                            summary: summary.clone(),
                        },
                    );
                }
                let entry = if is_subagent_tool(name) {
                    let mut detail = Map::new();
                    detail.insert("phase".into(), json!("spawn"));
                    if let Some(kind) = input.get("subagent_type").and_then(Value::as_str) {
                        detail.insert("subagentType".into(), json!(kind));
                    }
                    // `Agent` runs in the background unless told otherwise.
                    let background = input
                        .get("run_in_background")
                        .and_then(Value::as_bool)
                        .unwrap_or(name == "Agent");
                    detail.insert("background".into(), json!(background));
                    let entry = origin
                        .entry(LogLevel::Info, LogEventKind::Subagent, summary)
                        .with_tool(name);
                    origin.with_detail(entry, detail)
                } else {
                    let entry = origin
                        .entry(LogLevel::Info, LogEventKind::Action, summary)
                        .with_tool(name);
                    origin.with_detail(entry, Map::new())
                };
                out.entries.push(entry);
            }
            // Thinking, images and anything new carry nothing for the log.
            _ => {}
        }
    }
    out
}

/// The text of a `tool_result` block's `content` (a string or a list of blocks).
pub fn result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The exit code Claude Code's Bash tool reports in a failed result ("Exit code 2\n…").
fn exit_code_of(text: &str) -> Option<i64> {
    let rest = text.trim_start().strip_prefix("Exit code ")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
    digits.parse().ok()
}

/// What the results of a user message contained.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ToolResults {
    pub entries: Vec<IssueLogEntry>,
    /// The result texts and shell output, for URL scanning.
    pub texts: Vec<String>,
}

/// Log entries for the `tool_result` blocks of a user message: a failed call becomes a `warn` entry, a
/// shell call's completion an `action` entry whose `detail` carries `status`, `exit_code` and
/// `output_size`. `tool_use_result` is the structured result stream-json adds next to the message.
pub fn tool_result_entries(
    content: &Value,
    tool_use_result: Option<&Value>,
    origin: &Origin<'_>,
    tools: &mut ToolIndex,
) -> ToolResults {
    let mut out = ToolResults::default();
    let Value::Array(blocks) = content else {
        return out;
    };
    let results: Vec<&Value> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .collect();
    let structured = tool_use_result.filter(|_| results.len() == 1);
    for block in results {
        let call = block
            .get("tool_use_id")
            .and_then(Value::as_str)
            .and_then(|id| tools.take(id));
        let (tool, summary) = match &call {
            Some(c) => (c.name.as_str(), c.summary.as_str()),
            None => ("tool", ""),
        };
        let text = result_text(block.get("content"));
        let is_error = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
        let stdout = structured
            .and_then(|s| s.get("stdout"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let stderr = structured
            .and_then(|s| s.get("stderr"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !text.is_empty() {
            out.texts.push(text.clone());
        }
        if !stdout.is_empty() {
            out.texts.push(stdout.to_string());
        }
        if is_subagent_tool(tool) && !is_error {
            // The subagent's own lines and task notifications tell its story.
            continue;
        }
        let shell = is_shell_tool(tool);
        let mut detail = Map::new();
        if shell {
            let interrupted = structured
                .and_then(|s| s.get("interrupted"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let status = if interrupted {
                "interrupted"
            } else if is_error {
                "failed"
            } else {
                "completed"
            };
            let exit_code = if is_error { exit_code_of(&text) } else { Some(0) };
            let output_size = if structured.is_some() {
                stdout.len() + stderr.len()
            } else {
                text.len()
            };
            detail = object(json!({
                "status": status,
                "exit_code": exit_code,
                "output_size": output_size,
            }));
        }
        if is_error {
            let first = text.trim().lines().next().unwrap_or("the tool call failed");
            let message = if summary.is_empty() {
                truncate(first, MAX_ERROR)
            } else {
                truncate(&format!("{summary} — {first}"), MAX_ERROR)
            };
            let entry = origin
                .entry(LogLevel::Warn, LogEventKind::Warn, message)
                .with_tool(tool);
            out.entries.push(origin.with_detail(entry, detail));
        } else if shell {
            let entry = origin
                .entry(LogLevel::Info, LogEventKind::Action, summary.to_string())
                .with_tool(tool);
            out.entries.push(origin.with_detail(entry, detail));
        }
    }
    out
}
