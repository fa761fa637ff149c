//! The Itervox controller: polls a tracker, schedules one agent session per issue on a pool of build
//! hosts, and serves the `/api/v1` REST + SSE API, the web dashboard and the terminal UI.
//!
//! `run()` is the whole daemon behind an injectable listener and shutdown token; `main.rs` only wires
//! the process. See ARCHITECTURE.md at the repository root for the map of modules and their invariants.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod api;
pub mod config;
pub mod daemon_log;
pub mod dashboard;
pub mod demo;
pub mod hosts;
pub mod issue_logs;
pub mod metrics;
pub mod scheduler;
pub mod store;
pub mod tracker;
pub mod tui;

use config::Workflow;
use scheduler::{SchedulerHandle, SchedulerOptions};
use tracker::SharedTracker;

/// Everything `run` needs besides the listener and the shutdown signal.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub workflow: Workflow,
    /// Holds the SQLite state and the controller's log file.
    pub state_dir: PathBuf,
    /// `ITERVOX_API_TOKEN`.
    pub api_token: Option<String>,
    /// `ITERVOX_DRY_RUN=1`.
    pub dry_run: bool,
    pub demo_mode: bool,
    /// The worker binary for the local host (default: next to this executable).
    pub worker_binary: Option<PathBuf>,
    /// Use this tracker instead of the one WORKFLOW.md names (tests, embedding).
    pub tracker: Option<SharedTracker>,
    /// The controller's log file, tailed by `GET /logs`.
    pub daemon_log: Option<PathBuf>,
    /// Reload WORKFLOW.md when it changes on disk.
    pub watch_workflow: bool,
    /// SSE keep-alive interval.
    pub keep_alive: Duration,
    /// Grace between SIGTERM and SIGKILL when an agent is cancelled.
    pub cancel_grace: Duration,
}

impl RunOptions {
    pub fn new(workflow: Workflow, state_dir: PathBuf) -> RunOptions {
        RunOptions {
            workflow,
            state_dir,
            api_token: None,
            dry_run: false,
            demo_mode: false,
            worker_binary: None,
            tracker: None,
            daemon_log: None,
            watch_workflow: true,
            keep_alive: Duration::from_secs(25),
            cancel_grace: Duration::from_secs(5),
        }
    }
}

/// Refuses to serve an open API on a non-loopback address.
pub fn check_bind_safety(
    addr: &std::net::SocketAddr,
    token: Option<&str>,
    allow_unauthenticated: bool,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) && !allow_unauthenticated {
        anyhow::bail!(
            "refusing to serve the API on {addr} without a token: set ITERVOX_API_TOKEN, bind 127.0.0.1, or set \
             server.allow_unauthenticated: true in WORKFLOW.md"
        );
    }
    Ok(())
}

/// A running controller, for callers that embed it (tests).
#[derive(Debug, Clone)]
pub struct Controller {
    pub scheduler: SchedulerHandle,
    pub hub: issue_logs::LogHub,
    pub store: store::StoreHandle,
}

/// Starts the scheduler and the API on `listener`, and runs until `shutdown` fires; then stops taking
/// work, stops following sessions (they keep running on their hosts) and returns.
pub async fn run(options: RunOptions, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (controller, serve) = start(options, listener, shutdown.clone()).await?;
    serve.await;
    drop(controller);
    Ok(())
}

/// Like `run`, but returns the controller and the server future separately.
pub async fn start(
    options: RunOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<(Controller, impl std::future::Future<Output = ()>)> {
    let addr = listener.local_addr().context("listener address")?;
    check_bind_safety(
        &addr,
        options.api_token.as_deref(),
        options.workflow.config.server.allow_unauthenticated,
    )?;
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("creating the state directory {}", options.state_dir.display()))?;
    let db = options.state_dir.join("itervox.db");
    let store = store::StoreHandle::new(
        store::Store::open(&db).with_context(|| format!("opening the state database {}", db.display()))?,
    );
    let hub = issue_logs::LogHub::new(store.clone());
    let tracker = match options.tracker.clone() {
        Some(t) => t,
        None => tracker::from_config(&options.workflow.config).context("setting up the tracker")?,
    };
    let outbox = tracker::outbox::Outbox::open(&db, tracker.clone())
        .with_context(|| format!("opening the tracker write queue in {}", db.display()))?;
    let tasks = TaskTracker::new();
    let scheduler_cancel = shutdown.child_token();
    let watcher = options.watch_workflow.then(|| {
        config::watch::spawn_watcher(
            &options.workflow,
            config::watch::POLL_INTERVAL,
            scheduler_cancel.child_token(),
        )
    });
    let scheduler = SchedulerHandle::spawn(
        SchedulerOptions {
            workflow: options.workflow.clone(),
            tracker,
            store: store.clone(),
            hub: hub.clone(),
            dry_run: options.dry_run,
            demo_mode: options.demo_mode,
            worker_binary: options.worker_binary.clone(),
            cancel_grace: options.cancel_grace,
            watch: watcher.as_ref().map(|(h, _)| h.clone()),
            outbox: outbox.clone(),
        },
        scheduler_cancel.clone(),
        tasks.clone(),
    );
    {
        let cancel = scheduler_cancel.clone();
        tasks.spawn(async move { outbox.run(cancel).await });
    }
    if let Some((_, mut events)) = watcher {
        let tx = scheduler.sender();
        tasks.spawn(async move {
            while let Some(event) = events.recv().await {
                let cmd = match event {
                    config::watch::WatchEvent::Reloaded(w) => scheduler::Command::ConfigReloaded(Box::new(w)),
                    config::watch::WatchEvent::Invalid(e) => scheduler::Command::ConfigInvalid(e),
                };
                if tx.send(cmd).await.is_err() {
                    break;
                }
            }
        });
    }
    let state = api::ApiState {
        scheduler: scheduler.clone(),
        hub: hub.clone(),
        store: store.clone(),
        token: options.api_token.clone().filter(|t| !t.is_empty()).map(Arc::from),
        daemon_log: options.daemon_log.clone(),
        metrics: scheduler.metrics(),
        keep_alive: options.keep_alive,
        shutdown: shutdown.clone(),
    };
    let app = api::router(state).merge(dashboard::router());
    tracing::info!(%addr, workflow = %options.workflow.path.display(), "Itervox controller listening");
    let sched = scheduler.clone();
    let hub2 = hub.clone();
    let serve = async move {
        let server_shutdown = shutdown.clone();
        let server =
            axum::serve(listener, app).with_graceful_shutdown(async move { server_shutdown.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "API server failed");
        }
        sched.drain();
        scheduler_cancel.cancel();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Some tasks were still running after 10 s; exiting anyway");
        }
        hub2.flush().await;
    };
    Ok((Controller { scheduler, hub, store }, serve))
}
