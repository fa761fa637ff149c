//! Agent sessions on this host. A session is a folder, `<root>/.itervox/sessions/<sessionId>/`, owned by
//! whichever supervisor process runs its current turn; the serve process only starts supervisors,
//! signals them and reads their files, so a session outlives every connection.
//!
//! ```text
//! spec.json        the StartSession request
//! turn.json        the order for the current turn: number, prompt, agent session to resume
//! state.json       status, turn, supervisor and agent processes, lastSeq, agentSessionRef
//! journal.jsonl    the session's events, one wire frame per line, seq 1, 2, 3, …
//! journal.1.jsonl  the journal before its one rotation
//! exit.json        how the last turn ended (written before session_exit is journaled)
//! cancel.json      a pending cancel for the current turn
//! stderr.log       the agent's stderr (capped)
//! supervisor.log   the supervisor's own log
//! state.lock       serialises read-modify-write of state.json (and failure recording)
//! supervisor.lock  held by the live supervisor for its whole life; the kernel drops it when it dies
//! ```

pub mod control;
pub mod journal;
pub mod lease;
pub mod reconcile;
pub mod supervisor;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, JsonFileError};
use crate::file_lock::FileLock;
use crate::identifier::BadSessionId;
use crate::process_identity::ProcessIdentity;

/// The paths of one session's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDir {
    path: PathBuf,
}

impl SessionDir {
    pub fn new(path: impl Into<PathBuf>) -> SessionDir {
        SessionDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session id (the folder's name).
    pub fn session_id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn spec(&self) -> PathBuf {
        self.path.join("spec.json")
    }
    pub fn turn_order(&self) -> PathBuf {
        self.path.join("turn.json")
    }
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn exit(&self) -> PathBuf {
        self.path.join("exit.json")
    }
    pub fn cancel(&self) -> PathBuf {
        self.path.join("cancel.json")
    }
    pub fn stderr_log(&self) -> PathBuf {
        self.path.join("stderr.log")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.path.join("supervisor.log")
    }
    pub fn state_lock(&self) -> PathBuf {
        self.path.join("state.lock")
    }
    pub fn supervisor_lock(&self) -> PathBuf {
        self.path.join("supervisor.lock")
    }

    /// Reads state.json.
    pub fn read_state(&self) -> Result<SessionState, SessionError> {
        atomic_file::read_json(&self.state())
            .map_err(SessionError::from_json)?
            .ok_or_else(|| SessionError::Unknown { id: self.session_id() })
    }

    /// Writes state.json (callers hold the state lock).
    pub fn write_state(&self, state: &SessionState) -> Result<(), SessionError> {
        atomic_file::write_json(&self.state(), state)
            .map_err(SessionError::io(format!("cannot write {}", self.state().display())))
    }

    /// Takes the state lock (briefly; blocks the thread).
    pub fn lock_state(&self) -> Result<FileLock, SessionError> {
        FileLock::exclusive(&self.state_lock()).map_err(SessionError::io("cannot lock the session state"))
    }

    /// Read-modify-write of state.json under the state lock.
    pub fn update_state(&self, f: impl FnOnce(&mut SessionState)) -> Result<SessionState, SessionError> {
        let _lock = self.lock_state()?;
        let mut state = self.read_state()?;
        f(&mut state);
        self.write_state(&state)?;
        Ok(state)
    }
}

/// Whether a turn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A supervisor owns the current turn (starting, running hooks or the agent, or finishing).
    Running,
    /// The last turn ended; exit.json says how.
    Exited,
}

/// state.json: where the session stands. Written under the state lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    pub session_id: String,
    pub issue: String,
    pub status: Phase,
    pub turn: u32,
    /// The highest seq journaled when the state was last written (the journal itself is authoritative).
    pub last_seq: u64,
    /// RFC 3339 time the session started.
    pub started_at: String,
    pub turn_started_at: String,
    /// The agent's own session id, for resuming in the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_ref: Option<String>,
    /// The supervisor of the current turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<ProcessIdentity>,
    /// Set by the supervisor once it handles SIGTERM (before that, cancel only leaves cancel.json).
    #[serde(default)]
    pub supervisor_ready: bool,
    /// The agent process (leader of its own process group) of the current turn, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<ProcessIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    /// The agent's question when the last turn ended with input_required (to repair the journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_question: Option<String>,
}

/// turn.json: what the supervisor of the current turn is to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnOrder {
    pub turn: u32,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_ref: Option<String>,
}

/// cancel.json: a cancel request for one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    pub turn: u32,
    pub grace_ms: u64,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    BadId(#[from] BadSessionId),
    #[error("session {id} already exists")]
    Exists { id: String },
    #[error("unknown session {id}")]
    Unknown { id: String },
    #[error("session {id} is running turn {turn}; wait for its session_exit or cancel it")]
    Running { id: String, turn: u32 },
    #[error("{message}")]
    BadRequest { message: String },
    #[error("cannot start the supervisor for session {id}: {source}")]
    Spawn {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Corrupt(String),
}

impl SessionError {
    /// The protocol error code.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::BadId(_) | SessionError::BadRequest { .. } => "bad_request",
            SessionError::Exists { .. } => "session_exists",
            SessionError::Unknown { .. } => "unknown_session",
            SessionError::Running { .. } => "session_running",
            SessionError::Spawn { .. } => "spawn_failed",
            SessionError::Io { .. } | SessionError::Corrupt(_) => "io",
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SessionError {
        let context = context.into();
        move |source| SessionError::Io { context, source }
    }

    fn from_json(e: JsonFileError) -> SessionError {
        match e {
            JsonFileError::Io(source) => SessionError::Io {
                context: "cannot read a session file".to_string(),
                source,
            },
            parse @ JsonFileError::Parse { .. } => SessionError::Corrupt(parse.to_string()),
        }
    }
}

/// Reads a JSON file of a session folder (`None` when missing).
pub fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, SessionError> {
    atomic_file::read_json(path).map_err(SessionError::from_json)
}
