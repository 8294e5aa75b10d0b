//! The built browser application (`web/dist`, embedded at compile time) as
//! the gRPC server's fallback: every path that is not a gRPC method.
//!
//! - `GET`/`HEAD` only; a file by its path, `index.html` for `/` and for any
//!   path without a dot (the application's own routes: `/desk`, `/wall`);
//!   404 for a missing file with an extension.
//! - Hashed files under `/assets/` are cached for a year (immutable);
//!   `index.html` is revalidated every time (`no-cache`), with an `ETag`.
//! - Every answer carries a strict Content-Security-Policy (no inline
//!   script or style, nothing from another origin, no framing) and
//!   `nosniff`, `no-referrer`.
//! - A gRPC call to a method no service has is answered `UNIMPLEMENTED`, as
//!   tonic would.

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
struct Dist;

/// The policy every answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The fallback service to put behind the gRPC routes.
pub fn router() -> axum::Router {
    axum::Router::new().fallback(|request: Request<Body>| async move { answer(&request) })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn with_security_headers(mut response: Response<Body>) -> Response<Body> {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    with_security_headers(r)
}

/// The answer to one request that no gRPC service took.
pub fn answer(request: &Request<Body>) -> Response<Body> {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("no such method").into_http();
    }
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = request.uri().path().trim_start_matches('/');
    let last = path.rsplit('/').next().unwrap_or_default();
    let name = if path.is_empty() || !last.contains('.') {
        "index.html"
    } else {
        path
    };
    let Some(file) = Dist::get(name) else {
        return if name == "index.html" {
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the web application was not built into this binary: run `npm ci && npm run \
                 build` in web/ and build again\n",
            )
        } else {
            plain(StatusCode::NOT_FOUND, "not found\n")
        };
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let mut response = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    with_security_headers(response)
}
