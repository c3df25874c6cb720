//! `GET /v1/openapi.json` (the OpenAPI 3.1 document, `openapi.rs`) and `GET /docs`,
//! the same document for people: a static page whose own script (served from here,
//! never a CDN: the page works offline and under `default-src 'self'`) renders it.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::HttpState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/docs", get(page))
        .route("/docs/docs.js", get(script))
        .route("/docs/docs.css", get(style))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document().clone(),
    )
}

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../docs/index.html"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../docs/docs.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../docs/docs.css"),
    )
}
