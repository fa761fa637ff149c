//! The controller's side of the worker protocol over any byte stream: handshake, requests matched to
//! their answers by id (with the progress entries some requests get before their answer), and session
//! events routed to their subscribers.
//!
//! One `WorkerClient` per live stream (a child's stdio or an SSH exec channel). It knows nothing about
//! reconnection: when the stream ends, the client is closed and every pending call fails with
//! `Disconnected`; `hosts::link` makes a new client and re-attaches.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use itervox_protocol::worker::{
    ControllerFrame, ControllerHello, LogEvent, MAX_FRAME_BYTES, Request, RequestBody, SessionEvent, WorkerFrame,
    WorkerHello,
};
use itervox_protocol::{IssueLogEntry, LogEventKind, PROTOCOL_VERSION};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why a call to the worker failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkerCallError {
    /// The stream ended before the answer arrived.
    #[error("the connection to the worker was lost")]
    Disconnected,
    /// The worker answered with an error frame.
    #[error("worker refused {kind}: {message} ({code})")]
    Refused {
        kind: &'static str,
        code: String,
        message: String,
    },
    /// The worker's answer did not have the expected shape.
    #[error("worker answered {kind} with an unexpected payload: {0}", kind = .1)]
    BadAnswer(String, &'static str),
    #[error("worker did not answer {0} within {1:?}")]
    Timeout(&'static str, Duration),
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandshakeError {
    #[error("worker closed the stream during the handshake{}", stderr_suffix(.0))]
    Closed(String),
    #[error(
        "worker speaks protocol {worker} but this controller speaks {controller}; install the matching itervox-worker"
    )]
    ProtocolMismatch { worker: String, controller: u32 },
    #[error("worker answered the handshake with {0}")]
    Unexpected(String),
    #[error("worker did not answer the handshake within {0:?}")]
    Timeout(Duration),
    #[error("could not write to the worker: {0}")]
    Io(String),
}

fn stderr_suffix(s: &str) -> String {
    if s.is_empty() { String::new() } else { format!(": {s}") }
}

type Pending = Arc<
    Mutex<
        HashMap<
            u64,
            (
                &'static str,
                oneshot::Sender<Result<serde_json::Map<String, serde_json::Value>, WorkerCallError>>,
            ),
        >,
    >,
>;
type Subscribers = Arc<Mutex<HashMap<String, mpsc::Sender<EventBatch>>>>;

/// A session event as received. A log entry is kept as its JSON text (naming its session and seq), which
/// is what the controller stores and serves, with the few facts the run acts on; the supervisor
/// journals entries in exactly that form, so a replayed burst is checked, not rebuilt.
#[derive(Debug, Clone)]
pub enum Received {
    Log(ReceivedLog),
    Other(SessionEvent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedLog {
    pub seq: u64,
    pub event: LogEventKind,
    /// The entry as JSON, with its `sessionId` and `seq`.
    pub json: String,
}

impl ReceivedLog {
    /// From a decoded event: the entry gets its session and seq, and is serialized.
    pub fn from_event(log: LogEvent) -> ReceivedLog {
        let mut entry = log.entry;
        entry.session_id.get_or_insert(log.session_id);
        entry.seq = Some(log.seq);
        ReceivedLog {
            seq: log.seq,
            event: entry.event,
            json: serde_json::to_string(&entry).unwrap_or_default(),
        }
    }

    /// The entry itself (parsed again from its text; for the few entries whose message matters).
    pub fn entry(&self) -> Option<IssueLogEntry> {
        serde_json::from_str(&self.json).ok()
    }
}

impl Received {
    /// The event's position in its session's journal.
    pub fn seq(&self) -> u64 {
        match self {
            Received::Log(l) => l.seq,
            Received::Other(e) => e.seq(),
        }
    }
}

impl From<SessionEvent> for Received {
    fn from(event: SessionEvent) -> Received {
        match event {
            SessionEvent::Log(log) => Received::Log(ReceivedLog::from_event(log)),
            other => Received::Other(other),
        }
    }
}

/// Consecutive events of one session that arrived together: a burst goes to its subscriber as one
/// message (one wake-up of the next task), in order.
pub type EventBatch = Vec<Received>;

/// Most events in one batch.
const EVENT_BATCH: usize = 128;

/// Request id → where its progress entries go, while the request is pending.
type ProgressRoutes = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<IssueLogEntry>>>>;

/// A live protocol session with one worker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkerClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    out: mpsc::Sender<ControllerFrame>,
    pending: Pending,
    subscribers: Subscribers,
    progress: ProgressRoutes,
    next_id: AtomicU64,
    closed: CancellationToken,
    hello: WorkerHello,
}

impl WorkerClient {
    /// Performs the handshake on a fresh stream and starts the reader and writer tasks.
    pub async fn start<R, W>(
        reader: R,
        writer: W,
        hello: ControllerHello,
        timeout: Duration,
    ) -> Result<WorkerClient, HandshakeError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut writer = BufWriter::new(writer);
        let mut line = serde_json::to_vec(&ControllerFrame::Hello(hello)).expect("hello serializes");
        line.push(b'\n');
        writer
            .write_all(&line)
            .await
            .map_err(|e| HandshakeError::Io(e.to_string()))?;
        writer.flush().await.map_err(|e| HandshakeError::Io(e.to_string()))?;

        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let mut buf = Vec::new();
        let worker_hello = tokio::time::timeout(timeout, async {
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .await
                    .map_err(|e| HandshakeError::Closed(e.to_string()))?;
                if n == 0 {
                    return Err(HandshakeError::Closed(String::new()));
                }
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return match serde_json::from_str::<WorkerFrame>(text) {
                    Ok(WorkerFrame::Hello(h)) if h.protocol == PROTOCOL_VERSION => Ok(h),
                    Ok(WorkerFrame::Hello(h)) => Err(HandshakeError::ProtocolMismatch {
                        worker: h.protocol.to_string(),
                        controller: PROTOCOL_VERSION,
                    }),
                    Ok(WorkerFrame::Error(e)) if e.code == "protocol_mismatch" => {
                        Err(HandshakeError::ProtocolMismatch {
                            worker: e.message,
                            controller: PROTOCOL_VERSION,
                        })
                    }
                    // Anything that is not JSON (a login banner, a shell warning) is noise before the
                    // worker's hello; skip a bounded amount of it.
                    Err(_) if !text.starts_with('{') => continue,
                    Ok(other) => Err(HandshakeError::Unexpected(format!("{other:?}"))),
                    Err(e) => Err(HandshakeError::Unexpected(format!("{e}: {text}"))),
                };
            }
        })
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))??;

        let (out_tx, out_rx) = mpsc::channel::<ControllerFrame>(256);
        let inner = Arc::new(Inner {
            out: out_tx,
            pending: Arc::default(),
            subscribers: Arc::default(),
            progress: Arc::default(),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            hello: worker_hello,
        });
        tokio::spawn(write_loop(writer, out_rx, inner.closed.clone()));
        tokio::spawn(read_loop(
            reader,
            inner.pending.clone(),
            inner.subscribers.clone(),
            inner.progress.clone(),
            inner.closed.clone(),
        ));
        Ok(WorkerClient { inner })
    }

    /// The worker's handshake answer.
    pub fn hello(&self) -> &WorkerHello {
        &self.inner.hello
    }

    /// Fires when the stream has ended.
    pub fn closed(&self) -> CancellationToken {
        self.inner.closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Ends the client: pending calls fail, the writer stops.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Routes the events of `session_id` to `tx` (replacing an earlier subscriber), in batches.
    pub fn subscribe(&self, session_id: &str, tx: mpsc::Sender<EventBatch>) {
        lock(&self.inner.subscribers).insert(session_id.to_string(), tx);
    }

    pub fn unsubscribe(&self, session_id: &str) {
        lock(&self.inner.subscribers).remove(session_id);
    }

    /// Sends a request and waits for its answer's fields.
    pub async fn call_raw(
        &self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<serde_json::Map<String, serde_json::Value>, WorkerCallError> {
        self.call_raw_with_progress(body, timeout, None).await
    }

    /// Like `call_raw`, routing the request's progress entries to `progress` until the answer. Every
    /// progress entry is on the channel before the answer is returned.
    pub async fn call_raw_with_progress(
        &self,
        body: RequestBody,
        timeout: Duration,
        progress: Option<mpsc::UnboundedSender<IssueLogEntry>>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, WorkerCallError> {
        let kind = body.kind();
        if self.is_closed() {
            return Err(WorkerCallError::Disconnected);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, (kind, tx));
        if let Some(p) = progress {
            lock(&self.inner.progress).insert(id, p);
        }
        let frame = ControllerFrame::Request(Request { id, body });
        let answer = if self.inner.out.send(frame).await.is_err() {
            lock(&self.inner.pending).remove(&id);
            Err(WorkerCallError::Disconnected)
        } else {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(WorkerCallError::Disconnected),
                Err(_) => {
                    lock(&self.inner.pending).remove(&id);
                    Err(WorkerCallError::Timeout(kind, timeout))
                }
            }
        };
        lock(&self.inner.progress).remove(&id);
        answer
    }

    /// Sends a request and decodes its answer as `T`.
    pub async fn call<T: DeserializeOwned>(&self, body: RequestBody, timeout: Duration) -> Result<T, WorkerCallError> {
        self.call_with_progress(body, timeout, None).await
    }

    /// `call` with the request's progress entries routed to `progress`.
    pub async fn call_with_progress<T: DeserializeOwned>(
        &self,
        body: RequestBody,
        timeout: Duration,
        progress: Option<mpsc::UnboundedSender<IssueLogEntry>>,
    ) -> Result<T, WorkerCallError> {
        let kind = body.kind();
        let map = self.call_raw_with_progress(body, timeout, progress).await?;
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| WorkerCallError::BadAnswer(e.to_string(), kind))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: every critical section is a single insert or
    // remove.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut rx: mpsc::Receiver<ControllerFrame>,
    closed: CancellationToken,
) {
    let mut line = Vec::with_capacity(4096);
    loop {
        let frame = tokio::select! {
            // Cancel-safe: nothing is lost if the stream closed; the frame would have nowhere to go.
            _ = closed.cancelled() => break,
            f = rx.recv() => match f { Some(f) => f, None => break },
        };
        line.clear();
        if serde_json::to_writer(&mut line, &frame).is_err() {
            continue;
        }
        line.push(b'\n');
        if writer.write_all(&line).await.is_err() {
            break;
        }
        // Drain whatever else is queued before flushing, so bursts cost one syscall.
        while let Ok(frame) = rx.try_recv() {
            line.clear();
            if serde_json::to_writer(&mut line, &frame).is_ok() {
                line.push(b'\n');
                if writer.write_all(&line).await.is_err() {
                    closed.cancel();
                    return;
                }
            }
        }
        if writer.flush().await.is_err() {
            break;
        }
    }
    closed.cancel();
    let _ = writer.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: BufReader<R>,
    pending: Pending,
    subscribers: Subscribers,
    progress: ProgressRoutes,
    closed: CancellationToken,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let routes = Routes {
        pending,
        subscribers,
        progress,
    };
    // Events of one session (named) gathered while more complete frames are already buffered.
    let mut batch: Option<Batch> = None;
    loop {
        // A whole frame already in the buffer is decoded where it lies. Otherwise what was gathered goes
        // out before the loop waits for the stream, and the frame is collected as it arrives.
        let whole = memchr::memchr(b'\n', reader.buffer());
        if whole.is_none() {
            send_batch(batch.take()).await;
            buf.clear();
            let read = tokio::select! {
                _ = closed.cancelled() => break,
                r = read_frame(&mut reader, &mut buf) => r,
            };
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Worker stream read failed");
                    break;
                }
            }
            if buf.len() > MAX_FRAME_BYTES {
                tracing::warn!(bytes = buf.len(), "Worker sent an oversized frame; skipped");
                continue;
            }
        }
        match whole {
            Some(end) => {
                handle_frame(&reader.buffer()[..end], &mut batch, &routes).await;
                reader.consume(end + 1);
            }
            None => handle_frame(&buf, &mut batch, &routes).await,
        }
    }
    send_batch(batch.take()).await;
    closed.cancel();
    for (_, (_, tx)) in lock(&routes.pending).drain() {
        let _ = tx.send(Err(WorkerCallError::Disconnected));
    }
}

/// Where the read loop hands what it reads.
struct Routes {
    pending: Pending,
    subscribers: Subscribers,
    progress: ProgressRoutes,
}

/// Events of one session (named) on their way to its subscriber.
type Batch = (String, mpsc::Sender<EventBatch>, EventBatch);

/// One frame: an event joins the batch of its session (or starts one); anything else goes where it
/// belongs, after the batch so far (answers and progress keep their order relative to the events
/// before them).
async fn handle_frame(bytes: &[u8], batch: &mut Option<Batch>, routes: &Routes) {
    let frame = match decode_frame(bytes) {
        Ok(f) => f,
        Err(e) => {
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                tracing::warn!(error = %e, line = %String::from_utf8_lossy(&bytes[..bytes.len().min(200)]), "Unreadable worker frame skipped");
            }
            return;
        }
    };
    let frame = match frame {
        Decoded::Event { session, event } => {
            if let Some((batch_session, _, events)) = batch
                && events.len() < EVENT_BATCH
                && **batch_session == *session
            {
                events.push(event);
                return;
            }
            send_batch(batch.take()).await;
            let tx = lock(&routes.subscribers).get(&*session).cloned();
            if let Some(tx) = tx {
                *batch = Some((session.into_owned(), tx, vec![event]));
            }
            return;
        }
        Decoded::Other(frame) => frame,
    };
    send_batch(batch.take()).await;
    match frame {
        WorkerFrame::Ok(ok) => {
            if let Some((_, tx)) = lock(&routes.pending).remove(&ok.id) {
                let _ = tx.send(Ok(ok.result));
            }
        }
        WorkerFrame::Error(err) => {
            if let Some((kind, tx)) = lock(&routes.pending).remove(&err.id) {
                let _ = tx.send(Err(WorkerCallError::Refused {
                    kind,
                    code: err.code,
                    message: err.message,
                }));
            } else {
                tracing::warn!(code = %err.code, message = %err.message, "Worker reported an error");
            }
        }
        WorkerFrame::Progress(p) => {
            // Unbounded, but only the entries of one call: a prepare's notes and its hook output
            // (capped on the host).
            if let Some(tx) = lock(&routes.progress).get(&p.id) {
                let _ = tx.send(p.entry);
            }
        }
        // Events were decoded as `Decoded::Event` above.
        WorkerFrame::Hello(_) | WorkerFrame::Event(_) => {}
    }
}

/// Hands a gathered batch to its subscriber. Backpressure: a slow subscriber slows this stream; nothing
/// is buffered without bound. A subscriber that went away just misses it.
async fn send_batch(batch: Option<Batch>) {
    if let Some((_, tx, events)) = batch {
        let _ = tx.send(events).await;
    }
}

#[derive(Debug)]
enum Decoded<'a> {
    /// An event of the named session.
    Event {
        session: Cow<'a, str>,
        event: Received,
    },
    Other(WorkerFrame),
}

/// A log frame as the worker writes it, split without parsing: `{"type":"log","sessionId":"<id>",
/// "seq":<n>,"entry":<entry>}` gives the id (when it needs no unescaping), the seq and the entry's text.
/// Any other form gives None (and takes the generic path).
fn split_log_frame(buf: &[u8]) -> Option<(&str, u64, &str)> {
    let rest = buf.strip_prefix(br#"{"type":"log","sessionId":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    let (session, rest) = rest.split_at(end);
    let rest = rest.strip_prefix(br#"","seq":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (seq, rest) = rest.split_at(digits);
    let seq = std::str::from_utf8(seq).ok()?.parse().ok()?;
    let entry = rest.strip_prefix(br#","entry":"#)?.strip_suffix(b"}")?;
    Some((
        std::str::from_utf8(session).ok()?,
        seq,
        std::str::from_utf8(entry).ok()?,
    ))
}

/// An `IssueLogEntry` read without copying its strings: checks the entry's shape and gives the fields
/// the controller needs, while the entry's text itself is kept as sent.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Fields are read to check their types.
struct EntryView<'a> {
    level: itervox_protocol::LogLevel,
    event: LogEventKind,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(default, borrow)]
    tool: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(default, borrow)]
    detail: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
}

/// Decodes one worker frame. Log events, nearly all of the traffic, come in the one form the worker
/// writes (tag, session, seq, then the entry): the entry is parsed once, in place, to check its shape,
/// and kept as the text it came as. The generic path buffers every frame in serde's intermediate form
/// first (the frame enum is internally tagged with an untagged variant), which costs more than the
/// decoding itself, and rebuilding each entry would cost as much again. Any other form (and an entry
/// that does not name its session and seq) takes the generic path.
fn decode_frame(buf: &[u8]) -> serde_json::Result<Decoded<'_>> {
    if let Some((session, seq, entry)) = split_log_frame(buf)
        && let Ok(view) = serde_json::from_str::<EntryView<'_>>(entry)
        && view.session_id.as_deref() == Some(session)
        && view.seq == Some(seq)
    {
        return Ok(Decoded::Event {
            event: Received::Log(ReceivedLog {
                seq,
                event: view.event,
                json: entry.to_string(),
            }),
            session: Cow::Borrowed(session),
        });
    }
    Ok(match serde_json::from_slice(buf)? {
        WorkerFrame::Event(event) => Decoded::Event {
            session: Cow::Owned(event.session_id().to_string()),
            event: event.into(),
        },
        other => Decoded::Other(other),
    })
}

/// Reads one `\n`-terminated line into `buf` without its newline, discarding the bytes of a line longer
/// than the frame limit (the caller sees an oversized buffer and skips it). Returns 0 at EOF.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut total = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if buf.len() <= MAX_FRAME_BYTES {
            buf.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(available.len());
        total += consumed;
        reader.consume(consumed);
        if done.is_some() {
            return Ok(total.max(1));
        }
    }
}

#[cfg(test)]
mod tests;
