//! Tests for config/load.rs: every key read into `Config`, defaults, `$VAR` and `~` expansion, path
//! resolution, and the message (file, line, column, key) of each kind of error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use itervox_protocol::api::ModelOption;
use itervox_protocol::worker::{Backend, PermissionMode};

use super::*;
use crate::config::{AgentMode, Config, DispatchStrategy, HostKeyPolicy, Profile, TrackerKind};

const FILE: &str = "/srv/proj/WORKFLOW.md";

fn env_from(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| vars.get(name).cloned()
}

fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Workflow, ConfigError> {
    let env = env_from(vars);
    parse_workflow(Path::new(FILE), text, &env)
}

fn parse(text: &str) -> Result<Workflow, ConfigError> {
    parse_with(text, &[("HOME", "/home/tester")])
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const FULL: &str = r#"---
# Every key, set away from its default.
tracker:
  kind: linear
  api_key: $LINEAR_API_KEY
  project_slug: web
  endpoint: http://127.0.0.1:9999/graphql
  issues_dir: issues
  active_states: [Ready, "In Progress"]
  terminal_states:
    - Done
    - Won't Do
  backlog_states: []
  working_state: Doing
  completion_state: In Review
  failed_state: Blocked
  project_filter: [web, api]
polling:
  interval_ms: 5000
  rate_limit_reserve_percent: 0
agent:
  command: codex --model o3
  backend: codex
  agent_mode: teams
  max_concurrent_agents: 4
  max_concurrent_agents_by_state:
    "In Progress": 2
    Review: 1
    Broken: zero
    Negative: -1
  max_turns: 7
  turn_timeout_ms: 60000
  read_timeout_ms: 1000
  stall_timeout_ms: -1
  max_retries: 0
  max_retry_backoff_ms: 1000
  inline_input: true
  ssh_hosts: ["build1", "me@build2:2222"]
  ssh_host_descriptions:
    build1: The big one
  dispatch_strategy: least-loaded
  max_concurrent_agents_per_host: 2
  profiles:
    review:
      command: claude --model opus
      prompt: "Review {{ issue.identifier }}"
      backend: claude
      permission_mode: sandbox
    quick:
      command: $QUICK_AGENT
      enabled: false
  reviewer_profile: review
  auto_review: true
  available_models:
    claude:
      - {id: opus, label: Opus}
      - sonnet
  permission_mode: sandbox
  future_key: kept and ignored
ssh:
  user: builder
  identity_file: ~/.ssh/builder
  identity_passphrase_env: KEY_PASS
  known_hosts: keys/known_hosts
  strict_host_key_checking: "yes"
  connect_timeout_ms: 3000
  keepalive_interval_ms: 4000
  host_lost_after_ms: 5000
  worker_path: /opt/itervox/itervox-worker
  install_worker: true
workspace:
  root: ws
  repo: git@github.com:acme/web.git
  base_branch: develop
  auto_clear: true
hooks:
  after_create: make deps
  before_run: ""
  timeout_ms: 1000
server:
  host: 0.0.0.0
  port: 0
  allow_unauthenticated: true
unknown_section:
  anything: [1, 2]
---
Work on {{ issue.identifier }}.
"#;

#[test]
fn every_key_is_read() {
    let wf = parse_with(
        FULL,
        &[
            ("HOME", "/home/tester"),
            ("LINEAR_API_KEY", "lin_123"),
            ("QUICK_AGENT", "claude"),
        ],
    )
    .unwrap();
    assert_eq!(wf.path, PathBuf::from(FILE));
    assert_eq!(wf.prompt_template, "Work on {{ issue.identifier }}.\n");
    assert_eq!(wf.content_hash, crate::config::content_hash(FULL.as_bytes()));
    let c = wf.config;

    let t = &c.tracker;
    assert_eq!(t.kind, TrackerKind::Linear);
    assert_eq!(t.api_key.as_deref(), Some("lin_123"));
    assert_eq!(t.project_slug, "web");
    assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:9999/graphql"));
    assert_eq!(t.issues_dir, PathBuf::from("/srv/proj/issues"));
    assert_eq!(t.active_states, ["Ready", "In Progress"]);
    assert_eq!(t.terminal_states, ["Done", "Won't Do"]);
    assert!(t.backlog_states.is_empty());
    assert_eq!(t.working_state.as_deref(), Some("Doing"));
    assert_eq!(t.completion_state.as_deref(), Some("In Review"));
    assert_eq!(t.failed_state.as_deref(), Some("Blocked"));
    assert_eq!(t.project_filter, Some(vec!["web".to_string(), "api".to_string()]));

    assert_eq!(c.polling.interval_ms, 5000);
    assert_eq!(c.polling.rate_limit_reserve_percent, 0);

    let a = &c.agent;
    assert_eq!(a.command, "codex --model o3");
    assert_eq!(a.backend, Some(Backend::Codex));
    assert_eq!(a.agent_mode, AgentMode::Teams);
    assert_eq!(a.max_concurrent_agents, 4);
    assert_eq!(
        a.max_concurrent_agents_by_state,
        BTreeMap::from([("in progress".to_string(), 2), ("review".to_string(), 1)]),
        "keys lower-cased, invalid entries ignored"
    );
    assert_eq!(a.max_turns, 7);
    assert_eq!(a.turn_timeout_ms, 60_000);
    assert_eq!(a.read_timeout_ms, 1000);
    assert_eq!(a.stall_timeout_ms, -1);
    assert_eq!(a.max_retries, 0);
    assert_eq!(a.max_retry_backoff_ms, 1000);
    assert!(a.inline_input);
    assert_eq!(a.ssh_hosts, ["build1", "me@build2:2222"]);
    assert_eq!(a.ssh_host_descriptions["build1"], "The big one");
    assert_eq!(a.dispatch_strategy, DispatchStrategy::LeastLoaded);
    assert_eq!(a.max_concurrent_agents_per_host, 2);
    assert_eq!(
        a.profiles["review"],
        Profile {
            command: "claude --model opus".into(),
            prompt: Some("Review {{ issue.identifier }}".into()),
            backend: Some(Backend::Claude),
            enabled: true,
            permission_mode: Some(PermissionMode::Sandbox),
        }
    );
    assert_eq!(
        a.profiles["quick"],
        Profile {
            command: "claude".into(),
            prompt: None,
            backend: None,
            enabled: false,
            permission_mode: None,
        }
    );
    assert_eq!(a.reviewer_profile.as_deref(), Some("review"));
    assert!(a.auto_review);
    assert_eq!(
        a.available_models["claude"],
        [
            ModelOption {
                id: "opus".into(),
                label: "Opus".into()
            },
            ModelOption {
                id: "sonnet".into(),
                label: "sonnet".into()
            }
        ]
    );
    assert_eq!(a.permission_mode, PermissionMode::Sandbox);

    let s = &c.ssh;
    assert_eq!(s.user.as_deref(), Some("builder"));
    assert_eq!(s.identity_file, Some(PathBuf::from("/home/tester/.ssh/builder")));
    assert_eq!(s.identity_passphrase_env.as_deref(), Some("KEY_PASS"));
    assert_eq!(s.known_hosts, PathBuf::from("/srv/proj/keys/known_hosts"));
    assert_eq!(s.strict_host_key_checking, HostKeyPolicy::Yes);
    assert_eq!(
        (s.connect_timeout_ms, s.keepalive_interval_ms, s.host_lost_after_ms),
        (3000, 4000, 5000)
    );
    assert_eq!(s.worker_path, "/opt/itervox/itervox-worker");
    assert!(s.install_worker);

    assert_eq!(c.workspace.root, "/srv/proj/ws");
    assert_eq!(c.workspace.repo, "git@github.com:acme/web.git");
    assert_eq!(c.workspace.base_branch, "develop");
    assert!(c.workspace.auto_clear);

    assert_eq!(c.hooks.after_create.as_deref(), Some("make deps"));
    assert_eq!(c.hooks.before_run, None);
    assert_eq!(c.hooks.timeout_ms, 1000);

    assert_eq!(c.server.host, "0.0.0.0");
    assert_eq!(c.server.port, 0);
    assert!(c.server.allow_unauthenticated);
}

#[test]
fn an_empty_front_matter_is_all_defaults_with_paths_resolved() {
    let wf = parse("---\n---\n").unwrap();
    let d = Config::default();
    let c = &wf.config;
    assert_eq!(c.tracker.kind, TrackerKind::Local);
    assert_eq!(c.tracker.project_slug, "ITX", "the local tracker's identifier prefix");
    assert_eq!(c.tracker.issues_dir, PathBuf::from("/srv/proj/.itervox/issues"));
    assert_eq!(c.tracker.active_states, d.tracker.active_states);
    assert_eq!(c.tracker.terminal_states, d.tracker.terminal_states);
    assert_eq!(c.tracker.working_state.as_deref(), Some("In Progress"));
    assert_eq!(c.polling, d.polling);
    assert_eq!(c.agent, d.agent);
    assert_eq!(c.ssh.identity_file, Some(PathBuf::from("/home/tester/.ssh/id_ed25519")));
    assert_eq!(c.ssh.known_hosts, PathBuf::from("/home/tester/.ssh/known_hosts"));
    assert_eq!(
        c.workspace.root, "~/.itervox/workspaces",
        "expanded by the worker on each host"
    );
    assert_eq!(c.workspace.repo, "", "no git repository holds /srv/proj");
    assert_eq!(c.hooks, d.hooks);
    assert_eq!(c.server, d.server);
    assert_eq!(wf.prompt_template, "");
    let prompt = wf.prompt_for(None).unwrap();
    assert_eq!(prompt.source(), crate::config::template::default_prompt());
}

#[test]
fn null_values_mean_the_default_and_empty_strings_mean_none() {
    let wf = parse(
        "---\ntracker:\n  working_state:\n  completion_state: \"\"\n  endpoint: ''\nagent:\n  max_turns: ~\n  backend: \"\"\nssh:\n  use_agent: true\n---\n",
    )
    .unwrap();
    assert_eq!(wf.config.tracker.working_state.as_deref(), Some("In Progress"));
    assert_eq!(wf.config.tracker.completion_state, None);
    assert_eq!(wf.config.tracker.endpoint, None);
    assert_eq!(wf.config.agent.max_turns, 20);
    assert_eq!(wf.config.agent.backend, None);
    assert_eq!(wf.config.ssh.identity_file, None, "use_agent without identity_file");
}

#[test]
fn env_references_are_expanded_anywhere() {
    let text =
        "---\nagent:\n  command: $AGENT\n  max_turns: $TURNS\n  inline_input: $INLINE\n  ssh_hosts: [$HOST]\n---\n";
    let wf = parse_with(
        text,
        &[
            ("AGENT", "codex"),
            ("TURNS", "12"),
            ("INLINE", "true"),
            ("HOST", "b1:22"),
        ],
    )
    .unwrap();
    assert_eq!(wf.config.agent.command, "codex");
    assert_eq!(wf.config.agent.max_turns, 12);
    assert!(wf.config.agent.inline_input);
    assert_eq!(wf.config.agent.ssh_hosts, ["b1:22"]);
    // Only a scalar that is exactly `$NAME` is a reference.
    let wf = parse("---\nagent:\n  command: run $AGENT now\n---\n").unwrap();
    assert_eq!(wf.config.agent.command, "run $AGENT now");
}

#[test]
fn tokens_come_from_the_named_variable_or_the_conventional_one() {
    let linear = "---\ntracker:\n  kind: linear\n  api_key: $MY_KEY\n---\n";
    let wf = parse_with(linear, &[("MY_KEY", " k1 ")]).unwrap();
    assert_eq!(wf.config.tracker.api_key.as_deref(), Some("k1"));
    // No api_key at all: LINEAR_API_KEY is used.
    let wf = parse_with("---\ntracker:\n  kind: linear\n---\n", &[("LINEAR_API_KEY", "k2")]).unwrap();
    assert_eq!(wf.config.tracker.api_key.as_deref(), Some("k2"));
    let gh = "---\ntracker:\n  kind: github\n  project_slug: acme/web\n---\n";
    let wf = parse_with(gh, &[("GITHUB_TOKEN", "ghp")]).unwrap();
    assert_eq!(wf.config.tracker.api_key.as_deref(), Some("ghp"));
}

#[test]
fn error_messages_name_file_line_column_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "no front matter\n",
            "/srv/proj/WORKFLOW.md:1:1: front matter is required: the file must start with a `---` line, then the \
             YAML settings, a closing `---` line, and then the prompt template",
        ),
        (
            "---\ntracker:\n  kind: local\n",
            "/srv/proj/WORKFLOW.md:1:1: the front matter opened by the first `---` line is never closed: add a `---` \
             line after the settings",
        ),
        (
            "---\ntracker:\n  active_states: [Todo\n---\n",
            "/srv/proj/WORKFLOW.md:4:1: invalid YAML in the front matter: did not find expected ',' or ']' at line 4 \
             column 1, while parsing a flow sequence at line 3 column 18",
        ),
        (
            "---\n- a\n- b\n---\n",
            "/srv/proj/WORKFLOW.md:2:1: the front matter must be a map of settings (`key: value` lines), got a list",
        ),
        (
            "---\n# c\ntracker:\n  kind: jira\n---\n",
            "/srv/proj/WORKFLOW.md:4:9: tracker.kind: unsupported tracker \"jira\" (expected local, memory, linear or \
             github)",
        ),
        (
            "---\nagent:\n  max_turns: ten\n---\n",
            "/srv/proj/WORKFLOW.md:3:14: agent.max_turns: expected a positive integer, got \"ten\"",
        ),
        (
            "---\nagent:\n  max_retries: -1\n---\n",
            "/srv/proj/WORKFLOW.md:3:16: agent.max_retries: expected a non-negative integer, got -1",
        ),
        (
            "---\nagent:\n  max_concurrent_agents: 2.5\n---\n",
            "/srv/proj/WORKFLOW.md:3:26: agent.max_concurrent_agents: expected a positive integer, got 2.5",
        ),
        (
            "---\nagent:\n  max_concurrent_agents: 0\n---\n",
            "/srv/proj/WORKFLOW.md:3:26: agent.max_concurrent_agents: must be at least 1, got 0",
        ),
        (
            "---\nserver:\n  port: 70000\n---\n",
            "/srv/proj/WORKFLOW.md:3:9: server.port: must be at most 65535, got 70000",
        ),
        (
            "---\nagent:\n  inline_input: maybe\n---\n",
            "/srv/proj/WORKFLOW.md:3:17: agent.inline_input: expected true or false, got \"maybe\"",
        ),
        (
            "---\nagent:\n  command: [claude]\n---\n",
            "/srv/proj/WORKFLOW.md:3:12: agent.command: expected a string, got a list",
        ),
        (
            "---\nagent: 5\n---\n",
            "/srv/proj/WORKFLOW.md:2:8: agent: expected a map of settings, got 5",
        ),
        (
            "---\ntracker:\n  active_states: {a: 1}\n---\n",
            "/srv/proj/WORKFLOW.md:3:18: tracker.active_states: expected a list of strings, got a map",
        ),
        (
            "---\nagent:\n  dispatch_strategy: fastest\n---\n",
            "/srv/proj/WORKFLOW.md:3:22: agent.dispatch_strategy: expected one of round-robin, least-loaded; got \
             \"fastest\"",
        ),
        (
            "---\nagent:\n  agent_mode: duo\n---\n",
            "/srv/proj/WORKFLOW.md:3:15: agent.agent_mode: expected one of solo, subagents, teams; got \"duo\"",
        ),
        (
            "---\nagent:\n  backend: gpt\n---\n",
            "/srv/proj/WORKFLOW.md:3:12: agent.backend: expected one of claude, codex, demo; got \"gpt\"",
        ),
        (
            "---\nssh:\n  strict_host_key_checking: ask\n---\n",
            "/srv/proj/WORKFLOW.md:3:29: ssh.strict_host_key_checking: expected one of yes, accept-new, no; got \
             \"ask\"",
        ),
        (
            "---\nagent:\n  permission_mode: root\n---\n",
            "/srv/proj/WORKFLOW.md:3:20: agent.permission_mode: expected one of bypass, sandbox; got \"root\"",
        ),
        (
            "---\nagent:\n  profiles:\n    fast:\n      command: codex\n      permission_mode: yolo\n---\n",
            "/srv/proj/WORKFLOW.md:6:24: agent.profiles.fast.permission_mode: expected one of bypass, sandbox; got \
             \"yolo\"",
        ),
        (
            "---\nagent:\n  profiles:\n    fast:\n      backend: codex\n---\n",
            "/srv/proj/WORKFLOW.md:4:5: agent.profiles.fast.command: a profile needs a command (the agent CLI to run)",
        ),
        (
            "---\nagent:\n  ssh_hosts:\n    - good\n    - bad host\n---\n",
            "/srv/proj/WORKFLOW.md:3:3: agent.ssh_hosts[1]: expected `[user@]host[:port]`, got \"bad host\" (contains \
             whitespace)",
        ),
        (
            "---\ntracker:\n  kind: linear\n  api_key: $LINEAR_API_KEY\n---\n",
            "/srv/proj/WORKFLOW.md:4:12: tracker.api_key: the linear tracker needs an API key, but $LINEAR_API_KEY \
             (named by the file) is empty or unset",
        ),
        (
            "---\ntracker:\n  kind: linear\n---\n",
            "/srv/proj/WORKFLOW.md:2:1: tracker.api_key: the linear tracker needs an API key: write `api_key: \
             $LINEAR_API_KEY` under `tracker:` and set LINEAR_API_KEY in the environment",
        ),
        (
            "---\ntracker:\n  kind: github\n  api_key: token\n---\n",
            "/srv/proj/WORKFLOW.md:2:1: tracker.project_slug: the github tracker needs the repository as \
             `owner/repo`, got \"\"",
        ),
        (
            "---\ntracker:\n  kind: github\n  api_key: token\n  project_slug: acme\n---\n",
            "/srv/proj/WORKFLOW.md:5:17: tracker.project_slug: the github tracker needs the repository as \
             `owner/repo`, got \"acme\"",
        ),
        (
            "---\ntracker:\n  kind: local\n---\nHello\n{{ issue.title | shout }}\n",
            "/srv/proj/WORKFLOW.md:6:16: prompt: invalid Liquid template: unknown filter `shout`",
        ),
        (
            "---\nagent:\n  profiles:\n    r:\n      command: claude\n      prompt: \"{{ issue.nope }}\"\n---\n",
            "/srv/proj/WORKFLOW.md:6:15: agent.profiles.r.prompt: invalid Liquid template: line 1, column 4: unknown \
             variable `issue.nope` (issue has: id, identifier, title, description, state, priority, labels, url, \
             branch_name, blocked_by, comments, created_at, updated_at)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&error(text), expected, "for:\n{text}");
    }
}

#[test]
fn a_profile_prompt_replaces_the_body() {
    let text = "---\nagent:\n  profiles:\n    r:\n      command: claude\n      prompt: \"Review {{ issue.identifier }}\"\n    plain:\n      command: codex\n---\nBody {{ issue.identifier }}\n";
    let wf = parse(text).unwrap();
    let issue = crate::tracker::Issue {
        identifier: "ITX-7".into(),
        ..Default::default()
    };
    let render = |profile: Option<&str>| wf.prompt_for(profile).unwrap().render(&issue, None).unwrap();
    assert_eq!(render(Some("r")), "Review ITX-7");
    assert_eq!(
        render(Some("plain")),
        "Body ITX-7\n",
        "a profile without a prompt uses the body"
    );
    assert_eq!(render(Some("unknown")), "Body ITX-7\n");
    assert_eq!(render(None), "Body ITX-7\n");
}

#[test]
fn env_values_are_named_in_errors() {
    let text = "---\nagent:\n  max_turns: $TURNS\n---\n";
    let e = parse_with(text, &[("TURNS", "ten")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/proj/WORKFLOW.md:3:14: agent.max_turns: expected a positive integer, got \"ten\" (from $TURNS)"
    );
    assert_eq!(e.key(), Some("agent.max_turns"));
    assert_eq!(e.location(), Some(Location { line: 3, column: 14 }));
}

#[test]
fn merge_keys_and_anchors_are_resolved() {
    let text = "---\nagent:\n  profiles:\n    base: &base\n      command: claude\n      backend: claude\n    fast:\n      <<: *base\n      command: claude --fast\n---\n";
    let wf = parse(text).unwrap();
    let fast = &wf.config.agent.profiles["fast"];
    assert_eq!(fast.command, "claude --fast");
    assert_eq!(fast.backend, Some(Backend::Claude));
}

#[test]
fn crlf_files_and_bodies_are_kept_as_written() {
    let text = "---\r\nagent:\r\n  max_turns: 3\r\n---\r\n\r\n  Body line\r\n\r\n";
    let wf = parse(text).unwrap();
    assert_eq!(wf.config.agent.max_turns, 3);
    assert_eq!(wf.prompt_template, "\r\n  Body line\r\n\r\n");
}

#[test]
fn missing_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("WORKFLOW.md");
    assert_eq!(
        load_workflow(&missing),
        Err(ConfigError::Missing { path: missing.clone() })
    );
    std::fs::write(&missing, b"---\n\xff\n---\n").unwrap();
    let e = load_workflow(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Unreadable { .. }), "{e}");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn workspace_repo_defaults_to_the_git_repository_holding_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    git(&top, &["init", "-q"]);
    let sub = top.join("ops");
    std::fs::create_dir(&sub).unwrap();
    let file = sub.join("WORKFLOW.md");
    std::fs::write(&file, "---\nworkspace:\n  root: ../ws\n---\n").unwrap();
    let wf = load_workflow(&file).unwrap();
    assert_eq!(wf.config.workspace.repo, top.to_string_lossy());
    assert_eq!(wf.config.workspace.root, top.join("ws").to_string_lossy());
    // A relative repo path resolves against the file's folder; URLs and absolute paths stay.
    std::fs::write(&file, "---\nworkspace:\n  repo: ../other\n---\n").unwrap();
    assert_eq!(
        load_workflow(&file).unwrap().config.workspace.repo,
        top.join("other").to_string_lossy()
    );
    std::fs::write(&file, "---\nworkspace:\n  repo: https://example.invalid/r.git\n---\n").unwrap();
    assert_eq!(
        load_workflow(&file).unwrap().config.workspace.repo,
        "https://example.invalid/r.git"
    );
}

#[test]
fn the_repository_example_workflow_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../WORKFLOW.md");
    let wf = load_workflow(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wf.config.tracker.kind, TrackerKind::Local);
    assert!(wf.config.tracker.issues_dir.ends_with(".itervox/issues"));
    assert!(wf.config.tracker.issues_dir.is_absolute());
    assert!(!wf.prompt_template.trim().is_empty());
    // The example spells out the keys a user is most likely to change; those it leaves at their
    // defaults must read back as the defaults (the comments next to them say so).
    let c = &wf.config;
    assert_eq!(c.polling.rate_limit_reserve_percent, 10);
    assert_eq!(c.agent.max_retry_backoff_ms, 300_000);
    assert_eq!(c.agent.stall_timeout_ms, 300_000);
    assert_eq!(c.agent.max_concurrent_agents_per_host, 0);
    assert!(c.agent.max_concurrent_agents_by_state.is_empty());
    assert!(c.agent.profiles.is_empty());
    assert_eq!(
        (c.agent.reviewer_profile.as_deref(), c.agent.auto_review),
        (None, false)
    );
    assert!(!c.agent.inline_input);
    assert_eq!(c.hooks, crate::config::HooksConfig::default());
    let ssh = crate::config::SshConfig::default();
    assert_eq!(c.ssh.user, None);
    assert_eq!(c.ssh.strict_host_key_checking, HostKeyPolicy::AcceptNew);
    assert_eq!(
        (
            c.ssh.connect_timeout_ms,
            c.ssh.keepalive_interval_ms,
            c.ssh.host_lost_after_ms
        ),
        (
            ssh.connect_timeout_ms,
            ssh.keepalive_interval_ms,
            ssh.host_lost_after_ms
        )
    );
    assert_eq!(
        (c.ssh.worker_path.as_str(), c.ssh.install_worker),
        ("itervox-worker", false)
    );
    assert!(!c.server.allow_unauthenticated);
    let template = wf.prompt_for(None).unwrap();
    let bare = crate::tracker::Issue {
        id: "ITX-1".into(),
        identifier: "ITX-1".into(),
        title: "Add a health check".into(),
        state: "Todo".into(),
        ..Default::default()
    };
    assert_eq!(
        template.render(&bare, None).unwrap(),
        "You are working on ITX-1: Add a health check\n\n## How to work\n\n\
         - You are in a git worktree on branch the issue's branch.\n\
         - Make the change the issue asks for, add or update tests, and run them.\n\
         - Commit your work with messages that say why; do not push and do not merge.\n\
         - End with a short summary of what you changed and anything left to do.\n"
    );
    let full = crate::tracker::Issue {
        description: Some("GET /health should answer 200.".into()),
        labels: vec!["api".into(), "small".into()],
        branch_name: Some("itx-1-health".into()),
        comments: vec![crate::tracker::Comment {
            id: "c1".into(),
            author: "ana".into(),
            body: "Include the version.".into(),
            created_at: None,
        }],
        ..bare
    };
    let prompt = template.render(&full, Some(2)).unwrap();
    assert!(
        prompt.starts_with(
            "You are working on ITX-1: Add a health check\n\nThis is attempt 2. Earlier attempts did not finish"
        ),
        "{prompt}"
    );
    for part in [
        "\n\n## The issue\n\nGET /health should answer 200.\n\nLabels: api, small\n\n",
        "## Discussion so far\n\n- ana: Include the version.\n\n## How to work\n",
        "on branch itx-1-health.\n",
    ] {
        assert!(prompt.contains(part), "{part:?} missing from:\n{prompt}");
    }
}
