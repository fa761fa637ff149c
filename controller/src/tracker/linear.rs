//! The Linear adapter: GraphQL over HTTPS at `tracker.endpoint` (default
//! `https://api.linear.app/graphql`), authenticated with the personal API key in `Authorization`.
//!
//! - Candidates: issues whose state name matches one of the requested states (case-insensitive),
//!   within the project filter (project `slugId`s), 50 per page following `pageInfo`, in Linear's
//!   order. Refresh by identifiers: one `or` filter of `team.key` + `number` per identifier, 50
//!   identifiers per request.
//! - Blockers: `inverseRelations` of type `blocks` (a relation "A blocks B" is stored on A, so B sees
//!   it as an inverse relation), with the blocker's current state.
//! - State moves resolve the state name to the issue's team's workflow-state id (cached per team).
//! - Branches: Linear computes `branchName` itself and has no field to write one, so
//!   `record_branch` keeps the trait's no-op default.
//! - Rate limits: the `X-RateLimit-Requests-*` headers (resets in epoch milliseconds) feed
//!   `rate_budget()`; polling reads are refused while the remaining budget is below the write
//!   reserve; a `RATELIMITED` GraphQL error (HTTP 400) or an HTTP 429 blocks every request until the
//!   reset (`Retry-After`, else the exhausted budget's reset, else a minute).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::http::{self, DEFAULT_REQUEST_TIMEOUT};
use super::rate_gate::{Call, RateGate};
use super::{Issue, Project, RateBudget, Tracker, TrackerError};
use crate::config::TrackerConfig;

mod node;
mod query;

/// The public GraphQL endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.linear.app/graphql";
/// Issues per page (Linear's default page size).
const PAGE_SIZE: usize = 50;
/// A refresh asks for at most this many identifiers per request.
const IDENTIFIERS_PER_REQUEST: usize = 50;
/// A runaway pagination (a server that keeps saying "next page") stops here.
const MAX_PAGES: usize = 200;
/// How long to hold off after a rate-limit signal that carries no reset time.
const DEFAULT_RATE_LIMIT_WAIT: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Debug)]
pub struct LinearTracker {
    http: reqwest::Client,
    endpoint: Url,
    api_key: String,
    /// Projects from the configuration: `None` = all projects.
    default_projects: Option<Vec<String>>,
    /// Set through `set_project_filter`: `None` = use the configured default, `Some([])` = all.
    project_override: Mutex<Option<Vec<String>>>,
    gate: Mutex<RateGate>,
    /// Team id -> its workflow states `(id, name)`.
    team_states: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Identifier -> issue UUID, learnt from every issue read.
    issue_ids: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LinearTracker {
    /// An adapter for the configured endpoint and key. `reserve_percent` of the request budget is
    /// kept for writes (`polling.rate_limit_reserve_percent`).
    pub fn new(config: &TrackerConfig, reserve_percent: u32) -> Result<Self, TrackerError> {
        let api_key = config
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| TrackerError::Auth("tracker.api_key is empty (set it to $LINEAR_API_KEY)".into()))?
            .to_string();
        let endpoint = http::parse_endpoint(config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT))?;
        let default_projects = match &config.project_filter {
            Some(list) if list.is_empty() => None,
            Some(list) => Some(list.clone()),
            None if config.project_slug.trim().is_empty() => None,
            None => Some(vec![config.project_slug.trim().to_string()]),
        };
        Ok(LinearTracker {
            http: http::build_client(&endpoint, DEFAULT_REQUEST_TIMEOUT)?,
            endpoint,
            api_key,
            default_projects,
            project_override: Mutex::new(None),
            gate: Mutex::new(RateGate::new(reserve_percent)),
            team_states: Mutex::new(HashMap::new()),
            issue_ids: Mutex::new(HashMap::new()),
        })
    }

    /// The same adapter with another per-request timeout (tests use short ones).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Result<Self, TrackerError> {
        self.http = http::build_client(&self.endpoint, timeout)?;
        Ok(self)
    }

    /// The project slugs candidates are limited to; `None` = all projects.
    pub fn effective_project_filter(&self) -> Option<Vec<String>> {
        match lock(&self.project_override).as_ref() {
            None => self.default_projects.clone(),
            Some(list) if list.is_empty() => None,
            Some(list) => Some(list.clone()),
        }
    }

    /// Sends one operation; returns its `data`.
    async fn graphql(&self, call: Call, op: (&str, &str), variables: Value) -> Result<Value, TrackerError> {
        let (name, document) = op;
        lock(&self.gate).admit(call, Utc::now())?;
        let body = json!({
            "query": query::document(document),
            "variables": variables,
            "operationName": name,
        });
        let what = format!("Linear {name}");
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::AUTHORIZATION, &self.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| http::transport_error(&what, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.observe(&headers);
        let text = response.text().await.map_err(|e| http::transport_error(&what, &e))?;

        if status.as_u16() == 429 {
            return Err(self.rate_limited(&headers));
        }
        if status.is_server_error() {
            return Err(TrackerError::Transport(format!(
                "{what}: HTTP {status}: {}",
                http::excerpt(&text, 200)
            )));
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(TrackerError::Auth(format!(
                "{what}: HTTP {status}: {}",
                http::excerpt(&text, 200)
            )));
        }
        let parsed: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) if !status.is_success() => {
                return Err(TrackerError::Transport(format!(
                    "{what}: HTTP {status}: {}",
                    http::excerpt(&text, 200)
                )));
            }
            Err(e) => {
                return Err(TrackerError::Malformed(format!(
                    "{what}: the response is not JSON: {e}"
                )));
            }
        };
        if let Some(errors) = parsed.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            return Err(self.classify_errors(&what, errors, &headers));
        }
        if !status.is_success() {
            return Err(TrackerError::Transport(format!(
                "{what}: HTTP {status}: {}",
                http::excerpt(&text, 200)
            )));
        }
        match parsed.get("data") {
            Some(data) if data.is_object() => Ok(data.clone()),
            _ => Err(TrackerError::Malformed(format!(
                "{what}: the response has no `data` object"
            ))),
        }
    }

    fn observe(&self, headers: &HeaderMap) {
        lock(&self.gate).observe(
            http::header_u64(headers, "x-ratelimit-requests-limit"),
            http::header_u64(headers, "x-ratelimit-requests-remaining"),
            http::header_u64(headers, "x-ratelimit-requests-reset").and_then(http::epoch_to_time),
        );
    }

    /// Blocks all requests until the rate limit lifts and returns the error to report. The wait is
    /// `Retry-After` when given, else the reset of the exhausted budget (requests, then complexity),
    /// else a minute.
    fn rate_limited(&self, headers: &HeaderMap) -> TrackerError {
        let now = Utc::now();
        let exhausted_reset = |prefix: &str| {
            (http::header_u64(headers, &format!("x-ratelimit-{prefix}-remaining")) == Some(0))
                .then(|| http::header_u64(headers, &format!("x-ratelimit-{prefix}-reset")))
                .flatten()
                .and_then(http::epoch_to_time)
                .filter(|t| *t > now)
        };
        let reset = http::retry_after(headers, now)
            .or_else(|| exhausted_reset("requests"))
            .or_else(|| exhausted_reset("complexity"))
            .unwrap_or(now + DEFAULT_RATE_LIMIT_WAIT);
        let until = lock(&self.gate).block_until(reset, now);
        tracing::warn!(tracker = "linear", reset_at = %until.to_rfc3339(), "Linear rate limit reached; holding requests until the reset");
        TrackerError::RateLimited { reset_at: Some(until) }
    }

    /// GraphQL `errors` to the error kind callers branch on.
    fn classify_errors(&self, what: &str, errors: &[Value], headers: &HeaderMap) -> TrackerError {
        let messages: Vec<String> = errors
            .iter()
            .map(|e| {
                e.get("extensions")
                    .and_then(|x| x.get("userPresentableMessage"))
                    .or_else(|| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string()
            })
            .collect();
        let message = format!("{what}: {}", messages.join("; "));
        let ext = |e: &Value, key: &str| {
            e.get("extensions")
                .and_then(|x| x.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        if errors
            .iter()
            .any(|e| ext(e, "code") == "ratelimited" || ext(e, "type") == "ratelimited")
        {
            return self.rate_limited(headers);
        }
        if errors.iter().any(|e| {
            let (code, kind) = (ext(e, "code"), ext(e, "type"));
            code.contains("authentication")
                || kind.contains("authentication")
                || code == "forbidden"
                || kind == "forbidden"
        }) {
            return TrackerError::Auth(message);
        }
        if errors.iter().any(|e| {
            ext(e, "code") == "entity_not_found"
                || e.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.to_ascii_lowercase().contains("not found"))
        }) {
            return TrackerError::NotFound(message);
        }
        TrackerError::Malformed(message)
    }

    /// Every issue matching `filter`, page after page. `strict`: a malformed node fails the whole
    /// read (refreshes); otherwise it is logged and skipped (lists).
    async fn issues(&self, call: Call, filter: Value, strict: bool) -> Result<Vec<Issue>, TrackerError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let data = self
                .graphql(
                    call,
                    query::ISSUES,
                    json!({"filter": filter, "first": PAGE_SIZE, "after": after}),
                )
                .await?;
            let connection = data
                .get("issues")
                .ok_or_else(|| TrackerError::Malformed("Linear ItervoxIssues: no `issues` in the answer".into()))?;
            let nodes = connection
                .get("nodes")
                .and_then(Value::as_array)
                .ok_or_else(|| TrackerError::Malformed("Linear ItervoxIssues: `issues.nodes` is not a list".into()))?;
            for node in nodes {
                match node::issue(node) {
                    Ok(issue) => {
                        self.remember(&issue);
                        out.push(issue);
                    }
                    Err(e) if strict => {
                        return Err(TrackerError::Malformed(format!("Linear ItervoxIssues: {e}")));
                    }
                    Err(e) => tracing::warn!(tracker = "linear", error = %e, "Skipping a malformed Linear issue"),
                }
            }
            let page = connection.get("pageInfo");
            let has_next = page
                .and_then(|p| p.get("hasNextPage"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let cursor = page
                .and_then(|p| p.get("endCursor"))
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            match cursor {
                Some(c) if has_next => {
                    if after.as_deref() == Some(c.as_str()) {
                        return Err(TrackerError::Malformed(
                            "Linear ItervoxIssues: pagination returned the same cursor twice".into(),
                        ));
                    }
                    after = Some(c);
                }
                None if has_next => {
                    return Err(TrackerError::Malformed(
                        "Linear ItervoxIssues: hasNextPage without an endCursor".into(),
                    ));
                }
                _ => return Ok(out),
            }
        }
        Err(TrackerError::Malformed(format!(
            "Linear ItervoxIssues: more than {MAX_PAGES} pages"
        )))
    }

    fn remember(&self, issue: &Issue) {
        lock(&self.issue_ids).insert(issue.identifier.clone(), issue.id.clone());
    }

    /// The issue's UUID, team id and current state, read fresh.
    async fn issue_team(&self, identifier: &str) -> Result<(String, String, String), TrackerError> {
        let data = self
            .graphql(Call::Other, query::ISSUE_TEAM, json!({"id": identifier}))
            .await
            .map_err(|e| not_found_as(e, identifier))?;
        let issue = data
            .get("issue")
            .filter(|i| !i.is_null())
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(issue, |v, k| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    TrackerError::Malformed(format!(
                        "Linear ItervoxIssueTeam: issue {identifier} has no `{}`",
                        path.join(".")
                    ))
                })
        };
        let id = field(&["id"])?;
        lock(&self.issue_ids).insert(identifier.to_string(), id.clone());
        Ok((id, field(&["team", "id"])?, field(&["state", "name"])?))
    }

    /// The team's workflow states, from the cache or Linear.
    async fn workflow_states(&self, team_id: &str, refresh: bool) -> Result<Vec<(String, String)>, TrackerError> {
        if !refresh && let Some(states) = lock(&self.team_states).get(team_id) {
            return Ok(states.clone());
        }
        let data = self
            .graphql(Call::Other, query::WORKFLOW_STATES, json!({"teamId": team_id}))
            .await?;
        let nodes = data
            .get("workflowStates")
            .and_then(|w| w.get("nodes"))
            .and_then(Value::as_array)
            .ok_or_else(|| TrackerError::Malformed("Linear ItervoxWorkflowStates: no `workflowStates.nodes`".into()))?;
        let states: Vec<(String, String)> = nodes
            .iter()
            .filter_map(|n| Some((n.get("id")?.as_str()?.to_string(), n.get("name")?.as_str()?.to_string())))
            .collect();
        lock(&self.team_states).insert(team_id.to_string(), states.clone());
        Ok(states)
    }

    /// The issue's UUID: remembered from an earlier read, else looked up.
    async fn issue_uuid(&self, identifier: &str) -> Result<String, TrackerError> {
        if let Some(id) = lock(&self.issue_ids).get(identifier) {
            return Ok(id.clone());
        }
        Ok(self.issue_team(identifier).await?.0)
    }

    /// `success: true` in a mutation's payload, or the error saying it was not applied.
    fn require_success(data: &Value, field: &str, identifier: &str) -> Result<(), TrackerError> {
        match data.get(field).and_then(|p| p.get("success")).and_then(Value::as_bool) {
            Some(true) => Ok(()),
            Some(false) => Err(TrackerError::Malformed(format!(
                "Linear {field} for {identifier} answered success: false"
            ))),
            None => Err(TrackerError::Malformed(format!(
                "Linear {field} for {identifier}: no `success` in the answer"
            ))),
        }
    }
}

/// A GraphQL "not found" error, reported as the identifier being missing.
fn not_found_as(e: TrackerError, identifier: &str) -> TrackerError {
    match e {
        TrackerError::NotFound(_) => TrackerError::NotFound(identifier.to_string()),
        e => e,
    }
}

/// `ENG-42` -> (`ENG`, 42); `None` for anything else.
fn split_identifier(identifier: &str) -> Option<(&str, u64)> {
    let (key, number) = identifier.trim().rsplit_once('-')?;
    let valid_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    Some((key, number.parse().ok()?)).filter(|_| valid_key)
}

#[async_trait]
impl Tracker for LinearTracker {
    fn kind(&self) -> &'static str {
        "linear"
    }

    async fn fetch_candidates(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let state_filters: Vec<Value> = states
            .iter()
            .map(|s| json!({"state": {"name": {"eqIgnoreCase": s}}}))
            .collect();
        let mut parts = vec![json!({ "or": state_filters })];
        if let Some(slugs) = self.effective_project_filter() {
            parts.push(json!({"project": {"slugId": {"in": slugs}}}));
        }
        self.issues(Call::Poll, json!({ "and": parts }), false).await
    }

    async fn fetch_by_identifiers(&self, identifiers: &[String]) -> Result<Vec<Issue>, TrackerError> {
        let mut wanted: Vec<&String> = Vec::new();
        for id in identifiers {
            if split_identifier(id).is_none() {
                tracing::debug!(tracker = "linear", identifier = %id, "Not a Linear identifier; left out of the refresh");
            } else if !wanted.contains(&id) {
                wanted.push(id);
            }
        }
        let mut out = Vec::new();
        for chunk in wanted.chunks(IDENTIFIERS_PER_REQUEST) {
            let alternatives: Vec<Value> = chunk
                .iter()
                .filter_map(|id| split_identifier(id))
                .map(|(key, number)| json!({"team": {"key": {"eq": key}}, "number": {"eq": number}}))
                .collect();
            let found = self.issues(Call::Poll, json!({ "or": alternatives }), true).await?;
            out.extend(found.into_iter().filter(|i| chunk.contains(&&i.identifier)));
        }
        Ok(out)
    }

    async fn fetch_issue(&self, identifier: &str) -> Result<Option<Issue>, TrackerError> {
        let data = match self.graphql(Call::Other, query::ISSUE, json!({"id": identifier})).await {
            Ok(data) => data,
            Err(TrackerError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match data.get("issue") {
            None | Some(Value::Null) => Ok(None),
            Some(node) => {
                let issue =
                    node::issue(node).map_err(|e| TrackerError::Malformed(format!("Linear ItervoxIssue: {e}")))?;
                self.remember(&issue);
                Ok(Some(issue))
            }
        }
    }

    async fn move_state(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let (issue_id, team_id, current) = self.issue_team(identifier).await?;
        if current.eq_ignore_ascii_case(state) {
            return Ok(());
        }
        let find = |states: &[(String, String)]| {
            states
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(state))
                .map(|(id, _)| id.clone())
        };
        let state_id = match find(&self.workflow_states(&team_id, false).await?) {
            Some(id) => id,
            // The cache may predate a state someone just added to the team.
            None => find(&self.workflow_states(&team_id, true).await?).ok_or_else(|| TrackerError::UnknownState {
                identifier: identifier.to_string(),
                state: state.to_string(),
            })?,
        };
        let data = self
            .graphql(
                Call::Other,
                query::ISSUE_UPDATE_STATE,
                json!({"id": issue_id, "stateId": state_id}),
            )
            .await
            .map_err(|e| not_found_as(e, identifier))?;
        Self::require_success(&data, "issueUpdate", identifier)
    }

    async fn add_comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let issue_id = self.issue_uuid(identifier).await?;
        let data = self
            .graphql(
                Call::Other,
                query::COMMENT_CREATE,
                json!({"issueId": issue_id, "body": body}),
            )
            .await
            .map_err(|e| not_found_as(e, identifier))?;
        Self::require_success(&data, "commentCreate", identifier)
    }

    async fn has_comment_with_marker(&self, identifier: &str, marker: &str) -> Result<bool, TrackerError> {
        let data = self
            .graphql(
                Call::Other,
                query::COMMENT_WITH_MARKER,
                json!({"id": identifier, "marker": marker}),
            )
            .await
            .map_err(|e| not_found_as(e, identifier))?;
        let issue = data
            .get("issue")
            .filter(|i| !i.is_null())
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let nodes = issue
            .get("comments")
            .and_then(|c| c.get("nodes"))
            .and_then(Value::as_array)
            .ok_or_else(|| TrackerError::Malformed("Linear ItervoxCommentWithMarker: no `comments.nodes`".into()))?;
        Ok(!nodes.is_empty())
    }

    async fn list_projects(&self) -> Result<Vec<Project>, TrackerError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let data = self
                .graphql(Call::Other, query::PROJECTS, json!({"after": after}))
                .await?;
            let connection = data.get("projects");
            let nodes = connection
                .and_then(|c| c.get("nodes"))
                .and_then(Value::as_array)
                .ok_or_else(|| TrackerError::Malformed("Linear ItervoxProjects: no `projects.nodes`".into()))?;
            for n in nodes {
                match node::project(n) {
                    Ok(p) => out.push(p),
                    Err(e) => tracing::warn!(tracker = "linear", error = %e, "Skipping a malformed Linear project"),
                }
            }
            let page = connection.and_then(|c| c.get("pageInfo"));
            let next = page
                .filter(|p| p.get("hasNextPage").and_then(Value::as_bool) == Some(true))
                .and_then(|p| p.get("endCursor"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match next {
                Some(c) if after.as_deref() != Some(c.as_str()) => after = Some(c),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    fn set_project_filter(&self, filter: Option<Vec<String>>) -> Result<(), TrackerError> {
        let cleaned = filter.map(|list| {
            list.into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        *lock(&self.project_override) = cleaned;
        Ok(())
    }

    fn rate_budget(&self) -> Option<RateBudget> {
        lock(&self.gate).budget()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_into_team_key_and_number() {
        assert_eq!(split_identifier("ENG-42"), Some(("ENG", 42)));
        assert_eq!(split_identifier("MY_TEAM-7"), Some(("MY_TEAM", 7)));
        assert_eq!(split_identifier("#7"), None);
        assert_eq!(split_identifier("ENG-x"), None);
        assert_eq!(split_identifier("-3"), None);
    }

    #[test]
    fn the_project_filter_defaults_to_the_configuration() {
        let base = TrackerConfig {
            api_key: Some("k".into()),
            ..TrackerConfig::default()
        };
        let all = LinearTracker::new(&base, 10).unwrap();
        assert_eq!(all.effective_project_filter(), None);

        let slug = LinearTracker::new(
            &TrackerConfig {
                project_slug: "alpha".into(),
                ..base.clone()
            },
            10,
        )
        .unwrap();
        assert_eq!(slug.effective_project_filter(), Some(vec!["alpha".to_string()]));
        slug.set_project_filter(Some(vec![])).unwrap();
        assert_eq!(slug.effective_project_filter(), None, "[] = all projects");
        slug.set_project_filter(Some(vec!["beta".into(), " ".into()])).unwrap();
        assert_eq!(slug.effective_project_filter(), Some(vec!["beta".to_string()]));
        slug.set_project_filter(None).unwrap();
        assert_eq!(slug.effective_project_filter(), Some(vec!["alpha".to_string()]));

        let listed = LinearTracker::new(
            &TrackerConfig {
                project_slug: "alpha".into(),
                project_filter: Some(vec!["x".into(), "y".into()]),
                ..base.clone()
            },
            10,
        )
        .unwrap();
        assert_eq!(
            listed.effective_project_filter(),
            Some(vec!["x".to_string(), "y".to_string()])
        );
    }

    #[test]
    fn a_missing_key_is_an_auth_error() {
        assert!(matches!(
            LinearTracker::new(&TrackerConfig::default(), 10),
            Err(TrackerError::Auth(_))
        ));
    }
}
