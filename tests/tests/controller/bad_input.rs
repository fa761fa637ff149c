//! Bad input over HTTP gets the JSON error envelope with a stable code (malformed JSON, wrong types,
//! unknown issues, wrong methods), and a broken WORKFLOW.md edit is reported as `configInvalid` while the
//! running session carries on; fixing the file clears it.

use itervox_tests::controller::snap;
use itervox_tests::project::IssueSpec;
use serde_json::{Value, json};

use crate::{Setup, s};

/// Sends `body` as raw bytes; returns the status, the `Allow` header and the JSON body.
async fn raw(t: &Setup, method: &str, path: &str, body: &str) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", t.ctl.api()),
        )
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let allow = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status >= 400 {
        assert!(
            ct.starts_with("application/json"),
            "{method} {path}: error content type {ct:?}"
        );
        assert!(
            v["error"]["code"].is_string() && !s(&v["error"], "message").is_empty(),
            "{method} {path}: the error envelope, got {text:?}"
        );
    }
    (status, allow, v)
}

/// The 1-based number of the line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("the line is there")
        + 1
}

fn code(v: &Value) -> &str {
    s(&v["error"], "code")
}

#[tokio::test]
async fn bad_requests_get_the_error_envelope() {
    let t = Setup::start(&[IssueSpec::new("B-1", "Backlog", "Not yet.")], &[]).await;

    // Malformed JSON.
    let (st, _, v) = raw(&t, "POST", "/settings/workers", "{\"workers\": 3").await;
    assert_eq!((st, code(&v)), (400, "invalid_json"), "{v}");
    let (st, _, v) = raw(&t, "POST", "/issues/B-1/provide-input", "not json").await;
    assert_eq!((st, code(&v)), (400, "invalid_json"), "{v}");
    // Valid JSON of the wrong shape or types: bad_request naming the field.
    let (st, _, v) = raw(&t, "POST", "/settings/workers", r#"{"workers":"three"}"#).await;
    assert_eq!(
        (st, code(&v), s(&v["error"], "field")),
        (400, "bad_request", "workers"),
        "{v}"
    );
    let (st, _, v) = raw(&t, "POST", "/issues/B-1/provide-input", r#"{"message":42}"#).await;
    assert_eq!(
        (st, code(&v), s(&v["error"], "field")),
        (400, "bad_request", "message"),
        "{v}"
    );
    let (st, _, v) = raw(&t, "POST", "/issues/B-1/provide-input", r#"{"msg":"hi"}"#).await;
    assert_eq!((st, code(&v)), (400, "bad_request"), "{v}");
    let (st, _, v) = raw(&t, "POST", "/settings/workspace/auto-clear", "[true]").await;
    assert_eq!((st, code(&v)), (400, "bad_request"), "{v}");
    let (st, _, v) = raw(&t, "PUT", "/settings/dispatch-strategy", r#"{"strategy":"random"}"#).await;
    assert_eq!((st, code(&v)), (400, "bad_request"), "{v}");
    // Nothing changed.
    let state = t.state_now().await;
    assert_eq!(state["maxConcurrentAgents"], 6, "{state:#}");

    // Unknown identifiers.
    let (st, _, v) = raw(&t, "GET", "/issues/NOPE-1", "").await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, _, v) = raw(&t, "POST", "/issues/NOPE-1/cancel", "").await;
    assert_eq!((st, code(&v)), (404, "not_running"), "{v}");
    let (st, _, v) = raw(&t, "DELETE", "/issues/NOPE-1", "").await;
    assert_eq!((st, code(&v)), (404, "not_running"), "{v}");
    let (st, _, v) = raw(&t, "POST", "/issues/NOPE-1/resume", "").await;
    assert_eq!((st, code(&v)), (404, "not_paused"), "{v}");
    let (st, _, v) = raw(&t, "POST", "/issues/NOPE-1/terminate", "").await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, _, v) = raw(&t, "GET", "/no/such/route", "").await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    // An identifier that could reach a path is refused before anything uses it.
    let (st, _, v) = raw(&t, "GET", "/issues/-rf/logs", "").await;
    assert_eq!(
        (st, code(&v), s(&v["error"], "field")),
        (400, "bad_request", "identifier"),
        "{v}"
    );

    // Wrong methods: 405 with Allow.
    let (st, allow, v) = raw(&t, "PUT", "/state", "{}").await;
    assert_eq!((st, code(&v)), (405, "method_not_allowed"), "{v}");
    let allow = allow.expect("405 carries Allow");
    assert!(allow.contains("GET"), "{allow}");
    let (st, allow, v) = raw(&t, "GET", "/issues/B-1/cancel", "").await;
    assert_eq!((st, code(&v)), (405, "method_not_allowed"), "{v}");
    assert!(allow.expect("Allow").contains("POST"));
    let (st, allow, v) = raw(
        &t,
        "POST",
        "/settings/dispatch-strategy",
        r#"{"strategy":"least-loaded"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (405, "method_not_allowed"), "{v}");
    assert!(allow.expect("Allow").contains("PUT"));

    // The controller is fine afterwards.
    let (st, _, v) = raw(&t, "POST", "/settings/workers", r#"{"workers":3}"#).await;
    assert_eq!((st, v), (200, json!({"workers": 3})));
}

#[tokio::test]
async fn a_broken_workflow_edit_is_reported_and_the_running_session_finishes() {
    let t = Setup::start(&[IssueSpec::new("B-2", "Todo", "Long enough. [demo:sleep=25]")], &[]).await;
    let st = t.wait("B-2 running", |s| snap::running(s, "B-2").is_some()).await;
    let session = s(snap::running(&st, "B-2").unwrap(), "sessionId").to_string();

    let good = std::fs::read_to_string(&t.project.workflow).unwrap();
    let broken = good.replace("  interval_ms: 300\n", "  interval_ms: [300\n");
    assert_ne!(good, broken);
    std::fs::write(&t.project.workflow, &broken).unwrap();
    let st = t.wait("configInvalid", |s| s["configInvalid"].is_object()).await;
    let ci = &st["configInvalid"];
    assert_eq!(s(ci, "path"), t.project.workflow.display().to_string());
    let error = s(ci, "error");
    // The parser notices the unclosed list on the next line; either way the broken line is named.
    let line = line_of(&broken, "interval_ms: [300");
    assert!(
        error.contains("WORKFLOW.md:")
            && error.contains("invalid YAML")
            && (error.contains(&format!("WORKFLOW.md:{line}:")) || error.contains(&format!("line {line} "))),
        "the error names the file and line {line}: {error}"
    );
    let ready = t.api.call("GET", "/ready", None).await.unwrap().1;
    assert_eq!(ready["configInvalid"], true, "{ready}");
    // The session is untouched.
    assert_eq!(
        snap::running(&st, "B-2").map(|r| s(r, "sessionId")),
        Some(session.as_str()),
        "{st:#}"
    );

    // A wrong type is caught the same way (the file stays invalid, still reported).
    let wrong_type = good.replace("  max_concurrent_agents: 6\n", "  max_concurrent_agents: lots\n");
    std::fs::write(&t.project.workflow, &wrong_type).unwrap();
    let st = t
        .wait("configInvalid for the wrong type", |s| {
            s["configInvalid"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("agent.max_concurrent_agents"))
        })
        .await;
    let error = s(&st["configInvalid"], "error");
    let line = line_of(&wrong_type, "max_concurrent_agents: lots");
    assert!(
        error.contains(&format!("WORKFLOW.md:{line}:")) && error.contains("\"lots\""),
        "the error names the line {line}, the key and the value: {error}"
    );
    assert_eq!(
        st["maxConcurrentAgents"], 6,
        "the last good configuration stays in force"
    );

    std::fs::write(&t.project.workflow, &good).unwrap();
    t.wait("configInvalid cleared", |s| {
        s.get("configInvalid").is_none_or(Value::is_null)
    })
    .await;

    let st = t
        .wait("B-2 succeeded", |s| {
            snap::history(s, "B-2")
                .first()
                .is_some_and(|h| h["status"] == "succeeded")
        })
        .await;
    let hist = snap::history(&st, "B-2");
    assert_eq!(hist.len(), 1, "{hist:#?}");
    assert_eq!(s(hist[0], "sessionId"), session);
    t.wait_tracker_state("B-2", "Done").await;
}
