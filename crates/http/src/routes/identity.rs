//! `POST /v1/auth/register`, `POST /v1/auth/login` (the contract's `{"token"}`, plus
//! `refresh_token`, `token_type` and `expires_in`), `POST /v1/auth/refresh`,
//! `POST /v1/auth/logout`, and for admins `POST /v1/admin/users/{id}/revoke`.

use axum::http::StatusCode;
use axum::routing::post;
use axum::{extract::State, Router};
use boxoffice_app::IssuedTokens;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Admin, Json, Path};
use crate::{ApiError, HttpState};

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/admin/users/{id}/revoke", post(revoke))
}

pub(crate) fn tokens(t: IssuedTokens) -> axum::Json<Value> {
    axum::Json(json!({
        "token": t.access,
        "refresh_token": t.refresh,
        "token_type": "Bearer",
        "expires_in": t.expires_in.as_secs(),
    }))
}

async fn register(
    State(s): State<HttpState>,
    Json(c): Json<Credentials>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let t = s.app.register(&c.email, &c.password).await?;
    Ok((StatusCode::CREATED, tokens(t)))
}

async fn login(
    State(s): State<HttpState>,
    peer: crate::rate_limits::Peer,
    Json(c): Json<Credentials>,
) -> Result<axum::Json<Value>, ApiError> {
    crate::rate_limits::limit(&s, boxoffice_ports::LimitClass::Login, &peer.key()).await?;
    // And per account, whatever the IP: many addresses guessing one password.
    let account = crate::rate_limits::account_key(&c.email);
    crate::rate_limits::limit(&s, boxoffice_ports::LimitClass::LoginAccount, &account).await?;
    Ok(tokens(s.app.login(&c.email, &c.password).await?))
}

async fn refresh(
    State(s): State<HttpState>,
    Json(r): Json<Refresh>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(tokens(s.app.refresh(&r.refresh_token).await?))
}

async fn logout(
    State(s): State<HttpState>,
    Json(r): Json<Refresh>,
) -> Result<StatusCode, ApiError> {
    s.app.logout(&r.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke(
    State(s): State<HttpState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let n = s.app.revoke_user(&who, &id).await?;
    Ok(axum::Json(json!({ "user_id": id, "revoked_sessions": n })))
}
