//! The web dashboard: serves the HTML, CSS and JavaScript modules embedded from `controller/assets/`.
//!
//! The dashboard is a plain ES-module application with no build step; it talks only to `/api/v1`.
//! [`router`] answers `/` and every client-side route (any other `GET` outside `/api` and
//! `/assets`) with `index.html`, and `/assets/{path}` with the embedded file of that path.
//!
//! Caching: the asset names carry no content hash (there is no build step to add one), so a long
//! `max-age` would let a browser mix modules of two releases after an upgrade. Every answer is
//! `Cache-Control: no-cache` with a strong `ETag` (the file's SHA-256), so revalidation costs a 304.
//!
//! Merge it after the API routes (`api.merge(dashboard::router())`): its fallback also answers
//! unknown `/api/...` paths, with the API's JSON error envelope rather than the page.

use std::borrow::Cow;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use itervox_protocol::api::{ErrorBody, ErrorEnvelope};
use rust_embed::RustEmbed;

#[cfg(test)]
mod tests;

/// The files under `controller/assets/`, compiled into the binary in release builds (read from
/// the folder at run time in debug builds, which makes editing the dashboard a page reload).
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The page every non-asset route answers with.
const INDEX: &str = "index.html";

/// Content-Security-Policy of the page: scripts, styles and connections only from this origin, no
/// inline script or style, no plugins, no framing. `index.html` repeats it (minus `frame-ancestors`,
/// which browsers ignore in a meta tag) so the page stays locked down behind any proxy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes: `/`, `/assets/{*path}` and a fallback for client-side routes.
///
/// Holds no state, so it merges into any router once that router's state is provided.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .fallback(fallback)
}

async fn index(headers: HeaderMap) -> Response {
    serve(INDEX, &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// Client-side routes get the page; unknown API paths get the API's 404 envelope; other methods
/// than GET/HEAD on page routes get a 405.
async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no API route {method} {path}"),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} is a dashboard page: it answers GET and HEAD, not {method}"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    serve(INDEX, &headers)
}

/// Answers with the embedded file at `path`, a 304 when the client already holds it, or a 404.
fn serve(path: &str, request_headers: &HeaderMap) -> Response {
    let Some(file) = embedded(path) else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no dashboard asset {path}"));
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let content_type = content_type(file.metadata.mimetype());
    let is_html = content_type.starts_with("text/html");

    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| etag_matches(value, &etag));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(file.data.into_owned()))
    };

    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The page may carry `?token=` for a moment; never leak it to other sites.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if is_html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// The embedded file at a request path, refusing anything that could name a file outside the
/// asset folder (`..`, absolute paths, backslashes, empty segments).
fn embedded(path: &str) -> Option<rust_embed::EmbeddedFile> {
    let safe = !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if safe { Assets::get(path) } else { None }
}

/// The `Content-Type` for a guessed MIME type: text formats say they are UTF-8.
fn content_type(mime: &str) -> String {
    let textual = mime.starts_with("text/")
        || mime == "application/javascript"
        || mime == "application/json"
        || mime == "image/svg+xml";
    if textual && !mime.contains("charset") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// Whether an `If-None-Match` value (a list of entity tags, or `*`) matches `etag`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag)
}

/// An answer in the API's error envelope, so clients parse every failure the same way.
fn error(status: StatusCode, code: &str, message: String) -> Response {
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            code: code.to_string(),
            message,
            field: None,
        },
    };
    (status, axum::Json(envelope)).into_response()
}

/// The paths of every embedded asset, for tests and diagnostics.
pub fn asset_paths() -> Vec<Cow<'static, str>> {
    let mut paths: Vec<_> = Assets::iter().collect();
    paths.sort();
    paths
}
