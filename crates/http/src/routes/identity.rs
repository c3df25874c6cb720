//! `POST /v1/auth/register`, `POST /v1/auth/login`.

use axum::http::StatusCode;
use axum::routing::post;
use axum::{extract::State, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::Json;
use crate::{ApiError, HttpState};

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
}

async fn register(
    State(s): State<HttpState>,
    Json(c): Json<Credentials>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let token = s.app.register(&c.email, &c.password).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "token": token }))))
}

async fn login(
    State(s): State<HttpState>,
    Json(c): Json<Credentials>,
) -> Result<axum::Json<Value>, ApiError> {
    let token = s.app.login(&c.email, &c.password).await?;
    Ok(axum::Json(json!({ "token": token })))
}
