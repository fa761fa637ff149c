//! The `/api/v1` contract, table-driven: the OpenAPI document against the router's real route table,
//! every documented route's happy path and error answers, and every body route's rejection of bad
//! bodies (derived from the document's request schemas) without changing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Fixture, call, code, fixture};
use crate::api::openapi::{self, Answer, OPS};

/// `(METHOD, path with every `{param}` written `{}`)`.
type Route = (String, String);

fn normalize(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes `router()` registers, read from its source: each `.route("path", get(..).delete(..))`.
fn registered_routes() -> BTreeSet<Route> {
    let src = include_str!("../../api.rs");
    let start = src.find("pub fn router(").expect("router() in api.rs");
    let end = start
        + src[start..]
            .find(".fallback(")
            .expect("the fallback ends the route list");
    let body = &src[start..end];
    let methods = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let mut routes = BTreeSet::new();
    let mut rest = body;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        // The arguments up to the matching close paren.
        let mut depth = 1;
        let mut close = 0;
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &rest[..close];
        let q1 = args.find('"').expect("a path literal");
        let q2 = q1 + 1 + args[q1 + 1..].find('"').expect("the path literal ends");
        let path = &args[q1 + 1..q2];
        let mut found = 0;
        for m in methods.captures_iter(&args[q2..]) {
            routes.insert((m[1].to_ascii_uppercase(), normalize(path)));
            found += 1;
        }
        assert!(found > 0, "no method registered for {path}");
        rest = &rest[close..];
    }
    routes
}

fn documented_routes() -> BTreeSet<Route> {
    OPS.iter().map(|o| (o.method.to_string(), normalize(o.path))).collect()
}

/// A concrete path for a template (parameters filled with valid names).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{identifier}" | "{id}" => "T-1",
            "{sessionId}" | "{session}" => "sess-1",
            "{host}" => "127.0.0.1:9",
            "{name}" => "someprofile",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn the_document_lists_exactly_the_registered_routes() {
    let registered = registered_routes();
    let documented = documented_routes();
    assert!(registered.len() > 40, "the parser found too few routes: {registered:?}");
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "openapi.json documents routes the router lacks: {phantom:?}"
    );
    assert_eq!(OPS.len(), documented.len(), "an operation is documented twice");
}

#[test]
fn the_document_is_well_formed() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    // Every $ref resolves.
    let re = regex::Regex::new(r##""\$ref":"#/components/schemas/([A-Za-z]+)""##).unwrap();
    for c in re.captures_iter(&text) {
        assert!(schemas.contains_key(&c[1]), "dangling $ref {}", &c[1]);
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = openapi::path_params(path).into_iter().collect();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}: no success answer"
            );
            if path != "/health" {
                assert!(responses.contains_key("401"), "{method} {path}: 401 not documented");
            }
            for (status, r) in responses {
                if status.starts_with('4') || (status.starts_with('5') && path != "/ready") {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}: errors use the envelope"
                    );
                }
            }
        }
    }
}

/// The router agrees with the parsed table: a method it does not serve on a path is 405 with an
/// `Allow` naming exactly the registered methods.
#[tokio::test]
async fn wrong_methods_are_405_with_the_registered_allow() {
    let f = fixture(None);
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in OPS {
        by_path
            .entry(o.path.to_string())
            .or_default()
            .insert(o.method.to_string());
    }
    for (path, methods) in by_path {
        let uri = format!("/api/v1{}", concrete(&path));
        let (st, body, headers) = call(&f, "PATCH", &uri, "", None).await;
        assert_eq!(
            (st, code(&body)),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            "PATCH {uri}"
        );
        let allow: BTreeSet<String> = headers
            .get(header::ALLOW)
            .unwrap_or_else(|| panic!("PATCH {uri}: no Allow"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(allow, methods, "Allow of {uri}");
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let f = fixture(Some("tok"));
    let (st, _, _) = call(&f, "GET", "/api/v1/openapi.json", "", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, body, headers) = call(&f, "GET", "/api/v1/openapi.json", "", Some("tok")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body, openapi::document());
}

/// Everything a rejected request must leave alone: the snapshot (without its clock), the issue's
/// enriched view (overrides) and WORKFLOW.md byte for byte.
async fn observe(f: &Fixture) -> (Value, Value, String) {
    let (_, mut state, _) = call(f, "GET", "/api/v1/state", "", None).await;
    state.as_object_mut().unwrap().remove("generatedAt");
    for host in state["sshHosts"].as_array_mut().into_iter().flatten() {
        // Connection attempts move these on their own.
        for k in ["status", "lastError", "latencyMs"] {
            host.as_object_mut().unwrap().remove(k);
        }
    }
    let (_, issue, _) = call(f, "GET", "/api/v1/issues/T-1", "", None).await;
    (state, issue, f.workflow_text())
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

/// A value of the wrong JSON type for a property schema.
fn wrong_type(prop: &Value) -> Value {
    let types: Vec<&str> = match &prop["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec!["string"], // enums of strings
    };
    if !types.contains(&"object") && !types.contains(&"integer") && !types.contains(&"number") {
        json!(42)
    } else {
        json!("not-the-right-type")
    }
}

/// Every body route refuses malformed bodies with the documented envelope, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_route_refuses_bad_bodies_and_changes_nothing() {
    let f = fixture(None);
    let doc = openapi::document();
    let big = format!(r#"{{"x":"{}"}}"#, "x".repeat((1 << 20) + 10));
    let mut checked = 0;
    for o in OPS.iter().filter(|o| o.body.is_some()) {
        let uri = format!("/api/v1{}", concrete(o.path));
        let schema = &doc["components"]["schemas"][o.body.unwrap()];
        let example = schema["examples"][0].clone();
        assert!(
            example.is_object(),
            "{} {}: the request schema needs an example",
            o.method,
            o.path
        );
        let props = schema["properties"].as_object().unwrap();
        // (body, status, code, field)
        let mut cases: Vec<(String, StatusCode, &str, Option<String>)> = vec![
            (
                r#"{"unterminated": "#.into(),
                StatusCode::BAD_REQUEST,
                "invalid_json",
                None,
            ),
            ("not json at all".into(), StatusCode::BAD_REQUEST, "invalid_json", None),
            ("[1, 2]".into(), StatusCode::BAD_REQUEST, "bad_request", None),
            (r#""a string""#.into(), StatusCode::BAD_REQUEST, "bad_request", None),
            (big.clone(), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
        ];
        if schema["additionalProperties"] == false {
            let mut b = example.clone();
            b["surpriseField"] = json!(1);
            cases.push((
                b.to_string(),
                StatusCode::BAD_REQUEST,
                "bad_request",
                Some("surpriseField".into()),
            ));
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let name = req.as_str().unwrap();
            let mut b = example.clone();
            b.as_object_mut().unwrap().remove(name);
            cases.push((b.to_string(), StatusCode::BAD_REQUEST, "bad_request", Some(name.into())));
        }
        if schema["minProperties"] == 1 {
            cases.push(("{}".into(), StatusCode::BAD_REQUEST, "bad_request", None));
            cases.push((String::new(), StatusCode::BAD_REQUEST, "bad_request", None));
        }
        for (name, prop) in props {
            let prop = resolve(&doc, prop);
            let mut b = example.clone();
            b[name] = wrong_type(prop);
            cases.push((b.to_string(), StatusCode::BAD_REQUEST, "bad_request", None));
            if prop["enum"].is_array() {
                let mut b = example.clone();
                b[name] = json!("no-such-value");
                cases.push((
                    b.to_string(),
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    Some(name.clone()),
                ));
            }
        }
        let before = observe(&f).await;
        for (body, status, want_code, field) in cases {
            let (st, answer, _) = call(&f, o.method, &uri, &body, None).await;
            let shown = if body.len() > 200 {
                format!("<{} bytes>", body.len())
            } else {
                body.clone()
            };
            assert_eq!(
                (st, code(&answer)),
                (status, want_code),
                "{} {uri} {shown}: {answer}",
                o.method
            );
            assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
            if let Some(field) = field {
                assert_eq!(answer["error"]["field"], field, "{} {uri} {shown}: {answer}", o.method);
            }
            let documented = doc["paths"][o.path][o.method.to_ascii_lowercase()]["responses"]
                .get(status.as_str())
                .is_some();
            assert!(documented, "{} {}: {status} is not documented", o.method, o.path);
            checked += 1;
        }
        assert_eq!(
            observe(&f).await,
            before,
            "{} {uri}: a refused body changed something",
            o.method
        );
    }
    assert!(checked > 100, "only {checked} cases ran");
}

/// One row of the route table: a request and what it must answer.
struct Row {
    method: &'static str,
    uri: &'static str,
    body: &'static str,
    status: u16,
    /// The error code, for error rows.
    code: Option<&'static str>,
}

const fn ok(method: &'static str, uri: &'static str, body: &'static str, status: u16) -> Row {
    Row {
        method,
        uri,
        body,
        status,
        code: None,
    }
}

const fn err(method: &'static str, uri: &'static str, body: &'static str, status: u16, code: &'static str) -> Row {
    Row {
        method,
        uri,
        body,
        status,
        code: Some(code),
    }
}

/// In order: later rows see the effects of earlier ones.
const ROWS: &[Row] = &[
    ok("GET", "/health", "", 200),
    ok("GET", "/ready", "", 200),
    ok("GET", "/openapi.json", "", 200),
    ok("GET", "/state", "", 200),
    ok("GET", "/events", "", 200),
    ok("POST", "/refresh", "", 202),
    ok("POST", "/refresh", "{}", 202),
    ok("GET", "/metrics", "", 200),
    ok("GET", "/issues", "", 200),
    ok("GET", "/issues/T-1", "", 200),
    err("GET", "/issues/T-404", "", 404, "not_found"),
    err("GET", "/issues/-rf", "", 400, "bad_request"),
    err("GET", "/issues/a%20b", "", 400, "bad_request"),
    err("POST", "/issues/T-1/cancel", "", 404, "not_running"),
    err("POST", "/issues/..%2F..%2Fetc/cancel", "", 400, "bad_request"),
    err("DELETE", "/issues/T-1", "", 404, "not_running"),
    err("POST", "/issues/T-1/resume", "", 404, "not_paused"),
    err("POST", "/issues/T-1/terminate", "", 404, "not_found"),
    err("POST", "/issues/x;rm/terminate", "", 400, "bad_request"),
    ok("POST", "/issues/T-1/reanalyze", "", 200),
    err("POST", "/issues/T-1/ai-review", "", 400, "bad_request"),
    ok("POST", "/issues/T-1/profile", r#"{"profile":"reviewer"}"#, 200),
    err(
        "POST",
        "/issues/T-1/profile",
        r#"{"profile":"nope"}"#,
        400,
        "bad_request",
    ),
    ok("POST", "/issues/T-1/profile", r#"{"profile":""}"#, 200),
    ok("POST", "/issues/T-1/backend", r#"{"backend":"claude"}"#, 200),
    ok("POST", "/issues/T-1/backend", r#"{"backend":""}"#, 200),
    err(
        "POST",
        "/issues/T-1/provide-input",
        r#"{"message":"hi"}"#,
        409,
        "not_input_required",
    ),
    err(
        "POST",
        "/issues/T-1/provide-input",
        r#"{"message":"  "}"#,
        400,
        "bad_request",
    ),
    err("POST", "/issues/T-1/dismiss-input", "", 409, "not_input_required"),
    ok("GET", "/issues/T-1/logs", "", 200),
    ok("DELETE", "/issues/T-1/logs", "", 200),
    err("GET", "/issues/../logs", "", 400, "bad_request"),
    ok("GET", "/issues/T-1/log-stream", "", 200),
    err("GET", "/issues/-x/log-stream", "", 400, "bad_request"),
    ok("GET", "/issues/T-1/sublogs", "", 200),
    ok("DELETE", "/issues/T-1/sublogs", "", 200),
    ok("DELETE", "/issues/T-1/sublogs/sess-1", "", 200),
    err("DELETE", "/issues/T-1/sublogs/..", "", 400, "bad_request"),
    err("GET", "/logs", "", 501, "not_supported"),
    ok("DELETE", "/logs", "", 200),
    ok("GET", "/logs/identifiers", "", 200),
    ok("POST", "/settings/workers", r#"{"workers":5}"#, 200),
    ok("POST", "/settings/workers", r#"{"delta":-1}"#, 200),
    ok("POST", "/settings/agent-mode", r#"{"mode":"teams"}"#, 200),
    err(
        "PUT",
        "/settings/tracker/states",
        r#"{"activeStates":[" "]}"#,
        400,
        "bad_request",
    ),
    err(
        "PUT",
        "/settings/tracker/states",
        r#"{"activeStates":["Todo"],"terminalStates":["todo"]}"#,
        400,
        "bad_request",
    ),
    ok(
        "PUT",
        "/settings/tracker/states",
        r#"{"activeStates":["Todo","Doing"],"terminalStates":["Done"]}"#,
        200,
    ),
    ok("POST", "/settings/workspace/auto-clear", r#"{"enabled":true}"#, 200),
    ok("POST", "/settings/inline-input", r#"{"enabled":false}"#, 200),
    ok("GET", "/settings/models", "", 200),
    ok("GET", "/settings/profiles", "", 200),
    ok(
        "PUT",
        "/settings/profiles/frontend",
        r#"{"command":"claude","backend":"claude","enabled":true}"#,
        200,
    ),
    err(
        "PUT",
        "/settings/profiles/bad",
        r#"{"command":"claude; rm -rf /"}"#,
        400,
        "bad_request",
    ),
    err("PUT", "/settings/profiles/bad", r#"{"command":""}"#, 400, "bad_request"),
    err(
        "PUT",
        "/settings/profiles/-x",
        r#"{"command":"claude"}"#,
        400,
        "bad_request",
    ),
    ok("DELETE", "/settings/profiles/frontend", "", 200),
    err("DELETE", "/settings/profiles/frontend", "", 404, "not_found"),
    ok("GET", "/settings/reviewer", "", 200),
    err("PUT", "/settings/reviewer", r#"{"profile":"nope"}"#, 400, "bad_request"),
    err(
        "PUT",
        "/settings/reviewer",
        r#"{"profile":"","autoReview":true}"#,
        400,
        "bad_request",
    ),
    ok(
        "PUT",
        "/settings/reviewer",
        r#"{"profile":"reviewer","autoReview":false}"#,
        200,
    ),
    ok(
        "PUT",
        "/settings/reviewer",
        r#"{"profile":"reviewer","auto_review":false}"#,
        200,
    ),
    ok(
        "PUT",
        "/settings/dispatch-strategy",
        r#"{"strategy":"least-loaded"}"#,
        200,
    ),
    ok("GET", "/settings/ssh-hosts", "", 200),
    ok(
        "POST",
        "/settings/ssh-hosts",
        r#"{"host":"127.0.0.1:9","description":"nothing listens"}"#,
        201,
    ),
    err(
        "POST",
        "/settings/ssh-hosts",
        r#"{"host":"127.0.0.1:9"}"#,
        409,
        "conflict",
    ),
    err("POST", "/ssh-hosts", r#"{"host":"127.0.0.1:9"}"#, 409, "conflict"),
    err(
        "DELETE",
        "/settings/ssh-hosts/127.0.0.1:9?drain=maybe",
        "",
        400,
        "bad_request",
    ),
    ok("DELETE", "/settings/ssh-hosts/127.0.0.1:9?drain=true", "", 200),
    err("DELETE", "/settings/ssh-hosts/127.0.0.1:9", "", 404, "not_found"),
    err("POST", "/ssh-hosts", r#"{"host":"bad host!"}"#, 400, "bad_request"),
    err("POST", "/ssh-hosts", r#"{"host":"  "}"#, 400, "bad_request"),
    ok("POST", "/ssh-hosts", r#"{"host":"tester@127.0.0.1:10"}"#, 201),
    ok("GET", "/ssh-hosts", "", 200),
    ok("DELETE", "/ssh-hosts/tester@127.0.0.1:10", "", 200),
    err("DELETE", "/ssh-hosts/tester@127.0.0.1:10", "", 404, "not_found"),
    err("DELETE", "/ssh-hosts/-oProxyCommand=x", "", 400, "bad_request"),
    err("GET", "/projects", "", 501, "not_supported"),
    err("GET", "/projects/filter", "", 501, "not_supported"),
    err(
        "PUT",
        "/projects/filter",
        r#"{"slugs":["alpha"]}"#,
        501,
        "not_supported",
    ),
    ok("DELETE", "/workspaces", "", 202),
];

/// Finds the documented operation a concrete request hits.
fn op_for(method: &str, uri: &str) -> &'static openapi::Op {
    let path = uri.split('?').next().unwrap();
    let segs: Vec<&str> = path.split('/').collect();
    OPS.iter()
        .filter(|o| o.method == method)
        .find(|o| {
            let t: Vec<&str> = o.path.split('/').collect();
            t.len() == segs.len() && t.iter().zip(&segs).all(|(a, b)| a.starts_with('{') || a == b)
        })
        .unwrap_or_else(|| panic!("no documented operation for {method} {uri}"))
}

/// Status and headers only (SSE bodies never end).
async fn call_status(f: &Fixture, method: &str, uri: &str) -> (StatusCode, axum::http::HeaderMap) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(AxumBody::empty())
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    (resp.status(), resp.headers().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_documented() {
    let f = fixture(None);
    let doc = openapi::document();
    // Wait for the first poll so the scheduler knows T-1.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while call(&f, "GET", "/api/v1/ready", "", None).await.0 != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut covered = BTreeSet::new();
    for row in ROWS {
        let op = op_for(row.method, row.uri);
        covered.insert((op.method, op.path));
        let uri = format!("/api/v1{}", row.uri);
        let what = format!("{} {uri} {}", row.method, row.body);
        if let Answer::Sse(_) = op.answer
            && row.code.is_none()
        {
            let (st, headers) = call_status(&f, row.method, &uri).await;
            assert_eq!(st.as_u16(), row.status, "{what}");
            assert!(
                headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream"),
                "{what}"
            );
            continue;
        }
        let (st, body, _) = call(&f, row.method, &uri, row.body, None).await;
        assert_eq!(st.as_u16(), row.status, "{what}: {body}");
        let responses = &doc["paths"][op.path][op.method.to_ascii_lowercase()]["responses"];
        assert!(
            responses.get(row.status.to_string()).is_some(),
            "{what}: {} is not documented for {} {}",
            row.status,
            op.method,
            op.path
        );
        match row.code {
            Some(c) => {
                assert_eq!(code(&body), c, "{what}: {body}");
                assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
            None => {
                assert_eq!(row.status, op.status, "{what}: the documented success status");
                let required = |name: &str| -> Vec<String> {
                    doc["components"]["schemas"][name]["required"]
                        .as_array()
                        .map(|r| r.iter().map(|k| k.as_str().unwrap().to_string()).collect())
                        .unwrap_or_default()
                };
                match op.answer {
                    Answer::Json(name) => {
                        for k in required(name) {
                            assert!(body.get(&k).is_some(), "{what}: the answer lacks {k}: {body}");
                        }
                    }
                    Answer::JsonList(name) => {
                        let items = body.as_array().unwrap_or_else(|| panic!("{what}: not a list: {body}"));
                        for item in items {
                            for k in required(name) {
                                assert!(item.get(&k).is_some(), "{what}: an item lacks {k}: {item}");
                            }
                        }
                    }
                    Answer::Empty | Answer::Prometheus | Answer::Sse(_) => {}
                }
            }
        }
    }
    let all: BTreeSet<_> = OPS.iter().map(|o| (o.method, o.path)).collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
    // The settings rows landed in WORKFLOW.md.
    let wf = crate::config::load::load_workflow(&f.workflow_path()).unwrap();
    assert_eq!(wf.config.agent.max_concurrent_agents, 4);
    assert_eq!(wf.config.agent.reviewer_profile.as_deref(), Some("reviewer"));
    assert!(!wf.config.agent.profiles.contains_key("frontend"));
    assert!(wf.config.agent.ssh_hosts.is_empty(), "{:?}", wf.config.agent.ssh_hosts);
}

#[tokio::test]
async fn token_rules() {
    let f = fixture(Some("s3cret"));
    async fn status(f: &Fixture, uri: &str, auth: Option<&str>) -> StatusCode {
        let mut req = Request::builder().uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = f
            .app
            .clone()
            .oneshot(req.body(AxumBody::empty()).unwrap())
            .await
            .unwrap();
        resp.status()
    }
    // /health is exempt, whatever is presented.
    assert_eq!(status(&f, "/api/v1/health", Some("Bearer wrong")).await, StatusCode::OK);
    // Other schemes, empty tokens, prefixes and extensions of the token are refused.
    for auth in [
        "Basic czNjcmV0",
        "Bearer ",
        "Bearer s3cre",
        "Bearer s3cret2",
        "s3cret",
        "Bearer S3CRET",
    ] {
        assert_eq!(
            status(&f, "/api/v1/state", Some(auth)).await,
            StatusCode::UNAUTHORIZED,
            "{auth}"
        );
    }
    assert_eq!(status(&f, "/api/v1/state", Some("Bearer s3cret")).await, StatusCode::OK);
    // Unknown routes still need the token (no route discovery without it).
    assert_eq!(status(&f, "/api/v1/nope", None).await, StatusCode::UNAUTHORIZED);
    // ?token= works on the SSE routes only.
    assert_eq!(status(&f, "/api/v1/events?token=s3cret", None).await, StatusCode::OK);
    assert_eq!(
        status(&f, "/api/v1/issues/T-1/log-stream?token=s3cret", None).await,
        StatusCode::OK
    );
    // /logs passes auth and then says this controller has no log file.
    assert_eq!(
        status(&f, "/api/v1/logs?token=s3cret", None).await,
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        status(&f, "/api/v1/logs?token=wrong", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&f, "/api/v1/events?token=wrong", None).await,
        StatusCode::UNAUTHORIZED
    );
    for uri in [
        "/api/v1/state?token=s3cret",
        "/api/v1/issues?token=s3cret",
        "/api/v1/issues/T-1/logs?token=s3cret",
    ] {
        assert_eq!(status(&f, uri, None).await, StatusCode::UNAUTHORIZED, "{uri}");
    }
    // A mutating route with a query token is refused and does nothing.
    let before = f.workflow_text();
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/settings/workers?token=s3cret")
        .body(AxumBody::from(r#"{"workers":9}"#))
        .unwrap();
    assert_eq!(
        f.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(f.workflow_text(), before);
}

#[test]
fn non_loopback_binds_need_a_token_or_an_explicit_opt_out() {
    let cases = [
        ("127.0.0.1:8090", None, false, true),
        ("127.0.0.2:8090", None, false, true),
        ("[::1]:8090", None, false, true),
        ("0.0.0.0:8090", None, false, false),
        ("0.0.0.0:8090", Some(""), false, false),
        ("[::]:8090", None, false, false),
        ("192.168.1.5:8090", None, false, false),
        ("0.0.0.0:8090", Some("tok"), false, true),
        ("0.0.0.0:8090", None, true, true),
    ];
    for (addr, token, allow, ok) in cases {
        let a: std::net::SocketAddr = addr.parse().unwrap();
        let r = crate::check_bind_safety(&a, token, allow);
        assert_eq!(r.is_ok(), ok, "{addr} token={token:?} allow={allow}: {r:?}");
        if let Err(e) = r {
            let m = e.to_string();
            assert!(
                m.contains("ITERVOX_API_TOKEN") && m.contains("allow_unauthenticated") && !m.contains('\n'),
                "{m}"
            );
        }
    }
}

#[test]
fn identifiers_and_hosts_are_validated() {
    for good in ["T-1", "owner/repo#12", "ENG-42", "user@host:22", "[::1]:22", "a.b_c"] {
        assert!(crate::api::valid_name("identifier", good).is_ok(), "{good}");
    }
    let long = "a".repeat(201);
    for bad in [
        "", ".", "..", "-rf", "a/../b", "./a", "a b", "a;b", "a|b", "a$b", "a`b", "a\nb", "a\0b", "ä", &long,
    ] {
        let e = crate::api::valid_name("identifier", bad).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, "bad_request", Some("identifier"))
        );
    }
}
