//! Request bodies: `Body<T>` reads JSON whatever the content type says, and turns every failure into the
//! API envelope: 413 over 1 MiB, 400 `invalid_json` for bad syntax, 400 `bad_request` naming the field
//! for a missing field, a wrong type (by its path, e.g. `profiles.web.command`) or an unknown value.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A JSON request body. An empty body is read as `{}`.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// Parses a JSON body into `T` with the API's error rules.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        bytes
    };
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // A wrong type names its place in the path; a missing or unknown field only in the message.
        let field = (path != ".").then_some(path).or_else(|| field_of(&message));
        let err = ApiError::bad_request(format!("invalid request body: {message}"));
        match field {
            Some(f) => err.with_field(f),
            None => err,
        }
    })
}

/// Finds the field named in a serde error message (`missing field `x``, `unknown field `x``).
fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    let name = &message[start..end];
    (message.contains("field") && !name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[allow(dead_code)]
        enabled: bool,
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse::<Req>(b"{not json").unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "invalid_json"));
        let e = parse::<Req>(b"{}").unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("bad_request", Some("enabled")));
        let e = parse::<Req>(br#"{"enabled":"yes"}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("bad_request", Some("enabled")));
        assert!(e.message.contains("boolean"), "{}", e.message);
        let e = parse::<Req>(br#"{"enabled":true,"extra":1}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("bad_request", Some("extra")));
        let e = parse::<Req>(b"[1]").unwrap_err();
        assert_eq!(e.code, "bad_request");
        assert!(parse::<Req>(br#"{"enabled":true}"#).is_ok());
    }
}
