//! The closed set of API calls the TUI makes in answer to keys: their route, body, and the sentence
//! shown when one succeeds.

use itervox_protocol::api::WorkersRequest;
use serde_json::{Value, json};

/// One write the TUI asks the controller for. Every one is a `POST` under `/api/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest {
    /// `x`: pause a running agent.
    Cancel { identifier: String },
    /// `r`: make a paused issue eligible again.
    Resume { identifier: String },
    /// `S` (confirmed): hard stop, release the claim.
    Terminate { identifier: String },
    /// `i`: answer an agent that asked a question.
    ProvideInput { identifier: String, message: String },
    /// `+`/`-`: change the number of concurrent agents.
    Workers { delta: i64 },
    /// `R`: poll the tracker now.
    Refresh,
}

impl ApiRequest {
    /// The route under `/api/v1`, with the identifier percent-encoded as one path segment.
    pub fn path(&self) -> String {
        let issue = |id: &str, verb: &str| format!("/issues/{}/{verb}", path_segment(id));
        match self {
            ApiRequest::Cancel { identifier } => issue(identifier, "cancel"),
            ApiRequest::Resume { identifier } => issue(identifier, "resume"),
            ApiRequest::Terminate { identifier } => issue(identifier, "terminate"),
            ApiRequest::ProvideInput { identifier, .. } => issue(identifier, "provide-input"),
            ApiRequest::Workers { .. } => "/settings/workers".into(),
            ApiRequest::Refresh => "/refresh".into(),
        }
    }

    /// The JSON body, when the route takes one.
    pub fn body(&self) -> Option<Value> {
        match self {
            ApiRequest::ProvideInput { message, .. } => Some(json!({ "message": message })),
            ApiRequest::Workers { delta } => serde_json::to_value(WorkersRequest {
                workers: None,
                delta: Some(*delta),
            })
            .ok(),
            _ => None,
        }
    }

    /// What was asked, for error lines: `cancel ITX-1`.
    pub fn describe(&self) -> String {
        match self {
            ApiRequest::Cancel { identifier } => format!("cancel {identifier}"),
            ApiRequest::Resume { identifier } => format!("resume {identifier}"),
            ApiRequest::Terminate { identifier } => format!("terminate {identifier}"),
            ApiRequest::ProvideInput { identifier, .. } => format!("reply to {identifier}"),
            ApiRequest::Workers { delta } => format!("workers {delta:+}"),
            ApiRequest::Refresh => "refresh".into(),
        }
    }

    /// The status line after the controller accepted the call; `answer` is its JSON body.
    pub fn success(&self, answer: &Value) -> String {
        match self {
            ApiRequest::Cancel { identifier } => format!("{identifier} cancelled: paused until you resume it (r)"),
            ApiRequest::Resume { identifier } => format!("{identifier} resumed: eligible on the next tick"),
            ApiRequest::Terminate { identifier } => format!("{identifier} terminated and released"),
            ApiRequest::ProvideInput { identifier, .. } => format!("reply sent to {identifier}; its agent resumes"),
            ApiRequest::Workers { .. } => match answer.get("workers").and_then(Value::as_u64) {
                Some(n) => format!("max concurrent agents: {n}"),
                None => "workers changed".into(),
            },
            ApiRequest::Refresh => {
                if answer.get("coalesced").and_then(Value::as_bool) == Some(true) {
                    "refresh joined the poll already running".into()
                } else {
                    "refresh queued: polling the tracker now".into()
                }
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so `owner/repo#12` stays one
/// segment.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_bodies_match_the_api() {
        let id = || "ITX-1".to_string();
        assert_eq!(ApiRequest::Cancel { identifier: id() }.path(), "/issues/ITX-1/cancel");
        assert_eq!(ApiRequest::Resume { identifier: id() }.path(), "/issues/ITX-1/resume");
        assert_eq!(
            ApiRequest::Terminate { identifier: id() }.path(),
            "/issues/ITX-1/terminate"
        );
        let reply = ApiRequest::ProvideInput {
            identifier: id(),
            message: "MIT".into(),
        };
        assert_eq!(reply.path(), "/issues/ITX-1/provide-input");
        assert_eq!(reply.body(), Some(json!({"message": "MIT"})));
        assert_eq!(ApiRequest::Workers { delta: -1 }.path(), "/settings/workers");
        assert_eq!(ApiRequest::Workers { delta: -1 }.body(), Some(json!({"delta": -1})));
        assert_eq!(ApiRequest::Refresh.path(), "/refresh");
        assert_eq!(ApiRequest::Refresh.body(), None);
    }

    #[test]
    fn identifiers_stay_one_segment() {
        assert_eq!(path_segment("owner/repo#12"), "owner%2Frepo%2312");
        assert_eq!(path_segment("a b?"), "a%20b%3F");
        assert_eq!(path_segment("ITX-1_x.y~"), "ITX-1_x.y~");
    }

    #[test]
    fn success_lines_use_the_answer() {
        assert_eq!(
            ApiRequest::Workers { delta: 1 }.success(&json!({"workers": 5})),
            "max concurrent agents: 5"
        );
        assert!(
            ApiRequest::Refresh
                .success(&json!({"coalesced": true}))
                .contains("joined")
        );
    }
}
