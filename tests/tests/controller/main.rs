//! End-to-end tests of the walking skeleton (issue 2) through the HTTP API of the real binaries: the
//! `itervox` controller runs the scripted demo agent on the local host through `itervox-worker`, against
//! a local-tracker project in a temp dir.

mod bad_input;
mod control;
mod crash;
mod dry_run;
mod hooks;
mod input;
mod lifecycle;
mod ordering;
mod reconcile;
mod retries;
mod tui;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use itervox_tests::controller::{Api, ControllerProcess};
use itervox_tests::project::{IssueSpec, Project};
use serde_json::Value;

/// Generous: the machine is shared and noisy.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A project with a controller running on it.
pub struct Setup {
    pub project: Project,
    pub ctl: ControllerProcess,
    pub api: Api,
}

impl Setup {
    /// A project with `issues` and a controller started on it with `env`.
    pub async fn start(issues: &[IssueSpec], env: &[(&str, &str)]) -> Setup {
        Setup::start_with(issues, env, "").await
    }

    /// Like [`start`](Self::start), with `extra_yaml` (top-level WORKFLOW.md keys) in the front matter.
    pub async fn start_with(issues: &[IssueSpec], env: &[(&str, &str)], extra_yaml: &str) -> Setup {
        let project = Project::new(issues, "", extra_yaml);
        let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, env)
            .await
            .expect("controller starts");
        let api = Api::new(&ctl.api(), None);
        Setup { project, ctl, api }
    }

    /// Waits for `pred` on `/state`, failing the test with the last state and the controller's output.
    pub async fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        match self.api.wait_state(DEADLINE, what, pred).await {
            Ok(s) => s,
            Err(e) => panic!("{e}\ncontroller output (tail):\n{}", tail(&self.ctl.output(), 60)),
        }
    }

    /// `GET /issues/{id}/logs`.
    pub async fn logs(&self, id: &str) -> Vec<Value> {
        let v = self.api.get(&format!("/issues/{id}/logs")).await.expect("logs");
        v.as_array().expect("logs are an array").clone()
    }

    /// Waits until the issue's tracker file says `state`.
    pub async fn wait_tracker_state(&self, id: &str, state: &str) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.project.issue_state(id).as_deref() != Some(state) {
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {id}'s tracker file to say state: {state}; it says:\n{}\ncontroller output (tail):\n{}",
                    self.project.issue_text(id),
                    tail(&self.ctl.output(), 60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The worktree of an issue on the local host.
    pub fn worktree(&self, id: &str) -> PathBuf {
        self.project.workspaces.join(id)
    }

    /// The session folder of a session on the local host.
    pub fn session_dir(&self, session: &str) -> PathBuf {
        self.project.workspaces.join(".itervox/sessions").join(session)
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A string field of a JSON value.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Checks that every session's entries in `logs` carry strictly increasing `seq` values (so no
/// duplicates), and returns each session's seqs in order. Entries without a session are controller
/// notes.
pub fn seqs_by_session(logs: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in logs {
        let Some(seq) = e["seq"].as_u64() else { continue };
        let session = s(e, "sessionId").to_string();
        assert!(!session.is_empty(), "an entry with a seq has no sessionId: {e}");
        let seqs = by.entry(session.clone()).or_default();
        if let Some(last) = seqs.last() {
            assert!(
                seq > *last,
                "session {session}: seq {seq} follows {last} (duplicate or out of order)\nlogs: {logs:#?}"
            );
        }
        seqs.push(seq);
    }
    by
}

/// The seqs of the `log` events in a session's journal on the host, in order; checks that the journal's
/// events (of every type) are numbered 1..n without gaps.
pub fn journal_log_seqs(session_dir: &std::path::Path) -> Vec<u64> {
    let mut out = Vec::new();
    let mut all = Vec::new();
    for name in ["journal.1.jsonl", "journal.jsonl"] {
        let Ok(text) = std::fs::read_to_string(session_dir.join(name)) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("journal line {line:?}: {e}"));
            let (kind, seq) = event_of(&v).unwrap_or_else(|| panic!("journal line without type and seq: {line}"));
            all.push(seq);
            if kind == "log" {
                out.push(seq);
            }
        }
    }
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(
        all,
        expected,
        "the journal in {} is numbered 1..n",
        session_dir.display()
    );
    out
}

/// The `type` and `seq` of a journaled session event (the frame may wrap it).
fn event_of(v: &Value) -> Option<(String, u64)> {
    if let (Some(t), Some(seq)) = (v["type"].as_str(), v["seq"].as_u64()) {
        return Some((t.to_string(), seq));
    }
    v.as_object()?.values().find_map(event_of)
}

/// Whether process group `pgid` still has a process in it.
pub fn group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

impl Setup {
    /// `GET /state` once.
    pub async fn state_now(&self) -> Value {
        self.api.state().await.expect("state")
    }

    /// A new controller on the same workflow and state (the old one must be gone), and an API client
    /// for it.
    pub async fn restart(&mut self) {
        self.ctl = self
            .ctl
            .restart()
            .await
            .expect("the controller restarts on the same state");
        self.api = Api::new(&self.ctl.api(), None);
    }
}
