//! The GitHub REST transport: authentication and version headers, conditional GETs (an ETag and
//! body cached per URL, sent back as `If-None-Match`; a `304` costs no request budget), `Link`
//! pagination, the `X-RateLimit-*` budget, and the mapping of statuses to error kinds.
//!
//! Rate limits follow GitHub's rules: a `403`/`429` with `X-RateLimit-Remaining: 0` waits for
//! `X-RateLimit-Reset`; one with `Retry-After` waits that long; any other `429`, or a `403` that says
//! "secondary rate limit", waits a minute. While a wait is in force no request is sent at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::tracker::http;
use crate::tracker::rate_gate::{Call, RateGate};
use crate::tracker::{RateBudget, TrackerError};

/// The REST API version the adapter is written against.
const API_VERSION: &str = "2022-11-28";
/// How long to hold off after a secondary rate limit that names no wait.
const SECONDARY_WAIT: chrono::Duration = chrono::Duration::seconds(60);
/// Cached conditional responses; the cache is cleared when it grows past this.
const MAX_CACHED: usize = 2048;

/// One answer: the body (from the cache after a `304`) and the `rel="next"` page, if any.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) body: String,
    pub(super) next: Option<Url>,
}

impl Answer {
    pub(super) fn json(&self, what: &str) -> Result<Value, TrackerError> {
        serde_json::from_str(&self.body)
            .map_err(|e| TrackerError::Malformed(format!("GitHub {what}: the response is not JSON: {e}")))
    }
}

#[derive(Debug, Clone)]
struct Cached {
    etag: String,
    answer: Answer,
}

#[derive(Debug)]
pub(super) struct Rest {
    http: reqwest::Client,
    base: Url,
    token: String,
    gate: Mutex<RateGate>,
    cache: Mutex<HashMap<String, Cached>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rest {
    pub(super) fn new(base: Url, token: String, reserve_percent: u32, timeout: Duration) -> Result<Self, TrackerError> {
        Ok(Rest {
            http: http::build_client(&base, timeout)?,
            base,
            token,
            gate: Mutex::new(RateGate::new(reserve_percent)),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn with_timeout(mut self, timeout: Duration) -> Result<Self, TrackerError> {
        self.http = http::build_client(&self.base, timeout)?;
        Ok(self)
    }

    /// `base` + the path segments (each percent-encoded) + query pairs.
    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(super) fn budget(&self) -> Option<RateBudget> {
        lock(&self.gate).budget()
    }

    /// A conditional GET.
    pub(super) async fn get(&self, call: Call, url: Url) -> Result<Answer, TrackerError> {
        self.execute(call, Method::GET, url, None).await
    }

    /// A write (`POST`, `PATCH`, `DELETE`) with an optional JSON body.
    pub(super) async fn send(&self, method: Method, url: Url, body: Option<Value>) -> Result<Answer, TrackerError> {
        self.execute(Call::Other, method, url, body).await
    }

    async fn execute(&self, call: Call, method: Method, url: Url, body: Option<Value>) -> Result<Answer, TrackerError> {
        lock(&self.gate).admit(call, Utc::now())?;
        let what = format!("GitHub {method} {}", url.path());
        let key = url.to_string();
        let cached = (method == Method::GET)
            .then(|| lock(&self.cache).get(&key).cloned())
            .flatten();

        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(c) = &cached {
            request = request.header(reqwest::header::IF_NONE_MATCH, &c.etag);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| http::transport_error(&what, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.observe(&headers);
        let text = response.text().await.map_err(|e| http::transport_error(&what, &e))?;

        if status == StatusCode::NOT_MODIFIED {
            return cached.map(|c| c.answer).ok_or_else(|| {
                TrackerError::Malformed(format!(
                    "{what}: 304 Not Modified for a request that was not conditional"
                ))
            });
        }
        if status.is_success() {
            let answer = Answer {
                body: text,
                next: next_link(&headers),
            };
            if method == Method::GET
                && let Some(etag) = headers.get(reqwest::header::ETAG).and_then(|v| v.to_str().ok())
            {
                let mut cache = lock(&self.cache);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    key,
                    Cached {
                        etag: etag.to_string(),
                        answer: answer.clone(),
                    },
                );
            }
            return Ok(answer);
        }
        Err(self.failure(&what, status, &headers, &text))
    }

    fn observe(&self, headers: &HeaderMap) {
        lock(&self.gate).observe(
            http::header_u64(headers, "x-ratelimit-limit"),
            http::header_u64(headers, "x-ratelimit-remaining"),
            http::header_u64(headers, "x-ratelimit-reset").and_then(http::epoch_to_time),
        );
    }

    fn failure(&self, what: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> TrackerError {
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| http::excerpt(body, 200));
        let now = Utc::now();
        match status.as_u16() {
            403 | 429 => {
                let primary = (http::header_u64(headers, "x-ratelimit-remaining") == Some(0))
                    .then(|| http::header_u64(headers, "x-ratelimit-reset").and_then(http::epoch_to_time))
                    .flatten();
                let secondary = status.as_u16() == 429 || message.to_ascii_lowercase().contains("rate limit");
                let wait = http::retry_after(headers, now)
                    .or(primary)
                    .or_else(|| secondary.then_some(now + SECONDARY_WAIT));
                match wait {
                    Some(until) => {
                        let until = lock(&self.gate).block_until(until.max(now), now);
                        tracing::warn!(tracker = "github", reset_at = %until.to_rfc3339(), %message, "GitHub rate limit reached; holding requests until the reset");
                        TrackerError::RateLimited { reset_at: Some(until) }
                    }
                    None => TrackerError::Auth(format!("{what}: {status}: {message}")),
                }
            }
            401 => TrackerError::Auth(format!("{what}: {status}: {message}")),
            404 | 410 => TrackerError::NotFound(format!("{what}: {status}")),
            422 => TrackerError::Malformed(format!("{what}: {status}: {message}")),
            _ => TrackerError::Transport(format!("{what}: {status}: {message}")),
        }
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<Url> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| Url::parse(target).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_next_link_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repositories/1/issues?page=1>; rel=\"prev\", \
                 <https://api.github.com/repositories/1/issues?page=3>; rel=\"next\", \
                 <https://api.github.com/repositories/1/issues?page=9>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link(&h).unwrap().as_str(),
            "https://api.github.com/repositories/1/issues?page=3"
        );
        h.insert(
            "link",
            HeaderValue::from_static("<https://api.github.com/x?page=1>; rel=\"first\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn urls_keep_an_enterprise_prefix_and_encode_segments() {
        let rest = Rest::new(
            Url::parse("http://127.0.0.1:9/api/v3").unwrap(),
            "t".into(),
            10,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            rest.url(&["repos", "o", "r", "issues", "7", "labels", "In Progress"], &[])
                .as_str(),
            "http://127.0.0.1:9/api/v3/repos/o/r/issues/7/labels/In%20Progress"
        );
        let public = Rest::new(
            Url::parse("https://api.github.com").unwrap(),
            "t".into(),
            10,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            public
                .url(
                    &["repos", "o", "r", "issues"],
                    &[("labels", "a b,c"), ("state", "open")]
                )
                .as_str(),
            "https://api.github.com/repos/o/r/issues?labels=a+b%2Cc&state=open"
        );
    }
}
