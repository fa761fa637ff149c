//! The real Claude Code and Codex CLIs (the versions `scripts/test.sh` pins and installs) started with the
//! worker's own command lines, in a temporary git repository, against the fake model APIs on loopback,
//! with their output parsed by the worker's parsers: a tool-using session changes a file, a second turn
//! resumes the session, the needs-input sentinel, a background subagent (and its sublog), rate limits.
//!
//! Each CLI runs as the worker would start it, with a cleared environment plus `PATH` and the request's
//! variables (an isolated `HOME`/`CODEX_HOME` and the fake's address), in its own process group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use itervox_protocol::worker::{Backend, PermissionMode};
use itervox_protocol::{IssueLogEntry, LogEventKind};
use itervox_tests::fake_anthropic::FakeAnthropic;
use itervox_tests::fake_openai::FakeOpenAi;
use itervox_worker::agent::{
    AgentCommand, AgentEvent, LaunchHost, OutcomeStatus, TurnOutcome, TurnRequest, TurnSummary, build_command_on,
    parser_for,
};
use itervox_worker::sublogs::{self, SublogSources};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Generous: the machine is shared, and a rate-limited Claude turn waits for two retries.
const TURN_TIMEOUT: Duration = Duration::from_secs(180);

fn cli_dir() -> PathBuf {
    match std::env::var_os("ITERVOX_AGENT_CLI_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/itervox-agent-clis"),
    }
}

/// The installed CLI `name`; fails (never skips) when it is missing.
fn cli(name: &str) -> PathBuf {
    let path = cli_dir().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "the pinned `{name}` CLI is not installed at {}: run scripts/test.sh, which installs \
         @anthropic-ai/claude-code@2.1.332 and @openai/codex@0.171.0 into $ITERVOX_AGENT_CLI_DIR \
         (default ~/.cache/itervox-agent-clis)",
        path.display()
    );
    path
}

/// A throwaway repository, home and log folder.
struct Scratch {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
    log_dir: PathBuf,
    tmp: PathBuf,
}

fn git(repo: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let repo = root.join("worktrees/ABC-1");
    let home = root.join("home");
    let log_dir = root.join("logs/ABC-1");
    let tmp = root.join("tmp");
    for d in [&repo, &home, &log_dir, &tmp] {
        std::fs::create_dir_all(d).unwrap();
    }
    git(&repo, &["init", "-q"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    Scratch {
        _dir: dir,
        repo,
        home,
        log_dir,
        tmp,
    }
}

/// What one turn printed and how it ended.
struct Turn {
    entries: Vec<IssueLogEntry>,
    turns: Vec<TurnSummary>,
    outcome: TurnOutcome,
    stderr: String,
    command: AgentCommand,
}

impl Turn {
    fn of(&self, kind: LogEventKind) -> Vec<&IssueLogEntry> {
        self.entries.iter().filter(|e| e.event == kind).collect()
    }

    fn explain(&self) -> String {
        format!(
            "outcome {:?}\nentries {:#?}\nstderr {}\ncommand {:?}",
            self.outcome, self.entries, self.stderr, self.command
        )
    }
}

fn host() -> LaunchHost {
    LaunchHost {
        login_shell: Some(PathBuf::from("/bin/sh")),
        is_root: LaunchHost::current().is_root,
    }
}

/// Builds the turn's command with the worker's code and runs it like the supervisor would.
async fn run_turn(req: &TurnRequest<'_>) -> Turn {
    let command = build_command_on(req, &host()).expect("command builds");
    let mut child = tokio::process::Command::new(&command.program)
        .args(&command.args)
        .current_dir(&command.cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&command.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.program));
    let pid = child.id().expect("pid") as i32;
    let mut stdin = child.stdin.take().unwrap();
    let prompt = command.stdin.clone();
    tokio::spawn(async move {
        let _ = stdin.write_all(&prompt).await;
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut parser = parser_for(req.backend);
    let mut events = Vec::new();
    let finished = tokio::time::timeout(TURN_TIMEOUT, async {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = stdout.read_until(b'\n', &mut line).await.expect("read stdout");
            if n == 0 {
                break;
            }
            let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
            events.extend(parser.feed_line(trimmed, Utc::now()));
        }
        child.wait().await.expect("wait")
    })
    .await;
    let Ok(status) = finished else {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        panic!("{:?} did not finish within {TURN_TIMEOUT:?}", command.program);
    };
    let (tail, outcome) = parser.finish(status.code(), Utc::now());
    events.extend(tail);
    let mut turn = Turn {
        entries: Vec::new(),
        turns: Vec::new(),
        outcome,
        stderr: stderr_task.await.unwrap_or_default(),
        command,
    };
    for event in events {
        match event {
            AgentEvent::Log(entry) => turn.entries.push(entry),
            AgentEvent::TurnEnd(summary) => turn.turns.push(summary),
        }
    }
    turn
}

/// The controller's extra environment for a Claude session against `fake`.
fn claude_env(s: &Scratch, fake: &FakeAnthropic) -> BTreeMap<String, String> {
    [
        ("HOME", s.home.display().to_string()),
        ("LANG", "C.UTF-8".into()),
        ("ANTHROPIC_BASE_URL", fake.base_url()),
        ("ANTHROPIC_API_KEY", "sk-test".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("CLAUDE_CODE_TMPDIR", s.tmp.display().to_string()),
        ("CLAUDE_CODE_MAX_RETRIES", "2".into()),
        ("ITERVOX_ISSUE_IDENTIFIER", "ABC-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn request<'a>(
    backend: Backend,
    command: &'a str,
    prompt: &'a str,
    resume: Option<&'a str>,
    mode: PermissionMode,
    s: &'a Scratch,
    env: &'a BTreeMap<String, String>,
) -> TurnRequest<'a> {
    TurnRequest {
        backend,
        command,
        prompt,
        resume_ref: resume,
        permission_mode: mode,
        workspace: &s.repo,
        env,
        log_dir: &s.log_dir,
        self_exe: Path::new("/nonexistent/itervox-worker"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_tool_session_changes_a_file_and_resumes() {
    let claude = cli("claude").display().to_string();
    let s = scratch();
    let fake = FakeAnthropic::start().await.unwrap();
    let env = claude_env(&s, &fake);
    let prompt = "[[fake:bash]] Create hello.txt containing hello.";
    let req = request(Backend::Claude, &claude, prompt, None, PermissionMode::Bypass, &s, &env);
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{}", turn.explain());
    assert_eq!(std::fs::read_to_string(s.repo.join("hello.txt")).unwrap(), "hello\n");
    let actions = turn.of(LogEventKind::Action);
    assert_eq!(actions.len(), 2, "{}", turn.explain());
    assert_eq!(
        (actions[0].tool.as_deref(), actions[0].message.as_str()),
        (Some("Bash"), "echo hello > hello.txt")
    );
    assert!(actions[1].detail.as_deref().unwrap().contains("\"exit_code\":0"));
    let [summary] = turn.turns.as_slice() else {
        panic!("{}", turn.explain())
    };
    assert!(summary.input_tokens > 0 && summary.output_tokens > 0);
    assert_eq!((summary.tool_calls, summary.result_text.as_deref()), (1, Some("Done.")));
    let session = turn.outcome.agent_session_ref.clone().expect("session id");
    // Running as root needs IS_SANDBOX for --dangerously-skip-permissions.
    assert_eq!(turn.command.env.contains_key("IS_SANDBOX"), host().is_root);
    let first_requests = fake.message_requests().len();
    assert_eq!(first_requests, 2, "tool call, then the answer");

    let prompt = "[[fake:resume]] What did you just do?";
    let req = request(
        Backend::Claude,
        &claude,
        prompt,
        Some(&session),
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{}", turn.explain());
    assert_eq!(turn.outcome.agent_session_ref.as_deref(), Some(session.as_str()));
    let text = turn.turns[0].result_text.clone().unwrap();
    assert!(text.starts_with("Second turn OK"), "{text}");
    // The resumed request carried the first turn's conversation, tool call included.
    let resumed = fake.message_requests().pop().unwrap();
    let body = resumed.body.unwrap().to_string();
    assert!(body.contains("echo hello > hello.txt"), "history not resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_found_through_the_login_shell_asks_for_input() {
    let bin = cli("claude").parent().unwrap().to_path_buf();
    let s = scratch();
    // As nvm would: only the user's profile puts the CLI on PATH.
    std::fs::write(
        s.home.join(".profile"),
        format!("PATH=\"{}:$PATH\"\nexport PATH\n", bin.display()),
    )
    .unwrap();
    let fake = FakeAnthropic::start().await.unwrap();
    let env = claude_env(&s, &fake);
    let prompt = "[[fake:needs-input]] Migrate the database.";
    let req = request(
        Backend::Claude,
        "claude",
        prompt,
        None,
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.command.program, PathBuf::from("/bin/sh"));
    assert_eq!(turn.outcome.status, OutcomeStatus::InputRequired, "{}", turn.explain());
    assert_eq!(
        turn.outcome.question.as_deref(),
        Some("I need a decision before I continue: should the migration target PostgreSQL or SQLite?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_background_subagent_and_its_sublog() {
    let claude = cli("claude").display().to_string();
    let s = scratch();
    let fake = FakeAnthropic::start().await.unwrap();
    let env = claude_env(&s, &fake);
    let req = request(
        Backend::Claude,
        &claude,
        "[[fake:task]] Do the thing.",
        None,
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{}", turn.explain());
    assert_eq!(
        std::fs::read_to_string(s.repo.join("sub.txt")).unwrap(),
        "from-subagent\n"
    );
    assert_eq!(turn.turns.len(), 2, "two init/result pairs: {}", turn.explain());
    assert_eq!(turn.outcome.turns, 2);
    let subagents = turn.of(LogEventKind::Subagent);
    assert!(
        subagents.iter().any(|e| e.message == "Write sub.txt"),
        "{}",
        turn.explain()
    );
    assert!(
        subagents.iter().any(|e| e.message.starts_with("Subagent completed")),
        "{}",
        turn.explain()
    );
    let session = turn.outcome.agent_session_ref.clone().unwrap();

    let sources = SublogSources::resolve(&s.repo, &s.log_dir, std::slice::from_ref(&session), &env);
    let entries = sublogs::read(&sources, None).unwrap();
    let agent_sessions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.session_id.as_deref())
        .filter(|id| id.starts_with("agent-"))
        .collect();
    assert!(!agent_sessions.is_empty(), "no subagent sublog: {entries:#?}");
    assert!(
        entries
            .iter()
            .any(|e| e.session_id.as_deref().is_some_and(|id| id.starts_with("agent-"))
                && e.message == "echo from-subagent > sub.txt"),
        "{entries:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.session_id.as_deref() == Some(session.as_str()))
    );
    sublogs::clear(&sources, Some(agent_sessions[0])).unwrap();
    let after = sublogs::read(&sources, None).unwrap();
    assert!(after.iter().all(|e| e.session_id.as_deref() != Some(agent_sessions[0])));
    assert!(after.iter().any(|e| e.session_id.as_deref() == Some(session.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_rate_limit_fails_rate_limited() {
    let claude = cli("claude").display().to_string();
    let s = scratch();
    let fake = FakeAnthropic::start().await.unwrap();
    let env = claude_env(&s, &fake);
    let req = request(
        Backend::Claude,
        &claude,
        "[[fake:rate-limit:1]] Say hi.",
        None,
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Failed, "{}", turn.explain());
    assert!(turn.outcome.rate_limited, "{}", turn.explain());
    assert!(turn.outcome.rate_limit_reset_at.is_some());
    assert!(
        turn.outcome.error.as_deref().unwrap().contains("429"),
        "{}",
        turn.explain()
    );
    // CLAUDE_CODE_MAX_RETRIES=2: the first request and two retries.
    assert_eq!(turn.of(LogEventKind::Warn).len(), 2, "{}", turn.explain());
    assert_eq!(fake.message_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_max_turns_from_the_configured_command_fails() {
    let claude = format!("{} --max-turns 1", cli("claude").display());
    let s = scratch();
    let fake = FakeAnthropic::start().await.unwrap();
    let env = claude_env(&s, &fake);
    let req = request(
        Backend::Claude,
        &claude,
        "[[fake:loop]] Keep going.",
        None,
        PermissionMode::Sandbox,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Failed, "{}", turn.explain());
    assert!(!turn.outcome.rate_limited);
    assert!(
        turn.outcome
            .error
            .as_deref()
            .unwrap()
            .contains("maximum number of turns"),
        "{}",
        turn.explain()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_write_tool_then_an_overloaded_api() {
    let claude = cli("claude").display().to_string();
    let s = scratch();
    let fake = FakeAnthropic::start().await.unwrap();
    let env = claude_env(&s, &fake);
    let req = request(
        Backend::Claude,
        &claude,
        "[[fake:edit]] Take notes.",
        None,
        PermissionMode::Sandbox,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{}", turn.explain());
    assert!(
        std::fs::read_to_string(s.repo.join("notes.md"))
            .unwrap()
            .contains("written by the fake model")
    );
    let actions = turn.of(LogEventKind::Action);
    assert_eq!(
        actions
            .iter()
            .map(|e| (e.tool.as_deref(), e.message.as_str()))
            .collect::<Vec<_>>(),
        [(Some("Write"), "notes.md")],
        "{}",
        turn.explain()
    );

    let req = request(
        Backend::Claude,
        &claude,
        "[[fake:overloaded]] Say hi.",
        None,
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Failed, "{}", turn.explain());
    assert!(turn.outcome.rate_limited, "an overload counts: {}", turn.explain());
    assert!(
        turn.outcome.error.as_deref().unwrap().contains("529"),
        "{}",
        turn.explain()
    );
}

fn codex_env(s: &Scratch, fake: &FakeOpenAi) -> BTreeMap<String, String> {
    let codex_home = s.home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), fake.codex_config("FAKE_OPENAI_API_KEY")).unwrap();
    [
        ("HOME", s.home.display().to_string()),
        ("CODEX_HOME", codex_home.display().to_string()),
        ("LANG", "C.UTF-8".into()),
        ("FAKE_OPENAI_API_KEY", "sk-test".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The configured command: no plugin sync, so nothing leaves the host.
fn codex_command() -> String {
    format!("{} --disable plugins --disable remote_plugin", cli("codex").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_tool_session_changes_a_file_and_resumes() {
    let codex = codex_command();
    let s = scratch();
    let fake = FakeOpenAi::start().await.unwrap();
    let env = codex_env(&s, &fake);
    let prompt = "[[fake:bash]] Create hello.txt containing hello.";
    // Sandbox mode: workspace writes are allowed.
    let req = request(Backend::Codex, &codex, prompt, None, PermissionMode::Sandbox, &s, &env);
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{}", turn.explain());
    assert_eq!(std::fs::read_to_string(s.repo.join("hello.txt")).unwrap(), "hello\n");
    let actions = turn.of(LogEventKind::Action);
    assert!(
        actions
            .iter()
            .any(|e| e.tool.as_deref() == Some("shell") && e.message == "echo hello > hello.txt"),
        "{}",
        turn.explain()
    );
    let [summary] = turn.turns.as_slice() else {
        panic!("{}", turn.explain())
    };
    assert_eq!(summary.result_text.as_deref(), Some("Done."));
    assert!(summary.input_tokens > 0);
    let thread = turn.outcome.agent_session_ref.clone().expect("thread id");

    let prompt = "[[fake:resume]] What did you do?";
    let req = request(
        Backend::Codex,
        &codex,
        prompt,
        Some(&thread),
        PermissionMode::Sandbox,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Succeeded, "{}", turn.explain());
    assert_eq!(turn.outcome.agent_session_ref.as_deref(), Some(thread.as_str()));
    let text = turn.turns[0].result_text.clone().unwrap();
    assert!(text.starts_with("Second turn OK"), "{text}");

    // The rollout of the thread is the Codex sublog.
    let sources = SublogSources::resolve(&s.repo, &s.log_dir, std::slice::from_ref(&thread), &env);
    let entries = sublogs::read(&sources, None).unwrap();
    assert!(entries.iter().all(|e| e.session_id.as_deref() == Some(thread.as_str())));
    assert!(
        entries
            .iter()
            .any(|e| e.event == LogEventKind::Action && e.message == "echo hello > hello.txt")
    );
    assert!(
        entries.iter().any(|e| e.message.starts_with("Second turn OK")),
        "{entries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_needs_input() {
    let codex = codex_command();
    let s = scratch();
    let fake = FakeOpenAi::start().await.unwrap();
    let env = codex_env(&s, &fake);
    let req = request(
        Backend::Codex,
        &codex,
        "[[fake:needs-input]] Migrate.",
        None,
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::InputRequired, "{}", turn.explain());
    assert_eq!(
        turn.outcome.question.as_deref(),
        Some("Should the migration target PostgreSQL or SQLite?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_rate_limit_fails_rate_limited() {
    let codex = codex_command();
    let s = scratch();
    let fake = FakeOpenAi::start().await.unwrap();
    let env = codex_env(&s, &fake);
    let req = request(
        Backend::Codex,
        &codex,
        "[[fake:rate-limit]] hi",
        None,
        PermissionMode::Bypass,
        &s,
        &env,
    );
    let turn = run_turn(&req).await;
    assert_eq!(turn.outcome.status, OutcomeStatus::Failed, "{}", turn.explain());
    assert!(turn.outcome.rate_limited, "{}", turn.explain());
    assert!(
        turn.outcome.error.as_deref().unwrap().contains("429"),
        "{}",
        turn.explain()
    );
    assert!(!fake.response_requests().is_empty());
}
