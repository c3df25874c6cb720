//! `GET /health` (the process runs), `GET /ready` (its backends answer; `degraded`
//! while the payment gateway's circuit breaker is open),
//! and `GET /metrics` (Prometheus text). `GET /` is the home page (`pages`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::HttpState;

/// `public_metrics`: false when `/metrics` has a listener of its own (then it is
/// 404 here).
pub fn router(public_metrics: bool) -> Router<HttpState> {
    let r = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    if public_metrics {
        r.route("/metrics", get(metrics))
    } else {
        r
    }
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn ready(State(s): State<HttpState>) -> impl IntoResponse {
    match s.app.ready().await {
        // The gateway's circuit breaker is open: checkouts are still taken (they
        // wait, seats kept, for the gateway), so the node stays in the pool.
        Ok(()) if s.app.gateway_circuit_open() => (
            StatusCode::OK,
            axum::Json(json!({ "status": "degraded", "gateway": "circuit_open" })),
        ),
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = ?e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable" })),
            )
        }
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    render_metrics(&s.metrics)
}

pub(crate) fn render_metrics(
    h: &metrics_exporter_prometheus::PrometheusHandle,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.render(),
    )
}
