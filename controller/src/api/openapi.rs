//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every `/api/v1` route, built once from the
//! operation table below (method, path, body schema, success and error answers). A test in `api/tests`
//! checks the table against the routes `router()` really registers, in both directions.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// What a successful answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// No body.
    Empty,
    /// JSON matching the named component schema.
    Json(&'static str),
    /// A JSON array of the named component schema.
    JsonList(&'static str),
    /// A Server-Sent Events stream; the text says what each event carries.
    Sse(&'static str),
    /// Prometheus text exposition.
    Prometheus,
}

/// One route + method.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub method: &'static str,
    /// The path under `/api/v1`, with `{parameters}`.
    pub path: &'static str,
    pub summary: &'static str,
    /// Component schema of the JSON request body.
    pub body: Option<&'static str>,
    pub status: u16,
    pub answer: Answer,
    /// Error statuses the route can answer (401 is added for every route but `/health`; 400 and 413
    /// for every route with a body).
    pub errors: &'static [u16],
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
}

const fn op(method: &'static str, path: &'static str, summary: &'static str, status: u16, answer: Answer) -> Op {
    Op {
        method,
        path,
        summary,
        body: None,
        status,
        answer,
        errors: &[],
        query: &[],
    }
}

impl Op {
    const fn body(mut self, schema: &'static str) -> Op {
        self.body = Some(schema);
        self
    }
    const fn errors(mut self, errors: &'static [u16]) -> Op {
        self.errors = errors;
        self
    }
    const fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Op {
        self.query = query;
        self
    }
}

use Answer::{Empty, Json, JsonList, Prometheus, Sse};

const TOKEN_QUERY: (&str, &str) = (
    "token",
    "The API token, for EventSource clients that cannot send Authorization (SSE routes only).",
);

/// Every operation the API serves.
pub const OPS: &[Op] = &[
    op("GET", "/health", "Liveness probe: always 200 with no body; needs no token.", 200, Empty),
    op("GET", "/ready", "Readiness: 200 when polling works and the controller is not draining, else 503 with the same body.", 200, Json("Readiness")).errors(&[503]),
    op("GET", "/openapi.json", "This document.", 200, Json("OpenApiDocument")),
    op("GET", "/state", "The current orchestrator snapshot.", 200, Json("StateSnapshot")),
    op("GET", "/events", "SSE: a full StateSnapshot at once and after every change (`id:` is the snapshot version).", 200, Sse("each `data:` is a full StateSnapshot")).query(&[TOKEN_QUERY]),
    op("POST", "/refresh", "An immediate poll and reconcile, joined with one already running.", 202, Json("RefreshQueued")).errors(&[503]),
    op("GET", "/metrics", "Prometheus metrics (itervox_running, itervox_retrying, itervox_paused, itervox_input_required, itervox_max_concurrent_agents, itervox_sse_clients, itervox_host_running, itervox_host_up, itervox_dispatches_total, itervox_run_failures_total, itervox_tracker_requests_total, itervox_tracker_errors_total).", 200, Prometheus),
    op("GET", "/issues", "The tracker's issues enriched with orchestrator state.", 200, JsonList("TrackerIssue")).errors(&[503]),
    op("GET", "/issues/{identifier}", "One issue, fetched live from the tracker (with comments) and enriched.", 200, Json("TrackerIssue")).errors(&[400, 404, 502, 503]),
    op("DELETE", "/issues/{identifier}", "Alias of POST /issues/{identifier}/cancel.", 200, Json("Cancelled")).errors(&[400, 404, 503]),
    op("POST", "/issues/{identifier}/cancel", "Pause a running agent: kill it, mark the issue paused; 404 not_running otherwise.", 200, Json("Cancelled")).errors(&[400, 404, 503]),
    op("POST", "/issues/{identifier}/resume", "Make a paused issue eligible again; 404 not_paused otherwise.", 200, Json("Resumed")).errors(&[400, 404, 503]),
    op("POST", "/issues/{identifier}/terminate", "Hard-stop a running or paused agent, release the claim, allow immediate re-dispatch.", 200, Json("Terminated")).errors(&[400, 404, 503]),
    op("POST", "/issues/{identifier}/reanalyze", "Re-dispatch bypassing the open-PR auto-pause guard; 409 while the issue runs.", 200, Json("Queued")).errors(&[400, 409, 503]),
    op("POST", "/issues/{identifier}/ai-review", "Run the reviewer profile against the issue's open PR; 400 when no reviewer profile is configured, 409 while the issue runs or no host is free.", 202, Json("Queued")).errors(&[400, 409, 503]),
    op("POST", "/issues/{identifier}/profile", "Set (or clear with \"\") the issue's agent profile override; 400 for an unknown profile.", 200, Json("ProfileSet")).body("ProfileRequest").errors(&[503]),
    op("POST", "/issues/{identifier}/backend", "Set (or clear with \"\") the issue's backend override.", 200, Json("BackendSet")).body("BackendRequest").errors(&[503]),
    op("POST", "/issues/{identifier}/provide-input", "Answer an issue waiting for input; the same agent session resumes with the message.", 202, Json("IssueOk")).body("InputRequest").errors(&[409, 503]),
    op("POST", "/issues/{identifier}/dismiss-input", "Dismiss an input request: the issue becomes paused.", 202, Json("IssueOk")).errors(&[400, 409, 503]),
    op("GET", "/issues/{identifier}/logs", "Every stored log entry of the issue, oldest first.", 200, JsonList("IssueLogEntry")).errors(&[400, 500]),
    op("DELETE", "/issues/{identifier}/logs", "Clear the issue's stored log entries.", 200, Json("Ok")).errors(&[400, 500]),
    op("GET", "/issues/{identifier}/log-stream", "SSE `event: log` per entry: stored entries after Last-Event-ID, then live ones; `event: gap` when the cursor is gone.", 200, Sse("`event: log`, `data:` one IssueLogEntry; `id:` the resume cursor")).errors(&[400]).query(&[("lastEventId", "Resume cursor when the client cannot send Last-Event-ID."), TOKEN_QUERY]),
    op("GET", "/issues/{identifier}/sublogs", "The agent CLI's own session logs, read from the host that ran the issue.", 200, JsonList("IssueLogEntry")).errors(&[400, 502, 503]),
    op("DELETE", "/issues/{identifier}/sublogs", "Clear every agent session log of the issue on its host.", 200, Json("Ok")).errors(&[400, 502, 503]),
    op("DELETE", "/issues/{identifier}/sublogs/{sessionId}", "Clear one agent session log on the issue's host.", 200, Json("Ok")).errors(&[400, 502, 503]),
    op("GET", "/logs", "SSE tail of the controller's own rotating log file (`event: log`, one JSON line each).", 200, Sse("`event: log`, `data:` one line of the controller's JSON log")).errors(&[400, 501]).query(&[("identifier", "Keep only lines about this issue."), TOKEN_QUERY]),
    op("DELETE", "/logs", "Clear every issue's stored log entries.", 200, Json("Ok")).errors(&[500]),
    op("GET", "/logs/identifiers", "Identifiers of the issues that have stored log entries.", 200, JsonList("Identifier")).errors(&[500]),
    op("POST", "/settings/workers", "Set agent.max_concurrent_agents, absolute or relative, clamped to 1..=200; persisted.", 200, Json("WorkersSet")).body("WorkersRequest").errors(&[409, 503]),
    op("POST", "/settings/agent-mode", "Set the collaboration mode; persisted.", 200, Json("ModeSet")).body("ModeRequest").errors(&[409, 503]),
    op("PUT", "/settings/tracker/states", "Set the tracker state lists; persisted.", 200, Json("Ok")).body("TrackerStatesRequest").errors(&[409, 503]),
    op("POST", "/settings/workspace/auto-clear", "Toggle removing a worktree when its issue completes; persisted.", 200, Json("AutoClearSet")).body("EnabledRequest").errors(&[409, 503]),
    op("POST", "/settings/inline-input", "Toggle answering input requests in the dashboard instead of tracker comments; persisted.", 200, Json("InlineInputSet")).body("EnabledRequest").errors(&[409, 503]),
    op("GET", "/settings/models", "Available models per backend (agent.available_models).", 200, Json("Models")),
    op("GET", "/settings/profiles", "The named agent profiles.", 200, Json("Profiles")),
    op("PUT", "/settings/profiles/{name}", "Create or update a profile; persisted.", 200, Json("Ok")).body("ProfileDef").errors(&[409, 503]),
    op("DELETE", "/settings/profiles/{name}", "Remove a profile (and the reviewer setting naming it); persisted.", 200, Json("Ok")).errors(&[400, 404, 409, 503]),
    op("GET", "/settings/reviewer", "The reviewer profile and the auto-review flag.", 200, Json("ReviewerSettings")),
    op("PUT", "/settings/reviewer", "Set the reviewer profile and auto-review flag; 400 for an unknown profile; persisted.", 200, Json("Ok")).body("ReviewerSettings").errors(&[409, 503]),
    op("PUT", "/settings/dispatch-strategy", "Set how sessions are placed on hosts; persisted.", 200, Json("StrategySet")).body("StrategyRequest").errors(&[409, 503]),
    op("GET", "/settings/ssh-hosts", "Alias of GET /ssh-hosts.", 200, JsonList("HostRow")),
    op("POST", "/settings/ssh-hosts", "Alias of POST /ssh-hosts.", 201, Json("HostAdded")).body("AddHostRequest").errors(&[409, 503]),
    op("DELETE", "/settings/ssh-hosts/{host}", "Alias of DELETE /ssh-hosts/{host}.", 200, Json("HostRemoved")).errors(&[400, 404, 409, 503]).query(&[("drain", "true: let the host's sessions finish; false (default): cancel them.")]),
    op("GET", "/ssh-hosts", "The host pool with health.", 200, JsonList("HostRow")),
    op("POST", "/ssh-hosts", "Add a worker host; 409 when already present; persisted.", 201, Json("HostAdded")).body("AddHostRequest").errors(&[409, 503]),
    op("DELETE", "/ssh-hosts/{host}", "Remove a worker host; persisted.", 200, Json("HostRemoved")).errors(&[400, 404, 409, 503]).query(&[("drain", "true: let the host's sessions finish; false (default): cancel them.")]),
    op("GET", "/projects", "The tracker's projects (Linear only; 501 for other trackers).", 200, Json("Projects")).errors(&[501, 502]),
    op("GET", "/projects/filter", "The active project filter: null = default, [] = all (Linear only).", 200, Json("ProjectFilter")).errors(&[501]),
    op("PUT", "/projects/filter", "Set the project filter (Linear only); persisted.", 200, Json("ProjectFilterSet")).body("FilterRequest").errors(&[409, 501, 503]),
    op("DELETE", "/workspaces", "Stop every run, then remove every managed worktree on every host (in the background).", 202, Json("Ok")).errors(&[503]),
];

/// The path template's parameters, in order.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn error_code_text(status: u16) -> &'static str {
    match status {
        400 => "invalid_json, bad_request (with field)",
        401 => "unauthorized",
        404 => "not_found, not_running, not_paused",
        405 => "method_not_allowed (with Allow)",
        409 => "conflict, not_input_required (or WORKFLOW.md has an edit to fix first)",
        413 => "payload_too_large (body over 1 MiB)",
        500 => "internal",
        501 => "not_supported",
        502 => "tracker_error, host_unreachable",
        503 => "orchestrator_busy, shutting_down (with Retry-After)",
        _ => "error",
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn answer_content(answer: Answer) -> Option<Value> {
    match answer {
        Empty => None,
        Json(name) => Some(json!({ "application/json": { "schema": schema_ref(name) } })),
        JsonList(name) => {
            Some(json!({ "application/json": { "schema": { "type": "array", "items": schema_ref(name) } } }))
        }
        Sse(what) => Some(json!({ "text/event-stream": { "schema": { "type": "string", "description": what } } })),
        Prometheus => Some(json!({ "text/plain": { "schema": { "type": "string" } } })),
    }
}

fn operation(o: &Op) -> Value {
    let mut params: Vec<Value> = path_params(o.path)
        .into_iter()
        .map(|p| {
            json!({
                "name": p, "in": "path", "required": true,
                "schema": { "type": "string", "maxLength": 200, "pattern": "^[A-Za-z0-9_.#@:\\[\\]/-]+$" }
            })
        })
        .collect();
    for (name, description) in o.query {
        params.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } }));
    }
    let mut responses = Map::new();
    let mut ok = json!({ "description": "Success." });
    if let Some(c) = answer_content(o.answer) {
        ok["content"] = c;
    }
    responses.insert(o.status.to_string(), ok);
    let mut errors: Vec<u16> = o.errors.to_vec();
    if o.path != "/health" {
        errors.push(401);
    }
    if o.body.is_some() {
        errors.extend([400, 413]);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let body = if o.path == "/ready" && status == 503 {
            schema_ref("Readiness")
        } else {
            schema_ref("ErrorEnvelope")
        };
        responses.insert(
            status.to_string(),
            json!({ "description": error_code_text(status), "content": { "application/json": { "schema": body } } }),
        );
    }
    let mut v = json!({
        "operationId": format!("{} {}", o.method, o.path),
        "summary": o.summary,
        "parameters": params,
        "responses": responses,
    });
    if o.path == "/health" {
        v["security"] = json!([]);
    }
    if let Some(body) = o.body {
        v["requestBody"] = json!({
            "required": true,
            "description": "JSON whatever the Content-Type says; an empty body reads as {}.",
            "content": { "application/json": { "schema": schema_ref(body) } }
        });
    }
    v
}

fn string_list() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn object(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

/// A request body object: unknown fields are refused.
fn request(required: &[&str], props: Value, example: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false, "examples": [example] })
}

fn schemas() -> Value {
    let parts = [
        json!({
            "ErrorEnvelope": object(&["error"], json!({
                "error": object(&["code", "message"], json!({
                    "code": { "type": "string", "description": "Stable snake_case code." },
                    "message": { "type": "string" },
                    "field": { "type": "string", "description": "The request field at fault, when there is one." }
                }))
            })),
            "OpenApiDocument": { "type": "object", "required": ["openapi", "paths"] },
            "Ok": object(&["ok"], json!({ "ok": { "const": true } })),
            "Identifier": { "type": "string" },
            "Readiness": object(&["ready", "lastPollOk", "draining", "configInvalid", "consecutivePollFailures"], json!({
                "ready": { "type": "boolean" }, "lastPollOk": { "type": "boolean" }, "draining": { "type": "boolean" },
                "configInvalid": { "type": "boolean" }, "consecutivePollFailures": { "type": "integer" }
            })),
            "RefreshQueued": object(&["queued", "coalesced", "queuedAt"], json!({
                "queued": { "const": true }, "coalesced": { "type": "boolean" }, "queuedAt": { "type": "string", "format": "date-time" }
            })),
        }),
        json!({
            "StateSnapshot": object(&["generatedAt", "counts", "running", "retrying", "paused", "maxConcurrentAgents", "maxRetries", "maxSwitchesPerIssuePerWindow", "switchWindowHours", "rateLimits"], json!({
                "generatedAt": { "type": "string", "format": "date-time" },
                "counts": object(&["running", "retrying", "paused"], json!({ "running": { "type": "integer" }, "retrying": { "type": "integer" }, "paused": { "type": "integer" } })),
                "running": { "type": "array", "items": schema_ref("RunningRow") },
                "retrying": { "type": "array", "items": schema_ref("RetryRow") },
                "paused": string_list(),
                "maxConcurrentAgents": { "type": "integer" },
                "maxRetries": { "type": "integer" },
                "maxSwitchesPerIssuePerWindow": { "type": "integer" },
                "switchWindowHours": { "type": "integer" },
                "rateLimits": { "type": ["object", "null"] },
                "history": { "type": "array", "items": schema_ref("HistoryRow") },
                "pauseReasons": { "type": "object", "additionalProperties": { "type": "string" } },
                "inputRequired": { "type": "array", "items": schema_ref("InputRequiredRow") },
                "agentMode": { "enum": ["solo", "subagents", "teams"] },
                "availableProfiles": string_list(),
                "profileDefs": { "type": "object", "additionalProperties": schema_ref("ProfileDef") },
                "availableModels": schema_ref("Models"),
                "sshHosts": { "type": "array", "items": schema_ref("HostRow") },
                "activeStates": string_list(), "terminalStates": string_list(), "backlogStates": string_list(),
                "activeProjectFilter": { "type": ["array", "null"], "items": { "type": "string" } }
            })),
            "RunningRow": object(&["identifier", "state", "turnCount", "tokens", "inputTokens", "outputTokens", "elapsedMs", "startedAt"], json!({
                "identifier": { "type": "string" }, "state": { "type": "string" }, "turnCount": { "type": "integer" },
                "tokens": { "type": "integer" }, "inputTokens": { "type": "integer" }, "outputTokens": { "type": "integer" },
                "elapsedMs": { "type": "integer" }, "startedAt": { "type": "string", "format": "date-time" },
                "kind": { "enum": ["worker", "reviewer"] }, "workerHost": { "type": "string" }, "sessionId": { "type": "string" }
            })),
            "HistoryRow": object(&["identifier", "startedAt", "finishedAt", "elapsedMs", "turnCount", "tokens", "inputTokens", "outputTokens"], json!({
                "identifier": { "type": "string" }, "startedAt": { "type": "string" }, "finishedAt": { "type": "string" },
                "elapsedMs": { "type": "integer" }, "turnCount": { "type": "integer" }, "tokens": { "type": "integer" },
                "inputTokens": { "type": "integer" }, "outputTokens": { "type": "integer" },
                "status": { "enum": ["succeeded", "failed", "cancelled", "stalled", "input_required", "lost"] }
            })),
            "RetryRow": object(&["identifier", "attempt", "dueAt"], json!({
                "identifier": { "type": "string" }, "attempt": { "type": "integer" }, "dueAt": { "type": "string" }, "error": { "type": "string" }
            })),
            "InputRequiredRow": object(&["identifier", "sessionId", "context", "queuedAt"], json!({
                "identifier": { "type": "string" }, "sessionId": { "type": "string" }, "context": { "type": "string" }, "queuedAt": { "type": "string" }
            })),
            "HostRow": object(&["host", "description", "running", "capacity"], json!({
                "host": { "type": "string" }, "description": { "type": "string" },
                "status": { "enum": ["up", "connecting", "down", "draining"] },
                "running": { "type": "integer" }, "capacity": { "type": "integer", "description": "0 = unlimited" },
                "lastError": { "type": "string" }, "latencyMs": { "type": "number" }
            })),
        }),
        json!({
            "TrackerIssue": object(&["identifier", "title", "state", "labels", "blockedBy", "comments", "orchestratorState"], json!({
                "identifier": { "type": "string" }, "title": { "type": "string" }, "state": { "type": "string" },
                "description": { "type": "string" }, "url": { "type": "string" }, "labels": string_list(),
                "priority": { "type": "integer" }, "branchName": { "type": "string" }, "blockedBy": string_list(),
                "comments": { "type": "array", "items": object(&["author", "body"], json!({ "author": { "type": "string" }, "body": { "type": "string" }, "createdAt": { "type": "string" } })) },
                "orchestratorState": { "enum": ["idle", "running", "retrying", "paused", "input_required"] },
                "ineligibleReason": { "type": "string" }, "agentProfile": { "type": "string" }, "agentBackend": { "type": "string" },
                "turnCount": { "type": "integer" }, "tokens": { "type": "integer" }, "lastMessage": { "type": "string" }, "error": { "type": "string" }
            })),
            "IssueLogEntry": object(&["level", "event", "message"], json!({
                "level": { "enum": ["info", "warn", "error"] },
                "event": { "enum": ["text", "action", "subagent", "pr", "turn", "error", "warn", "info"] },
                "message": { "type": "string" }, "tool": { "type": "string" }, "time": { "type": "string" },
                "detail": { "type": "string" }, "sessionId": { "type": "string" }, "seq": { "type": "integer" }
            })),
        }),
        json!({
            "Cancelled": object(&["cancelled", "identifier"], json!({ "cancelled": { "const": true }, "identifier": { "type": "string" } })),
            "Resumed": object(&["resumed", "identifier"], json!({ "resumed": { "const": true }, "identifier": { "type": "string" } })),
            "Terminated": object(&["terminated", "identifier"], json!({ "terminated": { "const": true }, "identifier": { "type": "string" } })),
            "Queued": object(&["queued", "identifier"], json!({ "queued": { "const": true }, "identifier": { "type": "string" } })),
            "IssueOk": object(&["ok", "identifier"], json!({ "ok": { "const": true }, "identifier": { "type": "string" } })),
            "ProfileSet": object(&["ok", "identifier", "profile"], json!({ "ok": { "const": true }, "identifier": { "type": "string" }, "profile": { "type": "string" } })),
            "BackendSet": object(&["ok", "identifier", "backend"], json!({ "ok": { "const": true }, "identifier": { "type": "string" }, "backend": { "type": "string" } })),
            "WorkersSet": object(&["workers"], json!({ "workers": { "type": "integer", "minimum": 1, "maximum": 200 } })),
            "ModeSet": object(&["ok", "mode"], json!({ "ok": { "const": true }, "mode": { "enum": ["solo", "subagents", "teams"] } })),
            "AutoClearSet": object(&["ok", "autoClearWorkspace"], json!({ "ok": { "const": true }, "autoClearWorkspace": { "type": "boolean" } })),
            "InlineInputSet": object(&["ok", "inlineInput"], json!({ "ok": { "const": true }, "inlineInput": { "type": "boolean" } })),
            "StrategySet": object(&["ok", "strategy"], json!({ "ok": { "const": true }, "strategy": { "enum": ["round-robin", "least-loaded"] } })),
            "HostAdded": object(&["ok", "host"], json!({ "ok": { "const": true }, "host": { "type": "string" } })),
            "HostRemoved": object(&["ok", "host", "drain"], json!({ "ok": { "const": true }, "host": { "type": "string" }, "drain": { "type": "boolean" } })),
            "Models": { "type": "object", "required": ["claude", "codex"], "additionalProperties": { "type": "array", "items": object(&["id", "label"], json!({ "id": { "type": "string" }, "label": { "type": "string" } })) } },
            "Profiles": object(&["profiles"], json!({ "profiles": { "type": "object", "additionalProperties": schema_ref("ProfileDef") } })),
            "Projects": object(&["projects"], json!({ "projects": { "type": "array", "items": object(&["id", "name", "slug"], json!({ "id": { "type": "string" }, "name": { "type": "string" }, "slug": { "type": "string" } })) } })),
            "ProjectFilter": object(&["filter"], json!({ "filter": { "type": ["array", "null"], "items": { "type": "string" } } })),
            "ProjectFilterSet": object(&["ok", "filter"], json!({ "ok": { "const": true }, "filter": { "type": ["array", "null"], "items": { "type": "string" } } })),
        }),
        json!({
            "ProfileRequest": request(&["profile"], json!({ "profile": { "type": "string", "description": "A profile name, or \"\" to clear." } }), json!({ "profile": "" })),
            "BackendRequest": request(&["backend"], json!({ "backend": { "enum": ["claude", "codex", ""] } }), json!({ "backend": "codex" })),
            "InputRequest": request(&["message"], json!({ "message": { "type": "string", "minLength": 1 } }), json!({ "message": "Use the staging database." })),
            "WorkersRequest": {
                "type": "object", "minProperties": 1, "additionalProperties": false,
                "description": "Give workers (absolute) or delta (relative); workers wins when both are given.",
                "properties": { "workers": { "type": "integer" }, "delta": { "type": "integer" } },
                "examples": [{ "workers": 4 }]
            },
            "ModeRequest": request(&["mode"], json!({ "mode": { "enum": ["solo", "subagents", "teams"] } }), json!({ "mode": "subagents" })),
        }),
        json!({
            "TrackerStatesRequest": request(&["activeStates"], json!({
                "activeStates": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                "terminalStates": string_list(), "backlogStates": string_list(),
                "completionState": { "type": "string" }, "workingState": { "type": "string" }, "failedState": { "type": "string" }
            }), json!({ "activeStates": ["Todo", "In Progress"], "terminalStates": ["Done", "Cancelled"] })),
            "EnabledRequest": request(&["enabled"], json!({ "enabled": { "type": "boolean" } }), json!({ "enabled": true })),
            "StrategyRequest": request(&["strategy"], json!({ "strategy": { "enum": ["round-robin", "least-loaded"] } }), json!({ "strategy": "least-loaded" })),
            "AddHostRequest": request(&["host"], json!({
                "host": { "type": "string", "description": "[user@]name[:port]" }, "description": { "type": "string" }
            }), json!({ "host": "builder@build-1.example:2222", "description": "build box" })),
            "ProfileDef": request(&["command"], json!({
                "command": { "type": "string", "description": "A plain command line without shell metacharacters." },
                "prompt": { "type": "string" }, "backend": { "enum": ["claude", "codex", "demo", ""] },
                "enabled": { "type": "boolean" }, "permissionMode": { "enum": ["bypass", "sandbox", ""] }
            }), json!({ "command": "claude", "prompt": "You review frontend changes.", "backend": "claude" })),
            "ReviewerSettings": request(&["profile"], json!({
                "profile": { "type": "string", "description": "A profile name, or \"\" for none." },
                "autoReview": { "type": "boolean" }
            }), json!({ "profile": "", "autoReview": false })),
            "FilterRequest": request(&[], json!({ "slugs": { "type": ["array", "null"], "items": { "type": "string" } } }), json!({ "slugs": ["alpha"] })),
        }),
    ];
    let mut all = Map::new();
    for part in parts {
        if let Value::Object(m) = part {
            all.extend(m);
        }
    }
    Value::Object(all)
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPS {
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method.to_ascii_lowercase()] = operation(o);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Itervox API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST + SSE API of the Itervox controller. Every non-2xx answer is the error envelope \
                {\"error\":{\"code\",\"message\",\"field\"}}; a wrong method is 405 method_not_allowed with Allow; an \
                unknown path is 404 not_found. Bodies are JSON (at most 1 MiB)."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "ITERVOX_API_TOKEN; needed only when it is set. SSE routes also take ?token=." }
            },
            "schemas": schemas(),
        }
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}
