//! `POST /v1/events/{id}/holds`, `GET /v1/holds/{id}`, `DELETE /v1/holds/{id}`, and
//! for admins `GET /v1/admin/events/{id}/engine-audit`: where the hold engine and
//! the store disagree about an event (nothing, when all is well).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::HoldAsk;

use crate::extract::{Auth, Json, Path};
use crate::views::{self, HoldJson};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/events/{id}/holds", post(create))
        .route("/v1/holds/{id}", get(show).delete(release))
        .route("/v1/admin/events/{id}/engine-audit", get(engine_audit))
}

async fn engine_audit(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(event): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let a = s.app.engine_audit(&who, &event).await?;
    Ok(axum::Json(serde_json::json!({
        "agrees": a.seats.is_empty() && a.ga.is_empty(),
        "seats": a.seats.iter().map(|d| serde_json::json!({
            "seat_id": d.seat_id.as_str(), "engine": d.engine.to_string(), "store": d.store.to_string(),
        })).collect::<Vec<_>>(),
        "ga": a.ga.iter().map(|(t, e, st)| serde_json::json!({
            "tier_id": t.as_str(), "engine_remaining": e, "store_remaining": st,
        })).collect::<Vec<_>>(),
    })))
}

async fn create(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(event): Path<String>,
    headers: HeaderMap,
    Json(ask): Json<HoldAsk>,
) -> Result<(StatusCode, axum::Json<HoldJson>), ApiError> {
    let client = format!("c:{}", who.user_id);
    crate::rate_limits::limit(&s, boxoffice_ports::LimitClass::Shop, &client).await?;
    // With the event's waiting room on, only admitted shoppers hold.
    let admission = headers
        .get("boxoffice-admission")
        .and_then(|v| v.to_str().ok());
    s.app.check_admission(&who, &event, admission).await?;
    let v = s.app.create_hold(&who, &event, ask).await?;
    Ok((StatusCode::CREATED, axum::Json(views::hold(&v))))
}

async fn show(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<HoldJson>, ApiError> {
    let v = s.app.hold(&who, &id).await?;
    Ok(axum::Json(views::hold(&v)))
}

async fn release(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.release_hold(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
