//! A fake Anthropic Messages API on loopback for driving the real Claude Code CLI offline
//! (`ANTHROPIC_BASE_URL=<base_url>`): `POST /v1/messages` answers with the real API's SSE stream
//! (`message_start`, `ping`, `content_block_start` / `content_block_delta` / `content_block_stop`,
//! `message_delta` with usage, `message_stop`) or its JSON message, `POST /v1/messages/count_tokens`
//! with a count, errors in the API's error envelope, and anything else with `200 {}`. Every request is
//! recorded.
//!
//! The model's behaviour is scripted by a marker `[[fake:NAME]]` (or `[[fake:NAME:ARG]]`) in the text of
//! a user message: the latest user message that carries one picks the script, and the step within it is
//! the number of assistant messages after that message. The server is therefore stateless, and
//! `--resume` turns and subagents (whose prompts carry their own markers) just work. Scripts:
//!
//! | name | behaviour |
//! |---|---|
//! | `text` | answers `Hello from the fake model.` |
//! | `bash` | calls Bash `echo hello > hello.txt`, then answers `Done.` |
//! | `edit` | writes `notes.md` in the working directory with the Write tool, then `Done.` |
//! | `needs-input` | asks a question ending with the line `<!-- itervox:needs-input -->` |
//! | `resume` | answers `Second turn OK (request carried N messages).` |
//! | `rate-limit[:secs]` | always HTTP 429 `rate_limit_error` with `retry-after` (default 1) |
//! | `overloaded` | always HTTP 529 `overloaded_error` |
//! | `usage-limit:EPOCH` | always HTTP 429 whose message says the limit `resets H:MMam (UTC)` at the Unix time EPOCH, with a `retry-after` that long (too long for the CLI to wait, so it gives up at once) |
//! | `task` / `task-fg` | starts a subagent (the Agent tool, in the background / foreground) whose prompt runs `sub-bash`, then `Done.` |
//! | `sub-bash` | calls Bash `echo from-subagent > sub.txt`, then `Subagent finished: sub.txt written.` |
//! | `loop` | calls Bash `echo step N` forever (for `--max-turns`) |
//!
//! A request without a marker gets the text `OK`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

/// The needs-input sentinel line.
pub const NEEDS_INPUT: &str = "<!-- itervox:needs-input -->";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Lowercased header names; credentials left out.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, when it was JSON.
    pub body: Option<Value>,
    /// The script that answered (`None` for no marker or another path).
    pub scenario: Option<String>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running fake; stops when dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAnthropic {
    /// Starts the fake on `127.0.0.1` and a free port.
    pub async fn start() -> std::io::Result<FakeAnthropic> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeAnthropic { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`, the value for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("request log").clone()
    }

    /// The `POST /v1/messages` requests so far.
    pub fn message_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.split('?').next() == Some("/v1/messages"))
            .collect()
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The marker `[[fake:NAME]]` / `[[fake:NAME:ARG]]` last in `text`, as (name, arg).
pub fn last_marker(text: &str) -> Option<(String, Option<String>)> {
    let start = text.rfind("[[fake:")? + "[[fake:".len();
    let end = text[start..].find("]]")? + start;
    let inner = &text[start..end];
    match inner.split_once(':') {
        Some((name, arg)) => Some((name.to_string(), Some(arg.to_string()))),
        None => Some((inner.to_string(), None)),
    }
}

/// The user-visible text of a message's content (tool results left out).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The script of a request: (name, arg, step).
fn pick(body: &Value) -> Option<(String, Option<String>, usize)> {
    let messages = body.get("messages")?.as_array()?;
    for (i, message) in messages.iter().enumerate().rev() {
        if message.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        if let Some((name, arg)) = last_marker(&text_of(message.get("content").unwrap_or(&Value::Null))) {
            let step = messages[i + 1..]
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .count();
            return Some((name, arg, step));
        }
    }
    None
}

/// The request's tool of the first name it offers among `names` (else the first name).
fn tool_name(body: &Value, names: &[&str]) -> String {
    let offered: Vec<&str> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    names
        .iter()
        .find(|n| offered.contains(n))
        .unwrap_or(&names[0])
        .to_string()
}

fn text(t: &str) -> Value {
    json!({ "type": "text", "text": t })
}

fn tool_use(name: &str, input: Value) -> Value {
    json!({ "type": "tool_use", "id": format!("toolu_{}", short_id()), "name": name, "input": input })
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..24].to_string()
}

/// What a script step answers.
enum Reply {
    Message {
        blocks: Vec<Value>,
        stop: &'static str,
    },
    Error {
        status: u16,
        kind: &'static str,
        message: String,
        headers: Vec<(String, String)>,
    },
}

fn done() -> Reply {
    Reply::Message {
        blocks: vec![text("Done.")],
        stop: "end_turn",
    }
}

/// The working directory Claude Code names in its prompt ("Primary working directory: …").
fn working_directory(body: &Value) -> Option<String> {
    let system = body.to_string();
    let start = system.find("Primary working directory: ")? + "Primary working directory: ".len();
    let rest = &system[start..];
    let end = rest.find(['\\', '"', ' ', '\n']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

fn script(name: &str, arg: Option<&str>, step: usize, body: &Value) -> Reply {
    match name {
        "text" => Reply::Message {
            blocks: vec![text("Hello from the fake model.")],
            stop: "end_turn",
        },
        "bash" if step == 0 => Reply::Message {
            blocks: vec![
                text("I'll create the file."),
                tool_use(
                    &tool_name(body, &["Bash"]),
                    json!({ "command": "echo hello > hello.txt", "description": "Create hello.txt" }),
                ),
            ],
            stop: "tool_use",
        },
        "bash" => done(),
        "sub-bash" if step == 0 => Reply::Message {
            blocks: vec![tool_use(
                &tool_name(body, &["Bash"]),
                json!({ "command": "echo from-subagent > sub.txt", "description": "Create sub.txt" }),
            )],
            stop: "tool_use",
        },
        "sub-bash" => Reply::Message {
            blocks: vec![text("Subagent finished: sub.txt written.")],
            stop: "end_turn",
        },
        "edit" if step == 0 => {
            let dir = working_directory(body).unwrap_or_else(|| ".".into());
            Reply::Message {
                blocks: vec![tool_use(
                    &tool_name(body, &["Write"]),
                    json!({ "file_path": format!("{dir}/notes.md"), "content": "# Notes\n\nwritten by the fake model\n" }),
                )],
                stop: "tool_use",
            }
        }
        "edit" => done(),
        "needs-input" => Reply::Message {
            blocks: vec![text(&format!(
                "I need a decision before I continue: should the migration target PostgreSQL or SQLite?\n{NEEDS_INPUT}"
            ))],
            stop: "end_turn",
        },
        "resume" => {
            let n = body.get("messages").and_then(Value::as_array).map_or(0, Vec::len);
            Reply::Message {
                blocks: vec![text(&format!("Second turn OK (request carried {n} messages)."))],
                stop: "end_turn",
            }
        }
        "rate-limit" => {
            let secs: u64 = arg.and_then(|a| a.parse().ok()).unwrap_or(1);
            let reset = chrono::Utc::now() + chrono::Duration::seconds(secs as i64);
            Reply::Error {
                status: 429,
                kind: "rate_limit_error",
                message: "Number of request tokens has exceeded your per-minute rate limit (fake)".into(),
                headers: vec![
                    ("retry-after".into(), secs.to_string()),
                    ("x-should-retry".into(), "true".into()),
                    ("anthropic-ratelimit-requests-limit".into(), "50".into()),
                    ("anthropic-ratelimit-requests-remaining".into(), "0".into()),
                    (
                        "anthropic-ratelimit-requests-reset".into(),
                        reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ),
                ],
            }
        }
        "usage-limit" => {
            let reset = arg
                .and_then(|a| a.parse::<i64>().ok())
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::hours(1));
            let wait = (reset - chrono::Utc::now()).num_seconds().max(1);
            Reply::Error {
                status: 429,
                kind: "rate_limit_error",
                message: format!("5-hour limit reached ∙ resets {} (UTC)", reset.format("%-I:%M%P")),
                headers: vec![("retry-after".into(), wait.to_string())],
            }
        }
        "overloaded" => Reply::Error {
            status: 529,
            kind: "overloaded_error",
            message: "Overloaded".into(),
            headers: Vec::new(),
        },
        "task" | "task-fg" if step == 0 => {
            let mut input = json!({
                "description": "Write sub.txt",
                "prompt": "[[fake:sub-bash]] Create sub.txt containing from-subagent.",
                "subagent_type": "general-purpose",
            });
            if name == "task-fg" {
                input["run_in_background"] = json!(false);
            }
            Reply::Message {
                blocks: vec![
                    text("Delegating to a subagent."),
                    tool_use(&tool_name(body, &["Agent", "Task"]), input),
                ],
                stop: "tool_use",
            }
        }
        "task" | "task-fg" => done(),
        "loop" => Reply::Message {
            blocks: vec![tool_use(
                &tool_name(body, &["Bash"]),
                json!({ "command": format!("echo step {step}"), "description": "Next step" }),
            )],
            stop: "tool_use",
        },
        other => Reply::Message {
            blocks: vec![text(&format!("fake: unknown scenario {other:?}"))],
            stop: "end_turn",
        },
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({
        "input_tokens": input,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    })
}

fn json_response(status: u16, body: &Value, headers: &[(String, String)]) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header("request-id", format!("req_fake_{}", short_id()));
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// One SSE event.
fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The streamed form of a message, event by event, as the real API sends it.
fn stream_events(id: &str, model: &str, blocks: &[Value], stop: &str, input: u64, output: u64) -> Vec<Bytes> {
    let mut events = vec![
        sse(
            "message_start",
            &json!({ "type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": usage(input, 1),
            }}),
        ),
        sse("ping", &json!({ "type": "ping" })),
    ];
    for (index, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let start = json!({ "type": "tool_use", "id": block["id"], "name": block["name"], "input": {} });
                events.push(sse(
                    "content_block_start",
                    &json!({ "type": "content_block_start", "index": index, "content_block": start }),
                ));
                let input = block["input"].to_string();
                let chars: Vec<char> = input.chars().collect();
                for chunk in chars.chunks(30) {
                    let partial: String = chunk.iter().collect();
                    events.push(sse(
                        "content_block_delta",
                        &json!({ "type": "content_block_delta", "index": index,
                                 "delta": { "type": "input_json_delta", "partial_json": partial } }),
                    ));
                }
            }
            _ => {
                events.push(sse(
                    "content_block_start",
                    &json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } }),
                ));
                let t = block.get("text").and_then(Value::as_str).unwrap_or_default();
                let chars: Vec<char> = t.chars().collect();
                for chunk in chars.chunks(20) {
                    let piece: String = chunk.iter().collect();
                    events.push(sse(
                        "content_block_delta",
                        &json!({ "type": "content_block_delta", "index": index,
                                 "delta": { "type": "text_delta", "text": piece } }),
                    ));
                }
            }
        }
        events.push(sse(
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": index }),
        ));
    }
    events.push(sse(
        "message_delta",
        &json!({ "type": "message_delta", "delta": { "stop_reason": stop, "stop_sequence": null },
                 "usage": { "output_tokens": output } }),
    ));
    events.push(sse("message_stop", &json!({ "type": "message_stop" })));
    events
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let path = uri.path().to_string();
    let picked = if method == Method::POST && path == "/v1/messages" {
        json.as_ref().and_then(pick)
    } else {
        None
    };
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path_and_query().map_or(path.clone(), |p| p.to_string()),
        headers: headers
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "x-api-key" | "authorization"))
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json.clone(),
        scenario: picked.as_ref().map(|(name, _, _)| name.clone()),
    };
    shared.requests.lock().expect("request log").push(recorded);

    let Some(body) = json.filter(|_| method == Method::POST) else {
        return json_response(200, &json!({}), &[]);
    };
    let estimate = (body.to_string().len() / 4).max(1) as u64;
    if path == "/v1/messages/count_tokens" {
        return json_response(200, &json!({ "input_tokens": estimate }), &[]);
    }
    if path != "/v1/messages" {
        return json_response(200, &json!({}), &[]);
    }
    let reply = match &picked {
        Some((name, arg, step)) => script(name, arg.as_deref(), *step, &body),
        None => Reply::Message {
            blocks: vec![text("OK")],
            stop: "end_turn",
        },
    };
    match reply {
        Reply::Error {
            status,
            kind,
            message,
            headers,
        } => json_response(
            status,
            &json!({ "type": "error", "error": { "type": kind, "message": message } }),
            &headers,
        ),
        Reply::Message { blocks, stop } => {
            let id = format!("msg_fake_{}", short_id());
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("claude-fake")
                .to_string();
            let output = (Value::Array(blocks.clone()).to_string().len() / 4).max(1) as u64;
            if body.get("stream").and_then(Value::as_bool) != Some(true) {
                return json_response(
                    200,
                    &json!({ "id": id, "type": "message", "role": "assistant", "model": model,
                             "content": blocks, "stop_reason": stop, "stop_sequence": null,
                             "usage": usage(estimate, output) }),
                    &[],
                );
            }
            let events = stream_events(&id, &model, &blocks, stop, estimate, output);
            let stream = futures::stream::iter(events.into_iter().map(Ok::<Bytes, Infallible>));
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .header("request-id", format!("req_fake_{}", short_id()))
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
    }
}
