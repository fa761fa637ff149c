//! The real Codex CLI under the real controller, against the fake OpenAI Responses API: a tool-using
//! session that asks a question, and the resume turn of the same thread after the answer.

use itervox_tests::controller::snap;
use itervox_tests::fake_openai::FakeOpenAi;
use serde_json::json;

use crate::support::{codex_lab, issue, read};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_tool_session_asks_and_its_thread_resumes_with_the_answer() {
    let fake = FakeOpenAi::start().await.unwrap();
    let lab = codex_lab(
        &[issue(
            "ABC-7",
            "Migrate",
            "[[fake:bash-then-ask]] Create hello.txt, then ask.",
        )],
        &fake,
    )
    .await;
    let s = lab
        .wait("ABC-7 waiting for input", |s| {
            snap::input_required(s, "ABC-7").is_some()
        })
        .await;
    let waiting = snap::input_required(&s, "ABC-7").unwrap().clone();
    assert_eq!(waiting["backend"], "codex", "{waiting}");
    assert_eq!(
        waiting["context"].as_str().unwrap().trim(),
        "Should the migration target PostgreSQL or SQLite?"
    );
    assert_eq!(read(&lab.worktree("ABC-7"), "hello.txt"), "hello\n");
    let first = snap::history(&s, "ABC-7")[0].clone();
    assert!(first["inputTokens"].as_u64().unwrap() > 0, "{first}");
    let logs = lab.logs("ABC-7").await;
    assert!(
        logs.iter()
            .any(|e| e["event"] == "action" && e["message"] == "echo hello > hello.txt"),
        "{logs:#?}"
    );
    let requests_before = fake.response_requests().len();
    assert_eq!(requests_before, 2, "shell call, then the question");

    let (status, body) = lab
        .api
        .call(
            "POST",
            "/issues/ABC-7/provide-input",
            Some(json!({"message": "[[fake:resume]] SQLite."})),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let rows = lab.history("ABC-7", 2).await;
    assert_eq!(rows[0]["status"], "succeeded", "{}\n{}", rows[0], lab.tail());
    assert_eq!(rows[0]["sessionId"], rows[1]["sessionId"]);
    assert_eq!(rows[0]["backend"], "codex");

    // The resumed request carried the thread's history: the tool call and its output.
    let requests = fake.response_requests();
    assert_eq!(requests.len(), 3);
    let resumed = requests[2].body.as_ref().unwrap().to_string();
    assert!(
        resumed.contains("echo hello > hello.txt") && resumed.contains("SQLite."),
        "{resumed}"
    );
    let logs = lab.logs("ABC-7").await;
    assert!(
        logs.iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("Second turn OK"))),
        "{logs:#?}"
    );

    // One thread: its rollout (the Codex sublog) holds both turns under one session id.
    let sublogs = lab.api.get("/issues/ABC-7/sublogs").await.unwrap();
    let entries = sublogs.as_array().unwrap();
    let thread = entries[0]["sessionId"].clone();
    assert!(entries.iter().all(|e| e["sessionId"] == thread), "{sublogs:#}");
    assert!(
        entries.iter().any(|e| e["message"] == "echo hello > hello.txt"),
        "{sublogs:#}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("Second turn OK"))),
        "{sublogs:#}"
    );
}
