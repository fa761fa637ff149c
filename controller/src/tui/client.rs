//! The TUI's HTTP client of `/api/v1`: base URL and bearer token, one-shot calls that turn the error
//! envelope into [`ApiFailure`], and opening SSE streams (with `Last-Event-ID` when resuming).

use std::time::Duration;

use itervox_protocol::api::{ErrorEnvelope, StateSnapshot};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::api_request::ApiRequest;

/// How long a one-shot call may take before the TUI reports it failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call did not succeed. The `Display` text is what the status line shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiFailure {
    /// The controller answered with its error envelope.
    #[error("{code}: {message}")]
    Api { status: u16, code: String, message: String },
    /// A non-2xx answer without the envelope (a proxy, another program on that port).
    #[error("HTTP {status} from {route}: {body}")]
    Http { status: u16, route: String, body: String },
    /// No answer: connection refused, timeout, DNS, TLS.
    #[error("cannot reach {target}: {reason}")]
    Transport { target: String, reason: String },
    /// A 2xx answer whose body is not what the API documents.
    #[error("unreadable answer from {route}: {reason}")]
    Decode { route: String, reason: String },
}

impl ApiFailure {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiFailure::Api { status, .. } | ApiFailure::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why the TUI could not start talking to an API.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("{url:?} is not a usable API URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A cheap-to-clone client of one controller's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `{scheme}://{host}:{port}/api/v1/` (always ending in `/`).
    base: Url,
    token: Option<String>,
}

impl ApiClient {
    /// Accepts the controller's address (`http://127.0.0.1:8090`, or `127.0.0.1:8090` meaning http),
    /// the API root (`…/api/v1`) or the
    /// dashboard URL the controller prints (`…/?token=T`, whose token is used when `token` is `None`).
    pub fn new(url: &str, token: Option<String>) -> Result<ApiClient, ClientSetupError> {
        // reqwest is built without a default TLS provider; install ring's once (an error only means
        // one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |reason: &str| ClientSetupError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let mut parsed = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        let Some(host) = parsed.host_str().map(str::to_string) else {
            return Err(bad("it names no host"));
        };
        let query_token = parsed
            .query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        let token = token
            .filter(|t| !t.is_empty())
            .or(query_token.filter(|t| !t.is_empty()));
        let path = parsed.path().trim_end_matches('/').to_string();
        let root = path.strip_suffix("/api/v1").unwrap_or(&path).to_string();
        parsed.set_query(None);
        parsed.set_fragment(None);
        parsed.set_path(&format!("{root}/api/v1/"));
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("itervox-tui/", env!("CARGO_PKG_VERSION")));
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            builder = builder.no_proxy();
        }
        Ok(ApiClient {
            http: builder.build()?,
            base: parsed,
            token,
        })
    }

    /// The API root, for display: `http://127.0.0.1:8090/api/v1`.
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `host:port`, for short messages.
    pub fn target(&self) -> String {
        let host = self.base.host_str().unwrap_or("?");
        match self.base.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// Whether a bearer token is sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn url(&self, route: &str) -> Result<Url, ApiFailure> {
        self.base
            .join(route.trim_start_matches('/'))
            .map_err(|e| ApiFailure::Decode {
                route: route.to_string(),
                reason: format!("cannot build the URL: {e}"),
            })
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn transport(&self, e: &reqwest::Error) -> ApiFailure {
        let reason = if e.is_timeout() {
            "no answer in time".to_string()
        } else {
            root_cause(e)
        };
        ApiFailure::Transport {
            target: self.target(),
            reason,
        }
    }

    /// `GET /state`.
    pub async fn state(&self) -> Result<StateSnapshot, ApiFailure> {
        let route = "/state";
        let resp = self
            .request(reqwest::Method::GET, self.url(route)?)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let body = self.ok_body(route, resp).await?;
        serde_json::from_slice(&body).map_err(|e| ApiFailure::Decode {
            route: route.into(),
            reason: e.to_string(),
        })
    }

    /// Performs one write and returns the answer's JSON (`null` for an empty body).
    pub async fn send(&self, request: &ApiRequest) -> Result<Value, ApiFailure> {
        let route = request.path();
        let mut req = self
            .request(reqwest::Method::POST, self.url(&route)?)
            .timeout(CALL_TIMEOUT);
        if let Some(body) = request.body() {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let body = self.ok_body(&route, resp).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| ApiFailure::Decode {
            route,
            reason: e.to_string(),
        })
    }

    /// Opens an SSE route; the caller reads the body with `Response::chunk`. No overall timeout: the
    /// caller watches for silence longer than the keep-alive interval instead.
    pub async fn open_stream(&self, route: &str, last_event_id: Option<&str>) -> Result<reqwest::Response, ApiFailure> {
        let mut req = self
            .request(reqwest::Method::GET, self.url(route)?)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(CALL_TIMEOUT, req.send())
            .await
            .map_err(|_| ApiFailure::Transport {
                target: self.target(),
                reason: "no answer in time".into(),
            })?
            .map_err(|e| self.transport(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.failure(route, resp).await)
        }
    }

    async fn ok_body(&self, route: &str, resp: reqwest::Response) -> Result<bytes::Bytes, ApiFailure> {
        if !resp.status().is_success() {
            return Err(self.failure(route, resp).await);
        }
        resp.bytes().await.map_err(|e| self.transport(&e))
    }

    async fn failure(&self, route: &str, resp: reqwest::Response) -> ApiFailure {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        failure_from(route, status, &body)
    }
}

/// Turns a non-2xx answer into an [`ApiFailure`], reading the error envelope when there is one.
pub fn failure_from(route: &str, status: StatusCode, body: &[u8]) -> ApiFailure {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => ApiFailure::Api {
            status: status.as_u16(),
            code: env.error.code,
            message: env.error.message,
        },
        Err(_) => {
            let text = super::humanize::single_line(&String::from_utf8_lossy(body));
            let text = super::humanize::truncate(&text, 200);
            ApiFailure::Http {
                status: status.as_u16(),
                route: route.to_string(),
                body: if text.is_empty() {
                    status.canonical_reason().unwrap_or("no body").to_string()
                } else {
                    text
                },
            }
        }
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than reqwest's
/// outer "error sending request for url (…)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_to_the_api_root() {
        for (given, root) in [
            ("http://127.0.0.1:8090", "http://127.0.0.1:8090/api/v1"),
            ("http://127.0.0.1:8090/", "http://127.0.0.1:8090/api/v1"),
            ("http://127.0.0.1:8090/api/v1", "http://127.0.0.1:8090/api/v1"),
            ("http://127.0.0.1:8090/api/v1/", "http://127.0.0.1:8090/api/v1"),
            ("https://itervox.example/sub/", "https://itervox.example/sub/api/v1"),
            ("127.0.0.1:8090", "http://127.0.0.1:8090/api/v1"),
        ] {
            assert_eq!(ApiClient::new(given, None).unwrap().base_url(), root, "{given}");
        }
        let c = ApiClient::new("http://127.0.0.1:8090/?token=s3cret", None).unwrap();
        assert!(c.has_token(), "the dashboard URL's token is used");
        assert_eq!(c.base_url(), "http://127.0.0.1:8090/api/v1");
        assert_eq!(c.target(), "127.0.0.1:8090");
        assert!(
            !ApiClient::new("http://[::1]:9/", Some(String::new()))
                .unwrap()
                .has_token()
        );
        assert_eq!(
            c.url("/issues/A%2FB/cancel").unwrap().as_str(),
            "http://127.0.0.1:8090/api/v1/issues/A%2FB/cancel"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for bad in ["ftp://x/", "http://", "not a url"] {
            let err = ApiClient::new(bad, None).unwrap_err().to_string();
            assert!(err.contains("is not a usable API URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_error_envelope_becomes_code_and_message() {
        let f = failure_from(
            "/issues/T-1/cancel",
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_running","message":"T-1 is not running"}}"#,
        );
        assert_eq!(f.to_string(), "not_running: T-1 is not running");
        assert_eq!(f.status(), Some(404));
        let f = failure_from("/state", StatusCode::BAD_GATEWAY, b"<html>\nbad gateway\n</html>");
        assert_eq!(f.to_string(), "HTTP 502 from /state: <html> bad gateway </html>");
        let f = failure_from("/state", StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(f.to_string(), "HTTP 503 from /state: Service Unavailable");
    }
}
