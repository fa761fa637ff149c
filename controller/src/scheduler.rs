//! The scheduler: the single owner of orchestration state. Its actor (`scheduler/actor.rs`) receives a
//! closed set of commands (`scheduler/command.rs`) from the API, timers, runs and host links, decides with
//! pure functions (`scheduler/decide.rs`), runs each attempt as a task (`scheduler/run.rs`), and publishes
//! an immutable `StateSnapshot` after every change (`scheduler/snapshot.rs`).
//!
//! `SchedulerHandle` is the only way in: cheap to clone, every method a command with a oneshot reply.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use itervox_protocol::api::{Readiness, StateSnapshot, TrackerIssue};
use itervox_protocol::worker::Backend;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Workflow;
use crate::hosts::link::HostLink;
use crate::issue_logs::LogHub;
use crate::store::StoreHandle;
use crate::tracker::{Issue, SharedTracker};

mod actor;
pub mod command;
pub mod decide;
mod prompt;
mod run;
pub mod settings;
mod snapshot;

pub use command::{Command, RefreshAnswer, Refusal};
pub use settings::SettingsChange;

/// A published snapshot: the value, its JSON (serialized once for every reader) and readiness.
#[derive(Debug, Clone)]
pub struct SnapshotFrame {
    /// Increases with every publication.
    pub version: u64,
    pub snapshot: StateSnapshot,
    pub json: Bytes,
    pub readiness: Readiness,
}

impl Default for SnapshotFrame {
    fn default() -> Self {
        let snapshot = StateSnapshot::default();
        let json = Bytes::from(serde_json::to_vec(&snapshot).unwrap_or_default());
        SnapshotFrame {
            version: 0,
            snapshot,
            json,
            readiness: Readiness::default(),
        }
    }
}

/// What the scheduler needs to start.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub workflow: Workflow,
    pub tracker: SharedTracker,
    pub store: StoreHandle,
    pub hub: LogHub,
    /// `ITERVOX_DRY_RUN=1`: decide and log, never dispatch.
    pub dry_run: bool,
    /// Shown as `demoMode` in the snapshot.
    pub demo_mode: bool,
    /// The worker binary for the local host (found next to the controller when `None`).
    pub worker_binary: Option<PathBuf>,
    /// Grace given to an agent between SIGTERM and SIGKILL on cancel.
    pub cancel_grace: Duration,
    /// The WORKFLOW.md watcher, so settings writes are not mistaken for operator edits.
    pub watch: Option<crate::config::watch::WatchHandle>,
    /// The durable queue of tracker writes (state moves, comments, branch records).
    pub outbox: crate::tracker::outbox::Outbox,
}

/// The way into the scheduler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Command>,
    snapshot: watch::Receiver<Arc<SnapshotFrame>>,
    tracker: watch::Receiver<SharedTracker>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The scheduler could not answer (it is shutting down, or its queue is full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the orchestrator is busy; retry shortly")]
    Busy,
    #[error("the orchestrator is shutting down")]
    Stopped,
}

/// An operator command failed: either the scheduler refused it or could not take it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl SchedulerHandle {
    /// Starts the scheduler actor; it stops when `cancel` fires, and its tasks are tracked by `tasks`.
    pub fn spawn(options: SchedulerOptions, cancel: CancellationToken, tasks: TaskTracker) -> SchedulerHandle {
        let (tx, rx) = mpsc::channel(1024);
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(SnapshotFrame::default()));
        let (tracker_tx, tracker_rx) = watch::channel(options.tracker.clone());
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mut actor = actor::Actor::new(options, tx.clone(), snapshot_tx, tracker_tx, cancel, tasks.clone());
        actor.metrics = metrics.clone();
        actor.start();
        tasks.spawn(actor.run(rx));
        SchedulerHandle {
            tx,
            snapshot: snapshot_rx,
            tracker: tracker_rx,
            metrics,
        }
    }

    /// The event counters of `GET /metrics` (dispatches, failures, tracker requests) this scheduler
    /// keeps.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<SnapshotFrame> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot.
    pub fn watch_snapshot(&self) -> watch::Receiver<Arc<SnapshotFrame>> {
        self.snapshot.clone()
    }

    /// The tracker in use (it changes when WORKFLOW.md's tracker section changes).
    pub fn tracker(&self) -> SharedTracker {
        self.tracker.borrow().clone()
    }

    /// Queues a command without waiting for room (the API answers 503 when the queue is full).
    pub fn try_send(&self, cmd: Command) -> Result<(), Unavailable> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Unavailable::Busy,
            mpsc::error::TrySendError::Closed(_) => Unavailable::Stopped,
        })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Unavailable> {
        let (tx, rx) = oneshot::channel();
        self.try_send(make(tx))?;
        rx.await.map_err(|_| Unavailable::Stopped)
    }

    async fn order<T>(&self, make: impl FnOnce(command::Reply<T>) -> Command) -> Result<T, CommandError> {
        Ok(self.ask(make).await??)
    }

    pub async fn refresh(&self) -> Result<RefreshAnswer, Unavailable> {
        self.ask(Command::Refresh).await
    }

    pub async fn cancel(&self, identifier: &str) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::Cancel(id, r)).await
    }

    pub async fn resume(&self, identifier: &str) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::Resume(id, r)).await
    }

    pub async fn terminate(&self, identifier: &str) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::Terminate(id, r)).await
    }

    pub async fn reanalyze(&self, identifier: &str) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::Reanalyze(id, r)).await
    }

    pub async fn ai_review(&self, identifier: &str) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::AiReview(id, r)).await
    }

    pub async fn set_profile(&self, identifier: &str, profile: Option<String>) -> Result<Option<String>, CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::SetProfile(id, profile, r)).await
    }

    pub async fn set_backend(
        &self,
        identifier: &str,
        backend: Option<Backend>,
    ) -> Result<Option<String>, CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::SetBackend(id, backend, r)).await
    }

    pub async fn provide_input(&self, identifier: &str, message: String) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::ProvideInput(id, message, r)).await
    }

    pub async fn dismiss_input(&self, identifier: &str) -> Result<(), CommandError> {
        let id = identifier.to_string();
        self.order(|r| Command::DismissInput(id, r)).await
    }

    pub async fn list_issues(&self) -> Result<Vec<TrackerIssue>, Unavailable> {
        self.ask(Command::ListIssues).await
    }

    pub async fn enrich(&self, issues: Vec<Issue>) -> Result<Vec<TrackerIssue>, Unavailable> {
        self.ask(|r| Command::Enrich(issues, r)).await
    }

    /// The link of the host that holds the issue's worktree, if any.
    pub async fn issue_link(&self, identifier: &str) -> Result<Option<HostLink>, Unavailable> {
        let id = identifier.to_string();
        self.ask(|r| Command::IssueLink(id, r)).await
    }

    /// Every host's link.
    pub async fn links(&self) -> Result<Vec<HostLink>, Unavailable> {
        self.ask(Command::AllLinks).await
    }

    pub async fn settings(&self, change: SettingsChange) -> Result<serde_json::Value, CommandError> {
        self.order(|r| Command::Settings(change, r)).await
    }

    pub async fn clear_workspaces(&self) -> Result<(), CommandError> {
        self.order(Command::ClearWorkspaces).await
    }

    /// Stops new dispatch (first step of a graceful shutdown).
    pub fn drain(&self) {
        let _ = self.try_send(Command::Drain);
    }

    /// The command queue, for tasks that feed the scheduler (config watcher).
    pub fn sender(&self) -> mpsc::Sender<Command> {
        self.tx.clone()
    }
}
