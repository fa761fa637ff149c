//! The sublog reader over real Claude Code session files and a Codex rollout (from `tests/fixtures/`)
//! laid out as the CLIs lay them out: folder naming, parsing, session filters, the entry cap, clearing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use itervox_protocol::{IssueLogEntry, LogEventKind};

use super::{MAX_ENTRIES, SublogSources, clear, find_project_dir, project_dir_name, read};

const SESSION: &str = "011312b1-d0af-4ff6-95db-dca1789405df";
const SUBAGENT: &str = "agent-afa37ffca9890e806";
const THREAD: &str = "01a242a5-893f-71b2-a252-1fc24dbdacd7";
const OTHER_THREAD: &str = "01a242a5-0000-7000-8000-000000000000";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// An issue whose Claude session (with a background subagent) and Codex thread left their files.
struct Layout {
    _dir: tempfile::TempDir,
    sources: SublogSources,
    project: PathBuf,
    rollout: PathBuf,
    other_rollout: PathBuf,
}

fn layout() -> Layout {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let worktree = root.join("trees/ABC-1");
    std::fs::create_dir_all(&worktree).unwrap();
    let config = root.join("home/.claude");
    let project = config.join("projects").join(project_dir_name(&worktree));
    write(
        &project.join(format!("{SESSION}.jsonl")),
        &fixture("claude-task.session.jsonl"),
    );
    let sub = project.join(SESSION).join("subagents");
    write(
        &sub.join(format!("{SUBAGENT}.jsonl")),
        &fixture("claude-task.session.agent-afa37ffca9890e806.jsonl"),
    );
    write(&sub.join(format!("{SUBAGENT}.meta.json")), b"{}");
    write(&project.join("memory/MEMORY.md"), b"remember\n");
    let codex_home = root.join("home/.codex");
    let day = codex_home.join("sessions/2026/12/04");
    let rollout = day.join(format!("rollout-2026-12-04T20-01-14-{THREAD}.jsonl"));
    write(&rollout, &fixture("codex-bash.rollout.jsonl"));
    let other_rollout = day.join(format!("rollout-2026-12-04T21-00-00-{OTHER_THREAD}.jsonl"));
    write(&other_rollout, &fixture("codex-bash.rollout.jsonl"));
    let log_dir = root.join("logs/ABC-1");
    write(&log_dir.join("codex-1796414474000.jsonl"), &fixture("codex-bash.jsonl"));
    write(&log_dir.join("notes.txt"), b"not a log");
    Layout {
        sources: SublogSources {
            worktree,
            log_dir,
            claude_config_dir: config,
            codex_home,
            agent_refs: vec![SESSION.to_string(), THREAD.to_string()],
        },
        project,
        rollout,
        other_rollout,
        _dir: dir,
    }
}

fn by_session(entries: &[IssueLogEntry]) -> BTreeMap<String, Vec<&IssueLogEntry>> {
    let mut map: BTreeMap<String, Vec<&IssueLogEntry>> = BTreeMap::new();
    for e in entries {
        map.entry(e.session_id.clone().unwrap()).or_default().push(e);
    }
    map
}

fn kinds(entries: &[&IssueLogEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| format!("{:?}:{}", e.event, e.tool.as_deref().unwrap_or("")).to_lowercase())
        .collect()
}

#[test]
fn names_project_folders_like_claude_code() {
    assert_eq!(
        project_dir_name(Path::new("/tmp/wa-lab/repo.x_y z")),
        "-tmp-wa-lab-repo-x-y-z"
    );
    assert_eq!(project_dir_name(Path::new("/home/u/é/Ab9")), "-home-u---Ab9");
    assert_eq!(project_dir_name(Path::new("/a/😀")), "-a---");
}

#[test]
fn finds_long_project_folders_by_prefix_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let worktree = root.join("a".repeat(120)).join("b".repeat(120));
    std::fs::create_dir_all(&worktree).unwrap();
    let config = root.join("claude");
    let name = project_dir_name(&worktree);
    assert!(name.len() > 200);
    let ours = config.join("projects").join(format!("{}-diqkr5", &name[..200]));
    let theirs = config.join("projects").join(format!("{}-zz9x", &name[..200]));
    let cwd = serde_json::to_string(worktree.to_str().unwrap()).unwrap();
    write(
        &ours.join("s.jsonl"),
        format!("{{\"type\":\"user\",\"cwd\":{cwd}}}\n").as_bytes(),
    );
    assert_eq!(find_project_dir(&config, &worktree).unwrap(), Some(ours.clone()));
    // A second folder with the same prefix: the one whose lines record the worktree wins.
    write(&theirs.join("s.jsonl"), b"{\"type\":\"user\",\"cwd\":\"/elsewhere\"}\n");
    assert_eq!(find_project_dir(&config, &worktree).unwrap(), Some(ours));
    assert_eq!(find_project_dir(&root.join("nothing"), &worktree).unwrap(), None);
}

#[test]
fn reads_every_session_log_of_the_issue() {
    let l = layout();
    let entries = read(&l.sources, None).unwrap();
    let sessions = by_session(&entries);
    assert_eq!(
        sessions.keys().cloned().collect::<Vec<_>>(),
        [SESSION, THREAD, SUBAGENT, "codex-1796414474000"]
    );
    // Oldest first.
    let times: Vec<&str> = entries.iter().map(|e| e.time.as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);

    assert_eq!(
        kinds(&sessions[SESSION]),
        [
            "info:",          // the prompt
            "text:",          // "Delegating to a subagent."
            "subagent:agent", // the Agent call
            "text:",          // "Done."
            "subagent:agent", // the task notification
            "text:",          // "Done." after it
        ]
    );
    assert!(sessions[SESSION][0].message.starts_with("Prompt: [[scenario:task]]"));
    assert_eq!(sessions[SESSION][2].message, "Write sub.txt");
    assert_eq!(
        sessions[SESSION][4].message,
        "Subagent completed: Agent \"Write sub.txt\" finished"
    );

    assert_eq!(
        kinds(&sessions[SUBAGENT]),
        ["info:", "action:bash", "action:bash", "text:"]
    );
    assert_eq!(sessions[SUBAGENT][1].message, "echo from-subagent > sub.txt");
    assert_eq!(sessions[SUBAGENT][3].message, "Subagent finished: sub.txt written.");

    assert_eq!(kinds(&sessions[THREAD]), ["info:", "action:shell", "text:"]);
    assert_eq!(
        sessions[THREAD][0].message,
        "Prompt: [[scenario:bash]] Create hello.txt containing hello."
    );
    assert_eq!(sessions[THREAD][1].message, "echo hello > hello.txt");
    assert_eq!(sessions[THREAD][2].message, "Done.");
    // The teed `codex exec --json` output reads like the live stream.
    assert!(
        sessions["codex-1796414474000"]
            .iter()
            .any(|e| e.event == LogEventKind::Turn)
    );
}

#[test]
fn reads_one_session_or_one_subagent_or_one_thread() {
    let l = layout();
    let only = |session: &str| {
        let entries = read(&l.sources, Some(session)).unwrap();
        by_session(&entries).keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(only(SESSION), [SESSION, SUBAGENT]);
    assert_eq!(only(SUBAGENT), [SUBAGENT]);
    assert_eq!(only(THREAD), [THREAD]);
    assert!(only("no-such-session").is_empty());
    for bad in ["../etc", "a/b", "", ".."] {
        let err = read(&l.sources, Some(bad)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    }
}

#[test]
fn keeps_the_newest_entries() {
    let l = layout();
    let mut lines = String::new();
    for i in 0..MAX_ENTRIES + 100 {
        let time = chrono::DateTime::from_timestamp(2_000_000_000 + i as i64, 0).unwrap();
        lines.push_str(
            &serde_json::json!({
                "type": "assistant", "timestamp": time.to_rfc3339(),
                "message": {"role": "assistant", "content": [{"type": "text", "text": format!("line {i}")}]},
            })
            .to_string(),
        );
        lines.push('\n');
    }
    write(&l.sources.log_dir.join("big.jsonl"), lines.as_bytes());
    let entries = read(&l.sources, None).unwrap();
    assert_eq!(entries.len(), MAX_ENTRIES);
    assert_eq!(entries.last().unwrap().message, format!("line {}", MAX_ENTRIES + 99));
    assert_eq!(entries.first().unwrap().message, "line 100");
}

#[test]
fn clears_one_subagent_or_everything_but_memory() {
    let l = layout();
    let sub = l.project.join(SESSION).join("subagents");
    clear(&l.sources, Some(SUBAGENT)).unwrap();
    assert!(!sub.join(format!("{SUBAGENT}.jsonl")).exists());
    assert!(!sub.join(format!("{SUBAGENT}.meta.json")).exists());
    assert!(l.project.join(format!("{SESSION}.jsonl")).exists());

    clear(&l.sources, None).unwrap();
    assert!(read(&l.sources, None).unwrap().is_empty());
    assert!(!l.project.join(format!("{SESSION}.jsonl")).exists());
    assert!(!l.project.join(SESSION).exists());
    assert!(l.project.join("memory/MEMORY.md").exists());
    assert!(!l.rollout.exists());
    assert!(l.other_rollout.exists(), "another issue's thread stays");
    assert!(l.sources.log_dir.join("notes.txt").exists());
    // Clearing what is already gone is fine.
    clear(&l.sources, None).unwrap();
}

#[test]
fn resolves_folders_from_the_session_environment() {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/h".to_string());
    let s = SublogSources::resolve(Path::new("/w"), Path::new("/l"), &[], &env);
    assert_eq!(s.claude_config_dir, PathBuf::from("/h/.claude"));
    assert_eq!(s.codex_home, PathBuf::from("/h/.codex"));
    env.insert("CLAUDE_CONFIG_DIR".to_string(), "/c".to_string());
    env.insert("CODEX_HOME".to_string(), "/x".to_string());
    let s = SublogSources::resolve(Path::new("/w"), Path::new("/l"), &["t".into()], &env);
    assert_eq!(
        (s.claude_config_dir, s.codex_home),
        (PathBuf::from("/c"), PathBuf::from("/x"))
    );
    assert_eq!(s.agent_refs, ["t"]);
}
