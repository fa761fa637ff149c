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
use crate::tracker::outbox::{Outbox, TrackerWrite};
use crate::tracker::{Issue, SharedTracker, TrackerError};

mod commands;
mod dispatch;
mod effects;
mod hosts;
mod outcome;
mod poll;
mod publish;

/// Where a `DELETE /workspaces` is: nothing is dispatched until it is `Idle` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clearing {
    Idle,
    /// The runs were told to stop; the worktrees go once every one of them has ended.
    WaitingForRuns,
    /// The worktrees are being removed.
    Removing,
}

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
    outbox: Outbox,

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
    /// Identifier → (target state, outbox key).
    pending_moves: BTreeMap<String, (String, String)>,
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
    /// A full poll has succeeded since the start (readiness needs one).
    polled_ok_once: bool,
    last_tracker_error: Option<TrackerErrorInfo>,
    config_invalid: Option<ConfigInvalid>,
    draining: bool,
    clearing: Clearing,

    dirty: bool,
    version: u64,
    last_publish: Instant,
    /// Event counters for `GET /metrics`.
    pub(super) metrics: Arc<crate::metrics::Metrics>,
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
            outbox: options.outbox,
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
            polled_ok_once: false,
            last_tracker_error: None,
            config_invalid: None,
            draining: false,
            clearing: Clearing::Idle,
            dirty: true,
            version: 0,
            last_publish: now - PUBLISH_EVERY,
            metrics: Arc::default(),
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
        self.check_pending_moves();
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
        // sure the host side has given the session up first: each session's supervisor stops its agent
        // when no frame of ours renewed its lease (`leaseMs` = host_lost_after_ms) for that long, and the
        // last renewal reached the host before the link went down.
        let lost_after = Duration::from_millis(self.config().ssh.host_lost_after_ms);
        let margin = Duration::from_millis(itervox_protocol::worker::LEASE_MARGIN_MS).max(lost_after / 10);
        let lost_hosts: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| {
                // The local worker's sessions hold no lease (see spec_base): they are re-attached when
                // the local link is back, never retried elsewhere.
                let st = h.link.status();
                h.name != LOCAL_HOST
                    && !h.link.is_up()
                    && st.down_since.is_some_and(|d| d.elapsed() > lost_after + margin)
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
        self.drop_empty_leaving_hosts();
    }

    pub(super) fn watch_handle(&self) -> Option<crate::config::watch::WatchHandle> {
        self.watch.clone()
    }

    pub(super) fn workflow(&self) -> &Workflow {
        &self.workflow
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
