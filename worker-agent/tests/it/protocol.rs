//! The stdio protocol of the real binary: handshake, refusals, bad and oversized frames, concurrency,
//! and the end of stdin.

use serde_json::json;

use crate::harness::*;

#[test]
fn hello_reports_the_host_and_the_expanded_root() {
    let host = Host::new();
    let home = host.scratch("home");
    std::fs::create_dir(&home).unwrap();
    let mut w = Worker::start_with_env(&host, &[("HOME", home.to_str().unwrap())]);
    let hello = w.hello("~/ws");
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["workerVersion"], env!("CARGO_PKG_VERSION"));
    assert!(hello["cpus"].as_u64().unwrap() >= 1);
    assert!(hello["memFreeBytes"].as_u64().unwrap() > 0);
    assert!(hello["load1"].as_f64().unwrap() >= 0.0);
    assert!(!hello["hostname"].as_str().unwrap().is_empty());
    let root = std::fs::canonicalize(home.join("ws")).unwrap();
    assert_eq!(hello["workspaceRoot"], root.display().to_string());
    assert_eq!(hello["sessions"], json!([]));
    assert!(root.join(".itervox/sessions").is_dir());
    assert!(w.close().success());
}

#[test]
fn a_protocol_mismatch_names_both_versions() {
    let host = Host::new();
    let mut w = Worker::start(&host);
    w.send(&json!({"type": "hello", "protocol": 99, "controllerVersion": "9.9.9", "workspaceRoot": host.root_str()}));
    let err = w.next_frame();
    assert_eq!(err["type"], "error");
    assert_eq!(err["id"], 0);
    assert_eq!(err["code"], "protocol_mismatch");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("protocol 99") && msg.contains("protocol 1"), "{msg}");
    // Requests stay refused until a good hello.
    let answer = w.request(json!({"type": "ping"}));
    assert_eq!(answer["code"], "bad_request", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("hello first"));
    let hello = w.hello(&host.root_str());
    assert_eq!(hello["type"], "hello");
    w.ok(json!({"type": "ping"}));
}

#[test]
fn bad_lines_get_error_frames_and_the_stream_goes_on() {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);

    w.send_line("this is not json");
    let err = w.next_frame();
    assert_eq!((err["type"].as_str(), err["id"].as_u64()), (Some("error"), Some(0)));
    assert_eq!(err["code"], "bad_request");

    let err = w.request(json!({"type": "no_such_request"}));
    assert_eq!(err["code"], "bad_request");
    assert!(err["message"].as_str().unwrap().contains("no_such_request"), "{err}");

    let err = w.request(json!({"type": "cancel"}));
    assert_eq!(err["code"], "bad_request");
    assert!(err["message"].as_str().unwrap().contains("sessionId"), "{err}");

    // A line over 16 MiB is refused without being buffered, then the stream still works.
    let huge = format!(
        "{{\"type\":\"ping\",\"id\":77,\"pad\":\"{}\"}}",
        "x".repeat(17 * 1024 * 1024)
    );
    w.send_line(&huge);
    let err = w.wait_frame("frame_too_large", |v| v["code"] == "frame_too_large");
    assert_eq!(err["id"], 0);
    assert!(err["message"].as_str().unwrap().contains("16777216"), "{err}");
    let pong = w.ok(json!({"type": "ping"}));
    assert!(pong["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(pong["running"], 0);

    let err = w.request(json!({"type": "attach", "sessionId": "nope", "fromSeq": 1}));
    assert_eq!(err["code"], "unknown_session");
    let err = w.request(json!({"type": "attach", "sessionId": "../escape", "fromSeq": 1}));
    assert_eq!(err["code"], "bad_request");
    assert!(w.close().success());
}

#[test]
fn a_slow_prepare_does_not_hold_up_ping() {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);
    let gate = host.scratch("gate");
    let prepare_id = w.send_request(json!({
        "type": "prepare_workspace",
        "issue": "ITX-1",
        "repo": host.repo.display().to_string(),
        "baseBranch": "main",
        "branch": "itervox/ITX-1",
        "hooks": {"afterCreate": wait_for_gate(&gate), "timeoutMs": 60000},
    }));
    // The hook blocks until the gate exists; ping must be answered meanwhile.
    let ping_id = w.send_request(json!({"type": "ping"}));
    let pong = w.answer(ping_id);
    assert_eq!(pong["type"], "ok");
    w.drain();
    assert!(
        !w.seen.iter().any(|v| v["id"] == prepare_id),
        "prepare answered before its hook could finish"
    );
    std::fs::write(&gate, "").unwrap();
    let prepared = w.answer(prepare_id);
    assert_eq!(prepared["created"], true, "{prepared}");
}

#[test]
fn sublogs_of_an_issue_without_sessions_are_empty_and_bad_session_ids_are_refused() {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);
    let ok = w.request(json!({"type": "read_sublogs", "issue": "ITX-1"}));
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["entries"], json!([]), "{ok}");
    let err = w.request(json!({"type": "read_sublogs", "issue": "ITX-1", "sessionId": "../../etc"}));
    assert_eq!(err["code"], "bad_request", "{err}");
    let ok = w.request(json!({"type": "clear_sublogs", "issue": "ITX-1"}));
    assert_eq!(ok["type"], "ok", "{ok}");
}
