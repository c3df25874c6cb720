//! `POST /v1/holds/{id}/checkout`, `GET /v1/orders/{id}[?wait=s]`, `GET /v1/me/orders`,
//! and `GET /v1/admin/test-gateway/charges` while the test gateway is active.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::{CheckoutAsk, RefundAsk};
use boxoffice_domain::{CheckoutAnswer, ValidationError};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

use crate::extract::{Auth, CatalogueWriter, Json, Path, Query};
use crate::views::{self, OrderJson};
use crate::{ApiError, HttpState};

pub fn router(test_gateway: bool) -> Router<HttpState> {
    let r = Router::new()
        .route("/v1/holds/{id}/checkout", post(checkout))
        .route("/v1/orders/{id}", get(order))
        .route("/v1/orders/{id}/refund", post(refund))
        .route("/v1/me/orders", get(my_orders))
        .route("/v1/payments/stripe/webhook", post(stripe_webhook))
        .route("/v1/admin/events/{id}/sales", get(sales));
    if test_gateway {
        r.route("/v1/admin/test-gateway/charges", get(charges))
    } else {
        r
    }
}

async fn checkout(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(hold): Path<String>,
    headers: HeaderMap,
    Json(ask): Json<CheckoutAsk>,
) -> Result<Response, ApiError> {
    let client = format!("c:{}", who.user_id);
    crate::rate_limits::limit(&s, boxoffice_ports::LimitClass::Shop, &client).await?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    // The app answers with an outcome (a first answer or a replay, the same); how
    // it is sent is said here.
    let (status, body, order_id) = match s.app.checkout(&who, &hold, key, ask).await? {
        CheckoutAnswer::Accepted { order_id } => (
            StatusCode::ACCEPTED,
            json!({"order_id": order_id.as_str(), "status": "pending_payment"}),
            order_id,
        ),
        // Kept under the refund route only: never a checkout's answer.
        CheckoutAnswer::Refunded { .. } => {
            tracing::error!("a refund's answer under a checkout key");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            ));
        }
    };
    // Bought: the waiting room's session (if the checkout names it) is over, and
    // its slot goes to the next shopper. The checkout stands whatever this says.
    if let Some(token) = headers
        .get("boxoffice-admission")
        .and_then(|v| v.to_str().ok())
    {
        if let Err(e) = s.app.end_shopping(&who, &hold, token).await {
            tracing::warn!(error = ?e, "ending the shopper's waiting-room session failed");
        }
    }
    let mut res = (status, axum::Json(body)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/orders/{order_id}")) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

#[derive(Deserialize)]
struct WaitQuery {
    /// Parsed by hand so that a bad value is our 422, not a plain-text rejection.
    #[serde(default)]
    wait: Option<String>,
}

async fn order(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<axum::Json<OrderJson>, ApiError> {
    let wait = match q.wait.as_deref().map(str::parse::<f64>) {
        None => None,
        Some(Ok(w)) if w.is_finite() && w >= 0.0 => Some(Duration::from_secs_f64(w.min(30.0))),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "wait is a number of seconds, 0 to 30",
            )
            .with("field", "wait"))
        }
    };
    // A customer holds at most `max_waits_per_customer` long-polls at once; past
    // it a poll answers at once, as without `wait` (polling again is the client's
    // cost, not a task and a waiter per request here).
    let slot = wait.and_then(|_| {
        s.waits
            .take(&format!("c:{}", who.user_id), s.max_waits_per_customer)
    });
    let wait = wait.filter(|_| slot.is_some());
    let o = s.app.order(&who, &id, wait).await?;
    drop(slot);
    let next_action = s.app.next_action(&o).await;
    Ok(axum::Json(views::order_with(&o, next_action.as_ref())))
}

/// Refunds a paid order, whole (no body, or no `amount`) or in part; answers the
/// order as it stands after (see `App::refund_order`). Admins and the event's
/// organizers: the role is checked before the body is read, the organization by
/// the use case (`Principal::require_refund`).
async fn refund(
    State(s): State<HttpState>,
    CatalogueWriter(who): CatalogueWriter,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<OrderJson>, ApiError> {
    // An empty body is a whole refund, as `{}` is.
    let ask: RefundAsk = if body.iter().all(u8::is_ascii_whitespace) {
        RefundAsk::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("the body is not a refund request: {e}"),
            )
            .with("field", "amount"),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            ),
        })?
    };
    // Optional: with it, a retried request is the same refund, not another one.
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            boxoffice_app::AppError::Invalid(ValidationError::new(
                "Idempotency-Key",
                "1 to 255 visible ASCII characters",
            ))
        })?),
    };
    let o = s.app.refund_order(&who, &id, ask, key).await?;
    Ok(axum::Json(views::order(&o)))
}

/// Stripe's webhook: verified, then the payment it names is settled from the
/// gateway's own answer (see `App::stripe_webhook`). 200 once handled, 400 for a
/// signature that does not verify, 404 when no webhook secret is configured.
async fn stripe_webhook(
    State(s): State<HttpState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    s.app.stripe_webhook(signature, &body).await?;
    Ok(axum::Json(json!({ "received": true })))
}

async fn my_orders(
    State(s): State<HttpState>,
    Auth(who): Auth,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let orders = s.app.my_orders(&who).await?;
    Ok(axum::Json(
        json!({ "orders": orders.iter().map(views::order).collect::<Vec<_>>() }),
    ))
}

async fn charges(
    State(s): State<HttpState>,
    Auth(who): Auth,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let charges = s.app.gateway_charges(&who).await?;
    Ok(axum::Json(json!({
        "charges": charges.iter().map(|c| json!({
            "idempotency_key": c.idempotency_key,
            "order_id": c.order_id,
            "amount": c.amount,
            "outcome": c.outcome,
            "refunded": c.refunded,
            "amount_refunded": {"amount": c.amount_refunded, "currency": c.amount.currency},
            "refunds": c.refunds,
            "charge_id": c.charge_id,
        })).collect::<Vec<_>>()
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesQuery {
    format: Option<String>,
}

/// The sales read model: totals, per tier, and a per-minute series (JSON), or the
/// same as CSV (`?format=csv`: one row per tier, then one per minute).
async fn sales(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<SalesQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::from(boxoffice_app::AppError::Invalid(
                ValidationError::new("format", "json or csv"),
            )))
        }
    };
    let r = s.app.event_sales(&who, &id).await?;
    if csv {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"sales-{id}.csv\""),
                ),
            ],
            views::sales_csv(&r),
        )
            .into_response());
    }
    let t = &r.totals;
    let mut body = views::sales_counts(t);
    body["event_id"] = json!(id);
    // Net figures, what the event has sold and kept (refunds taken off).
    body["tickets_sold"] = json!(t.tickets - t.tickets_refunded);
    body["revenue"] = json!(t.revenue - t.refunded_amount);
    body["totals"] = views::sales_counts(t);
    body["tiers"] = r
        .tiers
        .iter()
        .map(|(tier, c)| {
            let mut v = views::sales_counts(c);
            v["tier_id"] = json!(tier);
            v
        })
        .collect();
    body["minute"] = r
        .minutes
        .iter()
        .map(|(m, c)| {
            let mut v = views::sales_counts(c);
            v["minute"] = json!(views::minute_rfc3339(*m));
            v
        })
        .collect();
    Ok(axum::Json(body).into_response())
}
