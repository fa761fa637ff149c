//! A `/log-stream` follower that falls far behind is resynchronised from the store, never buffered without
//! bound and never left with a hole: a client that stops reading while tens of megabytes of log entries
//! are published receives, once it reads again, every entry of its issue exactly once and in order.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use itervox::config::{Config, TrackerKind, Workflow};
use itervox::tracker::Issue;
use itervox::tracker::memory::MemoryTracker;
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use tokio_util::sync::CancellationToken;

/// Entries published while the client does not read, and the size of each message. 19,000 entries of
/// 2 KiB are 38 MiB: loopback socket buffers and HTTP buffers hold at most a few MiB of them, so well over
/// the live channel's 8,192 entries wait there and the follower must lag and resynchronise.
const ENTRIES: usize = 19_000;
const MESSAGE_BYTES: usize = 2048;
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_gets_every_entry_once_in_order() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.tracker.kind = TrackerKind::Memory;
    config.polling.interval_ms = 3_600_000;
    let workflow = Workflow {
        path: dir.path().join("WORKFLOW.md"),
        config,
        prompt_template: "Work on {{ issue.identifier }}".into(),
        content_hash: 0,
    };
    let mut options = itervox::RunOptions::new(workflow, dir.path().join("state"));
    options.tracker = Some(Arc::new(MemoryTracker::new(vec![Issue {
        id: "L-1".into(),
        identifier: "L-1".into(),
        title: "Chatty".into(),
        state: "Backlog".into(),
        ..Issue::default()
    }])));
    options.dry_run = true;
    options.watch_workflow = false;
    options.worker_binary = Some(dir.path().join("no-such-worker"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let (controller, serve) = itervox::start(options, listener, cancel.clone()).await.unwrap();
    let serve = tokio::spawn(serve);

    // The follower connects (the server subscribes it before answering), then reads nothing.
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/issues/L-1/log-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let padding = "x".repeat(MESSAGE_BYTES);
    let mut expected = Vec::with_capacity(ENTRIES);
    for i in 0..ENTRIES {
        let entry = |who: &str| {
            IssueLogEntry::new(
                LogLevel::Info,
                LogEventKind::Text,
                format!("{who} {i} {padding}"),
                "2026-12-04T22:00:00Z".into(),
            )
        };
        expected.push(controller.hub.publish("L-1", entry("L-1")).await);
        // Another issue's entries share the live channel and must not reach this follower.
        if i % 10 == 0 {
            controller.hub.publish("L-2", entry("L-2")).await;
        }
    }

    // Now read: every id of L-1, in order, each once, and nothing else.
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut got: Vec<u64> = Vec::with_capacity(ENTRIES);
    let read = tokio::time::timeout(PATIENCE, async {
        while got.len() < ENTRIES {
            let chunk = body.next().await.expect("the stream stays open").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        assert_eq!(v.trim(), "log", "only log events, no gap: {event:.200}");
                    }
                }
                let Some(id) = id else { continue }; // keep-alive comments
                let entry: serde_json::Value = serde_json::from_str(&data).unwrap();
                let message = entry["message"].as_str().unwrap();
                assert!(message.starts_with("L-1 "), "another issue's entry: {message:.40}");
                got.push(id);
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "read {} of {ENTRIES} entries within {PATIENCE:?}",
        got.len()
    );
    assert_eq!(got.len(), expected.len());
    if got != expected {
        let at = got.iter().zip(&expected).position(|(a, b)| a != b).unwrap();
        panic!(
            "entry {at}: got id {} where {} was expected (ids around: {:?})",
            got[at],
            expected[at],
            &got[at.saturating_sub(3)..(at + 3).min(got.len())]
        );
    }

    cancel.cancel();
    drop(body);
    tokio::time::timeout(PATIENCE, serve)
        .await
        .expect("the controller stops")
        .unwrap();
}
