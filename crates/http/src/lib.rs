//! The HTTP API (`docs/api.md` is its contract): one router per feature,
//! extractors, the one `ApiError`, metrics and the limits every route gets.
//!
//! Handlers parse, call one use case, and shape the answer. They must never hold
//! business rules or map errors themselves: `error.rs` does that, once.

pub mod edge;
pub mod error;
pub mod extract;
mod live;
mod metrics_layer;
pub mod openapi;
mod pages;
mod rate_limits;
mod routes;
mod seat_maps;
mod slots;
mod views;

use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use boxoffice_app::App;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::compression::Predicate as _;

pub use error::ApiError;
pub use metrics_layer::install_recorder;

/// Limits applied to every route.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body, except venue creation (explicit seat lists are big).
    pub body_limit: usize,
    pub venue_body_limit: usize,
    /// Longest a request may take before it is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Per-client rate limits of logins, holds and checkouts (none: unlimited).
    pub rate_limiter: Option<Arc<dyn boxoffice_ports::RateLimiter>>,
    /// Cancelled at shutdown: open event streams end then (the server waits for
    /// every response to finish, and a stream never would).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Browser origins allowed to call the API (CORS); empty: none.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Event streams (SSE, seat maps and queues) one IP may hold open on this node;
    /// one more is 429 `too_many_streams`.
    pub max_streams_per_ip: usize,
    /// Order long-polls (`?wait=`) one customer may hold at once on this node; past
    /// it a poll answers at once instead of waiting.
    pub max_waits_per_customer: usize,
    /// The listener speaks TLS: responses carry HSTS.
    pub tls: bool,
    /// `GET /metrics` is served here (false when it has a listener of its own).
    pub public_metrics: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            venue_body_limit: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(40),
            rate_limiter: None,
            shutdown: Default::default(),
            max_streams_per_ip: 32,
            max_waits_per_customer: 8,
            cors_origins: Vec::new(),
            tls: false,
            public_metrics: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpState {
    pub app: Arc<App>,
    pub(crate) metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub(crate) layouts: Arc<views::LayoutCache>,
    pub(crate) seat_maps: Arc<seat_maps::SeatMapCache>,
    pub(crate) limiter: Option<Arc<dyn boxoffice_ports::RateLimiter>>,
    pub(crate) live: Arc<live::LiveHub>,
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
    pub(crate) streams: Arc<slots::Slots>,
    pub(crate) waits: Arc<slots::Slots>,
    pub(crate) max_streams_per_ip: usize,
    pub(crate) max_waits_per_customer: usize,
}

/// Marks a response whose body is already encoded for the client (the seat map
/// negotiates its own `Accept-Encoding`): the global compression leaves it alone,
/// identity included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreEncoded;

fn not_pre_encoded(
    _: StatusCode,
    _: axum::http::Version,
    _: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> bool {
    extensions.get::<PreEncoded>().is_none()
}

/// The whole API.
/// `test_gateway`: the built-in test gateway is active, so its charges may be listed.
pub fn router(app: Arc<App>, limits: HttpLimits, test_gateway: bool) -> Router {
    let state = HttpState {
        app,
        metrics: install_recorder(),
        layouts: Default::default(),
        seat_maps: Default::default(),
        limiter: limits.rate_limiter.clone(),
        live: Default::default(),
        shutdown: limits.shutdown.clone(),
        streams: Default::default(),
        waits: Default::default(),
        max_streams_per_ip: limits.max_streams_per_ip.max(1),
        max_waits_per_customer: limits.max_waits_per_customer,
    };
    let timeout = limits.request_timeout;
    Router::new()
        .merge(routes::identity::router())
        .merge(routes::catalog::router(&limits))
        .merge(routes::holds::router())
        .merge(routes::queue::router())
        .merge(routes::waitlist::router())
        .merge(routes::live::router())
        .merge(routes::checkout::router(test_gateway))
        .merge(routes::artefacts::router())
        .merge(routes::ops::router(limits.public_metrics))
        .merge(routes::audit::router())
        .merge(routes::orgs::router())
        .merge(routes::checkin::router())
        .merge(routes::docs::router())
        .merge(pages::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(limits.body_limit))
        .layer(axum::middleware::from_fn(error::error_shape))
        .layer(
            tower_http::compression::CompressionLayer::new().compress_when(
                tower_http::compression::DefaultPredicate::new().and(not_pre_encoded),
            ),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took too long",
                    )
                    .into_response()
                }))
                .timeout(timeout),
        )
        .layer(axum::middleware::from_fn(metrics_layer::track))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(metrics_layer::span))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
            .into_response()
        }))
        .layer(tower::util::option_layer(edge::cors(&limits.cors_origins)))
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            edge::X_REQUEST_ID.clone(),
        ))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            edge::X_REQUEST_ID.clone(),
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(axum::middleware::from_fn(edge::sanitize_request_id))
        .layer(axum::middleware::from_fn(move |req, next| {
            edge::security_headers(limits.tls, req, next)
        }))
        .with_state(state)
}

/// `GET /metrics` alone, for its own listener (`BOXOFFICE_METRICS_LISTEN`).
pub fn metrics_router() -> Router {
    let handle = install_recorder();
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move { routes::ops::render_metrics(&handle) }
            }),
        )
        .fallback(|| async { ApiError::not_found() })
}
