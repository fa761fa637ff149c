//! A throwaway project for end-to-end tests: a git repository with one commit, a local tracker folder
//! with the given issues, and a WORKFLOW.md that runs the scripted demo agent.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One issue file of the local tracker.
#[derive(Debug, Clone, Default)]
pub struct IssueSpec {
    pub id: String,
    pub title: String,
    pub state: String,
    pub priority: Option<u8>,
    pub blocked_by: Vec<String>,
    /// Description; demo-agent markers (`[demo:sleep=N]`, `[demo:fail-once]`, `[demo:needs-input]`,
    /// `[demo:pr]`) steer the agent.
    pub body: String,
}

impl IssueSpec {
    pub fn new(id: &str, state: &str, body: &str) -> IssueSpec {
        IssueSpec {
            id: id.into(),
            title: format!("Issue {id}"),
            state: state.into(),
            body: body.into(),
            ..IssueSpec::default()
        }
    }

    fn file(&self) -> String {
        let mut s = format!(
            "---\nidentifier: {}\ntitle: {}\nstate: {}\n",
            self.id, self.title, self.state
        );
        if let Some(p) = self.priority {
            s.push_str(&format!("priority: {p}\n"));
        }
        if !self.blocked_by.is_empty() {
            s.push_str(&format!("blocked_by: [{}]\n", self.blocked_by.join(", ")));
        }
        s.push_str("created: 2026-12-01T09:00:00Z\n---\n");
        s.push_str(&self.body);
        s.push('\n');
        s
    }
}

/// The `tracker:` block of [`Project::new`]: the local tracker in the project's issue folder.
pub const LOCAL_TRACKER: &str = "tracker:\n  kind: local\n  issues_dir: .itervox/issues\n  project_slug: T\n  \
     active_states: [Todo, In Progress]\n  terminal_states: [Done, Cancelled]\n  backlog_states: [Backlog]\n  \
     working_state: In Progress\n  completion_state: Done\n";

/// The project on disk.
#[derive(Debug)]
pub struct Project {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub issues_dir: PathBuf,
    pub workflow: PathBuf,
    pub workspaces: PathBuf,
    pub state_dir: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs git in `dir` and returns its stdout.
pub fn git_output(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Project {
    /// Creates the project. `extra_yaml` is appended inside the front matter (top-level keys, e.g. an
    /// `ssh:` block), and `agent_extra` inside the `agent:` block (indented two spaces).
    pub fn new(issues: &[IssueSpec], agent_extra: &str, extra_yaml: &str) -> Project {
        Self::with_tracker(issues, LOCAL_TRACKER, agent_extra, extra_yaml)
    }

    /// Like [`Project::new`], with `tracker_yaml` as the whole `tracker:` block (e.g. `kind: linear` with
    /// an `endpoint` at a fake server). The local issue folder is still written, and unused then.
    pub fn with_tracker(issues: &[IssueSpec], tracker_yaml: &str, agent_extra: &str, extra_yaml: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("project");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("README.md"), "# Test project\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "Initial commit"]);
        let issues_dir = dir.path().join(".itervox/issues");
        std::fs::create_dir_all(&issues_dir).unwrap();
        for i in issues {
            std::fs::write(issues_dir.join(format!("{}.md", i.id)), i.file()).unwrap();
        }
        let workspaces = dir.path().join("workspaces");
        let workflow = dir.path().join("WORKFLOW.md");
        let text = format!(
            "---\n\
             {tracker_yaml}\
             polling:\n  interval_ms: 300\n\
             agent:\n  command: itervox-worker demo-agent\n  backend: demo\n  max_concurrent_agents: 6\n  max_turns: 3\n  max_retries: 3\n  inline_input: true\n{agent_extra}\
             workspace:\n  root: {root}\n  repo: {repo}\n  base_branch: main\n\
             {extra_yaml}\
             ---\n\
             Work on {{{{ issue.identifier }}}}: {{{{ issue.title }}}}\n\n{{{{ issue.description }}}}\n",
            root = workspaces.display(),
            repo = repo.display(),
        );
        std::fs::write(&workflow, text).unwrap();
        let state_dir = dir.path().join("state");
        Project {
            repo,
            issues_dir,
            workflow,
            workspaces,
            state_dir,
            dir,
        }
    }

    /// The local tracker file of an issue.
    pub fn issue_text(&self, id: &str) -> String {
        std::fs::read_to_string(self.issues_dir.join(format!("{id}.md"))).unwrap_or_default()
    }

    /// The state line of an issue's file.
    pub fn issue_state(&self, id: &str) -> Option<String> {
        self.issue_text(id)
            .lines()
            .find_map(|l| l.strip_prefix("state:").map(|s| s.trim().to_string()))
    }
}
