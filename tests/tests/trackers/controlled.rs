//! Set-up for the controller-level tracker tests: a real `itervox run` whose WORKFLOW.md points at a
//! fake Linear or GitHub server, and small readers of what the fake and the API show.

use std::time::Duration;

use itervox_tests::controller::{Api, ControllerProcess};
use itervox_tests::project::Project;
use serde_json::Value;

pub const LINEAR_KEY: &str = "lin_api_controller_test";
pub const GITHUB_TOKEN: &str = "ghp_controller_test";
/// Generous: the machine is shared and noisy.
pub const LONG: Duration = Duration::from_secs(60);

/// A project whose tracker is the fake Linear at `endpoint`. `inline_input: false`, so questions are
/// posted as tracker comments. `tracker_extra` is appended inside the `tracker:` block.
pub fn linear_project(endpoint: &str, tracker_extra: &str) -> Project {
    let tracker = format!(
        "tracker:\n  kind: linear\n  api_key: $LINEAR_API_KEY\n  endpoint: {endpoint}\n  \
         active_states: [Todo, In Progress]\n  terminal_states: [Done, Canceled]\n  backlog_states: [Backlog]\n  \
         working_state: In Progress\n  completion_state: Done\n{tracker_extra}"
    );
    not_inline(Project::with_tracker(&[], &tracker, "", ""))
}

/// A project whose tracker is the fake GitHub at `endpoint` (repository `octo/widgets`; states are labels).
pub fn github_project(endpoint: &str) -> Project {
    let tracker = format!(
        "tracker:\n  kind: github\n  api_key: $GITHUB_TOKEN\n  endpoint: {endpoint}\n  project_slug: octo/widgets\n  \
         active_states: [Todo, In Progress]\n  terminal_states: [Done]\n  backlog_states: [Backlog]\n  \
         working_state: In Progress\n  completion_state: Done\n"
    );
    not_inline(Project::with_tracker(&[], &tracker, "", ""))
}

fn not_inline(project: Project) -> Project {
    let text = std::fs::read_to_string(&project.workflow).unwrap();
    assert!(text.contains("inline_input: true"), "the fixture's agent block changed");
    std::fs::write(
        &project.workflow,
        text.replace("inline_input: true", "inline_input: false"),
    )
    .unwrap();
    project
}

/// Starts the controller with both tracker tokens in its environment.
pub async fn start(project: &Project) -> (ControllerProcess, Api) {
    let controller = ControllerProcess::start(
        &project.workflow,
        &project.state_dir,
        &[("LINEAR_API_KEY", LINEAR_KEY), ("GITHUB_TOKEN", GITHUB_TOKEN)],
    )
    .await
    .expect("the controller starts");
    let api = Api::new(&controller.api(), None);
    (controller, api)
}

/// Polls `check` (synchronous: it reads a fake) until it returns `Some`, at most [`LONG`]; a timeout
/// shows the controller's state and output.
pub async fn until<T>(what: &str, controller: &ControllerProcess, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            let state = Api::new(&controller.api(), None).state().await.unwrap_or_default();
            panic!(
                "timed out waiting for {what}; state:\n{state:#}\ncontroller output:\n{}",
                tail(&controller.output())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last 80 lines of a log.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// Whether the snapshot's history shows a succeeded run of `id`.
pub fn succeeded(s: &Value, id: &str) -> bool {
    itervox_tests::controller::snap::history(s, id)
        .iter()
        .any(|r| r["status"] == "succeeded")
}

/// `GET /ready`: the status code and body.
pub async fn ready(api: &Api) -> (u16, Value) {
    api.call("GET", "/ready", None).await.expect("GET /ready answers")
}
