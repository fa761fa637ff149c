//! The HTTP plumbing the Linear and GitHub adapters share: building the client (TLS provider,
//! timeouts, user agent, no proxy for loopback endpoints) and reading the headers every remote
//! tracker uses to talk about time (`Retry-After`, epoch resets).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use reqwest::header::HeaderMap;

use super::TrackerError;

/// How long one request may take before it counts as a transport failure with an unknown outcome.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses an endpoint from the configuration, naming it when it is not a usable http(s) URL.
pub(crate) fn parse_endpoint(endpoint: &str) -> Result<Url, TrackerError> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| TrackerError::Malformed(format!("tracker.endpoint {endpoint:?} is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(TrackerError::Malformed(format!(
            "tracker.endpoint {endpoint:?} must be an http(s) URL with a host"
        ))),
    }
}

/// The client for one adapter. Requests to a loopback endpoint never go through a proxy, so tests
/// and local fakes stay on the machine whatever the environment says.
pub(crate) fn build_client(endpoint: &Url, timeout: Duration) -> Result<reqwest::Client, TrackerError> {
    // reqwest is built without a bundled crypto provider; install ring's unless the process already
    // chose one (installing twice is refused, which is fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("itervox/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout);
    if is_loopback(endpoint) {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| TrackerError::Transport(format!("cannot build the HTTP client: {e}")))
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A transport failure (connect, timeout, reset), worded with what was being done.
pub(crate) fn transport_error(what: &str, e: &reqwest::Error) -> TrackerError {
    if e.is_timeout() {
        TrackerError::Transport(format!("{what}: timed out"))
    } else {
        TrackerError::Transport(format!("{what}: {e}"))
    }
}

/// A header as an unsigned number; `None` when missing or not a number.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// An epoch timestamp in seconds or milliseconds (Linear sends milliseconds, GitHub seconds): values
/// too large to be seconds before the year 5138 are read as milliseconds.
pub(crate) fn epoch_to_time(value: u64) -> Option<DateTime<Utc>> {
    let value = i64::try_from(value).ok()?;
    if value >= 100_000_000_000 {
        DateTime::from_timestamp_millis(value)
    } else {
        DateTime::from_timestamp(value, 0)
    }
}

/// `Retry-After` as a point in time: delay seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let raw = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(now + chrono::Duration::seconds(i64::try_from(secs).ok()?));
    }
    DateTime::parse_from_rfc2822(raw).ok().map(|t| t.with_timezone(&Utc))
}

/// At most `max` characters of a response body, for error messages.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let body = body.trim();
    match body.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn epochs_in_seconds_and_milliseconds() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(epoch_to_time(1_700_000_000), Some(t));
        assert_eq!(epoch_to_time(1_700_000_000_000), Some(t));
    }

    #[test]
    fn retry_after_as_seconds_or_date() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h, now), Some(now + chrono::Duration::seconds(30)));
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(
            retry_after(&h, now).map(|t| t.to_rfc3339()),
            Some("2015-10-21T07:28:00+00:00".to_string())
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(parse_endpoint("https://api.github.com").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:8080/api/v3").is_ok());
        assert!(matches!(
            parse_endpoint("api.github.com"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_endpoint("file:///tmp/x"),
            Err(TrackerError::Malformed(_))
        ));
    }

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        assert_eq!(excerpt("  héllo  ", 10), "héllo");
        assert_eq!(excerpt("héllo", 2), "hé…");
    }
}
