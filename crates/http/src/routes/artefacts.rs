//! Ticket artefacts: `GET /v1/tickets/{id}/qr.svg` (`image/svg+xml`) and
//! `GET /v1/orders/{id}/tickets.pdf` (`application/pdf`), for the buyer, admins
//! and the event's scanning staff (who else: 404; unpaid: 409
//! `tickets_not_issued`; see `boxoffice_app::artefacts`).
//!
//! Both are private to their holder and can be voided by a refund, so neither may
//! be cached by a shared cache, nor kept by the browser past the page (`no-store`).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::extract::{Auth, Path};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/tickets/{id}/qr.svg", get(qr))
        .route("/v1/orders/{id}/tickets.pdf", get(pdf))
}

fn private(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn qr(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let svg = s.app.ticket_qr(&who, &id).await?;
    Ok(private("image/svg+xml", svg))
}

async fn pdf(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let pdf = s.app.order_pdf(&who, &id).await?;
    let mut res = private("application/pdf", pdf);
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"tickets-{id}.pdf\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
