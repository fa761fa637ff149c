//! `itervox-worker serve --stdio`: the worker protocol server. Frames arrive as JSON lines on stdin; the
//! handshake (`hello`) comes first; requests then run concurrently (a slow `prepare_workspace` never
//! holds up `ping` or `attach`); one writer task owns stdout. A bad or oversized line is answered with
//! an `error` frame and the stream goes on. At the end of stdin the controller has gone: following
//! stops, requests in flight finish, and the process exits, leaving every session running.

mod follower;
mod frame_writer;
mod journal_watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use itervox_protocol::PROTOCOL_VERSION;
use itervox_protocol::worker::{
    Attached, ControllerFrame, ControllerHello, Empty, MAX_FRAME_BYTES, Pong, PrepareWorkspace, PreparedWorkspace,
    ProgressFrame, Request, RequestBody, RequestId, SessionList, SessionStatus, Sublogs, WorkerFrame, WorkerHello,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::host_info;
use crate::layout::Layout;
use crate::line_reader::{Line, LineReader};
use crate::session::SessionError;
use crate::session::control::{Activity, Sessions};
use crate::session::journal;
use crate::session::lease;
use crate::workspace::{self, CallLog, WorkspaceError};
pub use frame_writer::FrameTx;
use frame_writer::spawn_writer;
use journal_watch::JournalWatch;

/// This worker's version, as reported in `hello` and `itervox-worker version`.
pub const WORKER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long the writer may take to flush the last frames after stdin closed.
const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// An error answer: a stable code and a message that names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerError {
    pub code: &'static str,
    pub message: String,
}

impl AnswerError {
    fn new(code: &'static str, message: impl Into<String>) -> AnswerError {
        AnswerError {
            code,
            message: message.into(),
        }
    }
}

impl From<SessionError> for AnswerError {
    fn from(e: SessionError) -> Self {
        AnswerError::new(e.code(), e.to_string())
    }
}

impl From<WorkspaceError> for AnswerError {
    fn from(e: WorkspaceError) -> Self {
        AnswerError::new(e.code(), e.to_string())
    }
}

/// Runs the protocol on `input`/`output` until `input` ends. `self_exe` is the worker binary that
/// supervisors are started from.
pub async fn serve<R, W>(input: R, output: W, self_exe: PathBuf)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, writer) = spawn_writer(output);
    let server = Arc::new(Server {
        tx,
        ready: Mutex::new(None),
        followers: Mutex::new(HashMap::new()),
        watch: JournalWatch::new(),
        stop_following: CancellationToken::new(),
        requests: TaskTracker::new(),
        self_exe,
    });
    let mut reader = LineReader::new(input, MAX_FRAME_BYTES);
    loop {
        match reader.next_line().await {
            Ok(Some(Line::Complete(bytes))) => server.on_line(&bytes).await,
            Ok(Some(Line::TooLong { len })) => {
                server
                    .send(&WorkerFrame::error(
                        0,
                        "frame_too_large",
                        format!("a frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes"),
                    ))
                    .await;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "Reading stdin failed; treating it as the end of the stream.");
                break;
            }
        }
    }
    tracing::info!("The controller closed the stream; sessions keep running.");
    server.stop_following.cancel();
    server.requests.close();
    server.requests.wait().await;
    drop(server);
    let _ = tokio::time::timeout(FINAL_FLUSH, writer).await;
}

/// What the handshake established.
#[derive(Debug, Clone)]
struct Ready {
    layout: Layout,
    sessions: Sessions,
}

struct Server {
    tx: FrameTx,
    ready: Mutex<Option<Ready>>,
    /// Session id → the token of its follower on this stream.
    followers: Mutex<HashMap<String, CancellationToken>>,
    watch: JournalWatch,
    stop_following: CancellationToken,
    requests: TaskTracker,
    self_exe: PathBuf,
}

impl Server {
    async fn send(&self, frame: &WorkerFrame) {
        if !self.tx.send(frame).await {
            tracing::debug!("Dropping a frame: stdout is gone.");
        }
    }

    fn ready(&self) -> Option<Ready> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn on_line(self: &Arc<Self>, bytes: &[u8]) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let frame = match serde_json::from_slice::<ControllerFrame>(bytes) {
            Ok(f) => f,
            Err(e) => {
                let (id, message) = explain_bad_frame(bytes, &e);
                self.send(&WorkerFrame::error(id, "bad_request", message)).await;
                return;
            }
        };
        match frame {
            // The handshake is handled in order: its answer precedes every later answer.
            ControllerFrame::Hello(hello) => {
                let answer = self.hello(hello).await;
                self.send(&answer).await;
            }
            ControllerFrame::Request(req) => {
                let Some(ready) = self.ready() else {
                    self.send(&WorkerFrame::error(
                        req.id,
                        "bad_request",
                        format!("{} before hello: send hello first", req.body.kind()),
                    ))
                    .await;
                    return;
                };
                let server = self.clone();
                self.requests.spawn(async move {
                    let id = req.id;
                    let kind = req.body.kind();
                    match server.handle(ready, req).await {
                        Ok(Some(frame)) => server.send(&frame).await,
                        Ok(None) => {}
                        Err(e) => {
                            tracing::info!(id, kind, code = e.code, message = %e.message, "Request failed.");
                            server.send(&WorkerFrame::error(id, e.code, e.message)).await;
                        }
                    }
                });
            }
        }
    }

    async fn hello(&self, hello: ControllerHello) -> WorkerFrame {
        if hello.protocol != PROTOCOL_VERSION {
            return WorkerFrame::error(
                0,
                "protocol_mismatch",
                format!(
                    "the controller ({}) speaks worker protocol {}, but this itervox-worker {} speaks protocol {}",
                    hello.controller_version, hello.protocol, WORKER_VERSION, PROTOCOL_VERSION
                ),
            );
        }
        let raw = hello.workspace_root.clone();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let opened = tokio::task::spawn_blocking(move || Layout::open(&raw, home.as_deref())).await;
        let layout = match opened {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return WorkerFrame::error(0, "workspace_failed", e.to_string()),
            Err(e) => return WorkerFrame::error(0, "io", e.to_string()),
        };
        let sessions = Sessions::new(layout.clone(), self.self_exe.clone());
        let list = match sessions.list(Utc::now()).await {
            Ok(l) => l,
            Err(e) => return WorkerFrame::error(0, e.code(), e.to_string()),
        };
        *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ready {
            layout: layout.clone(),
            sessions,
        });
        tracing::info!(root = %layout.root().display(), controller = %hello.controller_version, "Handshake done.");
        WorkerFrame::Hello(WorkerHello {
            protocol: PROTOCOL_VERSION,
            worker_version: WORKER_VERSION.to_string(),
            hostname: host_info::hostname(),
            cpus: host_info::cpus(),
            load1: host_info::load1(),
            mem_free_bytes: host_info::mem_available_bytes(),
            workspace_root: layout.root().display().to_string(),
            sessions: list,
            lease_token: Some(lease::token_now()),
        })
    }

    /// `prepare_workspace`; with `progress`, each log entry goes out as a progress frame as it happens,
    /// all of them before the answer.
    async fn prepare(
        self: &Arc<Self>,
        id: RequestId,
        layout: &Layout,
        req: &PrepareWorkspace,
    ) -> Result<PreparedWorkspace, WorkspaceError> {
        if !req.progress {
            return workspace::prepare(layout, req, Utc::now, CallLog::default()).await;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = self.clone();
        let forward = tokio::spawn(async move {
            while let Some(entry) = rx.recv().await {
                server.send(&WorkerFrame::Progress(ProgressFrame { id, entry })).await;
            }
        });
        let result = workspace::prepare(layout, req, Utc::now, CallLog::live(tx)).await;
        // The sender is gone with the call: the forwarder ends after the last entry.
        let _ = forward.await;
        result
    }

    /// Answers one request (`None` when it answered itself, as `attach` does).
    async fn handle(self: &Arc<Self>, ready: Ready, req: Request) -> Result<Option<WorkerFrame>, AnswerError> {
        let id = req.id;
        let Ready { layout, sessions } = ready;
        let answer = match req.body {
            RequestBody::PrepareWorkspace(p) => WorkerFrame::ok(id, &self.prepare(id, &layout, &p).await?),
            RequestBody::StartSession(s) => WorkerFrame::ok(id, &sessions.start(s, Utc::now()).await?),
            RequestBody::SendInput(s) => WorkerFrame::ok(id, &sessions.send_input(s, Utc::now()).await?),
            RequestBody::Cancel(c) => WorkerFrame::ok(id, &sessions.cancel(c, Utc::now()).await?),
            RequestBody::Attach(a) => {
                let sd = sessions.existing_dir(&a.session_id)?;
                self.attach(id, &a.session_id, sd.path(), a.from_seq).await?;
                return Ok(None);
            }
            RequestBody::Detach(r) => {
                self.stop_follower(&r.session_id);
                WorkerFrame::ok(id, &Empty {})
            }
            RequestBody::ListSessions => WorkerFrame::ok(
                id,
                &SessionList {
                    sessions: sessions.list(Utc::now()).await?,
                },
            ),
            RequestBody::RemoveSession(r) => {
                sessions.remove(&r.session_id, Utc::now()).await?;
                self.stop_follower(&r.session_id);
                WorkerFrame::ok(id, &Empty {})
            }
            RequestBody::ReadSublogs(r) => {
                let sources = sublog_sources(&layout, &sessions, &r.issue).await?;
                let session = r.session_id.clone();
                let entries = tokio::task::spawn_blocking(move || crate::sublogs::read(&sources, session.as_deref()))
                    .await
                    .map_err(|e| AnswerError::new("io", format!("reading sublogs: {e}")))?
                    .map_err(|e| sublog_error("reading", &r.issue, e))?;
                WorkerFrame::ok(id, &Sublogs { entries })
            }
            RequestBody::ClearSublogs(r) => {
                let sources = sublog_sources(&layout, &sessions, &r.issue).await?;
                let session = r.session_id.clone();
                tokio::task::spawn_blocking(move || crate::sublogs::clear(&sources, session.as_deref()))
                    .await
                    .map_err(|e| AnswerError::new("io", format!("clearing sublogs: {e}")))?
                    .map_err(|e| sublog_error("clearing", &r.issue, e))?;
                WorkerFrame::ok(id, &Empty {})
            }
            RequestBody::RemoveWorkspace(r) => {
                let path = layout.workspace_dir(&r.issue);
                if sessions.activity_in(&path, Utc::now()).await? == Activity::Running {
                    return Err(AnswerError::new(
                        "session_running",
                        format!(
                            "a session of {} is running in {}; cancel it before removing the workspace",
                            r.issue,
                            path.display()
                        ),
                    ));
                }
                WorkerFrame::ok(id, &workspace::remove(&layout, &r, Utc::now).await?)
            }
            RequestBody::ListWorkspaces => WorkerFrame::ok(id, &workspace::list(&layout).await?),
            RequestBody::Ping(ping) => {
                if let Some(token) = ping.lease_token {
                    let layout = layout.clone();
                    let _ = tokio::task::spawn_blocking(move || lease::renew(&layout, token)).await;
                }
                let running = sessions
                    .list(Utc::now())
                    .await?
                    .iter()
                    .filter(|s| s.status == SessionStatus::Running)
                    .count();
                WorkerFrame::ok(
                    id,
                    &Pong {
                        load1: host_info::load1(),
                        cpus: host_info::cpus(),
                        running: u32::try_from(running).unwrap_or(u32::MAX),
                        lease_token: Some(lease::token_now()),
                    },
                )
            }
        };
        Ok(Some(answer))
    }

    /// Answers `{lastSeq}`, then streams the journal from `from_seq` on, replacing an earlier follower
    /// of the same session on this stream.
    async fn attach(
        self: &Arc<Self>,
        id: RequestId,
        session_id: &str,
        dir: &Path,
        from_seq: u64,
    ) -> Result<(), AnswerError> {
        let d = dir.to_path_buf();
        let last_seq = tokio::task::spawn_blocking(move || journal::last_seq(&d))
            .await
            .map_err(|e| AnswerError::new("io", e.to_string()))?
            .map_err(|e| AnswerError::new("io", format!("cannot read the journal of {session_id}: {e}")))?;
        let token = self.stop_following.child_token();
        if let Some(old) = self
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session_id.to_string(), token.clone())
        {
            old.cancel();
        }
        // The answer goes out before the follower starts, so it precedes every event.
        self.send(&WorkerFrame::ok(id, &Attached { last_seq })).await;
        let poll = if self.watch.is_watching() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        };
        let changes = self.watch.subscribe(dir);
        tokio::spawn(follower::follow(
            self.tx.clone(),
            dir.to_path_buf(),
            from_seq,
            changes,
            poll,
            token,
        ));
        Ok(())
    }

    fn stop_follower(&self, session_id: &str) {
        if let Some(token) = self
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session_id)
        {
            token.cancel();
        }
    }
}

/// The id (0 when unknown) and a message naming what is wrong with an unparsable frame.
fn explain_bad_frame(bytes: &[u8], err: &serde_json::Error) -> (RequestId, String) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return (0, format!("the frame is not valid JSON: {err}"));
    };
    let id = value.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let message = match (kind, serde_json::from_value::<Request>(value)) {
        (None, _) => "the frame has no \"type\"".to_string(),
        (Some(kind), Err(e)) => format!("bad {kind:?} frame: {e}"),
        (Some(kind), Ok(_)) => format!("bad {kind:?} frame: {err}"),
    };
    (id, message)
}

#[cfg(test)]
mod tests;

/// Where an issue's agent session logs are on this host.
async fn sublog_sources(
    layout: &Layout,
    sessions: &Sessions,
    issue: &str,
) -> Result<crate::sublogs::SublogSources, AnswerError> {
    let refs = sessions.agent_refs(issue).await?;
    Ok(crate::sublogs::SublogSources::resolve(
        &layout.workspace_dir(issue),
        &layout.agent_log_dir(issue),
        &refs,
        &std::collections::BTreeMap::new(),
    ))
}

fn sublog_error(what: &str, issue: &str, e: std::io::Error) -> AnswerError {
    let code = if e.kind() == std::io::ErrorKind::InvalidInput {
        "bad_request"
    } else {
        "io"
    };
    AnswerError::new(code, format!("{what} the agent logs of {issue}: {e}"))
}
