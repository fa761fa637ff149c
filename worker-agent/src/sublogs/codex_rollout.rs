//! Codex session logs: rollout files (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread>.jsonl`,
//! whose `response_item` lines hold the conversation) found by thread id, and `codex exec --json`
//! output teed to a file, which the live parser reads.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use serde_json::{Value, json};

use crate::agent::tool_summary::summarize;
use crate::agent::{AgentEvent, CodexParser, OutputParser, entry_time, truncate};

/// The rollout files of `threads` under `<codex_home>/sessions`, as `(thread id, path)`.
pub fn find_rollouts(codex_home: &Path, threads: &[String]) -> io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    if threads.is_empty() {
        return Ok(found);
    }
    let mut dirs = vec![(codex_home.join("sessions"), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                // sessions/YYYY/MM/DD
                if depth < 3 {
                    dirs.push((path, depth + 1));
                }
                continue;
            }
            let Some(rest) = name.strip_prefix("rollout-").and_then(|n| n.strip_suffix(".jsonl")) else {
                continue;
            };
            if let Some(thread) = threads.iter().find(|t| rest.ends_with(&format!("-{t}"))) {
                found.push((thread.clone(), path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The text of a Responses-API message item.
fn message_text(payload: &Value) -> String {
    match payload.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The exit code in a shell tool's output ("Process exited with code 1", "Exit code: 1").
fn exit_code_of(output: &str) -> Option<i64> {
    output.lines().find_map(|line| {
        let line = line.trim();
        let rest = line
            .strip_prefix("Process exited with code ")
            .or_else(|| line.strip_prefix("Exit code: "))?;
        rest.trim().parse().ok()
    })
}

/// Log entries of one rollout file's bytes. Unparsable lines are skipped.
pub fn entries(bytes: &[u8]) -> Vec<IssueLogEntry> {
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(line) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if line.get("type").and_then(Value::as_str) != Some("response_item") {
            continue;
        }
        let Some(time) = line
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| entry_time(t.with_timezone(&Utc)))
        else {
            continue;
        };
        let payload = line.get("payload").unwrap_or(&Value::Null);
        let s = |k: &str| payload.get(k).and_then(Value::as_str);
        match s("type").unwrap_or_default() {
            "message" => {
                let text = message_text(payload);
                match s("role") {
                    Some("assistant") if !text.trim().is_empty() => out.push(IssueLogEntry::new(
                        LogLevel::Info,
                        LogEventKind::Text,
                        truncate(&text, 64 * 1024),
                        time,
                    )),
                    // Codex's own context blocks (`<environment_context>`, instructions) start with a tag.
                    Some("user") if !text.trim().is_empty() && !text.trim_start().starts_with('<') => {
                        out.push(IssueLogEntry::new(
                            LogLevel::Info,
                            LogEventKind::Info,
                            format!("Prompt: {}", truncate(text.trim(), 2000)),
                            time,
                        ))
                    }
                    _ => {}
                }
            }
            "function_call" | "custom_tool_call" | "local_shell_call" => {
                let name = s("name").unwrap_or("local_shell");
                let input = match payload.get("arguments").or_else(|| payload.get("input")) {
                    Some(Value::String(raw)) => serde_json::from_str(raw).unwrap_or(Value::String(raw.clone())),
                    Some(other) => other.clone(),
                    None => payload.get("action").cloned().unwrap_or(Value::Null),
                };
                let tool = if matches!(name, "exec_command" | "shell" | "shell_command" | "local_shell") {
                    "shell"
                } else {
                    name
                };
                out.push(
                    IssueLogEntry::new(
                        LogLevel::Info,
                        LogEventKind::Action,
                        summarize(name, &input, None),
                        time,
                    )
                    .with_tool(tool),
                );
            }
            "function_call_output" | "custom_tool_call_output" => {
                let output = match payload.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                if let Some(code) = exit_code_of(&output).filter(|c| *c != 0) {
                    out.push(
                        IssueLogEntry::new(
                            LogLevel::Warn,
                            LogEventKind::Warn,
                            format!("command exited with code {code}"),
                            time,
                        )
                        .with_tool("shell")
                        .with_detail(
                            json!({ "status": "failed", "exit_code": code, "output_size": output.len() }).to_string(),
                        ),
                    );
                }
            }
            // reasoning and anything new.
            _ => {}
        }
    }
    out
}

/// Log entries of `codex exec --json` output saved to a file (stamped with the file's time).
pub fn exec_entries(bytes: &[u8], time: DateTime<Utc>) -> Vec<IssueLogEntry> {
    let mut parser = CodexParser::new();
    bytes
        .split(|b| *b == b'\n')
        .flat_map(|line| parser.feed_line(line, time))
        .filter_map(|event| match event {
            AgentEvent::Log(entry) => Some(entry),
            AgentEvent::TurnEnd(_) => None,
        })
        .collect()
}
