//! The in-process tracker: issues held in memory, for tests and embedding. It records every write so
//! tests can assert on them, and can be told to fail.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use super::{Comment, Issue, Tracker, TrackerError};

/// Issues in memory. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryTracker {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    issues: Vec<Issue>,
    /// `(identifier, state)` for every successful `move_state`, in order.
    moves: Vec<(String, String)>,
    /// When set, every call fails with this error.
    failure: Option<TrackerError>,
    /// Number of calls made (reads and writes).
    calls: u64,
}

impl MemoryTracker {
    pub fn new(issues: Vec<Issue>) -> Self {
        MemoryTracker {
            inner: Mutex::new(Inner {
                issues,
                ..Inner::default()
            }),
        }
    }

    /// Adds or replaces (by identifier) an issue.
    pub fn upsert(&self, issue: Issue) {
        let mut inner = self.lock();
        match inner.issues.iter_mut().find(|i| i.identifier == issue.identifier) {
            Some(slot) => *slot = issue,
            None => inner.issues.push(issue),
        }
    }

    /// A copy of one issue.
    pub fn get(&self, identifier: &str) -> Option<Issue> {
        self.lock().issues.iter().find(|i| i.identifier == identifier).cloned()
    }

    /// Every state move made through the tracker, in order.
    pub fn moves(&self) -> Vec<(String, String)> {
        self.lock().moves.clone()
    }

    /// Makes every later call fail with `error` (or succeed again with `None`).
    pub fn set_failure(&self, error: Option<TrackerError>) {
        self.lock().failure = error;
    }

    /// Number of calls made so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a test panicked while holding it; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self) -> Result<std::sync::MutexGuard<'_, Inner>, TrackerError> {
        let mut inner = self.lock();
        inner.calls += 1;
        match &inner.failure {
            Some(e) => Err(e.clone()),
            None => Ok(inner),
        }
    }
}

#[async_trait]
impl Tracker for MemoryTracker {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn fetch_candidates(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.begin()?;
        Ok(inner
            .issues
            .iter()
            .filter(|i| states.iter().any(|s| s.eq_ignore_ascii_case(&i.state)))
            .cloned()
            .collect())
    }

    async fn fetch_by_identifiers(&self, identifiers: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.begin()?;
        Ok(inner
            .issues
            .iter()
            .filter(|i| identifiers.contains(&i.identifier))
            .cloned()
            .collect())
    }

    async fn fetch_issue(&self, identifier: &str) -> Result<Option<Issue>, TrackerError> {
        let inner = self.begin()?;
        Ok(inner.issues.iter().find(|i| i.identifier == identifier).cloned())
    }

    async fn move_state(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let mut inner = self.begin()?;
        let issue = inner
            .issues
            .iter_mut()
            .find(|i| i.identifier == identifier)
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        issue.state = state.to_string();
        issue.updated_at = Some(Utc::now());
        inner.moves.push((identifier.to_string(), state.to_string()));
        Ok(())
    }

    async fn add_comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let mut inner = self.begin()?;
        let issue = inner
            .issues
            .iter_mut()
            .find(|i| i.identifier == identifier)
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let n = issue.comments.len() + 1;
        issue.comments.push(Comment {
            id: format!("{identifier}-c{n}"),
            author: "itervox".into(),
            body: body.to_string(),
            created_at: Some(Utc::now()),
        });
        Ok(())
    }

    async fn record_branch(&self, identifier: &str, branch: &str) -> Result<(), TrackerError> {
        let mut inner = self.begin()?;
        if let Some(issue) = inner.issues.iter_mut().find(|i| i.identifier == identifier) {
            issue.branch_name = Some(branch.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(id: &str, state: &str) -> Issue {
        Issue {
            id: id.into(),
            identifier: id.into(),
            title: format!("title {id}"),
            state: state.into(),
            ..Issue::default()
        }
    }

    #[tokio::test]
    async fn filters_by_state_case_insensitively_and_records_moves() {
        let t = MemoryTracker::new(vec![issue("A-1", "Todo"), issue("A-2", "Done")]);
        let got = t.fetch_candidates(&["todo".into()]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].identifier, "A-1");
        assert!(t.fetch_candidates(&[]).await.unwrap().is_empty());
        assert_eq!(t.calls(), 1, "an empty state list makes no call");

        t.move_state("A-1", "In Progress").await.unwrap();
        assert_eq!(t.get("A-1").unwrap().state, "In Progress");
        assert_eq!(t.moves(), vec![("A-1".to_string(), "In Progress".to_string())]);
        assert!(matches!(
            t.move_state("Z-9", "Done").await,
            Err(TrackerError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn injected_failure_fails_every_call() {
        let t = MemoryTracker::new(vec![issue("A-1", "Todo")]);
        t.set_failure(Some(TrackerError::Transport("down".into())));
        assert!(t.fetch_candidates(&["Todo".into()]).await.is_err());
        t.set_failure(None);
        assert_eq!(t.fetch_candidates(&["Todo".into()]).await.unwrap().len(), 1);
    }
}
