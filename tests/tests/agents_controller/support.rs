//! Shared setup of the controller-level agent tests: the pinned CLIs, a project whose `agent.command`
//! is a real CLI (or the demo agent), the controller's environment pointing the CLI at a fake model
//! API, and polling helpers over `/state`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::fake_anthropic::FakeAnthropic;
use itervox_tests::fake_openai::FakeOpenAi;
use itervox_tests::project::{IssueSpec, Project};
use serde_json::Value;

/// Generous: the machine is shared by several test binaries.
pub const DEADLINE: Duration = Duration::from_secs(90);

fn cli_dir() -> PathBuf {
    match std::env::var_os("ITERVOX_AGENT_CLI_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/itervox-agent-clis"),
    }
}

/// The installed CLI `name`; fails (never skips) when it is missing.
pub fn cli(name: &str) -> PathBuf {
    let path = cli_dir().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "the pinned `{name}` CLI is not installed at {}: run scripts/test.sh, which installs it into \
         $ITERVOX_AGENT_CLI_DIR (default ~/.cache/itervox-agent-clis)",
        path.display()
    );
    path
}

/// Rewrites the workflow's agent command, backend and turn/retry limits (the project fixture writes the
/// demo agent with `max_turns: 3`, `max_retries: 3`).
pub fn set_agent(project: &Project, command: &str, backend: &str, max_turns: u32, max_retries: u32) {
    let text = std::fs::read_to_string(&project.workflow).unwrap();
    let replaced = text
        .replace(
            "  command: itervox-worker demo-agent\n  backend: demo\n",
            &format!("  command: {command}\n  backend: {backend}\n"),
        )
        .replace("  max_turns: 3\n", &format!("  max_turns: {max_turns}\n"))
        .replace("  max_retries: 3\n", &format!("  max_retries: {max_retries}\n"));
    assert_ne!(text, replaced, "the project fixture's agent block changed");
    std::fs::write(&project.workflow, replaced).unwrap();
}

/// A controller with a throwaway `HOME` (the CLIs keep their sessions there) and `extra` variables.
pub struct Lab {
    pub project: Project,
    pub controller: ControllerProcess,
    pub api: Api,
}

impl Lab {
    pub async fn start(project: Project, extra: &[(&str, String)]) -> Lab {
        // reqwest is built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let home = project.dir.path().join("home");
        let tmp = project.dir.path().join("tmp");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), home.display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("CLAUDE_CODE_TMPDIR".into(), tmp.display().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let controller = ControllerProcess::start(&project.workflow, &project.state_dir, &pairs)
            .await
            .expect("controller starts");
        let api = Api::new(&controller.api(), None);
        Lab {
            project,
            controller,
            api,
        }
    }

    /// The worktree of `id`.
    pub fn worktree(&self, id: &str) -> PathBuf {
        self.project.workspaces.join(id)
    }

    /// Waits until `id` has `n` history rows; returns them newest first.
    pub async fn history(&self, id: &str, n: usize) -> Vec<Value> {
        let s = self
            .api
            .wait_state(DEADLINE, &format!("{n} history rows of {id}"), |s| {
                snap::history(s, id).len() >= n && snap::running(s, id).is_none()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\ncontroller output:\n{}", self.tail()));
        snap::history(&s, id).into_iter().cloned().collect()
    }

    /// Polls `/state` until `pred` holds.
    pub async fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.api
            .wait_state(DEADLINE, what, pred)
            .await
            .unwrap_or_else(|e| panic!("{e}\ncontroller output:\n{}", self.tail()))
    }

    /// The end of the controller's output, for failure messages.
    pub fn tail(&self) -> String {
        let out = self.controller.output();
        let start = out.len().saturating_sub(6000);
        let mut i = start;
        while !out.is_char_boundary(i) {
            i += 1;
        }
        out[i..].to_string()
    }

    /// The issue's log entries (`GET /issues/{id}/logs`).
    pub async fn logs(&self, id: &str) -> Vec<Value> {
        let v = self.api.get(&format!("/issues/{id}/logs")).await.unwrap();
        v.as_array().cloned().unwrap_or_default()
    }
}

/// The variables that point Claude Code at `fake`, offline and with few retries.
pub fn claude_env(fake: &FakeAnthropic) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_BASE_URL", fake.base_url()),
        ("ANTHROPIC_API_KEY", "sk-test".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("CLAUDE_CODE_MAX_RETRIES", "2".into()),
    ]
}

/// A project whose agent is the real Claude Code CLI.
pub async fn claude_lab(issues: &[IssueSpec], fake: &FakeAnthropic, max_turns: u32, max_retries: u32) -> Lab {
    let project = Project::new(issues, "", "");
    set_agent(
        &project,
        &cli("claude").display().to_string(),
        "claude",
        max_turns,
        max_retries,
    );
    Lab::start(project, &claude_env(fake)).await
}

/// A project whose agent is the real Codex CLI, configured (in `$CODEX_HOME/config.toml`) for `fake`.
pub async fn codex_lab(issues: &[IssueSpec], fake: &FakeOpenAi) -> Lab {
    let project = Project::new(issues, "", "");
    let command = format!("{} --disable plugins --disable remote_plugin", cli("codex").display());
    set_agent(&project, &command, "codex", 3, 3);
    let codex_home = project.dir.path().join("home/.codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), fake.codex_config("FAKE_OPENAI_API_KEY")).unwrap();
    let env = [
        ("CODEX_HOME", codex_home.display().to_string()),
        ("FAKE_OPENAI_API_KEY", "sk-test".to_string()),
    ];
    Lab::start(project, &env).await
}

/// An issue with a title of its own.
pub fn issue(id: &str, title: &str, body: &str) -> IssueSpec {
    IssueSpec {
        title: title.into(),
        ..IssueSpec::new(id, "Todo", body)
    }
}

/// Reads a file of a worktree.
pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}
