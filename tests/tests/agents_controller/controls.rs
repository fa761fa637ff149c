//! The per-issue and settings controls through the API, with the demo agent (and, for a backend
//! override, the real Claude Code CLI): profile and backend overrides on the next run and across a
//! restart, the agent mode in the prompt, the reviewer (automatic and on request), the open-PR guard
//! and re-analysis, and questions asked and answered as tracker comments.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use itervox_tests::controller::snap;
use itervox_tests::fake_anthropic::FakeAnthropic;
use itervox_tests::project::{IssueSpec, Project};
use serde_json::{Value, json};

use crate::support::{Lab, claude_env, cli, read};

/// Fast demo runs: 100 ms between steps.
const FAST: &str = "[demo:sleep=1]";

fn spec(id: &str, state: &str, body: &str) -> IssueSpec {
    IssueSpec::new(id, state, &format!("{body} {FAST}"))
}

/// Moves an issue by editing its tracker file, as a person would.
fn move_issue(project: &Project, id: &str, from: &str, to: &str) {
    let path = project.issues_dir.join(format!("{id}.md"));
    let text = std::fs::read_to_string(&path).unwrap();
    let moved = text.replacen(&format!("state: {from}\n"), &format!("state: {to}\n"), 1);
    assert_ne!(text, moved, "{id} is not in {from}:\n{text}");
    std::fs::write(&path, moved).unwrap();
}

/// The prompts the demo agent received, from its session transcripts (`GET /issues/{id}/sublogs`).
async fn prompts(lab: &Lab, id: &str) -> Vec<String> {
    let sublogs = lab.api.get(&format!("/issues/{id}/sublogs")).await.unwrap();
    sublogs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter_map(|m| m.strip_prefix("Prompt: "))
        .map(str::to_string)
        .collect()
}

async fn post(lab: &Lab, path: &str, body: Value) -> (u16, Value) {
    lab.api.call("POST", path, Some(body)).await.unwrap()
}

const PROFILES: &str = "  profiles:\n    careful:\n      command: itervox-worker demo-agent\n      backend: demo\n      prompt: \"Careful profile for {{ issue.identifier }}. [demo:sleep=1]\"\n    reviewer:\n      command: itervox-worker demo-agent\n      backend: demo\n      prompt: \"Review the work on {{ issue.identifier }}. [demo:sleep=1]\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_and_backend_overrides_apply_to_the_next_run_and_survive_a_restart() {
    let fake = FakeAnthropic::start().await.unwrap();
    let project = Project::new(
        &[
            spec("ABC-10", "Backlog", "[[fake:text]] Say hi."),
            spec("ABC-11", "Backlog", "Write a note."),
        ],
        PROFILES,
        "",
    );
    // The backend override runs the plain `claude` command: the user's profile puts it on PATH.
    let home = project.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bin = cli("claude").parent().unwrap().to_path_buf();
    std::fs::write(
        home.join(".profile"),
        format!("PATH=\"{}:$PATH\"\nexport PATH\n", bin.display()),
    )
    .unwrap();
    let mut lab = Lab::start(project, &claude_env(&fake)).await;

    let (status, body) = post(&lab, "/issues/ABC-10/backend", json!({"backend": "claude"})).await;
    assert_eq!((status, body["backend"].clone()), (200, json!("claude")), "{body}");
    let (status, body) = post(&lab, "/issues/ABC-11/profile", json!({"profile": "careful"})).await;
    assert_eq!((status, body["profile"].clone()), (200, json!("careful")), "{body}");
    let (status, body) = post(&lab, "/issues/ABC-11/profile", json!({"profile": "nope"})).await;
    assert_eq!(status, 400, "{body}");

    lab.controller.terminate().await.unwrap();
    lab.controller = lab.controller.restart().await.unwrap();
    lab.api = itervox_tests::controller::Api::new(&lab.controller.api(), None);
    let detail = lab.api.get("/issues/ABC-10").await.unwrap();
    assert_eq!(detail["agentBackend"], "claude", "{detail}");
    let detail = lab.api.get("/issues/ABC-11").await.unwrap();
    assert_eq!(detail["agentProfile"], "careful", "{detail}");

    move_issue(&lab.project, "ABC-10", "Backlog", "Todo");
    move_issue(&lab.project, "ABC-11", "Backlog", "Todo");
    let claude_row = lab.history("ABC-10", 1).await.remove(0);
    assert_eq!(claude_row["backend"], "claude", "{claude_row}");
    assert_eq!(claude_row["status"], "succeeded", "{claude_row}\n{}", lab.tail());
    let asked = fake.message_requests();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(asked[0].body.as_ref().unwrap().to_string().contains("Work on ABC-10"));

    let profile_row = lab.history("ABC-11", 1).await.remove(0);
    assert_eq!(
        (profile_row["profile"].clone(), profile_row["backend"].clone()),
        (json!("careful"), json!("demo")),
        "{profile_row}"
    );
    let prompts = prompts(&lab, "ABC-11").await;
    assert!(
        prompts.iter().any(|p| p.starts_with("Careful profile for ABC-11.")),
        "{prompts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_mode_setting_changes_the_prompt_of_the_next_run() {
    let project = Project::new(&[spec("ABC-20", "Todo", "First.")], "", "");
    let lab = Lab::start(project, &[]).await;
    lab.history("ABC-20", 1).await;
    let solo = prompts(&lab, "ABC-20").await;
    assert!(solo.iter().any(|p| p.starts_with("Work on ABC-20")), "{solo:#?}");
    assert!(
        !solo.iter().any(|p| p.contains("## Working with subagents")),
        "{solo:#?}"
    );

    let (status, body) = post(&lab, "/settings/agent-mode", json!({"mode": "subagents"})).await;
    assert_eq!(status, 200, "{body}");
    let workflow = std::fs::read_to_string(&lab.project.workflow).unwrap();
    assert!(workflow.contains("agent_mode: subagents"), "{workflow}");

    std::fs::write(
        lab.project.issues_dir.join("ABC-21.md"),
        format!(
            "---\nidentifier: ABC-21\ntitle: Issue ABC-21\nstate: Todo\ncreated: 2026-12-01T09:00:00Z\n---\nSecond. {FAST}\n"
        ),
    )
    .unwrap();
    lab.history("ABC-21", 1).await;
    let with_subagents = prompts(&lab, "ABC-21").await;
    assert!(
        with_subagents
            .iter()
            .any(|p| p.starts_with("Work on ABC-21") && p.contains("## Working with subagents")),
        "{with_subagents:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviewer_runs_after_a_worker_run_and_on_request_but_never_after_itself() {
    let project = Project::new(&[spec("ABC-30", "Backlog", "Write a note.")], PROFILES, "");
    let lab = Lab::start(project, &[]).await;
    let (status, body) = lab
        .api
        .call(
            "PUT",
            "/settings/reviewer",
            Some(json!({"profile": "reviewer", "autoReview": true})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let reviewer = lab.api.get("/settings/reviewer").await.unwrap();
    assert_eq!(reviewer, json!({"profile": "reviewer", "autoReview": true}));

    move_issue(&lab.project, "ABC-30", "Backlog", "Todo");
    let rows = lab.history("ABC-30", 2).await;
    assert_eq!(
        (rows[1]["kind"].clone(), rows[1]["status"].clone()),
        (json!("worker"), json!("succeeded")),
        "{rows:#?}"
    );
    assert_eq!(
        (rows[0]["kind"].clone(), rows[0]["profile"].clone()),
        (json!("reviewer"), json!("reviewer")),
        "{rows:#?}"
    );
    let s = lab
        .wait("the reviewer run finished", |s| {
            snap::running(s, "ABC-30").is_none() && snap::history(s, "ABC-30").len() >= 2
        })
        .await;
    assert_eq!(snap::history(&s, "ABC-30")[0]["status"], "succeeded");
    let prompts_seen = prompts(&lab, "ABC-30").await;
    assert!(
        prompts_seen
            .iter()
            .any(|p| p.starts_with("Review the work on ABC-30.") && p.contains("You are reviewing the work")),
        "{prompts_seen:#?}"
    );
    // A reviewer's success dispatches nothing: a few polls later there is still no third run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = lab.api.state().await.unwrap();
    assert!(snap::running(&s, "ABC-30").is_none());
    assert_eq!(snap::history(&s, "ABC-30").len(), 2);

    let (status, body) = post(&lab, "/issues/ABC-30/ai-review", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let rows = lab.history("ABC-30", 3).await;
    assert_eq!(rows[0]["kind"], "reviewer", "{rows:#?}");
    assert_eq!(rows[0]["status"], "succeeded", "{rows:#?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = lab.api.state().await.unwrap();
    assert_eq!(snap::history(&s, "ABC-30").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_pull_request_pauses_the_issue_until_it_is_reanalyzed() {
    let project = Project::new(&[spec("ABC-40", "Todo", "Open a PR. [demo:pr]")], "", "");
    let lab = Lab::start(project, &[]).await;
    let first = lab.history("ABC-40", 1).await.remove(0);
    assert_eq!(first["status"], "succeeded", "{first}");
    let pr = first["prUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("no PR: {first}"))
        .to_string();
    lab.wait("ABC-40 done", |_| {
        lab.project.issue_state("ABC-40").as_deref() == Some("Done")
    })
    .await;

    // Someone moves it back to work: the open PR holds it.
    move_issue(&lab.project, "ABC-40", "Done", "Todo");
    let s = lab
        .wait("ABC-40 paused for its PR", |s| snap::paused(s, "ABC-40"))
        .await;
    assert_eq!(s["pauseReasons"]["ABC-40"], "open_pr", "{}", s["pauseReasons"]);
    assert_eq!(snap::history(&s, "ABC-40").len(), 1);
    let logs = lab.logs("ABC-40").await;
    assert!(
        logs.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains(&pr) && m.starts_with("Paused"))),
        "{logs:#?}"
    );

    let (status, body) = post(&lab, "/issues/ABC-40/reanalyze", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let rows = lab.history("ABC-40", 2).await;
    assert_eq!(rows[0]["status"], "succeeded", "{rows:#?}");
    assert_eq!(rows[0]["kind"], "worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_goes_to_the_tracker_and_a_reply_comment_resumes_the_session() {
    let project = Project::new(&[spec("ABC-50", "Todo", "Write a note. [demo:needs-input]")], "", "");
    let text = std::fs::read_to_string(&project.workflow).unwrap();
    std::fs::write(
        &project.workflow,
        text.replace("  inline_input: true\n", "  inline_input: false\n"),
    )
    .unwrap();
    let lab = Lab::start(project, &[]).await;
    let s = lab
        .wait("ABC-50 waiting for input", |s| {
            snap::input_required(s, "ABC-50").is_some()
        })
        .await;
    let session = snap::input_required(&s, "ABC-50").unwrap()["sessionId"].clone();
    lab.wait("the question in the tracker", |_| {
        lab.project.issue_text("ABC-50").contains("The agent needs your input")
    })
    .await;
    let issue_file = lab.project.issue_text("ABC-50");
    assert!(
        issue_file.contains("should the note also say who asked for it?"),
        "{issue_file}"
    );

    // A person answers in the issue file.
    let at = (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let path = lab.project.issues_dir.join("ABC-50.md");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("\n### alice · {at}\nMention Alice from QA.\n"));
    std::fs::write(&path, text).unwrap();

    let rows = lab.history("ABC-50", 2).await;
    assert_eq!(rows[0]["status"], "succeeded", "{rows:#?}\n{}", lab.tail());
    assert_eq!(rows[0]["sessionId"], session);
    assert_eq!(rows[1]["sessionId"], session);
    let notes = read(&lab.worktree("ABC-50"), "DEMO_NOTES.md");
    assert!(notes.contains("Mention Alice from QA."), "{notes}");
    let logs = lab.logs("ABC-50").await;
    assert!(
        logs.iter()
            .any(|e| e["message"] == "Reply from alice found in the tracker"),
        "{logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_issue_that_a_person_reopens_runs_again() {
    let project = Project::new(&[spec("ABC-41", "Todo", "Write a note.")], "", "");
    let lab = Lab::start(project, &[]).await;
    assert_eq!(lab.history("ABC-41", 1).await[0]["status"], "succeeded");
    lab.wait("ABC-41 done", |_| {
        lab.project.issue_state("ABC-41").as_deref() == Some("Done")
    })
    .await;
    // The move to Done is no longer overlaid once the tracker took it, though Done is never polled.
    move_issue(&lab.project, "ABC-41", "Done", "Todo");
    let rows = lab.history("ABC-41", 2).await;
    assert_eq!(rows[0]["status"], "succeeded", "{rows:#?}");
}
