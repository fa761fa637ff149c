//! A fake Linear GraphQL API on `127.0.0.1:<ephemeral>`, for adapter and end-to-end tests.
//!
//! It keeps teams, workflow states, projects, issues, `blocks` relations and comments, so writes are
//! visible to later reads, and answers in Linear's shapes: `{"data": …}` with connections of `nodes`
//! + `pageInfo { hasNextPage endCursor }`, mutation payloads with `success`, errors as
//!   `{"errors": [{"message", "extensions": {"type", "code", "userPresentableMessage"}}]}` (HTTP 400),
//!   and the `X-RateLimit-Requests-{Limit,Remaining,Reset}` headers (reset in epoch milliseconds) on
//!   every answer. Rate limiting is Linear's: HTTP 400 with the `RATELIMITED` error code.
//!
//! It does not parse GraphQL: it dispatches on the `operationName` the Itervox adapter sends and
//! reads everything else from `variables` (the `IssueFilter` input object is evaluated for the
//! fields the adapter uses; any other field is a validation error, as Linear would report for a
//! field that does not exist). Every request is recorded, and failures can be queued.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct LinearRequest {
    pub operation_name: String,
    pub variables: Value,
    pub authorization: Option<String>,
}

/// A failure to inject into the next matching request.
#[derive(Debug, Clone)]
pub enum LinearFailure {
    /// HTTP 500 without applying the operation.
    ServerError,
    /// Apply the operation, then answer HTTP 500: the client cannot know it was applied.
    LoseResponse,
    /// Wait this long, then apply and answer normally (a client with a shorter timeout gives up
    /// while the operation still lands).
    Delay(Duration),
    /// Linear's rate-limit answer: HTTP 400, `RATELIMITED`, remaining 0, reset in this long.
    RateLimited { reset_in: Duration },
    /// HTTP 429 with `Retry-After` seconds.
    TooManyRequests { retry_after_secs: u64 },
    /// HTTP 200 with a body that is not JSON.
    NotJson,
}

/// A new issue for the fake.
#[derive(Debug, Clone)]
pub struct NewLinearIssue {
    pub title: String,
    pub state: String,
    pub team_key: String,
    pub description: Option<String>,
    /// Linear priority: 0 none, 1 urgent … 4 low.
    pub priority: f64,
    pub labels: Vec<String>,
    /// The project's `slugId`.
    pub project: Option<String>,
}

impl NewLinearIssue {
    pub fn new(title: &str, state: &str) -> Self {
        NewLinearIssue {
            title: title.into(),
            state: state.into(),
            team_key: "ENG".into(),
            description: None,
            priority: 0.0,
            labels: Vec::new(),
            project: None,
        }
    }
}

/// What a test can read back about one issue.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearIssueView {
    pub id: String,
    pub identifier: String,
    pub state: String,
    pub comments: Vec<String>,
}

#[derive(Debug)]
struct Team {
    id: String,
    key: String,
    next_number: u64,
}

#[derive(Debug)]
struct WorkflowState {
    id: String,
    name: String,
    kind: String,
    team_id: String,
}

#[derive(Debug)]
struct Project {
    id: String,
    name: String,
    slug_id: String,
}

#[derive(Debug)]
struct FakeComment {
    id: String,
    body: String,
    created_at: DateTime<Utc>,
    author: String,
}

#[derive(Debug)]
struct FakeIssue {
    id: String,
    identifier: String,
    number: u64,
    team_id: String,
    title: String,
    description: Option<String>,
    priority: f64,
    state_id: String,
    labels: Vec<String>,
    project: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    comments: Vec<FakeComment>,
    /// Rendered without its `title` (a malformed record).
    malformed: bool,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    teams: Vec<Team>,
    states: Vec<WorkflowState>,
    projects: Vec<Project>,
    issues: Vec<FakeIssue>,
    /// `(blocker id, blocked id)`: relations of type `blocks`.
    blocks: Vec<(String, String)>,
    requests: Vec<LinearRequest>,
    failures: VecDeque<(Option<String>, LinearFailure)>,
    limit: u64,
    remaining: u64,
    reset_at: DateTime<Utc>,
    next_id: u64,
}

impl Inner {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:08x}-0000-4000-8000-{:012x}", self.next_id, self.next_id)
    }

    fn find_issue(&self, id_or_identifier: &str) -> Option<usize> {
        self.issues
            .iter()
            .position(|i| i.id == id_or_identifier || i.identifier == id_or_identifier)
    }

    fn state_name(&self, id: &str) -> String {
        self.states
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }

    fn team_key(&self, id: &str) -> String {
        self.teams
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.key.clone())
            .unwrap_or_default()
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakeLinear {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<oneshot::Sender<()>>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl FakeLinear {
    /// Starts the fake with one team `ENG` (states Backlog, Todo, In Progress, Done, Canceled) and
    /// a budget of 5000 requests. Requests must carry `Authorization: <api_key>`.
    pub async fn start(api_key: &str) -> FakeLinear {
        let inner = Arc::new(Mutex::new(Inner {
            api_key: api_key.into(),
            teams: Vec::new(),
            states: Vec::new(),
            projects: Vec::new(),
            issues: Vec::new(),
            blocks: Vec::new(),
            requests: Vec::new(),
            failures: VecDeque::new(),
            limit: 5000,
            remaining: 5000,
            reset_at: Utc::now() + chrono::Duration::hours(1),
            next_id: 0,
        }));
        let app = Router::new().route("/graphql", post(handle)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Linear");
        let addr = listener.local_addr().expect("fake Linear address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let fake = FakeLinear {
            addr,
            inner,
            stop: Some(stop),
        };
        fake.add_team("ENG");
        fake
    }

    /// The GraphQL endpoint (`tracker.endpoint`).
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a team with the usual five workflow states; returns its id.
    pub fn add_team(&self, key: &str) -> String {
        let mut inner = self.lock();
        let id = inner.new_id("team");
        inner.teams.push(Team {
            id: id.clone(),
            key: key.into(),
            next_number: 1,
        });
        for (name, kind) in [
            ("Backlog", "backlog"),
            ("Todo", "unstarted"),
            ("In Progress", "started"),
            ("Done", "completed"),
            ("Canceled", "canceled"),
        ] {
            let sid = inner.new_id("state");
            inner.states.push(WorkflowState {
                id: sid,
                name: name.into(),
                kind: kind.into(),
                team_id: id.clone(),
            });
        }
        id
    }

    /// Adds a project; returns its id.
    pub fn add_project(&self, name: &str, slug_id: &str) -> String {
        let mut inner = self.lock();
        let id = inner.new_id("project");
        inner.projects.push(Project {
            id: id.clone(),
            name: name.into(),
            slug_id: slug_id.into(),
        });
        id
    }

    /// Adds an issue; returns its identifier (`<team key>-<n>`).
    pub fn add_issue(&self, new: NewLinearIssue) -> String {
        let mut inner = self.lock();
        let id = inner.new_id("issue");
        let team_index = inner
            .teams
            .iter()
            .position(|t| t.key == new.team_key)
            .unwrap_or_else(|| panic!("fake Linear has no team {}", new.team_key));
        let team_id = inner.teams[team_index].id.clone();
        let number = inner.teams[team_index].next_number;
        inner.teams[team_index].next_number += 1;
        let state_id = inner
            .states
            .iter()
            .find(|s| s.team_id == team_id && s.name == new.state)
            .unwrap_or_else(|| panic!("fake Linear team {} has no state {}", new.team_key, new.state))
            .id
            .clone();
        let identifier = format!("{}-{number}", new.team_key);
        let created = Utc::now() - chrono::Duration::minutes(10_000 - inner.issues.len() as i64);
        inner.issues.push(FakeIssue {
            id,
            identifier: identifier.clone(),
            number,
            team_id,
            title: new.title,
            description: new.description,
            priority: new.priority,
            state_id,
            labels: new.labels,
            project: new.project,
            created_at: created,
            updated_at: created,
            comments: Vec::new(),
            malformed: false,
        });
        identifier
    }

    /// Records that `blocker` blocks `blocked` (a `blocks` relation stored on the blocker).
    pub fn add_blocks(&self, blocker: &str, blocked: &str) {
        let mut inner = self.lock();
        let a = inner.find_issue(blocker).expect("blocker exists");
        let b = inner.find_issue(blocked).expect("blocked issue exists");
        let pair = (inner.issues[a].id.clone(), inner.issues[b].id.clone());
        inner.blocks.push(pair);
    }

    /// Adds a comment as a person would.
    pub fn add_comment(&self, identifier: &str, author: &str, body: &str) {
        let mut inner = self.lock();
        let i = inner.find_issue(identifier).expect("issue exists");
        let id = inner.new_id("comment");
        inner.issues[i].comments.push(FakeComment {
            id,
            body: body.into(),
            created_at: Utc::now(),
            author: author.into(),
        });
    }

    /// From now on the issue is served without its `title`, as a malformed record.
    pub fn make_malformed(&self, identifier: &str) {
        let mut inner = self.lock();
        let i = inner.find_issue(identifier).expect("issue exists");
        inner.issues[i].malformed = true;
    }

    /// The issue as the fake holds it now.
    pub fn issue(&self, identifier: &str) -> Option<LinearIssueView> {
        let inner = self.lock();
        let i = &inner.issues[inner.find_issue(identifier)?];
        Some(LinearIssueView {
            id: i.id.clone(),
            identifier: i.identifier.clone(),
            state: inner.state_name(&i.state_id),
            comments: i.comments.iter().map(|c| c.body.clone()).collect(),
        })
    }

    /// The name of a workflow state by its id (as mutations name it); empty when unknown.
    pub fn state_name(&self, state_id: &str) -> String {
        self.lock().state_name(state_id)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<LinearRequest> {
        self.lock().requests.clone()
    }

    /// How many requests carried this operation name.
    pub fn count(&self, operation_name: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.operation_name == operation_name)
            .count()
    }

    /// Fails the next request (of `operation` when given) this way.
    pub fn fail_next(&self, operation: Option<&str>, failure: LinearFailure) {
        self.lock().failures.push_back((operation.map(str::to_string), failure));
    }

    /// Sets the request budget the headers report (and enforce: at 0 requests are rate limited).
    pub fn set_rate_limit(&self, limit: u64, remaining: u64, reset_in: Duration) {
        let mut inner = self.lock();
        inner.limit = limit;
        inner.remaining = remaining;
        inner.reset_at = Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default();
    }
}

impl Drop for FakeLinear {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn graphql_error(message: &str, kind: &str, code: &str) -> Value {
    json!({"errors": [{
        "message": message,
        "extensions": {"type": kind, "code": code, "userError": true, "userPresentableMessage": message}
    }]})
}

fn respond(inner: &Inner, status: StatusCode, body: Value) -> Response {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("x-ratelimit-requests-limit", inner.limit.to_string());
    set("x-ratelimit-requests-remaining", inner.remaining.to_string());
    set(
        "x-ratelimit-requests-reset",
        inner.reset_at.timestamp_millis().to_string(),
    );
    set("x-ratelimit-complexity-limit", "3000000".into());
    set("x-ratelimit-complexity-remaining", "2999000".into());
    set(
        "x-ratelimit-complexity-reset",
        inner.reset_at.timestamp_millis().to_string(),
    );
    (status, headers, axum::Json(body)).into_response()
}

/// Runs each request in its own task, so a client that gives up (timeout) does not cancel it: like a
/// real server, the fake still applies a write whose response nobody reads.
async fn handle(State(state): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    tokio::spawn(process(state, headers, body))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn process(state: Arc<Mutex<Inner>>, headers: HeaderMap, body: String) -> Response {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let operation = request
        .get("operationName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let variables = request.get("variables").cloned().unwrap_or(Value::Null);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let failure = {
        let mut inner = lock();
        inner.requests.push(LinearRequest {
            operation_name: operation.clone(),
            variables: variables.clone(),
            authorization: authorization.clone(),
        });
        let position = inner
            .failures
            .iter()
            .position(|(op, _)| op.as_deref().is_none_or(|o| o == operation));
        position.and_then(|p| inner.failures.remove(p)).map(|(_, f)| f)
    };

    if let Some(LinearFailure::Delay(d)) = &failure {
        tokio::time::sleep(*d).await;
    }
    let mut inner = lock();
    if authorization.as_deref() != Some(inner.api_key.as_str()) {
        let body = graphql_error(
            "Authentication required, not authenticated",
            "authentication error",
            "AUTHENTICATION_ERROR",
        );
        return respond(&inner, StatusCode::BAD_REQUEST, body);
    }
    match &failure {
        Some(LinearFailure::ServerError) => {
            return respond(&inner, StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal"}));
        }
        Some(LinearFailure::RateLimited { reset_in }) => {
            inner.remaining = 0;
            inner.reset_at = Utc::now() + chrono::Duration::from_std(*reset_in).unwrap_or_default();
            let body = graphql_error("Rate limit exceeded", "ratelimited", "RATELIMITED");
            return respond(&inner, StatusCode::BAD_REQUEST, body);
        }
        Some(LinearFailure::TooManyRequests { retry_after_secs }) => {
            let mut response = respond(&inner, StatusCode::TOO_MANY_REQUESTS, json!({"error": "slow down"}));
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
            return response;
        }
        Some(LinearFailure::NotJson) => {
            return (StatusCode::OK, "<html>maintenance</html>").into_response();
        }
        _ => {}
    }
    if inner.remaining == 0 {
        if inner.reset_at <= Utc::now() {
            inner.remaining = inner.limit;
        } else {
            let body = graphql_error("Rate limit exceeded", "ratelimited", "RATELIMITED");
            return respond(&inner, StatusCode::BAD_REQUEST, body);
        }
    }
    inner.remaining -= 1;

    let result = execute(&mut inner, &operation, &variables);
    if matches!(failure, Some(LinearFailure::LoseResponse)) {
        return respond(&inner, StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "lost"}));
    }
    match result {
        Ok(data) => respond(&inner, StatusCode::OK, json!({ "data": data })),
        Err(body) => respond(&inner, StatusCode::BAD_REQUEST, body),
    }
}

fn not_found() -> Value {
    let mut e = graphql_error("Entity not found: Issue", "invalid input", "INPUT_ERROR");
    e["errors"][0]["extensions"]["userPresentableMessage"] = json!("Could not find referenced Issue.");
    e["data"] = Value::Null;
    e
}

fn validation(message: &str) -> Value {
    graphql_error(message, "graphql error", "GRAPHQL_VALIDATION_FAILED")
}

fn execute(inner: &mut Inner, operation: &str, vars: &Value) -> Result<Value, Value> {
    let var = |k: &str| vars.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    match operation {
        "ItervoxIssues" => {
            let filter = vars.get("filter").cloned().unwrap_or(Value::Null);
            let first = vars.get("first").and_then(Value::as_u64).unwrap_or(50).clamp(1, 250) as usize;
            let mut matching = Vec::new();
            for (index, issue) in inner.issues.iter().enumerate() {
                if issue_matches(inner, issue, &filter).map_err(|e| validation(&e))? {
                    matching.push(index);
                }
            }
            let start = match vars.get("after").and_then(Value::as_str) {
                Some(cursor) => matching
                    .iter()
                    .position(|&i| inner.issues[i].id == cursor)
                    .map(|p| p + 1)
                    .ok_or_else(|| validation("invalid cursor"))?,
                None => 0,
            };
            let page: Vec<usize> = matching.iter().skip(start).take(first).copied().collect();
            let has_next = start + page.len() < matching.len();
            let end_cursor = page.last().map(|&i| inner.issues[i].id.clone());
            let nodes: Vec<Value> = page
                .iter()
                .map(|&i| render_issue(inner, &inner.issues[i], false))
                .collect();
            Ok(json!({"issues": {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": has_next, "endCursor": end_cursor}
            }}))
        }
        "ItervoxIssue" | "ItervoxIssueTeam" | "ItervoxCommentWithMarker" => {
            let Some(index) = inner.find_issue(&var("id")) else {
                return Err(not_found());
            };
            let issue = &inner.issues[index];
            let mut node = render_issue(inner, issue, operation == "ItervoxIssue");
            if operation == "ItervoxCommentWithMarker" {
                let marker = var("marker");
                let hits: Vec<Value> = issue
                    .comments
                    .iter()
                    .filter(|c| c.body.contains(&marker))
                    .take(1)
                    .map(|c| json!({"id": c.id}))
                    .collect();
                node = json!({"id": issue.id, "comments": {"nodes": hits}});
            }
            Ok(json!({ "issue": node }))
        }
        "ItervoxWorkflowStates" => {
            let team = var("teamId");
            let nodes: Vec<Value> = inner
                .states
                .iter()
                .filter(|s| s.team_id == team)
                .map(|s| json!({"id": s.id, "name": s.name, "type": s.kind}))
                .collect();
            Ok(json!({"workflowStates": {"nodes": nodes, "pageInfo": {"hasNextPage": false, "endCursor": null}}}))
        }
        "ItervoxIssueUpdateState" => {
            let Some(index) = inner.find_issue(&var("id")) else {
                return Err(not_found());
            };
            let state_id = var("stateId");
            let team_id = inner.issues[index].team_id.clone();
            if !inner.states.iter().any(|s| s.id == state_id && s.team_id == team_id) {
                return Err(graphql_error(
                    "Argument Validation Error",
                    "invalid input",
                    "INPUT_ERROR",
                ));
            }
            let issue = &mut inner.issues[index];
            issue.state_id = state_id;
            issue.updated_at = Utc::now();
            let (id, sid) = (issue.id.clone(), issue.state_id.clone());
            Ok(json!({"issueUpdate": {
                "success": true,
                "lastSyncId": 1,
                "issue": {"id": id, "state": {"name": inner.state_name(&sid)}}
            }}))
        }
        "ItervoxCommentCreate" => {
            let Some(index) = inner.find_issue(&var("issueId")) else {
                return Err(not_found());
            };
            let id = inner.new_id("comment");
            let issue = &mut inner.issues[index];
            issue.comments.push(FakeComment {
                id: id.clone(),
                body: var("body"),
                created_at: Utc::now(),
                author: "Itervox Bot".into(),
            });
            issue.updated_at = Utc::now();
            Ok(json!({"commentCreate": {"success": true, "lastSyncId": 2, "comment": {"id": id}}}))
        }
        "ItervoxProjects" => {
            let start = match vars.get("after").and_then(Value::as_str) {
                Some(cursor) => inner.projects.iter().position(|p| p.id == cursor).map_or(0, |p| p + 1),
                None => 0,
            };
            let page: Vec<&Project> = inner.projects.iter().skip(start).take(50).collect();
            let has_next = start + page.len() < inner.projects.len();
            Ok(json!({"projects": {
                "nodes": page.iter().map(|p| json!({"id": p.id, "name": p.name, "slugId": p.slug_id})).collect::<Vec<_>>(),
                "pageInfo": {"hasNextPage": has_next, "endCursor": page.last().map(|p| p.id.clone())}
            }}))
        }
        other => Err(validation(&format!("Unknown operation {other:?}"))),
    }
}

fn render_issue(inner: &Inner, issue: &FakeIssue, with_comments: bool) -> Value {
    let blockers: Vec<Value> = inner
        .blocks
        .iter()
        .filter(|(_, blocked)| *blocked == issue.id)
        .filter_map(|(blocker, _)| inner.issues.iter().find(|i| i.id == *blocker))
        .map(|b| {
            json!({"type": "blocks", "issue": {
                "id": b.id, "identifier": b.identifier, "state": {"name": inner.state_name(&b.state_id)}
            }})
        })
        .collect();
    let mut node = json!({
        "id": issue.id,
        "identifier": issue.identifier,
        "title": issue.title,
        "description": issue.description,
        "priority": issue.priority,
        "url": format!("https://linear.app/fake/issue/{}", issue.identifier),
        "branchName": format!("{}-work", issue.identifier.to_lowercase()),
        "createdAt": time(issue.created_at),
        "updatedAt": time(issue.updated_at),
        "state": {"name": inner.state_name(&issue.state_id)},
        "team": {"id": issue.team_id, "key": inner.team_key(&issue.team_id)},
        "labels": {"nodes": issue.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>()},
        "inverseRelations": {"nodes": blockers},
    });
    if with_comments {
        node["comments"] = json!({"nodes": issue.comments.iter().map(|c| json!({
            "id": c.id, "body": c.body, "createdAt": time(c.created_at),
            "user": {"name": c.author, "displayName": c.author}
        })).collect::<Vec<_>>()});
    }
    if issue.malformed {
        node["title"] = Value::Null;
    }
    node
}

fn string_matches(comparator: &Value, value: Option<&str>) -> Result<bool, String> {
    let Some(obj) = comparator.as_object() else {
        return Err("a comparator must be an object".into());
    };
    let mut ok = true;
    for (op, arg) in obj {
        let s = |a: &Value| a.as_str().map(str::to_string);
        ok &= match op.as_str() {
            "eq" => value.is_some() && value.map(str::to_string) == s(arg),
            "neq" => value.map(str::to_string) != s(arg),
            "eqIgnoreCase" => value.zip(arg.as_str()).is_some_and(|(v, a)| v.eq_ignore_ascii_case(a)),
            "in" => arg
                .as_array()
                .ok_or("`in` takes a list")?
                .iter()
                .any(|a| value.is_some() && a.as_str() == value),
            "nin" => !arg
                .as_array()
                .ok_or("`nin` takes a list")?
                .iter()
                .any(|a| a.as_str() == value),
            "contains" => value.zip(arg.as_str()).is_some_and(|(v, a)| v.contains(a)),
            other => return Err(format!("Field \"{other}\" is not defined by type \"StringComparator\"")),
        };
    }
    Ok(ok)
}

fn number_matches(comparator: &Value, value: u64) -> Result<bool, String> {
    let Some(obj) = comparator.as_object() else {
        return Err("a comparator must be an object".into());
    };
    let mut ok = true;
    for (op, arg) in obj {
        ok &= match op.as_str() {
            "eq" => arg.as_f64() == Some(value as f64),
            "in" => arg
                .as_array()
                .ok_or("`in` takes a list")?
                .iter()
                .any(|a| a.as_f64() == Some(value as f64)),
            other => return Err(format!("Field \"{other}\" is not defined by type \"NumberComparator\"")),
        };
    }
    Ok(ok)
}

fn nested(filter: &Value, field: &str, inner_type: &str) -> Result<Value, String> {
    let obj = filter.as_object().ok_or("a filter must be an object")?;
    for key in obj.keys() {
        if key != field {
            return Err(format!("Field \"{key}\" is not defined by type \"{inner_type}\""));
        }
    }
    Ok(obj.get(field).cloned().unwrap_or(Value::Null))
}

fn issue_matches(inner: &Inner, issue: &FakeIssue, filter: &Value) -> Result<bool, String> {
    if filter.is_null() {
        return Ok(true);
    }
    let obj = filter.as_object().ok_or("IssueFilter must be an object")?;
    let mut ok = true;
    for (key, value) in obj {
        ok &= match key.as_str() {
            "and" => {
                let mut all = true;
                for f in value.as_array().ok_or("`and` takes a list")? {
                    all &= issue_matches(inner, issue, f)?;
                }
                all
            }
            "or" => {
                let mut any = false;
                for f in value.as_array().ok_or("`or` takes a list")? {
                    any |= issue_matches(inner, issue, f)?;
                }
                any
            }
            "state" => string_matches(
                &nested(value, "name", "WorkflowStateFilter")?,
                Some(&inner.state_name(&issue.state_id)),
            )?,
            "project" => string_matches(
                &nested(value, "slugId", "NullableProjectFilter")?,
                issue.project.as_deref(),
            )?,
            "team" => string_matches(
                &nested(value, "key", "TeamFilter")?,
                Some(&inner.team_key(&issue.team_id)),
            )?,
            "number" => number_matches(value, issue.number)?,
            "id" => string_matches(value, Some(&issue.id))?,
            other => return Err(format!("Field \"{other}\" is not defined by type \"IssueFilter\"")),
        };
    }
    Ok(ok)
}
