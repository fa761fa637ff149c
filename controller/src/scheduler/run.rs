//! One run: prepare the worktree, start (or resume, or re-attach to) the agent session on its host,
//! follow its journal, store and broadcast its log entries, drive continuation turns, and report the
//! outcome to the scheduler. A run never touches scheduler state; it only sends `RunEvent`s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use itervox_protocol::worker::{
    Backend, Cancel, ExitStatus, Hooks, PermissionMode, PrepareWorkspace, PreparedWorkspace, RequestBody, SendInput,
    SessionEvent, SessionExit, SessionStarted, StartSession,
};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::{Command, RunEvent, RunOutcome};
use super::decide::continue_after_turn;
use crate::hosts::link::{HostLink, LinkError};
use crate::hosts::worker_client::{EventBatch, Received, ReceivedLog};
use crate::issue_logs::LogHub;
use crate::store::{StoreHandle, StoredLog};
use crate::tracker::SharedTracker;

/// How the run starts.
#[derive(Debug, Clone)]
pub enum RunMode {
    /// New worktree (or reuse) and a new agent session with `prompt`.
    Fresh { prompt: String },
    /// Next turn of an existing session with `message` (a human's reply, or a resume after a pause).
    Resume { message: String, from_seq: u64 },
    /// The controller restarted: follow the session from `from_seq`; entries up to `logs_seq` are stored.
    Reattach { from_seq: u64, logs_seq: u64 },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run_id: String,
    pub identifier: String,
    pub session_id: String,
    pub link: HostLink,
    pub mode: RunMode,
    pub backend: Backend,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub permission_mode: PermissionMode,
    pub repo: String,
    pub base_branch: String,
    pub branch: String,
    pub hooks: Hooks,
    pub max_turns: u32,
    pub turn_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// The session's lease (`ssh.host_lost_after_ms`): the host stops the session itself when this
    /// controller has been silent for that long, before the controller declares it lost.
    pub lease_ms: Option<u64>,
    pub continuation_prompt: String,
    pub active_states: Vec<String>,
    /// Turn count and token totals carried over (re-attach after restart).
    pub carried: Totals,
    pub tracker: SharedTracker,
    pub hub: LogHub,
    pub store: StoreHandle,
    pub events: mpsc::Sender<Command>,
    pub cancel: CancellationToken,
    pub cancel_grace: Duration,
}

/// Running totals of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub turn_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    pub agent_ref: Option<String>,
    pub last_seq: u64,
}

/// Runs to completion and reports `Finished`. When the controller shuts down (`shutdown` fires) the run
/// returns without reporting: the session keeps running on its host and is re-attached after restart.
pub async fn execute(spec: RunSpec, shutdown: CancellationToken) {
    let run_id = spec.run_id.clone();
    let events = spec.events.clone();
    let outcome = tokio::select! {
        // Cancel-safe: stopping here leaves the session running on its host; the restart re-attaches.
        _ = shutdown.cancelled() => return,
        o = drive(&spec) => o,
    };
    let _ = events
        .send(Command::Run {
            run_id,
            event: RunEvent::Finished(outcome),
        })
        .await;
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

async fn note(spec: &RunSpec, level: LogLevel, message: impl Into<String>) {
    let mut e = IssueLogEntry::new(
        level,
        match level {
            LogLevel::Info => LogEventKind::Info,
            LogLevel::Warn => LogEventKind::Warn,
            LogLevel::Error => LogEventKind::Error,
        },
        message,
        now().to_rfc3339(),
    );
    e.session_id = Some(spec.session_id.clone());
    spec.hub.publish(&spec.identifier, e).await;
}

async fn send(spec: &RunSpec, event: RunEvent) {
    let _ = spec
        .events
        .send(Command::Run {
            run_id: spec.run_id.clone(),
            event,
        })
        .await;
}

fn failed(error: impl Into<String>) -> RunOutcome {
    RunOutcome::Failed {
        error: error.into(),
        rate_limit_reset: None,
        exit: None,
    }
}

/// Retries a call while the link is down, until `deadline` or cancellation.
async fn call_patiently<T: serde::de::DeserializeOwned>(
    spec: &RunSpec,
    body: RequestBody,
    deadline: Duration,
) -> Result<T, LinkError> {
    let until = Instant::now() + deadline;
    loop {
        match spec.link.call::<T>(body.clone()).await {
            Err(e) if retry_after_link_loss(spec, &e, until).await => {}
            r => return r,
        }
    }
}

/// Whether a failed call is worth another try: the link (not the worker) failed, the deadline has not
/// passed and the run is not cancelled. Waits (a little) for the link to come back first.
async fn retry_after_link_loss(spec: &RunSpec, e: &LinkError, until: Instant) -> bool {
    if !e.is_transport() || Instant::now() >= until || spec.cancel.is_cancelled() {
        return false;
    }
    let _ = spec.link.wait_up(Duration::from_secs(2)).await;
    true
}

/// `prepare_workspace` with progress: the host's entries (fetching, the new worktree, hook output) reach the
/// issue's log as they happen, not when the call ends. Retried like [`call_patiently`].
async fn prepare_live(
    spec: &RunSpec,
    body: PrepareWorkspace,
    deadline: Duration,
) -> Result<PreparedWorkspace, LinkError> {
    let until = Instant::now() + deadline;
    loop {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let call = spec
            .link
            .call_with_progress::<PreparedWorkspace>(RequestBody::PrepareWorkspace(body.clone()), tx);
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                Some(entry) = rx.recv() => publish_host_entry(spec, entry).await,
            }
        };
        // Every progress entry was queued before the answer.
        while let Ok(entry) = rx.try_recv() {
            publish_host_entry(spec, entry).await;
        }
        match result {
            Err(e) if retry_after_link_loss(spec, &e, until).await => {}
            r => return r,
        }
    }
}

async fn publish_host_entry(spec: &RunSpec, mut entry: IssueLogEntry) {
    entry.session_id = Some(spec.session_id.clone());
    spec.hub.publish(&spec.identifier, entry).await;
}

async fn drive(spec: &RunSpec) -> RunOutcome {
    let began = Instant::now();
    let mut totals = spec.carried.clone();
    let (mut feed, logs_seq) = match &spec.mode {
        RunMode::Fresh { prompt } => {
            if let Err(e) = spec.link.wait_up(Duration::from_secs(60)).await {
                return failed(e.to_string());
            }
            let prepare = PrepareWorkspace {
                issue: spec.identifier.clone(),
                repo: spec.repo.clone(),
                base_branch: spec.base_branch.clone(),
                branch: spec.branch.clone(),
                hooks: spec.hooks.clone(),
                progress: true,
            };
            let prepared = match prepare_live(spec, prepare, Duration::from_secs(60)).await {
                Ok(p) => p,
                Err(e) => {
                    let msg = format!("preparing the workspace failed: {e}");
                    note(spec, LogLevel::Error, &msg).await;
                    return failed(msg);
                }
            };
            tracing::debug!(issue = %spec.identifier, elapsed_ms = began.elapsed().as_secs_f64() * 1e3, "Workspace prepared");
            // A worker that does not send progress puts its entries in the answer.
            for entry in prepared.log {
                publish_host_entry(spec, entry).await;
            }
            if prepared.created {
                note(
                    spec,
                    LogLevel::Info,
                    format!("Created worktree {} on branch {}", prepared.path, prepared.branch),
                )
                .await;
            }
            let start = RequestBody::StartSession(StartSession {
                session_id: spec.session_id.clone(),
                issue: spec.identifier.clone(),
                workspace: prepared.path.clone(),
                backend: spec.backend,
                command: spec.command.clone(),
                env: spec.env.clone(),
                prompt: prompt.clone(),
                resume_session_ref: None,
                permission_mode: spec.permission_mode,
                turn_timeout_ms: spec.turn_timeout_ms,
                read_timeout_ms: spec.read_timeout_ms,
                hooks: spec.hooks.clone(),
                lease_ms: spec.lease_ms,
            });
            if let Err(e) = call_patiently::<SessionStarted>(spec, start, Duration::from_secs(60)).await {
                let msg = format!("starting the agent failed: {e}");
                note(spec, LogLevel::Error, &msg).await;
                return failed(msg);
            }
            tracing::debug!(issue = %spec.identifier, elapsed_ms = began.elapsed().as_secs_f64() * 1e3, "Session started");
            // The journal keeps every event, so following after the start loses nothing.
            let feed = spec.link.follow(&spec.session_id, 1);
            send(
                spec,
                RunEvent::Started {
                    workspace: Some(prepared.path),
                },
            )
            .await;
            (feed, 0)
        }
        RunMode::Resume { message, from_seq } => {
            let body = RequestBody::SendInput(SendInput {
                session_id: spec.session_id.clone(),
                message: message.clone(),
            });
            if let Err(e) = call_patiently::<SessionStarted>(spec, body, Duration::from_secs(60)).await {
                let msg = format!("resuming the agent session failed: {e}");
                note(spec, LogLevel::Error, &msg).await;
                return failed(msg);
            }
            let feed = spec.link.follow(&spec.session_id, *from_seq);
            send(spec, RunEvent::Started { workspace: None }).await;
            (feed, 0)
        }
        RunMode::Reattach { from_seq, logs_seq } => {
            let feed = spec.link.follow(&spec.session_id, *from_seq);
            send(spec, RunEvent::Started { workspace: None }).await;
            (feed, *logs_seq)
        }
    };

    let outcome = follow(spec, &mut feed, &mut totals, logs_seq, began).await;
    spec.link.unfollow(&spec.session_id).await;
    outcome
}

/// Consumes the session's events until the run is over.
async fn follow(
    spec: &RunSpec,
    feed: &mut mpsc::Receiver<EventBatch>,
    totals: &mut Totals,
    logs_seq: u64,
    began: Instant,
) -> RunOutcome {
    let mut first_event = true;
    let mut question: Option<String> = None;
    let mut tool_calls_this_turn: u32 = 0;
    let mut subagents: u32 = 0;
    let mut last_progress_sent = Instant::now() - Duration::from_secs(10);
    let mut pending_progress: Option<(String, String, DateTime<Utc>)> = None;
    let mut cancel_sent_at: Option<Instant> = None;
    // Events taken from the feed and not handled yet, oldest first.
    let mut pending: VecDeque<Received> = VecDeque::new();
    // Shared by every stored entry of the run.
    let identifier: Arc<str> = spec.identifier.as_str().into();
    let session: Arc<str> = spec.session_id.as_str().into();
    loop {
        let grace_deadline = cancel_sent_at.map(|t| t + spec.cancel_grace + Duration::from_secs(10));
        let Some(received) = pending.pop_front() else {
            tokio::select! {
                biased;
                // Cancel-safe: a pending receive loses nothing; the journal replays on the next attach.
                _ = spec.cancel.cancelled(), if cancel_sent_at.is_none() => {
                    cancel_sent_at = Some(Instant::now());
                    let body = RequestBody::Cancel(Cancel { session_id: spec.session_id.clone(), grace_ms: spec.cancel_grace.as_millis() as u64 });
                    match spec.link.call::<serde_json::Value>(body).await {
                        Ok(_) => continue,
                        // The host is unreachable: the scheduler records the session as stale and the host
                        // cancels it when it comes back.
                        Err(_) => return RunOutcome::Stopped,
                    }
                }
                _ = sleep_until_opt(grace_deadline) => return RunOutcome::Stopped,
                _ = tokio::time::sleep(Duration::from_millis(250)), if pending_progress.is_some() => {
                    if let Some((kind, msg, at)) = pending_progress.take() {
                        send(spec, RunEvent::Progress { last_event: kind, last_message: msg, at, subagents }).await;
                        last_progress_sent = Instant::now();
                    }
                    continue;
                }
                e = feed.recv() => match e {
                    Some(events) => {
                        pending.extend(events);
                        continue;
                    }
                    None => return failed("the session's event feed closed unexpectedly"),
                },
            }
        };
        let seq = received.seq();
        if std::mem::take(&mut first_event) {
            tracing::debug!(issue = %spec.identifier, seq, elapsed_ms = began.elapsed().as_secs_f64() * 1e3, "First session event");
        }
        let event = match received {
            Received::Log(log) => Ok(log),
            Received::Other(SessionEvent::Log(log)) => Ok(ReceivedLog::from_event(log)),
            Received::Other(other) => Err(other),
        };
        let event = match event {
            Ok(log) => {
                // A burst is published as a batch: what else the feed already holds, up to the first
                // event that is not a log entry (kept for the next round).
                let mut batch: Vec<StoredLog> = Vec::new();
                let mut incoming = Some(log);
                while let Some(log) = incoming.take() {
                    if log.seq > logs_seq {
                        match log.event {
                            LogEventKind::Action => tool_calls_this_turn += 1,
                            LogEventKind::Subagent => subagents += 1,
                            LogEventKind::Pr => {
                                if let Some(entry) = log.entry() {
                                    send(spec, RunEvent::PrSeen(entry.message.trim().to_string())).await;
                                }
                            }
                            _ => {}
                        }
                        batch.push(StoredLog::received(identifier.clone(), session.clone(), log));
                    }
                    if batch.len() < crate::store::MAX_BATCH {
                        if pending.is_empty()
                            && let Ok(events) = feed.try_recv()
                        {
                            pending.extend(events);
                        }
                        if matches!(pending.front(), Some(Received::Log(_)))
                            && let Some(Received::Log(next)) = pending.pop_front()
                        {
                            incoming = Some(next);
                        }
                    }
                }
                // The run's progress shows the burst's last entry.
                let last = batch
                    .last()
                    .and_then(|l| serde_json::from_str::<IssueLogEntry>(&l.json).ok());
                if !batch.is_empty() {
                    spec.hub.publish_stored(batch).await;
                }
                if let Some(last) = last {
                    let summary = last.message.chars().take(300).collect::<String>();
                    pending_progress = Some((last.event.as_str().to_string(), summary, now()));
                    if last_progress_sent.elapsed() >= Duration::from_millis(250)
                        && let Some((kind, msg, at)) = pending_progress.take()
                    {
                        send(
                            spec,
                            RunEvent::Progress {
                                last_event: kind,
                                last_message: msg,
                                at,
                                subagents,
                            },
                        )
                        .await;
                        last_progress_sent = Instant::now();
                    }
                }
                continue;
            }
            Err(other) => other,
        };
        match event {
            // Handled above.
            SessionEvent::Log(_) => {}
            SessionEvent::Turn(t) => {
                if seq <= totals.last_seq {
                    continue;
                }
                totals.input_tokens += t.input_tokens;
                totals.output_tokens += t.output_tokens;
                if let Some(c) = t.cost_usd {
                    *totals.cost_usd.get_or_insert(0.0) += c;
                }
                if t.agent_session_ref.is_some() {
                    totals.agent_ref = t.agent_session_ref.clone();
                }
                tool_calls_this_turn = tool_calls_this_turn.max(t.tool_calls);
                totals.turn_count = totals.turn_count.max(t.turn);
                totals.last_seq = seq;
                persist(spec, totals);
                send(
                    spec,
                    RunEvent::Turn {
                        turn_count: totals.turn_count,
                        input_tokens: totals.input_tokens,
                        output_tokens: totals.output_tokens,
                        cost_usd: totals.cost_usd,
                        agent_ref: totals.agent_ref.clone(),
                    },
                )
                .await;
            }
            SessionEvent::InputRequired(q) => {
                if seq <= totals.last_seq {
                    continue;
                }
                question = Some(q.context);
            }
            SessionEvent::SessionExit(exit) => {
                if seq <= totals.last_seq {
                    continue;
                }
                totals.turn_count = totals.turn_count.max(exit.turn);
                totals.last_seq = seq;
                persist(spec, totals);
                if let Some((kind, msg, at)) = pending_progress.take() {
                    send(
                        spec,
                        RunEvent::Progress {
                            last_event: kind,
                            last_message: msg,
                            at,
                            subagents,
                        },
                    )
                    .await;
                }
                if cancel_sent_at.is_some() || spec.cancel.is_cancelled() {
                    return RunOutcome::Stopped;
                }
                match exit.status {
                    ExitStatus::Succeeded => {
                        let single_turn = spec.backend == Backend::Codex;
                        let still_active = if exit.turn < spec.max_turns && tool_calls_this_turn > 0 && !single_turn {
                            issue_still_active(spec).await
                        } else {
                            false
                        };
                        if continue_after_turn(
                            exit.turn,
                            spec.max_turns,
                            tool_calls_this_turn,
                            single_turn,
                            still_active,
                        ) {
                            tool_calls_this_turn = 0;
                            note(
                                spec,
                                LogLevel::Info,
                                format!("Turn {} done; continuing with turn {}", exit.turn, exit.turn + 1),
                            )
                            .await;
                            let body = RequestBody::SendInput(SendInput {
                                session_id: spec.session_id.clone(),
                                message: spec.continuation_prompt.clone(),
                            });
                            if let Err(e) = call_patiently::<SessionStarted>(spec, body, Duration::from_secs(60)).await
                            {
                                return failed(format!("starting turn {} failed: {e}", exit.turn + 1));
                            }
                            continue;
                        }
                        return RunOutcome::Succeeded { exit: Some(exit) };
                    }
                    ExitStatus::InputRequired => {
                        return RunOutcome::InputRequired {
                            question: question.take().unwrap_or_else(|| "The agent needs input.".into()),
                            exit: Some(exit),
                        };
                    }
                    ExitStatus::Failed | ExitStatus::TimedOut | ExitStatus::Cancelled => {
                        return exit_failure(exit);
                    }
                }
            }
        }
    }
}

fn exit_failure(exit: SessionExit) -> RunOutcome {
    let error = exit.error.clone().unwrap_or_else(|| match exit.status {
        ExitStatus::TimedOut => "the agent timed out".into(),
        ExitStatus::Cancelled => "the agent was stopped on its host".into(),
        _ => format!("the agent exited with code {}", exit.exit_code.unwrap_or(-1)),
    });
    let reset = exit
        .rate_limit_reset_at
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    RunOutcome::Failed {
        error,
        rate_limit_reset: reset,
        exit: Some(exit),
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn issue_still_active(spec: &RunSpec) -> bool {
    match spec
        .tracker
        .fetch_by_identifiers(std::slice::from_ref(&spec.identifier))
        .await
    {
        Ok(issues) => issues
            .iter()
            .any(|i| spec.active_states.iter().any(|s| s.eq_ignore_ascii_case(&i.state))),
        Err(e) => {
            tracing::warn!(issue = %spec.identifier, error = %e, "Could not re-check the issue's state; ending the run");
            false
        }
    }
}

fn persist(spec: &RunSpec, totals: &Totals) {
    let result = spec.store.with(|s| {
        if let Some(mut r) = s.run(&spec.run_id)? {
            r.turn_count = totals.turn_count;
            r.input_tokens = totals.input_tokens;
            r.output_tokens = totals.output_tokens;
            r.cost_usd = totals.cost_usd;
            r.agent_ref = totals.agent_ref.clone();
            r.last_seq = totals.last_seq;
            s.save_run(&r)?;
        }
        Ok::<_, crate::store::StoreError>(())
    });
    if let Err(e) = result {
        tracing::error!(run = %spec.run_id, error = %e, "Could not save run progress");
    }
}
