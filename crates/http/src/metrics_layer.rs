//! Request metrics and spans, labelled by route template (never the raw path, which
//! would make one series per id), method and status, each from a closed set: a
//! request must never allocate a label or create a series a client chose.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::RwLock;
use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Instant;

/// The process-wide Prometheus recorder. The `metrics` facade has one global
/// recorder by design, so every router in the process shares it.
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (a host embedding us); then our
            // handle renders only what we record through it, which is still valid text.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Labels are `&'static str` from closed sets: a label value is never allocated per
/// request, and no client can make new series (a made-up method, a fake status).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The codes the API answers with by name; anything else by class.
fn status_label(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        code => match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

fn route_of(req: &Request) -> &'static str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| intern(p.as_str()))
}

/// A route template as a `&'static str`. Templates come from the router, so they are
/// a closed set: each is leaked once, on first sight, and shared from then on.
fn intern(template: &str) -> &'static str {
    static ROUTES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(&r) = routes.read().get(template) {
        return r;
    }
    let mut routes = routes.write();
    if let Some(&r) = routes.get(template) {
        return r;
    }
    let r: &'static str = Box::leak(template.into());
    routes.insert(r);
    r
}

pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = route_of(&req);
    let res = next.run(req).await;
    let status = status_label(res.status());
    metrics::histogram!(
        "boxoffice_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(start.elapsed().as_secs_f64());
    res
}

pub fn span(req: &Request) -> tracing::Span {
    let route = route_of(req);
    let method = method_label(req.method());
    let request_id = crate::edge::request_id(req);
    if route == "/health" || route == "/ready" || route == "/metrics" {
        tracing::debug_span!("http", method, route, request_id)
    } else {
        tracing::info_span!("http", method, route, request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::CONNECT), "other");
        assert_eq!(status_label(StatusCode::NOT_MODIFIED), "304");
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "4xx");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "5xx");
        assert_eq!(status_label(StatusCode::from_u16(999).unwrap()), "5xx");
        assert_eq!(status_label(StatusCode::CONTINUE), "1xx");
    }

    #[test]
    fn a_route_template_is_interned_once() {
        let a = intern("/v1/events/{id}/seats");
        let b = intern(&String::from("/v1/events/{id}/seats"));
        assert_eq!(a, "/v1/events/{id}/seats");
        assert!(std::ptr::eq(a, b));
        let req = Request::new(axum::body::Body::empty());
        assert_eq!(route_of(&req), "unmatched");
    }
}
