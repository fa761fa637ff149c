//! The scripted demo agent (`itervox-worker demo-agent`): a stand-in for Claude Code that needs no API
//! key. It reads its prompt on stdin, accepts Claude Code's flags, prints stream-json exactly in the
//! real CLI's shapes, and really works in its working directory (the worktree): it appends a note
//! naming the issue to `DEMO_NOTES.md` and commits it as "Itervox Demo Agent".
//!
//! Markers in the task prompt steer it:
//! - `[demo:needs-input]` — a fresh session asks a question and ends its result with the
//!   input-required sentinel, committing nothing; the resumed session (`--resume`) does the work
//!   using the answer it was given.
//! - `[demo:fail-once]` — fails like an API error (exit 1, an `is_error` result) while
//!   `ITERVOX_ATTEMPT` is unset or `1`, works normally on later attempts.
//! - `[demo:sleep=N]` — pauses N×100 ms between steps (default pacing: 700 ms, a few seconds a run).
//! - `[demo:pr]` — mentions a pull request `https://github.com/example/demo/pull/<n>` when done.
//! - `[demo:spam=N]` — before the work, prints N short assistant messages (`spam <i> of N …`) as fast
//!   as it can, for measuring log throughput.
//!
//! A resumed session whose prompt carries no marker (the controller's "continue" guidance, or any
//! reply after the work is done) answers briefly without tool calls, unless its task was interrupted
//! before it was done (an operator's cancel): then it does the task. The issue comes from
//! `ITERVOX_ISSUE_IDENTIFIER`, else the first `ABC-123`-like word of the prompt. The session transcript
//! is kept in `$CLAUDE_CODE_LOG_DIR` (else a folder under the temp dir), in Claude Code's format.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::json;

mod flags;
mod session;
mod stream;
mod worktree;

#[cfg(test)]
mod tests;

pub use flags::{DemoFlags, parse as parse_flags};
pub use worktree::{AUTHOR_EMAIL, AUTHOR_NAME, NOTES_FILE};

use session::{History, SessionFile};
use stream::{Ending, Stream};

/// Pause between steps when the prompt does not set one.
pub const DEFAULT_STEP_PAUSE: Duration = Duration::from_millis(700);

/// What the demo agent reads from its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoEnv {
    /// `ITERVOX_ISSUE_IDENTIFIER`.
    pub issue: Option<String>,
    /// `ITERVOX_ATTEMPT` (1 for the first attempt).
    pub attempt: Option<String>,
    /// `CLAUDE_CODE_LOG_DIR`: where the session transcript goes.
    pub log_dir: Option<PathBuf>,
}

impl DemoEnv {
    /// This process's environment.
    pub fn from_process() -> DemoEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        DemoEnv {
            issue: var("ITERVOX_ISSUE_IDENTIFIER"),
            attempt: var("ITERVOX_ATTEMPT"),
            log_dir: var("CLAUDE_CODE_LOG_DIR").map(PathBuf::from),
        }
    }
}

/// The markers of a task prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    pub needs_input: bool,
    pub fail_once: bool,
    /// Pause between steps, in units of 100 ms.
    pub sleep: Option<u64>,
    pub pr: bool,
    /// How many filler messages to print before the work.
    pub spam: Option<u64>,
}

static SPAM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[demo:spam=(\d{1,9})\]").expect("static regex"));
static SLEEP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[demo:sleep=(\d{1,5})\]").expect("static regex"));
static ISSUE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Z][A-Z0-9]{0,9}-\d{1,9}\b").expect("static regex"));

impl Markers {
    pub fn of(prompt: &str) -> Markers {
        Markers {
            needs_input: prompt.contains("[demo:needs-input]"),
            fail_once: prompt.contains("[demo:fail-once]"),
            sleep: SLEEP.captures(prompt).and_then(|c| c[1].parse().ok()),
            pr: prompt.contains("[demo:pr]"),
            spam: SPAM.captures(prompt).and_then(|c| c[1].parse().ok()),
        }
    }

    fn any(prompt: &str) -> bool {
        prompt.contains("[demo:")
    }
}

/// The issue a prompt is about: the environment's identifier, else the first `ABC-123` in the prompt.
pub fn issue_of(env: &DemoEnv, prompt: &str) -> String {
    env.issue
        .clone()
        .or_else(|| ISSUE.find(prompt).map(|m| m.as_str().to_string()))
        .unwrap_or_else(|| "the issue".to_string())
}

/// Runs the demo agent with its command-line arguments; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let mut prompt = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut prompt) {
        eprintln!("demo-agent: cannot read the prompt from stdin: {e}");
        return 1;
    }
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("demo-agent: no working directory: {e}");
            return 1;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run(&args, &prompt, &DemoEnv::from_process(), &cwd, &mut out)
}

/// What a turn does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Do the task (with the human's answer, when one was asked for).
    Work { answer: Option<String> },
    /// Ask a question first.
    Ask,
    /// Fail like an API error.
    Fail,
    /// A resumed session with nothing new to do: answer briefly.
    Continue,
}

fn plan(resumed: bool, prompt: &str, markers: &Markers, history: &History, env: &DemoEnv) -> Plan {
    if resumed && history.question_pending {
        return Plan::Work {
            answer: Some(prompt.trim().to_string()),
        };
    }
    // The task of an earlier turn that never finished (it was interrupted): resuming carries on with it.
    let unfinished = history.commit.is_none() && history.task.as_deref().is_some_and(|t| t != prompt);
    if resumed && !Markers::any(prompt) && !unfinished {
        return Plan::Continue;
    }
    if markers.fail_once && env.attempt.as_deref().is_none_or(|a| a.trim() == "1") {
        return Plan::Fail;
    }
    if markers.needs_input && !resumed {
        return Plan::Ask;
    }
    Plan::Work { answer: None }
}

/// One turn of the demo agent: `args` are Claude Code's flags, `prompt` the stdin text, `cwd` the
/// worktree; stream-json goes to `out`. Returns the exit code (0, or 1 for a failed turn).
pub fn run(args: &[String], prompt: &str, env: &DemoEnv, cwd: &Path, out: &mut dyn Write) -> i32 {
    let flags = parse_flags(args);
    let resumed = flags.resume.is_some();
    let session_id = flags.resume.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let transcripts = env
        .log_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("itervox-demo-agent"));
    let session = SessionFile::new(Some(&transcripts), &session_id);
    let mut history = session.history();
    if history.task.is_none() {
        history.task = Some(prompt.to_string());
        // Recorded before any work, as Claude Code keeps its transcript as it goes: a turn killed midway
        // (an operator's cancel) still knows its task when the session is resumed.
        session.save_state(&session_id, &history);
    }
    // Markers of the session's task, plus any the new prompt adds.
    let task = history.task.clone().unwrap_or_default();
    let markers = Markers::of(&format!("{task}\n{prompt}"));
    let issue = issue_of(env, &task);
    let pause = markers
        .sleep
        .map_or(DEFAULT_STEP_PAUSE, |n| Duration::from_millis(n.saturating_mul(100)));
    let step = || std::thread::sleep(pause);
    let cwd_text = cwd.display().to_string();

    let mut stream = Stream::new(out, &session, &session_id, &cwd_text);
    stream.prompt(prompt);
    stream.init(&flags.permission_mode);
    let plan = plan(resumed, prompt, &markers, &history, env);
    let (text, error, code) = match plan {
        Plan::Continue => {
            step();
            let text = match &history.commit {
                Some(commit) => format!(
                    "The work on {issue} is complete: the note is in {NOTES_FILE} (commit {commit}). Nothing is left to do."
                ),
                None => format!("Nothing new to do on {issue} in this session."),
            };
            stream.text(&text);
            (text, None, 0)
        }
        Plan::Fail => {
            stream.text(&format!("Starting on {issue}."));
            step();
            stream.api_retry(1, 1, pause.as_millis() as u64, 500, "server_error");
            step();
            let text = "API Error: 500 {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error (the Itervox demo agent fails the first attempt of tasks marked [demo:fail-once])\"}}".to_string();
            stream.api_error(500, "api_error", &text);
            (text, Some(Ending::ApiError(500, "api_error")), 1)
        }
        Plan::Ask => {
            let id = stream.call(
                Some(&format!("Let me look at {issue} before changing anything.")),
                "Bash",
                json!({ "command": "git status --short", "description": "Show the worktree status" }),
            );
            step();
            run_status(&mut stream, &id, cwd);
            step();
            let text = format!(
                "Before I make changes for {issue}: should the note also say who asked for it? \
                 Reply with the name to mention (or \"no\").\n{}",
                crate::agent::sentinel::NEEDS_INPUT
            );
            stream.text(&text);
            history.question_pending = true;
            (text, None, 0)
        }
        Plan::Work { answer } => {
            history.question_pending = false;
            if let Some(n) = markers.spam {
                for i in 1..=n {
                    stream.text(&format!(
                        "spam {i} of {n}: filler text that stands in for a chatty agent's output, \
                         long enough to look like a real line of reasoning."
                    ));
                }
            }
            match work(
                &mut stream,
                &step,
                cwd,
                &issue,
                &session_id,
                answer.as_deref(),
                &markers,
            ) {
                Ok((text, commit)) => {
                    history.commit = Some(commit);
                    (text, None, 0)
                }
                Err(text) => {
                    stream.text(&text);
                    (text, Some(Ending::Failed), 1)
                }
            }
        }
    };
    let history = stream.result(&text, error.unwrap_or(Ending::Success), &history);
    let broken = stream.broken;
    session.save_state(&session_id, &history);
    if broken { 1 } else { code }
}

/// `git status --short` as a Bash call's result.
fn run_status(stream: &mut Stream<'_>, id: &str, cwd: &Path) {
    match worktree::short_status(cwd) {
        Ok(status) => {
            let content = if status.is_empty() {
                "(Bash completed with no output)".to_string()
            } else {
                status.clone()
            };
            stream.tool_result(
                id,
                &content,
                false,
                json!({ "stdout": status, "stderr": "", "interrupted": false, "isImage": false }),
            );
        }
        Err(e) => {
            let text = format!("fatal: {e}");
            stream.tool_result(
                id,
                &format!("Exit code 128\n{text}"),
                true,
                json!({ "stdout": "", "stderr": text, "interrupted": false, "isImage": false }),
            );
        }
    }
}

/// The task itself: look, write the note, commit. Returns the final text and the commit, or the
/// failure text.
fn work(
    stream: &mut Stream<'_>,
    step: &dyn Fn(),
    cwd: &Path,
    issue: &str,
    session_id: &str,
    answer: Option<&str>,
    markers: &Markers,
) -> Result<(String, String), String> {
    let intro = match answer {
        Some(a) => format!(
            "Thanks, going with: {}. I'll record it in {NOTES_FILE} and commit.",
            a.lines().next().unwrap_or_default()
        ),
        None => format!("I'll pick up {issue}: check the worktree, add a note to {NOTES_FILE} and commit it."),
    };
    let id = stream.call(
        Some(&intro),
        "Bash",
        json!({ "command": "git status --short", "description": "Show the worktree status" }),
    );
    step();
    run_status(stream, &id, cwd);
    step();

    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let mut note = format!("- {issue}: worked on by the Itervox demo agent at {when} (session {session_id})");
    if let Some(answer) = answer {
        note.push_str(&format!("; answer: {}", answer.lines().next().unwrap_or_default()));
    }
    let path = cwd.join(NOTES_FILE);
    let path_text = path.display().to_string();
    let exists = path.exists();
    let previous = std::fs::read_to_string(&path).ok();
    let last_line = previous
        .as_deref()
        .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()))
        .map(str::to_string);
    let id = match (&last_line, exists) {
        (Some(last), true) => stream.call(
            None,
            "Edit",
            json!({ "file_path": path_text, "old_string": last, "new_string": format!("{last}\n{note}") }),
        ),
        _ => stream.call(None, "Write", json!({ "file_path": path_text, "content": note })),
    };
    step();
    match worktree::append_note(cwd, &note) {
        Ok(written) if written.created => stream.tool_result(
            &id,
            &format!("File created successfully at: {path_text}"),
            false,
            json!({ "type": "create", "filePath": path_text, "content": note }),
        ),
        Ok(_) => stream.tool_result(
            &id,
            &format!("The file {path_text} has been updated successfully."),
            false,
            json!({ "filePath": path_text, "newString": note }),
        ),
        Err(e) => {
            let text = e.to_string();
            stream.tool_result(&id, &text, true, json!(text));
            return Err(format!("I could not write {NOTES_FILE}: {text}"));
        }
    }
    step();

    let message = format!("{issue}: record the demo agent's note");
    let command = format!("git add {NOTES_FILE} && git commit -m \"{message}\"");
    let id = stream.call(
        None,
        "Bash",
        json!({ "command": command, "description": "Commit the note" }),
    );
    step();
    let commit = match worktree::commit_notes(cwd, &message) {
        Ok(commit) => {
            let stdout = format!(
                "[{} {}] {message}\n 1 file changed, 1 insertion(+)",
                commit.branch, commit.short_id
            );
            stream.tool_result(
                &id,
                &stdout,
                false,
                json!({ "stdout": stdout, "stderr": "", "interrupted": false, "isImage": false }),
            );
            commit
        }
        Err(e) => {
            let text = e.to_string();
            stream.tool_result(
                &id,
                &format!("Exit code 1\n{text}"),
                true,
                json!({ "stdout": "", "stderr": text, "interrupted": false, "isImage": false }),
            );
            return Err(format!("I could not commit the note for {issue}: {text}"));
        }
    };
    step();

    let mut text = format!(
        "Done: added a note for {issue} to {NOTES_FILE} and committed it as {} on {}.",
        commit.short_id, commit.branch
    );
    if markers.pr {
        let number: u64 = issue.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(1);
        text.push_str(&format!(
            "\n\nOpened a pull request: https://github.com/example/demo/pull/{number}"
        ));
    }
    stream.text(&text);
    Ok((text, commit.short_id))
}
