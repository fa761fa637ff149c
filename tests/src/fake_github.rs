//! A fake GitHub REST API (the Issues part) on `127.0.0.1:<ephemeral>`, for adapter and end-to-end
//! tests. Routes answer both at the root (github.com style) and under `/api/v3` (Enterprise style).
//!
//! It keeps one repository's issues and pull requests (one number space), labels, comments and
//! cross-references, so writes are visible to later reads, and answers in GitHub's shapes: issue,
//! label and comment objects, `Link: <…>; rel="next"` pagination, `ETag` on every `GET` with `304 Not
//! Modified` for a matching `If-None-Match` (which does not use the budget), and the
//! `X-RateLimit-{Limit,Remaining,Used,Reset,Resource}` headers. An exhausted budget answers `403`
//! with `X-RateLimit-Remaining: 0`; secondary limits answer `403`/`429` with `Retry-After`. Every
//! request is recorded, and failures can be queued.

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct GithubRequest {
    pub method: String,
    /// The path without the `/api/v3` prefix.
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub api_version: Option<String>,
    pub if_none_match: Option<String>,
    pub body: Option<Value>,
    /// The status the fake answered with.
    pub status: u16,
}

/// A failure to inject into the next matching request.
#[derive(Debug, Clone)]
pub enum GithubFailure {
    /// HTTP 502 without applying the request.
    ServerError,
    /// Apply the request, then answer HTTP 502: the client cannot know it was applied.
    LoseResponse,
    /// Wait this long, then apply and answer normally.
    Delay(Duration),
    /// A secondary rate limit: `403`, `Retry-After`, budget left.
    SecondaryRateLimit { retry_after_secs: u64 },
    /// `429`, with `Retry-After` when given.
    TooManyRequests { retry_after_secs: Option<u64> },
    /// The primary budget is spent: `403`, remaining 0, reset in this long.
    PrimaryExhausted { reset_in: Duration },
}

/// A new issue for the fake.
#[derive(Debug, Clone, Default)]
pub struct NewGithubIssue {
    pub title: String,
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub closed: bool,
}

impl NewGithubIssue {
    pub fn new(title: &str, labels: &[&str]) -> Self {
        NewGithubIssue {
            title: title.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..NewGithubIssue::default()
        }
    }
}

/// What a test can read back about one issue.
#[derive(Debug, Clone, PartialEq)]
pub struct GithubIssueView {
    pub open: bool,
    pub state_reason: Option<String>,
    pub labels: Vec<String>,
    pub comments: Vec<String>,
}

#[derive(Debug)]
struct Item {
    number: u64,
    title: String,
    body: Option<String>,
    open: bool,
    state_reason: Option<String>,
    labels: Vec<String>,
    pull_request: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    malformed: bool,
}

#[derive(Debug)]
struct FakeComment {
    id: u64,
    issue: u64,
    user: String,
    body: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Inner {
    base: String,
    owner: String,
    repo: String,
    token: String,
    items: Vec<Item>,
    /// Every label name the repository knows (created on first use, as GitHub does).
    labels: Vec<String>,
    comments: Vec<FakeComment>,
    /// `(issue, pull request)`: the pull request mentions the issue.
    cross_refs: Vec<(u64, u64)>,
    requests: Vec<GithubRequest>,
    failures: VecDeque<(Option<String>, Option<String>, GithubFailure)>,
    limit: u64,
    remaining: u64,
    reset_at: DateTime<Utc>,
    next_comment: u64,
}

impl Inner {
    fn item(&self, number: u64) -> Option<&Item> {
        self.items.iter().find(|i| i.number == number)
    }

    fn item_mut(&mut self, number: u64) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| i.number == number)
    }

    fn next_number(&self) -> u64 {
        self.items.iter().map(|i| i.number).max().unwrap_or(0) + 1
    }

    fn canonical_label(&mut self, name: &str) -> String {
        if let Some(existing) = self.labels.iter().find(|l| l.eq_ignore_ascii_case(name)) {
            return existing.clone();
        }
        self.labels.push(name.to_string());
        name.to_string()
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakeGithub {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<oneshot::Sender<()>>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl FakeGithub {
    /// Starts the fake for `owner/repo`; requests must carry `Authorization: Bearer <token>`. The
    /// budget starts at 5000 requests per hour.
    pub async fn start(owner_repo: &str, token: &str) -> FakeGithub {
        let (owner, repo) = owner_repo.split_once('/').expect("owner/repo");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake GitHub");
        let addr = listener.local_addr().expect("fake GitHub address");
        let inner = Arc::new(Mutex::new(Inner {
            base: format!("http://{addr}"),
            owner: owner.into(),
            repo: repo.into(),
            token: token.into(),
            items: Vec::new(),
            labels: Vec::new(),
            comments: Vec::new(),
            cross_refs: Vec::new(),
            requests: Vec::new(),
            failures: VecDeque::new(),
            limit: 5000,
            remaining: 5000,
            reset_at: Utc::now() + chrono::Duration::hours(1),
            next_comment: 9000,
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeGithub {
            addr,
            inner,
            stop: Some(stop),
        }
    }

    /// The API base as on github.com (`tracker.endpoint`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API base as on GitHub Enterprise.
    pub fn enterprise_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an issue; returns its number.
    pub fn add_issue(&self, new: NewGithubIssue) -> u64 {
        let mut inner = self.lock();
        let number = inner.next_number();
        let labels = new.labels.iter().map(|l| inner.canonical_label(l)).collect();
        let created = Utc::now() - chrono::Duration::minutes(100_000 - number as i64);
        inner.items.push(Item {
            number,
            title: new.title,
            body: new.body,
            open: !new.closed,
            state_reason: new.closed.then(|| "completed".to_string()),
            labels,
            pull_request: None,
            created_at: created,
            updated_at: created,
            malformed: false,
        });
        number
    }

    /// Adds an open pull request from `head_ref`; returns its number.
    pub fn add_pull_request(&self, title: &str, head_ref: &str, labels: &[&str]) -> u64 {
        let number = self.add_issue(NewGithubIssue::new(title, labels));
        self.lock().item_mut(number).expect("just added").pull_request = Some(head_ref.into());
        number
    }

    /// Records that pull request `pr` mentions issue `issue` (a `cross-referenced` timeline event).
    pub fn cross_reference(&self, issue: u64, pr: u64) {
        self.lock().cross_refs.push((issue, pr));
    }

    /// Adds a comment as `user`; returns its id.
    pub fn add_comment(&self, issue: u64, user: &str, body: &str) -> u64 {
        let mut inner = self.lock();
        inner.next_comment += 1;
        let id = inner.next_comment;
        inner.comments.push(FakeComment {
            id,
            issue,
            user: user.into(),
            body: body.into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        });
        id
    }

    /// Replaces an issue's labels as a person would.
    pub fn set_labels(&self, number: u64, labels: &[&str]) {
        let mut inner = self.lock();
        let labels: Vec<String> = labels.iter().map(|l| inner.canonical_label(l)).collect();
        let item = inner.item_mut(number).expect("issue exists");
        item.labels = labels;
        item.updated_at = Utc::now();
    }

    /// From now on the issue is served with `"title": null`, as a malformed record.
    pub fn make_malformed(&self, number: u64) {
        self.lock().item_mut(number).expect("issue exists").malformed = true;
    }

    /// The issue as the fake holds it now.
    pub fn issue(&self, number: u64) -> Option<GithubIssueView> {
        let inner = self.lock();
        let item = inner.item(number)?;
        Some(GithubIssueView {
            open: item.open,
            state_reason: item.state_reason.clone(),
            labels: item.labels.clone(),
            comments: inner
                .comments
                .iter()
                .filter(|c| c.issue == number)
                .map(|c| c.body.clone())
                .collect(),
        })
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<GithubRequest> {
        self.lock().requests.clone()
    }

    /// Fails the next request whose method is `method` and whose path contains `path_part` (either
    /// may be left open) this way.
    pub fn fail_next(&self, method: Option<&str>, path_part: Option<&str>, failure: GithubFailure) {
        self.lock()
            .failures
            .push_back((method.map(str::to_string), path_part.map(str::to_string), failure));
    }

    /// Sets the budget the headers report (and enforce).
    pub fn set_rate_limit(&self, limit: u64, remaining: u64, reset_in: Duration) {
        let mut inner = self.lock();
        inner.limit = limit;
        inner.remaining = remaining;
        inner.reset_at = Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default();
    }

    /// The budget left.
    pub fn remaining(&self) -> u64 {
        self.lock().remaining
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn rate_headers(inner: &Inner, headers: &mut HeaderMap) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("x-ratelimit-limit", inner.limit.to_string());
    set("x-ratelimit-remaining", inner.remaining.to_string());
    set(
        "x-ratelimit-used",
        (inner.limit - inner.remaining.min(inner.limit)).to_string(),
    );
    set("x-ratelimit-reset", inner.reset_at.timestamp().to_string());
    set("x-ratelimit-resource", "core".into());
}

fn message(status: StatusCode, text: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"message": text, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}),
    )
}

/// What one request produced before headers are added.
struct Outcome {
    status: StatusCode,
    body: Option<Value>,
    link: Option<String>,
}

impl Outcome {
    fn ok(body: Value) -> Self {
        Outcome {
            status: StatusCode::OK,
            body: Some(body),
            link: None,
        }
    }

    fn status(status: StatusCode, text: &str) -> Self {
        let (status, body) = message(status, text);
        Outcome {
            status,
            body: Some(body),
            link: None,
        }
    }
}

/// Runs each request in its own task, so a client that gives up (timeout) does not cancel it: like a
/// real server, the fake still applies a write whose response nobody reads.
async fn handle(State(state): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    tokio::spawn(process(state, request))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn process(state: Arc<Mutex<Inner>>, request: Request) -> Response {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let method = request.method().clone();
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = uri.path().strip_prefix("/api/v3").unwrap_or(uri.path()).to_string();
    let query = uri.query().map(str::to_string);

    let failure = {
        let mut inner = lock();
        let position = inner.failures.iter().position(|(m, p, _)| {
            m.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
                && p.as_deref().is_none_or(|p| path.contains(p))
        });
        position.and_then(|p| inner.failures.remove(p)).map(|(_, _, f)| f)
    };
    if let Some(GithubFailure::Delay(d)) = &failure {
        tokio::time::sleep(*d).await;
    }

    let mut inner = lock();
    let mut response_headers = HeaderMap::new();
    let record = |inner: &mut Inner, status: StatusCode| {
        inner.requests.push(GithubRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            authorization: header("authorization"),
            accept: header("accept"),
            api_version: header("x-github-api-version"),
            if_none_match: header("if-none-match"),
            body: body.clone(),
            status: status.as_u16(),
        });
    };

    if header("authorization").as_deref() != Some(format!("Bearer {}", inner.token).as_str()) {
        record(&mut inner, StatusCode::UNAUTHORIZED);
        let (status, body) = message(StatusCode::UNAUTHORIZED, "Bad credentials");
        return (status, axum::Json(body)).into_response();
    }
    if inner.remaining == 0 && inner.reset_at <= Utc::now() {
        inner.remaining = inner.limit;
        inner.reset_at = Utc::now() + chrono::Duration::hours(1);
    }
    match &failure {
        Some(GithubFailure::ServerError) => {
            record(&mut inner, StatusCode::BAD_GATEWAY);
            rate_headers(&inner, &mut response_headers);
            return (StatusCode::BAD_GATEWAY, response_headers, "Bad Gateway").into_response();
        }
        Some(GithubFailure::SecondaryRateLimit { retry_after_secs }) => {
            record(&mut inner, StatusCode::FORBIDDEN);
            rate_headers(&inner, &mut response_headers);
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response_headers.insert("retry-after", v);
            }
            let (status, body) = message(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            return (status, response_headers, axum::Json(body)).into_response();
        }
        Some(GithubFailure::TooManyRequests { retry_after_secs }) => {
            record(&mut inner, StatusCode::TOO_MANY_REQUESTS);
            rate_headers(&inner, &mut response_headers);
            if let Some(secs) = retry_after_secs
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                response_headers.insert("retry-after", v);
            }
            let (status, body) = message(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            return (status, response_headers, axum::Json(body)).into_response();
        }
        Some(GithubFailure::PrimaryExhausted { reset_in }) => {
            inner.remaining = 0;
            inner.reset_at = Utc::now() + chrono::Duration::from_std(*reset_in).unwrap_or_default();
        }
        _ => {}
    }
    if inner.remaining == 0 {
        record(&mut inner, StatusCode::FORBIDDEN);
        rate_headers(&inner, &mut response_headers);
        let (status, body) = message(StatusCode::FORBIDDEN, "API rate limit exceeded for user ID 1.");
        return (status, response_headers, axum::Json(body)).into_response();
    }

    let outcome = route(&mut inner, &method, &path, uri.path(), query.as_deref(), body.as_ref());
    let rendered = outcome.body.as_ref().map(Value::to_string).unwrap_or_default();

    // Conditional GETs: a matching ETag answers 304 and costs nothing.
    if method == Method::GET && outcome.status == StatusCode::OK {
        let mut hasher = DefaultHasher::new();
        rendered.hash(&mut hasher);
        let etag = format!("W/\"{:016x}\"", hasher.finish());
        if header("if-none-match").as_deref() == Some(etag.as_str()) {
            record(&mut inner, StatusCode::NOT_MODIFIED);
            rate_headers(&inner, &mut response_headers);
            if let Ok(v) = HeaderValue::from_str(&etag) {
                response_headers.insert("etag", v);
            }
            return (StatusCode::NOT_MODIFIED, response_headers).into_response();
        }
        if let Ok(v) = HeaderValue::from_str(&etag) {
            response_headers.insert("etag", v);
        }
    }
    inner.remaining = inner.remaining.saturating_sub(1);
    if matches!(failure, Some(GithubFailure::LoseResponse)) {
        record(&mut inner, StatusCode::BAD_GATEWAY);
        rate_headers(&inner, &mut response_headers);
        return (StatusCode::BAD_GATEWAY, response_headers, "Bad Gateway").into_response();
    }
    record(&mut inner, outcome.status);
    rate_headers(&inner, &mut response_headers);
    if let Some(link) = outcome.link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response_headers.insert("link", link);
    }
    if outcome.status == StatusCode::NO_CONTENT {
        return (outcome.status, response_headers).into_response();
    }
    response_headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    (outcome.status, response_headers, rendered).into_response()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url_pairs(query?).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `path` is the API path (prefix stripped) that selects the route; `link_path` is the path as the
/// client sent it, for `Link` headers.
fn route(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    link_path: &str,
    query: Option<&str>,
    body: Option<&Value>,
) -> Outcome {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| decode(s).unwrap_or_default())
        .collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    if s.len() < 3 || s[0] != "repos" || s[1] != inner.owner || s[2] != inner.repo {
        return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
    }
    let number = |i: usize| s.get(i).and_then(|n| n.parse::<u64>().ok());
    match (method.as_str(), &s[3..]) {
        ("GET", ["issues"]) => list_issues(inner, link_path, query),
        ("GET", ["issues", _]) => match number(4).and_then(|n| inner.item(n)) {
            Some(item) => Outcome::ok(render_item(inner, item)),
            None => Outcome::status(StatusCode::NOT_FOUND, "Not Found"),
        },
        ("PATCH", ["issues", _]) => {
            let Some(n) = number(4).filter(|n| inner.item(*n).is_some()) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
            };
            let state = body
                .and_then(|b| b.get("state"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let reason = body
                .and_then(|b| b.get("state_reason"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let item = inner.item_mut(n).expect("checked");
            match state.as_deref() {
                Some("open") => {
                    item.open = true;
                    item.state_reason = Some("reopened".into());
                }
                Some("closed") => {
                    item.open = false;
                    item.state_reason = reason.or(Some("completed".into()));
                }
                Some(_) => return Outcome::status(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
                None => {}
            }
            item.updated_at = Utc::now();
            let rendered = render_item(inner, inner.item(n).expect("checked"));
            Outcome::ok(rendered)
        }
        ("GET", ["issues", _, "comments"]) => {
            let Some(n) = number(4).filter(|n| inner.item(*n).is_some()) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
            };
            let all: Vec<Value> = inner
                .comments
                .iter()
                .filter(|c| c.issue == n)
                .map(|c| render_comment(inner, c))
                .collect();
            paginate(inner, link_path, query, all)
        }
        ("POST", ["issues", _, "comments"]) => {
            let Some(n) = number(4).filter(|n| inner.item(*n).is_some()) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(text) = body.and_then(|b| b.get("body")).and_then(Value::as_str) else {
                return Outcome::status(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            inner.next_comment += 1;
            let comment = FakeComment {
                id: inner.next_comment,
                issue: n,
                user: "itervox-bot".into(),
                body: text.into(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            };
            let rendered = render_comment(inner, &comment);
            inner.comments.push(comment);
            Outcome {
                status: StatusCode::CREATED,
                body: Some(rendered),
                link: None,
            }
        }
        ("PATCH", ["issues", "comments", id]) => {
            let id: Option<u64> = id.parse().ok();
            let text = body
                .and_then(|b| b.get("body"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match (inner.comments.iter().position(|c| Some(c.id) == id), text) {
                (Some(i), Some(text)) => {
                    inner.comments[i].body = text;
                    inner.comments[i].updated_at = Utc::now();
                    Outcome::ok(render_comment(inner, &inner.comments[i]))
                }
                (None, _) => Outcome::status(StatusCode::NOT_FOUND, "Not Found"),
                (_, None) => Outcome::status(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
            }
        }
        ("POST", ["issues", _, "labels"]) => {
            let Some(n) = number(4).filter(|n| inner.item(*n).is_some()) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(names) = body.and_then(|b| b.get("labels")).and_then(Value::as_array).cloned() else {
                return Outcome::status(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            for name in names.iter().filter_map(Value::as_str) {
                let label = inner.canonical_label(name);
                let item = inner.item_mut(n).expect("checked");
                if !item.labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
                    item.labels.push(label);
                    item.updated_at = Utc::now();
                }
            }
            let item = inner.item(n).expect("checked");
            Outcome::ok(Value::Array(
                item.labels.iter().map(|l| render_label(inner, l)).collect(),
            ))
        }
        ("DELETE", ["issues", _, "labels", name]) => {
            let Some(n) = number(4).filter(|n| inner.item(*n).is_some()) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
            };
            let item = inner.item_mut(n).expect("checked");
            let Some(pos) = item.labels.iter().position(|l| l.eq_ignore_ascii_case(name)) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Label does not exist");
            };
            item.labels.remove(pos);
            item.updated_at = Utc::now();
            let item = inner.item(n).expect("checked");
            Outcome::ok(Value::Array(
                item.labels.iter().map(|l| render_label(inner, l)).collect(),
            ))
        }
        ("GET", ["issues", _, "timeline"]) => {
            let Some(n) = number(4).filter(|n| inner.item(*n).is_some()) else {
                return Outcome::status(StatusCode::NOT_FOUND, "Not Found");
            };
            let events: Vec<Value> = inner
                .cross_refs
                .iter()
                .filter(|(issue, _)| *issue == n)
                .filter_map(|(_, pr)| inner.item(*pr))
                .map(|pr| {
                    let mut source = render_item(inner, pr);
                    source["repository"] = json!({"full_name": format!("{}/{}", inner.owner, inner.repo)});
                    json!({
                        "event": "cross-referenced",
                        "actor": {"login": "octocat"},
                        "created_at": time(pr.created_at),
                        "updated_at": time(pr.updated_at),
                        "source": {"type": "issue", "issue": source}
                    })
                })
                .collect();
            paginate(inner, link_path, query, events)
        }
        ("GET", ["pulls", _]) => match number(4).and_then(|n| inner.item(n)) {
            Some(item) if item.pull_request.is_some() => Outcome::ok(json!({
                "url": format!("{}/repos/{}/{}/pulls/{}", inner.base, inner.owner, inner.repo, item.number),
                "number": item.number,
                "state": if item.open { "open" } else { "closed" },
                "title": item.title,
                "head": {"ref": item.pull_request, "sha": "0123456789abcdef0123456789abcdef01234567", "label": format!("{}:{}", inner.owner, item.pull_request.as_deref().unwrap_or_default())},
                "base": {"ref": "main"},
                "html_url": format!("https://github.com/{}/{}/pull/{}", inner.owner, inner.repo, item.number),
            })),
            _ => Outcome::status(StatusCode::NOT_FOUND, "Not Found"),
        },
        _ => Outcome::status(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn list_issues(inner: &Inner, path: &str, query: Option<&str>) -> Outcome {
    let state = query_param(query, "state").unwrap_or_else(|| "open".into());
    let labels: Vec<String> = query_param(query, "labels")
        .map(|l| {
            l.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut items: Vec<&Item> = inner
        .items
        .iter()
        .filter(|i| match state.as_str() {
            "open" => i.open,
            "closed" => !i.open,
            _ => true,
        })
        .filter(|i| {
            labels
                .iter()
                .all(|wanted| i.labels.iter().any(|l| l.eq_ignore_ascii_case(wanted)))
        })
        .collect();
    // GitHub's default order: newest first.
    items.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    let all: Vec<Value> = items.iter().map(|i| render_item(inner, i)).collect();
    paginate(inner, path, query, all)
}

fn paginate(inner: &Inner, path: &str, query: Option<&str>, all: Vec<Value>) -> Outcome {
    let per_page = query_param(query, "per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query_param(query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = all.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let page_url = |n: usize| {
        let mut pairs: Vec<(String, String)> = query
            .map(url_pairs)
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "page")
            .collect();
        pairs.push(("page".into(), n.to_string()));
        let q: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('%', "%25").replace(' ', "%20").replace(',', "%2C")))
            .collect();
        format!("<{}{}?{}>", inner.base, path, q.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", page_url(page + 1)));
        links.push(format!("{}; rel=\"last\"", page_url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", page_url(1)));
        links.push(format!("{}; rel=\"prev\"", page_url(page - 1)));
    }
    Outcome {
        status: StatusCode::OK,
        body: Some(Value::Array(items)),
        link: (!links.is_empty()).then(|| links.join(", ")),
    }
}

fn render_label(inner: &Inner, name: &str) -> Value {
    let id = inner.labels.iter().position(|l| l == name).unwrap_or(0) as u64 + 100;
    json!({
        "id": id,
        "node_id": format!("LA_kwDO{id:08}"),
        "url": format!("{}/repos/{}/{}/labels/{}", inner.base, inner.owner, inner.repo, name.replace(' ', "%20")),
        "name": name,
        "color": "ededed",
        "default": false,
        "description": null
    })
}

fn render_item(inner: &Inner, item: &Item) -> Value {
    let api = format!("{}/repos/{}/{}", inner.base, inner.owner, inner.repo);
    let kind = if item.pull_request.is_some() { "pull" } else { "issues" };
    let comments = inner.comments.iter().filter(|c| c.issue == item.number).count();
    let mut v = json!({
        "url": format!("{api}/issues/{}", item.number),
        "repository_url": api,
        "labels_url": format!("{api}/issues/{}/labels{{/name}}", item.number),
        "comments_url": format!("{api}/issues/{}/comments", item.number),
        "events_url": format!("{api}/issues/{}/events", item.number),
        "html_url": format!("https://github.com/{}/{}/{kind}/{}", inner.owner, inner.repo, item.number),
        "id": 1_000_000 + item.number,
        "node_id": format!("I_kwDO{:08}", item.number),
        "number": item.number,
        "title": item.title,
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "labels": item.labels.iter().map(|l| render_label(inner, l)).collect::<Vec<_>>(),
        "state": if item.open { "open" } else { "closed" },
        "locked": false,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "comments": comments,
        "created_at": time(item.created_at),
        "updated_at": time(item.updated_at),
        "closed_at": if item.open { Value::Null } else { json!(time(item.updated_at)) },
        "author_association": "OWNER",
        "state_reason": item.state_reason,
        "body": item.body,
    });
    if item.pull_request.is_some() {
        v["pull_request"] = json!({
            "url": format!("{api}/pulls/{}", item.number),
            "html_url": format!("https://github.com/{}/{}/pull/{}", inner.owner, inner.repo, item.number),
            "diff_url": format!("https://github.com/{}/{}/pull/{}.diff", inner.owner, inner.repo, item.number),
            "patch_url": format!("https://github.com/{}/{}/pull/{}.patch", inner.owner, inner.repo, item.number),
            "merged_at": null
        });
    }
    if item.malformed {
        v["title"] = Value::Null;
    }
    v
}

fn render_comment(inner: &Inner, c: &FakeComment) -> Value {
    json!({
        "id": c.id,
        "node_id": format!("IC_kwDO{:08}", c.id),
        "url": format!("{}/repos/{}/{}/issues/comments/{}", inner.base, inner.owner, inner.repo, c.id),
        "html_url": format!("https://github.com/{}/{}/issues/{}#issuecomment-{}", inner.owner, inner.repo, c.issue, c.id),
        "body": c.body,
        "user": {"login": c.user, "id": 2, "type": "User"},
        "created_at": time(c.created_at),
        "updated_at": time(c.updated_at),
        "issue_url": format!("{}/repos/{}/{}/issues/{}", inner.base, inner.owner, inner.repo, c.issue),
        "author_association": "OWNER"
    })
}
