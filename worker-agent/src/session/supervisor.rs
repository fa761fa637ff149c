//! The detached supervisor of one turn (`itervox-worker supervise <session-dir>`): it leaves the serve
//! process's session, holds the session's supervisor lock for its whole life, runs `before_run` (turn 1),
//! starts the agent in its own process group with the prompt on stdin, parses its stdout line by line
//! into journaled events, enforces the read and turn timeouts and cancel, records the exit (exit.json
//! and state before the journal), and finally runs `after_run`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use itervox_protocol::worker::{
    ExitStatus, InputRequiredEvent, LogEvent, MAX_FRAME_BYTES, SessionEvent, SessionExit, StartSession, TurnEvent,
};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::journal::{DEFAULT_CAP_BYTES, JournalWriter};
use super::{CancelRequest, Phase, SessionDir, SessionError, TurnOrder, read_file};
use crate::agent::{self, AgentEvent, OutcomeStatus, TurnOutcome, TurnRequest};
use crate::file_lock::FileLock;
use crate::hooks::{HookContext, HookKind, run_hook};
use crate::layout::Layout;
use crate::line_reader::{Line, LineReader};
use crate::process_group::{self, SWEEP_GRACE};
use crate::process_identity::ProcessIdentity;
use crate::workspace::{current_branch, hook_timeout};

/// The agent's stderr.log stops growing past this.
pub const STDERR_CAP_BYTES: u64 = 1024 * 1024;
/// How many of stderr's last lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 20;
/// SIGTERM to SIGKILL when a timeout stops the agent.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);
/// Default SIGTERM to SIGKILL for a cancel without cancel.json.
const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
/// How often state.json's lastSeq is refreshed while the agent writes.
const STATE_REFRESH: Duration = Duration::from_secs(1);

/// Why the agent was stopped before it exited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    ReadTimeout,
    TurnTimeout,
}

/// How a turn ended, before it is written down.
#[derive(Debug, Default)]
struct TurnEnd {
    status: Option<ExitStatus>,
    exit_code: Option<i32>,
    error: Option<String>,
    outcome: TurnOutcome,
}

impl TurnEnd {
    fn with(status: ExitStatus, error: Option<String>) -> TurnEnd {
        TurnEnd {
            status: Some(status),
            error,
            ..TurnEnd::default()
        }
    }
}

/// Makes the parser for a backend's output (normally [`agent::parser_for`]).
pub type ParserFactory = fn(itervox_protocol::worker::Backend) -> Box<dyn agent::OutputParser>;

/// Entry point of `itervox-worker supervise <dir>`: detaches from the serve process, handles signals,
/// and runs the session's current turn.
pub async fn supervise(dir: &Path) -> Result<(), SessionError> {
    // Leave the serve process's session and group, so nothing aimed at them (a closed SSH channel, a
    // killed serve) reaches this turn. Fails only when already a group leader, which is fine.
    let _ = nix::unistd::setsid();
    // Orphans of the agent's group are re-parented here, so they can be reaped.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let cancel = CancellationToken::new();
    listen_for_signals(cancel.clone())?;
    run_current_turn(dir, cancel, agent::parser_for).await
}

/// Runs the current turn of the session in `dir` (see the module docs); `cancel` stops it like a
/// SIGTERM would.
pub async fn run_current_turn(
    dir: &Path,
    cancel: CancellationToken,
    parser_for: ParserFactory,
) -> Result<(), SessionError> {
    let sd = SessionDir::new(dir);
    let layout = Layout::of_session_dir(dir).ok_or_else(|| SessionError::BadRequest {
        message: format!(
            "{} is not a session folder (<root>/.itervox/sessions/<id>)",
            dir.display()
        ),
    })?;

    let me = ProcessIdentity::current();
    let sd2 = sd.clone();
    blocking(move || {
        sd2.update_state(|s| {
            if s.status == Phase::Running {
                s.supervisor = me.or(s.supervisor);
                s.supervisor_ready = true;
            }
        })
    })
    .await?;

    // A previous turn's supervisor may still be running after_run; the turn starts after it.
    let lock_path = sd.supervisor_lock();
    let _lock =
        blocking(move || FileLock::exclusive(&lock_path).map_err(SessionError::io("cannot take the supervisor lock")))
            .await?;

    let spec: StartSession =
        read_file(&sd.spec())?.ok_or_else(|| SessionError::Corrupt(format!("{} is missing", sd.spec().display())))?;
    let order: TurnOrder = read_file(&sd.turn_order())?
        .ok_or_else(|| SessionError::Corrupt(format!("{} is missing", sd.turn_order().display())))?;
    let state = sd.read_state()?;
    if state.status != Phase::Running || state.turn != order.turn {
        tracing::warn!(
            turn = order.turn,
            state_turn = state.turn,
            "The turn this supervisor was started for is not current; exiting."
        );
        return Ok(());
    }
    if let Some(c) = read_file::<CancelRequest>(&sd.cancel())?
        && c.turn == order.turn
    {
        cancel.cancel();
    }
    // The turn was ordered by a controller a moment ago, so the lease counts from now at the latest.
    let lease_expired = spec.lease_ms.filter(|&ms| ms > 0).map(|ms| {
        super::lease::watch(
            &layout,
            Duration::from_millis(ms),
            std::time::SystemTime::now(),
            cancel.clone(),
        )
    });
    let journal = JournalWriter::open(dir, DEFAULT_CAP_BYTES).map_err(SessionError::io("cannot open the journal"))?;
    let mut turn = Supervisor {
        sd,
        layout,
        session_id: spec.session_id.clone(),
        agent_session_ref: order.resume_ref.clone(),
        spec,
        order,
        journal,
        cancel,
        parser_for,
        last_state_refresh: Instant::now(),
        queue_events: false,
        lease_expired,
    };
    let end = turn.run_turn().await;
    turn.finish(end).await;
    Ok(())
}

fn listen_for_signals(cancel: CancellationToken) -> Result<(), SessionError> {
    let io = SessionError::io("cannot install signal handlers");
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut hup = signal(SignalKind::hangup()).map_err(SessionError::io("cannot handle SIGHUP"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(SessionError::io("cannot handle SIGINT"))?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: cancelling the turn.");
                    cancel.cancel();
                }
                // A hangup or interrupt aimed at a terminal this process no longer has: ignore.
                _ = hup.recv() => {}
                _ = int.recv() => {}
            }
        }
    });
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SessionError> + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SessionError::Io {
        context: "a blocking session task failed".to_string(),
        source: std::io::Error::other(e),
    })?
}

struct Supervisor {
    sd: SessionDir,
    layout: Layout,
    session_id: String,
    spec: StartSession,
    order: TurnOrder,
    journal: JournalWriter,
    cancel: CancellationToken,
    parser_for: ParserFactory,
    /// The newest agent session id seen (the order's resume ref until the agent reports one).
    agent_session_ref: Option<String>,
    last_state_refresh: Instant,
    /// True while the agent's output is parsed: events are queued and written once per read.
    queue_events: bool,
    /// Set when the controller's lease expired (which is what cancelled the turn).
    lease_expired: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Supervisor {
    fn workspace(&self) -> PathBuf {
        PathBuf::from(&self.spec.workspace)
    }

    /// Journals one event (a write failure is logged; the turn goes on). While a read of the agent's
    /// output is parsed, the event is only queued, for one write per read.
    fn emit(&mut self, make: impl FnOnce(u64) -> SessionEvent) {
        let event = make(self.journal.next_seq());
        let result = if self.queue_events {
            self.journal.queue(&event)
        } else {
            self.journal.append(&event)
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "Cannot append to the journal.");
        }
    }

    fn emit_log(&mut self, mut entry: IssueLogEntry) {
        let session_id = self.session_id.clone();
        self.emit(|seq| {
            entry.session_id = Some(session_id.clone());
            entry.seq = Some(seq);
            SessionEvent::Log(LogEvent { session_id, seq, entry })
        });
    }

    fn emit_agent_event(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Log(mut entry) => {
                if entry.event == itervox_protocol::LogEventKind::Turn {
                    entry.message = session_turn_message(&entry.message, self.order.turn);
                }
                self.emit_log(entry)
            }
            AgentEvent::TurnEnd(summary) => {
                if summary.agent_session_ref.is_some() {
                    self.agent_session_ref = summary.agent_session_ref.clone();
                }
                let (session_id, turn) = (self.session_id.clone(), self.order.turn);
                self.emit(|seq| {
                    SessionEvent::Turn(TurnEvent {
                        session_id,
                        seq,
                        turn,
                        input_tokens: summary.input_tokens,
                        output_tokens: summary.output_tokens,
                        cost_usd: summary.cost_usd,
                        agent_session_ref: summary.agent_session_ref,
                        tool_calls: summary.tool_calls,
                        result_text: summary.result_text,
                        is_error: summary.is_error,
                    })
                });
                if let Err(e) = self.journal.sync() {
                    tracing::error!(error = %e, "Cannot sync the journal.");
                }
                self.refresh_state(true);
            }
        }
    }

    fn info(&mut self, level: LogLevel, kind: LogEventKind, message: String) {
        self.emit_log(IssueLogEntry::new(
            level,
            kind,
            message,
            crate::timestamp::rfc3339(Utc::now()),
        ));
    }

    /// Writes lastSeq and agentSessionRef into state.json (at most once a second unless `force`).
    fn refresh_state(&mut self, force: bool) {
        if !force && self.last_state_refresh.elapsed() < STATE_REFRESH {
            return;
        }
        self.last_state_refresh = Instant::now();
        let (last_seq, session_ref, turn) = (self.journal.last_seq(), self.agent_session_ref.clone(), self.order.turn);
        let result = self.sd.update_state(|s| {
            s.last_seq = s.last_seq.max(last_seq);
            if s.turn == turn && session_ref.is_some() {
                s.agent_session_ref = session_ref;
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "Cannot refresh state.json.");
        }
    }

    fn hook_ctx<'a>(&'a self, workspace: &'a Path) -> HookContext<'a> {
        HookContext {
            workspace,
            issue: &self.spec.issue,
            timeout: hook_timeout(&self.spec.hooks),
            env: &self.spec.env,
            live: None,
        }
    }

    async fn run_turn(&mut self) -> TurnEnd {
        let workspace = self.workspace();
        if self.cancel.is_cancelled() {
            return TurnEnd::with(
                ExitStatus::Cancelled,
                Some(self.cancel_reason("cancelled before the turn started")),
            );
        }
        if self.order.turn == 1
            && let Some(script) = self.spec.hooks.before_run.clone().filter(|s| !s.trim().is_empty())
        {
            let run = run_hook(HookKind::BeforeRun, &script, &self.hook_ctx(&workspace), &self.cancel).await;
            for entry in run.log_entries(Utc::now()) {
                self.emit_log(entry);
            }
            if !run.succeeded() {
                if run.result == crate::hooks::HookResult::Cancelled {
                    return TurnEnd::with(
                        ExitStatus::Cancelled,
                        Some(self.cancel_reason("cancelled during before_run")),
                    );
                }
                return TurnEnd::with(ExitStatus::Failed, Some(run.failure_message(&workspace)));
            }
        }
        if self.cancel.is_cancelled() {
            return TurnEnd::with(
                ExitStatus::Cancelled,
                Some(self.cancel_reason("cancelled before the agent started")),
            );
        }
        if !workspace.is_dir() {
            return TurnEnd::with(
                ExitStatus::Failed,
                Some(format!("the workspace {} does not exist", workspace.display())),
            );
        }

        let log_dir = self.layout.agent_log_dir(&self.spec.issue);
        if let Err(e) = fs_err::create_dir_all(&log_dir) {
            tracing::warn!(error = %e, "Cannot create the agent log folder.");
        }
        let self_exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("itervox-worker"));
        let request = TurnRequest {
            backend: self.spec.backend,
            command: &self.spec.command,
            prompt: &self.order.prompt,
            resume_ref: self.order.resume_ref.as_deref(),
            permission_mode: self.spec.permission_mode,
            workspace: &workspace,
            env: &self.spec.env,
            log_dir: &log_dir,
            self_exe: &self_exe,
        };
        let command = match agent::build_command(&request) {
            Ok(c) => c,
            Err(e) => {
                return TurnEnd::with(ExitStatus::Failed, Some(format!("cannot build the agent command: {e}")));
            }
        };
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .envs(&command.env)
            .env("ITERVOX_AGENT", "1")
            .env("ITERVOX_SESSION_ID", &self.session_id)
            .env("ITERVOX_ISSUE_IDENTIFIER", &self.spec.issue)
            .env("ITERVOX_TURN", self.order.turn.to_string())
            .current_dir(&command.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match process_group::spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) => {
                return TurnEnd::with(
                    ExitStatus::Failed,
                    Some(format!("cannot start the agent {}: {e}", command.program.display())),
                );
            }
        };
        let pgid = child.pid();
        let agent_identity = ProcessIdentity::of(pgid);
        let turn = self.order.turn;
        if let Err(e) = self.sd.update_state(|s| {
            if s.turn == turn {
                s.agent = agent_identity;
                s.pid = Some(pgid);
                s.pgid = Some(pgid);
            }
        }) {
            tracing::warn!(error = %e, "Cannot record the agent process.");
        }
        tracing::info!(pid = pgid, program = %command.program.display(), turn, "Agent started.");

        let stdin = child.child_mut().stdin.take();
        let prompt = command.stdin;
        let feeding = tokio::spawn(async move {
            if let Some(mut stdin) = stdin {
                // An agent that exits without reading its prompt gives EPIPE: not our failure.
                let _ = stdin.write_all(&prompt).await;
                let _ = stdin.shutdown().await;
            }
        });
        let stderr_capture = child
            .child_mut()
            .stderr
            .take()
            .map(|s| tokio::spawn(capture_stderr(s, self.sd.stderr_log(), turn)));
        let Some(stdout) = child.child_mut().stdout.take() else {
            let _ = child.terminate(TIMEOUT_GRACE).await;
            return TurnEnd::with(ExitStatus::Failed, Some("the agent's stdout was not captured".into()));
        };

        let mut parser = (self.parser_for)(self.spec.backend);
        let mut reader = LineReader::new(stdout, MAX_FRAME_BYTES);
        let read_timeout = (self.spec.read_timeout_ms > 0).then(|| Duration::from_millis(self.spec.read_timeout_ms));
        let turn_deadline =
            (self.spec.turn_timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(self.spec.turn_timeout_ms));
        let mut last_output = Instant::now();
        // Both timers are set once: the read timeout's is moved on only when it fires, so a line costs no
        // timer work.
        let read_sleep = tokio::time::sleep(read_timeout.unwrap_or(Duration::ZERO));
        let turn_sleep = tokio::time::sleep_until(turn_deadline.unwrap_or_else(Instant::now));
        tokio::pin!(read_sleep, turn_sleep);
        let mut stop = loop {
            tokio::select! {
                // Cancel-safe: LineReader keeps partial lines in itself.
                line = reader.next_line() => match line {
                    Ok(Some(line)) => {
                        last_output = Instant::now();
                        // Everything this read brought in is parsed and journaled with one write.
                        self.queue_line(&mut *parser, line);
                        while let Some(line) = reader.buffered_line() {
                            self.queue_line(&mut *parser, line);
                        }
                        self.flush_journal();
                        self.refresh_state(false);
                    }
                    Ok(None) => break None,
                    Err(e) => {
                        tracing::warn!(error = %e, "Reading the agent's stdout failed.");
                        break None;
                    }
                },
                () = &mut read_sleep, if read_timeout.is_some() => {
                    let deadline = last_output + read_timeout.unwrap_or_default();
                    if deadline <= Instant::now() {
                        break Some(Stop::ReadTimeout);
                    }
                    read_sleep.as_mut().reset(deadline);
                }
                () = &mut turn_sleep, if turn_deadline.is_some() => break Some(Stop::TurnTimeout),
                _ = self.cancel.cancelled() => break Some(Stop::Cancelled),
            }
        };

        let status = match stop {
            None => {
                // stdout is closed; the process may still be finishing.
                tokio::select! {
                    status = child.wait() => status,
                    _ = sleep_until_opt(turn_deadline) => {
                        stop = Some(Stop::TurnTimeout);
                        child.terminate(TIMEOUT_GRACE).await
                    }
                    _ = self.cancel.cancelled() => {
                        stop = Some(Stop::Cancelled);
                        child.terminate(self.cancel_grace()).await
                    }
                }
            }
            Some(Stop::Cancelled) => child.terminate(self.cancel_grace()).await,
            Some(_) => child.terminate(TIMEOUT_GRACE).await,
        };
        if stop.is_some() {
            // Whatever the agent printed before it died still counts (briefly: a process outside the
            // group may hold the pipe).
            let drain = async {
                while let Ok(Some(line)) = reader.next_line().await {
                    self.queue_line(&mut *parser, line);
                    self.flush_journal();
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        }
        feeding.abort();
        // Nothing of the agent's group stays behind. As a child subreaper (the real supervisor process),
        // this process also reaps the group's orphans; it waits for no other child at this point.
        let subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
        process_group::sweep_group(pgid, SWEEP_GRACE, subreaper).await;
        if subreaper {
            process_group::reap_adopted_children();
        }
        let stderr_tail = match stderr_capture {
            Some(task) => tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        if let Err(e) = self.sd.update_state(|s| {
            if s.turn == turn {
                s.agent = None;
                s.pid = None;
                s.pgid = None;
            }
        }) {
            tracing::warn!(error = %e, "Cannot clear the agent process from state.json.");
        }

        let (exit_code, described) = match &status {
            Ok(s) => (s.code(), process_group::describe_exit(s)),
            Err(e) => (None, format!("could not be waited for: {e}")),
        };
        let (events, outcome) = parser.finish(exit_code, Utc::now());
        for event in events {
            self.emit_agent_event(event);
        }
        let mut end = TurnEnd {
            exit_code,
            ..TurnEnd::default()
        };
        match stop {
            Some(Stop::Cancelled) => {
                end.status = Some(ExitStatus::Cancelled);
                end.error = Some(self.cancel_reason("cancelled"));
            }
            Some(Stop::ReadTimeout) => {
                end.status = Some(ExitStatus::TimedOut);
                end.error = Some(format!(
                    "no output from the agent for {} ms (read timeout); the agent was stopped",
                    self.spec.read_timeout_ms
                ));
            }
            Some(Stop::TurnTimeout) => {
                end.status = Some(ExitStatus::TimedOut);
                end.error = Some(format!(
                    "the turn ran longer than {} ms (turn timeout); the agent was stopped",
                    self.spec.turn_timeout_ms
                ));
            }
            None => match outcome.status {
                OutcomeStatus::Succeeded => end.status = Some(ExitStatus::Succeeded),
                OutcomeStatus::InputRequired => end.status = Some(ExitStatus::InputRequired),
                OutcomeStatus::Failed => {
                    end.status = Some(ExitStatus::Failed);
                    let mut error = outcome
                        .error
                        .clone()
                        .unwrap_or_else(|| format!("the agent {described}"));
                    if !stderr_tail.is_empty() {
                        error.push_str("\nstderr:\n");
                        error.push_str(&stderr_tail.join("\n"));
                    }
                    end.error = Some(error);
                }
            },
        }
        end.outcome = outcome;
        end
    }

    /// Parses one line of the agent's output and queues its events in the journal (a turn end is
    /// written and synced at once); [`flush_journal`](Self::flush_journal) writes the rest.
    fn queue_line(&mut self, parser: &mut dyn agent::OutputParser, line: Line) {
        self.queue_events = true;
        match line {
            Line::Complete(bytes) => {
                for event in parser.feed_line(&bytes, Utc::now()) {
                    self.emit_agent_event(event);
                }
            }
            Line::TooLong { len } => self.info(
                LogLevel::Warn,
                LogEventKind::Warn,
                format!("an agent output line of {len} bytes exceeded the {MAX_FRAME_BYTES}-byte limit and was cut"),
            ),
        }
        self.queue_events = false;
    }

    /// Writes the queued journal lines (a write failure is logged; the turn goes on).
    fn flush_journal(&mut self) {
        if let Err(e) = self.journal.flush() {
            tracing::error!(error = %e, "Cannot append to the journal.");
        }
    }

    fn lease_expired(&self) -> bool {
        self.lease_expired
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Why a cancelled turn ended, for its `session_exit`.
    fn cancel_reason(&self, what: &str) -> String {
        match self.spec.lease_ms.filter(|_| self.lease_expired()) {
            Some(ms) => format!(
                "{what}: no controller was in touch with this host for {ms} ms (lease expired); the controller \
                 treats the session as lost and retries it elsewhere"
            ),
            None => what.to_string(),
        }
    }

    fn cancel_grace(&self) -> Duration {
        if self.lease_expired() {
            return Duration::from_millis(itervox_protocol::worker::LEASE_KILL_GRACE_MS);
        }
        match read_file::<CancelRequest>(&self.sd.cancel()) {
            Ok(Some(c)) if c.turn == self.order.turn => Duration::from_millis(c.grace_ms),
            _ => DEFAULT_CANCEL_GRACE,
        }
    }

    /// Writes exit.json and the state, then journals input_required (when asked) and session_exit, then
    /// runs after_run.
    async fn finish(&mut self, end: TurnEnd) {
        let status = end.status.unwrap_or(ExitStatus::Failed);
        if let Some(r) = end.outcome.agent_session_ref.clone() {
            self.agent_session_ref = Some(r);
        }
        let workspace = self.workspace();
        let question = (status == ExitStatus::InputRequired).then(|| end.outcome.question.clone().unwrap_or_default());
        let exit_seq = self.journal.next_seq() + u64::from(question.is_some());
        let exit = SessionExit {
            session_id: self.session_id.clone(),
            seq: exit_seq,
            turn: self.order.turn,
            status,
            exit_code: end.exit_code,
            error: end.error,
            branch: current_branch(&workspace),
            pr_url: end.outcome.pr_url.clone(),
            rate_limit_reset_at: end.outcome.rate_limit_reset_at.map(crate::timestamp::rfc3339),
            rate_limited: end.outcome.rate_limited,
        };
        if let Err(e) = crate::atomic_file::write_json(&self.sd.exit(), &exit) {
            tracing::error!(error = %e, "Cannot write exit.json.");
        }
        let (turn, session_ref, q) = (self.order.turn, self.agent_session_ref.clone(), question.clone());
        if let Err(e) = self.sd.update_state(|s| {
            if s.turn == turn {
                s.status = Phase::Exited;
                s.last_seq = exit_seq;
                if session_ref.is_some() {
                    s.agent_session_ref = session_ref;
                }
                s.agent = None;
                s.pid = None;
                s.pgid = None;
                s.pending_question = q;
            }
        }) {
            tracing::error!(error = %e, "Cannot record the exit in state.json.");
        }
        if let Some(context) = question {
            let session_id = self.session_id.clone();
            self.emit(|seq| {
                SessionEvent::InputRequired(InputRequiredEvent {
                    session_id,
                    seq,
                    context,
                })
            });
        }
        let exit_event = exit.clone();
        self.emit(|_| SessionEvent::SessionExit(exit_event));
        if let Err(e) = self.journal.sync() {
            tracing::error!(error = %e, "Cannot sync the journal.");
        }
        tracing::info!(status = ?exit.status, turn, "Turn ended.");
        let _ = std::fs::remove_file(self.sd.cancel());

        if let Some(script) = self.spec.hooks.after_run.clone().filter(|s| !s.trim().is_empty())
            && workspace.is_dir()
        {
            let run = run_hook(
                HookKind::AfterRun,
                &script,
                &self.hook_ctx(&workspace),
                &CancellationToken::new(),
            )
            .await;
            if !run.succeeded() {
                tracing::warn!(result = %run.describe_result(), "after_run failed (ignored).");
            }
            for entry in run.log_entries(Utc::now()) {
                self.emit_log(entry);
            }
            if let Err(e) = self.journal.sync() {
                tracing::error!(error = %e, "Cannot sync the journal.");
            }
            self.refresh_state(true);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Copies the agent's stderr into stderr.log (capped) and returns its last lines.
async fn capture_stderr(mut stderr: tokio::process::ChildStderr, path: PathBuf, turn: u32) -> Vec<String> {
    use std::io::Write;
    let mut file = fs_err::OpenOptions::new().create(true).append(true).open(&path).ok();
    let mut written = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map(|m| m.len())
        .unwrap_or(0);
    if let Some(f) = file.as_mut()
        && written < STDERR_CAP_BYTES
    {
        let header = format!("--- turn {turn} ---\n");
        let _ = f.write_all(header.as_bytes());
        written += header.len() as u64;
    }
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(f) = file.as_mut()
            && written < STDERR_CAP_BYTES
        {
            let take = (STDERR_CAP_BYTES - written).min(n as u64) as usize;
            let _ = f.write_all(&buf[..take]);
            written += take as u64;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 16 * 1024 {
            tail.drain(..tail.len() - 8 * 1024);
        }
    }
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].to_vec()
}

#[cfg(test)]
mod tests;

/// The parser numbers results within one agent process ("Turn 1 ended: …"); the journal shows the
/// session's turn instead, and the result number only when a process reported more than one.
fn session_turn_message(message: &str, session_turn: u32) -> String {
    let Some(rest) = message.strip_prefix("Turn ") else {
        return message.to_string();
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let Ok(result) = rest[..digits].parse::<u32>() else {
        return message.to_string();
    };
    let tail = &rest[digits..];
    if result > 1 {
        format!("Turn {session_turn} (result {result}){tail}")
    } else {
        format!("Turn {session_turn}{tail}")
    }
}

#[cfg(test)]
mod turn_message_tests {
    use super::session_turn_message;

    #[test]
    fn uses_the_session_turn() {
        assert_eq!(
            session_turn_message("Turn 1 ended: 5 input tokens", 3),
            "Turn 3 ended: 5 input tokens"
        );
        assert_eq!(
            session_turn_message("Turn 2 ended with an error: x", 1),
            "Turn 1 (result 2) ended with an error: x"
        );
        assert_eq!(session_turn_message("Something else", 2), "Something else");
    }
}
