//! Every type that crosses a process boundary in Itervox, and the documentation of those wire formats.
//!
//! Nothing else in the workspace derives `Serialize`/`Deserialize` for data that leaves its process:
//! the controller and the worker keep their own domain types and convert at their edges.
//!
//! # The worker protocol (controller ↔ `itervox-worker serve --stdio`)
//!
//! The controller talks to each build host's worker over a byte stream: the stdio of an SSH exec
//! channel for a remote host, the stdio of a child process for the local host. Both transports carry
//! the same protocol, defined in [`worker`].
//!
//! **Framing.** JSON Lines: one JSON object per line, UTF-8, terminated by `\n`, at most
//! [`worker::MAX_FRAME_BYTES`] (16 MiB) a line. A longer or unparsable line is answered with an
//! `error` frame (when it carried an `id`) or logged and skipped; it never ends the stream. Every frame
//! has a `"type"`. Keys are camelCase.
//!
//! **Handshake.** The controller's first frame is
//! `{"type":"hello","protocol":1,"controllerVersion":"0.1.0","workspaceRoot":"~/.itervox/workspaces"}`.
//! The worker answers with its own `hello` carrying `protocol`, `workerVersion`, `hostname`, `cpus`,
//! `load1`, `memFreeBytes`, the `sessions` it holds and a `leaseToken` (see [`worker::Ping`] for
//! leases). When the protocol numbers differ the worker answers
//! `{"type":"error","id":0,"code":"protocol_mismatch",...}` naming both versions.
//!
//! **Requests** carry an `"id"` chosen by the controller and are answered by exactly one
//! `{"type":"ok","id":N,...result fields}` or `{"type":"error","id":N,"code":"...","message":"..."}`.
//! The request kinds are the variants of [`worker::RequestBody`]:
//! `prepare_workspace`, `start_session`, `send_input`, `cancel`, `attach`, `detach`,
//! `list_sessions`, `remove_session`, `read_sublogs`, `clear_sublogs`, `remove_workspace`,
//! `list_workspaces`, `ping`. Example:
//!
//! ```text
//! → {"type":"attach","id":7,"sessionId":"s-1","fromSeq":12}
//! ← {"type":"ok","id":7,"lastSeq":40}
//! ← {"type":"log","sessionId":"s-1","seq":12,"entry":{"level":"info","event":"text",...}}
//! ```
//!
//! **Progress.** A `prepare_workspace` with `"progress":true` gets its log entries (the host starting
//! to prepare, the fetch or clone, each `after_create` output line as the hook prints it) as
//! `{"type":"progress","id":N,"entry":{...IssueLogEntry}}` frames as they happen, all of them before
//! its one answer, whose `log` then stays empty. Without the key the entries come in the answer, so
//! an older controller sees no new frame.
//!
//! **Session events** carry no `id`; they are the lines of a session's on-host journal
//! (`<root>/.itervox/sessions/<sessionId>/journal.jsonl`) and every one has the session's `seq`
//! (1, 2, 3, … without gaps): `log`, `turn`, `input_required` and `session_exit`
//! (see [`worker::SessionEvent`]). The journal is written by the session's supervisor, which
//! owns the agent process, so a session outlives the connection that started it. `attach` replays
//! every event with `seq >= fromSeq` and then follows the journal live; a reader that remembers the
//! last `seq` it saw therefore receives every event exactly once across reconnects. A turn's exit is
//! written to the journal before it is streamed, so a controller that was away learns how the turn
//! ended from `list_sessions` or from the replay.
//!
//! Readers must ignore unknown frame types and unknown keys: the set may grow within a protocol
//! version.
//!
//! # The HTTP API (`/api/v1`)
//!
//! [`api`] holds the JSON bodies of the REST + SSE API: [`api::StateSnapshot`] (`GET /state` and
//! every `/events` frame), [`api::TrackerIssue`] (`GET /issues`), request bodies, and the error
//! envelope `{"error":{"code":"snake_case","message":"…","field":"…"}}`. [`log_entry::IssueLogEntry`]
//! is shared by both: the worker produces it, the API serves it on `/issues/{id}/logs`,
//! `/log-stream` and `/sublogs`. JSON keys are camelCase, times are RFC 3339 strings, empty lists are
//! `[]`, and optional keys are omitted rather than `null` unless documented as nullable.

pub mod api;
pub mod log_entry;
pub mod worker;

pub use log_entry::{IssueLogEntry, LogEventKind, LogLevel};

/// The worker protocol's version. Bumped on every incompatible change; a controller refuses (or, with
/// `ssh.install_worker`, replaces) a worker that speaks another version.
pub const PROTOCOL_VERSION: u32 = 1;

#[cfg(test)]
mod tests;
