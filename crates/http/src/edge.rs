//! What every response carries whatever route answered it: security headers, the
//! request id, and CORS for the origins the operator allowed.
//!
//! - Security headers: `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//!   no-referrer`, `X-Frame-Options: DENY`, and a Content-Security-Policy: for HTML
//!   [`HTML_CSP`] (scripts and styles only from this origin, no inline ones; the web
//!   pages are written to fit it), for everything else [`API_CSP`] (a JSON or SVG
//!   answer opened in a browser may load and run nothing). HSTS only when the
//!   listener speaks TLS: over plain HTTP it would mean nothing, or break a proxy.
//! - Request id: `x-request-id` from the client when well-formed (1 to 64 of
//!   `A-Z a-z 0-9 . _ -`: it goes into logs, so never raw text), else a new UUID;
//!   echoed on the response and recorded in the request's span, so every log line
//!   of the request carries it.
//! - CORS: none by default (same-origin pages need none); with origins configured,
//!   exactly those may call from a browser, with the methods and headers the API uses.
//!
//! Must never: let a handler's own header be overwritten when it set one on
//! purpose (headers here are only added when absent).

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The policy of every HTML page (the web pages and `/docs`).
pub const HTML_CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                            base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The policy of everything else.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds the security headers to a response that lacks them.
pub(crate) async fn security_headers(hsts: bool, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = res.headers_mut();
    let mut add = |name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    add(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    add(header::REFERRER_POLICY, "no-referrer");
    add(header::X_FRAME_OPTIONS, "DENY");
    add(
        header::CONTENT_SECURITY_POLICY,
        if html { HTML_CSP } else { API_CSP },
    );
    if hsts {
        add(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    res
}

/// A client's request id is kept only when well-formed; otherwise it is dropped
/// here and a new one made by `SetRequestIdLayer`.
pub fn well_formed_request_id(v: &[u8]) -> bool {
    (1..=64).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let bad = req
        .headers()
        .get_all(&X_REQUEST_ID)
        .iter()
        .any(|v| !well_formed_request_id(v.as_bytes()))
        || req.headers().get_all(&X_REQUEST_ID).iter().count() > 1;
    if bad {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    next.run(req).await
}

/// The request's id (set by then), for the span.
pub(crate) fn request_id(req: &Request) -> &str {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// CORS for exactly `origins` (`https://shop.example.com`); none when empty.
pub(crate) fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("boxoffice-admission"),
                HeaderName::from_static("last-event-id"),
                X_REQUEST_ID.clone(),
            ])
            .expose_headers([
                header::LOCATION,
                header::ETAG,
                header::RETRY_AFTER,
                X_REQUEST_ID.clone(),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_plain_tokens() {
        assert!(well_formed_request_id(b"01HZX3-abc_def.1"));
        assert!(!well_formed_request_id(b""));
        assert!(!well_formed_request_id(&[b'a'; 65]));
        assert!(!well_formed_request_id(b"a b"));
        assert!(!well_formed_request_id(b"a\nlevel=error"));
        assert!(!well_formed_request_id("é".as_bytes()));
    }
}
