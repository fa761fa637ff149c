//! The issue-tracker seam: the `Tracker` trait every adapter implements, the domain `Issue`, and the
//! errors callers branch on.
//!
//! Adapters: `local` (Markdown files with YAML front matter), `memory` (in-process, tests), `linear`
//! (GraphQL) and `github` (REST). `outbox` wraps any adapter's writes in a durable retry queue.
//! `http` and `rate_gate` are the plumbing the two remote adapters share (client construction, the
//! request budget and the "no requests before the reset" rule).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{Config, TrackerKind};

pub mod github;
mod http;
pub mod linear;
pub mod local;
pub mod memory;
pub mod outbox;
mod rate_gate;

/// An issue as the controller sees it, whatever tracker it came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Issue {
    /// The tracker's own id (Linear UUID, GitHub number, local identifier).
    pub id: String,
    /// The human identifier (`ENG-42`, `owner/repo#7` style `#7`, `ITX-3`).
    pub identifier: String,
    pub title: String,
    pub description: Option<String>,
    pub state: String,
    /// Lower number = more urgent; `None` sorts last.
    pub priority: Option<i64>,
    /// Lower-cased.
    pub labels: Vec<String>,
    pub url: Option<String>,
    pub branch_name: Option<String>,
    pub blocked_by: Vec<Blocker>,
    /// Oldest first. Only filled by `fetch_issue`; lists may leave it empty.
    pub comments: Vec<Comment>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Another issue that blocks this one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Blocker {
    pub id: String,
    pub identifier: String,
    /// The blocker's state when known.
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub body: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// A tracker project (Linear).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub slug: String,
}

/// The tracker's request budget as last reported by its rate-limit headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateBudget {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at: Option<DateTime<Utc>>,
}

/// Why a tracker call failed. Callers branch on the kind: rate limits wait for the reset, auth errors are
/// reported to the operator, not-found ends the issue's run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackerError {
    #[error("tracker rate limit reached{}", .reset_at.map(|t| format!(", resets at {}", t.to_rfc3339())).unwrap_or_default())]
    RateLimited { reset_at: Option<DateTime<Utc>> },
    #[error("tracker refused the credentials: {0}")]
    Auth(String),
    #[error("issue {0} not found in the tracker")]
    NotFound(String),
    #[error("tracker answered with a malformed payload: {0}")]
    Malformed(String),
    #[error("tracker request failed: {0}")]
    Transport(String),
    #[error("unknown state {state:?} for issue {identifier}")]
    UnknownState { identifier: String, state: String },
    #[error("{0} is not supported by this tracker")]
    NotSupported(&'static str),
    #[error("tracker storage error: {0}")]
    Io(String),
}

impl TrackerError {
    /// The `kind` shown in `lastTrackerError`.
    pub fn kind(&self) -> &'static str {
        match self {
            TrackerError::RateLimited { .. } => "rate_limited",
            TrackerError::Auth(_) => "auth",
            TrackerError::Malformed(_) => "malformed",
            TrackerError::NotFound(_) => "not_found",
            TrackerError::UnknownState { .. } => "unknown_state",
            TrackerError::NotSupported(_) => "not_supported",
            TrackerError::Transport(_) | TrackerError::Io(_) => "outage",
        }
    }
}

/// What every tracker adapter offers. Identifiers are the human ones (`ENG-42`); adapters map them to
/// their own ids.
#[async_trait]
pub trait Tracker: Send + Sync + std::fmt::Debug {
    /// `local`, `memory`, `linear` or `github`.
    fn kind(&self) -> &'static str;

    /// Issues in any of `states` (case-insensitive), in the tracker's order. An empty list of states
    /// returns an empty list without a request. Comments may be left empty.
    async fn fetch_candidates(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError>;

    /// The current version of each issue in `identifiers` that still exists (missing ones are left out).
    /// An empty list returns an empty list without a request.
    async fn fetch_by_identifiers(&self, identifiers: &[String]) -> Result<Vec<Issue>, TrackerError>;

    /// One issue with its comments; `Ok(None)` when it does not exist.
    async fn fetch_issue(&self, identifier: &str) -> Result<Option<Issue>, TrackerError>;

    /// Moves the issue to the named workflow state.
    async fn move_state(&self, identifier: &str, state: &str) -> Result<(), TrackerError>;

    /// Adds a comment to the issue.
    async fn add_comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError>;

    /// Records the branch an issue's work lives on, when the tracker can hold it.
    async fn record_branch(&self, identifier: &str, branch: &str) -> Result<(), TrackerError> {
        let _ = (identifier, branch);
        Ok(())
    }

    /// Projects visible to the credentials (Linear only).
    async fn list_projects(&self) -> Result<Vec<Project>, TrackerError> {
        Err(TrackerError::NotSupported("projects"))
    }

    /// Sets the project filter used by `fetch_candidates` (Linear only): `None` = default, `[]` = all.
    fn set_project_filter(&self, filter: Option<Vec<String>>) -> Result<(), TrackerError> {
        let _ = filter;
        Err(TrackerError::NotSupported("project filter"))
    }

    /// The last request budget the tracker reported, if it reports one.
    fn rate_budget(&self) -> Option<RateBudget> {
        None
    }

    /// Whether the issue already carries a comment whose body contains `marker` (the outbox's hidden
    /// idempotency marker). The outbox asks before re-posting a comment whose first attempt ended with
    /// an unknown outcome (timeout, 5xx). The default reads the issue with its comments; adapters
    /// override it with a cheaper request.
    async fn has_comment_with_marker(&self, identifier: &str, marker: &str) -> Result<bool, TrackerError> {
        let issue = self.fetch_issue(identifier).await?;
        Ok(issue.is_some_and(|i| i.comments.iter().any(|c| c.body.contains(marker))))
    }
}

/// A shared tracker handle.
pub type SharedTracker = Arc<dyn Tracker>;

/// Builds the adapter the configuration names. Linear and GitHub keep
/// `polling.rate_limit_reserve_percent` of their request budget for writes.
pub fn from_config(config: &Config) -> Result<SharedTracker, TrackerError> {
    let reserve = config.polling.rate_limit_reserve_percent;
    Ok(match config.tracker.kind {
        TrackerKind::Local => Arc::new(local::LocalTracker::open(&config.tracker)?),
        TrackerKind::Memory => Arc::new(memory::MemoryTracker::new(Vec::new())),
        TrackerKind::Linear => Arc::new(linear::LinearTracker::new(&config.tracker, reserve)?),
        TrackerKind::Github => Arc::new(github::GithubTracker::new(&config.tracker, reserve)?),
    })
}
