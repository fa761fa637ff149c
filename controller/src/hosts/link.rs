//! One host's link: keeps a worker protocol stream open (reconnecting with exponential backoff and
//! jitter), pings it for health and load, and follows sessions across reconnects so that every journal
//! event reaches its follower exactly once.
//!
//! The transport is behind `Connector`: a local child process (`hosts::local`) or an SSH exec channel
//! (`hosts::ssh`). The link never decides anything about runs; it reports `LinkEvent`s to the scheduler.
//!
//! Bulk reads (sublogs, which can be many MB) go over a second, lazily opened stream from the same
//! connector, so they never queue in front of live session events; it is closed when idle.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use itervox_protocol::api::HostStatus;
use itervox_protocol::worker::{Attach, ControllerHello, Ping, Pong, RequestBody, SessionRef, WorkerHello};
use itervox_protocol::{IssueLogEntry, PROTOCOL_VERSION};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::worker_client::{EventBatch, WorkerCallError, WorkerClient};

/// A connected byte stream to a worker's `serve --stdio`, and whatever keeps it alive.
pub struct Transport {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// Held for as long as the stream is in use (a child process, an SSH connection).
    pub guard: Box<dyn Any + Send + Sync>,
    /// Fires when the underlying connection dies (for transports that can tell before the stream does).
    pub closed: Option<CancellationToken>,
    /// Round-trip time of the transport itself, when it can measure one.
    pub latency: Option<Arc<dyn Fn() -> Option<f64> + Send + Sync>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// Opens transports to one host.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// Opens a new stream to the host's worker. The error is a human sentence naming what failed.
    async fn connect(&self) -> Result<Transport, String>;

    /// Opens the link's bulk stream while the main one is up (it may skip setup `connect` already did).
    async fn connect_bulk(&self) -> Result<Transport, String> {
        self.connect().await
    }
}

/// What the link tells the scheduler.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// A new stream is up; the worker's hello lists its sessions.
    Connected(Box<WorkerHello>),
    /// The stream ended or a connection attempt failed.
    Down(String),
    /// New health numbers from a ping.
    Health,
}

/// The link's current health, published on a watch channel.
#[derive(Debug, Clone)]
pub struct LinkStatus {
    pub state: HostStatus,
    pub last_error: Option<String>,
    pub latency_ms: Option<f64>,
    pub load1: Option<f64>,
    pub cpus: Option<u32>,
    pub worker_version: Option<String>,
    pub hostname: Option<String>,
    /// When the host was last seen up (connected or answered a ping); `None` if never.
    pub last_seen: Option<Instant>,
    /// Since when the host has been unreachable; `None` while up.
    pub down_since: Option<Instant>,
}

impl LinkStatus {
    fn new(now: Instant) -> Self {
        LinkStatus {
            state: HostStatus::Connecting,
            last_error: None,
            latency_ms: None,
            load1: None,
            cpus: None,
            worker_version: None,
            hostname: None,
            last_seen: None,
            down_since: Some(now),
        }
    }
}

/// Why a call through the link failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkError {
    #[error("host {host} is unreachable{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Down { host: String, reason: Option<String> },
    #[error("host {host}: {source}")]
    Call {
        host: String,
        #[source]
        source: WorkerCallError,
    },
}

impl LinkError {
    /// The worker's error code, when the worker refused the request.
    pub fn refused_code(&self) -> Option<&str> {
        match self {
            LinkError::Call {
                source: WorkerCallError::Refused { code, .. },
                ..
            } => Some(code),
            _ => None,
        }
    }

    /// True when the failure says nothing about the request itself (the host or stream went away).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            LinkError::Down { .. }
                | LinkError::Call {
                    source: WorkerCallError::Disconnected | WorkerCallError::Timeout(..),
                    ..
                }
        )
    }
}

/// Timing knobs of a link.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub workspace_root: String,
    pub handshake_timeout: Duration,
    pub ping_interval: Duration,
    pub call_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long the bulk stream stays open unused, and how long after a failed open the link keeps
    /// sending bulk calls over the main stream before trying again.
    pub bulk_idle: Duration,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            workspace_root: "~/.itervox/workspaces".into(),
            handshake_timeout: Duration::from_secs(20),
            ping_interval: Duration::from_secs(5),
            call_timeout: Duration::from_secs(120),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            bulk_idle: Duration::from_secs(60),
        }
    }
}

/// Batches a session's feed may hold before its reader waits for the follower.
const FEED_BATCHES: usize = 64;

struct Feed {
    last_seq: u64,
    tx: mpsc::Sender<EventBatch>,
    /// Which connection generation may forward events; older forwarders stop.
    generation: u64,
}

struct Shared {
    name: String,
    settings: LinkSettings,
    client: watch::Sender<Option<WorkerClient>>,
    status: watch::Sender<LinkStatus>,
    feeds: Mutex<HashMap<String, Feed>>,
    generation: Mutex<u64>,
    cancel: CancellationToken,
    events: mpsc::UnboundedSender<(String, LinkEvent)>,
    connector: Arc<dyn Connector>,
    bulk: Bulk,
}

/// The second stream for bulk calls; `opening` makes concurrent callers share one open attempt.
#[derive(Default)]
struct Bulk {
    opening: tokio::sync::Mutex<()>,
    state: Mutex<BulkState>,
}

#[derive(Default)]
struct BulkState {
    client: Option<WorkerClient>,
    /// Which opened stream `client` is (the idle reaper only closes its own).
    serial: u64,
    in_flight: usize,
    last_used: Option<Instant>,
    failed_at: Option<Instant>,
}

/// Counts a bulk call in flight; dropping it (also when the caller is cancelled) marks the stream used.
struct BulkUse<'a>(&'a Shared);

impl Drop for BulkUse<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.0.bulk.state);
        st.in_flight = st.in_flight.saturating_sub(1);
        st.last_used = Some(Instant::now());
    }
}

/// A cheap handle on one host's link.
#[derive(Clone)]
pub struct HostLink {
    shared: Arc<Shared>,
}

impl fmt::Debug for HostLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostLink").field("name", &self.shared.name).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostLink {
    /// Starts the link's connection loop. It runs until `cancel` fires or `shutdown` is called.
    pub fn spawn(
        name: String,
        connector: Arc<dyn Connector>,
        settings: LinkSettings,
        events: mpsc::UnboundedSender<(String, LinkEvent)>,
        cancel: CancellationToken,
    ) -> HostLink {
        let (client, _) = watch::channel(None);
        let (status, _) = watch::channel(LinkStatus::new(Instant::now()));
        let shared = Arc::new(Shared {
            name,
            settings,
            client,
            status,
            feeds: Mutex::new(HashMap::new()),
            generation: Mutex::new(0),
            cancel,
            events,
            connector: connector.clone(),
            bulk: Bulk::default(),
        });
        tokio::spawn(connection_loop(shared.clone(), connector));
        HostLink { shared }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Stops the connection loop and drops the stream (sessions keep running on the host).
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }

    pub fn status(&self) -> LinkStatus {
        self.shared.status.borrow().clone()
    }

    pub fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.shared.status.subscribe()
    }

    pub fn is_up(&self) -> bool {
        self.shared.client.borrow().as_ref().is_some_and(|c| !c.is_closed())
    }

    fn current(&self) -> Result<WorkerClient, LinkError> {
        match self.shared.client.borrow().as_ref() {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => Err(LinkError::Down {
                host: self.shared.name.clone(),
                reason: self.shared.status.borrow().last_error.clone(),
            }),
        }
    }

    /// Waits until the link is up, at most `timeout`.
    pub async fn wait_up(&self, timeout: Duration) -> Result<(), LinkError> {
        let mut rx = self.shared.client.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            if rx.borrow_and_update().as_ref().is_some_and(|c| !c.is_closed()) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.current().map(|_| ()),
            }
        }
    }

    /// Sends a request on the current stream and decodes the answer.
    pub async fn call<T: DeserializeOwned>(&self, body: RequestBody) -> Result<T, LinkError> {
        self.call_with_timeout(body, self.shared.settings.call_timeout).await
    }

    pub async fn call_with_timeout<T: DeserializeOwned>(
        &self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<T, LinkError> {
        let client = self.current()?;
        client.call(body, timeout).await.map_err(self.call_failed())
    }

    /// Names this host in a failed call's error.
    fn call_failed(&self) -> impl Fn(WorkerCallError) -> LinkError + '_ {
        |source| LinkError::Call {
            host: self.shared.name.clone(),
            source,
        }
    }

    /// `call` for a request that asked for progress: its entries arrive on `progress` while it runs,
    /// all of them before the answer.
    pub async fn call_with_progress<T: DeserializeOwned>(
        &self,
        body: RequestBody,
        progress: mpsc::UnboundedSender<IssueLogEntry>,
    ) -> Result<T, LinkError> {
        let client = self.current()?;
        client
            .call_with_progress(body, self.shared.settings.call_timeout, Some(progress))
            .await
            .map_err(self.call_failed())
    }

    /// Like `call`, but over the bulk stream (opened on first use), so a large answer does not hold up
    /// session events on the main stream. Falls back to the main stream when the bulk one cannot open.
    pub async fn call_bulk<T: DeserializeOwned>(&self, body: RequestBody) -> Result<T, LinkError> {
        let main = self.current()?;
        let (client, _use) = match self.bulk_client().await {
            Some(c) => (c, Some(BulkUse(&self.shared))),
            None => (main, None),
        };
        client
            .call(body, self.shared.settings.call_timeout)
            .await
            .map_err(self.call_failed())
    }

    /// True while a bulk stream is open.
    pub fn bulk_open(&self) -> bool {
        lock(&self.shared.bulk.state)
            .client
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    /// The live bulk client with its in-flight count taken, if there is one.
    fn take_bulk(&self) -> Option<WorkerClient> {
        let mut st = lock(&self.shared.bulk.state);
        let client = st.client.clone().filter(|c| !c.is_closed())?;
        st.in_flight += 1;
        Some(client)
    }

    /// The bulk stream's client (counted in flight), opening the stream if needed; `None` means use the
    /// main stream.
    async fn bulk_client(&self) -> Option<WorkerClient> {
        if let Some(c) = self.take_bulk() {
            return Some(c);
        }
        let shared = &self.shared;
        let _opening = shared.bulk.opening.lock().await;
        if let Some(c) = self.take_bulk() {
            return Some(c);
        }
        if lock(&shared.bulk.state)
            .failed_at
            .is_some_and(|t| t.elapsed() < shared.settings.bulk_idle)
        {
            return None;
        }
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return None,
            r = connect_once(shared, shared.connector.connect_bulk()) => r,
        };
        match opened {
            Ok((client, transport)) => {
                let serial = {
                    let mut st = lock(&shared.bulk.state);
                    st.serial += 1;
                    st.client = Some(client.clone());
                    st.in_flight += 1;
                    st.last_used = Some(Instant::now());
                    st.failed_at = None;
                    st.serial
                };
                tracing::debug!(host = %shared.name, "Bulk stream opened");
                tokio::spawn(reap_bulk(shared.clone(), client.clone(), transport, serial));
                Some(client)
            }
            Err(e) => {
                tracing::warn!(host = %shared.name, error = %e, "Cannot open the bulk stream; using the main stream");
                lock(&shared.bulk.state).failed_at = Some(Instant::now());
                None
            }
        }
    }

    /// Follows a session's journal from `from_seq`, across reconnects, exactly once per event. The events
    /// arrive on the returned channel, in order and in batches of what arrived together, until `unfollow`.
    pub fn follow(&self, session_id: &str, from_seq: u64) -> mpsc::Receiver<EventBatch> {
        let (tx, rx) = mpsc::channel(FEED_BATCHES);
        let generation = *lock(&self.shared.generation);
        lock(&self.shared.feeds).insert(
            session_id.to_string(),
            Feed {
                last_seq: from_seq.saturating_sub(1),
                tx,
                generation,
            },
        );
        if let Ok(client) = self.current() {
            let shared = self.shared.clone();
            let session = session_id.to_string();
            tokio::spawn(async move { attach_feed(&shared, &client, &session, generation).await });
        }
        rx
    }

    /// Stops following a session.
    pub async fn unfollow(&self, session_id: &str) {
        lock(&self.shared.feeds).remove(session_id);
        if let Ok(client) = self.current() {
            client.unsubscribe(session_id);
            let _ = client
                .call::<serde_json::Value>(
                    RequestBody::Detach(SessionRef {
                        session_id: session_id.to_string(),
                    }),
                    Duration::from_secs(10),
                )
                .await;
        }
    }
}

/// Subscribes `session` on `client` and sends `attach` from the feed's next seq.
async fn attach_feed(shared: &Arc<Shared>, client: &WorkerClient, session: &str, generation: u64) {
    let (route_tx, mut route_rx) = mpsc::channel::<EventBatch>(FEED_BATCHES);
    client.subscribe(session, route_tx);
    let from_seq = match lock(&shared.feeds).get(session) {
        Some(f) => f.last_seq + 1,
        None => return,
    };
    let attach = RequestBody::Attach(Attach {
        session_id: session.to_string(),
        from_seq,
    });
    match client.call_raw(attach, shared.settings.call_timeout).await {
        Ok(_) => {}
        Err(WorkerCallError::Refused { code, message, .. }) => {
            // The host does not know the session (its folder was removed): end the feed, so the follower
            // sees a closed channel instead of waiting forever.
            tracing::warn!(host = %shared.name, session, %code, %message, "Attach refused; ending the feed");
            lock(&shared.feeds).remove(session);
            client.unsubscribe(session);
            return;
        }
        Err(e) => {
            // The stream went away; the next connection re-attaches.
            tracing::warn!(host = %shared.name, session, error = %e, "Attach failed");
            return;
        }
    }
    let closed = client.closed();
    let session = session.to_string();
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let mut events = tokio::select! {
                _ = closed.cancelled() => break,
                e = route_rx.recv() => match e { Some(e) => e, None => break },
            };
            let (tx, last) = {
                let feeds = lock(&shared.feeds);
                let Some(feed) = feeds.get(&session) else { break };
                if feed.generation != generation {
                    break;
                }
                // What this feed already passed on (an earlier connection's attach overlapping) is dropped.
                let mut expected = feed.last_seq + 1;
                events.retain(|e| {
                    let seq = e.seq();
                    if seq < expected {
                        return false;
                    }
                    if seq > expected {
                        tracing::warn!(host = %shared.name, session = %session, expected, got = seq, "Journal gap: entries were rotated away on the host");
                    }
                    expected = seq + 1;
                    true
                });
                match events.last() {
                    Some(last) => (feed.tx.clone(), last.seq()),
                    None => continue,
                }
            };
            if tx.send(events).await.is_err() {
                break;
            }
            if let Some(feed) = lock(&shared.feeds).get_mut(&session) {
                feed.last_seq = feed.last_seq.max(last);
            }
        }
    });
}

/// Keeps the bulk stream's transport alive until the stream is idle for `bulk_idle`, the stream dies or
/// the link stops; then closes it.
async fn reap_bulk(shared: Arc<Shared>, client: WorkerClient, transport: Transport, serial: u64) {
    let closed = client.closed();
    let transport_closed = transport.closed.clone().unwrap_or_default();
    let idle = shared.settings.bulk_idle;
    let mut wait = idle;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            _ = closed.cancelled() => break,
            _ = transport_closed.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let st = lock(&shared.bulk.state);
        let idle_for = st.last_used.map(|t| t.elapsed()).unwrap_or(idle);
        if st.in_flight == 0 && idle_for >= idle {
            break;
        }
        wait = if st.in_flight > 0 { idle } else { idle - idle_for };
    }
    {
        let mut st = lock(&shared.bulk.state);
        if st.serial == serial {
            st.client = None;
        }
    }
    client.close();
    drop(transport);
    tracing::debug!(host = %shared.name, "Bulk stream closed");
}

fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.min(16)));
    let capped = exp.min(max);
    // Full jitter between half and all of the delay, so a fleet does not reconnect in lockstep.
    capped.mul_f64(0.5 + fastrand::f64() * 0.5)
}

async fn connection_loop(shared: Arc<Shared>, connector: Arc<dyn Connector>) {
    let mut attempt: u32 = 0;
    let notify = |e: LinkEvent| {
        let _ = shared.events.send((shared.name.clone(), e));
    };
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        shared.status.send_modify(|s| {
            if s.state != HostStatus::Down {
                s.state = HostStatus::Connecting;
            }
        });
        let connected = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            r = connect_once(&shared, connector.connect()) => r,
        };
        match connected {
            Ok((client, transport)) => {
                attempt = 0;
                let hello = client.hello().clone();
                let now = Instant::now();
                shared.status.send_modify(|s| {
                    s.state = HostStatus::Up;
                    s.last_error = None;
                    s.cpus = Some(hello.cpus);
                    s.load1 = Some(hello.load1);
                    s.worker_version = Some(hello.worker_version.clone());
                    s.hostname = Some(hello.hostname.clone());
                    s.last_seen = Some(now);
                    s.down_since = None;
                });
                let generation = {
                    let mut g = lock(&shared.generation);
                    *g += 1;
                    *g
                };
                let sessions: Vec<String> = {
                    let mut feeds = lock(&shared.feeds);
                    feeds.values_mut().for_each(|f| f.generation = generation);
                    feeds.keys().cloned().collect()
                };
                shared.client.send_replace(Some(client.clone()));
                notify(LinkEvent::Connected(Box::new(hello)));
                for session in sessions {
                    let (shared2, client2) = (shared.clone(), client.clone());
                    tokio::spawn(async move { attach_feed(&shared2, &client2, &session, generation).await });
                }
                let transport_closed = transport.closed.clone().unwrap_or_default();
                let latency = transport.latency.clone();
                let reason = serve_connection(&shared, &client, transport_closed, latency, &notify).await;
                client.close();
                shared.client.send_replace(None);
                drop(transport);
                let now = Instant::now();
                shared.status.send_modify(|s| {
                    s.state = HostStatus::Down;
                    s.last_error = Some(reason.clone());
                    s.down_since.get_or_insert(now);
                });
                notify(LinkEvent::Down(reason));
            }
            Err(reason) => {
                let now = Instant::now();
                shared.status.send_modify(|s| {
                    s.state = HostStatus::Down;
                    s.last_error = Some(reason.clone());
                    s.down_since.get_or_insert(now);
                });
                notify(LinkEvent::Down(reason));
            }
        }
        if shared.cancel.is_cancelled() {
            break;
        }
        let delay = backoff(attempt, shared.settings.backoff_base, shared.settings.backoff_max);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    if let Some(c) = shared.client.send_replace(None) {
        c.close();
    }
}

async fn connect_once(
    shared: &Shared,
    transport: impl std::future::Future<Output = Result<Transport, String>>,
) -> Result<(WorkerClient, Transport), String> {
    let mut transport = transport.await?;
    let hello = ControllerHello {
        protocol: PROTOCOL_VERSION,
        controller_version: env!("CARGO_PKG_VERSION").to_string(),
        workspace_root: shared.settings.workspace_root.clone(),
    };
    let reader = std::mem::replace(&mut transport.reader, Box::new(tokio::io::empty()));
    let writer = std::mem::replace(&mut transport.writer, Box::new(tokio::io::sink()));
    let client = WorkerClient::start(reader, writer, hello, shared.settings.handshake_timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok((client, transport))
}

/// Pings the worker until the stream or the transport dies; returns why it ended.
async fn serve_connection(
    shared: &Shared,
    client: &WorkerClient,
    transport_closed: CancellationToken,
    latency: Option<Arc<dyn Fn() -> Option<f64> + Send + Sync>>,
    notify: &impl Fn(LinkEvent),
) -> String {
    let closed = client.closed();
    // Each ping echoes the worker's last lease token, renewing the lease on the host's sessions as of
    // the worker's answer (a ping delivered late renews nothing new).
    let mut lease_token = client.hello().lease_token;
    let mut ticker = tokio::time::interval(shared.settings.ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return "link stopped".into(),
            _ = closed.cancelled() => return "the worker stream ended".into(),
            _ = transport_closed.cancelled() => return "the connection was lost".into(),
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        // A ping that takes longer than the interval times out; the stream stays up but the latency shows
        // it. A dead peer is noticed by the transport's keepalive or by the stream ending.
        match client
            .call::<Pong>(
                RequestBody::Ping(Ping { lease_token }),
                shared.settings.ping_interval.max(Duration::from_secs(10)),
            )
            .await
        {
            Ok(pong) => {
                lease_token = pong.lease_token;
                let rtt = started.elapsed().as_secs_f64() * 1000.0;
                let transport_rtt = latency.as_ref().and_then(|f| f());
                shared.status.send_modify(|s| {
                    s.latency_ms = Some(transport_rtt.unwrap_or(rtt));
                    s.load1 = Some(pong.load1);
                    s.cpus = Some(pong.cpus);
                    s.last_seen = Some(Instant::now());
                });
                notify(LinkEvent::Health);
            }
            Err(WorkerCallError::Disconnected) => return "the worker stream ended".into(),
            Err(e) => {
                shared.status.send_modify(|s| s.last_error = Some(e.to_string()));
                notify(LinkEvent::Health);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 0..20 {
            let d = backoff(attempt, base, max);
            let full = base.saturating_mul(2u32.pow(attempt.min(16))).min(max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
    }
}

#[cfg(test)]
mod bulk_tests;
