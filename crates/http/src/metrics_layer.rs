//! Request metrics and spans, labelled by route template (never the raw path, which
//! would make one series per id).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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

fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = route_of(&req);
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
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
    if route == "/health" || route == "/ready" || route == "/metrics" {
        tracing::debug_span!("http", method = %req.method(), route)
    } else {
        tracing::info_span!("http", method = %req.method(), route)
    }
}
