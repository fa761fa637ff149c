//! Tests for config/edit.rs: every settings key the API writes, byte-compared against the file with
//! only the edited lines changed; refusals (conflict, invalid, anchored, through a list); 50 parallel
//! edits; edits from two processes at once; and SIGKILL during a write loop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use yaml_serde::Value;

use super::*;
use crate::config::{AgentMode, DispatchStrategy, content_hash, load_workflow};

const FRONT: &str = r#"---
# Itervox settings, edited by hand and by the dashboard.
server:                      # listed first on purpose
  port: 8090
  host: 127.0.0.1

x-shared-hooks: &shared_hooks   # not a setting: an anchor other keys use
  timeout_ms: 45000
hooks:
  <<: *shared_hooks
  after_create: make deps

agent:
  # How many agents at once.
  max_concurrent_agents: 3   # bumped by hand
  command: claude
  agent_mode: solo
  ssh_hosts:
    # the fast one
    - build1
    - build2:2222   # slow
  ssh_host_descriptions:
    build1: "Fast box"
  dispatch_strategy: round-robin
  inline_input: false
  profiles:
    review:
      command: claude --model opus   # reviewer model
      prompt: |
        Review {{ issue.identifier }} carefully.

        Look at the tests.
    fast: {command: codex, backend: codex}
  reviewer_profile: review
  auto_review: false
  future_knob: {a: 1, b: [x, y]}   # unknown to this version, kept
tracker:
  kind: local
  active_states: [Todo, "In Progress"]   # flow list
  terminal_states:
    - Done
    - Cancelled
  backlog_states: [Backlog]
  working_state: In Progress
  completion_state: ""
  failed_state: ""
workspace:
  auto_clear: false
  root: ~/.itervox/workspaces
# trailing comment of the front matter
---
"#;

/// The fixture: the front matter above and a long prompt body with Liquid, a `---` rule, trailing
/// spaces and non-ASCII text, none of which may change.
fn fixture() -> String {
    let mut text = String::from(FRONT);
    text.push_str("You are working on {{ issue.identifier }}: {{ issue.title }}\n");
    text.push_str("{% if issue.description %}\n{{ issue.description }}\n{% endif %}\n\n---\n\n");
    for i in 0..300 {
        text.push_str(&format!(
            "Step {i}: keep `this` exactly, ünïcödé, key: value # not a comment   \n"
        ));
    }
    text.push_str("\nlast line without a newline");
    text
}

fn setup(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn assert_text_eq(got: &str, expected: &str) {
    if got == expected {
        return;
    }
    let (g, e): (Vec<&str>, Vec<&str>) = (got.split('\n').collect(), expected.split('\n').collect());
    let at = g
        .iter()
        .zip(&e)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(e.len()));
    panic!(
        "texts differ at line {}:\n got: {:?}\nwant: {:?}\n--- got around there:\n{}\n",
        at + 1,
        g.get(at),
        e.get(at),
        g[at.saturating_sub(3)..(at + 4).min(g.len())].join("\n")
    );
}

/// Applies `edits` to a fresh fixture and checks the file is the fixture with exactly `replacements`
/// made (each `(old, new)` replaces the first occurrence), byte for byte.
fn check(edits: &[Edit], replacements: &[(&str, &str)]) -> Workflow {
    let original = fixture();
    let (_dir, path) = setup(&original);
    let outcome = apply_edits(&path, edits).unwrap_or_else(|e| panic!("{edits:?}: {e}"));
    let mut expected = original.clone();
    for (old, new) in replacements {
        assert!(expected.contains(old), "fixture lacks {old:?}");
        expected = expected.replacen(old, new, 1);
    }
    let got = std::fs::read_to_string(&path).unwrap();
    assert_text_eq(&got, &expected);
    assert!(outcome.changed);
    assert_eq!(outcome.previous_hash, content_hash(original.as_bytes()));
    assert_eq!(outcome.content_hash, content_hash(got.as_bytes()));
    let reloaded = load_workflow(&path).unwrap();
    assert_eq!(reloaded.config, outcome.workflow.config);
    reloaded
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

#[test]
fn the_fixture_loads() {
    let (_dir, path) = setup(&fixture());
    let wf = load_workflow(&path).unwrap();
    assert_eq!(wf.config.hooks.timeout_ms, 45000, "merge key applied");
    assert_eq!(wf.config.agent.ssh_hosts, ["build1", "build2:2222"]);
}

#[test]
fn scalar_settings_change_only_their_value() {
    let wf = check(
        &[Edit::set(&["agent", "max_concurrent_agents"], 7)],
        &[(
            "  max_concurrent_agents: 3   # bumped by hand\n",
            "  max_concurrent_agents: 7   # bumped by hand\n",
        )],
    );
    assert_eq!(wf.config.agent.max_concurrent_agents, 7);
    let wf = check(
        &[Edit::set(&["agent", "agent_mode"], "teams")],
        &[("  agent_mode: solo\n", "  agent_mode: teams\n")],
    );
    assert_eq!(wf.config.agent.agent_mode, AgentMode::Teams);
    let wf = check(
        &[Edit::set(&["agent", "dispatch_strategy"], "least-loaded")],
        &[(
            "  dispatch_strategy: round-robin\n",
            "  dispatch_strategy: least-loaded\n",
        )],
    );
    assert_eq!(wf.config.agent.dispatch_strategy, DispatchStrategy::LeastLoaded);
    let wf = check(
        &[Edit::set(&["workspace", "auto_clear"], true)],
        &[("  auto_clear: false\n", "  auto_clear: true\n")],
    );
    assert!(wf.config.workspace.auto_clear);
    let wf = check(
        &[Edit::set(&["agent", "inline_input"], true)],
        &[("  inline_input: false\n", "  inline_input: true\n")],
    );
    assert!(wf.config.agent.inline_input);
    let wf = check(
        &[Edit::set(&["agent", "reviewer_profile"], "fast")],
        &[("  reviewer_profile: review\n", "  reviewer_profile: fast\n")],
    );
    assert_eq!(wf.config.agent.reviewer_profile.as_deref(), Some("fast"));
    let wf = check(
        &[Edit::set(&["agent", "auto_review"], true)],
        &[("  auto_review: false\n", "  auto_review: true\n")],
    );
    assert!(wf.config.agent.auto_review);
}

#[test]
fn tracker_states_keep_the_style_they_were_written_in() {
    let wf = check(
        &[Edit::set(
            &["tracker", "active_states"],
            string_list(&["Todo", "In Progress", "Review"]),
        )],
        &[(
            "  active_states: [Todo, \"In Progress\"]   # flow list\n",
            "  active_states: [Todo, In Progress, Review]   # flow list\n",
        )],
    );
    assert_eq!(wf.config.tracker.active_states, ["Todo", "In Progress", "Review"]);
    let wf = check(
        &[Edit::set(
            &["tracker", "terminal_states"],
            string_list(&["Done", "Won't Do"]),
        )],
        &[("    - Cancelled\n", "    - Won't Do\n")],
    );
    assert_eq!(wf.config.tracker.terminal_states, ["Done", "Won't Do"]);
    let wf = check(
        &[Edit::set(&["tracker", "backlog_states"], string_list::<&str>(&[]))],
        &[("  backlog_states: [Backlog]\n", "  backlog_states: []\n")],
    );
    assert!(wf.config.tracker.backlog_states.is_empty());
    let wf = check(
        &[Edit::set(&["tracker", "completion_state"], "Done")],
        &[("  completion_state: \"\"\n", "  completion_state: Done\n")],
    );
    assert_eq!(wf.config.tracker.completion_state.as_deref(), Some("Done"));
    let wf = check(
        &[Edit::set(&["tracker", "working_state"], "")],
        &[("  working_state: In Progress\n", "  working_state: ''\n")],
    );
    assert_eq!(wf.config.tracker.working_state, None);
    let wf = check(
        &[Edit::set(&["tracker", "failed_state"], "Needs Human")],
        &[("  failed_state: \"\"\n", "  failed_state: Needs Human\n")],
    );
    assert_eq!(wf.config.tracker.failed_state.as_deref(), Some("Needs Human"));
}

#[test]
fn one_call_edits_several_keys() {
    let wf = check(
        &[
            Edit::set(&["tracker", "active_states"], string_list(&["Ready"])),
            Edit::set(
                &["tracker", "terminal_states"],
                string_list(&["Done", "Cancelled", "Duplicate"]),
            ),
            Edit::set(&["tracker", "completion_state"], "In Review"),
            Edit::set(&["tracker", "backlog_states"], string_list(&["Icebox", "Backlog"])),
        ],
        &[
            (
                "  active_states: [Todo, \"In Progress\"]   # flow list\n",
                "  active_states: [Ready]   # flow list\n",
            ),
            ("    - Cancelled\n", "    - Cancelled\n    - Duplicate\n"),
            ("  backlog_states: [Backlog]\n", "  backlog_states: [Icebox, Backlog]\n"),
            ("  completion_state: \"\"\n", "  completion_state: In Review\n"),
        ],
    );
    assert_eq!(wf.config.tracker.backlog_states, ["Icebox", "Backlog"]);
}

#[test]
fn project_filter_is_added_to_the_tracker_block() {
    let wf = check(
        &[Edit::set(&["tracker", "project_filter"], string_list(&["web", "api"]))],
        &[(
            "  failed_state: \"\"\n",
            "  failed_state: \"\"\n  project_filter: [web, api]\n",
        )],
    );
    assert_eq!(
        wf.config.tracker.project_filter,
        Some(vec!["web".to_string(), "api".to_string()])
    );
    let wf = check(
        &[Edit::set(&["tracker", "project_filter"], string_list::<&str>(&[]))],
        &[("  failed_state: \"\"\n", "  failed_state: \"\"\n  project_filter: []\n")],
    );
    assert_eq!(wf.config.tracker.project_filter, Some(Vec::new()));
    let wf = check(
        &[Edit::set(&["tracker", "project_filter"], Value::Null)],
        &[(
            "  failed_state: \"\"\n",
            "  failed_state: \"\"\n  project_filter: null\n",
        )],
    );
    assert_eq!(wf.config.tracker.project_filter, None);
}

#[test]
fn ssh_hosts_keep_the_lines_and_comments_of_hosts_that_stay() {
    let wf = check(
        &[Edit::set(
            &["agent", "ssh_hosts"],
            string_list(&["build1", "build2:2222", "me@build3"]),
        )],
        &[(
            "    - build2:2222   # slow\n",
            "    - build2:2222   # slow\n    - me@build3\n",
        )],
    );
    assert_eq!(wf.config.agent.ssh_hosts, ["build1", "build2:2222", "me@build3"]);
    check(
        &[Edit::set(&["agent", "ssh_hosts"], string_list(&["build2:2222"]))],
        &[("    # the fast one\n    - build1\n", "")],
    );
    check(
        &[Edit::set(&["agent", "ssh_hosts"], string_list(&["build1", "build3"]))],
        &[("    - build2:2222   # slow\n", "    - build3\n")],
    );
    let wf = check(
        &[Edit::set(&["agent", "ssh_hosts"], string_list::<&str>(&[]))],
        &[(
            "  ssh_hosts:\n    # the fast one\n    - build1\n    - build2:2222   # slow\n",
            "  ssh_hosts: []\n",
        )],
    );
    assert!(wf.config.agent.ssh_hosts.is_empty());
}

#[test]
fn host_descriptions_are_added_and_removed_by_key() {
    let wf = check(
        &[Edit::set(
            &["agent", "ssh_host_descriptions", "build2:2222"],
            "Slow box",
        )],
        &[(
            "    build1: \"Fast box\"\n",
            "    build1: \"Fast box\"\n    \"build2:2222\": Slow box\n",
        )],
    );
    assert_eq!(wf.config.agent.ssh_host_descriptions["build2:2222"], "Slow box");
    let wf = check(
        &[Edit::remove(&["agent", "ssh_host_descriptions", "build1"])],
        &[(
            "  ssh_host_descriptions:\n    build1: \"Fast box\"\n",
            "  ssh_host_descriptions: {}\n",
        )],
    );
    assert!(wf.config.agent.ssh_host_descriptions.is_empty());
    // Removing what is not there changes nothing.
    let (_dir, path) = setup(&fixture());
    let out = apply_edits(&path, &[Edit::remove(&["agent", "ssh_host_descriptions", "nope"])]).unwrap();
    assert!(!out.changed);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), fixture());
}

#[test]
fn profiles_are_set_and_removed() {
    let docs = map([
        ("command", s("claude --model haiku")),
        ("prompt", s("Write docs for {{ issue.identifier }}.\n")),
    ]);
    let wf = check(
        &[Edit::set(&["agent", "profiles", "docs"], docs)],
        &[(
            "    fast: {command: codex, backend: codex}\n",
            "    fast: {command: codex, backend: codex}\n    docs:\n      command: claude --model haiku\n      prompt: |\n        Write docs for {{ issue.identifier }}.\n",
        )],
    );
    assert_eq!(
        wf.config.agent.profiles["docs"].prompt.as_deref(),
        Some("Write docs for {{ issue.identifier }}.\n")
    );
    // Replacing a block profile changes only the entries that differ.
    let review = map([
        ("command", s("claude --model sonnet")),
        (
            "prompt",
            s("Review {{ issue.identifier }} carefully.\n\nLook at the tests.\n"),
        ),
    ]);
    let wf = check(
        &[Edit::set(&["agent", "profiles", "review"], review)],
        &[(
            "      command: claude --model opus   # reviewer model\n",
            "      command: claude --model sonnet   # reviewer model\n",
        )],
    );
    assert_eq!(wf.config.agent.profiles["review"].command, "claude --model sonnet");
    // A flow profile stays in flow style.
    let fast = map([("command", s("codex --fast")), ("backend", s("codex"))]);
    check(
        &[Edit::set(&["agent", "profiles", "fast"], fast)],
        &[(
            "    fast: {command: codex, backend: codex}\n",
            "    fast: {command: codex --fast, backend: codex}\n",
        )],
    );
    // Entries the new profile lacks are removed.
    let review_no_prompt = map([("command", s("claude --model opus"))]);
    let wf = check(
        &[Edit::set(&["agent", "profiles", "review"], review_no_prompt)],
        &[(
            "      prompt: |\n        Review {{ issue.identifier }} carefully.\n\n        Look at the tests.\n",
            "",
        )],
    );
    assert_eq!(wf.config.agent.profiles["review"].prompt, None);
    let wf = check(
        &[Edit::remove(&["agent", "profiles", "fast"])],
        &[("    fast: {command: codex, backend: codex}\n", "")],
    );
    assert!(!wf.config.agent.profiles.contains_key("fast"));
    check(
        &[
            Edit::remove(&["agent", "profiles", "review"]),
            Edit::set(&["agent", "reviewer_profile"], ""),
        ],
        &[
            (
                "    review:\n      command: claude --model opus   # reviewer model\n      prompt: |\n        Review {{ issue.identifier }} carefully.\n\n        Look at the tests.\n",
                "",
            ),
            ("  reviewer_profile: review\n", "  reviewer_profile: ''\n"),
        ],
    );
}

#[test]
fn missing_sections_and_keys_are_created() {
    let wf = check(
        &[Edit::set(&["polling", "interval_ms"], 5000)],
        &[(
            "  root: ~/.itervox/workspaces\n",
            "  root: ~/.itervox/workspaces\npolling:\n  interval_ms: 5000\n",
        )],
    );
    assert_eq!(wf.config.polling.interval_ms, 5000);
    // A key beside a merge key overrides the merged value; the anchored map is untouched.
    let wf = check(
        &[Edit::set(&["hooks", "timeout_ms"], 1000)],
        &[(
            "  after_create: make deps\n",
            "  after_create: make deps\n  timeout_ms: 1000\n",
        )],
    );
    assert_eq!(wf.config.hooks.timeout_ms, 1000);
    // Into a null section.
    let (_dir, path) = setup("---\nagent:\n# nothing yet\n---\nBody\n");
    apply_edits(&path, &[Edit::set(&["agent", "ssh_host_descriptions", "b1"], "One")]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "---\nagent:\n  ssh_host_descriptions:\n    b1: One\n# nothing yet\n---\nBody\n"
    );
    // Into an empty front matter.
    let (_dir, path) = setup("---\n---\nBody\n");
    apply_edits(&path, &[Edit::set(&["agent", "max_turns"], 5)]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "---\nagent:\n  max_turns: 5\n---\nBody\n"
    );
}

#[test]
fn new_nested_values_quoted_keys_and_awkward_strings() {
    let (_dir, path) = setup("---\nagent:\n  profiles:   # none yet\n  \"quoted key\": 1\n---\nB\n");
    apply_edits(
        &path,
        &[
            Edit::set(
                &["agent", "profiles", "rev"],
                map([("command", s("claude")), ("enabled", Value::Bool(false))]),
            ),
            Edit::set(&["agent", "quoted key"], 2),
            Edit::set(
                &["agent", "available_models", "claude"],
                Value::Sequence(vec![map([("id", s("opus")), ("label", s("Opus 4"))])]),
            ),
            Edit::set(&["agent", "ssh_host_descriptions", "me@h:22"], "it's: \"odd\" # yes"),
        ],
    )
    .unwrap();
    assert_text_eq(
        &std::fs::read_to_string(&path).unwrap(),
        "---\nagent:\n  profiles:   # none yet\n    rev:\n      command: claude\n      enabled: false\n  \"quoted key\": 2\n  \
         available_models:\n    claude:\n      - id: opus\n        label: Opus 4\n  ssh_host_descriptions:\n    \
         \"me@h:22\": 'it''s: \"odd\" # yes'\n---\nB\n",
    );
    let wf = load_workflow(&path).unwrap();
    assert!(!wf.config.agent.profiles["rev"].enabled);
    assert_eq!(wf.config.agent.available_models["claude"][0].label, "Opus 4");
    assert_eq!(wf.config.agent.ssh_host_descriptions["me@h:22"], "it's: \"odd\" # yes");
}

#[test]
fn crlf_files_stay_crlf() {
    let text = "---\r\nagent:\r\n  max_turns: 3  # turns\r\n---\r\nBody\r\n";
    let (_dir, path) = setup(text);
    apply_edits(
        &path,
        &[
            Edit::set(&["agent", "max_turns"], 4),
            Edit::set(&["agent", "ssh_hosts"], string_list(&["a"])),
        ],
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "---\r\nagent:\r\n  max_turns: 4  # turns\r\n  ssh_hosts: [a]\r\n---\r\nBody\r\n"
    );
}

#[test]
fn the_file_mode_is_kept_and_no_temp_files_are_left() {
    let (dir, path) = setup(&fixture());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    apply_edits(&path, &[Edit::set(&["agent", "max_turns"], 9)]).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".WORKFLOW.md.lock", "WORKFLOW.md"]);
}

#[test]
fn setting_what_is_already_there_writes_nothing() {
    let (_dir, path) = setup(&fixture());
    let out = apply_edits(
        &path,
        &[
            Edit::set(&["agent", "max_concurrent_agents"], 3),
            Edit::set(&["tracker", "active_states"], string_list(&["Todo", "In Progress"])),
        ],
    )
    .unwrap();
    assert!(!out.changed);
    assert_eq!(out.content_hash, out.previous_hash);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), fixture());
}

#[test]
fn the_verifier_names_the_first_key_that_differs() {
    let a: Value = yaml_serde::from_str("agent: {max_turns: 3, hosts: [a]}\ntracker: {kind: local}").unwrap();
    let b: Value = yaml_serde::from_str("agent: {max_turns: 3, hosts: [b]}\ntracker: {kind: local}").unwrap();
    let c: Value = yaml_serde::from_str("agent: {max_turns: 3, hosts: [a]}\ntracker: {kind: local, extra: 1}").unwrap();
    assert_eq!(first_difference(&a, &a, &mut Vec::new()), None);
    assert_eq!(
        first_difference(&a, &b, &mut Vec::new()).as_deref(),
        Some("agent.hosts")
    );
    assert_eq!(
        first_difference(&a, &c, &mut Vec::new()).as_deref(),
        Some("tracker.extra")
    );
    assert_eq!(
        first_difference(&c, &a, &mut Vec::new()).as_deref(),
        Some("tracker.extra")
    );
}

fn assert_refused(edits: &[Edit], check_error: impl Fn(&EditError) -> bool) {
    let (_dir, path) = setup(&fixture());
    let e = apply_edits(&path, edits).unwrap_err();
    assert!(check_error(&e), "unexpected error for {edits:?}: {e}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        fixture(),
        "the file must not change"
    );
}

#[test]
fn unsafe_or_invalid_edits_are_refused_and_leave_the_file_alone() {
    assert_refused(
        &[Edit::set(&["x-shared-hooks", "timeout_ms"], 1)],
        |e| matches!(e, EditError::Unsupported { key, reason, .. } if key == "x-shared-hooks" && reason.contains("anchor")),
    );
    assert_refused(
        &[Edit::set(&["tracker", "active_states", "x"], 1)],
        |e| matches!(e, EditError::Unsupported { key, reason, .. } if key == "tracker.active_states" && reason.contains("list")),
    );
    assert_refused(
        &[Edit::set(&["agent", "ssh_hosts", "x"], 1)],
        |e| matches!(e, EditError::Unsupported { reason, .. } if reason.contains("list")),
    );
    assert_refused(
        &[Edit::set(&["agent", "agent_mode"], "duo")],
        |e| matches!(e, EditError::Invalid { error } if error.key() == Some("agent.agent_mode")),
    );
    assert_refused(&[Edit::set(&["agent", "max_concurrent_agents"], -1)], |e| {
        matches!(e, EditError::Invalid { .. }) && e.to_string().contains("agent.max_concurrent_agents")
    });
    // The first edit alone would be fine: a call is all or nothing.
    assert_refused(
        &[
            Edit::set(&["agent", "max_turns"], 4),
            Edit::set(&["server", "port"], 70000),
        ],
        |e| matches!(e, EditError::Invalid { .. }),
    );
    assert_refused(
        &[Edit::Set {
            path: Vec::new(),
            value: Value::Null,
        }],
        |e| *e == EditError::EmptyPath,
    );
}

#[test]
fn a_broken_file_on_disk_is_a_conflict() {
    let broken = fixture().replacen("  agent_mode: solo\n", "  agent_mode: [solo\n", 1);
    let (_dir, path) = setup(&broken);
    let e = apply_edits(&path, &[Edit::set(&["agent", "max_turns"], 4)]).unwrap_err();
    assert!(
        matches!(
            &e,
            EditError::Conflict {
                error: ConfigError::Yaml { .. }
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("WORKFLOW.md has an invalid edit to fix first"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    let invalid_value = fixture().replacen("  agent_mode: solo\n", "  agent_mode: duo\n", 1);
    std::fs::write(&path, &invalid_value).unwrap();
    let e = apply_edits(&path, &[Edit::set(&["agent", "max_turns"], 4)]).unwrap_err();
    assert!(
        matches!(&e, EditError::Conflict { error } if error.key() == Some("agent.agent_mode")),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();
    let e = apply_edits(&path, &[Edit::set(&["agent", "max_turns"], 4)]).unwrap_err();
    assert!(
        matches!(
            &e,
            EditError::Conflict {
                error: ConfigError::Missing { .. }
            }
        ),
        "{e}"
    );
}

#[test]
fn a_concurrent_hand_edit_of_another_key_is_kept() {
    let (_dir, path) = setup(&fixture());
    // A person changes the command; the API then changes the agent count from its stale view.
    let by_hand = fixture().replacen("  command: claude\n", "  command: claude --model opus\n", 1);
    std::fs::write(&path, &by_hand).unwrap();
    apply_edits(&path, &[Edit::set(&["agent", "max_concurrent_agents"], 5)]).unwrap();
    let wf = load_workflow(&path).unwrap();
    assert_eq!(wf.config.agent.command, "claude --model opus");
    assert_eq!(wf.config.agent.max_concurrent_agents, 5);
}

#[test]
fn fifty_parallel_edits_of_different_keys_all_land() {
    let (_dir, path) = setup(&fixture());
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                apply_edits(
                    &path,
                    &[Edit::set(
                        &["agent", "ssh_host_descriptions", &format!("host{i}")],
                        format!("Host {i}"),
                    )],
                )
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let wf = load_workflow(&path).unwrap();
    let descriptions = &wf.config.agent.ssh_host_descriptions;
    assert_eq!(descriptions.len(), 51);
    for i in 0..50 {
        assert_eq!(descriptions[&format!("host{i}")], format!("Host {i}"));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("  max_concurrent_agents: 3   # bumped by hand\n"));
    assert!(text.ends_with("\nlast line without a newline"));
}

// ---- helpers run in child processes (this test binary, re-executed) ----

const CHILD_FILE: &str = "ITERVOX_EDIT_TEST_FILE";
const CHILD_MODE: &str = "ITERVOX_EDIT_TEST_MODE";

/// Not a test on its own: the body of the child processes the tests below start. Does nothing unless
/// started by them.
#[test]
fn child_process_entry() {
    let (Ok(file), Ok(mode)) = (std::env::var(CHILD_FILE), std::env::var(CHILD_MODE)) else {
        return;
    };
    let path = PathBuf::from(file);
    if let Some(prefix) = mode.strip_prefix("keys:") {
        for i in 0..20 {
            apply_edits(
                &path,
                &[Edit::set(
                    &["agent", "ssh_host_descriptions", &format!("{prefix}{i}")],
                    "x",
                )],
            )
            .unwrap();
        }
    } else if mode == "loop" {
        for i in 0u64.. {
            apply_edits(&path, &[Edit::set(&["agent", "max_concurrent_agents"], i % 9 + 1)]).unwrap();
        }
    }
}

fn spawn_child(path: &Path, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "config::edit::tests::child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FILE, path)
        .env(CHILD_MODE, mode)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_processes_editing_at_once_both_land() {
    let (_dir, path) = setup(&fixture());
    let mut a = spawn_child(&path, "keys:a");
    let mut b = spawn_child(&path, "keys:b");
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let wf = load_workflow(&path).unwrap();
    let descriptions = &wf.config.agent.ssh_host_descriptions;
    for i in 0..20 {
        assert!(descriptions.contains_key(&format!("a{i}")), "a{i} lost");
        assert!(descriptions.contains_key(&format!("b{i}")), "b{i} lost");
    }
}

#[test]
fn killing_a_writer_mid_write_leaves_the_old_or_the_new_file() {
    let (dir, path) = setup(&fixture());
    let allowed: Vec<String> = (1..=9)
        .map(|n| {
            fixture().replacen(
                "  max_concurrent_agents: 3   # bumped by hand\n",
                &format!("  max_concurrent_agents: {n}   # bumped by hand\n"),
                1,
            )
        })
        .collect();
    for round in 0..8 {
        let before = std::fs::read(&path).unwrap();
        let mut child = spawn_child(&path, "loop");
        // Let it write a few times; the kill lands at an arbitrary point of its loop.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut changes = 0;
        let mut last = before.clone();
        while changes < 2 + round % 3 && Instant::now() < deadline {
            // Readers never see a partial file either, while the writer runs.
            let now = std::fs::read(&path).unwrap();
            assert!(
                allowed.iter().any(|a| a.as_bytes() == now),
                "round {round}: a reader saw a torn file"
            );
            if now != last {
                changes += 1;
                last = now;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(changes > 0, "the writer never wrote");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            allowed.contains(&text),
            "round {round}: torn or unexpected file:\n{text}"
        );
        load_workflow(&path).unwrap();
    }
    // Killed writers may leave their temp file behind, never a partial WORKFLOW.md; clean them up.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name == "WORKFLOW.md"
                || name == ".WORKFLOW.md.lock"
                || (name.starts_with(".WORKFLOW.md.") && name.ends_with(".tmp")),
            "unexpected file {name}"
        );
    }
}

/// The repository's example WORKFLOW.md (the one the README points people at) takes the settings edits
/// the API and dashboard make without disturbing anything else: each edited key changes on its own
/// line, keeping its comment; the rest of the file and the prompt stay byte for byte.
#[test]
fn the_repository_example_takes_every_settings_edit_in_place() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../WORKFLOW.md");
    let original = std::fs::read_to_string(&example).unwrap();
    let (_dir, path) = setup(&original);
    let fast = map([("command", s("claude --model sonnet")), ("backend", s("claude"))]);
    let edits = [
        Edit::set(&["agent", "max_concurrent_agents"], Value::from(5)),
        Edit::set(&["agent", "agent_mode"], "teams"),
        Edit::set(&["agent", "dispatch_strategy"], "least-loaded"),
        Edit::set(&["agent", "ssh_hosts"], string_list(&["build1", "ci@build2:2222"])),
        Edit::set(&["agent", "inline_input"], true),
        Edit::set(&["agent", "profiles", "fast"], fast),
        Edit::set(&["agent", "reviewer_profile"], "fast"),
        Edit::set(&["agent", "auto_review"], true),
        Edit::set(&["tracker", "active_states"], string_list(&["Todo", "Ready"])),
        Edit::set(&["workspace", "auto_clear"], true),
    ];
    let outcome = apply_edits(&path, &edits).unwrap();
    let replacements = [
        ("  active_states: [Todo, In Progress]", "  active_states: [Todo, Ready]"),
        ("  agent_mode: solo ", "  agent_mode: teams "),
        ("  max_concurrent_agents: 2 ", "  max_concurrent_agents: 5 "),
        ("  inline_input: false ", "  inline_input: true "),
        ("  ssh_hosts: [] ", "  ssh_hosts: [build1, ci@build2:2222] "),
        (
            "  dispatch_strategy: round-robin ",
            "  dispatch_strategy: least-loaded ",
        ),
        ("  profiles: {} ", "  profiles: "),
        (
            "e.g. fast: {command: claude --model sonnet}\n",
            "e.g. fast: {command: claude --model sonnet}\n    fast:\n      command: claude --model sonnet\n      backend: claude\n",
        ),
        ("  reviewer_profile: \"\" ", "  reviewer_profile: fast "),
        ("  auto_review: false ", "  auto_review: true "),
        ("  auto_clear: false ", "  auto_clear: true "),
    ];
    let mut expected = original.clone();
    for (old, new) in replacements {
        assert_eq!(expected.matches(old).count(), 1, "the example has one {old:?}");
        expected = expected.replacen(old, new, 1);
    }
    let got = std::fs::read_to_string(&path).unwrap();
    // Values change length; the comments after them keep their place relative to the value, so
    // compare with runs of spaces before a comment folded.
    let fold = |t: &str| -> String {
        t.lines()
            .map(|l| match l.split_once("  #") {
                Some((value, comment)) => format!("{}  #{comment}", value.trim_end()),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_text_eq(&fold(&got), &fold(&expected));
    let body = |t: &str| t.splitn(3, "---\n").nth(2).unwrap().to_string();
    assert_eq!(body(&got), body(&original), "the prompt is untouched");
    let c = &outcome.workflow.config;
    assert_eq!(c.agent.max_concurrent_agents, 5);
    assert_eq!(c.agent.agent_mode, AgentMode::Teams);
    assert_eq!(c.agent.dispatch_strategy, DispatchStrategy::LeastLoaded);
    assert_eq!(c.agent.ssh_hosts.len(), 2);
    assert_eq!(c.agent.profiles["fast"].command, "claude --model sonnet");
    assert_eq!(c.agent.reviewer_profile.as_deref(), Some("fast"));
    assert!(c.agent.inline_input && c.agent.auto_review && c.workspace.auto_clear);
    assert_eq!(load_workflow(&path).unwrap().config, outcome.workflow.config);
}
