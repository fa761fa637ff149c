//! The `/api/v1` routes that need a real controller process: clearing workspaces under running
//! sessions, Prometheus metrics, the daemon-log SSE tail and its `?identifier=` filter, the log-buffer
//! routes, and the refusal to serve an open API on a non-loopback address.

use std::path::Path;
use std::time::Duration;

use itervox_tests::binaries::bin_path;
use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::project::{IssueSpec, Project};
use itervox_tests::sse::SseStream;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some` (60 s at most).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The worktree folders under the workspace root.
fn worktrees(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .into()
}

/// reqwest needs a process-wide TLS provider even for plain HTTP.
fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn start(project: &Project) -> (ControllerProcess, Api) {
    init();
    let c = ControllerProcess::start(&project.workflow, &project.state_dir, &[])
        .await
        .expect("controller starts");
    let api = Api::new(&c.api(), None);
    (c, api)
}

/// `DELETE /workspaces` answers 202, stops the running sessions, and only once they have ended removes
/// every worktree (finished issues' too); nothing is dispatched into a worktree that is being removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_workspaces_stops_running_sessions_first_then_removes_every_worktree() {
    let project = Project::new(
        &[
            IssueSpec::new("W-1", "Todo", "[demo:sleep=120]"),
            IssueSpec::new("W-2", "Todo", "[demo:sleep=120]"),
            IssueSpec::new("W-3", "Todo", "finishes at once"),
        ],
        "",
        "",
    );
    let (c, api) = start(&project).await;
    let state = api
        .wait_state(WAIT, "W-1 and W-2 running, W-3 finished", |s| {
            snap::running(s, "W-1").is_some_and(|r| r["sessionId"].is_string())
                && snap::running(s, "W-2").is_some_and(|r| r["sessionId"].is_string())
                && snap::history(s, "W-3").iter().any(|h| h["status"] == "succeeded")
        })
        .await
        .unwrap();
    let old_sessions: Vec<String> = ["W-1", "W-2"]
        .iter()
        .map(|id| {
            snap::running(&state, id).unwrap()["sessionId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let before = worktrees(&project.workspaces);
    assert_eq!(before.len(), 3, "one worktree per issue: {before:?}");

    let (status, body) = api.call("DELETE", "/workspaces", None).await.unwrap();
    assert_eq!((status, &body["ok"]), (202, &Value::Bool(true)));

    // Every worktree removal is logged on its issue; W-3 (done, never dispatched again) stays gone.
    let removed_at = |logs: &Value| {
        logs.as_array()?
            .iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Workspace ") && m.contains(" removed"))
            })
            .map(|e| time(&e["time"]))
    };
    for id in ["W-1", "W-2", "W-3"] {
        let at = eventually(&format!("{id}'s worktree removed"), || {
            let api = api.clone();
            async move { removed_at(&api.get(&format!("/issues/{id}/logs")).await.ok()?) }
        })
        .await;
        if id == "W-3" {
            continue;
        }
        // The snapshot is republished a moment after the change; wait for the cancelled run in it.
        let s = api
            .wait_state(WAIT, &format!("{id}'s cancelled run in the history"), |s| {
                snap::history(s, id).iter().any(|h| h["status"] == "cancelled")
            })
            .await
            .unwrap();
        let cancelled = snap::history(&s, id)
            .into_iter()
            .find(|h| h["status"] == "cancelled")
            .unwrap()
            .clone();
        assert_eq!(cancelled["error"], "workspaces were cleared");
        assert!(
            time(&cancelled["finishedAt"]) <= at,
            "{id}'s session ended at {} but its worktree was removed at {at}",
            cancelled["finishedAt"]
        );
        // Still active in the tracker: dispatched again, but only after the removal.
        if let Some(r) = snap::running(&s, id) {
            assert!(!old_sessions.contains(&r["sessionId"].as_str().unwrap_or("").to_string()));
            assert!(
                time(&r["startedAt"]) >= at,
                "{id} was dispatched again at {} before its worktree was removed at {at}",
                r["startedAt"]
            );
        }
    }
    eventually("W-3's worktree gone from disk", || {
        let root = project.workspaces.clone();
        async move { (!worktrees(&root).iter().any(|w| w.contains("W-3"))).then_some(()) }
    })
    .await;
    drop(c);
}

/// `GET /metrics` is Prometheus text with every documented family, and the gauges follow the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_documented_families() {
    let project = Project::new(&[IssueSpec::new("M-1", "Todo", "[demo:sleep=120]")], "", "");
    let (c, api) = start(&project).await;
    api.wait_state(WAIT, "M-1 running", |s| snap::running(s, "M-1").is_some())
        .await
        .unwrap();
    let _events = SseStream::open(&format!("{}/events", c.api()), &[]).await.unwrap();
    let resp = reqwest::get(format!("{}/metrics", c.api())).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    let families = [
        ("itervox_running", "gauge"),
        ("itervox_retrying", "gauge"),
        ("itervox_paused", "gauge"),
        ("itervox_input_required", "gauge"),
        ("itervox_max_concurrent_agents", "gauge"),
        ("itervox_sse_clients", "gauge"),
        ("itervox_host_running", "gauge"),
        ("itervox_host_up", "gauge"),
        ("itervox_dispatches_total", "counter"),
        ("itervox_run_failures_total", "counter"),
        ("itervox_tracker_requests_total", "counter"),
        ("itervox_tracker_errors_total", "counter"),
    ];
    for (name, kind) in families {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind} missing:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP:\n{text}");
    }
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (_, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
    }
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} sample"))
            .parse()
            .unwrap()
    };
    assert_eq!(sample("itervox_running"), 1.0);
    assert_eq!(sample("itervox_max_concurrent_agents"), 6.0);
    assert!(sample("itervox_sse_clients") >= 1.0);
    assert!(sample("itervox_dispatches_total") >= 1.0);
    assert!(sample("itervox_tracker_requests_total") >= 1.0);
    assert!(text.contains("itervox_host_running{host=\"local\"} 1"), "{text}");
    assert!(text.contains("itervox_host_up{host=\"local\"} 1"), "{text}");
    drop(c);
}

/// The log routes on a real controller: `GET /logs` tails the controller's own log file (only the
/// asked issue's lines with `?identifier=`), `GET /logs/identifiers` lists issues with entries, and the
/// two DELETE routes clear one issue's entries or everyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_routes_tail_filter_list_and_clear() {
    let project = Project::new(
        &[
            IssueSpec::new("L-1", "Todo", "finishes at once"),
            IssueSpec::new("L-2", "Todo", "finishes at once"),
        ],
        "",
        "",
    );
    let (c, api) = start(&project).await;
    api.wait_state(WAIT, "L-1 and L-2 finished", |s| {
        ["L-1", "L-2"].iter().all(|id| !snap::history(s, id).is_empty())
    })
    .await
    .unwrap();

    // The unfiltered tail carries lines about both issues; the filtered one only about L-1.
    let mut all = SseStream::open(&format!("{}/logs", c.api()), &[]).await.unwrap();
    let mut seen_issues = std::collections::BTreeSet::new();
    while let Some(ev) = all.next(Duration::from_secs(5)).await {
        assert_eq!(ev.event.as_deref(), Some("log"));
        assert!(ev.id.is_some(), "every event has an id");
        let line: Value = serde_json::from_str(&ev.data).unwrap_or_else(|e| panic!("{e}: {}", ev.data));
        if let Some(issue) = line["issue"].as_str().or(line["fields"]["issue"].as_str()) {
            seen_issues.insert(issue.to_string());
        }
        if seen_issues.contains("L-1") && seen_issues.contains("L-2") {
            break;
        }
    }
    assert!(
        seen_issues.contains("L-1") && seen_issues.contains("L-2"),
        "the tail shows both issues: {seen_issues:?}"
    );
    let mut only = SseStream::open(&format!("{}/logs?identifier=L-1", c.api()), &[])
        .await
        .unwrap();
    let mut n = 0;
    while let Some(ev) = only.next(Duration::from_secs(3)).await {
        assert!(ev.data.contains("\"L-1\""), "a line not about L-1: {}", ev.data);
        assert!(!ev.data.contains("\"L-2\""), "a line about L-2: {}", ev.data);
        n += 1;
    }
    assert!(n > 0, "the filtered tail showed nothing about L-1");
    // New lines are followed: a refresh logs nothing per issue, but a dispatch of a new issue does.
    std::fs::write(
        project.issues_dir.join("L-3.md"),
        "---\nidentifier: L-3\ntitle: Issue L-3\nstate: Todo\ncreated: 2026-12-01T09:00:00Z\n---\nfinishes at once\n",
    )
    .unwrap();
    let mut follow = SseStream::open(&format!("{}/logs?identifier=L-3", c.api()), &[])
        .await
        .unwrap();
    let ev = follow.next(WAIT).await.expect("a live line about L-3");
    assert!(ev.data.contains("\"L-3\""), "{}", ev.data);
    let (status, body) = api.call("GET", "/logs?identifier=..", None).await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));

    let ids = |v: Value| -> Vec<String> { serde_json::from_value(v).unwrap() };
    let listed = ids(api.get("/logs/identifiers").await.unwrap());
    assert!(
        listed.contains(&"L-1".to_string()) && listed.contains(&"L-2".to_string()),
        "{listed:?}"
    );
    assert!(
        !api.get("/issues/L-1/logs")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );

    let (status, body) = api.call("DELETE", "/issues/L-1/logs", None).await.unwrap();
    assert_eq!((status, &body["ok"]), (200, &Value::Bool(true)));
    assert_eq!(api.get("/issues/L-1/logs").await.unwrap(), Value::Array(vec![]));
    let listed = ids(api.get("/logs/identifiers").await.unwrap());
    assert!(
        !listed.contains(&"L-1".to_string()) && listed.contains(&"L-2".to_string()),
        "{listed:?}"
    );

    let (status, body) = api.call("DELETE", "/logs", None).await.unwrap();
    assert_eq!((status, &body["ok"]), (200, &Value::Bool(true)));
    assert_eq!(api.get("/issues/L-2/logs").await.unwrap(), Value::Array(vec![]));
    let listed = ids(api.get("/logs/identifiers").await.unwrap());
    assert!(!listed.contains(&"L-2".to_string()), "{listed:?}");
    drop(c);
}

/// Without a token the controller will not serve on a non-loopback address unless WORKFLOW.md opts in;
/// it says why in one line. Nothing is sent anywhere: the check runs before the socket is bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_api_on_a_non_loopback_address_is_refused() {
    init();
    let project = Project::new(&[], "", "");
    let run = |extra_env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(bin_path("itervox"));
        cmd.args(["run", "--host", "0.0.0.0", "--port", "0", "--workflow"])
            .arg(&project.workflow)
            .arg("--state-dir")
            .arg(&project.state_dir)
            .env_remove("ITERVOX_API_TOKEN");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("refusing to serve the API"))
        .unwrap_or_else(|| panic!("no refusal line:\n{err}"));
    assert!(
        line.contains("ITERVOX_API_TOKEN") && line.contains("allow_unauthenticated"),
        "{line}"
    );
    let out = run(&[("ITERVOX_API_TOKEN", "")]);
    assert!(!out.status.success(), "an empty token is no token");
}
