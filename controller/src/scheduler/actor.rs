//! The scheduler actor: the only code that holds `&mut` orchestration state. It loops over commands,
//! host-link events and its own timers (poll, due retries, housekeeping), applies the pure decisions of
//! `decide.rs`, starts runs as tasks, and publishes a snapshot after every change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use itervox_protocol::api::{
    ConfigInvalid, HistoryRow, HostRow, HostStatus, InputRequiredRow, OrchestratorState, RateLimits, Readiness,
    RetryRow, RunKind, RunningRow, TrackerErrorInfo, TrackerIssue,
};
use itervox_protocol::worker::{Backend, Cancel, Hooks, RequestBody, SessionExit};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::command::{Command, PollResult, Refusal, Reply, RunEvent, RunOutcome};
use super::decide::{self, AfterFailure, EligibilityView, Ineligible};
use super::prompt::{self, AgentChoice};
use super::run::{self, RunMode, RunSpec, Totals};
use super::settings::SettingsChange;
use super::snapshot::{self, rfc3339};
use super::{SchedulerOptions, SnapshotFrame};
use crate::config::Workflow;
use crate::hosts::link::{Connector, HostLink, LinkEvent, LinkSettings};
use crate::hosts::local::{LOCAL_HOST, LocalConnector, find_worker_binary};
use crate::hosts::pool::{HostView, choose_host};
use crate::issue_logs::LogHub;
use crate::store::{InputRecord, OverrideRecord, PausedRecord, RetryRecord, RunRecord, RunState, StoreHandle};
use crate::tracker::{Issue, SharedTracker, TrackerError};

/// Why the scheduler stopped a run; decides what happens after it ends.
#[derive(Debug, Clone, PartialEq)]
enum StopReason {
    /// `POST /cancel`: pause, keep the session for resume.
    UserCancel,
    /// `POST /terminate`: release without pausing.
    Terminate,
    /// The tracker issue reached a terminal state.
    Terminal(String),
    /// The tracker issue left the active states (or disappeared).
    LeftActive(String),
    /// No progress for `stall_timeout_ms`.
    Stalled,
    /// The host was unreachable longer than `host_lost_after_ms`.
    HostLost,
    /// The host was removed from the pool.
    HostRemoved,
    /// Workspaces are being cleared.
    Clearing,
}

#[derive(Debug)]
struct RunEntry {
    record: RunRecord,
    issue: Issue,
    cancel: CancellationToken,
    stop: Option<StopReason>,
    last_progress: Instant,
    last_event: Option<(String, String, DateTime<Utc>)>,
    subagents: u32,
}

#[derive(Debug)]
struct HostEntry {
    name: String,
    description: String,
    link: HostLink,
    draining: bool,
    /// When `Some`, the host is being removed once `draining` finishes (true) or at once (false).
    removing: bool,
}

/// How often housekeeping (stall and lost-host checks, snapshot of elapsed times) runs.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Snapshots are published at most this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// History rows kept in the snapshot.
const HISTORY_ROWS: usize = 200;

pub(super) struct Actor {
    workflow: Workflow,
    tracker: SharedTracker,
    store: StoreHandle,
    hub: LogHub,
    cmd_tx: mpsc::Sender<Command>,
    snapshot_tx: watch::Sender<Arc<SnapshotFrame>>,
    tracker_tx: watch::Sender<SharedTracker>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    dry_run: bool,
    demo_mode: bool,
    worker_binary: Option<PathBuf>,
    cancel_grace: Duration,
    watch: Option<crate::config::watch::WatchHandle>,

    link_tx: mpsc::UnboundedSender<(String, LinkEvent)>,
    link_rx: Option<mpsc::UnboundedReceiver<(String, LinkEvent)>>,

    issues: BTreeMap<String, Issue>,
    runs: BTreeMap<String, RunEntry>,
    by_issue: BTreeMap<String, String>,
    retries: BTreeMap<String, RetryRecord>,
    paused: BTreeMap<String, PausedRecord>,
    inputs: BTreeMap<String, InputRecord>,
    overrides: BTreeMap<String, OverrideRecord>,
    issue_hosts: BTreeMap<String, String>,
    open_prs: BTreeMap<String, String>,
    forced: BTreeSet<String>,
    /// Issues whose next run should resume their paused agent session.
    resume_sessions: BTreeMap<String, PausedRecord>,
    /// State moves written by the controller that the tracker does not show yet.
    pending_moves: BTreeMap<String, String>,
    reasons: BTreeMap<String, String>,
    history: VecDeque<HistoryRow>,
    totals: (u64, u64, Option<f64>),
    hosts: Vec<HostEntry>,
    rr_cursor: usize,

    poll_in_flight: bool,
    poll_queued: bool,
    next_poll: Instant,
    consecutive_poll_failures: u32,
    last_poll_ok: bool,
    last_tracker_error: Option<TrackerErrorInfo>,
    config_invalid: Option<ConfigInvalid>,
    draining: bool,

    dirty: bool,
    version: u64,
    last_publish: Instant,
}

fn log_entry(level: LogLevel, message: impl Into<String>) -> IssueLogEntry {
    let kind = match level {
        LogLevel::Info => LogEventKind::Info,
        LogLevel::Warn => LogEventKind::Warn,
        LogLevel::Error => LogEventKind::Error,
    };
    IssueLogEntry::new(level, kind, message, rfc3339(&Utc::now()))
}

fn reply<T>(tx: Reply<T>, v: Result<T, Refusal>) {
    let _ = tx.send(v);
}

/// A short, readable session id: the identifier plus random hex.
fn new_session_id(identifier: &str) -> String {
    let clean: String = identifier
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .take(40)
        .collect();
    format!("{clean}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

impl Actor {
    pub(super) fn new(
        options: SchedulerOptions,
        cmd_tx: mpsc::Sender<Command>,
        snapshot_tx: watch::Sender<Arc<SnapshotFrame>>,
        tracker_tx: watch::Sender<SharedTracker>,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> Actor {
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let store = options.store.clone();
        let load = |what: &str, e: crate::store::StoreError| {
            tracing::error!(error = %e, "Could not load {what} from the state database");
        };
        let retries = store
            .with(|s| s.retries())
            .unwrap_or_else(|e| {
                load("the retry queue", e);
                Vec::new()
            })
            .into_iter()
            .map(|r| (r.identifier.clone(), r))
            .collect();
        let paused = store
            .with(|s| s.paused())
            .unwrap_or_else(|e| {
                load("paused issues", e);
                Vec::new()
            })
            .into_iter()
            .map(|r| (r.identifier.clone(), r))
            .collect();
        let inputs = store
            .with(|s| s.inputs())
            .unwrap_or_else(|e| {
                load("pending input", e);
                Vec::new()
            })
            .into_iter()
            .map(|r| (r.identifier.clone(), r))
            .collect();
        let overrides = store.with(|s| s.overrides()).unwrap_or_default().into_iter().collect();
        let issue_hosts = store
            .with(|s| s.issue_hosts())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let open_prs = store.with(|s| s.open_prs()).unwrap_or_default().into_iter().collect();
        let history = store
            .with(|s| s.history(HISTORY_ROWS))
            .unwrap_or_default()
            .iter()
            .map(snapshot::history_row)
            .collect();
        let totals = store.with(|s| s.totals()).unwrap_or((0, 0, None));
        let now = Instant::now();
        Actor {
            workflow: options.workflow,
            tracker: options.tracker,
            store,
            hub: options.hub,
            cmd_tx,
            snapshot_tx,
            tracker_tx,
            cancel,
            tasks,
            dry_run: options.dry_run,
            demo_mode: options.demo_mode,
            worker_binary: options.worker_binary,
            cancel_grace: options.cancel_grace,
            watch: options.watch,
            link_tx,
            link_rx: Some(link_rx),
            issues: BTreeMap::new(),
            runs: BTreeMap::new(),
            by_issue: BTreeMap::new(),
            retries,
            paused,
            inputs,
            overrides,
            issue_hosts,
            open_prs,
            forced: BTreeSet::new(),
            resume_sessions: BTreeMap::new(),
            pending_moves: BTreeMap::new(),
            reasons: BTreeMap::new(),
            history,
            totals,
            hosts: Vec::new(),
            rr_cursor: 0,
            poll_in_flight: false,
            poll_queued: false,
            next_poll: now,
            consecutive_poll_failures: 0,
            last_poll_ok: false,
            last_tracker_error: None,
            config_invalid: None,
            draining: false,
            dirty: true,
            version: 0,
            last_publish: now - PUBLISH_EVERY,
        }
    }

    /// Connects the hosts, re-attaches to sessions that were running, and publishes the first snapshot,
    /// so the API answers with real state as soon as the handle exists.
    pub(super) fn start(&mut self) {
        self.setup_hosts();
        self.reattach_runs();
        self.publish(true);
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut link_rx = self.link_rx.take().expect("link receiver");
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_wake();
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                Some((host, event)) = link_rx.recv() => self.on_link(host, event),
                _ = tokio::time::sleep_until(wake) => self.on_wake(),
                _ = housekeeping.tick() => self.housekeeping(),
            }
            if self.dirty {
                self.publish(false);
            }
        }
        for h in &self.hosts {
            h.link.shutdown();
        }
        self.publish(true);
    }

    fn config(&self) -> &crate::config::Config {
        &self.workflow.config
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_poll;
        let now_utc = Utc::now();
        if let Some(due) = self
            .retries
            .values()
            .filter(|r| !self.by_issue.contains_key(&r.identifier))
            .map(|r| r.due_at)
            .min()
        {
            let ms = (due - now_utc).num_milliseconds().max(0) as u64;
            wake = wake.min(Instant::now() + Duration::from_millis(ms));
        }
        if self.dirty {
            wake = wake.min(self.last_publish + PUBLISH_EVERY);
        }
        wake
    }

    // ----- hosts -----

    fn link_settings(&self) -> LinkSettings {
        let ssh = &self.config().ssh;
        LinkSettings {
            workspace_root: self.config().workspace.root.clone(),
            handshake_timeout: Duration::from_millis(ssh.connect_timeout_ms.max(1000) * 2),
            ping_interval: Duration::from_millis((ssh.keepalive_interval_ms / 3).clamp(500, 5000)),
            ..LinkSettings::default()
        }
    }

    fn connector_for(&self, name: &str) -> Result<Arc<dyn Connector>, String> {
        if name == LOCAL_HOST {
            let worker = self
                .worker_binary
                .clone()
                .or_else(|| find_worker_binary(&self.config().ssh.worker_path))
                .ok_or_else(|| {
                    "itervox-worker was not found next to the controller or on PATH (set ssh.worker_path)".to_string()
                })?;
            return Ok(Arc::new(LocalConnector::new(worker)));
        }
        crate::hosts::remote_connector(name, self.config())
    }

    fn add_host(&mut self, name: &str, description: &str) {
        let link = match self.connector_for(name) {
            Ok(connector) => HostLink::spawn(
                name.to_string(),
                connector,
                self.link_settings(),
                self.link_tx.clone(),
                self.cancel.child_token(),
            ),
            Err(e) => {
                // A host we cannot even try to reach still shows in the pool, down, with the reason.
                tracing::error!(host = name, error = %e, "Host cannot be connected");
                HostLink::spawn(
                    name.to_string(),
                    Arc::new(FailingConnector(e)),
                    self.link_settings(),
                    self.link_tx.clone(),
                    self.cancel.child_token(),
                )
            }
        };
        self.hosts.push(HostEntry {
            name: name.to_string(),
            description: description.to_string(),
            link,
            draining: false,
            removing: false,
        });
    }

    fn setup_hosts(&mut self) {
        let names: Vec<(String, String)> = if self.config().agent.ssh_hosts.is_empty() {
            vec![(LOCAL_HOST.to_string(), "this machine".to_string())]
        } else {
            self.config()
                .agent
                .ssh_hosts
                .iter()
                .map(|h| {
                    let d = self
                        .config()
                        .agent
                        .ssh_host_descriptions
                        .get(h)
                        .cloned()
                        .unwrap_or_default();
                    (h.clone(), d)
                })
                .collect()
        };
        for (name, description) in names {
            self.add_host(&name, &description);
        }
    }

    fn host(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    fn running_on(&self, host: &str) -> u32 {
        self.runs.values().filter(|r| r.record.host == host).count() as u32
    }

    fn host_views(&self) -> Vec<HostView> {
        let cap = self.config().agent.max_concurrent_agents_per_host;
        self.hosts
            .iter()
            .filter(|h| !h.removing)
            .map(|h| {
                let st = h.link.status();
                HostView {
                    name: h.name.clone(),
                    up: h.link.is_up(),
                    draining: h.draining,
                    running: self.running_on(&h.name),
                    capacity: cap,
                    load1: st.load1,
                    cpus: st.cpus,
                }
            })
            .collect()
    }

    fn on_link(&mut self, host: String, event: LinkEvent) {
        self.dirty = true;
        match event {
            LinkEvent::Connected(hello) => {
                tracing::info!(host = %host, worker = %hello.worker_version, sessions = hello.sessions.len(), "Host connected");
                // Sessions this controller gave up on while the host was away are cancelled now, so an
                // issue never runs twice.
                let stale = self.store.with(|s| s.stale_sessions(&host)).unwrap_or_default();
                if !stale.is_empty()
                    && let Some(h) = self.host(&host)
                {
                    let link = h.link.clone();
                    let store = self.store.clone();
                    let grace = self.cancel_grace;
                    let host2 = host.clone();
                    self.tasks.spawn(async move {
                        for session in stale {
                            let body = RequestBody::Cancel(Cancel { session_id: session.clone(), grace_ms: grace.as_millis() as u64 });
                            match link.call::<serde_json::Value>(body).await {
                                Ok(_) => {
                                    tracing::info!(host = %host2, session = %session, "Cancelled a stale session");
                                    let _ = store.with(|s| s.remove_stale_session(&host2, &session));
                                }
                                Err(e) if e.refused_code().is_some() => {
                                    let _ = store.with(|s| s.remove_stale_session(&host2, &session));
                                }
                                Err(e) => tracing::warn!(host = %host2, session = %session, error = %e, "Could not cancel a stale session yet"),
                            }
                        }
                    });
                }
                self.dispatch_pass();
            }
            LinkEvent::Down(reason) => {
                tracing::warn!(host = %host, reason = %reason, "Host unreachable");
            }
            LinkEvent::Health => {}
        }
    }

    // ----- timers -----

    fn on_wake(&mut self) {
        let now = Instant::now();
        if now >= self.next_poll {
            self.next_poll = now + Duration::from_millis(self.config().polling.interval_ms.max(100));
            self.start_poll(true);
        }
        let now_utc = Utc::now();
        let due: Vec<String> = self
            .retries
            .values()
            .filter(|r| r.due_at <= now_utc && !self.by_issue.contains_key(&r.identifier))
            .map(|r| r.identifier.clone())
            .collect();
        if !due.is_empty() && !self.poll_in_flight {
            self.start_poll(false);
        }
    }

    fn housekeeping(&mut self) {
        // Running rows show elapsed time; keep them fresh.
        if !self.runs.is_empty() {
            self.dirty = true;
        }
        let stall_ms = self.config().agent.stall_timeout_ms;
        let stalled: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                r.stop.is_none() && decide::is_stalled(r.last_progress.elapsed().as_millis() as u64, stall_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for run_id in stalled {
            self.stop_run(&run_id, StopReason::Stalled);
        }
        // Hosts unreachable for too long: their sessions become new attempts elsewhere. The margin makes
        // sure the host side has given the session up first (it stops sessions whose controller has been
        // silent for host_lost_after_ms).
        let lost_after = Duration::from_millis(self.config().ssh.host_lost_after_ms);
        let margin = Duration::from_secs(5).max(lost_after / 10);
        let lost_hosts: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| {
                let st = h.link.status();
                !h.link.is_up() && st.down_since.is_some_and(|d| d.elapsed() > lost_after + margin)
            })
            .map(|h| h.name.clone())
            .collect();
        for host in lost_hosts {
            let lost: Vec<String> = self
                .runs
                .iter()
                .filter(|(_, r)| r.record.host == host && r.stop.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            for run_id in lost {
                self.stop_run(&run_id, StopReason::HostLost);
            }
        }
        // Draining hosts are removed once empty.
        let done: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| h.removing && self.running_on(&h.name) == 0)
            .map(|h| h.name.clone())
            .collect();
        for name in done {
            if let Some(i) = self.hosts.iter().position(|h| h.name == name) {
                let h = self.hosts.remove(i);
                h.link.shutdown();
                self.dirty = true;
            }
        }
    }

    // ----- polling -----

    fn start_poll(&mut self, full: bool) {
        if self.poll_in_flight {
            self.poll_queued |= full;
            return;
        }
        self.poll_in_flight = true;
        let tracker = self.tracker.clone();
        let t = &self.config().tracker;
        let states: Vec<String> = t.active_states.iter().chain(t.backlog_states.iter()).cloned().collect();
        let now_utc = Utc::now();
        let mut tracked: BTreeSet<String> = self.by_issue.keys().cloned().collect();
        tracked.extend(self.inputs.keys().cloned());
        let due: BTreeSet<String> = self
            .retries
            .values()
            .filter(|r| r.due_at <= now_utc)
            .map(|r| r.identifier.clone())
            .collect();
        tracked.extend(due.iter().cloned());
        let comments_for: Vec<String> = if self.config().agent.inline_input {
            Vec::new()
        } else {
            self.inputs
                .values()
                .filter(|i| i.reply.is_none())
                .map(|i| i.identifier.clone())
                .collect()
        };
        let tx = self.cmd_tx.clone();
        self.tasks.spawn(async move {
            let candidates = if full {
                tracker.fetch_candidates(&states).await
            } else {
                Ok(Vec::new())
            };
            let have: BTreeSet<String> = candidates
                .as_ref()
                .map(|c| c.iter().map(|i| i.identifier.clone()).collect())
                .unwrap_or_default();
            let ask: Vec<String> = tracked.into_iter().filter(|id| !have.contains(id)).collect();
            let tracked = if candidates.is_ok() || !full {
                tracker.fetch_by_identifiers(&ask).await
            } else {
                Err(TrackerError::Transport(
                    "skipped after the candidate fetch failed".into(),
                ))
            };
            let mut with_comments = Vec::new();
            for id in comments_for {
                if let Ok(Some(issue)) = tracker.fetch_issue(&id).await {
                    with_comments.push(issue);
                }
            }
            let _ = tx
                .send(Command::PollDone(PollResult {
                    candidates,
                    tracked,
                    tracked_asked: ask,
                    with_comments,
                    full,
                }))
                .await;
        });
    }

    fn record_tracker_error(&mut self, op: &str, e: &TrackerError) {
        self.consecutive_poll_failures += 1;
        let reset_at = match e {
            TrackerError::RateLimited { reset_at } => reset_at.map(|t| rfc3339(&t)),
            _ => None,
        };
        self.last_tracker_error = Some(TrackerErrorInfo {
            at: rfc3339(&Utc::now()),
            op: op.into(),
            kind: e.kind().into(),
            message: e.to_string(),
            reset_at,
            consecutive_failures: self.consecutive_poll_failures,
        });
        tracing::warn!(op, error = %e, failures = self.consecutive_poll_failures, "Tracker request failed");
    }

    fn on_poll(&mut self, result: PollResult) {
        self.poll_in_flight = false;
        self.dirty = true;
        let tracker_cfg = self.config().tracker.clone();
        match result.candidates {
            Ok(candidates) => {
                if result.full {
                    self.consecutive_poll_failures = 0;
                    self.last_poll_ok = true;
                    self.last_tracker_error = None;
                    self.issues = candidates.into_iter().map(|i| (i.identifier.clone(), i)).collect();
                }
            }
            Err(e) => {
                self.last_poll_ok = false;
                self.record_tracker_error("poll", &e);
                if self.poll_queued {
                    self.poll_queued = false;
                    self.start_poll(true);
                }
                return;
            }
        }
        let tracked_ok = result.tracked.is_ok();
        match result.tracked {
            Ok(tracked) => {
                for i in tracked {
                    self.issues.insert(i.identifier.clone(), i);
                }
            }
            Err(e) => {
                self.record_tracker_error("refresh", &e);
            }
        }
        // Pending state moves: once the tracker shows them, stop overlaying.
        let shown: Vec<String> = self
            .pending_moves
            .iter()
            .filter(|(id, state)| {
                self.issues
                    .get(*id)
                    .is_some_and(|i| i.state.eq_ignore_ascii_case(state))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in shown {
            self.pending_moves.remove(&id);
        }

        // Reconcile running issues with the tracker.
        let working = tracker_cfg.working_state.clone();
        let mut stops = Vec::new();
        for (run_id, r) in &self.runs {
            if r.stop.is_some() || r.record.kind == "reviewer" {
                continue;
            }
            let id = &r.record.identifier;
            match self.issues.get(id) {
                Some(issue) => {
                    let active = tracker_cfg.is_active(&issue.state)
                        || working.as_deref().is_some_and(|w| w.eq_ignore_ascii_case(&issue.state));
                    if tracker_cfg.is_terminal(&issue.state) {
                        stops.push((run_id.clone(), StopReason::Terminal(issue.state.clone())));
                    } else if !active {
                        stops.push((run_id.clone(), StopReason::LeftActive(issue.state.clone())));
                    }
                }
                None if tracked_ok && result.tracked_asked.contains(id) => {
                    stops.push((run_id.clone(), StopReason::LeftActive("deleted".into())));
                }
                None => {}
            }
        }
        for (run_id, reason) in stops {
            self.stop_run(&run_id, reason);
        }
        // Retries of issues that are gone or no longer active are dropped.
        let dropped: Vec<String> = self
            .retries
            .keys()
            .filter(|id| match self.issues.get(*id) {
                Some(i) => !tracker_cfg.is_active(&i.state),
                None => tracked_ok && result.tracked_asked.contains(id),
            })
            .cloned()
            .collect();
        for id in dropped {
            self.retries.remove(&id);
            let _ = self.store.with(|s| s.remove_retry(&id));
            self.note(
                &id,
                LogLevel::Info,
                "Retry dropped: the issue is no longer in an active state",
            );
        }
        // Human replies posted as tracker comments.
        for issue in result.with_comments {
            let Some(input) = self.inputs.get(&issue.identifier) else {
                continue;
            };
            let reply = issue.comments.iter().find(|c| {
                c.created_at.is_some_and(|t| t > input.queued_at)
                    && !c.body.contains("<!-- itervox:")
                    && !c.author.eq_ignore_ascii_case("itervox")
            });
            if let Some(c) = reply {
                let mut input = input.clone();
                input.reply = Some(c.body.clone());
                let _ = self.store.with(|s| s.set_input(&input));
                self.note(
                    &issue.identifier,
                    LogLevel::Info,
                    format!("Reply from {} found in the tracker", c.author),
                );
                self.inputs.insert(issue.identifier.clone(), input);
            }
        }
        self.dispatch_pass();
        if self.poll_queued {
            self.poll_queued = false;
            self.start_poll(true);
        }
    }

    // ----- dispatch -----

    fn dispatch_pass(&mut self) {
        self.dirty = true;
        if self.draining {
            return;
        }
        // Answered questions go first: they resume an existing session.
        let answered: Vec<String> = self
            .inputs
            .values()
            .filter(|i| i.reply.is_some() && !self.by_issue.contains_key(&i.identifier))
            .map(|i| i.identifier.clone())
            .collect();
        for id in answered {
            if (self.by_issue.len() as u32) >= self.config().agent.max_concurrent_agents {
                break;
            }
            self.dispatch_reply(&id);
        }

        let tracker_cfg = self.config().tracker.clone();
        let mut candidates: Vec<Issue> = self.issues.values().cloned().collect();
        candidates.sort_by(decide::dispatch_order);
        let now_utc = Utc::now();
        let mut reasons = BTreeMap::new();
        let mut host_exhausted = false;
        for issue in candidates {
            let id = issue.identifier.clone();
            let verdict = {
                let view = self.eligibility_view(&tracker_cfg, now_utc);
                decide::eligibility(&issue, &view)
            };
            let verdict = match verdict {
                Ok(()) if self.dry_run => Err(Ineligible::DryRun),
                Ok(()) if host_exhausted => Err(Ineligible::NoHostAvailable),
                v => v,
            };
            match verdict {
                Ok(()) => {
                    let prefer = self
                        .resume_sessions
                        .get(&id)
                        .and_then(|p| p.host.clone())
                        .or_else(|| self.retries.get(&id).and_then(|r| r.prefer_host.clone()))
                        .or_else(|| self.issue_hosts.get(&id).cloned());
                    let views = self.host_views();
                    match choose_host(
                        &views,
                        self.config().agent.dispatch_strategy,
                        &mut self.rr_cursor,
                        prefer.as_deref(),
                    ) {
                        Some(i) => {
                            let host = views[i].name.clone();
                            self.dispatch(issue, &host, RunKind::Worker);
                        }
                        None => {
                            host_exhausted = true;
                            reasons.insert(id, Ineligible::NoHostAvailable.reason());
                        }
                    }
                }
                Err(Ineligible::DryRun) => {
                    if self.reasons.get(&id).is_none_or(|r| r != "dry_run") {
                        tracing::info!(issue = %id, "Dry run: would dispatch");
                        self.note(&id, LogLevel::Info, "Dry run: this issue would be dispatched now");
                    }
                    reasons.insert(id, Ineligible::DryRun.reason());
                }
                Err(r) => {
                    reasons.insert(id, r.reason());
                }
            }
        }
        self.reasons = reasons;
    }

    fn eligibility_view<'a>(
        &'a self,
        tracker: &'a crate::config::TrackerConfig,
        now: DateTime<Utc>,
    ) -> EligibilityView<'a> {
        let mut running_by_state: BTreeMap<String, u32> = BTreeMap::new();
        for r in self.runs.values() {
            if let Some(s) = &r.record.issue_state {
                *running_by_state.entry(s.to_lowercase()).or_default() += 1;
            }
        }
        EligibilityView {
            tracker: Some(tracker),
            running: self.by_issue.keys().map(String::as_str).collect(),
            paused: self.paused.keys().map(String::as_str).collect(),
            input_required: self.inputs.keys().map(String::as_str).collect(),
            retry_waiting: self
                .retries
                .values()
                .filter(|r| r.due_at > now)
                .map(|r| r.identifier.as_str())
                .collect(),
            open_pr: self.open_prs.keys().map(String::as_str).collect(),
            forced: self.forced.iter().map(String::as_str).collect(),
            pending_write: self.pending_moves.keys().map(String::as_str).collect(),
            known_states: self
                .issues
                .values()
                .map(|i| (i.identifier.as_str(), i.state.as_str()))
                .collect(),
            max_concurrent: self.config().agent.max_concurrent_agents,
            running_count: self.runs.len() as u32,
            per_state_caps: self.config().agent.max_concurrent_agents_by_state.clone(),
            running_by_state,
        }
    }

    fn agent_for(&self, identifier: &str, kind: RunKind) -> AgentChoice {
        let o = self.overrides.get(identifier);
        let profile = match kind {
            RunKind::Reviewer => self.config().agent.reviewer_profile.clone(),
            RunKind::Worker => o.and_then(|o| o.profile.clone()),
        };
        let backend = o
            .and_then(|o| o.backend.as_deref())
            .and_then(parse_backend)
            .filter(|_| kind == RunKind::Worker);
        prompt::choose_agent(self.config(), profile.as_deref(), backend)
    }

    fn spec_base(
        &self,
        identifier: &str,
        run_id: &str,
        session_id: &str,
        link: HostLink,
        mode: RunMode,
        choice: &AgentChoice,
        attempt: u32,
        issue: &Issue,
    ) -> RunSpec {
        let cfg = self.config();
        let mut env = BTreeMap::new();
        env.insert("ITERVOX_ATTEMPT".to_string(), attempt.to_string());
        env.insert("ITERVOX_ISSUE_IDENTIFIER".to_string(), identifier.to_string());
        RunSpec {
            run_id: run_id.to_string(),
            identifier: identifier.to_string(),
            session_id: session_id.to_string(),
            link,
            mode,
            backend: choice.backend,
            command: choice.command.clone(),
            env,
            permission_mode: choice.permission_mode,
            repo: cfg.workspace.repo.clone(),
            base_branch: cfg.workspace.base_branch.clone(),
            branch: issue
                .branch_name
                .clone()
                .filter(|b| !matches!(b.as_str(), "main" | "master" | "develop" | "HEAD" | ""))
                .unwrap_or_else(|| format!("itervox/{identifier}")),
            hooks: Hooks {
                after_create: cfg.hooks.after_create.clone(),
                before_run: cfg.hooks.before_run.clone(),
                after_run: cfg.hooks.after_run.clone(),
                before_remove: cfg.hooks.before_remove.clone(),
                timeout_ms: cfg.hooks.timeout_ms,
            },
            max_turns: cfg.agent.max_turns.max(1),
            turn_timeout_ms: cfg.agent.turn_timeout_ms,
            read_timeout_ms: cfg.agent.read_timeout_ms,
            continuation_prompt: prompt::continuation_prompt(issue),
            active_states: cfg.tracker.active_states.clone(),
            carried: Totals::default(),
            tracker: self.tracker.clone(),
            hub: self.hub.clone(),
            store: self.store.clone(),
            events: self.cmd_tx.clone(),
            cancel: self.cancel.child_token(),
            cancel_grace: self.cancel_grace,
        }
    }

    /// Starts a run of `issue` on `host`.
    fn dispatch(&mut self, issue: Issue, host: &str, kind: RunKind) {
        let id = issue.identifier.clone();
        let Some(link) = self.host(host).map(|h| h.link.clone()) else {
            return;
        };
        let attempt = self.retries.get(&id).map(|r| r.attempt).unwrap_or(1);
        let choice = self.agent_for(&id, kind);
        let resume = if kind == RunKind::Worker {
            self.resume_sessions.remove(&id)
        } else {
            None
        };
        let run_id = uuid::Uuid::new_v4().to_string();

        // Resume the paused agent session on its host when that is where we are going.
        let (mode, session_id, resumed) =
            match resume {
                Some(p) if p.host.as_deref() == Some(host) && p.session_id.is_some() => {
                    let session = p.session_id.clone().unwrap_or_default();
                    let from = self.store.with(|s| s.session_cursor(&session)).unwrap_or(0) + 1;
                    (
                        RunMode::Resume {
                            message: "You were paused by an operator and are now resumed. Continue the task.".into(),
                            from_seq: from,
                        },
                        session,
                        true,
                    )
                }
                _ => {
                    let rendered = match kind {
                    RunKind::Worker => prompt::render_prompt(&self.workflow, &choice, &issue, attempt),
                    RunKind::Reviewer => prompt::render_prompt(&self.workflow, &choice, &issue, attempt).map(|p| {
                        format!(
                            "{p}\n\nYou are reviewing the work on branch itervox/{id}{}. Review the changes, report \
                             problems precisely, and do not push new commits.",
                            self.open_prs.get(&id).map(|u| format!(" (pull request {u})")).unwrap_or_default()
                        )
                    }),
                };
                    match rendered {
                        Ok(prompt) => (RunMode::Fresh { prompt }, new_session_id(&id), false),
                        Err(e) => {
                            let msg = format!("The prompt could not be rendered: {e}");
                            self.note(&id, LogLevel::Error, &msg);
                            self.schedule_after_failure(&id, attempt, msg, None, Some(host.to_string()));
                            return;
                        }
                    }
                }
            };
        self.retries.remove(&id);
        let _ = self.store.with(|s| s.remove_retry(&id));
        self.forced.remove(&id);

        let now = Utc::now();
        let record = RunRecord {
            run_id: run_id.clone(),
            identifier: id.clone(),
            title: Some(issue.title.clone()),
            attempt,
            kind: if kind == RunKind::Reviewer {
                "reviewer".into()
            } else {
                "worker".into()
            },
            host: host.to_string(),
            session_id: session_id.clone(),
            workspace: None,
            backend: choice.backend.as_str().to_string(),
            profile: choice.profile.clone(),
            status: RunState::Running,
            started_at: now,
            finished_at: None,
            turn_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            error: None,
            last_seq: 0,
            agent_ref: None,
            pr_url: None,
            branch: None,
            issue_state: Some(issue.state.clone()),
            resumed,
        };
        if let Err(e) = self.store.with(|s| {
            s.insert_run(&record)?;
            s.set_issue_host(&id, host)
        }) {
            tracing::error!(error = %e, "Could not record the run; not dispatching");
            return;
        }
        self.issue_hosts.insert(id.clone(), host.to_string());
        let spec = self.spec_base(&id, &run_id, &session_id, link, mode, &choice, attempt, &issue);
        let cancel = spec.cancel.clone();
        self.note(
            &id,
            LogLevel::Info,
            format!(
                "Dispatched {}attempt {attempt} to {host} ({}{}, session {session_id})",
                if kind == RunKind::Reviewer { "reviewer " } else { "" },
                choice.backend.as_str(),
                choice
                    .profile
                    .as_ref()
                    .map(|p| format!(", profile {p}"))
                    .unwrap_or_default()
            ),
        );
        // Move the issue to the working state (not for reviewers, and only when it is elsewhere).
        if kind == RunKind::Worker
            && let Some(ws) = self.config().tracker.working_state.clone()
            && !issue.state.eq_ignore_ascii_case(&ws)
        {
            self.write_state(&id, &ws, false);
        }
        self.by_issue.insert(id.clone(), run_id.clone());
        self.runs.insert(
            run_id,
            RunEntry {
                record,
                issue,
                cancel,
                stop: None,
                last_progress: Instant::now(),
                last_event: None,
                subagents: 0,
            },
        );
        self.tasks.spawn(run::execute(spec, self.cancel.clone()));
        self.dirty = true;
    }

    /// Resumes the agent session of an answered question.
    fn dispatch_reply(&mut self, id: &str) {
        let Some(input) = self.inputs.get(id).cloned() else {
            return;
        };
        let Some(reply_text) = input.reply.clone() else { return };
        let host_ok = self.host(&input.host).is_some_and(|h| h.link.is_up() && !h.removing);
        let host_exists = self.host(&input.host).is_some_and(|h| !h.removing);
        if !host_ok {
            if host_exists {
                // Wait for the host that holds the session.
                self.reasons.insert(id.to_string(), "waiting_for_host".into());
                return;
            }
            // The host is gone: start over elsewhere with the question and answer in the prompt.
            let Some(issue) = self.issues.get(id).cloned() else {
                return;
            };
            let choice = self.agent_for(id, RunKind::Worker);
            let views = self.host_views();
            let Some(i) = choose_host(&views, self.config().agent.dispatch_strategy, &mut self.rr_cursor, None) else {
                return;
            };
            let host = views[i].name.clone();
            let prompt = match prompt::render_with_reply(
                &self.workflow,
                &choice,
                &issue,
                input.attempt,
                &input.context,
                &reply_text,
            ) {
                Ok(p) => p,
                Err(e) => {
                    self.note(id, LogLevel::Error, format!("The prompt could not be rendered: {e}"));
                    return;
                }
            };
            self.inputs.remove(id);
            let _ = self.store.with(|s| s.remove_input(id));
            self.dispatch_with_mode(
                issue,
                &host,
                input.attempt,
                RunMode::Fresh { prompt },
                new_session_id(id),
                false,
            );
            return;
        }
        let Some(issue) = self.issues.get(id).cloned().or_else(|| {
            Some(Issue {
                id: id.to_string(),
                identifier: id.to_string(),
                title: id.to_string(),
                state: self.config().tracker.working_state.clone().unwrap_or_default(),
                ..Issue::default()
            })
        }) else {
            return;
        };
        self.inputs.remove(id);
        let _ = self.store.with(|s| s.remove_input(id));
        let from = self.store.with(|s| s.session_cursor(&input.session_id)).unwrap_or(0) + 1;
        let host = input.host.clone();
        self.dispatch_with_mode(
            issue,
            &host,
            input.attempt,
            RunMode::Resume {
                message: prompt::reply_prompt(&reply_text),
                from_seq: from,
            },
            input.session_id.clone(),
            true,
        );
    }

    fn dispatch_with_mode(
        &mut self,
        issue: Issue,
        host: &str,
        attempt: u32,
        mode: RunMode,
        session_id: String,
        resumed: bool,
    ) {
        let id = issue.identifier.clone();
        let Some(link) = self.host(host).map(|h| h.link.clone()) else {
            return;
        };
        let choice = self.agent_for(&id, RunKind::Worker);
        let run_id = uuid::Uuid::new_v4().to_string();
        let record = RunRecord {
            run_id: run_id.clone(),
            identifier: id.clone(),
            title: Some(issue.title.clone()),
            attempt,
            kind: "worker".into(),
            host: host.to_string(),
            session_id: session_id.clone(),
            workspace: None,
            backend: choice.backend.as_str().to_string(),
            profile: choice.profile.clone(),
            status: RunState::Running,
            started_at: Utc::now(),
            finished_at: None,
            turn_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            error: None,
            last_seq: 0,
            agent_ref: None,
            pr_url: None,
            branch: None,
            issue_state: Some(issue.state.clone()),
            resumed,
        };
        if let Err(e) = self.store.with(|s| s.insert_run(&record)) {
            tracing::error!(error = %e, "Could not record the run; not dispatching");
            return;
        }
        let spec = self.spec_base(&id, &run_id, &session_id, link, mode, &choice, attempt, &issue);
        self.note(
            &id,
            LogLevel::Info,
            format!("Resuming session {session_id} on {host} with the human's answer"),
        );
        let cancel = spec.cancel.clone();
        self.by_issue.insert(id.clone(), run_id.clone());
        self.runs.insert(
            run_id,
            RunEntry {
                record,
                issue,
                cancel,
                stop: None,
                last_progress: Instant::now(),
                last_event: None,
                subagents: 0,
            },
        );
        self.tasks.spawn(run::execute(spec, self.cancel.clone()));
        self.dirty = true;
    }

    /// Re-attaches to the runs that were running when the controller stopped.
    fn reattach_runs(&mut self) {
        let active = match self.store.with(|s| s.active_runs()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "Could not load running sessions from the state database");
                return;
            }
        };
        for record in active {
            let id = record.identifier.clone();
            let logs_seq = self.store.with(|s| s.max_log_seq(&record.session_id)).unwrap_or(0);
            let Some(link) = self.host(&record.host).map(|h| h.link.clone()) else {
                // Its host is no longer in the pool: the session is lost; try again elsewhere.
                let mut r = record.clone();
                r.status = RunState::Lost;
                r.finished_at = Some(Utc::now());
                r.error = Some(format!("host {} is no longer configured", record.host));
                let _ = self.store.with(|s| {
                    s.save_run(&r)?;
                    s.add_stale_session(&record.host, &record.session_id)
                });
                self.push_history(&r);
                self.schedule_retry_now(
                    &id,
                    record.attempt + 1,
                    "its host was removed while the controller was down".into(),
                );
                continue;
            };
            tracing::info!(issue = %id, host = %record.host, session = %record.session_id, "Re-attaching to a running session");
            let issue = Issue {
                id: id.clone(),
                identifier: id.clone(),
                title: record.title.clone().unwrap_or_default(),
                state: record.issue_state.clone().unwrap_or_default(),
                ..Issue::default()
            };
            let choice = AgentChoice {
                command: String::new(),
                backend: parse_backend(&record.backend).unwrap_or(Backend::Claude),
                profile: record.profile.clone(),
                permission_mode: Default::default(),
                prompt_override: None,
            };
            let from = record.last_seq.min(logs_seq) + 1;
            let mut spec = self.spec_base(
                &id,
                &record.run_id,
                &record.session_id,
                link,
                RunMode::Reattach {
                    from_seq: from,
                    logs_seq,
                },
                &choice,
                record.attempt,
                &issue,
            );
            spec.carried = Totals {
                turn_count: record.turn_count,
                input_tokens: record.input_tokens,
                output_tokens: record.output_tokens,
                cost_usd: record.cost_usd,
                agent_ref: record.agent_ref.clone(),
                last_seq: record.last_seq,
            };
            let cancel = spec.cancel.clone();
            self.by_issue.insert(id.clone(), record.run_id.clone());
            self.runs.insert(
                record.run_id.clone(),
                RunEntry {
                    record,
                    issue,
                    cancel,
                    stop: None,
                    last_progress: Instant::now(),
                    last_event: None,
                    subagents: 0,
                },
            );
            self.tasks.spawn(run::execute(spec, self.cancel.clone()));
        }
    }

    fn stop_run(&mut self, run_id: &str, reason: StopReason) {
        let Some(r) = self.runs.get_mut(run_id) else { return };
        if r.stop.is_some() {
            return;
        }
        let id = r.record.identifier.clone();
        let msg = match &reason {
            StopReason::UserCancel => "Cancelled by an operator; the issue is paused".to_string(),
            StopReason::Terminate => "Terminated by an operator".to_string(),
            StopReason::Terminal(s) => format!("The issue moved to {s}; stopping its agent"),
            StopReason::LeftActive(s) => format!("The issue left the active states ({s}); stopping its agent"),
            StopReason::Stalled => "No progress for too long; stopping the stalled agent".to_string(),
            StopReason::HostLost => format!("Host {} unreachable for too long; the session is lost", r.record.host),
            StopReason::HostRemoved => format!("Host {} was removed; stopping its session", r.record.host),
            StopReason::Clearing => "Workspaces are being cleared; stopping the agent".to_string(),
        };
        r.stop = Some(reason.clone());
        r.cancel.cancel();
        let host = r.record.host.clone();
        let session = r.record.session_id.clone();
        if reason == StopReason::HostLost {
            let _ = self.store.with(|s| s.add_stale_session(&host, &session));
        }
        self.note(&id, LogLevel::Warn, msg);
        self.dirty = true;
    }

    // ----- run results -----

    fn on_run(&mut self, run_id: String, event: RunEvent) {
        self.dirty = true;
        match event {
            RunEvent::Started { workspace } => {
                if let Some(r) = self.runs.get_mut(&run_id) {
                    r.last_progress = Instant::now();
                    if workspace.is_some() {
                        r.record.workspace = workspace;
                        let rec = r.record.clone();
                        let _ = self.store.with(|s| {
                            // Keep the progress fields the run itself saved.
                            let mut stored = s.run(&rec.run_id)?.unwrap_or(rec.clone());
                            stored.workspace = rec.workspace.clone();
                            s.save_run(&stored)
                        });
                    }
                }
            }
            RunEvent::Progress {
                last_event,
                last_message,
                at,
                subagents,
            } => {
                if let Some(r) = self.runs.get_mut(&run_id) {
                    r.last_progress = Instant::now();
                    r.last_event = Some((last_event, last_message, at));
                    r.subagents = subagents;
                }
            }
            RunEvent::PrSeen(url) => {
                if let Some(r) = self.runs.get_mut(&run_id)
                    && r.record.pr_url.is_none()
                {
                    r.record.pr_url = Some(url);
                }
            }
            RunEvent::Turn {
                turn_count,
                input_tokens,
                output_tokens,
                cost_usd,
                agent_ref,
            } => {
                if let Some(r) = self.runs.get_mut(&run_id) {
                    r.last_progress = Instant::now();
                    r.record.turn_count = turn_count;
                    r.record.input_tokens = input_tokens;
                    r.record.output_tokens = output_tokens;
                    r.record.cost_usd = cost_usd;
                    r.record.agent_ref = agent_ref;
                }
            }
            RunEvent::Finished(outcome) => self.on_finished(&run_id, outcome),
        }
    }

    fn on_finished(&mut self, run_id: &str, outcome: RunOutcome) {
        let Some(entry) = self.runs.remove(run_id) else { return };
        let id = entry.record.identifier.clone();
        if self.by_issue.get(&id).is_some_and(|r| r == run_id) {
            self.by_issue.remove(&id);
        }
        // The stored record has the progress the run saved; merge our view.
        let mut record = self
            .store
            .with(|s| s.run(run_id))
            .ok()
            .flatten()
            .unwrap_or_else(|| entry.record.clone());
        record.finished_at = Some(Utc::now());
        record.workspace = record.workspace.or(entry.record.workspace.clone());
        let exit: Option<SessionExit> = match &outcome {
            RunOutcome::Succeeded { exit }
            | RunOutcome::Failed { exit, .. }
            | RunOutcome::InputRequired { exit, .. } => exit.clone(),
            RunOutcome::Stopped => None,
        };
        if let Some(x) = &exit {
            record.branch = x.branch.clone().or(record.branch);
            record.pr_url = x.pr_url.clone().or(record.pr_url);
        }
        record.pr_url = record.pr_url.or(entry.record.pr_url.clone());
        let attempt = record.attempt;
        let host = record.host.clone();
        let is_reviewer = record.kind == "reviewer";

        match (entry.stop.clone(), outcome) {
            (Some(StopReason::UserCancel), _) => {
                record.status = RunState::Cancelled;
                record.error = Some("cancelled by an operator".into());
                let p = PausedRecord {
                    identifier: id.clone(),
                    reason: "user_cancelled".into(),
                    paused_at: Utc::now(),
                    host: Some(host.clone()),
                    session_id: Some(record.session_id.clone()),
                    agent_ref: record.agent_ref.clone(),
                    backend: Some(record.backend.clone()),
                };
                let _ = self.store.with(|s| s.set_paused(&p));
                self.paused.insert(id.clone(), p);
            }
            (Some(StopReason::Terminate), _) => {
                record.status = RunState::Cancelled;
                record.error = Some("terminated by an operator".into());
                self.release(&id);
                self.ensure_active(&id);
            }
            (Some(StopReason::Terminal(state)), _) => {
                record.status = RunState::Cancelled;
                record.error = Some(format!("the issue moved to {state}"));
                self.release(&id);
            }
            (Some(StopReason::LeftActive(state)), _) => {
                record.status = RunState::Cancelled;
                record.error = Some(format!("the issue left the active states ({state})"));
                self.release(&id);
            }
            (Some(StopReason::Stalled), _) => {
                record.status = RunState::Stalled;
                record.error = Some("no progress within stall_timeout_ms".into());
                self.schedule_after_failure(&id, attempt, "the agent stalled".into(), None, Some(host.clone()));
            }
            (Some(StopReason::HostLost), _) => {
                record.status = RunState::Lost;
                record.error = Some(format!(
                    "host {host} was unreachable for longer than ssh.host_lost_after_ms"
                ));
                self.issue_hosts.remove(&id);
                let _ = self.store.with(|s| s.remove_issue_host(&id));
                self.schedule_retry_now(
                    &id,
                    attempt + 1,
                    format!("host {host} was lost; new attempt on another host"),
                );
            }
            (Some(StopReason::HostRemoved), _) => {
                record.status = RunState::Cancelled;
                record.error = Some(format!("host {host} was removed from the pool"));
                self.issue_hosts.remove(&id);
                let _ = self.store.with(|s| s.remove_issue_host(&id));
                self.schedule_retry_now(
                    &id,
                    attempt + 1,
                    format!("host {host} was removed; new attempt on another host"),
                );
            }
            (Some(StopReason::Clearing), _) => {
                record.status = RunState::Cancelled;
                record.error = Some("workspaces were cleared".into());
                self.release(&id);
            }
            (None, RunOutcome::Succeeded { .. }) => {
                record.status = RunState::Succeeded;
                self.release(&id);
                if let Some(url) = record.pr_url.clone() {
                    self.open_prs.insert(id.clone(), url.clone());
                    let _ = self.store.with(|s| s.set_open_pr(&id, Some(&url)));
                }
                if !is_reviewer {
                    if let Some(cs) = self.config().tracker.completion_state.clone() {
                        self.write_state(&id, &cs, true);
                    }
                    if let Some(branch) = record.branch.clone() {
                        let tracker = self.tracker.clone();
                        let id2 = id.clone();
                        self.tasks.spawn(async move {
                            if let Err(e) = tracker.record_branch(&id2, &branch).await {
                                tracing::warn!(issue = %id2, error = %e, "Could not record the branch in the tracker");
                            }
                        });
                    }
                    if self.config().agent.auto_review && self.config().agent.reviewer_profile.is_some() {
                        let issue = entry.issue.clone();
                        self.note(&id, LogLevel::Info, "Dispatching the reviewer (auto_review)");
                        self.dispatch(issue, &host, RunKind::Reviewer);
                    } else if self.config().workspace.auto_clear {
                        self.remove_workspace(&id, &host);
                    }
                }
            }
            (None, RunOutcome::InputRequired { question, .. }) => {
                record.status = RunState::InputRequired;
                let input = InputRecord {
                    identifier: id.clone(),
                    run_id: run_id.to_string(),
                    session_id: record.session_id.clone(),
                    host: host.clone(),
                    context: question.clone(),
                    queued_at: Utc::now(),
                    backend: Some(record.backend.clone()),
                    profile: record.profile.clone(),
                    attempt,
                    reply: None,
                    question_posted: false,
                };
                let _ = self.store.with(|s| s.set_input(&input));
                self.inputs.insert(id.clone(), input);
                self.retries.remove(&id);
                let _ = self.store.with(|s| s.remove_retry(&id));
                if !self.config().agent.inline_input {
                    let body = format!(
                        "**The agent needs your input** (reply in a comment to continue):\n\n{question}\n\n<!-- itervox:question:{} -->",
                        record.session_id
                    );
                    self.write_comment(&id, body);
                }
            }
            (
                None,
                RunOutcome::Failed {
                    error,
                    rate_limit_reset,
                    ..
                },
            ) => {
                record.status = RunState::Failed;
                record.error = Some(error.clone());
                if !is_reviewer {
                    self.schedule_after_failure(&id, attempt, error, rate_limit_reset, Some(host.clone()));
                }
            }
            (None, RunOutcome::Stopped) => {
                record.status = RunState::Cancelled;
                record.error = Some("the session was stopped on its host".into());
                if !is_reviewer {
                    self.schedule_after_failure(
                        &id,
                        attempt,
                        "the session was stopped on its host".into(),
                        None,
                        Some(host.clone()),
                    );
                }
            }
        }
        if let Err(e) = self.store.with(|s| s.save_run(&record)) {
            tracing::error!(error = %e, "Could not save the finished run");
        }
        self.totals = self.store.with(|s| s.totals()).unwrap_or(self.totals);
        self.note(
            &id,
            if record.status == RunState::Failed {
                LogLevel::Warn
            } else {
                LogLevel::Info
            },
            format!(
                "Run finished: {}{}",
                record.status.as_str(),
                record.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        );
        self.push_history(&record);
        self.dispatch_pass();
    }

    fn push_history(&mut self, record: &RunRecord) {
        self.history.push_front(snapshot::history_row(record));
        self.history.truncate(HISTORY_ROWS);
        self.dirty = true;
    }

    /// Forgets the issue's retry bookkeeping: it is free to be dispatched again by the tracker's state.
    fn release(&mut self, id: &str) {
        self.retries.remove(id);
        let _ = self.store.with(|s| s.remove_retry(id));
    }

    /// After terminate: make sure the issue is in an active state again.
    fn ensure_active(&mut self, id: &str) {
        let cfg = self.config().tracker.clone();
        let state = self.issues.get(id).map(|i| i.state.clone());
        if let Some(state) = state
            && !cfg.is_active(&state)
            && let Some(first) = cfg.active_states.first().cloned()
        {
            self.write_state(id, &first, false);
        }
    }

    fn schedule_retry_now(&mut self, id: &str, next_attempt: u32, reason: String) {
        let r = RetryRecord {
            identifier: id.to_string(),
            attempt: next_attempt,
            due_at: Utc::now(),
            error: Some(reason.clone()),
            prefer_host: None,
        };
        let _ = self.store.with(|s| s.set_retry(&r));
        self.retries.insert(id.to_string(), r);
        self.note(id, LogLevel::Warn, reason);
    }

    fn schedule_after_failure(
        &mut self,
        id: &str,
        attempt: u32,
        error: String,
        rate_limit_reset: Option<DateTime<Utc>>,
        prefer_host: Option<String>,
    ) {
        let cfg = &self.config().agent;
        let decision = decide::after_failure(
            attempt,
            cfg.max_retries,
            Duration::from_millis(cfg.max_retry_backoff_ms),
            rate_limit_reset,
            self.config().tracker.failed_state.as_deref(),
            Utc::now(),
        );
        match decision {
            AfterFailure::Retry { next_attempt, due_at } => {
                let r = RetryRecord {
                    identifier: id.to_string(),
                    attempt: next_attempt,
                    due_at,
                    error: Some(error.clone()),
                    prefer_host,
                };
                let _ = self.store.with(|s| s.set_retry(&r));
                self.retries.insert(id.to_string(), r);
                self.note(
                    id,
                    LogLevel::Warn,
                    format!(
                        "Attempt {attempt} failed: {error}. Retry {next_attempt} at {}",
                        rfc3339(&due_at)
                    ),
                );
            }
            AfterFailure::Exhausted { failed_state } => {
                self.retries.remove(id);
                let _ = self.store.with(|s| s.remove_retry(id));
                match failed_state {
                    Some(state) => {
                        self.note(
                            id,
                            LogLevel::Error,
                            format!("Attempt {attempt} failed and no retries are left; moving to {state}"),
                        );
                        self.write_state(id, &state, true);
                    }
                    None => {
                        self.note(
                            id,
                            LogLevel::Error,
                            format!("Attempt {attempt} failed and no retries are left; the issue is paused"),
                        );
                        let p = PausedRecord {
                            identifier: id.to_string(),
                            reason: "retries_exhausted".into(),
                            paused_at: Utc::now(),
                            host: None,
                            session_id: None,
                            agent_ref: None,
                            backend: None,
                        };
                        let _ = self.store.with(|s| s.set_paused(&p));
                        self.paused.insert(id.to_string(), p);
                    }
                }
            }
        }
    }

    // ----- tracker writes -----

    /// Moves an issue in the tracker. With `overlay`, the issue is treated as already moved until the
    /// tracker shows it (so a finished issue is not dispatched again in between).
    fn write_state(&mut self, id: &str, state: &str, overlay: bool) {
        if overlay {
            self.pending_moves.insert(id.to_string(), state.to_string());
        }
        if let Some(i) = self.issues.get_mut(id) {
            i.state = state.to_string();
        }
        let tracker = self.tracker.clone();
        let tx = self.cmd_tx.clone();
        let (id, state) = (id.to_string(), state.to_string());
        self.tasks.spawn(async move {
            let mut delay = Duration::from_secs(1);
            let mut error = None;
            for _ in 0..5 {
                match tracker.move_state(&id, &state).await {
                    Ok(()) => {
                        error = None;
                        break;
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            let _ = tx
                .send(Command::TrackerWriteDone {
                    identifier: id,
                    state: Some(state),
                    error,
                })
                .await;
        });
    }

    fn write_comment(&mut self, id: &str, body: String) {
        let tracker = self.tracker.clone();
        let tx = self.cmd_tx.clone();
        let id = id.to_string();
        self.tasks.spawn(async move {
            let error = tracker.add_comment(&id, &body).await.err().map(|e| e.to_string());
            let _ = tx
                .send(Command::TrackerWriteDone {
                    identifier: id,
                    state: None,
                    error,
                })
                .await;
        });
    }

    fn remove_workspace(&mut self, id: &str, host: &str) {
        let Some(link) = self.host(host).map(|h| h.link.clone()) else {
            return;
        };
        let cfg = &self.config().hooks;
        let hooks = Hooks {
            before_remove: cfg.before_remove.clone(),
            timeout_ms: cfg.timeout_ms,
            ..Hooks::default()
        };
        let tx = self.cmd_tx.clone();
        let id = id.to_string();
        self.tasks.spawn(async move {
            let body = RequestBody::RemoveWorkspace(itervox_protocol::worker::RemoveWorkspace {
                issue: id.clone(),
                hooks,
            });
            let (message, warn) = match link.call::<itervox_protocol::worker::WorkspaceRemoved>(body).await {
                Ok(r) if r.removed => ("Workspace removed".to_string(), false),
                Ok(_) => ("No workspace to remove".to_string(), false),
                Err(e) => (format!("Could not remove the workspace: {e}"), true),
            };
            let _ = tx
                .send(Command::Note {
                    identifier: id,
                    message,
                    warn,
                })
                .await;
        });
    }

    fn note(&self, id: &str, level: LogLevel, message: impl Into<String>) {
        let hub = self.hub.clone();
        let id = id.to_string();
        let entry = log_entry(level, message);
        self.tasks.spawn(async move {
            hub.publish(&id, entry).await;
        });
    }

    // ----- commands -----

    fn handle(&mut self, cmd: Command) {
        self.dirty = true;
        match cmd {
            Command::Refresh(tx) => {
                let coalesced = self.poll_in_flight;
                self.start_poll(true);
                let _ = tx.send(super::RefreshAnswer {
                    coalesced,
                    queued_at: Utc::now(),
                });
            }
            Command::Cancel(id, tx) => {
                if let Some(run_id) = self.by_issue.get(&id).cloned() {
                    self.stop_run(&run_id, StopReason::UserCancel);
                    reply(tx, Ok(()));
                } else if self.retries.contains_key(&id) {
                    self.retries.remove(&id);
                    let _ = self.store.with(|s| s.remove_retry(&id));
                    let p = PausedRecord {
                        identifier: id.clone(),
                        reason: "user_cancelled".into(),
                        paused_at: Utc::now(),
                        host: None,
                        session_id: None,
                        agent_ref: None,
                        backend: None,
                    };
                    let _ = self.store.with(|s| s.set_paused(&p));
                    self.paused.insert(id.clone(), p);
                    self.note(
                        &id,
                        LogLevel::Warn,
                        "Cancelled by an operator while waiting to retry; the issue is paused",
                    );
                    reply(tx, Ok(()));
                } else {
                    reply(tx, Err(Refusal::NotRunning(id)));
                }
            }
            Command::Resume(id, tx) => match self.paused.remove(&id) {
                Some(p) => {
                    let _ = self.store.with(|s| s.remove_paused(&id));
                    if p.session_id.is_some() {
                        self.resume_sessions.insert(id.clone(), p);
                    }
                    self.note(&id, LogLevel::Info, "Resumed by an operator");
                    self.start_poll(true);
                    reply(tx, Ok(()));
                }
                None => reply(tx, Err(Refusal::NotPaused(id))),
            },
            Command::Terminate(id, tx) => {
                if let Some(run_id) = self.by_issue.get(&id).cloned() {
                    self.stop_run(&run_id, StopReason::Terminate);
                    reply(tx, Ok(()));
                } else if self.paused.remove(&id).is_some()
                    || self.inputs.remove(&id).is_some()
                    || self.retries.contains_key(&id)
                {
                    let _ = self.store.with(|s| {
                        s.remove_paused(&id)?;
                        s.remove_input(&id)
                    });
                    self.release(&id);
                    self.resume_sessions.remove(&id);
                    self.ensure_active(&id);
                    self.note(
                        &id,
                        LogLevel::Info,
                        "Terminated by an operator; the issue may be dispatched again",
                    );
                    self.start_poll(true);
                    reply(tx, Ok(()));
                } else {
                    reply(
                        tx,
                        Err(Refusal::NotFound(format!(
                            "issue {id} (neither running, paused nor waiting)"
                        ))),
                    );
                }
            }
            Command::Reanalyze(id, tx) => {
                if self.by_issue.contains_key(&id) {
                    reply(tx, Err(Refusal::Conflict(format!("issue {id} is running"))));
                    return;
                }
                self.forced.insert(id.clone());
                self.open_prs.remove(&id);
                let _ = self.store.with(|s| s.set_open_pr(&id, None));
                if self.paused.get(&id).is_some_and(|p| p.reason == "open_pr") {
                    self.paused.remove(&id);
                    let _ = self.store.with(|s| s.remove_paused(&id));
                }
                self.note(
                    &id,
                    LogLevel::Info,
                    "Re-analysis requested: dispatching despite the open pull request",
                );
                self.start_poll(true);
                reply(tx, Ok(()));
            }
            Command::AiReview(id, tx) => {
                if self.config().agent.reviewer_profile.is_none() {
                    reply(
                        tx,
                        Err(Refusal::BadRequest {
                            field: None,
                            message: "no reviewer profile is configured (PUT /api/v1/settings/reviewer)".into(),
                        }),
                    );
                    return;
                }
                if self.by_issue.contains_key(&id) {
                    reply(tx, Err(Refusal::Conflict(format!("issue {id} is running"))));
                    return;
                }
                let issue = self.issues.get(&id).cloned().unwrap_or_else(|| Issue {
                    id: id.clone(),
                    identifier: id.clone(),
                    title: id.clone(),
                    state: String::new(),
                    ..Issue::default()
                });
                let prefer = self.issue_hosts.get(&id).cloned();
                let views = self.host_views();
                match choose_host(
                    &views,
                    self.config().agent.dispatch_strategy,
                    &mut self.rr_cursor,
                    prefer.as_deref(),
                ) {
                    Some(i) => {
                        let host = views[i].name.clone();
                        self.dispatch(issue, &host, RunKind::Reviewer);
                        reply(tx, Ok(()));
                    }
                    None => reply(
                        tx,
                        Err(Refusal::Conflict(
                            "no host is available for the reviewer right now".into(),
                        )),
                    ),
                }
            }
            Command::SetProfile(id, profile, tx) => {
                let profile = profile.filter(|p| !p.is_empty());
                if let Some(p) = &profile
                    && !self.config().agent.profiles.contains_key(p)
                {
                    reply(
                        tx,
                        Err(Refusal::BadRequest {
                            field: Some("profile"),
                            message: format!("unknown profile {p:?}"),
                        }),
                    );
                    return;
                }
                let mut o = self.overrides.get(&id).cloned().unwrap_or_default();
                o.profile = profile.clone();
                let _ = self.store.with(|s| s.set_override(&id, &o));
                self.overrides.insert(id.clone(), o);
                reply(tx, Ok(profile));
            }
            Command::SetBackend(id, backend, tx) => {
                let mut o = self.overrides.get(&id).cloned().unwrap_or_default();
                o.backend = backend.map(|b| b.as_str().to_string());
                let _ = self.store.with(|s| s.set_override(&id, &o));
                let shown = o.backend.clone();
                self.overrides.insert(id.clone(), o);
                reply(tx, Ok(shown));
            }
            Command::ProvideInput(id, message, tx) => match self.inputs.get_mut(&id) {
                Some(input) => {
                    input.reply = Some(message);
                    let input = input.clone();
                    let _ = self.store.with(|s| s.set_input(&input));
                    self.note(
                        &id,
                        LogLevel::Info,
                        "Input provided by an operator; resuming the session",
                    );
                    self.dispatch_pass();
                    reply(tx, Ok(()));
                }
                None => reply(tx, Err(Refusal::NotInputRequired(id))),
            },
            Command::DismissInput(id, tx) => match self.inputs.remove(&id) {
                Some(input) => {
                    let _ = self.store.with(|s| s.remove_input(&id));
                    let p = PausedRecord {
                        identifier: id.clone(),
                        reason: "user_dismissed_input".into(),
                        paused_at: Utc::now(),
                        host: Some(input.host),
                        session_id: Some(input.session_id),
                        agent_ref: None,
                        backend: input.backend,
                    };
                    let _ = self.store.with(|s| s.set_paused(&p));
                    self.paused.insert(id.clone(), p);
                    self.note(
                        &id,
                        LogLevel::Info,
                        "Input dismissed by an operator; the issue is paused",
                    );
                    reply(tx, Ok(()));
                }
                None => reply(tx, Err(Refusal::NotInputRequired(id))),
            },
            Command::ListIssues(tx) => {
                let issues: Vec<Issue> = self.issues.values().cloned().collect();
                let _ = tx.send(issues.iter().map(|i| self.enrich(i)).collect());
            }
            Command::Enrich(issues, tx) => {
                let _ = tx.send(issues.iter().map(|i| self.enrich(i)).collect());
            }
            Command::IssueLink(id, tx) => {
                let host = self
                    .by_issue
                    .get(&id)
                    .and_then(|r| self.runs.get(r))
                    .map(|r| r.record.host.clone())
                    .or_else(|| self.issue_hosts.get(&id).cloned());
                let _ = tx.send(host.and_then(|h| self.host(&h).map(|e| e.link.clone())));
            }
            Command::AllLinks(tx) => {
                let _ = tx.send(self.hosts.iter().map(|h| h.link.clone()).collect());
            }
            Command::Settings(change, tx) => {
                let result = self.apply_settings(change);
                reply(tx, result);
            }
            Command::ClearWorkspaces(tx) => {
                let runs: Vec<String> = self.runs.keys().cloned().collect();
                for run_id in runs {
                    self.stop_run(&run_id, StopReason::Clearing);
                }
                self.clear_workspaces();
                reply(tx, Ok(()));
            }
            Command::PollDone(result) => self.on_poll(result),
            Command::Run { run_id, event } => self.on_run(run_id, event),
            Command::Link { host, event } => self.on_link(host, event),
            Command::ConfigReloaded(workflow) => self.on_reload(*workflow),
            Command::ConfigInvalid(e) => {
                tracing::error!(error = %e, "WORKFLOW.md has an invalid edit; keeping the last good configuration");
                self.config_invalid = Some(ConfigInvalid {
                    path: self.workflow.path.display().to_string(),
                    error: e.to_string(),
                });
            }
            Command::TrackerWriteDone {
                identifier,
                state,
                error,
            } => {
                if let Some(e) = error {
                    let what = state
                        .as_ref()
                        .map(|s| format!("move to {s}"))
                        .unwrap_or_else(|| "comment".into());
                    self.note(
                        &identifier,
                        LogLevel::Error,
                        format!("Tracker write failed ({what}): {e}"),
                    );
                    if state.is_some() {
                        self.pending_moves.remove(&identifier);
                    }
                } else if let Some(s) = state {
                    self.note(&identifier, LogLevel::Info, format!("Moved to {s} in the tracker"));
                }
            }
            Command::Note {
                identifier,
                message,
                warn,
            } => {
                self.note(&identifier, if warn { LogLevel::Warn } else { LogLevel::Info }, message);
            }
            Command::Drain => {
                self.draining = true;
            }
        }
    }

    fn orchestrator_state(&self, id: &str) -> OrchestratorState {
        snapshot::orchestrator_state(
            self.by_issue.contains_key(id),
            self.retries.contains_key(id),
            self.paused.contains_key(id),
            self.inputs.contains_key(id),
        )
    }

    fn enrich(&self, i: &Issue) -> TrackerIssue {
        let run = self.by_issue.get(&i.identifier).and_then(|r| self.runs.get(r));
        let last = self.history.iter().find(|h| h.identifier == i.identifier);
        let o = self.overrides.get(&i.identifier);
        TrackerIssue {
            identifier: i.identifier.clone(),
            title: i.title.clone(),
            state: i.state.clone(),
            description: i.description.clone(),
            url: i.url.clone(),
            labels: i.labels.clone(),
            priority: i.priority,
            branch_name: i.branch_name.clone(),
            blocked_by: i.blocked_by.iter().map(|b| b.identifier.clone()).collect(),
            comments: i
                .comments
                .iter()
                .map(|c| itervox_protocol::api::IssueComment {
                    author: c.author.clone(),
                    body: c.body.clone(),
                    created_at: c.created_at.map(|t| rfc3339(&t)),
                })
                .collect(),
            orchestrator_state: self.orchestrator_state(&i.identifier),
            ineligible_reason: if run.is_some() {
                None
            } else {
                self.reasons.get(&i.identifier).cloned()
            },
            agent_profile: o.and_then(|o| o.profile.clone()),
            agent_backend: o.and_then(|o| o.backend.clone()),
            turn_count: run.map(|r| r.record.turn_count).or(last.map(|h| h.turn_count)),
            tokens: run
                .map(|r| r.record.input_tokens + r.record.output_tokens)
                .or(last.map(|h| h.tokens)),
            last_message: run.and_then(|r| r.last_event.as_ref().map(|e| e.1.clone())),
            error: self
                .retries
                .get(&i.identifier)
                .and_then(|r| r.error.clone())
                .or_else(|| last.and_then(|h| h.error.clone())),
            pause_reason: self.paused.get(&i.identifier).map(|p| p.reason.clone()),
            worker_host: run
                .map(|r| r.record.host.clone())
                .or_else(|| self.issue_hosts.get(&i.identifier).cloned()),
            created_at: i.created_at.map(|t| rfc3339(&t)),
            updated_at: i.updated_at.map(|t| rfc3339(&t)),
        }
    }

    fn on_reload(&mut self, workflow: Workflow) {
        tracing::info!(path = %workflow.path.display(), "WORKFLOW.md changed; applying the new configuration");
        self.adopt(workflow);
    }

    /// Makes `workflow` the configuration in force: rebuilds the tracker when its settings changed (the
    /// project filter alone is applied in place), syncs the host pool, and re-evaluates dispatch. Running
    /// sessions are untouched.
    pub(super) fn adopt(&mut self, workflow: Workflow) {
        self.config_invalid = None;
        let old = std::mem::replace(&mut self.workflow, workflow);
        let mut old_tracker = old.config.tracker.clone();
        old_tracker.project_filter = self.config().tracker.project_filter.clone();
        if old_tracker != self.config().tracker {
            match crate::tracker::from_config(self.config()) {
                Ok(t) if self.config().tracker.kind != crate::config::TrackerKind::Memory => {
                    self.tracker = t.clone();
                    let _ = self.tracker_tx.send(t);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "The new tracker settings cannot be used; keeping the old tracker")
                }
            }
        }
        self.sync_hosts();
        self.next_poll = Instant::now();
        self.dispatch_pass();
    }

    /// Makes the pool match the configuration's host list.
    fn sync_hosts(&mut self) {
        let wanted: Vec<String> = if self.config().agent.ssh_hosts.is_empty() {
            vec![LOCAL_HOST.to_string()]
        } else {
            self.config().agent.ssh_hosts.clone()
        };
        for name in &wanted {
            match self.hosts.iter_mut().find(|h| &h.name == name) {
                Some(h) => {
                    h.description = self
                        .workflow
                        .config
                        .agent
                        .ssh_host_descriptions
                        .get(name)
                        .cloned()
                        .unwrap_or(h.description.clone());
                    h.removing = false;
                    h.draining = false;
                }
                None => {
                    let d = self
                        .config()
                        .agent
                        .ssh_host_descriptions
                        .get(name)
                        .cloned()
                        .unwrap_or_default();
                    self.add_host(name, &d);
                }
            }
        }
        let gone: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| !wanted.contains(&h.name) && !h.removing)
            .map(|h| h.name.clone())
            .collect();
        for name in gone {
            self.remove_host(&name, true);
        }
    }

    /// Removes a host: with `drain` its sessions finish first; without, they are stopped and retried
    /// elsewhere.
    fn remove_host(&mut self, name: &str, drain: bool) {
        let Some(h) = self.hosts.iter_mut().find(|h| h.name == name) else {
            return;
        };
        h.draining = true;
        h.removing = true;
        if !drain {
            let runs: Vec<String> = self
                .runs
                .iter()
                .filter(|(_, r)| r.record.host == name)
                .map(|(id, _)| id.clone())
                .collect();
            for run_id in runs {
                self.stop_run(&run_id, StopReason::HostRemoved);
            }
        }
        self.dirty = true;
    }

    fn clear_workspaces(&mut self) {
        let links: Vec<(String, HostLink)> = self.hosts.iter().map(|h| (h.name.clone(), h.link.clone())).collect();
        let hub = self.hub.clone();
        let hooks = Hooks {
            before_remove: self.config().hooks.before_remove.clone(),
            timeout_ms: self.config().hooks.timeout_ms,
            ..Hooks::default()
        };
        self.tasks.spawn(async move {
            // Give stopping sessions a moment to exit before their worktrees go away.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (host, link) in links {
                let list = match link
                    .call::<itervox_protocol::worker::WorkspaceList>(RequestBody::ListWorkspaces)
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(host = %host, error = %e, "Could not list workspaces to clear");
                        continue;
                    }
                };
                for ws in list.workspaces {
                    let body = RequestBody::RemoveWorkspace(itervox_protocol::worker::RemoveWorkspace {
                        issue: ws.issue.clone(),
                        hooks: hooks.clone(),
                    });
                    let message = match link.call::<itervox_protocol::worker::WorkspaceRemoved>(body).await {
                        Ok(_) => format!("Workspace {} removed from {host}", ws.path),
                        Err(e) => format!("Could not remove workspace {} on {host}: {e}", ws.path),
                    };
                    tracing::info!(host = %host, issue = %ws.issue, "{message}");
                    hub.publish(&ws.issue, log_entry(LogLevel::Info, message)).await;
                }
            }
        });
    }

    fn apply_settings(&mut self, change: SettingsChange) -> Result<serde_json::Value, Refusal> {
        super::settings::apply(self, change)
    }

    // ----- snapshot -----

    fn publish(&mut self, force: bool) {
        if !force && self.last_publish.elapsed() < PUBLISH_EVERY {
            return;
        }
        self.dirty = false;
        self.last_publish = Instant::now();
        self.version += 1;
        let now = Utc::now();
        let running: Vec<RunningRow> = self
            .runs
            .values()
            .map(|r| {
                let rec = &r.record;
                RunningRow {
                    identifier: rec.identifier.clone(),
                    state: r.issue.state.clone(),
                    turn_count: rec.turn_count,
                    tokens: rec.input_tokens + rec.output_tokens,
                    input_tokens: rec.input_tokens,
                    output_tokens: rec.output_tokens,
                    elapsed_ms: (now - rec.started_at).num_milliseconds().max(0) as u64,
                    started_at: rfc3339(&rec.started_at),
                    title: rec.title.clone(),
                    session_id: Some(rec.session_id.clone()),
                    worker_host: Some(rec.host.clone()),
                    backend: Some(rec.backend.clone()),
                    profile: rec.profile.clone(),
                    kind: Some(snapshot::kind_of(&rec.kind)),
                    last_event: r.last_event.as_ref().map(|e| e.0.clone()),
                    last_message: r.last_event.as_ref().map(|e| e.1.clone()),
                    last_event_at: r.last_event.as_ref().map(|e| rfc3339(&e.2)),
                    subagent_count: (r.subagents > 0).then_some(r.subagents),
                    attempt: Some(rec.attempt),
                    cost_usd: rec.cost_usd,
                }
            })
            .collect();
        let retrying = self
            .retries
            .values()
            .filter(|r| !self.by_issue.contains_key(&r.identifier))
            .map(|r| RetryRow {
                identifier: r.identifier.clone(),
                attempt: r.attempt,
                due_at: rfc3339(&r.due_at),
                error: r.error.clone(),
            })
            .collect();
        let input_required = self
            .inputs
            .values()
            .filter(|i| !self.by_issue.contains_key(&i.identifier))
            .map(|i| InputRequiredRow {
                identifier: i.identifier.clone(),
                session_id: i.session_id.clone(),
                context: i.context.clone(),
                queued_at: rfc3339(&i.queued_at),
                backend: i.backend.clone(),
                profile: i.profile.clone(),
                worker_host: Some(i.host.clone()),
            })
            .collect();
        let cap = self.config().agent.max_concurrent_agents_per_host;
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                let st = h.link.status();
                let status = if h.draining && st.state == HostStatus::Up {
                    HostStatus::Draining
                } else {
                    st.state
                };
                HostRow {
                    host: h.name.clone(),
                    description: h.description.clone(),
                    status: Some(status),
                    running: self.running_on(&h.name),
                    capacity: cap,
                    last_error: st.last_error.clone(),
                    latency_ms: st.latency_ms.map(|l| (l * 100.0).round() / 100.0),
                    load1: st.load1,
                    cpus: st.cpus,
                    worker_version: st.worker_version.clone(),
                }
            })
            .collect();
        let rate_limits = self.tracker.rate_budget().map(|b| RateLimits {
            requests_limit: b.limit,
            requests_remaining: b.remaining,
            requests_reset: b.reset_at.map(|t| rfc3339(&t)),
        });
        let dynamic = snapshot::Dynamic {
            running,
            retrying,
            paused: self.paused.iter().map(|(k, v)| (k.clone(), v.reason.clone())).collect(),
            input_required,
            history: self.history.iter().cloned().collect(),
            hosts,
            totals: itervox_protocol::api::Totals {
                input_tokens: self.totals.0,
                output_tokens: self.totals.1,
                cost_usd_estimated: self.totals.2,
            },
            rate_limits,
            last_tracker_error: self.last_tracker_error.clone(),
            config_invalid: self.config_invalid.clone(),
            draining: self.draining,
            dry_run: self.dry_run,
            demo_mode: self.demo_mode,
        };
        let snapshot = snapshot::build(self.config(), dynamic, &now);
        let json = Bytes::from(serde_json::to_vec(&snapshot).unwrap_or_default());
        let readiness = Readiness {
            ready: self.consecutive_poll_failures < 3 && !self.draining && self.last_poll_ok,
            last_poll_ok: self.last_poll_ok,
            draining: self.draining,
            config_invalid: self.config_invalid.is_some(),
            consecutive_poll_failures: self.consecutive_poll_failures,
        };
        let _ = self.snapshot_tx.send(Arc::new(SnapshotFrame {
            version: self.version,
            snapshot,
            json,
            readiness,
        }));
    }

    // ----- accessors for settings.rs -----

    pub(super) fn watch_handle(&self) -> Option<crate::config::watch::WatchHandle> {
        self.watch.clone()
    }

    pub(super) fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub(super) fn has_host(&self, name: &str) -> bool {
        self.hosts.iter().any(|h| h.name == name && !h.removing)
    }

    pub(super) fn remove_host_now(&mut self, name: &str, drain: bool) {
        self.remove_host(name, drain);
        if !self.hosts.iter().any(|h| !h.removing) {
            self.add_host(LOCAL_HOST, "this machine");
        }
    }

    pub(super) fn tracker(&self) -> &SharedTracker {
        &self.tracker
    }
}

fn parse_backend(s: &str) -> Option<Backend> {
    match s {
        "claude" => Some(Backend::Claude),
        "codex" => Some(Backend::Codex),
        "demo" => Some(Backend::Demo),
        _ => None,
    }
}

/// A connector for a host that cannot be reached at all (its string does not parse, SSH is not set up):
/// every attempt fails with the same reason, which the pool shows as the host's `lastError`.
#[derive(Debug)]
struct FailingConnector(String);

#[async_trait::async_trait]
impl Connector for FailingConnector {
    async fn connect(&self) -> Result<crate::hosts::link::Transport, String> {
        Err(self.0.clone())
    }
}
