//! GitHub Issues adapter (placeholder while it is written).
use super::TrackerError;
use crate::config::TrackerConfig;
#[derive(Debug)]
pub struct GithubTracker;
impl GithubTracker {
    pub fn new(_c: &TrackerConfig, _r: u32) -> Result<crate::tracker::memory::MemoryTracker, TrackerError> {
        Err(TrackerError::NotSupported("github"))
    }
}
