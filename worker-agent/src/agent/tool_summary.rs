//! The one-line human summary of a tool call shown in the issue log: the file for file tools, the
//! command for shells, the pattern (and where) for searches, the URL or query for web tools, the first
//! to-do for to-do lists, the description for subagents, compact JSON for anything else.

use serde_json::Value;

use super::truncate;

/// Longest summary kept.
const MAX_SUMMARY: usize = 300;

/// True for the tools that start a subagent (Claude Code calls it `Agent` on the wire, `Task` in lists).
pub fn is_subagent_tool(tool: &str) -> bool {
    matches!(tool, "Task" | "Agent")
}

/// True for shell tools whose results carry an exit status.
pub fn is_shell_tool(tool: &str) -> bool {
    matches!(
        tool,
        "Bash" | "shell" | "exec_command" | "shell_command" | "local_shell"
    )
}

fn str_field<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `path` relative to `cwd` when it lies inside it.
fn relative<'a>(path: &'a str, cwd: Option<&str>) -> &'a str {
    let Some(cwd) = cwd.map(|c| c.trim_end_matches('/')).filter(|c| !c.is_empty()) else {
        return path;
    };
    match path.strip_prefix(cwd).and_then(|rest| rest.strip_prefix('/')) {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    }
}

/// The first line of a shell command, with `bash -lc '…'` wrappers removed.
pub fn shell_command_text(command: &str) -> String {
    let unwrapped = unwrap_shell(command).unwrap_or(command);
    let first = unwrapped.lines().next().unwrap_or_default().trim();
    if unwrapped.lines().nth(1).is_some() {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// The script of `/bin/bash -lc '<script>'` (and `sh -c`, `zsh -lc`), when the quoting is simple.
fn unwrap_shell(command: &str) -> Option<&str> {
    let (shell, rest) = command.split_once(' ')?;
    let name = shell.rsplit('/').next()?;
    if !matches!(name, "bash" | "sh" | "zsh" | "dash") {
        return None;
    }
    let (flag, script) = rest.trim_start().split_once(' ')?;
    if !matches!(flag, "-c" | "-lc" | "-cl") {
        return None;
    }
    let script = script.trim();
    let inner = script.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains('\'')).then_some(inner)
}

/// The summary of a call of `tool` with `input`; `cwd` shortens paths inside the working directory.
pub fn summarize(tool: &str, input: &Value, cwd: Option<&str>) -> String {
    let text = match tool {
        "Read" | "Edit" | "Write" | "MultiEdit" | "NotebookRead" => str_field(input, "file_path")
            .or_else(|| str_field(input, "path"))
            .map(|p| relative(p, cwd).to_string()),
        "NotebookEdit" => str_field(input, "notebook_path")
            .or_else(|| str_field(input, "file_path"))
            .map(|p| relative(p, cwd).to_string()),
        "Bash" | "shell_command" => str_field(input, "command").map(shell_command_text),
        "exec_command" => str_field(input, "cmd").map(shell_command_text),
        "shell" | "local_shell" => match input.get("command") {
            Some(Value::Array(argv)) => {
                let words: Vec<&str> = argv.iter().filter_map(Value::as_str).collect();
                match words.as_slice() {
                    [_, flag, script] if matches!(*flag, "-c" | "-lc") => Some(shell_command_text(script)),
                    _ => Some(words.join(" ")),
                }
            }
            Some(Value::String(s)) => Some(shell_command_text(s)),
            _ => None,
        },
        "Grep" | "Glob" => {
            str_field(input, "pattern").map(|pattern| match str_field(input, "path").map(|p| relative(p, cwd)) {
                Some(path) => format!("{pattern} in {path}"),
                None => pattern.to_string(),
            })
        }
        "LS" => str_field(input, "path").map(|p| relative(p, cwd).to_string()),
        "WebFetch" | "web_fetch" => str_field(input, "url").map(str::to_string),
        "WebSearch" | "web_search" => str_field(input, "query").map(str::to_string),
        "TodoWrite" => input
            .get("todos")
            .and_then(Value::as_array)
            .and_then(|todos| todos.first())
            .and_then(|todo| str_field(todo, "content").or_else(|| str_field(todo, "activeForm")))
            .map(|first| {
                let n = input.get("todos").and_then(Value::as_array).map_or(0, Vec::len);
                if n > 1 {
                    format!("{first} (+{} more)", n - 1)
                } else {
                    first.to_string()
                }
            }),
        "Task" | "Agent" => str_field(input, "description")
            .or_else(|| str_field(input, "prompt"))
            .map(str::to_string),
        "Skill" => str_field(input, "skill")
            .or_else(|| str_field(input, "name"))
            .map(str::to_string),
        "ToolSearch" => str_field(input, "query").map(str::to_string),
        _ => None,
    };
    let text = text.unwrap_or_else(|| match input {
        Value::Object(map) if map.is_empty() => String::new(),
        Value::Null => String::new(),
        other => other.to_string(),
    });
    truncate(&text, MAX_SUMMARY)
}
