//! `itervox demo`: a throwaway project with a git repository, a local tracker holding sample issues in
//! every state, and the scripted demo agent, so every path of the product can be seen without an API key.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The files of a demo setup.
#[derive(Debug, Clone)]
pub struct DemoSetup {
    pub dir: PathBuf,
    pub workflow: PathBuf,
    pub repo: PathBuf,
    pub state_dir: PathBuf,
}

struct SampleIssue {
    id: &'static str,
    title: &'static str,
    state: &'static str,
    priority: Option<u8>,
    labels: &'static [&'static str],
    blocked_by: &'static [&'static str],
    body: &'static str,
}

const ISSUES: &[SampleIssue] = &[
    SampleIssue {
        id: "ITX-1",
        title: "Add a friendly greeting to the README",
        state: "Todo",
        priority: Some(2),
        labels: &["docs"],
        blocked_by: &[],
        body: "The README starts abruptly. Add a short greeting paragraph at the top.\n\n[demo:sleep=15]",
    },
    SampleIssue {
        id: "ITX-2",
        title: "Write a CONTRIBUTING guide",
        state: "Todo",
        priority: Some(3),
        labels: &["docs"],
        blocked_by: &[],
        body: "Explain how to run the tests and send a change. (The demo agent fails its first attempt here, so \
               you can watch the retry queue.)\n\n[demo:fail-once] [demo:sleep=10]",
    },
    SampleIssue {
        id: "ITX-3",
        title: "Choose a license for the project",
        state: "Todo",
        priority: Some(2),
        labels: &["legal"],
        blocked_by: &[],
        body: "We need a LICENSE file. The agent will ask which license to use: answer it from the dashboard.\n\n\
               [demo:needs-input] [demo:sleep=8]",
    },
    SampleIssue {
        id: "ITX-4",
        title: "Add a health-check script",
        state: "Todo",
        priority: Some(1),
        labels: &["ops"],
        blocked_by: &[],
        body: "Add scripts/health.sh that prints OK. Open a pull request when done.\n\n[demo:pr] [demo:sleep=25]",
    },
    SampleIssue {
        id: "ITX-5",
        title: "Document the release process",
        state: "In Progress",
        priority: Some(3),
        labels: &["docs"],
        blocked_by: &[],
        body: "Write RELEASING.md describing how a release is cut. This one takes a while.\n\n[demo:sleep=60]",
    },
    SampleIssue {
        id: "ITX-6",
        title: "Refactor the configuration parser",
        state: "Backlog",
        priority: Some(4),
        labels: &["tech-debt"],
        blocked_by: &[],
        body: "Not planned yet: backlog issues are shown but never dispatched.",
    },
    SampleIssue {
        id: "ITX-7",
        title: "Set up continuous integration",
        state: "Done",
        priority: Some(2),
        labels: &["ops"],
        blocked_by: &[],
        body: "Already done.",
    },
    SampleIssue {
        id: "ITX-8",
        title: "Add a CHANGELOG",
        state: "Todo",
        priority: Some(3),
        labels: &["docs"],
        blocked_by: &["ITX-1"],
        body: "Start a CHANGELOG.md. Blocked until ITX-1 is done, so it starts after it.\n\n[demo:sleep=10]",
    },
];

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Itervox Demo")
        .env("GIT_AUTHOR_EMAIL", "demo@itervox.dev")
        .env("GIT_COMMITTER_NAME", "Itervox Demo")
        .env("GIT_COMMITTER_EMAIL", "demo@itervox.dev")
        .output()
        .with_context(|| format!("running git {} (is git installed?)", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The demo's WORKFLOW.md.
pub fn workflow_text(dir: &Path, port: u16) -> String {
    format!(
        r#"---
# Itervox demo workflow: a local tracker (.itervox/issues), the scripted demo agent, one machine.
tracker:
  kind: local
  issues_dir: .itervox/issues
  project_slug: ITX
  active_states: [Todo, In Progress]
  terminal_states: [Done, Cancelled]
  backlog_states: [Backlog]
  working_state: In Progress
  completion_state: Done
polling:
  interval_ms: 2000
agent:
  command: itervox-worker demo-agent
  backend: demo
  max_concurrent_agents: 3
  max_turns: 3
  max_retries: 3
  stall_timeout_ms: 120000
  inline_input: true
workspace:
  root: {root}
  repo: {repo}
  base_branch: main
server:
  host: 127.0.0.1
  port: {port}
---
You are working on {{{{ issue.identifier }}}}: {{{{ issue.title }}}}

{{{{ issue.description }}}}

Make the change in this repository and commit it.
"#,
        root = dir.join("workspaces").display(),
        repo = dir.join("project").display(),
    )
}

fn issue_file(i: &SampleIssue) -> String {
    let mut s = String::from("---\n");
    s.push_str(&format!(
        "identifier: {}\ntitle: {}\nstate: {}\n",
        i.id, i.title, i.state
    ));
    if let Some(p) = i.priority {
        s.push_str(&format!("priority: {p}\n"));
    }
    s.push_str(&format!("labels: [{}]\n", i.labels.join(", ")));
    if !i.blocked_by.is_empty() {
        s.push_str(&format!("blocked_by: [{}]\n", i.blocked_by.join(", ")));
    }
    s.push_str("created: 2026-12-01T09:00:00Z\n---\n");
    s.push_str(i.body);
    s.push('\n');
    s
}

/// Creates the demo project in `dir` (which must be empty or absent).
pub fn create(dir: &Path, port: u16) -> anyhow::Result<DemoSetup> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty; give an empty or new folder with --dir", dir.display());
    }
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("src")).with_context(|| format!("creating {}", project.display()))?;
    std::fs::write(
        project.join("README.md"),
        "# Tiny Calc\n\nA tiny calculator used by the Itervox demo.\n\n## Usage\n\n    python3 src/calc.py 2 + 3\n",
    )?;
    std::fs::write(
        project.join("src/calc.py"),
        "import sys\n\n\ndef calc(a, op, b):\n    a, b = float(a), float(b)\n    return {'+': a + b, '-': a - b, '*': a * b, '/': a / b}[op]\n\n\nif __name__ == '__main__':\n    print(calc(*sys.argv[1:4]))\n",
    )?;
    git(&project, &["init", "-q", "-b", "main"])?;
    git(&project, &["add", "-A"])?;
    git(&project, &["commit", "-q", "-m", "Initial commit"])?;

    let issues = dir.join(".itervox/issues");
    std::fs::create_dir_all(&issues)?;
    for i in ISSUES {
        std::fs::write(issues.join(format!("{}.md", i.id)), issue_file(i))?;
    }
    let workflow = dir.join("WORKFLOW.md");
    std::fs::write(&workflow, workflow_text(dir, port))?;
    Ok(DemoSetup {
        dir: dir.to_path_buf(),
        workflow,
        repo: project,
        state_dir: dir.join(".itervox/state"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_repository_issues_and_workflow() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("demo");
        let setup = create(&root, 0).unwrap();
        assert!(setup.repo.join(".git").exists());
        let issues: Vec<_> = std::fs::read_dir(root.join(".itervox/issues")).unwrap().collect();
        assert_eq!(issues.len(), ISSUES.len());
        let wf = std::fs::read_to_string(&setup.workflow).unwrap();
        assert!(wf.contains("{{ issue.identifier }}"), "{wf}");
        assert!(wf.contains(&format!("repo: {}", setup.repo.display())));
        assert!(create(&root, 0).is_err(), "refuses a non-empty folder");
    }
}
