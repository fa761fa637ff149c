//! The demo agent run in temporary git repositories: its output parses with the Claude parser into the
//! expected entries, it really commits, it asks and resumes, fails once by attempt, and continues briefly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use git2::{Repository, Signature};
use itervox_protocol::LogEventKind;
use itervox_protocol::worker::Backend;
use serde_json::Value;

use super::{DemoEnv, NOTES_FILE, parse_flags, run};
use crate::agent::{AgentEvent, OutcomeStatus, TurnOutcome, TurnSummary, parser_for};
use itervox_protocol::IssueLogEntry;

/// A repository with one commit, and a log folder for the demo's transcripts.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    log_dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("ABC-7");
        let log_dir = dir.path().join("logs");
        let git = Repository::init(&repo).unwrap();
        std::fs::write(repo.join("README.md"), "hello\n").unwrap();
        let mut index = git.index().unwrap();
        index.add_path(Path::new("README.md")).unwrap();
        index.write().unwrap();
        let tree = git.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("Tester", "tester@example.invalid").unwrap();
        git.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[]).unwrap();
        Fixture {
            _dir: dir,
            repo,
            log_dir,
        }
    }

    fn env(&self, attempt: Option<&str>) -> DemoEnv {
        DemoEnv {
            issue: None,
            attempt: attempt.map(str::to_string),
            log_dir: Some(self.log_dir.clone()),
        }
    }

    fn head(&self) -> (String, String, String) {
        let git = Repository::open(&self.repo).unwrap();
        let commit = git.head().unwrap().peel_to_commit().unwrap();
        (
            commit.id().to_string(),
            commit.author().name().unwrap().to_string(),
            commit.message().unwrap().to_string(),
        )
    }

    fn notes(&self) -> String {
        std::fs::read_to_string(self.repo.join(NOTES_FILE)).unwrap_or_default()
    }
}

/// One demo turn and what the Claude parser made of it.
struct Turn {
    code: i32,
    lines: Vec<Value>,
    entries: Vec<IssueLogEntry>,
    turns: Vec<TurnSummary>,
    outcome: TurnOutcome,
}

impl Turn {
    fn count(&self, kind: LogEventKind) -> usize {
        self.entries.iter().filter(|e| e.event == kind).count()
    }
}

fn demo(cwd: &Path, env: &DemoEnv, args: &[&str], prompt: &str) -> Turn {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut out = Vec::new();
    let code = run(&args, prompt, env, cwd, &mut out);
    let mut parser = parser_for(Backend::Demo);
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        lines.push(serde_json::from_slice::<Value>(line).expect("every demo line is JSON"));
        events.extend(parser.feed_line(line, Utc::now()));
    }
    let (_, outcome) = parser.finish(Some(code), Utc::now());
    let mut turn = Turn {
        code,
        lines,
        entries: Vec::new(),
        turns: Vec::new(),
        outcome,
    };
    for event in events {
        match event {
            AgentEvent::Log(e) => turn.entries.push(e),
            AgentEvent::TurnEnd(t) => turn.turns.push(t),
        }
    }
    turn
}

const ARGS: &[&str] = &["demo-agent", "-p", "--output-format", "stream-json", "--verbose"];

#[test]
fn does_the_work_commits_and_speaks_stream_json() {
    let fx = Fixture::new();
    let (before, _, _) = fx.head();
    let turn = demo(
        &fx.repo,
        &fx.env(None),
        ARGS,
        "Please work on ABC-7: tidy up. [demo:sleep=0]",
    );
    assert_eq!(turn.code, 0);
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{:?}", turn.outcome);

    // The real format: init first, result last, assistant blocks one per line.
    let first = &turn.lines[0];
    assert_eq!(
        (first["type"].as_str(), first["subtype"].as_str()),
        (Some("system"), Some("init"))
    );
    let session = first["session_id"].as_str().unwrap().to_string();
    assert_eq!(first["cwd"].as_str(), Some(fx.repo.to_str().unwrap()));
    let last = turn.lines.last().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["subtype"].as_str()),
        (Some("result"), Some("success"))
    );
    assert_eq!(last["is_error"], false);
    assert!(last["total_cost_usd"].as_f64().unwrap() > 0.0);
    assert!(last["usage"]["input_tokens"].as_u64().unwrap() > 0);
    for line in turn.lines.iter().filter(|l| l["type"] == "assistant") {
        assert_eq!(line["message"]["content"].as_array().unwrap().len(), 1, "{line}");
    }

    assert_eq!(turn.count(LogEventKind::Info), 1);
    assert_eq!(turn.count(LogEventKind::Text), 2);
    // git status (call + completion), Write, commit (call + completion).
    assert_eq!(turn.count(LogEventKind::Action), 5);
    assert_eq!(turn.count(LogEventKind::Turn), 1);
    let tools: Vec<&str> = turn
        .entries
        .iter()
        .filter(|e| e.event == LogEventKind::Action)
        .map(|e| e.tool.as_deref().unwrap())
        .collect();
    assert_eq!(tools, ["Bash", "Bash", "Write", "Bash", "Bash"]);
    assert_eq!(turn.turns[0].tool_calls, 3);
    assert_eq!(turn.outcome.agent_session_ref.as_deref(), Some(session.as_str()));

    let (after, author, message) = fx.head();
    assert_ne!(after, before);
    assert_eq!(author, "Itervox Demo Agent");
    assert_eq!(message, "ABC-7: record the demo agent's note");
    assert!(
        fx.notes().contains("- ABC-7: worked on by the Itervox demo agent"),
        "{}",
        fx.notes()
    );
    // The transcript is kept where the sublog reader looks, in a form it reads.
    assert!(fx.log_dir.join(format!("{session}.jsonl")).is_file());
    let sources = crate::sublogs::SublogSources {
        worktree: fx.repo.clone(),
        log_dir: fx.log_dir.clone(),
        claude_config_dir: fx.log_dir.join("no-claude"),
        codex_home: fx.log_dir.join("no-codex"),
        agent_refs: vec![session.clone()],
    };
    let sublog = crate::sublogs::read(&sources, Some(&session)).unwrap();
    let kinds: Vec<(LogEventKind, Option<&str>)> = sublog.iter().map(|e| (e.event, e.tool.as_deref())).collect();
    assert_eq!(
        kinds,
        [
            (LogEventKind::Info, None),
            (LogEventKind::Text, None),
            (LogEventKind::Action, Some("Bash")),
            (LogEventKind::Action, Some("Bash")),
            (LogEventKind::Action, Some("Write")),
            (LogEventKind::Action, Some("Bash")),
            (LogEventKind::Action, Some("Bash")),
            (LogEventKind::Text, None),
        ]
    );

    // A second session edits the existing notes.
    let turn = demo(&fx.repo, &fx.env(None), ARGS, "ABC-7 again [demo:sleep=0]");
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded);
    assert!(turn.entries.iter().any(|e| e.tool.as_deref() == Some("Edit")));
    assert_eq!(fx.notes().matches("- ABC-7:").count(), 2);
}

#[test]
fn asks_then_does_the_work_with_the_answer_when_resumed() {
    let fx = Fixture::new();
    let (before, _, _) = fx.head();
    let turn = demo(
        &fx.repo,
        &fx.env(None),
        ARGS,
        "Fix ABC-7 [demo:needs-input] [demo:sleep=0]",
    );
    assert_eq!(turn.code, 0);
    assert_eq!(turn.outcome.status, OutcomeStatus::InputRequired);
    let question = turn.outcome.question.clone().unwrap();
    assert!(question.starts_with("Before I make changes for ABC-7"), "{question}");
    assert!(!question.contains("itervox:needs-input"));
    assert_eq!(fx.head().0, before, "no commit before the answer");
    let session = turn.outcome.agent_session_ref.clone().unwrap();

    let mut args = ARGS.to_vec();
    args.extend(["--resume", session.as_str()]);
    let turn = demo(&fx.repo, &fx.env(None), &args, "Mention Alice please");
    assert_eq!(turn.code, 0);
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{:?}", turn.outcome);
    assert_eq!(turn.lines[0]["session_id"].as_str(), Some(session.as_str()));
    assert_ne!(fx.head().0, before);
    assert!(fx.notes().contains("answer: Mention Alice please"), "{}", fx.notes());

    // Resumed again with only guidance: a brief answer, no tools, no commit.
    let (done, _, _) = fx.head();
    let turn = demo(&fx.repo, &fx.env(None), &args, "Continue working on ABC-7.");
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded);
    assert_eq!(turn.turns[0].tool_calls, 0);
    assert_eq!(turn.count(LogEventKind::Action), 0);
    assert!(turn.turns[0].result_text.as_deref().unwrap().contains("is complete"));
    assert_eq!(fx.head().0, done);
    // The session's usage is cumulative, as Claude Code reports it; the parser counts this turn only.
    let last = turn.lines.last().unwrap();
    let this_turn = last["model_usage_since_last_result"]["itervox-demo"]["inputTokens"]
        .as_u64()
        .unwrap();
    let cumulative = last["modelUsage"]["itervox-demo"]["inputTokens"].as_u64().unwrap();
    assert!(cumulative > this_turn);
    assert_eq!(turn.turns[0].input_tokens, this_turn);
}

#[test]
fn an_interrupted_task_is_done_when_the_session_is_resumed() {
    let fx = Fixture::new();
    let (before, _, _) = fx.head();
    // What a first turn killed midway leaves behind: the state recorded before any work.
    let session = "4d7c3f0e-interrupted";
    let file = super::SessionFile::new(Some(&fx.log_dir), session);
    let history = super::History {
        task: Some("Fix ABC-7 [demo:sleep=0]".into()),
        ..super::History::default()
    };
    file.save_state(session, &history);

    let mut args = ARGS.to_vec();
    args.extend(["--resume", session]);
    let resume = "You were paused by an operator and are now resumed. Continue the task.";
    let turn = demo(&fx.repo, &fx.env(None), &args, resume);
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{:?}", turn.outcome);
    assert!(turn.count(LogEventKind::Action) > 0, "it worked");
    assert_ne!(fx.head().0, before, "and committed");
    assert!(fx.notes().contains("- ABC-7:"), "{}", fx.notes());

    // Done now: the next resume only answers.
    let turn = demo(&fx.repo, &fx.env(None), &args, resume);
    assert_eq!(turn.count(LogEventKind::Action), 0);
    assert_eq!(fx.notes().matches("- ABC-7:").count(), 1);
}

#[test]
fn a_new_session_records_its_task_before_working() {
    let fx = Fixture::new();
    let turn = demo(&fx.repo, &fx.env(None), ARGS, "Fix ABC-7 [demo:sleep=0]");
    let session = turn.outcome.agent_session_ref.clone().unwrap();
    let text = std::fs::read_to_string(fx.log_dir.join(format!("{session}.jsonl"))).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let first_state = kinds.iter().position(|k| k == "demo-state").expect("a state line");
    let first_work = kinds.iter().position(|k| k == "assistant").expect("an assistant line");
    assert!(first_state < first_work, "{kinds:?}");
}

#[test]
fn fails_once_by_attempt() {
    let fx = Fixture::new();
    let (before, _, _) = fx.head();
    for attempt in [None, Some("1")] {
        let turn = demo(
            &fx.repo,
            &fx.env(attempt),
            ARGS,
            "ABC-7 [demo:fail-once] [demo:sleep=0]",
        );
        assert_eq!(turn.code, 1, "{attempt:?}");
        assert_eq!(turn.outcome.status, OutcomeStatus::Failed);
        assert!(!turn.outcome.rate_limited);
        let error = turn.outcome.error.clone().unwrap();
        assert!(error.starts_with("API Error: 500"), "{error}");
        assert!(turn.turns[0].is_error);
        assert_eq!(turn.count(LogEventKind::Error), 1);
        assert_eq!(turn.count(LogEventKind::Warn), 1, "the api_retry line");
        assert_eq!(fx.head().0, before);
    }
    let turn = demo(
        &fx.repo,
        &fx.env(Some("2")),
        ARGS,
        "ABC-7 [demo:fail-once] [demo:sleep=0]",
    );
    assert_eq!(turn.code, 0);
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded);
    assert_ne!(fx.head().0, before);
}

#[test]
fn mentions_a_pull_request_when_asked() {
    let fx = Fixture::new();
    let env = DemoEnv {
        issue: Some("DEMO-42".into()),
        ..fx.env(None)
    };
    let turn = demo(&fx.repo, &env, ARGS, "Work on ABC-7 [demo:pr] [demo:sleep=0]");
    assert_eq!(
        turn.outcome.pr_url.as_deref(),
        Some("https://github.com/example/demo/pull/42")
    );
    assert_eq!(turn.count(LogEventKind::Pr), 1);
    // The environment's identifier wins over the prompt's.
    assert!(fx.notes().contains("- DEMO-42:"));
}

#[test]
fn spams_the_asked_number_of_messages_before_the_work() {
    let fx = Fixture::new();
    let turn = demo(
        &fx.repo,
        &fx.env(None),
        ARGS,
        "Work on ABC-7 [demo:spam=250] [demo:sleep=0]",
    );
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded);
    let spam: Vec<&IssueLogEntry> = turn.entries.iter().filter(|e| e.message.starts_with("spam ")).collect();
    assert_eq!(spam.len(), 250);
    assert!(spam[0].message.starts_with("spam 1 of 250:"));
    assert!(spam[249].message.starts_with("spam 250 of 250:"));
    assert!(fx.notes().contains("ABC-7"), "the work is still done");
}

#[test]
fn fails_outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let env = DemoEnv {
        log_dir: Some(dir.path().join("logs")),
        ..DemoEnv::default()
    };
    let work = dir.path().join("plain");
    std::fs::create_dir(&work).unwrap();
    let turn = demo(&work, &env, ARGS, "ABC-7 [demo:sleep=0]");
    assert_eq!(turn.code, 1);
    assert_eq!(turn.outcome.status, OutcomeStatus::Failed);
    assert!(
        turn.outcome
            .error
            .as_deref()
            .unwrap()
            .starts_with("I could not commit the note for ABC-7"),
        "{:?}",
        turn.outcome.error
    );
    assert_eq!(turn.count(LogEventKind::Warn), 2, "status and commit failed");
}

#[test]
fn paces_its_steps() {
    let fx = Fixture::new();
    let started = Instant::now();
    let turn = demo(&fx.repo, &fx.env(None), ARGS, "ABC-7 [demo:sleep=2]");
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded);
    // Six pauses of 200 ms; only the lower bound is certain on a busy machine.
    assert!(started.elapsed().as_millis() >= 1200, "{:?}", started.elapsed());
}

#[test]
fn reads_claude_flags_and_ignores_the_rest() {
    let args: Vec<String> = [
        "itervox-worker",
        "demo-agent",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "x",
        "--resume",
        "abc-123",
        "--dangerously-skip-permissions",
        "--brand-new-flag",
    ]
    .map(String::from)
    .to_vec();
    let flags = parse_flags(&args);
    assert_eq!(flags.resume.as_deref(), Some("abc-123"));
    assert_eq!(flags.permission_mode, "bypassPermissions");
    let flags = parse_flags(&["--permission-mode".into(), "acceptEdits".into(), "--resume=s-2".into()]);
    assert_eq!(
        (flags.resume.as_deref(), flags.permission_mode.as_str()),
        (Some("s-2"), "acceptEdits")
    );
    assert_eq!(parse_flags(&[]).resume, None);
}
