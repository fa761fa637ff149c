//! Finding sessions whose supervisor died without recording the end of its turn (killed with SIGKILL,
//! crashed, host rebooted) and recording that turn as `failed`, exactly once even when several serve
//! processes look at the same time; and completing a journal whose `session_exit` was recorded in
//! exit.json but not yet appended.

use chrono::{DateTime, Utc};
use itervox_protocol::worker::{ExitStatus, InputRequiredEvent, LogEvent, SessionEvent, SessionExit, StartSession};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use nix::sys::signal::Signal;

use super::journal::{self, DEFAULT_CAP_BYTES, JournalWriter};
use super::{Phase, SessionDir, SessionError, SessionState, read_file};
use crate::file_lock::FileLock;
use crate::process_group;
use crate::workspace::current_branch;

/// Brings a session's files in line with reality and returns its state. Blocking (takes file locks).
pub fn reconcile(sd: &SessionDir, now: DateTime<Utc>) -> Result<SessionState, SessionError> {
    let _state_lock = sd.lock_state()?;
    let mut state = sd.read_state()?;
    // A live supervisor holds this lock for its whole life: while it is held, all is well.
    let Some(_supervisor_lock) =
        FileLock::try_exclusive(&sd.supervisor_lock()).map_err(SessionError::io("cannot probe the supervisor lock"))?
    else {
        return Ok(state);
    };
    match state.status {
        Phase::Running => {
            if state.supervisor.is_some_and(|p| p.is_alive()) {
                // Spawned, not yet holding its lock.
                return Ok(state);
            }
            // Whatever the dead supervisor left running of the agent goes too (only if it is still the
            // very process that was recorded).
            if let Some(agent) = state.agent
                && agent.is_alive()
            {
                let _ = process_group::signal_group(agent.pid, Signal::SIGKILL);
            }
            let who = match state.supervisor {
                Some(p) => format!("pid {}", p.pid),
                None => "never started".to_string(),
            };
            let error = format!(
                "the supervisor of turn {} ({who}) ended without recording how the turn ended: it was \
                 killed, crashed, or the host restarted",
                state.turn
            );
            tracing::warn!(session = %state.session_id, turn = state.turn, "{error}");
            fail_turn(sd, &mut state, error, now)?;
            Ok(state)
        }
        Phase::Exited => {
            complete_journal(sd, &state)?;
            Ok(state)
        }
    }
}

/// Records the current turn as failed with `error`: exit.json, state, then an error entry and
/// session_exit in the journal. The caller holds the state lock and the supervisor lock.
pub fn fail_turn(
    sd: &SessionDir,
    state: &mut SessionState,
    error: String,
    now: DateTime<Utc>,
) -> Result<(), SessionError> {
    let mut journal =
        JournalWriter::open(sd.path(), DEFAULT_CAP_BYTES).map_err(SessionError::io("cannot open the journal"))?;
    let workspace = read_file::<StartSession>(&sd.spec())
        .ok()
        .flatten()
        .map(|s| s.workspace);
    let log_seq = journal.next_seq();
    let exit = SessionExit {
        session_id: state.session_id.clone(),
        seq: log_seq + 1,
        turn: state.turn,
        status: ExitStatus::Failed,
        exit_code: None,
        error: Some(error.clone()),
        branch: workspace.and_then(|w| current_branch(std::path::Path::new(&w))),
        pr_url: None,
        rate_limit_reset_at: None,
        rate_limited: false,
    };
    crate::atomic_file::write_json(&sd.exit(), &exit).map_err(SessionError::io("cannot write exit.json"))?;
    state.status = Phase::Exited;
    state.last_seq = exit.seq;
    state.agent = None;
    state.pid = None;
    state.pgid = None;
    state.pending_question = None;
    sd.write_state(state)?;

    let mut entry = IssueLogEntry::new(
        LogLevel::Error,
        LogEventKind::Error,
        error,
        crate::timestamp::rfc3339(now),
    );
    entry.session_id = Some(state.session_id.clone());
    entry.seq = Some(log_seq);
    let io = |e| SessionError::io("cannot append to the journal")(e);
    journal
        .append(&SessionEvent::Log(LogEvent {
            session_id: state.session_id.clone(),
            seq: log_seq,
            entry,
        }))
        .map_err(io)?;
    journal.append(&SessionEvent::SessionExit(exit)).map_err(io)?;
    journal.sync().map_err(io)?;
    Ok(())
}

/// Appends the input_required / session_exit events that exit.json promises but the journal lacks (the
/// supervisor died between writing exit.json and appending them).
fn complete_journal(sd: &SessionDir, state: &SessionState) -> Result<(), SessionError> {
    let Some(exit) = read_file::<SessionExit>(&sd.exit())? else {
        return Ok(());
    };
    if exit.turn != state.turn
        || journal::last_seq(sd.path()).map_err(SessionError::io("cannot read the journal"))? >= exit.seq
    {
        return Ok(());
    }
    let mut journal =
        JournalWriter::open(sd.path(), DEFAULT_CAP_BYTES).map_err(SessionError::io("cannot open the journal"))?;
    let io = |e| SessionError::io("cannot append to the journal")(e);
    if exit.status == ExitStatus::InputRequired && journal.next_seq() + 1 == exit.seq {
        journal
            .append(&SessionEvent::InputRequired(InputRequiredEvent {
                session_id: exit.session_id.clone(),
                seq: exit.seq - 1,
                context: state.pending_question.clone().unwrap_or_default(),
            }))
            .map_err(io)?;
    }
    if journal.next_seq() == exit.seq {
        journal.append(&SessionEvent::SessionExit(exit)).map_err(io)?;
        journal.sync().map_err(io)?;
    } else {
        tracing::warn!(
            session = %state.session_id,
            journal_last = journal.last_seq(),
            exit_seq = exit.seq,
            "The journal and exit.json disagree; not repairing."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
