//! The supervisor run in-process on a hand-made session folder with a real shell-script agent and a
//! scripted parser: the order of the final events, what the exit records, stderr in failures.

use std::collections::BTreeMap;

use chrono::DateTime;
use itervox_protocol::worker::{Backend, Hooks, PermissionMode};

use super::*;
use crate::agent::{OutputParser, TurnSummary};
use crate::session::{SessionState, journal};

struct Setup {
    _tmp: tempfile::TempDir,
    sd: SessionDir,
    workspace: PathBuf,
}

fn setup(script: &str, hooks: Hooks) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::open(tmp.path().join("root").to_str().unwrap(), None).unwrap();
    let workspace = layout.root().join("ITX-1");
    std::fs::create_dir(&workspace).unwrap();
    let agent = tmp.path().join("agent.sh");
    std::fs::write(&agent, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sd = SessionDir::new(layout.session_dir("s-1"));
    std::fs::create_dir(sd.path()).unwrap();
    let spec = StartSession {
        session_id: "s-1".into(),
        issue: "ITX-1".into(),
        workspace: workspace.display().to_string(),
        backend: Backend::Claude,
        command: agent.display().to_string(),
        env: BTreeMap::new(),
        prompt: "do it".into(),
        resume_session_ref: None,
        permission_mode: PermissionMode::Bypass,
        turn_timeout_ms: 0,
        read_timeout_ms: 0,
        hooks,
        lease_ms: None,
    };
    crate::atomic_file::write_json(&sd.spec(), &spec).unwrap();
    crate::atomic_file::write_json(
        &sd.turn_order(),
        &TurnOrder {
            turn: 1,
            prompt: "do it".into(),
            resume_ref: None,
        },
    )
    .unwrap();
    let now = Utc::now().to_rfc3339();
    sd.write_state(&SessionState {
        session_id: "s-1".into(),
        issue: "ITX-1".into(),
        status: Phase::Running,
        turn: 1,
        last_seq: 0,
        started_at: now.clone(),
        turn_started_at: now,
        agent_session_ref: None,
        supervisor: None,
        supervisor_ready: false,
        agent: None,
        pid: None,
        pgid: None,
        pending_question: None,
    })
    .unwrap();
    Setup {
        _tmp: tmp,
        sd,
        workspace,
    }
}

fn journal_events(sd: &SessionDir) -> Vec<SessionEvent> {
    std::fs::read_to_string(journal::journal_path(sd.path()))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every line is a text entry; a line containing RESULT ends a turn; the outcome asks a question.
struct AskingParser;

impl OutputParser for AskingParser {
    fn feed_line(&mut self, line: &[u8], now: DateTime<Utc>) -> Vec<AgentEvent> {
        let text = String::from_utf8_lossy(line).into_owned();
        let mut out = vec![AgentEvent::Log(IssueLogEntry::new(
            LogLevel::Info,
            LogEventKind::Text,
            text.clone(),
            now.to_rfc3339(),
        ))];
        if text.contains("RESULT") {
            out.push(AgentEvent::TurnEnd(TurnSummary {
                input_tokens: 10,
                output_tokens: 5,
                agent_session_ref: Some("ref-9".into()),
                ..TurnSummary::default()
            }));
        }
        out
    }

    fn finish(&mut self, _exit: Option<i32>, _now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome) {
        (
            Vec::new(),
            TurnOutcome {
                status: OutcomeStatus::InputRequired,
                question: Some("Which database?".into()),
                agent_session_ref: Some("ref-9".into()),
                ..TurnOutcome::default()
            },
        )
    }
}

fn asking(_: Backend) -> Box<dyn OutputParser> {
    Box::new(AskingParser)
}

/// Fails with no message of its own (the supervisor must supply one, with stderr).
struct FailingParser;

impl OutputParser for FailingParser {
    fn feed_line(&mut self, _line: &[u8], _now: DateTime<Utc>) -> Vec<AgentEvent> {
        Vec::new()
    }

    fn finish(&mut self, _exit: Option<i32>, _now: DateTime<Utc>) -> (Vec<AgentEvent>, TurnOutcome) {
        (
            Vec::new(),
            TurnOutcome {
                status: OutcomeStatus::Failed,
                ..TurnOutcome::default()
            },
        )
    }
}

fn failing(_: Backend) -> Box<dyn OutputParser> {
    Box::new(FailingParser)
}

#[tokio::test]
async fn input_required_is_journaled_right_before_session_exit_and_after_run_follows() {
    let hooks = Hooks {
        after_run: Some("echo after-run-output".into()),
        timeout_ms: 20_000,
        ..Hooks::default()
    };
    let s = setup("cat >/dev/null; echo first; echo RESULT", hooks);
    run_current_turn(s.sd.path(), CancellationToken::new(), asking)
        .await
        .unwrap();
    let events = journal_events(&s.sd);
    let seqs: Vec<u64> = events.iter().map(SessionEvent::seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "contiguous from 1");

    let exit_at = events
        .iter()
        .position(|e| matches!(e, SessionEvent::SessionExit(_)))
        .expect("a session_exit");
    let SessionEvent::InputRequired(ir) = &events[exit_at - 1] else {
        panic!("input_required must come right before session_exit: {events:#?}");
    };
    assert_eq!(ir.context, "Which database?");
    let SessionEvent::SessionExit(exit) = &events[exit_at] else {
        unreachable!()
    };
    assert_eq!(exit.status, ExitStatus::InputRequired);
    assert_eq!(exit.turn, 1);
    assert_eq!(exit.exit_code, Some(0));
    assert!(
        events.iter().any(
            |e| matches!(e, SessionEvent::Turn(t) if t.agent_session_ref.as_deref() == Some("ref-9") && t.turn == 1)
        )
    );
    // after_run ran after the exit was recorded, and its output is journaled after it.
    assert!(
        events[exit_at + 1..]
            .iter()
            .any(|e| matches!(e, SessionEvent::Log(l) if l.entry.message.contains("after-run-output")))
    );

    let on_disk: SessionExit = read_file(&s.sd.exit()).unwrap().unwrap();
    assert_eq!(&on_disk, exit);
    let state = s.sd.read_state().unwrap();
    assert_eq!(state.status, Phase::Exited);
    assert_eq!(state.agent_session_ref.as_deref(), Some("ref-9"));
    assert_eq!(state.pending_question.as_deref(), Some("Which database?"));
    assert_eq!(state.last_seq, events.last().unwrap().seq());
    assert!(state.supervisor_ready);
    assert!(state.agent.is_none());
    // Log entries carry their session and seq inside the entry too.
    for e in &events {
        if let SessionEvent::Log(l) = e {
            assert_eq!(l.entry.seq, Some(l.seq));
            assert_eq!(l.entry.session_id.as_deref(), Some("s-1"));
        }
    }
}

#[tokio::test]
async fn a_failed_turn_quotes_the_end_of_stderr() {
    let s = setup(
        "cat >/dev/null; i=0; while [ $i -lt 30 ]; do echo noise-$i >&2; i=$((i+1)); done; echo the real problem >&2; exit 7",
        Hooks::default(),
    );
    run_current_turn(s.sd.path(), CancellationToken::new(), failing)
        .await
        .unwrap();
    let exit: SessionExit = read_file(&s.sd.exit()).unwrap().unwrap();
    assert_eq!(exit.status, ExitStatus::Failed);
    assert_eq!(exit.exit_code, Some(7));
    let error = exit.error.unwrap();
    assert!(error.contains("exit code 7"), "{error}");
    assert!(error.contains("the real problem"), "{error}");
    assert!(!error.contains("noise-0\n"), "only the last lines: {error}");
    let log = std::fs::read_to_string(s.sd.stderr_log()).unwrap();
    assert!(log.contains("--- turn 1 ---") && log.contains("noise-0"));
}

#[tokio::test]
async fn a_failing_before_run_fails_the_turn_without_starting_the_agent() {
    let hooks = Hooks {
        before_run: Some("echo cannot prepare; exit 2".into()),
        timeout_ms: 20_000,
        ..Hooks::default()
    };
    let s = setup("touch agent-ran; cat >/dev/null", hooks);
    run_current_turn(s.sd.path(), CancellationToken::new(), asking)
        .await
        .unwrap();
    let exit: SessionExit = read_file(&s.sd.exit()).unwrap().unwrap();
    assert_eq!(exit.status, ExitStatus::Failed);
    let error = exit.error.unwrap();
    assert!(
        error.contains("before_run") && error.contains("cannot prepare"),
        "{error}"
    );
    assert!(!s.workspace.join("agent-ran").exists());
    let events = journal_events(&s.sd);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Log(l) if l.entry.message.contains("before_run: cannot prepare")))
    );
}

#[tokio::test]
async fn a_cancel_before_the_agent_starts_records_cancelled() {
    let s = setup("touch agent-ran; cat >/dev/null", Hooks::default());
    let cancel = CancellationToken::new();
    cancel.cancel();
    run_current_turn(s.sd.path(), cancel, asking).await.unwrap();
    let exit: SessionExit = read_file(&s.sd.exit()).unwrap().unwrap();
    assert_eq!(exit.status, ExitStatus::Cancelled);
    assert!(!s.workspace.join("agent-ran").exists());
}

/// Gives the session of `s` a lease of `ms`.
fn with_lease(s: &Setup, ms: u64) {
    let mut spec: StartSession = read_file(&s.sd.spec()).unwrap().unwrap();
    spec.lease_ms = Some(ms);
    crate::atomic_file::write_json(&s.sd.spec(), &spec).unwrap();
}

#[tokio::test]
async fn an_expired_lease_stops_the_agent_group_and_records_cancelled() {
    // The agent and a grandchild both ignore nothing: the group is killed either way.
    let s = setup(
        "cat >/dev/null; sleep 300 & echo $! > child.pid; echo $$ > agent.pid; echo working; wait",
        Hooks::default(),
    );
    // Long enough for the shell to write its pid files before the lease runs out.
    with_lease(&s, 3000);
    let started = std::time::Instant::now();
    tokio::time::timeout(
        Duration::from_secs(30),
        run_current_turn(s.sd.path(), CancellationToken::new(), asking),
    )
    .await
    .expect("the supervisor gives the turn up on its own")
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "not before the lease ran out"
    );
    let exit: SessionExit = read_file(&s.sd.exit()).unwrap().unwrap();
    assert_eq!(exit.status, ExitStatus::Cancelled);
    let error = exit.error.unwrap_or_default();
    assert!(error.contains("lease expired") && error.contains("3000 ms"), "{error}");
    for file in ["agent.pid", "child.pid"] {
        let pid: i32 = std::fs::read_to_string(s.workspace.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false);
        assert!(!alive, "{file} ({pid}) is gone after the lease expired");
    }
    let state = s.sd.read_state().unwrap();
    assert_eq!(state.status, Phase::Exited);
    assert!(
        matches!(journal_events(&s.sd).last(), Some(SessionEvent::SessionExit(e)) if e.status == ExitStatus::Cancelled)
    );
}

#[tokio::test]
async fn a_renewed_lease_lets_the_turn_finish() {
    // The turn outlasts the lease more than twice; the lease is renewed every 100 ms and lasts 2 s,
    // so a stall of the test machine does not let it lapse between two renewals.
    let s = setup("cat >/dev/null; sleep 5; echo RESULT", Hooks::default());
    with_lease(&s, 2000);
    let layout = Layout::of_session_dir(s.sd.path()).unwrap();
    let renewing = CancellationToken::new();
    let stop = renewing.clone();
    let renewer = tokio::spawn(async move {
        while !stop.is_cancelled() {
            crate::session::lease::renew(&layout, crate::session::lease::token_now());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::timeout(
        Duration::from_secs(30),
        run_current_turn(s.sd.path(), CancellationToken::new(), asking),
    )
    .await
    .expect("the turn ends")
    .unwrap();
    renewing.cancel();
    renewer.await.unwrap();
    let exit: SessionExit = read_file(&s.sd.exit()).unwrap().unwrap();
    assert_eq!(exit.status, ExitStatus::InputRequired, "{:?}", exit.error);
}
