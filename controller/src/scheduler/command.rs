//! Everything that can ask the scheduler to act: the closed set of commands its actor receives, from the
//! API, the poll timer, runs, host links and the config watcher.

use chrono::{DateTime, Utc};
use itervox_protocol::api::TrackerIssue;
use itervox_protocol::worker::{Backend, SessionExit};
use tokio::sync::oneshot;

use crate::config::{ConfigError, Workflow};
use crate::hosts::link::{HostLink, LinkEvent};
use crate::tracker::{Issue, TrackerError};

use super::settings::SettingsChange;

/// Why the scheduler refused an operator command; the API maps each to a status and error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("issue {0} is not running")]
    NotRunning(String),
    #[error("issue {0} is not paused")]
    NotPaused(String),
    #[error("issue {0} is not waiting for input")]
    NotInputRequired(String),
    #[error("{message}")]
    BadRequest {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    Internal(String),
}

pub type Reply<T> = oneshot::Sender<Result<T, Refusal>>;

/// Answer to `POST /refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshAnswer {
    /// True when a poll was already queued or running, so this request joined it.
    pub coalesced: bool,
    pub queued_at: DateTime<Utc>,
}

/// What a poll brought back from the tracker.
#[derive(Debug)]
pub struct PollResult {
    /// Candidates in active and backlog states, or the error of that fetch.
    pub candidates: Result<Vec<Issue>, TrackerError>,
    /// Current versions of issues the orchestrator tracks that were not among the candidates (running,
    /// retrying, waiting for input); an identifier absent here no longer exists.
    pub tracked: Result<Vec<Issue>, TrackerError>,
    /// Identifiers that were asked for in `tracked`.
    pub tracked_asked: Vec<String>,
    /// Issues waiting for input, fetched with comments (to find a human reply).
    pub with_comments: Vec<Issue>,
    /// True for a full poll, false for a refresh of due retries only.
    pub full: bool,
    /// Overlaid state moves (issue, outbox key) the tracker had already taken when this poll started:
    /// the poll shows the tracker's truth after them, whatever state it reports.
    pub settled_moves: Vec<(String, String)>,
}

/// Something a run reports back.
#[derive(Debug)]
pub enum RunEvent {
    /// The worktree exists and the session was started (or resumed/re-attached).
    Started { workspace: Option<String> },
    /// Latest activity, coalesced by the run.
    Progress {
        last_event: String,
        last_message: String,
        at: DateTime<Utc>,
        subagents: u32,
    },
    /// The agent produced a pull request URL.
    PrSeen(String),
    /// A turn ended: cumulative totals of the run.
    Turn {
        turn_count: u32,
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: Option<f64>,
        agent_ref: Option<String>,
    },
    /// The run is over.
    Finished(RunOutcome),
}

/// How a run ended, as the run saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Succeeded {
        exit: Option<SessionExit>,
    },
    Failed {
        error: String,
        rate_limit_reset: Option<DateTime<Utc>>,
        exit: Option<SessionExit>,
    },
    InputRequired {
        question: String,
        exit: Option<SessionExit>,
    },
    /// The run stopped because the scheduler asked it to (the reason is the scheduler's own).
    Stopped,
}

/// The closed set of scheduler commands.
#[derive(Debug)]
pub enum Command {
    Refresh(oneshot::Sender<RefreshAnswer>),
    Cancel(String, Reply<()>),
    Resume(String, Reply<()>),
    Terminate(String, Reply<()>),
    Reanalyze(String, Reply<()>),
    AiReview(String, Reply<()>),
    SetProfile(String, Option<String>, Reply<Option<String>>),
    SetBackend(String, Option<Backend>, Reply<Option<String>>),
    ProvideInput(String, String, Reply<()>),
    DismissInput(String, Reply<()>),
    /// Tracker issues enriched with orchestrator state (`GET /issues`).
    ListIssues(oneshot::Sender<Vec<TrackerIssue>>),
    /// Adds orchestrator state to issues fetched by the caller (`GET /issues/{id}`).
    Enrich(Vec<Issue>, oneshot::Sender<Vec<TrackerIssue>>),
    /// The link of the host that holds an issue's worktree and sessions (for sublogs).
    IssueLink(String, oneshot::Sender<Option<HostLink>>),
    /// Every host's link.
    AllLinks(oneshot::Sender<Vec<HostLink>>),
    Settings(SettingsChange, Reply<serde_json::Value>),
    /// Cancels every run, then removes every worktree on every host.
    ClearWorkspaces(Reply<()>),
    /// The removal `ClearWorkspaces` started is done; dispatching resumes.
    WorkspacesCleared,

    PollDone(PollResult),
    Run {
        run_id: String,
        event: RunEvent,
    },
    Link {
        host: String,
        event: LinkEvent,
    },
    ConfigReloaded(Box<Workflow>),
    ConfigInvalid(ConfigError),
    /// Operator-visible note for an issue's log, from a helper task.
    Note {
        identifier: String,
        message: String,
        warn: bool,
    },
    /// Starts draining: no new dispatch; `/ready` fails.
    Drain,
}
