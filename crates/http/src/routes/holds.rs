//! `POST /v1/events/{id}/holds`, `GET /v1/holds/{id}`, `DELETE /v1/holds/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::HoldAsk;

use crate::extract::{Auth, Json};
use crate::views::{self, HoldJson};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/events/{id}/holds", post(create))
        .route("/v1/holds/{id}", get(show).delete(release))
}

async fn create(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(event): Path<String>,
    Json(ask): Json<HoldAsk>,
) -> Result<(StatusCode, axum::Json<HoldJson>), ApiError> {
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
