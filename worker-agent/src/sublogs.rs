//! Reading and clearing the agent CLIs' own session logs of an issue ("sublogs"): Claude Code's session
//! transcripts (`<config>/projects/<escaped worktree>/<session>.jsonl`, subagents under
//! `<session>/subagents/agent-*.jsonl`), any `*.jsonl` in the issue's log folder (the demo agent's
//! transcripts, Codex tee files), and Codex rollout files (`$CODEX_HOME/sessions/YYYY/MM/DD/
//! rollout-*-<thread id>.jsonl`) of the threads the issue's sessions recorded.
//!
//! Every entry's `sessionId` is the file stem it came from (`agent-<id>` for a subagent, the thread id
//! for a Codex rollout); the newest [`MAX_ENTRIES`] entries are returned, oldest first.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use itervox_protocol::IssueLogEntry;

mod claude_transcript;
mod codex_rollout;

#[cfg(test)]
mod tests;

pub use claude_transcript::{find_project_dir, project_dir_name};
pub use codex_rollout::find_rollouts;

/// Most entries returned by [`read`].
pub const MAX_ENTRIES: usize = 5000;

/// Where an issue's agent session logs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SublogSources {
    /// The issue's worktree (Claude Code names its project folder after it).
    pub worktree: PathBuf,
    /// The issue's own log folder (`CLAUDE_CODE_LOG_DIR` of its sessions).
    pub log_dir: PathBuf,
    /// Claude Code's configuration folder: `$CLAUDE_CONFIG_DIR`, else `$HOME/.claude`.
    pub claude_config_dir: PathBuf,
    /// Codex's home: `$CODEX_HOME`, else `$HOME/.codex`.
    pub codex_home: PathBuf,
    /// The agents' own session ids the issue's session journals recorded (Codex thread ids find their
    /// rollout files by them).
    pub agent_refs: Vec<String>,
}

impl SublogSources {
    /// The sources of an issue whose agents ran with `env` on top of this process's environment (so a
    /// session that set `HOME`, `CLAUDE_CONFIG_DIR` or `CODEX_HOME` is read where it wrote).
    pub fn resolve(
        worktree: &Path,
        log_dir: &Path,
        agent_refs: &[String],
        env: &BTreeMap<String, String>,
    ) -> SublogSources {
        let var = |key: &str| {
            env.get(key)
                .cloned()
                .or_else(|| std::env::var(key).ok())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
        SublogSources {
            worktree: worktree.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            claude_config_dir: var("CLAUDE_CONFIG_DIR").unwrap_or_else(|| home.join(".claude")),
            codex_home: var("CODEX_HOME").unwrap_or_else(|| home.join(".codex")),
            agent_refs: agent_refs.to_vec(),
        }
    }
}

/// One log file and the session id its entries get.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogFile {
    path: PathBuf,
    session: String,
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Claude Code's session transcript (also written by the demo agent).
    ClaudeTranscript,
    /// `codex exec --json` output teed to a file.
    CodexExec,
    /// A Codex rollout file.
    CodexRollout,
}

/// Refuses session ids that could leave their folder.
fn check_session(session: Option<&str>) -> io::Result<()> {
    match session {
        Some(s) if s.is_empty() || s.contains('/') || s.contains('\\') || s.contains("..") || s.contains('\0') => Err(
            io::Error::new(io::ErrorKind::InvalidInput, format!("invalid sublog session id {s:?}")),
        ),
        _ => Ok(()),
    }
}

/// The `*.jsonl` files directly in `dir` (none when it does not exist).
fn jsonl_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every log file of the issue (only `session`'s when given: its transcript and subagents, or the one
/// subagent, or the one rollout).
fn log_files(sources: &SublogSources, session: Option<&str>) -> io::Result<Vec<LogFile>> {
    let mut files = Vec::new();
    if let Some(project) = find_project_dir(&sources.claude_config_dir, &sources.worktree)? {
        for path in jsonl_files(&project)? {
            let parent = stem(&path);
            let subagents = jsonl_files(&project.join(&parent).join("subagents"))?;
            if session.is_none_or(|s| s == parent) {
                files.push(LogFile {
                    path,
                    session: parent.clone(),
                    format: Format::ClaudeTranscript,
                });
            }
            for sub in subagents {
                let id = stem(&sub);
                if session.is_none_or(|s| s == parent || s == id) {
                    files.push(LogFile {
                        path: sub,
                        session: id,
                        format: Format::ClaudeTranscript,
                    });
                }
            }
        }
    }
    for path in jsonl_files(&sources.log_dir)? {
        let id = stem(&path);
        if session.is_none_or(|s| s == id) {
            let format = if id.starts_with("codex-") {
                Format::CodexExec
            } else {
                Format::ClaudeTranscript
            };
            files.push(LogFile {
                path,
                session: id,
                format,
            });
        }
    }
    let refs: Vec<String> = sources
        .agent_refs
        .iter()
        .filter(|r| session.is_none_or(|s| s == r.as_str()))
        .cloned()
        .collect();
    for (thread, path) in find_rollouts(&sources.codex_home, &refs)? {
        files.push(LogFile {
            path,
            session: thread,
            format: Format::CodexRollout,
        });
    }
    Ok(files)
}

/// The time an entry sorts by (unparsable times first).
fn sort_key(entry: &IssueLogEntry) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&entry.time)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The issue's agent session log entries (only `session`'s when given), oldest first, at most
/// [`MAX_ENTRIES`] (the newest). A file that cannot be read is reported as one `warn` entry; a line
/// that cannot be parsed is skipped.
pub fn read(sources: &SublogSources, session: Option<&str>) -> io::Result<Vec<IssueLogEntry>> {
    check_session(session)?;
    let mut entries = Vec::new();
    for file in log_files(sources, session)? {
        let mut file_entries = match std::fs::read(&file.path) {
            Ok(bytes) => match file.format {
                Format::ClaudeTranscript => claude_transcript::entries(&bytes),
                Format::CodexRollout => codex_rollout::entries(&bytes),
                Format::CodexExec => codex_rollout::exec_entries(&bytes, modified(&file.path)),
            },
            Err(e) => vec![IssueLogEntry::new(
                itervox_protocol::LogLevel::Warn,
                itervox_protocol::LogEventKind::Warn,
                format!("cannot read {}: {e}", file.path.display()),
                crate::agent::entry_time(Utc::now()),
            )],
        };
        for entry in &mut file_entries {
            entry.session_id = Some(file.session.clone());
        }
        entries.extend(file_entries);
    }
    entries.sort_by_key(sort_key);
    if entries.len() > MAX_ENTRIES {
        entries.drain(..entries.len() - MAX_ENTRIES);
    }
    Ok(entries)
}

fn modified(path: &Path) -> DateTime<Utc> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_dir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes the issue's agent session logs (only `session`'s when given). Claude Code's project memory
/// and anything that is not a session log stay. Note that a deleted Claude transcript or Codex rollout
/// can no longer be resumed.
pub fn clear(sources: &SublogSources, session: Option<&str>) -> io::Result<()> {
    check_session(session)?;
    for file in log_files(sources, session)? {
        remove_file(&file.path)?;
        if file.format == Format::ClaudeTranscript {
            remove_file(&file.path.with_extension("meta.json"))?;
        }
    }
    if let Some(project) = find_project_dir(&sources.claude_config_dir, &sources.worktree)? {
        // Session folders (subagents, tool results) are named by the session's UUID.
        for entry in std::fs::read_dir(&project)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let is_session_dir = path.is_dir() && uuid::Uuid::parse_str(&name).is_ok();
            if is_session_dir && session.is_none_or(|s| s == name) {
                remove_dir(&path)?;
            }
        }
    }
    Ok(())
}
