//! Agent session refs collected per issue.

use itervox_protocol::worker::{SessionEvent, TurnEvent};

use super::*;
use crate::session::journal::{DEFAULT_CAP_BYTES, JournalWriter};

fn session(layout: &Layout, id: &str, issue: &str, started: &str, state_ref: Option<&str>, turn_refs: &[&str]) {
    let sd = SessionDir::new(layout.session_dir(id));
    std::fs::create_dir(sd.path()).unwrap();
    sd.write_state(&SessionState {
        session_id: id.into(),
        issue: issue.into(),
        status: Phase::Exited,
        turn: 1,
        last_seq: 0,
        started_at: started.into(),
        turn_started_at: started.into(),
        agent_session_ref: state_ref.map(str::to_string),
        supervisor: None,
        supervisor_ready: false,
        agent: None,
        pid: None,
        pgid: None,
        pending_question: None,
    })
    .unwrap();
    let mut j = JournalWriter::open(sd.path(), DEFAULT_CAP_BYTES).unwrap();
    for (i, r) in turn_refs.iter().enumerate() {
        j.append(&SessionEvent::Turn(TurnEvent {
            session_id: id.into(),
            seq: i as u64 + 1,
            turn: 1,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            agent_session_ref: Some(r.to_string()),
            tool_calls: 0,
            result_text: None,
            is_error: false,
        }))
        .unwrap();
    }
}

#[tokio::test]
async fn agent_refs_of_an_issue_come_from_every_session_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::open(tmp.path().join("root").to_str().unwrap(), None).unwrap();
    session(
        &layout,
        "s-2",
        "ITX-1",
        "2026-12-04T11:00:00.000Z",
        Some("c"),
        &["b", "c"],
    );
    session(&layout, "s-1", "ITX-1", "2026-12-04T10:00:00.000Z", Some("a"), &["a"]);
    session(
        &layout,
        "s-3",
        "ITX-2",
        "2026-12-04T09:00:00.000Z",
        Some("other"),
        &["other"],
    );
    let sessions = Sessions::new(layout, PathBuf::from("/nonexistent"));
    assert_eq!(sessions.agent_refs("ITX-1").await.unwrap(), ["a", "b", "c"]);
    assert!(sessions.agent_refs("ITX-9").await.unwrap().is_empty());
}
