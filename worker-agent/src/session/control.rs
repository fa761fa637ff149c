//! What the serve process does to sessions: start one (folder + detached supervisor), start its next
//! turn, cancel its turn, remove it, and list them. Every operation first reconciles the session's files
//! with reality (see `reconcile`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use itervox_protocol::worker::{
    Cancel, Cancelled, SendInput, SessionExit, SessionInfo, SessionStarted, SessionStatus, StartSession,
};
use nix::sys::signal::Signal;

use super::reconcile::{fail_turn, reconcile};
use super::{CancelRequest, Phase, SessionDir, SessionError, SessionState, TurnOrder, journal, read_file};
use crate::atomic_file;
use crate::file_lock::FileLock;
use crate::identifier::validate_session_id;
use crate::layout::Layout;
use crate::process_group;
use crate::process_identity::ProcessIdentity;

/// Starts sessions' supervisors with this worker binary.
#[derive(Debug, Clone)]
pub struct Sessions {
    layout: Layout,
    self_exe: PathBuf,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SessionError> + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SessionError::Io {
        context: "a blocking session task failed".to_string(),
        source: std::io::Error::other(e),
    })?
}

impl Sessions {
    pub fn new(layout: Layout, self_exe: PathBuf) -> Sessions {
        Sessions { layout, self_exe }
    }

    fn dir(&self, session_id: &str) -> Result<SessionDir, SessionError> {
        validate_session_id(session_id)?;
        let sd = SessionDir::new(self.layout.session_dir(session_id));
        if !sd.state().exists() {
            return Err(SessionError::Unknown {
                id: session_id.to_string(),
            });
        }
        Ok(sd)
    }

    /// The folder of an existing session (for attach).
    pub fn existing_dir(&self, session_id: &str) -> Result<SessionDir, SessionError> {
        self.dir(session_id)
    }

    /// Creates the session folder and starts the supervisor of turn 1.
    pub async fn start(&self, req: StartSession, now: DateTime<Utc>) -> Result<SessionStarted, SessionError> {
        validate_session_id(&req.session_id)?;
        let workspace = PathBuf::from(&req.workspace);
        if !workspace.is_dir() {
            return Err(SessionError::BadRequest {
                message: format!("the workspace {} is not a directory", workspace.display()),
            });
        }
        if !self.layout.contains(&workspace) {
            return Err(SessionError::BadRequest {
                message: format!(
                    "the workspace {} is not under the workspace root {}",
                    workspace.display(),
                    self.layout.root().display()
                ),
            });
        }
        let sd = SessionDir::new(self.layout.session_dir(&req.session_id));
        match fs_err::create_dir(sd.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SessionError::Exists {
                    id: req.session_id.clone(),
                });
            }
            Err(e) => return Err(SessionError::io("cannot create the session folder")(e)),
        }
        let io = |what: &str| SessionError::io(format!("cannot write {what}"));
        atomic_file::write_json(&sd.spec(), &req).map_err(io("spec.json"))?;
        atomic_file::write_json(
            &sd.turn_order(),
            &TurnOrder {
                turn: 1,
                prompt: req.prompt.clone(),
                resume_ref: req.resume_session_ref.clone(),
            },
        )
        .map_err(io("turn.json"))?;
        let state = SessionState {
            session_id: req.session_id.clone(),
            issue: req.issue.clone(),
            status: Phase::Running,
            turn: 1,
            last_seq: 0,
            started_at: crate::timestamp::rfc3339(now),
            turn_started_at: crate::timestamp::rfc3339(now),
            agent_session_ref: req.resume_session_ref.clone(),
            supervisor: None,
            supervisor_ready: false,
            agent: None,
            pid: None,
            pgid: None,
            pending_question: None,
        };
        let exe = self.self_exe.clone();
        blocking(move || {
            let _lock = sd.lock_state()?;
            sd.write_state(&state)?;
            launch(&exe, &sd, 1)
        })
        .await
    }

    /// Starts the next turn of an exited session, resuming the agent's own session.
    pub async fn send_input(&self, req: SendInput, now: DateTime<Utc>) -> Result<SessionStarted, SessionError> {
        let sd = self.dir(&req.session_id)?;
        let exe = self.self_exe.clone();
        blocking(move || {
            reconcile(&sd, now)?;
            let _lock = sd.lock_state()?;
            let mut state = sd.read_state()?;
            if state.status == Phase::Running {
                return Err(SessionError::Running {
                    id: state.session_id,
                    turn: state.turn,
                });
            }
            let turn = state.turn + 1;
            let _ = std::fs::remove_file(sd.cancel());
            atomic_file::write_json(
                &sd.turn_order(),
                &TurnOrder {
                    turn,
                    prompt: req.message,
                    resume_ref: state.agent_session_ref.clone(),
                },
            )
            .map_err(SessionError::io("cannot write turn.json"))?;
            state.status = Phase::Running;
            state.turn = turn;
            state.turn_started_at = crate::timestamp::rfc3339(now);
            state.supervisor = None;
            state.supervisor_ready = false;
            state.pending_question = None;
            sd.write_state(&state)?;
            launch(&exe, &sd, turn)
        })
        .await
    }

    /// Cancels the running turn: the supervisor stops the agent's group (SIGTERM, SIGKILL after
    /// `graceMs`) and records the turn as cancelled. Waits (bounded) until it has.
    pub async fn cancel(&self, req: Cancel, now: DateTime<Utc>) -> Result<Cancelled, SessionError> {
        let sd = self.dir(&req.session_id)?;
        let sd2 = sd.clone();
        let grace_ms = req.grace_ms;
        let target = blocking(move || {
            reconcile(&sd2, now)?;
            let _lock = sd2.lock_state()?;
            let state = sd2.read_state()?;
            if state.status != Phase::Running {
                return Ok(None);
            }
            atomic_file::write_json(
                &sd2.cancel(),
                &CancelRequest {
                    turn: state.turn,
                    grace_ms,
                },
            )
            .map_err(SessionError::io("cannot write cancel.json"))?;
            // Before it is ready the supervisor finds cancel.json itself (it checks after announcing
            // readiness, under this same lock).
            if state.supervisor_ready
                && let Some(sup) = state.supervisor
                && sup.is_alive()
            {
                let _ = process_group::signal_process(sup.pid, Signal::SIGTERM);
            }
            Ok(Some(state))
        })
        .await?;
        let Some(state) = target else {
            return Ok(Cancelled { cancelled: false });
        };
        // Wait for the supervisor to record the end of the turn.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(grace_ms) + Duration::from_secs(15);
        loop {
            let sd2 = sd.clone();
            let current = blocking(move || reconcile(&sd2, Utc::now())).await?;
            if current.status != Phase::Running || current.turn != state.turn {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                // The supervisor does not answer: stop the agent's group directly.
                if let Some(agent) = current.agent
                    && agent.is_alive()
                {
                    let _ = process_group::signal_group(agent.pid, Signal::SIGKILL);
                }
                tracing::warn!(session = %req.session_id, "The supervisor did not record the cancel in time.");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Cancelled { cancelled: true })
    }

    /// Deletes a session folder whose turn is not running. A supervisor still finishing (running
    /// after_run) is waited for, up to [`FINISHING_WAIT`].
    pub async fn remove(&self, session_id: &str, now: DateTime<Utc>) -> Result<(), SessionError> {
        let sd = self.dir(session_id)?;
        let sd2 = sd.clone();
        let state = blocking(move || reconcile(&sd2, now)).await?;
        let busy = || SessionError::Running {
            id: state.session_id.clone(),
            turn: state.turn,
        };
        if state.status == Phase::Running || !wait_supervisor_done(&sd, FINISHING_WAIT).await? {
            return Err(busy());
        }
        blocking(move || {
            let _lock = FileLock::try_exclusive(&sd.supervisor_lock())
                .map_err(SessionError::io("cannot probe the supervisor lock"))?
                .ok_or_else(|| SessionError::Running {
                    id: sd.session_id(),
                    turn: 0,
                })?;
            fs_err::remove_dir_all(sd.path()).map_err(SessionError::io("cannot delete the session"))
        })
        .await
    }

    /// Every session on this host, reconciled.
    pub async fn list(&self, now: DateTime<Utc>) -> Result<Vec<SessionInfo>, SessionError> {
        let layout = self.layout.clone();
        blocking(move || {
            let mut out = Vec::new();
            let entries = match fs_err::read_dir(layout.sessions_dir()) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(SessionError::io("cannot list sessions")(e)),
            };
            for entry in entries.flatten() {
                let sd = SessionDir::new(entry.path());
                if !sd.state().exists() {
                    continue;
                }
                match reconcile(&sd, now).and_then(|state| info(&sd, &state)) {
                    Ok(info) => out.push(info),
                    Err(e) => {
                        tracing::warn!(session = %sd.path().display(), error = %e, "Skipping an unreadable session.");
                    }
                }
            }
            out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.session_id.cmp(&b.session_id)));
            Ok(out)
        })
        .await
    }

    /// The agent's own session ids recorded for `issue` across all its sessions (from each state and
    /// every `turn` event), oldest session first, without duplicates: what a sublog reader matches the
    /// agent CLIs' transcript files against.
    pub async fn agent_refs(&self, issue: &str) -> Result<Vec<String>, SessionError> {
        let layout = self.layout.clone();
        let issue = issue.to_string();
        blocking(move || {
            let mut found: Vec<(String, Vec<String>)> = Vec::new();
            let entries = match fs_err::read_dir(layout.sessions_dir()) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(SessionError::io("cannot list sessions")(e)),
            };
            for entry in entries.flatten() {
                let sd = SessionDir::new(entry.path());
                let Ok(state) = sd.read_state() else {
                    continue;
                };
                if state.issue != issue {
                    continue;
                }
                let mut refs = journal::turn_refs(sd.path()).map_err(SessionError::io("cannot read the journal"))?;
                refs.extend(state.agent_session_ref);
                found.push((state.started_at, refs));
            }
            found.sort();
            let mut out: Vec<String> = Vec::new();
            for r in found.into_iter().flat_map(|(_, refs)| refs) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Whether a session works in `workspace`: [`Activity::Running`] while a turn runs there. A
    /// supervisor that is only finishing (after_run) is waited for, up to [`FINISHING_WAIT`].
    pub async fn activity_in(&self, workspace: &Path, now: DateTime<Utc>) -> Result<Activity, SessionError> {
        let target = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
        let sessions = self.list(now).await?;
        let layout = self.layout.clone();
        let mut finishing = Vec::new();
        for s in sessions {
            let sd = SessionDir::new(layout.session_dir(&s.session_id));
            let Some(spec) = read_file::<StartSession>(&sd.spec())? else {
                continue;
            };
            let ws = PathBuf::from(&spec.workspace);
            if std::fs::canonicalize(&ws).unwrap_or(ws) != target {
                continue;
            }
            if s.status == SessionStatus::Running {
                return Ok(Activity::Running);
            }
            finishing.push(sd);
        }
        for sd in finishing {
            if !wait_supervisor_done(&sd, FINISHING_WAIT).await? {
                return Ok(Activity::Running);
            }
        }
        Ok(Activity::Idle)
    }
}

/// What the sessions of a workspace are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Idle,
    Running,
}

/// Longest wait for a supervisor that recorded its exit but still runs after_run.
pub const FINISHING_WAIT: Duration = Duration::from_secs(120);

/// Waits until no supervisor holds the session's lock; false when it still does after `timeout`.
async fn wait_supervisor_done(sd: &SessionDir, timeout: Duration) -> Result<bool, SessionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let path = sd.supervisor_lock();
        let free = blocking(move || {
            FileLock::try_exclusive(&path)
                .map(|l| l.is_some())
                .map_err(SessionError::io("cannot probe the supervisor lock"))
        })
        .await?;
        if free {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The protocol's view of a session.
pub fn info(sd: &SessionDir, state: &SessionState) -> Result<SessionInfo, SessionError> {
    let journal_last = journal::last_seq(sd.path()).map_err(SessionError::io("cannot read the journal"))?;
    let (status, exit) = match state.status {
        Phase::Running => (SessionStatus::Running, None),
        Phase::Exited => (SessionStatus::Exited, read_file::<SessionExit>(&sd.exit())?),
    };
    let pid = match state.status {
        Phase::Running => state.pid.or(state.supervisor.map(|p| p.pid)),
        Phase::Exited => None,
    };
    Ok(SessionInfo {
        session_id: state.session_id.clone(),
        issue: state.issue.clone(),
        status,
        pid,
        last_seq: journal_last,
        turn: state.turn,
        started_at: state.started_at.clone(),
        exit,
    })
}

/// Spawns `itervox-worker supervise <dir>` detached (its stdio is not the serve process's) and records
/// it in state.json. Called with the state lock held, so a reconcile never sees the turn without its
/// supervisor.
fn launch(exe: &Path, sd: &SessionDir, turn: u32) -> Result<SessionStarted, SessionError> {
    let log = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sd.supervisor_log())
        .map_err(SessionError::io("cannot open supervisor.log"))?
        .into_parts()
        .0;
    let spawned = std::process::Command::new(exe)
        .arg("supervise")
        .arg(sd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(source) => {
            // Close the turn as failed, so the session can get another turn or be removed.
            let mut state = sd.read_state()?;
            if let Some(_sup) = crate::file_lock::FileLock::try_exclusive(&sd.supervisor_lock())
                .map_err(SessionError::io("cannot probe the supervisor lock"))?
            {
                let error = format!("cannot start the supervisor {}: {source}", exe.display());
                fail_turn(sd, &mut state, error, Utc::now())?;
            }
            return Err(SessionError::Spawn {
                id: sd.session_id(),
                source,
            });
        }
    };
    let pid = child.id();
    let identity = ProcessIdentity::of(pid);
    let mut state = sd.read_state()?;
    state.supervisor = identity;
    sd.write_state(&state)?;
    // Reap it when it ends while this serve process lives (it outlives us otherwise, which is the point).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(SessionStarted { pid, turn })
}

#[cfg(test)]
mod tests;
