//! Claude Code's session transcripts: where a worktree's project folder is, and their lines (`user`,
//! `assistant`, `system/api_error`; bookkeeping lines skipped) as log entries.
//!
//! Claude Code names the folder after its working directory with every character that is not an ASCII
//! letter or digit replaced by `-`; names longer than 200 characters are cut to 200 and get `-<hash>`
//! appended, so those are found by prefix (and, if several match, by the `cwd` their lines record).

use std::io;
use std::path::{Path, PathBuf};

use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use serde_json::Value;

use crate::agent::claude_content::{Origin, ToolIndex, assistant_entries, tool_result_entries};
use crate::agent::{entry_time, truncate};

const MAX_NAME: usize = 200;

/// The project folder name Claude Code uses for `cwd` (before any length cut).
pub fn project_dir_name(cwd: &Path) -> String {
    cwd.to_string_lossy()
        .chars()
        .flat_map(|c| {
            let n = if c.is_ascii_alphanumeric() { 1 } else { c.len_utf16() };
            std::iter::repeat_n(if c.is_ascii_alphanumeric() { c } else { '-' }, n)
        })
        .collect()
}

/// True when some line of the transcripts in `dir` records `cwd` as its working directory.
fn records_cwd(dir: &Path, cwd: &str) -> bool {
    let needle = serde_json::to_string(cwd).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        path.extension().is_some_and(|x| x == "jsonl")
            && std::fs::read(&path)
                .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(&format!("\"cwd\":{needle}")))
    })
}

/// The existing project folder of `worktree` under `<config_dir>/projects`, if any. The worktree is
/// looked up as given and as its canonical path (Claude Code records the resolved working directory).
pub fn find_project_dir(config_dir: &Path, worktree: &Path) -> io::Result<Option<PathBuf>> {
    let projects = config_dir.join("projects");
    let mut candidates = vec![worktree.to_path_buf()];
    if let Ok(real) = worktree.canonicalize()
        && real != worktree
    {
        candidates.insert(0, real);
    }
    for cwd in candidates {
        let name = project_dir_name(&cwd);
        if name.len() <= MAX_NAME {
            let dir = projects.join(&name);
            if dir.is_dir() {
                return Ok(Some(dir));
            }
            continue;
        }
        let prefix = format!("{}-", &name[..MAX_NAME]);
        let entries = match std::fs::read_dir(&projects) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let matches: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        let cwd_text = cwd.to_string_lossy();
        match matches.as_slice() {
            [] => {}
            [only] => return Ok(Some(only.clone())),
            several => {
                if let Some(dir) = several.iter().find(|d| records_cwd(d, &cwd_text)) {
                    return Ok(Some(dir.clone()));
                }
            }
        }
    }
    Ok(None)
}

/// Log entries of one transcript file's bytes. Unparsable lines are skipped.
pub fn entries(bytes: &[u8]) -> Vec<IssueLogEntry> {
    let mut tools = ToolIndex::default();
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(Value::Object(line)) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let time = line
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| entry_time(t.with_timezone(&chrono::Utc)));
        let Some(time) = time else {
            continue;
        };
        let origin = Origin {
            cwd: line.get("cwd").and_then(Value::as_str),
            agent_id: None,
            time: &time,
        };
        let message = line.get("message").unwrap_or(&Value::Null);
        let content = message.get("content").unwrap_or(&Value::Null);
        match line.get("type").and_then(Value::as_str).unwrap_or_default() {
            "user" => {
                if line.get("isMeta").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                match content {
                    Value::String(prompt) if prompt.trim_start().starts_with("<task-notification>") => {
                        out.push(notification_entry(prompt, &time));
                    }
                    Value::String(prompt) => out.push(prompt_entry(prompt, &time)),
                    Value::Array(blocks) => {
                        let is_results = blocks
                            .iter()
                            .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
                        if is_results {
                            let results = tool_result_entries(content, line.get("toolUseResult"), &origin, &mut tools);
                            out.extend(results.entries);
                        } else {
                            let text = crate::agent::claude_content::result_text(Some(content));
                            if !text.trim().is_empty() {
                                out.push(prompt_entry(&text, &time));
                            }
                        }
                    }
                    _ => {}
                }
            }
            "assistant" => {
                let synthetic = line.get("isApiErrorMessage").and_then(Value::as_bool) == Some(true)
                    || message.get("model").and_then(Value::as_str) == Some("<synthetic>");
                if synthetic {
                    let text = crate::agent::claude_content::result_text(Some(content));
                    out.push(IssueLogEntry::new(
                        LogLevel::Error,
                        LogEventKind::Error,
                        truncate(&text, 2000),
                        time.clone(),
                    ));
                } else {
                    out.extend(assistant_entries(content, &origin, &mut tools).entries);
                }
            }
            "system" if line.get("subtype").and_then(Value::as_str) == Some("api_error") => {
                let error = line.get("error");
                let text = error
                    .and_then(|e| e.get("formatted").or_else(|| e.get("message")))
                    .and_then(Value::as_str)
                    .unwrap_or("API error");
                out.push(IssueLogEntry::new(
                    LogLevel::Warn,
                    LogEventKind::Warn,
                    format!("API error: {}", truncate(text, 600)),
                    time.clone(),
                ));
            }
            // queue-operation, attachment, api-request*, tools-used, last-prompt, cost-state, …
            _ => {}
        }
    }
    out
}

fn prompt_entry(prompt: &str, time: &str) -> IssueLogEntry {
    IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Info,
        format!("Prompt: {}", truncate(prompt.trim(), 2000)),
        time.to_string(),
    )
}

/// The text between `<tag>` and `</tag>` in `text`.
fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim())
}

/// A background subagent's completion notice, queued to the main agent as a prompt.
fn notification_entry(text: &str, time: &str) -> IssueLogEntry {
    let status = tag(text, "status").unwrap_or("finished");
    let message = match tag(text, "summary") {
        Some(summary) => format!("Subagent {status}: {}", truncate(summary, 600)),
        None => format!("Subagent {status}"),
    };
    let detail = serde_json::json!({ "phase": "finished", "taskId": tag(text, "task-id"), "status": status });
    IssueLogEntry::new(LogLevel::Info, LogEventKind::Subagent, message, time.to_string())
        .with_tool("Agent")
        .with_detail(detail.to_string())
}
