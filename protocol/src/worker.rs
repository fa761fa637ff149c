//! The controller ↔ worker protocol: handshake, requests and their answers, and session events.
//!
//! See the crate documentation for framing and the durability rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::log_entry::IssueLogEntry;

/// Largest frame (one JSON line) either side accepts.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Request identifier, chosen by the controller, echoed by the worker's answer.
pub type RequestId = u64;

/// A frame sent by the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerFrame {
    /// The first frame on a new stream.
    Hello(ControllerHello),
    /// Any request; its `type` is that of the body.
    #[serde(untagged)]
    Request(Request),
}

/// The controller's handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerHello {
    pub protocol: u32,
    pub controller_version: String,
    /// `workspace.root` as configured; the worker expands `~` on its own host. Worktrees, mirrors and
    /// session journals live under it.
    pub workspace_root: String,
}

/// A request: an id plus one of the request bodies, flattened into one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    #[serde(flatten)]
    pub body: RequestBody,
}

/// Lifecycle hook scripts, run by the worker with `sh -c` in the worktree, in their own process group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_create: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_remove: Option<String>,
    /// Per-hook timeout.
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_hook_timeout_ms() -> u64 {
    60_000
}

/// Which agent CLI a session runs, which decides its command line and how its output is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Claude Code (`--output-format stream-json`).
    Claude,
    /// Codex CLI (`codex exec --json`).
    Codex,
    /// The scripted demo agent (`itervox-worker demo-agent`), which prints Claude Code stream-json.
    Demo,
}

impl Backend {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Claude => "claude",
            Backend::Codex => "codex",
            Backend::Demo => "demo",
        }
    }
}

/// How much the agent may do without asking; chooses the CLI's permission flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionMode {
    /// Skip all permission prompts (`--dangerously-skip-permissions`,
    /// `--dangerously-bypass-approvals-and-sandbox`).
    #[default]
    Bypass,
    /// Accept edits only / sandboxed workspace writes.
    Sandbox,
}

/// Every request kind, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBody {
    /// Make sure the issue's worktree exists: a bare mirror per repository under the root, a worktree per
    /// issue on `branch`. Runs `after_create` when the worktree is new. Answer: [`PreparedWorkspace`].
    PrepareWorkspace(PrepareWorkspace),
    /// Start a new agent session (its first turn) under a detached supervisor. Answer: [`SessionStarted`].
    StartSession(StartSession),
    /// Start the next turn of an existing session (resuming the agent's own session) with `message` as
    /// the prompt. Answer: [`SessionStarted`].
    SendInput(SendInput),
    /// Stop a session's running turn: SIGTERM to its process group, SIGKILL after `graceMs`. Answer:
    /// `{"cancelled":bool}` ([`Cancelled`]).
    Cancel(Cancel),
    /// Replay the journal from `fromSeq`, then follow it live on this stream. Answer: [`Attached`].
    Attach(Attach),
    /// Stop following a session on this stream. Answer: `{}`.
    Detach(SessionRef),
    /// Answer: [`SessionList`].
    ListSessions,
    /// Delete a finished session's journal and folder. Answer: `{}`.
    RemoveSession(SessionRef),
    /// Read the agent's own session logs for an issue (parent and subagents). Answer: [`Sublogs`].
    ReadSublogs(SublogRef),
    /// Delete the agent's session logs for an issue, or one of them. Answer: `{}`.
    ClearSublogs(SublogRef),
    /// Run `before_remove`, then remove the issue's worktree and prune it. Answer: [`WorkspaceRemoved`].
    RemoveWorkspace(RemoveWorkspace),
    /// Answer: [`WorkspaceList`].
    ListWorkspaces,
    /// Health and load, and the controller's lease renewal (see [`Ping`]). Answer: [`Pong`].
    Ping(Ping),
}

impl RequestBody {
    /// The wire name of the request kind, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestBody::PrepareWorkspace(_) => "prepare_workspace",
            RequestBody::StartSession(_) => "start_session",
            RequestBody::SendInput(_) => "send_input",
            RequestBody::Cancel(_) => "cancel",
            RequestBody::Attach(_) => "attach",
            RequestBody::Detach(_) => "detach",
            RequestBody::ListSessions => "list_sessions",
            RequestBody::RemoveSession(_) => "remove_session",
            RequestBody::ReadSublogs(_) => "read_sublogs",
            RequestBody::ClearSublogs(_) => "clear_sublogs",
            RequestBody::RemoveWorkspace(_) => "remove_workspace",
            RequestBody::ListWorkspaces => "list_workspaces",
            RequestBody::Ping(_) => "ping",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareWorkspace {
    /// The issue identifier (sanitised by the worker before it becomes a path).
    pub issue: String,
    /// Clone URL or path of the repository the worktree comes from.
    pub repo: String,
    pub base_branch: String,
    /// Branch of the worktree, normally `itervox/<identifier>`.
    pub branch: String,
    #[serde(default)]
    pub hooks: Hooks,
    /// Send the call's log entries as [`WorkerFrame::Progress`] frames as they happen (the fetch or
    /// clone starting, each `after_create` output line as the hook prints it, the hook's outcome)
    /// instead of in the answer's `log`. Absent or false: everything comes in the answer, as older controllers expect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedWorkspace {
    pub path: String,
    /// True when the worktree was created by this call (and `after_create` ran).
    pub created: bool,
    pub branch: String,
    /// What the call did (fetch, clone, new worktree) and the output of the hooks it ran
    /// (`after_create`), as log entries for the issue's log; empty when they went out as progress frames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<IssueLogEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartSession {
    /// Chosen by the controller; unique per run.
    pub session_id: String,
    pub issue: String,
    /// Worktree path returned by `prepare_workspace`.
    pub workspace: String,
    pub backend: Backend,
    /// The agent command as configured (may carry flags). Empty for the demo backend.
    pub command: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub prompt: String,
    /// The agent's own session id to resume (Claude `--resume`, Codex `exec resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_session_ref: Option<String>,
    #[serde(default)]
    pub permission_mode: PermissionMode,
    /// Wall-clock limit of one turn (0 = none).
    pub turn_timeout_ms: u64,
    /// Longest silence on the agent's stdout within a turn (0 = none).
    pub read_timeout_ms: u64,
    #[serde(default)]
    pub hooks: Hooks,
    /// The controller's lease on this session, in ms (`ssh.host_lost_after_ms`), renewed by the
    /// controller's pings (see [`Ping`]); when it was not renewed for this long, the session's supervisor
    /// stops the running turn itself (`session_exit` with status `cancelled`), because the controller
    /// will have declared the session lost and started a new attempt elsewhere. Absent: no lease, the
    /// session runs however long the controller is away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// How long a supervisor whose lease expired waits between SIGTERM and SIGKILL of its agent's group.
/// A controller declares a session lost no earlier than `lease_ms` plus [`LEASE_MARGIN_MS`] after
/// the host went silent.
pub const LEASE_KILL_GRACE_MS: u64 = 2_000;

/// The least time a controller waits beyond `lease_ms` before it declares a silent host's sessions
/// lost: room for the supervisor's lease check interval (at most 1 s), its kill grace and the sweep.
pub const LEASE_MARGIN_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendInput {
    pub session_id: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    /// Process id of the agent's process group leader (or of the supervisor until the agent starts).
    pub pid: u32,
    /// The turn number just started (1 for `start_session`).
    pub turn: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    pub session_id: String,
    #[serde(default = "default_grace_ms")]
    pub grace_ms: u64,
}

fn default_grace_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancelled {
    /// False when no turn was running.
    pub cancelled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attach {
    pub session_id: String,
    /// First `seq` wanted (1 = everything).
    pub from_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attached {
    /// The highest `seq` journaled at the time of attaching.
    pub last_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRef {
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SublogRef {
    pub issue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sublogs {
    pub entries: Vec<IssueLogEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveWorkspace {
    pub issue: String,
    #[serde(default)]
    pub hooks: Hooks,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRemoved {
    /// False when there was no worktree for the issue.
    pub removed: bool,
    /// Output of `before_remove`, as log entries for the issue's log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<IssueLogEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceInfo {
    pub issue: String,
    pub path: String,
    pub branch: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceList {
    pub workspaces: Vec<WorkspaceInfo>,
}

/// A `ping`: `{"type":"ping","id":N}`, with `leaseToken` when the controller renews its lease.
///
/// **Leases.** A session started with `leaseMs` belongs to the controller only while that controller
/// keeps in touch: its supervisor stops the running turn once the lease was last renewed more than
/// `leaseMs` ago. The worker hands out a `leaseToken` in its `hello` and in every `pong`: its own clock
/// (ms since the Unix epoch) at the moment it answered. A `ping` that echoes a token renews the lease
/// *as of that moment*, not as of the ping's arrival, so a ping that sat in a frozen or partitioned
/// connection and arrives late renews nothing new: the lease never outlives the controller's last
/// answer from the host by more than `leaseMs`, however late stale frames are delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ping {
    /// The `leaseToken` of the last `pong` (or of the `hello`) the controller received on this stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    pub load1: f64,
    pub cpus: u32,
    /// Sessions whose turn is running now.
    pub running: u32,
    /// The worker's clock (ms since the Unix epoch) when it answered; echo it in the next `ping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<u64>,
}

/// Where a session stands, as the worker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// A turn's agent process is running.
    Running,
    /// The last turn ended (see `exit`); the session waits for `send_input` or removal.
    Exited,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub issue: String,
    pub status: SessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub last_seq: u64,
    pub turn: u32,
    pub started_at: String,
    /// How the last turn ended, when it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<SessionExit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// A frame sent by the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerFrame {
    /// The worker's handshake answer.
    Hello(WorkerHello),
    /// Success answer to request `id`; the result's fields are flattened next to `id`.
    Ok(OkAnswer),
    /// Failure answer to request `id` (`id` 0 when the request could not be parsed far enough).
    Error(ErrorAnswer),
    /// A log entry of request `id` while it still runs (only for requests that asked for progress);
    /// every progress frame of a request precedes its one answer.
    Progress(ProgressFrame),
    /// A journaled session event.
    #[serde(untagged)]
    Event(SessionEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerHello {
    pub protocol: u32,
    pub worker_version: String,
    pub hostname: String,
    pub cpus: u32,
    pub load1: f64,
    pub mem_free_bytes: u64,
    /// The workspace root after `~` expansion on this host.
    pub workspace_root: String,
    pub sessions: Vec<SessionInfo>,
    /// A lease token for the first `ping` (see [`Ping`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OkAnswer {
    pub id: RequestId,
    #[serde(flatten)]
    pub result: serde_json::Map<String, serde_json::Value>,
}

/// `{"type":"progress","id":7,"entry":{…IssueLogEntry…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressFrame {
    pub id: RequestId,
    pub entry: IssueLogEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub id: RequestId,
    /// Stable snake_case code: `bad_request`, `protocol_mismatch`, `unknown_session`, `workspace_failed`,
    /// `hook_failed`, `spawn_failed`, `io`, `frame_too_large`, …
    pub code: String,
    pub message: String,
}

/// An event of one session, as journaled on the host and streamed to attached controllers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    Log(LogEvent),
    Turn(TurnEvent),
    InputRequired(InputRequiredEvent),
    SessionExit(SessionExit),
}

impl SessionEvent {
    /// The session the event belongs to.
    pub fn session_id(&self) -> &str {
        match self {
            SessionEvent::Log(e) => &e.session_id,
            SessionEvent::Turn(e) => &e.session_id,
            SessionEvent::InputRequired(e) => &e.session_id,
            SessionEvent::SessionExit(e) => &e.session_id,
        }
    }

    /// The event's position in its session's journal.
    pub fn seq(&self) -> u64 {
        match self {
            SessionEvent::Log(e) => e.seq,
            SessionEvent::Turn(e) => e.seq,
            SessionEvent::InputRequired(e) => e.seq,
            SessionEvent::SessionExit(e) => e.seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub session_id: String,
    pub seq: u64,
    pub entry: IssueLogEntry,
}

/// End-of-turn summary (one per agent result; a process may report more than one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnEvent {
    pub session_id: String,
    pub seq: u64,
    pub turn: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The agent's own session id (for `--resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_ref: Option<String>,
    /// Tool calls the agent made in this turn.
    #[serde(default)]
    pub tool_calls: u32,
    /// The agent's final message of the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_text: Option<String>,
    /// True when the agent reported an error result.
    #[serde(default)]
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputRequiredEvent {
    pub session_id: String,
    pub seq: u64,
    /// The agent's question.
    pub context: String,
}

/// How a turn's agent process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Succeeded,
    Failed,
    Cancelled,
    /// Turn or read timeout.
    TimedOut,
    /// The agent asked a human a question (an `input_required` event precedes this).
    InputRequired,
}

/// The end of a turn's agent process. Written to the journal (and the session's `exit.json`) before it
/// is streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionExit {
    pub session_id: String,
    pub seq: u64,
    pub turn: u32,
    pub status: ExitStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The worktree's branch at exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A pull request URL the agent produced, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    /// When the vendor said a rate limit resets (RFC 3339), for a retry at that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_reset_at: Option<String>,
    /// True when the failure was a rate limit or overload.
    #[serde(default)]
    pub rate_limited: bool,
}

impl WorkerFrame {
    /// An `ok` answer carrying `result`'s fields; `result` must serialize to a JSON object (or unit).
    pub fn ok<T: Serialize>(id: RequestId, result: &T) -> WorkerFrame {
        let result = match serde_json::to_value(result) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        WorkerFrame::Ok(OkAnswer { id, result })
    }

    /// An `error` answer.
    pub fn error(id: RequestId, code: impl Into<String>, message: impl Into<String>) -> WorkerFrame {
        WorkerFrame::Error(ErrorAnswer {
            id,
            code: code.into(),
            message: message.into(),
        })
    }
}

/// An empty answer body (`{}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}
