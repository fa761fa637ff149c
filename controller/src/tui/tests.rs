//! The TUI's client side against a real controller started in-process on a loopback port (scheduler,
//! API, SQLite store, an in-memory tracker, dry run): `/state`, writes and their error envelope, the
//! bearer token, the `/events` feed through a controller restart, and `/log-stream` resuming after the
//! last entry seen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api_request::ApiRequest;
use super::app::{App, Connection, Event};
use super::client::{ApiClient, ApiFailure};
use super::draw::draw;
use super::feed::{self, FeedOptions};
use crate::config::{Config, TrackerKind, Workflow};
use crate::tracker::Issue;
use crate::tracker::memory::MemoryTracker;

/// Generous: the machine is shared and slow; the wait ends as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(20);

const WORKFLOW_TEXT: &str = "---\ntracker:\n  kind: memory\npolling:\n  interval_ms: 3600000\nagent:\n  \
                             max_concurrent_agents: 3\n---\nWork on {{ issue.identifier }}\n";

/// A controller serving on loopback until dropped.
struct Served {
    addr: SocketAddr,
    url: String,
    cancel: CancellationToken,
    serve: Option<tokio::task::JoinHandle<()>>,
    controller: crate::Controller,
}

impl Served {
    async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(serve) = self.serve.take() {
            tokio::time::timeout(PATIENCE, serve)
                .await
                .expect("the controller stops within 20 s")
                .unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts a dry-run controller with one idle issue, keeping its state in `dir`, on `addr` (or a
/// free port).
async fn serve(dir: &std::path::Path, token: Option<&str>, addr: Option<SocketAddr>) -> Served {
    let listener = match addr {
        None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        // The old listener is closed but the port may take a moment to be free again.
        Some(a) => wait_for(|| async move { tokio::net::TcpListener::bind(a).await.ok() }).await,
    };
    let addr = listener.local_addr().unwrap();
    let path = dir.join("WORKFLOW.md");
    // The file the controller persists settings into; `config` below says the same in code.
    std::fs::write(&path, WORKFLOW_TEXT).unwrap();
    let mut config = Config::default();
    config.tracker.kind = TrackerKind::Memory;
    config.polling.interval_ms = 3_600_000;
    config.agent.max_concurrent_agents = 3;
    let workflow = Workflow {
        path,
        config,
        prompt_template: "Work on {{ issue.identifier }}".into(),
        content_hash: 0,
    };
    let mut options = crate::RunOptions::new(workflow, dir.join("state"));
    options.tracker = Some(Arc::new(MemoryTracker::new(vec![Issue {
        id: "T-1".into(),
        identifier: "T-1".into(),
        title: "First".into(),
        state: "Backlog".into(),
        ..Issue::default()
    }])));
    options.dry_run = true;
    options.watch_workflow = false;
    options.api_token = token.map(str::to_string);
    options.keep_alive = Duration::from_secs(1);
    options.worker_binary = Some(dir.join("no-such-worker"));
    let cancel = CancellationToken::new();
    let (controller, serve) = crate::start(options, listener, cancel.clone()).await.unwrap();
    Served {
        addr,
        url: format!("http://{addr}"),
        cancel,
        serve: Some(tokio::spawn(serve)),
        controller,
    }
}

/// Polls `probe` until it yields a value, for at most [`PATIENCE`].
async fn wait_for<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Receives events until `pick` accepts one, for at most [`PATIENCE`]; every event also goes
/// through `app` when given, as the real loop would.
async fn next_matching<T>(
    rx: &mut mpsc::Receiver<Event>,
    mut app: Option<&mut App>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the expected event did not come within 20 s")
            .expect("the feed ended");
        let got = pick(&ev);
        if let Some(app) = app.as_deref_mut() {
            app.update(ev);
        }
        if let Some(v) = got {
            return v;
        }
    }
}

fn fast() -> FeedOptions {
    FeedOptions {
        first_retry: Duration::from_millis(100),
        max_retry: Duration::from_millis(500),
        silence_limit: Duration::from_secs(10),
    }
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| draw(app, f)).unwrap();
    let buf = terminal.backend().buffer();
    (0..24)
        .map(|y| (0..80).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
        .collect()
}

fn snapshot_workers(ev: &Event) -> Option<u32> {
    match ev {
        Event::Snapshot { snapshot, .. } => Some(snapshot.max_concurrent_agents),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_then_workers_plus_one_arrives_over_events() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), None, None).await;
    let client = ApiClient::new(&served.url, None).unwrap();

    let state = client.state().await.unwrap();
    assert_eq!(state.max_concurrent_agents, 3);
    assert_eq!(state.dry_run, Some(true));

    let mut app = App::new(
        client.base_url(),
        chrono::FixedOffset::east_opt(0).unwrap(),
        chrono::Utc::now(),
    );
    let (tx, mut rx) = mpsc::channel(64);
    let feed = tokio::spawn(feed::follow_state(client.clone(), fast(), tx));
    let first = next_matching(&mut rx, Some(&mut app), snapshot_workers).await;
    assert_eq!(first, 3, "the first /events frame comes at once");
    assert_eq!(app.connection, Connection::Live);

    let request = ApiRequest::Workers { delta: 1 };
    let outcome = client.send(&request).await;
    match &outcome {
        Ok(answer) => {
            assert_eq!(answer["workers"], 4, "{answer}");
            let seen = next_matching(&mut rx, Some(&mut app), |ev| snapshot_workers(ev).filter(|n| *n == 4)).await;
            assert_eq!(seen, 4);
            assert!(screen(&app).contains("agents 0/4"), "{}", screen(&app));
        }
        Err(other) => panic!("workers +1 failed: {other}"),
    }
    feed.abort();
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_come_back_as_the_error_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), None, None).await;
    let client = ApiClient::new(&served.url, None).unwrap();
    let cancel = client
        .send(&ApiRequest::Cancel {
            identifier: "T-1".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&cancel, ApiFailure::Api { status: 404, code, .. } if code == "not_running"),
        "{cancel:?}"
    );
    let resume = client
        .send(&ApiRequest::Resume {
            identifier: "T-1".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&resume, ApiFailure::Api { code, .. } if code == "not_paused"),
        "{resume:?}"
    );
    let reply = client
        .send(&ApiRequest::ProvideInput {
            identifier: "T-1".into(),
            message: "MIT".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&reply, ApiFailure::Api { status: 409, code, .. } if code == "not_input_required"),
        "{reply:?}"
    );
    let refresh = client.send(&ApiRequest::Refresh).await.unwrap();
    assert_eq!(refresh["queued"], true);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_is_sent_and_a_wrong_one_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), Some("s3cret"), None).await;

    let good = ApiClient::new(&served.url, Some("s3cret".into())).unwrap();
    good.state().await.unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let feed = tokio::spawn(feed::follow_state(good.clone(), fast(), tx));
    next_matching(&mut rx, None, snapshot_workers).await;
    feed.abort();

    let anonymous = ApiClient::new(&served.url, None).unwrap();
    let err = anonymous.state().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().starts_with("unauthorized:"), "{err}");

    let wrong = ApiClient::new(&served.url, Some("guess".into())).unwrap();
    let mut app = App::new(
        wrong.base_url(),
        chrono::FixedOffset::east_opt(0).unwrap(),
        chrono::Utc::now(),
    );
    let (tx, mut rx) = mpsc::channel(64);
    let feed = tokio::spawn(feed::follow_state(wrong, fast(), tx));
    let error = next_matching(&mut rx, Some(&mut app), |ev| match ev {
        Event::Disconnected { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await;
    assert_eq!(error, "unauthorized: the API token is wrong");
    assert!(screen(&app).contains("DISCONNECTED"), "{}", screen(&app));
    feed.abort();
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_feed_survives_a_controller_restart() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), None, None).await;
    let addr = served.addr;
    let client = ApiClient::new(&served.url, None).unwrap();
    let mut app = App::new(
        client.base_url(),
        chrono::FixedOffset::east_opt(0).unwrap(),
        chrono::Utc::now(),
    );
    let (tx, mut rx) = mpsc::channel(64);
    let feed = tokio::spawn(feed::follow_state(client, fast(), tx));
    next_matching(&mut rx, Some(&mut app), snapshot_workers).await;

    served.stop().await;
    let error = next_matching(&mut rx, Some(&mut app), |ev| match ev {
        Event::Disconnected { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(!error.is_empty());
    assert!(matches!(app.connection, Connection::Disconnected { .. }));
    assert!(screen(&app).contains("DISCONNECTED"), "{}", screen(&app));

    let again = serve(dir.path(), None, Some(addr)).await;
    next_matching(&mut rx, Some(&mut app), snapshot_workers).await;
    assert_eq!(app.connection, Connection::Live, "reconnected by itself");
    assert!(!screen(&app).contains("DISCONNECTED"));
    feed.abort();
    again.stop().await;
}

fn entry(message: &str) -> IssueLogEntry {
    IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Text,
        message,
        chrono::Utc::now().to_rfc3339(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_resumes_after_the_last_entry_seen() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), None, None).await;
    let addr = served.addr;
    served.controller.hub.publish("T-1", entry("one")).await;
    served.controller.hub.publish("T-1", entry("two")).await;
    served.controller.hub.publish("T-2", entry("other issue")).await;

    let client = ApiClient::new(&served.url, None).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let feed = tokio::spawn(feed::follow_log(client, "T-1".into(), fast(), tx));
    let mut seen = Vec::new();
    let mut log_message = |ev: &Event| match ev {
        Event::Log { identifier, entry } => {
            assert_eq!(identifier, "T-1");
            Some(entry.message.clone())
        }
        Event::LogGap { .. } => panic!("no gap expected"),
        _ => None,
    };
    seen.push(next_matching(&mut rx, None, &mut log_message).await);
    seen.push(next_matching(&mut rx, None, &mut log_message).await);
    served.controller.hub.publish("T-1", entry("three")).await;
    seen.push(next_matching(&mut rx, None, &mut log_message).await);

    // A restart breaks the stream; the follower reconnects with Last-Event-ID and gets only what
    // is new.
    served.stop().await;
    next_matching(&mut rx, None, |ev| {
        matches!(ev, Event::LogInterrupted { .. }).then_some(())
    })
    .await;
    let again = serve(dir.path(), None, Some(addr)).await;
    next_matching(&mut rx, None, |ev| {
        matches!(ev, Event::LogConnected { .. }).then_some(())
    })
    .await;
    again.controller.hub.publish("T-1", entry("four")).await;
    seen.push(next_matching(&mut rx, None, &mut log_message).await);
    assert_eq!(seen, ["one", "two", "three", "four"], "nothing lost, nothing repeated");
    feed.abort();
    again.stop().await;
}
