//! The GitHub Issues adapter: REST at `tracker.endpoint` (default `https://api.github.com`;
//! Enterprise `https://host/api/v3`) for the repository `tracker.project_slug` (`owner/repo`),
//! authenticated with a token (`Authorization: Bearer`).
//!
//! Conventions (GitHub has no workflow states):
//! - **Identifiers** are `#<number>`; `<number>` and `owner/repo#<number>` are accepted too, because
//!   identifiers travel in API paths where `#` is awkward. `Issue::id` is the number.
//! - **States are labels.** An open issue is in the state named by its first label that matches an
//!   active, backlog, working, completion or failed state (case-insensitive; the state keeps the
//!   configuration's spelling). An open issue without such a label is in no state and never a
//!   candidate. A closed issue is terminal: the first terminal state it carries as a label, else the
//!   first configured terminal state (`Done`), else `Closed`.
//! - **Pull requests** (items with a `pull_request` key) are never issues.
//! - **State moves** swap labels: the new state's label is added and the other state labels removed
//!   one by one (other labels are never touched). A terminal state closes the issue (its label is
//!   added only when it is not the default terminal state, so it reads back); a non-terminal state
//!   on a closed issue reopens it.
//! - **Branches** are recorded in one comment with a hidden `<!-- itervox:branch:NAME -->` marker,
//!   edited rather than duplicated; without it, the head branch of a pull request that references
//!   the issue is used.
//! - **Blockers** are the `#N` references after "blocked by" / "depends on" in the body.
//!
//! Candidates are fetched with one `labels=<state>` listing per requested state rather than one
//! listing of every open issue filtered here: a repository usually has far more open issues than
//! issues in Itervox's states, each listing is typically a single page, and an unchanged listing
//! answers `304` from the ETag cache without using the request budget. Requested terminal states add
//! one listing of closed issues.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::http::{self, DEFAULT_REQUEST_TIMEOUT};
use super::rate_gate::Call;
use super::{Blocker, Issue, RateBudget, Tracker, TrackerError};
use crate::config::TrackerConfig;

mod issue_json;
mod rest;

use issue_json::GhIssue;
use rest::Rest;

/// The public API.
pub const DEFAULT_ENDPOINT: &str = "https://api.github.com";
/// Items per page (GitHub's maximum).
const PER_PAGE: &str = "100";
/// Listing pages followed at most (10 000 items).
const MAX_PAGES: usize = 100;
/// Blocker states looked up one by one per call at most; the rest stay unknown.
const MAX_BLOCKER_LOOKUPS: usize = 20;
/// The state of a closed issue when no terminal states are configured.
const CLOSED: &str = "Closed";

#[derive(Debug)]
pub struct GithubTracker {
    rest: Rest,
    owner: String,
    repo: String,
    /// States that open issues can be in, in priority order (active, backlog, working, completion,
    /// failed), deduplicated.
    open_states: Vec<String>,
    terminal_states: Vec<String>,
}

impl GithubTracker {
    /// An adapter for `tracker.project_slug` (`owner/repo`) at the configured endpoint.
    /// `reserve_percent` of the request budget is kept for writes.
    pub fn new(config: &TrackerConfig, reserve_percent: u32) -> Result<Self, TrackerError> {
        let slug = config.project_slug.trim();
        let (owner, repo) = slug
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| {
                TrackerError::Malformed(format!("tracker.project_slug {slug:?} must be owner/repo for GitHub"))
            })?;
        let token = config
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| TrackerError::Auth("tracker.api_key is empty (set it to $GITHUB_TOKEN)".into()))?;
        let endpoint = config.endpoint.as_deref().filter(|e| !e.trim().is_empty());
        let base = http::parse_endpoint(endpoint.unwrap_or(DEFAULT_ENDPOINT))?;

        let mut open_states: Vec<String> = Vec::new();
        let extra = [&config.working_state, &config.completion_state, &config.failed_state];
        let candidates = config
            .active_states
            .iter()
            .chain(&config.backlog_states)
            .chain(extra.into_iter().flatten());
        for s in candidates {
            if !s.trim().is_empty() && !config.is_terminal(s) && !open_states.iter().any(|o| o.eq_ignore_ascii_case(s))
            {
                open_states.push(s.clone());
            }
        }
        Ok(GithubTracker {
            rest: Rest::new(base, token.to_string(), reserve_percent, DEFAULT_REQUEST_TIMEOUT)?,
            owner: owner.to_string(),
            repo: repo.to_string(),
            open_states,
            terminal_states: config.terminal_states.clone(),
        })
    }

    /// The same adapter with another per-request timeout (tests use short ones).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Result<Self, TrackerError> {
        self.rest = self.rest.with_timeout(timeout)?;
        Ok(self)
    }

    fn is_terminal(&self, state: &str) -> bool {
        self.terminal_states.iter().any(|s| s.eq_ignore_ascii_case(state))
            || (self.terminal_states.is_empty() && state.eq_ignore_ascii_case(CLOSED))
    }

    fn default_terminal(&self) -> &str {
        self.terminal_states.first().map_or(CLOSED, String::as_str)
    }

    /// The issue number an identifier names: `#7`, `7` or `owner/repo#7` (this repository).
    fn number(&self, identifier: &str) -> Option<u64> {
        let id = identifier.trim();
        let number = match id.rsplit_once('#') {
            Some(("", n)) => n,
            Some((repo, n)) if repo.eq_ignore_ascii_case(&format!("{}/{}", self.owner, self.repo)) => n,
            Some(_) => return None,
            None => id,
        };
        number.parse().ok().filter(|n| *n > 0)
    }

    fn issue_url(&self, rest: &[&str], query: &[(&str, &str)]) -> Url {
        let mut segments = vec!["repos", self.owner.as_str(), self.repo.as_str(), "issues"];
        segments.extend_from_slice(rest);
        self.rest.url(&segments, query)
    }

    /// The state of an issue by the label rules; `None` for an open issue in no state. `extra` are
    /// states a caller asked for that the configuration may not list (yet).
    fn state_of(&self, issue: &GhIssue, extra: &[String]) -> Option<String> {
        if !issue.open {
            let labelled = self
                .terminal_states
                .iter()
                .find(|t| issue.labels.iter().any(|l| l.eq_ignore_ascii_case(t)));
            return Some(labelled.map_or(self.default_terminal(), String::as_str).to_string());
        }
        issue.labels.iter().find_map(|label| {
            self.open_states
                .iter()
                .chain(extra.iter().filter(|s| !self.is_terminal(s)))
                .find(|s| s.eq_ignore_ascii_case(label))
                .cloned()
        })
    }

    fn to_issue(&self, gh: &GhIssue, state: String) -> Issue {
        let body = gh.body.as_deref().unwrap_or_default();
        Issue {
            id: gh.number.to_string(),
            identifier: format!("#{}", gh.number),
            title: gh.title.clone(),
            description: gh.body.clone().filter(|b| !b.trim().is_empty()),
            state,
            priority: issue_json::priority_from_labels(&gh.labels),
            labels: gh.labels.iter().map(|l| l.to_lowercase()).collect(),
            url: gh.html_url.clone(),
            branch_name: None,
            blocked_by: issue_json::blockers_in(body)
                .into_iter()
                .filter(|n| *n != gh.number)
                .map(|n| Blocker {
                    id: n.to_string(),
                    identifier: format!("#{n}"),
                    state: None,
                })
                .collect(),
            comments: Vec::new(),
            created_at: gh.created_at,
            updated_at: gh.updated_at,
        }
    }

    /// Every item of a listing, following `Link: rel="next"`.
    async fn list(&self, call: Call, first: Url) -> Result<Vec<Value>, TrackerError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                tracing::warn!(tracker = "github", url = %url, "Stopping a GitHub listing after {MAX_PAGES} pages");
                break;
            }
            let answer = self.rest.get(call, url.clone()).await?;
            match answer.json("listing")? {
                Value::Array(page) => items.extend(page),
                _ => {
                    return Err(TrackerError::Malformed(format!(
                        "GitHub listing {}: not a JSON array",
                        url.path()
                    )));
                }
            }
            next = answer.next;
        }
        Ok(items)
    }

    /// One issue by number; `Ok(None)` when missing or a pull request.
    async fn get_issue(&self, call: Call, number: u64) -> Result<Option<GhIssue>, TrackerError> {
        let url = self.issue_url(&[&number.to_string()], &[]);
        let answer = match self.rest.get(call, url).await {
            Ok(a) => a,
            Err(TrackerError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let gh = issue_json::parse_issue(&answer.json("issue")?)
            .map_err(|e| TrackerError::Malformed(format!("GitHub issue #{number}: {e}")))?;
        Ok((!gh.is_pull_request).then_some(gh))
    }

    /// Fills in blocker states: from `known` (number -> state) when there, else one lookup each.
    async fn resolve_blockers(&self, call: Call, issues: &mut [Issue], known: &HashMap<u64, String>) {
        let mut states = known.clone();
        let mut lookups = 0;
        for issue in issues.iter_mut() {
            for blocker in &mut issue.blocked_by {
                let Ok(n) = blocker.id.parse::<u64>() else { continue };
                if !states.contains_key(&n) && lookups < MAX_BLOCKER_LOOKUPS {
                    lookups += 1;
                    match self.get_issue(call, n).await {
                        Ok(Some(gh)) => {
                            if let Some(s) = self.state_of(&gh, &[]) {
                                states.insert(n, s);
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(tracker = "github", blocker = n, error = %e, "Blocker state unknown");
                        }
                    }
                }
                blocker.state = states.get(&n).cloned();
            }
        }
    }

    /// All comments of an issue with their numeric ids, oldest first.
    async fn comments(&self, number: u64) -> Result<Vec<(u64, super::Comment)>, TrackerError> {
        let n = number.to_string();
        let url = self.issue_url(&[&n, "comments"], &[("per_page", PER_PAGE)]);
        let items = self
            .list(Call::Other, url)
            .await
            .map_err(|e| not_found_as(e, &format!("#{number}")))?;
        Ok(items.iter().filter_map(issue_json::parse_comment).collect())
    }

    /// The head branch of a pull request that references the issue (the latest open one, else the
    /// latest), from the issue's timeline.
    async fn linked_pr_branch(&self, number: u64) -> Option<String> {
        let n = number.to_string();
        let url = self.issue_url(&[&n, "timeline"], &[("per_page", PER_PAGE)]);
        let events = match self.list(Call::Other, url).await {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(tracker = "github", issue = number, error = %e, "No timeline for the linked PR lookup");
                return None;
            }
        };
        let this_repo = format!("{}/{}", self.owner, self.repo);
        let prs: Vec<(u64, bool)> = events
            .iter()
            .filter(|e| e.get("event").and_then(Value::as_str) == Some("cross-referenced"))
            .filter_map(|e| e.get("source")?.get("issue"))
            .filter(|i| i.get("pull_request").is_some_and(|p| !p.is_null()))
            .filter(|i| {
                i.get("repository")
                    .and_then(|r| r.get("full_name"))
                    .and_then(Value::as_str)
                    .is_none_or(|r| r.eq_ignore_ascii_case(&this_repo))
            })
            .filter_map(|i| Some((i.get("number")?.as_u64()?, i.get("state")?.as_str()? == "open")))
            .collect();
        let pick = prs.iter().rev().find(|(_, open)| *open).or(prs.last())?.0;
        let url = self
            .rest
            .url(&["repos", &self.owner, &self.repo, "pulls", &pick.to_string()], &[]);
        let pr = self.rest.get(Call::Other, url).await.ok()?.json("pull request").ok()?;
        pr.get("head")?.get("ref")?.as_str().map(str::to_string)
    }

    async fn add_labels(&self, number: u64, labels: &[&str]) -> Result<(), TrackerError> {
        let n = number.to_string();
        self.rest
            .send(
                Method::POST,
                self.issue_url(&[&n, "labels"], &[]),
                Some(json!({ "labels": labels })),
            )
            .await
            .map(drop)
    }

    async fn remove_label(&self, number: u64, label: &str) -> Result<(), TrackerError> {
        let n = number.to_string();
        match self
            .rest
            .send(Method::DELETE, self.issue_url(&[&n, "labels", label], &[]), None)
            .await
        {
            // Already gone (someone removed it meanwhile): the goal is reached.
            Ok(_) | Err(TrackerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn set_open(&self, number: u64, open: bool, reason: &str) -> Result<(), TrackerError> {
        let n = number.to_string();
        let body = if open {
            json!({"state": "open"})
        } else {
            json!({"state": "closed", "state_reason": reason})
        };
        self.rest
            .send(Method::PATCH, self.issue_url(&[&n], &[]), Some(body))
            .await
            .map(drop)
    }
}

/// A "not found" from the REST layer, reported as the identifier being missing.
fn not_found_as(e: TrackerError, identifier: &str) -> TrackerError {
    match e {
        TrackerError::NotFound(_) => TrackerError::NotFound(identifier.to_string()),
        e => e,
    }
}

#[async_trait]
impl Tracker for GithubTracker {
    fn kind(&self) -> &'static str {
        "github"
    }

    async fn fetch_candidates(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = |state: &str| states.iter().any(|s| s.eq_ignore_ascii_case(state));
        let mut labels: Vec<&String> = Vec::new();
        for s in states.iter().filter(|s| !self.is_terminal(s)) {
            if !labels.iter().any(|l| l.eq_ignore_ascii_case(s)) {
                labels.push(s);
            }
        }
        let mut listings: Vec<Url> = labels
            .iter()
            .map(|label| {
                self.issue_url(
                    &[],
                    &[("state", "open"), ("labels", label.as_str()), ("per_page", PER_PAGE)],
                )
            })
            .collect();
        if states.iter().any(|s| self.is_terminal(s)) {
            listings.push(self.issue_url(&[], &[("state", "closed"), ("per_page", PER_PAGE)]));
        }

        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for url in listings {
            for item in self.list(Call::Poll, url).await? {
                let gh = match issue_json::parse_issue(&item) {
                    Ok(gh) => gh,
                    Err(e) => {
                        tracing::warn!(tracker = "github", error = %e, "Skipping a malformed GitHub issue");
                        continue;
                    }
                };
                if gh.is_pull_request || !seen.insert(gh.number) {
                    continue;
                }
                if let Some(state) = self.state_of(&gh, states).filter(|s| wanted(s)) {
                    out.push(self.to_issue(&gh, state));
                }
            }
        }
        let known: HashMap<u64, String> = out
            .iter()
            .filter_map(|i| Some((i.id.parse().ok()?, i.state.clone())))
            .collect();
        self.resolve_blockers(Call::Poll, &mut out, &known).await;
        Ok(out)
    }

    async fn fetch_by_identifiers(&self, identifiers: &[String]) -> Result<Vec<Issue>, TrackerError> {
        let mut numbers: Vec<u64> = Vec::new();
        for id in identifiers {
            match self.number(id) {
                Some(n) if !numbers.contains(&n) => numbers.push(n),
                Some(_) => {}
                None => tracing::debug!(tracker = "github", identifier = %id, "Not a GitHub issue identifier"),
            }
        }
        let mut out = Vec::new();
        for n in numbers {
            if let Some(gh) = self.get_issue(Call::Poll, n).await? {
                // An open issue that lost its state label is still reported, in no state, so the
                // scheduler sees that it left the active states.
                let state = self.state_of(&gh, &[]).unwrap_or_default();
                out.push(self.to_issue(&gh, state));
            }
        }
        let known: HashMap<u64, String> = out
            .iter()
            .filter(|i| !i.state.is_empty())
            .filter_map(|i| Some((i.id.parse().ok()?, i.state.clone())))
            .collect();
        self.resolve_blockers(Call::Poll, &mut out, &known).await;
        Ok(out)
    }

    async fn fetch_issue(&self, identifier: &str) -> Result<Option<Issue>, TrackerError> {
        let Some(n) = self.number(identifier) else {
            return Ok(None);
        };
        let Some(gh) = self.get_issue(Call::Other, n).await? else {
            return Ok(None);
        };
        let mut issue = self.to_issue(&gh, self.state_of(&gh, &[]).unwrap_or_default());
        let comments = self.comments(n).await?;
        issue.branch_name = comments
            .iter()
            .rev()
            .find_map(|(_, c)| issue_json::branch_marker(&c.body));
        if issue.branch_name.is_none() {
            issue.branch_name = self.linked_pr_branch(n).await;
        }
        issue.comments = comments.into_iter().map(|(_, c)| c).collect();
        let mut one = [issue];
        self.resolve_blockers(Call::Other, &mut one, &HashMap::new()).await;
        let [issue] = one;
        Ok(Some(issue))
    }

    async fn move_state(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let n = self
            .number(identifier)
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let gh = self
            .get_issue(Call::Other, n)
            .await?
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let terminal = self.is_terminal(state);
        let is_state_label = |label: &str| {
            self.open_states
                .iter()
                .chain(&self.terminal_states)
                .any(|s| s.eq_ignore_ascii_case(label))
        };
        let stale: Vec<&String> = gh
            .labels
            .iter()
            .filter(|l| is_state_label(l) && !l.eq_ignore_ascii_case(state))
            .collect();
        let has_label = gh.labels.iter().any(|l| l.eq_ignore_ascii_case(state));
        let wants_label = !terminal || !state.eq_ignore_ascii_case(self.default_terminal());

        if !terminal && !gh.open {
            self.set_open(n, true, "").await?;
        }
        if wants_label && !has_label {
            self.add_labels(n, &[state]).await?;
        }
        for label in stale {
            self.remove_label(n, label).await?;
        }
        if terminal && gh.open {
            let lower = state.to_ascii_lowercase();
            let reason = if ["cancel", "duplicate", "won't", "wont"]
                .iter()
                .any(|w| lower.contains(w))
            {
                "not_planned"
            } else {
                "completed"
            };
            self.set_open(n, false, reason).await?;
        }
        Ok(())
    }

    async fn add_comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let n = self
            .number(identifier)
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let ns = n.to_string();
        self.rest
            .send(
                Method::POST,
                self.issue_url(&[&ns, "comments"], &[]),
                Some(json!({ "body": body })),
            )
            .await
            .map(drop)
            .map_err(|e| not_found_as(e, identifier))
    }

    async fn record_branch(&self, identifier: &str, branch: &str) -> Result<(), TrackerError> {
        let n = self
            .number(identifier)
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let branch = branch.trim();
        if branch.is_empty() || branch.contains(['\n', '\r']) || branch.contains("-->") {
            return Err(TrackerError::Malformed(format!(
                "{branch:?} is not a branch name (issue {identifier})"
            )));
        }
        let markers: Vec<(u64, String)> = self
            .comments(n)
            .await?
            .into_iter()
            .filter_map(|(id, c)| Some((id, issue_json::branch_marker(&c.body)?)))
            .collect();
        if markers.iter().any(|(_, b)| b == branch) {
            return Ok(());
        }
        let body = json!({ "body": issue_json::branch_comment_body(branch) });
        match markers.first() {
            Some((comment_id, _)) => {
                let url = self.rest.url(
                    &[
                        "repos",
                        &self.owner,
                        &self.repo,
                        "issues",
                        "comments",
                        &comment_id.to_string(),
                    ],
                    &[],
                );
                self.rest.send(Method::PATCH, url, Some(body)).await.map(drop)
            }
            None => {
                let ns = n.to_string();
                self.rest
                    .send(Method::POST, self.issue_url(&[&ns, "comments"], &[]), Some(body))
                    .await
                    .map(drop)
            }
        }
        .map_err(|e| not_found_as(e, identifier))
    }

    async fn has_comment_with_marker(&self, identifier: &str, marker: &str) -> Result<bool, TrackerError> {
        let n = self
            .number(identifier)
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        Ok(self.comments(n).await?.iter().any(|(_, c)| c.body.contains(marker)))
    }

    fn rate_budget(&self) -> Option<RateBudget> {
        self.rest.budget()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(config: TrackerConfig) -> GithubTracker {
        GithubTracker::new(
            &TrackerConfig {
                api_key: Some("t".into()),
                project_slug: "octo/repo".into(),
                ..config
            },
            10,
        )
        .unwrap()
    }

    fn gh(open: bool, labels: &[&str]) -> GhIssue {
        GhIssue {
            number: 1,
            title: "t".into(),
            body: None,
            open,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            html_url: None,
            created_at: None,
            updated_at: None,
            is_pull_request: false,
        }
    }

    #[test]
    fn identifiers_name_issue_numbers() {
        let t = tracker(TrackerConfig::default());
        assert_eq!(t.number("#7"), Some(7));
        assert_eq!(t.number("7"), Some(7));
        assert_eq!(t.number("Octo/Repo#7"), Some(7));
        assert_eq!(t.number("other/repo#7"), None);
        assert_eq!(t.number("ENG-7"), None);
        assert_eq!(t.number("#0"), None);
    }

    #[test]
    fn states_come_from_labels_and_closing() {
        let t = tracker(TrackerConfig {
            completion_state: Some("Review".into()),
            ..TrackerConfig::default()
        });
        assert_eq!(
            t.state_of(&gh(true, &["bug", "in progress", "todo"]), &[]).as_deref(),
            Some("In Progress")
        );
        assert_eq!(t.state_of(&gh(true, &["review"]), &[]).as_deref(), Some("Review"));
        assert_eq!(
            t.state_of(&gh(true, &["bug"]), &[]),
            None,
            "an open issue without a state label"
        );
        assert_eq!(
            t.state_of(&gh(true, &["Done"]), &[]),
            None,
            "a terminal label does not close an issue"
        );
        assert_eq!(t.state_of(&gh(false, &["todo"]), &[]).as_deref(), Some("Done"));
        assert_eq!(
            t.state_of(&gh(false, &["cancelled"]), &[]).as_deref(),
            Some("Cancelled")
        );
        assert_eq!(
            t.state_of(&gh(true, &["triage"]), &["Triage".into()]).as_deref(),
            Some("Triage"),
            "a state the caller asks for counts"
        );
        let no_terminal = tracker(TrackerConfig {
            terminal_states: vec![],
            ..TrackerConfig::default()
        });
        assert_eq!(no_terminal.state_of(&gh(false, &[]), &[]).as_deref(), Some("Closed"));
    }

    #[test]
    fn the_slug_and_the_token_are_required() {
        let bad_slug = GithubTracker::new(
            &TrackerConfig {
                api_key: Some("t".into()),
                project_slug: "octo".into(),
                ..TrackerConfig::default()
            },
            10,
        );
        assert!(matches!(bad_slug, Err(TrackerError::Malformed(m)) if m.contains("owner/repo")));
        let no_token = GithubTracker::new(
            &TrackerConfig {
                project_slug: "octo/repo".into(),
                ..TrackerConfig::default()
            },
            10,
        );
        assert!(matches!(no_token, Err(TrackerError::Auth(_))));
    }
}
