//! The protocol client against a scripted in-memory worker on a duplex pipe.

use std::time::Duration;

use itervox_protocol::worker::*;
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel, PROTOCOL_VERSION};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::*;

fn hello() -> ControllerHello {
    ControllerHello {
        protocol: PROTOCOL_VERSION,
        controller_version: "test".into(),
        workspace_root: "/tmp/ws".into(),
    }
}

fn worker_hello(protocol: u32) -> WorkerFrame {
    WorkerFrame::Hello(WorkerHello {
        protocol,
        worker_version: "0.1.0".into(),
        hostname: "h".into(),
        cpus: 2,
        load1: 0.1,
        mem_free_bytes: 1,
        workspace_root: "/tmp/ws".into(),
        sessions: vec![],
        lease_token: None,
    })
}

/// The client's read and write halves, then the scripted worker's, of an in-memory pipe.
fn pipe(
    capacity: usize,
) -> (
    ReadHalf<DuplexStream>,
    WriteHalf<DuplexStream>,
    ReadHalf<DuplexStream>,
    WriteHalf<DuplexStream>,
) {
    let (client_side, worker_side) = tokio::io::duplex(capacity);
    let (cr, cw) = tokio::io::split(client_side);
    let (wr, ww) = tokio::io::split(worker_side);
    (cr, cw, wr, ww)
}

async fn send(w: &mut (impl tokio::io::AsyncWrite + Unpin), f: &WorkerFrame) {
    let mut line = serde_json::to_vec(f).unwrap();
    line.push(b'\n');
    w.write_all(&line).await.unwrap();
}

fn log_event(seq: u64) -> WorkerFrame {
    WorkerFrame::Event(SessionEvent::Log(LogEvent {
        session_id: "s-1".into(),
        seq,
        entry: IssueLogEntry::new(LogLevel::Info, LogEventKind::Text, format!("line {seq}"), "t".into()),
    }))
}

#[tokio::test]
async fn handshake_calls_and_events() {
    let (cr, cw, wr, mut ww) = pipe(1 << 16);

    let worker = tokio::spawn(async move {
        let mut lines = BufReader::new(wr).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        assert!(matches!(
            serde_json::from_str::<ControllerFrame>(&first).unwrap(),
            ControllerFrame::Hello(_)
        ));
        // Noise before hello is tolerated.
        ww.write_all(b"Welcome to the build host\n").await.unwrap();
        send(&mut ww, &worker_hello(PROTOCOL_VERSION)).await;
        while let Some(line) = lines.next_line().await.unwrap() {
            let ControllerFrame::Request(req) = serde_json::from_str(&line).unwrap() else {
                panic!()
            };
            match req.body {
                RequestBody::Ping(_) => {
                    send(
                        &mut ww,
                        &WorkerFrame::ok(
                            req.id,
                            &Pong {
                                load1: 0.5,
                                cpus: 2,
                                running: 0,
                                lease_token: None,
                            },
                        ),
                    )
                    .await;
                }
                RequestBody::Attach(a) => {
                    send(&mut ww, &WorkerFrame::ok(req.id, &Attached { last_seq: 3 })).await;
                    for seq in a.from_seq..=3 {
                        send(&mut ww, &log_event(seq)).await;
                    }
                }
                RequestBody::Cancel(_) => {
                    send(
                        &mut ww,
                        &WorkerFrame::error(req.id, "unknown_session", "no session s-9"),
                    )
                    .await;
                }
                _ => {}
            }
        }
    });

    let client = WorkerClient::start(cr, cw, hello(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(client.hello().hostname, "h");
    let pong: Pong = client
        .call(RequestBody::Ping(Default::default()), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(pong.cpus, 2);

    let (tx, mut rx) = mpsc::channel(16);
    client.subscribe("s-1", tx);
    let attached: Attached = client
        .call(
            RequestBody::Attach(Attach {
                session_id: "s-1".into(),
                from_seq: 2,
            }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(attached.last_seq, 3);
    assert_eq!(next_seqs(&mut rx, 2).await, vec![2, 3]);

    let err = client
        .call::<Cancelled>(
            RequestBody::Cancel(Cancel {
                session_id: "s-9".into(),
                grace_ms: 1,
            }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WorkerCallError::Refused { code, .. } if code == "unknown_session"),
        "{err}"
    );

    // Dropping the worker ends the stream: the client closes and calls fail fast.
    worker.abort();
    let _ = worker.await;
    client.closed().cancelled().await;
    assert_eq!(
        client
            .call::<Pong>(RequestBody::Ping(Default::default()), Duration::from_secs(5))
            .await
            .unwrap_err(),
        WorkerCallError::Disconnected
    );
}

#[tokio::test]
async fn protocol_mismatch_names_both_versions() {
    let (cr, cw, wr, mut ww) = pipe(1 << 16);
    tokio::spawn(async move {
        let mut lines = BufReader::new(wr).lines();
        let _ = lines.next_line().await;
        send(&mut ww, &worker_hello(PROTOCOL_VERSION + 1)).await;
        let _ = lines.next_line().await;
    });
    let err = WorkerClient::start(cr, cw, hello(), Duration::from_secs(5))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&(PROTOCOL_VERSION + 1).to_string()) && msg.contains(&PROTOCOL_VERSION.to_string()),
        "{msg}"
    );
}

#[tokio::test]
async fn pending_call_fails_when_stream_ends() {
    let (cr, cw, wr, mut ww) = pipe(1 << 16);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(wr).lines();
        let _ = lines.next_line().await;
        send(&mut ww, &worker_hello(PROTOCOL_VERSION)).await;
        // Read the request, then hang up without answering.
        let _ = lines.next_line().await;
        drop(ww);
        drop(lines);
        let _ = done_tx.send(());
    });
    let client = WorkerClient::start(cr, cw, hello(), Duration::from_secs(5))
        .await
        .unwrap();
    let call = client.call::<Pong>(RequestBody::Ping(Default::default()), Duration::from_secs(30));
    let (res, _) = tokio::join!(call, done_rx);
    assert_eq!(res.unwrap_err(), WorkerCallError::Disconnected);
}

/// The seqs of the next `n` events on a subscriber's channel, however they were batched.
async fn next_seqs(rx: &mut mpsc::Receiver<EventBatch>, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no events arrived")
            .expect("the channel closed");
        assert!(!batch.is_empty(), "an empty batch");
        seqs.extend(batch.iter().map(Received::seq));
    }
    seqs
}

/// A burst of one session's events that arrives together goes to its subscriber in few messages, in
/// order; another session's events and an answer in between keep their places.
#[tokio::test]
async fn a_burst_of_events_goes_to_its_subscriber_in_batches_in_order() {
    let (cr, cw, wr, mut ww) = pipe(1 << 20);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(wr).lines();
        let _ = lines.next_line().await;
        send(&mut ww, &worker_hello(PROTOCOL_VERSION)).await;
        let _ = go_rx.await;
        // One write: 300 events of s-1, then one of s-2, an answer to nothing, then 2 more of s-1.
        let mut text = Vec::new();
        let mut frame = |f: &WorkerFrame| {
            text.extend(serde_json::to_vec(f).unwrap());
            text.push(b'\n');
        };
        for seq in 1..=300 {
            frame(&log_event(seq));
        }
        let mut other = log_event(1);
        if let WorkerFrame::Event(SessionEvent::Log(l)) = &mut other {
            l.session_id = "s-2".into();
        }
        frame(&other);
        frame(&WorkerFrame::Ok(OkAnswer {
            id: 999,
            result: Default::default(),
        }));
        frame(&log_event(301));
        frame(&log_event(302));
        ww.write_all(&text).await.unwrap();
        ww.flush().await.unwrap();
        // Keep the stream open.
        std::future::pending::<()>().await;
    });
    let client = WorkerClient::start(cr, cw, hello(), Duration::from_secs(5))
        .await
        .unwrap();
    let (tx1, mut rx1) = mpsc::channel(1024);
    let (tx2, mut rx2) = mpsc::channel(1024);
    client.subscribe("s-1", tx1);
    client.subscribe("s-2", tx2);
    go_tx.send(()).unwrap();
    let mut batches = 0;
    let mut seqs = Vec::new();
    while seqs.len() < 302 {
        let batch = tokio::time::timeout(Duration::from_secs(10), rx1.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(batch.len() <= EVENT_BATCH);
        assert!(
            batch
                .iter()
                .all(|r| matches!(r, Received::Log(l) if l.json.contains(r#""sessionId":"s-1""#))),
            "only s-1's entries"
        );
        batches += 1;
        seqs.extend(batch.iter().map(Received::seq));
    }
    assert_eq!(seqs, (1..=302).collect::<Vec<u64>>(), "every event once, in order");
    assert!(batches < 302 / 2, "{batches} messages for 302 events");
    assert_eq!(next_seqs(&mut rx2, 1).await, vec![1]);
}

#[test]
fn log_frames_decode_the_same_on_the_fast_path() {
    let mut frame = log_event(7);
    if let WorkerFrame::Event(SessionEvent::Log(log)) = &mut frame {
        log.entry.session_id = Some("s-1".into());
        log.entry.seq = Some(7);
        log.entry.detail = Some("a \"quoted\" detail".into());
    }
    let line = serde_json::to_vec(&frame).unwrap();
    assert!(
        line.starts_with(br#"{"type":"log","#),
        "the worker writes the tag first"
    );
    let WorkerFrame::Event(SessionEvent::Log(sent)) = &frame else {
        unreachable!()
    };
    let Decoded::Event {
        session,
        event: Received::Log(log),
    } = decode_frame(&line).unwrap()
    else {
        panic!("a log event");
    };
    assert_eq!(session, "s-1");
    // The entry's text is kept as sent, which is what serializing the entry gives.
    assert_eq!(
        log,
        ReceivedLog {
            seq: 7,
            event: LogEventKind::Text,
            json: serde_json::to_string(&sent.entry).unwrap(),
        }
    );
    assert_eq!(log.entry().as_ref(), Some(&sent.entry));
    // An entry that does not name its session and seq, and a log line in another field order, take the
    // generic path and get them.
    for line in [
        serde_json::to_vec(&log_event(3)).unwrap(),
        br#"{"sessionId":"s-1","type":"log","seq":3,"entry":{"level":"info","event":"text","message":"m","time":"t"}}"#
            .to_vec(),
    ] {
        let Decoded::Event {
            event: Received::Log(log),
            ..
        } = decode_frame(&line).unwrap()
        else {
            panic!("a log event");
        };
        assert_eq!(log.seq, 3);
        let entry = log.entry().unwrap();
        assert_eq!((entry.session_id.as_deref(), entry.seq), (Some("s-1"), Some(3)));
    }
    // Other forms of the same frame decode the same through the generic path: a session id with an escape,
    // a field after the entry, a space after a colon.
    let text = String::from_utf8(line.clone()).unwrap();
    for variant in [
        text.replacen(r#""sessionId":"s-1""#, r#""sessionId":"s\u002d1""#, 1),
        format!("{}{}", &text[..text.len() - 1], r#","extra":1}"#),
        text.replacen(r#"{"type":"log","#, r#"{"type": "log","#, 1),
    ] {
        assert!(
            split_log_frame(variant.as_bytes())
                .is_none_or(|(_, _, entry)| serde_json::from_str::<EntryView<'_>>(entry).is_err()),
            "{variant}"
        );
        let Decoded::Event {
            session,
            event: Received::Log(other),
        } = decode_frame(variant.as_bytes()).unwrap()
        else {
            panic!("a log event: {variant}");
        };
        assert_eq!((session.as_ref(), &other), ("s-1", &log), "{variant}");
    }
    // An entry of the wrong shape is refused on both paths.
    let bad = br#"{"type":"log","sessionId":"s-1","seq":1,"entry":{"level":"info","event":"text","message":5,"time":"t","sessionId":"s-1","seq":1}}"#;
    assert!(decode_frame(bad).is_err());
    let hello = serde_json::to_vec(&worker_hello(PROTOCOL_VERSION)).unwrap();
    assert!(matches!(
        decode_frame(&hello).unwrap(),
        Decoded::Other(WorkerFrame::Hello(_))
    ));
    assert!(decode_frame(br#"{"type":"log","seq":"#).is_err());
}

/// Progress frames reach the caller that asked for them, all before the answer returns; progress of
/// another id (or of a caller that did not ask) goes nowhere and breaks nothing.
#[tokio::test]
async fn progress_entries_reach_their_call_before_its_answer() {
    let (cr, cw, wr, mut ww) = pipe(1 << 16);
    let progress = |id: u64, message: &str| {
        WorkerFrame::Progress(ProgressFrame {
            id,
            entry: IssueLogEntry::new(LogLevel::Info, LogEventKind::Info, message, "t".into()),
        })
    };
    tokio::spawn(async move {
        let mut lines = BufReader::new(wr).lines();
        lines.next_line().await.unwrap().unwrap();
        send(&mut ww, &worker_hello(PROTOCOL_VERSION)).await;
        while let Some(line) = lines.next_line().await.unwrap() {
            let ControllerFrame::Request(req) = serde_json::from_str(&line).unwrap() else {
                panic!()
            };
            send(&mut ww, &progress(req.id + 100, "someone else's")).await;
            send(&mut ww, &progress(req.id, "fetching")).await;
            send(&mut ww, &progress(req.id, "after_create: ok")).await;
            let done = PreparedWorkspace {
                path: "/w/I-1".into(),
                created: true,
                branch: "itervox/I-1".into(),
                log: vec![],
            };
            send(&mut ww, &WorkerFrame::ok(req.id, &done)).await;
        }
    });
    let client = WorkerClient::start(cr, cw, hello(), Duration::from_secs(5))
        .await
        .unwrap();
    let body = || {
        RequestBody::PrepareWorkspace(PrepareWorkspace {
            issue: "I-1".into(),
            repo: "/r".into(),
            base_branch: "main".into(),
            branch: "itervox/I-1".into(),
            hooks: Hooks::default(),
            progress: true,
        })
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let prepared: PreparedWorkspace = client
        .call_with_progress(body(), Duration::from_secs(5), Some(tx))
        .await
        .unwrap();
    assert!(prepared.created);
    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        got.push(e.message);
    }
    assert_eq!(got, vec!["fetching", "after_create: ok"]);

    // A caller that did not ask still gets its answer.
    let again: PreparedWorkspace = client.call(body(), Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.path, "/w/I-1");
}
