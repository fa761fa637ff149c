//! Dead supervisors are recorded once; a journal missing its promised exit is completed.

use itervox_protocol::worker::LogEvent;

use super::*;
use crate::atomic_file::write_json;
use crate::process_identity::ProcessIdentity;

fn session(status: Phase) -> (tempfile::TempDir, SessionDir) {
    let tmp = tempfile::tempdir().unwrap();
    let sd = SessionDir::new(tmp.path().join("s-1"));
    std::fs::create_dir(sd.path()).unwrap();
    let now = Utc::now().to_rfc3339();
    sd.write_state(&SessionState {
        session_id: "s-1".into(),
        issue: "ITX-1".into(),
        status,
        turn: 1,
        last_seq: 0,
        started_at: now.clone(),
        turn_started_at: now,
        agent_session_ref: None,
        supervisor: None,
        supervisor_ready: true,
        agent: None,
        pid: None,
        pgid: None,
        pending_question: Some("Which one?".into()),
    })
    .unwrap();
    (tmp, sd)
}

fn log_event(seq: u64) -> SessionEvent {
    SessionEvent::Log(LogEvent {
        session_id: "s-1".into(),
        seq,
        entry: IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, "hi", Utc::now().to_rfc3339()),
    })
}

fn journal_types(sd: &SessionDir) -> Vec<(String, u64)> {
    std::fs::read_to_string(journal::journal_path(sd.path()))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["type"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn a_dead_supervisor_fails_the_turn_exactly_once() {
    let (_tmp, sd) = session(Phase::Running);
    // A process that has certainly exited stands for the dead supervisor.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = ProcessIdentity {
        pid: child.id(),
        start_ticks: 1,
    };
    child.wait().unwrap();
    sd.update_state(|s| s.supervisor = Some(dead)).unwrap();
    JournalWriter::open(sd.path(), DEFAULT_CAP_BYTES)
        .unwrap()
        .append(&log_event(1))
        .unwrap();

    let state = reconcile(&sd, Utc::now()).unwrap();
    assert_eq!(state.status, Phase::Exited);
    let again = reconcile(&sd, Utc::now()).unwrap();
    assert_eq!(again, state);
    assert_eq!(
        journal_types(&sd),
        vec![("log".into(), 1), ("log".into(), 2), ("session_exit".into(), 3)]
    );
    let exit: SessionExit = read_file(&sd.exit()).unwrap().unwrap();
    assert_eq!(exit.status, ExitStatus::Failed);
    assert_eq!(exit.seq, 3);
    assert!(exit.error.unwrap().contains("supervisor of turn 1"));
}

#[test]
fn a_live_supervisor_is_left_alone() {
    let (_tmp, sd) = session(Phase::Running);
    // This very process plays a supervisor that has not taken its lock yet.
    sd.update_state(|s| s.supervisor = ProcessIdentity::current()).unwrap();
    assert_eq!(reconcile(&sd, Utc::now()).unwrap().status, Phase::Running);
    // And one that holds the lock.
    sd.update_state(|s| s.supervisor = None).unwrap();
    let _held = FileLock::try_exclusive(&sd.supervisor_lock()).unwrap().unwrap();
    assert_eq!(reconcile(&sd, Utc::now()).unwrap().status, Phase::Running);
    assert!(journal_types(&sd).is_empty());
}

#[test]
fn a_journal_missing_its_recorded_exit_is_completed() {
    let (_tmp, sd) = session(Phase::Exited);
    JournalWriter::open(sd.path(), DEFAULT_CAP_BYTES)
        .unwrap()
        .append(&log_event(1))
        .unwrap();
    let exit = SessionExit {
        session_id: "s-1".into(),
        seq: 3,
        turn: 1,
        status: ExitStatus::InputRequired,
        exit_code: Some(0),
        error: None,
        branch: None,
        pr_url: None,
        rate_limit_reset_at: None,
        rate_limited: false,
    };
    write_json(&sd.exit(), &exit).unwrap();
    reconcile(&sd, Utc::now()).unwrap();
    reconcile(&sd, Utc::now()).unwrap();
    assert_eq!(
        journal_types(&sd),
        vec![
            ("log".into(), 1),
            ("input_required".into(), 2),
            ("session_exit".into(), 3)
        ]
    );
    let text = std::fs::read_to_string(journal::journal_path(sd.path())).unwrap();
    assert!(text.contains("Which one?"));
}
