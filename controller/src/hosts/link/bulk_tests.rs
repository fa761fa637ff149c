//! The link's bulk stream against scripted in-memory workers: sublog reads leave the main stream free
//! for session events, fall back to it when a second stream cannot open, and close when idle or stopped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use itervox_protocol::worker::*;
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel, PROTOCOL_VERSION};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, broadcast, oneshot};

use super::*;
use crate::hosts::worker_client::EventBatch;

/// Entries in the large sublog answer, each with a 1 KiB message: a frame of several MB.
const BIG_ENTRIES: usize = 4000;

/// Hands out in-memory workers; connections past `max_ok` fail. Records which connection (0 = first)
/// served which request.
#[derive(Debug)]
struct FakeConnector {
    connects: AtomicUsize,
    max_ok: usize,
    served: Mutex<Vec<(usize, &'static str)>>,
    /// Session event seqs to emit on every connection that attached `s-1`.
    emit: broadcast::Sender<u64>,
    /// A sublog answer sends its first half, reports on `half_written`, then waits for `release`.
    half_written: Mutex<Option<oneshot::Sender<()>>>,
    release: Notify,
}

impl FakeConnector {
    fn new(max_ok: usize) -> Arc<FakeConnector> {
        Arc::new(FakeConnector {
            connects: AtomicUsize::new(0),
            max_ok,
            served: Mutex::new(Vec::new()),
            emit: broadcast::channel(64).0,
            half_written: Mutex::new(None),
            release: Notify::new(),
        })
    }

    fn served_by(&self, kind: &str) -> Vec<usize> {
        lock(&self.served)
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(c, _)| *c)
            .collect()
    }
}

#[async_trait]
impl Connector for Arc<FakeConnector> {
    async fn connect(&self) -> Result<Transport, String> {
        let index = self.connects.fetch_add(1, Ordering::SeqCst);
        if index >= self.max_ok {
            return Err("exec request refused".into());
        }
        let (client_side, worker_side) = tokio::io::duplex(1 << 16);
        let (reader, writer) = tokio::io::split(client_side);
        tokio::spawn(fake_worker(self.clone(), index, worker_side));
        Ok(Transport {
            reader: Box::new(reader),
            writer: Box::new(writer),
            guard: Box::new(()),
            closed: None,
            latency: None,
        })
    }
}

async fn send(w: &mut (impl tokio::io::AsyncWrite + Unpin), f: &WorkerFrame) {
    let mut line = serde_json::to_vec(f).unwrap();
    line.push(b'\n');
    w.write_all(&line).await.unwrap();
}

fn big_sublogs() -> Sublogs {
    let entry = IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, "x".repeat(1024), "t".into());
    Sublogs {
        entries: vec![entry; BIG_ENTRIES],
    }
}

/// One worker stream. It handles one frame at a time like the real one, so a half-sent answer holds up
/// everything behind it on the same stream.
async fn fake_worker(fake: Arc<FakeConnector>, index: usize, stream: tokio::io::DuplexStream) {
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = BufReader::new(r).lines();
    let mut emit = fake.emit.subscribe();
    let Ok(Some(_hello)) = lines.next_line().await else {
        return;
    };
    let hello = WorkerFrame::Hello(WorkerHello {
        protocol: PROTOCOL_VERSION,
        worker_version: "0.1.0".into(),
        hostname: "h".into(),
        cpus: 2,
        load1: 0.1,
        mem_free_bytes: 1,
        workspace_root: "/tmp/ws".into(),
        sessions: vec![],
        lease_token: None,
    });
    send(&mut w, &hello).await;
    let mut attached = false;
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l { Ok(Some(l)) => l, _ => return },
            seq = emit.recv() => {
                let Ok(seq) = seq else { return };
                if attached {
                    let event = WorkerFrame::Event(SessionEvent::Log(LogEvent {
                        session_id: "s-1".into(),
                        seq,
                        entry: IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, format!("line {seq}"), "t".into()),
                    }));
                    send(&mut w, &event).await;
                }
                continue;
            }
        };
        let Ok(ControllerFrame::Request(req)) = serde_json::from_str(&line) else {
            continue;
        };
        lock(&fake.served).push((index, req.body.kind()));
        match req.body {
            RequestBody::Ping(_) => {
                let pong = Pong {
                    load1: 0.1,
                    cpus: 2,
                    running: 0,
                    lease_token: None,
                };
                send(&mut w, &WorkerFrame::ok(req.id, &pong)).await;
            }
            RequestBody::Attach(_) => {
                attached = true;
                send(&mut w, &WorkerFrame::ok(req.id, &Attached { last_seq: 0 })).await;
            }
            RequestBody::ReadSublogs(_) => {
                let mut frame = serde_json::to_vec(&WorkerFrame::ok(req.id, &big_sublogs())).unwrap();
                frame.push(b'\n');
                let (first, rest) = frame.split_at(frame.len() / 2);
                w.write_all(first).await.unwrap();
                let half = lock(&fake.half_written).take();
                if let Some(half) = half {
                    let _ = half.send(());
                    fake.release.notified().await;
                }
                w.write_all(rest).await.unwrap();
            }
            _ => send(&mut w, &WorkerFrame::ok(req.id, &Empty {})).await,
        }
    }
}

const PATIENCE: Duration = Duration::from_secs(60);

fn start(fake: &Arc<FakeConnector>, bulk_idle: Duration) -> (HostLink, CancellationToken) {
    let (events, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let settings = LinkSettings {
        bulk_idle,
        ..LinkSettings::default()
    };
    let link = HostLink::spawn("h".into(), Arc::new(fake.clone()), settings, events, cancel.clone());
    (link, cancel)
}

fn read_sublogs() -> RequestBody {
    RequestBody::ReadSublogs(SublogRef {
        issue: "ABC-1".into(),
        session_id: None,
    })
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The seqs of the next `n` events of a feed, however they were batched.
async fn next_seqs(rx: &mut mpsc::Receiver<EventBatch>, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let batch = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("no session event arrived")
            .expect("the feed ended");
        seqs.extend(batch.iter().map(|r| r.seq()));
    }
    seqs
}

#[tokio::test]
async fn a_large_sublog_read_goes_over_its_own_stream_and_session_events_pass_it() {
    let fake = FakeConnector::new(usize::MAX);
    let (link, _cancel) = start(&fake, Duration::from_secs(60));
    link.wait_up(PATIENCE).await.unwrap();
    let mut feed = link.follow("s-1", 1);
    wait_for("the attach", || !fake.served_by("attach").is_empty()).await;

    let (half_tx, half_rx) = oneshot::channel();
    *lock(&fake.half_written) = Some(half_tx);
    let reader = link.clone();
    let read = tokio::spawn(async move { reader.call_bulk::<Sublogs>(read_sublogs()).await });
    tokio::time::timeout(PATIENCE, half_rx).await.unwrap().unwrap();

    // The sublog answer is stuck halfway; the session's events still arrive, in order.
    for seq in 1..=3 {
        fake.emit.send(seq).unwrap();
    }
    assert_eq!(next_seqs(&mut feed, 3).await, vec![1, 2, 3]);
    assert!(
        !read.is_finished(),
        "the sublog answer completed before it was released"
    );

    fake.release.notify_one();
    let logs = tokio::time::timeout(PATIENCE, read).await.unwrap().unwrap().unwrap();
    assert_eq!(logs.entries.len(), BIG_ENTRIES);
    assert_eq!(fake.served_by("attach"), vec![0]);
    assert_eq!(fake.served_by("read_sublogs"), vec![1]);
    assert!(link.bulk_open());

    // A second read reuses the open bulk stream.
    let logs: Sublogs = link.call_bulk(read_sublogs()).await.unwrap();
    assert_eq!(logs.entries.len(), BIG_ENTRIES);
    assert_eq!(fake.served_by("read_sublogs"), vec![1, 1]);
    assert_eq!(fake.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn when_the_bulk_stream_cannot_open_sublog_calls_use_the_main_stream() {
    let fake = FakeConnector::new(1);
    let (link, _cancel) = start(&fake, Duration::from_secs(60));
    link.wait_up(PATIENCE).await.unwrap();
    let logs: Sublogs = link.call_bulk(read_sublogs()).await.unwrap();
    assert_eq!(logs.entries.len(), BIG_ENTRIES);
    let _: Empty = link
        .call_bulk(RequestBody::ClearSublogs(SublogRef {
            issue: "ABC-1".into(),
            session_id: None,
        }))
        .await
        .unwrap();
    assert_eq!(fake.served_by("read_sublogs"), vec![0]);
    assert_eq!(fake.served_by("clear_sublogs"), vec![0]);
    // One failed open, then the link waits before trying again instead of failing every call.
    assert_eq!(fake.connects.load(Ordering::SeqCst), 2);
    assert!(!link.bulk_open());
}

#[tokio::test]
async fn the_bulk_stream_closes_when_idle_and_reopens_on_the_next_read() {
    let fake = FakeConnector::new(usize::MAX);
    let (link, _cancel) = start(&fake, Duration::from_millis(200));
    link.wait_up(PATIENCE).await.unwrap();
    let _: Sublogs = link.call_bulk(read_sublogs()).await.unwrap();
    assert_eq!(fake.connects.load(Ordering::SeqCst), 2);
    wait_for("the idle bulk stream to close", || !link.bulk_open()).await;
    assert!(link.is_up(), "closing the bulk stream must not touch the main one");
    let _: Sublogs = link.call_bulk(read_sublogs()).await.unwrap();
    assert_eq!(fake.connects.load(Ordering::SeqCst), 3);
    assert_eq!(fake.served_by("read_sublogs"), vec![1, 2]);
}

#[tokio::test]
async fn the_bulk_stream_closes_when_the_link_shuts_down() {
    let fake = FakeConnector::new(usize::MAX);
    let (link, _cancel) = start(&fake, Duration::from_secs(3600));
    link.wait_up(PATIENCE).await.unwrap();
    let _: Sublogs = link.call_bulk(read_sublogs()).await.unwrap();
    assert!(link.bulk_open());
    link.shutdown();
    wait_for("the bulk stream to close on shutdown", || !link.bulk_open()).await;
}
