//! Lifecycle hooks: `sh -c <script>` in the worktree, in its own process group, with a timeout that kills
//! the group, stdout and stderr captured together (capped), and the outcome as log entries.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::process_group::{self, SWEEP_GRACE};

/// Captured hook output beyond this is dropped (the tail is still kept for error messages).
pub const OUTPUT_CAP: usize = 256 * 1024;
/// How much of the output's end failure messages quote.
const TAIL_CAP: usize = 2 * 1024;
/// SIGTERM to SIGKILL on timeout or cancel.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Which hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    AfterCreate,
    BeforeRun,
    AfterRun,
    BeforeRemove,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::AfterCreate => "after_create",
            HookKind::BeforeRun => "before_run",
            HookKind::AfterRun => "after_run",
            HookKind::BeforeRemove => "before_remove",
        }
    }

    /// True when the hook's failure aborts what it guards; false when it is logged and ignored.
    pub fn is_fatal(self) -> bool {
        matches!(self, HookKind::AfterCreate | HookKind::BeforeRun)
    }
}

/// Where and how a hook runs.
#[derive(Debug, Clone)]
pub struct HookContext<'a> {
    /// The worktree: the hook's working directory and `ITERVOX_WORKSPACE`.
    pub workspace: &'a Path,
    /// The issue identifier, as `ITERVOX_ISSUE_IDENTIFIER`.
    pub issue: &'a str,
    pub timeout: Duration,
    /// Extra environment (the controller's `env` for session hooks).
    pub env: &'a BTreeMap<String, String>,
    /// When set, each output line goes out here as a log entry as the hook prints it (and
    /// [`HookRun::log_entries`] then leaves the lines out).
    pub live: Option<tokio::sync::mpsc::UnboundedSender<IssueLogEntry>>,
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResult {
    Succeeded,
    /// Non-zero exit (`None`: killed by a signal).
    Failed {
        exit_code: Option<i32>,
    },
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

/// A finished hook run.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub kind: HookKind,
    pub result: HookResult,
    /// Combined stdout and stderr, lossily decoded, at most [`OUTPUT_CAP`] bytes.
    pub output: String,
    /// True when output beyond the cap was dropped.
    pub truncated: bool,
    /// The last bytes of the output (even past the cap).
    pub tail: String,
    /// The output lines were sent live (see [`HookContext::live`]).
    pub streamed: bool,
    pub duration: Duration,
    pub timeout: Duration,
}

/// Runs `script` with `sh -c` and waits for it (or its timeout, or `cancel`).
pub async fn run_hook(kind: HookKind, script: &str, ctx: &HookContext<'_>, cancel: &CancellationToken) -> HookRun {
    let started = Instant::now();
    let mut run = HookRun {
        kind,
        result: HookResult::Succeeded,
        output: String::new(),
        truncated: false,
        tail: String::new(),
        streamed: false,
        duration: Duration::ZERO,
        timeout: ctx.timeout,
    };
    match run_inner(kind, script, ctx, cancel).await {
        Ok(captured) => {
            run.result = captured.result;
            run.output = String::from_utf8_lossy(&captured.head).into_owned();
            run.tail = String::from_utf8_lossy(&captured.tail).into_owned();
            run.truncated = captured.truncated;
            run.streamed = captured.streamed;
        }
        Err(e) => run.result = HookResult::SpawnFailed(e.to_string()),
    }
    run.duration = started.elapsed();
    run
}

struct Captured {
    result: HookResult,
    head: Vec<u8>,
    tail: Vec<u8>,
    truncated: bool,
    streamed: bool,
}

async fn run_inner(
    kind: HookKind,
    script: &str,
    ctx: &HookContext<'_>,
    cancel: &CancellationToken,
) -> std::io::Result<Captured> {
    let (reader, writer) = std::io::pipe()?;
    let mut child = {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir(ctx.workspace)
            .envs(ctx.env)
            .env("ITERVOX_ISSUE_IDENTIFIER", ctx.issue)
            .env("ITERVOX_WORKSPACE", ctx.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer.try_clone()?))
            .stderr(Stdio::from(writer));
        // The command (and with it our copies of the pipe's write end) is dropped at the end of this
        // block, so the reader sees EOF once the hook's processes are gone.
        process_group::spawn(&mut cmd)?
    };
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    let live = ctx.live.clone().map(|tx| LiveLines {
        tx,
        name: kind.as_str(),
        partial: Vec::new(),
        sent: 0,
        ok: true,
    });
    let reading = tokio::spawn(capture(receiver, live));

    let result = tokio::select! {
        status = child.wait() => {
            let status = status?;
            process_group::sweep_group(child.pid(), SWEEP_GRACE, false).await;
            if status.success() {
                HookResult::Succeeded
            } else {
                HookResult::Failed { exit_code: status.code() }
            }
        }
        _ = tokio::time::sleep(ctx.timeout) => {
            child.terminate(KILL_GRACE).await?;
            HookResult::TimedOut
        }
        _ = cancel.cancelled() => {
            child.terminate(KILL_GRACE).await?;
            HookResult::Cancelled
        }
    };
    // A process that left the group (setsid) may still hold the pipe; do not wait for it forever.
    let abort = reading.abort_handle();
    let (head, tail, truncated, streamed) = match tokio::time::timeout(Duration::from_secs(2), reading).await {
        Ok(Ok(captured)) => captured,
        _ => {
            abort.abort();
            (Vec::new(), Vec::new(), false, false)
        }
    };
    Ok(Captured {
        result,
        head,
        tail,
        truncated,
        streamed,
    })
}

/// The `detail` of a hook's log entries.
fn hook_detail(name: &str) -> String {
    format!("{{\"hook\":\"{name}\"}}")
}

/// One line of a hook's output as a log entry.
fn output_line(name: &str, line: &str, time: String) -> IssueLogEntry {
    IssueLogEntry::new(LogLevel::Info, LogEventKind::Info, format!("{name}: {line}"), time)
        .with_detail(hook_detail(name))
}

/// Sends a hook's output line by line as it arrives, within the same cap as the captured output.
struct LiveLines {
    tx: tokio::sync::mpsc::UnboundedSender<IssueLogEntry>,
    name: &'static str,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// Output bytes handled so far.
    sent: usize,
    /// False once a send failed (nobody listens): the lines then come in the log entries instead.
    ok: bool,
}

impl LiveLines {
    fn feed(&mut self, chunk: &[u8]) {
        let room = OUTPUT_CAP.saturating_sub(self.sent);
        let chunk = &chunk[..chunk.len().min(room)];
        self.sent += chunk.len();
        self.partial.extend_from_slice(chunk);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.send(&line[..end]);
        }
    }

    /// Sends the last, unterminated line; returns whether every line was delivered.
    fn finish(mut self) -> bool {
        let rest = std::mem::take(&mut self.partial);
        self.send(&rest);
        self.ok
    }

    fn send(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        let entry = output_line(self.name, text, crate::timestamp::rfc3339(Utc::now()));
        self.ok &= self.tx.send(entry).is_ok();
    }
}

async fn capture(
    mut receiver: tokio::net::unix::pipe::Receiver,
    mut live: Option<LiveLines>,
) -> (Vec<u8>, Vec<u8>, bool, bool) {
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match receiver.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if let Some(live) = live.as_mut() {
            live.feed(chunk);
        }
        let room = OUTPUT_CAP.saturating_sub(head.len());
        head.extend_from_slice(&chunk[..room.min(n)]);
        if n > room {
            truncated = true;
        }
        tail.extend_from_slice(chunk);
        if tail.len() > TAIL_CAP * 2 {
            tail.drain(..tail.len() - TAIL_CAP);
        }
    }
    if tail.len() > TAIL_CAP {
        tail.drain(..tail.len() - TAIL_CAP);
    }
    let streamed = live.is_some_and(LiveLines::finish);
    (head, tail, truncated, streamed)
}

impl HookRun {
    pub fn succeeded(&self) -> bool {
        self.result == HookResult::Succeeded
    }

    /// "exit code 3", "timed out after 60s", …
    pub fn describe_result(&self) -> String {
        match &self.result {
            HookResult::Succeeded => "succeeded".to_string(),
            HookResult::Failed { exit_code: Some(code) } => format!("failed with exit code {code}"),
            HookResult::Failed { exit_code: None } => "was killed by a signal".to_string(),
            HookResult::TimedOut => format!("timed out after {:?}", self.timeout),
            HookResult::Cancelled => "was cancelled".to_string(),
            HookResult::SpawnFailed(e) => format!("could not be started: {e}"),
        }
    }

    /// The error message for a failed hook: what happened and the end of its output.
    pub fn failure_message(&self, workspace: &Path) -> String {
        let mut msg = format!(
            "the {} hook {} in {}",
            self.kind.as_str(),
            self.describe_result(),
            workspace.display()
        );
        let tail = self.tail.trim_end();
        if !tail.is_empty() {
            msg.push_str(": ");
            msg.push_str(tail);
        }
        msg
    }

    /// The hook's output and outcome as log entries: one `info` entry per output line, then one entry
    /// for the outcome (`info` on success; on failure `error` for fatal hooks, `warn` otherwise).
    pub fn log_entries(&self, now: DateTime<Utc>) -> Vec<IssueLogEntry> {
        let time = crate::timestamp::rfc3339(now);
        let name = self.kind.as_str();
        let detail = hook_detail(name);
        let lines = if self.streamed { "" } else { self.output.as_str() };
        let mut entries: Vec<IssueLogEntry> = lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| output_line(name, line, time.clone()))
            .collect();
        if self.truncated {
            entries.push(
                IssueLogEntry::new(
                    LogLevel::Warn,
                    LogEventKind::Warn,
                    format!("{name}: output cut at {} KiB", OUTPUT_CAP / 1024),
                    time.clone(),
                )
                .with_detail(detail.clone()),
            );
        }
        let (level, kind) = if self.succeeded() {
            (LogLevel::Info, LogEventKind::Info)
        } else if self.kind.is_fatal() {
            (LogLevel::Error, LogEventKind::Error)
        } else {
            (LogLevel::Warn, LogEventKind::Warn)
        };
        let ignored = if !self.succeeded() && !self.kind.is_fatal() {
            " (ignored)"
        } else {
            ""
        };
        entries.push(
            IssueLogEntry::new(
                level,
                kind,
                format!(
                    "{name} hook {} in {:.1}s{ignored}",
                    self.describe_result(),
                    self.duration.as_secs_f64()
                ),
                time,
            )
            .with_detail(detail),
        );
        entries
    }
}

#[cfg(test)]
mod tests;
