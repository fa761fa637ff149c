//! The live feeds, each a task that reconnects with backoff and only sends [`Event`]s: `/events` (a
//! full state frame per change) and one issue's `/log-stream` (entries, resumed with
//! `Last-Event-ID`). A feed ends when the receiving side of its channel is dropped.

use std::time::Duration;

use chrono::Utc;
use itervox_protocol::IssueLogEntry;
use itervox_protocol::api::StateSnapshot;
use tokio::sync::mpsc;

use super::api_request::path_segment;
use super::app::Event;
use super::client::ApiClient;
use super::sse::{SseEvent, SseParser};

/// Reconnection timing.
#[derive(Debug, Clone, Copy)]
pub struct FeedOptions {
    /// Wait after the first failure; it doubles with each further failure.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// A stream silent this long is presumed dead (the server sends a keep-alive every 25 s), which
    /// catches half-open connections through SSH tunnels and sleeping laptops.
    pub silence_limit: Duration,
}

impl Default for FeedOptions {
    fn default() -> FeedOptions {
        FeedOptions {
            first_retry: Duration::from_millis(500),
            max_retry: Duration::from_secs(10),
            silence_limit: Duration::from_secs(75),
        }
    }
}

impl FeedOptions {
    /// The wait before the next attempt after `failures` consecutive failures (at least 1).
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first_retry.saturating_mul(1 << doublings).min(self.max_retry)
    }
}

/// Why a stream stopped.
enum Ended {
    /// Nobody listens any more: the feed task ends.
    ReceiverGone,
    /// The connection ended or failed; reconnect.
    Broken(String),
}

/// Reads `resp` as SSE, sending what `map` makes of each event, until the stream ends, fails, stays
/// silent past `silence`, or the receiver is gone. `delivered` counts the events sent.
async fn pump(
    mut resp: reqwest::Response,
    parser: &mut SseParser,
    silence: Duration,
    tx: &mpsc::Sender<Event>,
    delivered: &mut u64,
    mut map: impl FnMut(SseEvent) -> Option<Event>,
) -> Ended {
    loop {
        let chunk = tokio::select! {
            // Cancel-safe: dropping a pending `chunk()` only abandons a stream we are leaving.
            _ = tx.closed() => return Ended::ReceiverGone,
            read = tokio::time::timeout(silence, resp.chunk()) => read,
        };
        let bytes = match chunk {
            Err(_) => {
                return Ended::Broken(format!("no data or keep-alive for {} s", silence.as_secs()));
            }
            Ok(Err(e)) => return Ended::Broken(format!("the stream broke: {}", innermost(&e))),
            Ok(Ok(None)) => return Ended::Broken("the controller closed the stream".into()),
            Ok(Ok(Some(b))) => b,
        };
        for ev in parser.push(&bytes) {
            if let Some(event) = map(ev) {
                if tx.send(event).await.is_err() {
                    return Ended::ReceiverGone;
                }
                *delivered += 1;
            }
        }
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Sleeps `wait`, or returns false at once when the receiver is gone.
async fn pause(tx: &mpsc::Sender<Event>, wait: Duration) -> bool {
    tokio::select! {
        _ = tx.closed() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// Follows `/events`: a `Snapshot` per frame; `Disconnected` with the reason and the wait whenever
/// the stream cannot be opened or breaks, then tries again.
pub async fn follow_state(client: ApiClient, options: FeedOptions, tx: mpsc::Sender<Event>) {
    let mut failures = 0u32;
    loop {
        let error = match client.open_stream("/events", None).await {
            Err(failure) => failure.to_string(),
            Ok(resp) => {
                let mut parser = SseParser::new();
                let mut delivered = 0u64;
                let ended = pump(resp, &mut parser, options.silence_limit, &tx, &mut delivered, |ev| {
                    if ev.event != "message" {
                        return None;
                    }
                    let at = Utc::now();
                    Some(match serde_json::from_str::<StateSnapshot>(&ev.data) {
                        Ok(s) => Event::Snapshot {
                            snapshot: Box::new(s),
                            at,
                        },
                        Err(e) => Event::BadFrame {
                            error: e.to_string(),
                            at,
                        },
                    })
                })
                .await;
                if delivered > 0 {
                    failures = 0;
                }
                match ended {
                    Ended::ReceiverGone => return,
                    Ended::Broken(why) => why,
                }
            }
        };
        failures += 1;
        let retry_in = options.retry_delay(failures);
        let event = Event::Disconnected {
            error,
            retry_in,
            at: Utc::now(),
        };
        if tx.send(event).await.is_err() || !pause(&tx, retry_in).await {
            return;
        }
    }
}

/// Follows one issue's `/log-stream`: `LogConnected` when (re)opened, `Log` per entry, `LogGap` when
/// the server lost the resume position, `LogInterrupted` before each retry. Reconnects resume after
/// the last entry seen.
pub async fn follow_log(client: ApiClient, identifier: String, options: FeedOptions, tx: mpsc::Sender<Event>) {
    let route = format!("/issues/{}/log-stream", path_segment(&identifier));
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let error = match client.open_stream(&route, last_id.as_deref()).await {
            Err(failure) => failure.to_string(),
            Ok(resp) => {
                failures = 0;
                if tx
                    .send(Event::LogConnected {
                        identifier: identifier.clone(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let mut parser = SseParser::new();
                let mut delivered = 0u64;
                let id = identifier.clone();
                let ended = pump(resp, &mut parser, options.silence_limit, &tx, &mut delivered, |ev| {
                    match ev.event.as_str() {
                        "log" => match serde_json::from_str::<IssueLogEntry>(&ev.data) {
                            Ok(entry) => Some(Event::Log {
                                identifier: id.clone(),
                                entry: Box::new(entry),
                            }),
                            // One unreadable entry is skipped; the stream goes on.
                            Err(_) => None,
                        },
                        "gap" => Some(Event::LogGap { identifier: id.clone() }),
                        _ => None,
                    }
                })
                .await;
                if let Some(seen) = parser.last_event_id() {
                    last_id = Some(seen.to_string());
                }
                match ended {
                    Ended::ReceiverGone => return,
                    Ended::Broken(why) => why,
                }
            }
        };
        failures += 1;
        let retry_in = options.retry_delay(failures);
        let event = Event::LogInterrupted {
            identifier: identifier.clone(),
            error,
            retry_in,
            at: Utc::now(),
        };
        if tx.send(event).await.is_err() || !pause(&tx, retry_in).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let o = FeedOptions::default();
        let waits: Vec<u64> = (1..=7).map(|f| o.retry_delay(f).as_millis() as u64).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(o.retry_delay(0), Duration::from_millis(500));
        assert_eq!(o.retry_delay(u32::MAX), Duration::from_secs(10));
    }
}
