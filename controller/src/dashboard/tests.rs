//! Tests of the dashboard router (served in-process with `oneshot`) and of the embedded asset set.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::{CONTENT_SECURITY_POLICY, asset_paths, router};

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    send(Request::get(path).body(Body::empty()).unwrap()).await
}

async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 8 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header_str(headers: &axum::http::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn root_serves_the_page_with_its_security_headers() {
    let (status, headers, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_str(&headers, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(body.contains(r#"<script type="module" src="/assets/js/main.js">"#));
    assert_eq!(
        header_str(&headers, header::CONTENT_SECURITY_POLICY),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(header_str(&headers, header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(header_str(&headers, header::REFERRER_POLICY), "no-referrer");
    assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
    assert!(header_str(&headers, header::ETAG).starts_with('"'));
}

#[tokio::test]
async fn client_routes_get_the_page() {
    let (_, _, index) = get("/").await;
    for path in [
        "/board",
        "/hosts",
        "/settings",
        "/logs",
        "/issues/ABC-12",
        "/no/such/page",
    ] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            header_str(&headers, header::CONTENT_TYPE).starts_with("text/html"),
            "{path}"
        );
        assert_eq!(body, index, "{path} should answer index.html");
    }
}

#[tokio::test]
async fn assets_have_their_content_types() {
    let (status, headers, body) = get("/assets/js/main.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert!(body.contains("import"));
    assert_eq!(header_str(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(headers.get(header::CONTENT_SECURITY_POLICY).is_none());

    let (status, headers, _) = get("/assets/css/app.css").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_str(&headers, header::CONTENT_TYPE), "text/css; charset=utf-8");

    let (status, headers, _) = get("/assets/favicon.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "image/svg+xml; charset=utf-8"
    );
}

#[tokio::test]
async fn missing_assets_are_404_not_the_page() {
    for path in [
        "/assets/js/nope.js",
        "/assets/js",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/js/..%2f..%2fCargo.toml",
        "/assets//etc/passwd",
    ] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            header_str(&headers, header::CONTENT_TYPE).starts_with("application/json"),
            "{path}"
        );
        assert!(body.contains(r#""code":"not_found""#), "{path}: {body}");
    }
}

#[tokio::test]
async fn unknown_api_paths_answer_the_error_envelope() {
    let (status, _, body) = get("/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "not_found");
    assert!(json["error"]["message"].as_str().unwrap().contains("/api/v1/nope"));
}

#[tokio::test]
async fn page_routes_refuse_other_methods() {
    let request = Request::post("/settings").body(Body::empty()).unwrap();
    let (status, headers, body) = send(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header_str(&headers, header::ALLOW), "GET, HEAD");
    assert!(body.contains("method_not_allowed"));
}

#[tokio::test]
async fn head_answers_headers_without_a_body() {
    let request = Request::head("/assets/js/main.js").body(Body::empty()).unwrap();
    let (status, headers, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header_str(&headers, header::CONTENT_TYPE).starts_with("text/javascript"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_matching_etag_answers_304() {
    let (_, headers, _) = get("/assets/css/app.css").await;
    let etag = header_str(&headers, header::ETAG).to_string();

    let request = Request::get("/assets/css/app.css")
        .header(header::IF_NONE_MATCH, format!("\"other\", {etag}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header_str(&headers, header::ETAG), etag);

    let request = Request::get("/assets/css/app.css")
        .header(header::IF_NONE_MATCH, "\"stale\"")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.is_empty());
}

/// Every relative `import … from './x.js'` in every embedded module names an embedded file, so
/// the module graph cannot break without a browser noticing first.
#[tokio::test]
async fn every_module_import_resolves_to_an_embedded_file() {
    let paths: Vec<String> = asset_paths().into_iter().map(|p| p.into_owned()).collect();
    let import = regex::Regex::new(r#"(?m)^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]"#).unwrap();
    let mut checked = 0;
    for path in paths.iter().filter(|p| p.ends_with(".js")) {
        let (status, _, source) = get(&format!("/assets/{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        for capture in import.captures_iter(&source) {
            let target = resolve(dir, &capture[1]);
            assert!(
                paths.contains(&target),
                "{path} imports {} which resolves to {target}, not an embedded asset",
                &capture[1]
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} imports found");
}

fn resolve(dir: &str, spec: &str) -> String {
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for segment in spec.split('/') {
        match segment {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// The page works under its own strict CSP: no inline scripts, styles or event handlers, and every
/// asset the page links is embedded.
#[tokio::test]
async fn the_page_has_nothing_inline_that_a_strict_csp_blocks() {
    let (_, _, index) = get("/").await;
    let inline_script = regex::Regex::new(r"<script(?:\s[^>]*)?>\s*[^<\s]").unwrap();
    assert!(!inline_script.is_match(&index), "index.html has an inline script");
    assert!(!index.contains("<style"), "index.html has an inline style");
    assert!(!index.contains(" style="), "index.html has a style attribute");
    let handler = regex::Regex::new(r"\son[a-z]+\s*=").unwrap();
    assert!(!handler.is_match(&index), "index.html has an inline event handler");
    let link = regex::Regex::new(r#"(?:src|href)="/assets/([^"]+)""#).unwrap();
    let paths: Vec<String> = asset_paths().into_iter().map(|p| p.into_owned()).collect();
    for capture in link.captures_iter(&index) {
        assert!(paths.contains(&capture[1].to_string()), "{}", &capture[1]);
    }
    for path in paths.iter().filter(|p| p.ends_with(".js")) {
        let (_, _, source) = get(&format!("/assets/{path}")).await;
        assert!(!source.contains("innerHTML"), "{path} assigns innerHTML");
        assert!(!source.contains("eval("), "{path} calls eval");
    }
}
