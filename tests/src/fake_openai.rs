//! A fake OpenAI Responses API on loopback for driving the real Codex CLI offline (a custom model
//! provider whose `base_url` is [`FakeOpenAi::base_url`] and `wire_api = "responses"`):
//! `POST /v1/responses` answers with the real API's SSE stream (`response.created`,
//! `response.in_progress`, `response.output_item.added`, `response.content_part.added`,
//! `response.output_text.delta` / `.done`, `response.content_part.done`,
//! `response.function_call_arguments.delta` / `.done`, `response.output_item.done`,
//! `response.completed` with usage; `response.failed` on failure) or its JSON response object,
//! `GET /v1/models` with an empty list, errors in the API's error envelope, anything else `200 {}`.
//! Every request is recorded.
//!
//! Scripts are picked like the fake Anthropic API's: a marker `[[fake:NAME]]` in the latest user message
//! that has one; the step is the number of tool outputs after it. Scripts: `text`, `bash` (the offered
//! shell tool — `exec_command` for current models — runs `echo hello > hello.txt`, then `Done.`),
//! `bash-then-ask` (the same shell call, then the `needs-input` question), `needs-input`, `resume` (`Second turn OK (request carried N input items).`), `rate-limit[:secs]`
//! (HTTP 429 `rate_limit_exceeded`), `server-error` (HTTP 500) and `failed` (a stream ending in
//! `response.failed`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::fake_anthropic::{NEEDS_INPUT, RecordedRequest, last_marker};

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running fake; stops when dropped.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts the fake on `127.0.0.1` and a free port.
    pub async fn start() -> std::io::Result<FakeOpenAi> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeOpenAi { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>/v1`, the provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("request log").clone()
    }

    /// The `POST …/responses` requests so far.
    pub fn response_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.split('?').next().is_some_and(|p| p.ends_with("/responses")))
            .collect()
    }

    /// A Codex `config.toml` that uses this fake as its model provider (`env_key` names the variable
    /// holding the key; any value works), with one retry so failures are quick.
    pub fn codex_config(&self, env_key: &str) -> String {
        format!(
            "model = \"gpt-5.5\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\nname = \"Fake\"\n\
             base_url = \"{}\"\nenv_key = \"{env_key}\"\nwire_api = \"responses\"\n\
             request_max_retries = 1\nstream_max_retries = 1\n",
            self.base_url()
        )
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn item_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("input_text" | "text" | "output_text")
                )
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// (name, arg, step, number of input items).
fn pick(body: &Value) -> (Option<(String, Option<String>, usize)>, usize) {
    let items: Vec<Value> = match body.get("input") {
        Some(Value::String(s)) => vec![json!({ "type": "message", "role": "user", "content": s })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    for (i, item) in items.iter().enumerate().rev() {
        if item.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        if let Some((name, arg)) = last_marker(&item_text(item)) {
            let step = items[i + 1..]
                .iter()
                .filter(|x| {
                    matches!(
                        x.get("type").and_then(Value::as_str),
                        Some("function_call_output" | "custom_tool_call_output" | "local_shell_call_output")
                    )
                })
                .count();
            return (Some((name, arg, step)), items.len());
        }
    }
    (None, items.len())
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..20].to_string()
}

fn message(text: &str) -> Value {
    json!({
        "id": format!("msg_{}", short_id()), "type": "message", "role": "assistant", "status": "completed",
        "content": [{ "type": "output_text", "text": text, "annotations": [] }],
    })
}

/// A call of the request's shell tool running `command`.
fn shell_call(body: &Value, command: &str) -> Value {
    let offered: Vec<&str> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").or_else(|| t.get("type")).and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let (name, arguments) = if offered.contains(&"exec_command") {
        ("exec_command", json!({ "cmd": command }))
    } else if offered.contains(&"shell_command") {
        ("shell_command", json!({ "command": command }))
    } else {
        ("shell", json!({ "command": ["bash", "-lc", command] }))
    };
    json!({
        "id": format!("fc_{}", short_id()), "type": "function_call", "status": "completed",
        "name": name, "call_id": format!("call_{}", short_id()), "arguments": arguments.to_string(),
    })
}

enum Reply {
    Items(Vec<Value>),
    Error {
        status: u16,
        body: Value,
        headers: Vec<(String, String)>,
    },
    Failed {
        code: &'static str,
        message: &'static str,
    },
}

fn script(picked: Option<(String, Option<String>, usize)>, n_items: usize, body: &Value) -> Reply {
    let Some((name, arg, step)) = picked else {
        return Reply::Items(vec![message("OK")]);
    };
    match name.as_str() {
        "text" => Reply::Items(vec![message("Hello from the fake model.")]),
        "bash" if step == 0 => Reply::Items(vec![shell_call(body, "echo hello > hello.txt")]),
        "bash" => Reply::Items(vec![message("Done.")]),
        "bash-then-ask" if step == 0 => Reply::Items(vec![shell_call(body, "echo hello > hello.txt")]),
        "needs-input" | "bash-then-ask" => Reply::Items(vec![message(&format!(
            "Should the migration target PostgreSQL or SQLite?\n{NEEDS_INPUT}"
        ))]),
        "resume" => Reply::Items(vec![message(&format!(
            "Second turn OK (request carried {n_items} input items)."
        ))]),
        "rate-limit" => Reply::Error {
            status: 429,
            body: json!({ "error": { "message": "Rate limit reached (fake)", "type": "requests",
                                     "code": "rate_limit_exceeded", "param": null } }),
            headers: vec![("retry-after".into(), arg.unwrap_or_else(|| "1".into()))],
        },
        "server-error" => Reply::Error {
            status: 500,
            body: json!({ "error": { "message": "internal error (fake)", "type": "server_error",
                                     "code": null, "param": null } }),
            headers: Vec::new(),
        },
        "failed" => Reply::Failed {
            code: "server_error",
            message: "the fake model failed",
        },
        other => Reply::Items(vec![message(&format!("fake: unknown scenario {other:?}"))]),
    }
}

fn json_response(status: u16, body: &Value, headers: &[(String, String)]) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", format!("req_fake_{}", short_id()));
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Numbers the events of one stream.
struct Events {
    seq: u64,
    out: Vec<Bytes>,
}

impl Events {
    fn push(&mut self, kind: &str, mut payload: Value) {
        payload["type"] = json!(kind);
        payload["sequence_number"] = json!(self.seq);
        self.seq += 1;
        self.out
            .push(Bytes::from(format!("event: {kind}\ndata: {payload}\n\n")));
    }
}

fn stream_events(base: &Value, items: &[Value], usage: &Value) -> Vec<Bytes> {
    let mut ev = Events {
        seq: 0,
        out: Vec::new(),
    };
    ev.push("response.created", json!({ "response": base }));
    ev.push("response.in_progress", json!({ "response": base }));
    for (index, item) in items.iter().enumerate() {
        let id = item["id"].clone();
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["content"] = json!([]);
                ev.push(
                    "response.output_item.added",
                    json!({ "output_index": index, "item": added }),
                );
                let part = json!({ "type": "output_text", "text": "", "annotations": [] });
                ev.push(
                    "response.content_part.added",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }),
                );
                let text = item["content"][0]["text"].as_str().unwrap_or_default();
                let chars: Vec<char> = text.chars().collect();
                for chunk in chars.chunks(20) {
                    let delta: String = chunk.iter().collect();
                    ev.push(
                        "response.output_text.delta",
                        json!({ "item_id": id, "output_index": index, "content_index": 0, "delta": delta }),
                    );
                }
                ev.push(
                    "response.output_text.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text }),
                );
                ev.push(
                    "response.content_part.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "part": item["content"][0] }),
                );
            }
            Some("function_call") => {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["arguments"] = json!("");
                ev.push(
                    "response.output_item.added",
                    json!({ "output_index": index, "item": added }),
                );
                ev.push(
                    "response.function_call_arguments.delta",
                    json!({ "item_id": id, "output_index": index, "delta": item["arguments"] }),
                );
                ev.push(
                    "response.function_call_arguments.done",
                    json!({ "item_id": id, "output_index": index, "arguments": item["arguments"] }),
                );
            }
            _ => ev.push(
                "response.output_item.added",
                json!({ "output_index": index, "item": item }),
            ),
        }
        ev.push(
            "response.output_item.done",
            json!({ "output_index": index, "item": item }),
        );
    }
    let mut done = base.clone();
    done["status"] = json!("completed");
    done["output"] = json!(items);
    done["usage"] = usage.clone();
    ev.push("response.completed", json!({ "response": done }));
    ev.out
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
    let is_responses = method == Method::POST && path.ends_with("/responses");
    let (picked, n_items) = match (&json, is_responses) {
        (Some(b), true) => pick(b),
        _ => (None, 0),
    };
    shared.requests.lock().expect("request log").push(RecordedRequest {
        method: method.to_string(),
        path: uri.path_and_query().map_or(path.clone(), |p| p.to_string()),
        headers: headers
            .iter()
            .filter(|(k, _)| k.as_str() != "authorization")
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect::<BTreeMap<_, _>>(),
        body: json.clone(),
        scenario: picked.as_ref().map(|(n, _, _)| n.clone()),
    });
    if method == Method::GET && path.trim_end_matches('/').ends_with("/models") {
        return json_response(200, &json!({ "object": "list", "data": [], "models": [] }), &[]);
    }
    let Some(body) = json.filter(|_| is_responses) else {
        return json_response(200, &json!({}), &[]);
    };
    let reply = script(picked, n_items, &body);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("fake-model");
    let base = json!({
        "id": format!("resp_fake_{}", short_id()), "object": "response",
        "created_at": chrono::Utc::now().timestamp(), "model": model, "status": "in_progress",
        "output": [], "error": null, "incomplete_details": null, "usage": null,
    });
    let input_tokens = (body.to_string().len() / 4).max(1) as u64;
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": { "cached_tokens": 0 },
        "output_tokens": 10, "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": input_tokens + 10,
    });
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    let events = match reply {
        Reply::Error { status, body, headers } => return json_response(status, &body, &headers),
        Reply::Failed { code, message } => {
            if !streaming {
                return json_response(
                    500,
                    &json!({ "error": { "code": code, "message": message, "type": "server_error" } }),
                    &[],
                );
            }
            let mut ev = Events {
                seq: 0,
                out: Vec::new(),
            };
            ev.push("response.created", json!({ "response": base }));
            let mut failed = base.clone();
            failed["status"] = json!("failed");
            failed["error"] = json!({ "code": code, "message": message });
            ev.push("response.failed", json!({ "response": failed }));
            ev.out
        }
        Reply::Items(items) => {
            if !streaming {
                let mut done = base.clone();
                done["status"] = json!("completed");
                done["output"] = json!(items);
                done["usage"] = usage;
                return json_response(200, &done, &[]);
            }
            stream_events(&base, &items, &usage)
        }
    };
    let stream = futures::stream::iter(events.into_iter().map(Ok::<Bytes, Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-request-id", format!("req_fake_{}", short_id()))
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
