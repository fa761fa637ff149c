//! The real Claude Code CLI under the real controller, against the fake Anthropic API: a tool-using
//! session and its `--resume` continuation turn, the input-required round trip, a background subagent
//! and its sublogs, a vendor rate-limit reset, overload retries, `max_turns`, and token totals.

use chrono::{DateTime, Timelike, Utc};
use itervox_tests::controller::snap;
use itervox_tests::fake_anthropic::{FakeAnthropic, RecordedRequest};
use serde_json::{Value, json};

use crate::support::{claude_lab, issue, read};

/// The Claude Code session id each request to the fake carried.
fn claude_sessions(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r.headers
                .get("x-claude-code-session-id")
                .cloned()
                .unwrap_or_else(|| panic!("a request without a session id: {r:?}"))
        })
        .collect()
}

fn body_text(r: &RecordedRequest) -> String {
    r.body.as_ref().map(Value::to_string).unwrap_or_default()
}

fn messages(logs: &[Value]) -> Vec<String> {
    logs.iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_session_changes_the_worktree_and_resumes_for_a_second_turn() {
    let fake = FakeAnthropic::start().await.unwrap();
    // The body's marker drives turn 1; the continuation prompt names the title, whose marker drives turn 2.
    let lab = claude_lab(
        &[issue(
            "ABC-1",
            "Greet [[fake:resume]]",
            "[[fake:bash]] Create hello.txt.",
        )],
        &fake,
        3,
        3,
    )
    .await;
    let rows = lab.history("ABC-1", 1).await;
    let row = &rows[0];
    assert_eq!(row["status"], "succeeded", "{row}\n{}", lab.tail());
    assert_eq!(row["kind"], "worker");
    assert_eq!(row["backend"], "claude");
    assert_eq!(row["turnCount"], 2, "{row}");
    assert!(row["inputTokens"].as_u64().unwrap() > 0 && row["outputTokens"].as_u64().unwrap() > 0);
    assert_eq!(read(&lab.worktree("ABC-1"), "hello.txt"), "hello\n");

    // Tool call, answer, then the resumed turn: one Claude Code session throughout.
    let requests = fake.message_requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let sessions = claude_sessions(&requests);
    assert!(sessions.iter().all(|s| *s == sessions[0]), "{sessions:?}");
    let resumed = body_text(&requests[2]);
    assert!(resumed.contains("echo hello > hello.txt"), "history not resent");
    assert!(resumed.contains("Continue working on ABC-1"), "{resumed}");

    let logs = messages(&lab.logs("ABC-1").await);
    assert!(
        logs.iter().any(|m| m == "Turn 1 done; continuing with turn 2"),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|m| m.starts_with("Second turn OK")), "{logs:#?}");
    let starts = logs
        .iter()
        .filter(|m| m.starts_with(&format!("Claude Code session {} started", sessions[0])))
        .count();
    assert_eq!(starts, 2, "{logs:#?}");

    let state = lab.api.state().await.unwrap();
    assert_eq!(
        state["totals"]["inputTokens"], row["inputTokens"],
        "{}",
        state["totals"]
    );
    assert_eq!(state["totals"]["outputTokens"], row["outputTokens"]);
    assert_eq!(lab.project.issue_state("ABC-1").as_deref(), Some("Done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_turns_ends_a_run_that_keeps_calling_tools() {
    let fake = FakeAnthropic::start().await.unwrap();
    // Every turn calls a tool, so only `max_turns: 2` ends the run.
    let lab = claude_lab(
        &[issue("ABC-2", "Again [[fake:bash]]", "[[fake:bash]] Create hello.txt.")],
        &fake,
        2,
        3,
    )
    .await;
    let rows = lab.history("ABC-2", 1).await;
    assert_eq!(rows[0]["status"], "succeeded", "{}", rows[0]);
    assert_eq!(rows[0]["turnCount"], 2, "{}", rows[0]);
    assert_eq!(fake.message_requests().len(), 4, "two turns of tool call + answer");
    let logs = messages(&lab.logs("ABC-2").await);
    assert!(
        logs.iter().any(|m| m == "Turn 1 done; continuing with turn 2"),
        "{logs:#?}"
    );
    assert!(!logs.iter().any(|m| m.contains("continuing with turn 3")), "{logs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_answered_through_the_api_and_the_same_session_resumes() {
    let fake = FakeAnthropic::start().await.unwrap();
    let lab = claude_lab(
        &[issue("ABC-3", "Migrate", "[[fake:needs-input]] Migrate the database.")],
        &fake,
        3,
        3,
    )
    .await;
    let s = lab
        .wait("ABC-3 waiting for input", |s| {
            snap::input_required(s, "ABC-3").is_some()
        })
        .await;
    let waiting = snap::input_required(&s, "ABC-3").unwrap().clone();
    assert!(
        waiting["context"].as_str().unwrap().contains("PostgreSQL or SQLite"),
        "{waiting}"
    );
    let (status, body) = lab
        .api
        .call(
            "POST",
            "/issues/ABC-3/provide-input",
            Some(json!({"message": "Use SQLite. [[fake:text]]"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let rows = lab.history("ABC-3", 2).await;
    assert_eq!(rows[1]["status"], "input_required", "{}", rows[1]);
    assert_eq!(rows[0]["status"], "succeeded", "{}\n{}", rows[0], lab.tail());
    assert_eq!(rows[0]["sessionId"], rows[1]["sessionId"]);
    assert_eq!(rows[0]["sessionId"], waiting["sessionId"]);

    let requests = fake.message_requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let sessions = claude_sessions(&requests);
    assert_eq!(sessions[0], sessions[1], "the answer resumed the Claude Code session");
    let answer = body_text(&requests[1]);
    assert!(
        answer.contains("Use SQLite.") && answer.contains("PostgreSQL or SQLite?"),
        "{answer}"
    );
    let logs = messages(&lab.logs("ABC-3").await);
    assert!(logs.iter().any(|m| m == "Hello from the fake model."), "{logs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_subagent_is_followed_and_its_sublogs_are_served_and_cleared() {
    let fake = FakeAnthropic::start().await.unwrap();
    let lab = claude_lab(
        &[issue("ABC-4", "Delegate [[fake:text]]", "[[fake:task]] Do the thing.")],
        &fake,
        3,
        3,
    )
    .await;
    let rows = lab.history("ABC-4", 1).await;
    assert_eq!(rows[0]["status"], "succeeded", "{}\n{}", rows[0], lab.tail());
    assert_eq!(read(&lab.worktree("ABC-4"), "sub.txt"), "from-subagent\n");
    let logs = lab.logs("ABC-4").await;
    let subagent: Vec<String> = logs
        .iter()
        .filter(|e| e["event"] == "subagent")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    // Both init/result pairs were read: the notification turn reports the subagent done.
    assert!(subagent.iter().any(|m| m == "Write sub.txt"), "{subagent:#?}");
    assert!(
        subagent.iter().any(|m| m.starts_with("Subagent completed")),
        "{subagent:#?}"
    );
    let main = claude_sessions(&fake.message_requests())[0].clone();

    let sublogs = lab.api.get("/issues/ABC-4/sublogs").await.unwrap();
    let entries = sublogs.as_array().unwrap();
    let agent = entries
        .iter()
        .find(|e| {
            e["sessionId"].as_str().is_some_and(|s| s.starts_with("agent-"))
                && e["message"] == "echo from-subagent > sub.txt"
        })
        .unwrap_or_else(|| panic!("no subagent entry: {sublogs:#}"))["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(entries.iter().any(|e| e["sessionId"] == main.as_str()), "{sublogs:#}");

    let (status, body) = lab
        .api
        .call("DELETE", &format!("/issues/ABC-4/sublogs/{agent}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let after = lab.api.get("/issues/ABC-4/sublogs").await.unwrap();
    let after = after.as_array().unwrap();
    assert!(after.iter().all(|e| e["sessionId"] != agent.as_str()), "{after:#?}");
    assert!(after.iter().any(|e| e["sessionId"] == main.as_str()));

    let (status, body) = lab.api.call("DELETE", "/issues/ABC-4/sublogs", None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let cleared = lab.api.get("/issues/ABC-4/sublogs").await.unwrap();
    assert_eq!(cleared, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_limit_waits_for_the_vendor_reset_time() {
    let fake = FakeAnthropic::start().await.unwrap();
    // A whole minute, 40 minutes on: the reset the API announces.
    let now = Utc::now();
    let reset = (now + chrono::Duration::minutes(41))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let body = format!("[[fake:usage-limit:{}]] Say hi.", reset.timestamp());
    let lab = claude_lab(&[issue("ABC-5", "Limited", &body)], &fake, 3, 3).await;
    let s = lab
        .wait("ABC-5 retrying", |s| snap::retrying(s, "ABC-5").is_some())
        .await;
    let retry = snap::retrying(&s, "ABC-5").unwrap();
    let due: DateTime<Utc> = retry["dueAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(due, reset, "{retry}");
    assert_eq!(retry["attempt"], 2);
    assert!(retry["error"].as_str().unwrap().contains("429"), "{retry}");
    let rows = snap::history(&s, "ABC-5");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "failed");
    // Claude Code did not sit out the wait itself: one request, no retries.
    assert_eq!(fake.message_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_api_is_retried_then_fails_clearly() {
    let fake = FakeAnthropic::start().await.unwrap();
    let lab = claude_lab(&[issue("ABC-6", "Busy", "[[fake:overloaded]] Say hi.")], &fake, 3, 1).await;
    let s = lab
        .wait("ABC-6 paused after its retry", |s| snap::paused(s, "ABC-6"))
        .await;
    assert_eq!(s["pauseReasons"]["ABC-6"], "retries_exhausted", "{}", s["pauseReasons"]);
    let rows = snap::history(&s, "ABC-6");
    assert_eq!(rows.len(), 2, "the first attempt and one retry: {rows:#?}");
    for row in &rows {
        assert_eq!(row["status"], "failed");
        let error = row["error"].as_str().unwrap();
        assert!(error.contains("529") && error.contains("Overloaded"), "{error}");
    }
    assert_eq!(
        (rows[1]["attempt"].clone(), rows[0]["attempt"].clone()),
        (json!(1), json!(2))
    );
    // CLAUDE_CODE_MAX_RETRIES=2: each attempt is a request and two retries.
    assert_eq!(fake.message_requests().len(), 6);
    let logs = messages(&lab.logs("ABC-6").await);
    assert!(
        logs.iter()
            .any(|m| m.starts_with("Attempt 1 failed") && m.contains("Retry 2 at")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|m| m.contains("no retries are left; the issue is paused")),
        "{logs:#?}"
    );
}
