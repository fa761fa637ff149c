//! The local tracker: Markdown issue files (placeholder until the adapter lands).

use async_trait::async_trait;

use super::{Issue, Tracker, TrackerError};
use crate::config::TrackerConfig;

#[derive(Debug)]
pub struct LocalTracker;

impl LocalTracker {
    pub fn open(config: &TrackerConfig) -> Result<Self, TrackerError> {
        let _ = config;
        Err(TrackerError::NotSupported("the local tracker"))
    }
}

#[async_trait]
impl Tracker for LocalTracker {
    fn kind(&self) -> &'static str {
        "local"
    }
    async fn fetch_candidates(&self, _states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        Err(TrackerError::NotSupported("the local tracker"))
    }
    async fn fetch_by_identifiers(&self, _ids: &[String]) -> Result<Vec<Issue>, TrackerError> {
        Err(TrackerError::NotSupported("the local tracker"))
    }
    async fn fetch_issue(&self, _identifier: &str) -> Result<Option<Issue>, TrackerError> {
        Err(TrackerError::NotSupported("the local tracker"))
    }
    async fn move_state(&self, _identifier: &str, _state: &str) -> Result<(), TrackerError> {
        Err(TrackerError::NotSupported("the local tracker"))
    }
    async fn add_comment(&self, _identifier: &str, _body: &str) -> Result<(), TrackerError> {
        Err(TrackerError::NotSupported("the local tracker"))
    }
}
