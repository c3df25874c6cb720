//! The waitlist (issue 12): `POST /v1/events/{id}/waitlist` (join; 201 new, 200 the
//! entry the customer already has), `GET /v1/waitlist/{id}` (its owner: state,
//! place in line, the offer's hold) and `DELETE /v1/waitlist/{id}` (leave; an offer
//! not taken is given up).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::{WaitlistAsk, WaitlistView};
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/events/{id}/waitlist", post(join))
        .route("/v1/waitlist/{id}", get(show).delete(leave))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn view(v: &WaitlistView) -> Value {
    let e = &v.entry;
    let mut out = json!({
        "waitlist_id": e.id.as_str(),
        "event_id": e.event_id.as_str(),
        "tier_id": e.tier_id.as_ref().map(|t| t.as_str()),
        "quantity": e.quantity,
        "state": e.state.public(),
        "position": v.position,
        "created_at": rfc3339(e.created_at),
    });
    if e.state != boxoffice_domain::WaitlistState::Claimed {
        if let Some(h) = &e.hold_id {
            out["hold_id"] = json!(h.as_str());
        }
        if let Some(t) = e.offer_expires_at {
            out["expires_at"] = json!(rfc3339(t));
        }
    }
    out
}

async fn join(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(event): Path<String>,
    Json(ask): Json<WaitlistAsk>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let client = format!("c:{}", who.user_id);
    crate::rate_limits::limit(&s, boxoffice_ports::LimitClass::Shop, &client).await?;
    let (v, created) = s.app.join_waitlist(&who, &event, ask).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view(&v))))
}

async fn show(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(view(&s.app.waitlist_entry(&who, &id).await?)))
}

async fn leave(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.leave_waitlist(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
