//! Organizations and who may come in: `POST /v1/orgs` (admins), `GET /v1/orgs/{id}`,
//! `POST`/`GET /v1/orgs/{id}/invitations`, `DELETE /v1/orgs/{id}/invitations/{invitation_id}`,
//! `POST /v1/invitations/accept`, the password
//! reset (`POST /v1/auth/password-reset`, `…/confirm`), check-in staff of an
//! event (`GET`/`POST /v1/events/{id}/staff`) and `GET /v1/me`. Who may do what is
//! the use cases' (`permissions.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::access::InvitationListing;
use boxoffice_domain::UserId;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::extract::{Auth, Json, Path};
use crate::rate_limits::{limit, Peer};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/orgs", post(create_org))
        .route("/v1/orgs/{id}", get(show_org))
        .route("/v1/orgs/{id}/invitations", post(invite).get(invitations))
        .route(
            "/v1/orgs/{id}/invitations/{invitation_id}",
            axum::routing::delete(revoke_invitation),
        )
        .route("/v1/invitations/accept", post(accept))
        .route("/v1/auth/password-reset", post(reset_request))
        .route("/v1/auth/password-reset/confirm", post(reset_confirm))
        .route("/v1/events/{id}/staff", get(staff).post(assign_staff))
        .route("/v1/me", get(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenAndPassword {
    token: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assign {
    user_id: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn org_json(o: &boxoffice_domain::Organization) -> Value {
    json!({ "id": o.id.as_str(), "name": o.name, "created_at": rfc3339(o.created_at) })
}

fn staff_json(event: &str, staff: &[UserId]) -> Value {
    json!({ "event_id": event, "staff": staff.iter().map(UserId::as_str).collect::<Vec<_>>() })
}

async fn create_org(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Json(b): Json<NewOrg>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let o = s.app.create_org(&who, &b.name).await?;
    Ok((StatusCode::CREATED, axum::Json(org_json(&o))))
}

async fn show_org(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(org_json(&s.app.org(&who, &id).await?)))
}

async fn invite(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(b): Json<NewInvitation>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let i = s.app.invite(&who, &id, &b.email, &b.role).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "id": i.id.as_str(),
            "org_id": i.org_id.as_str(),
            "email": i.email.as_str(),
            "role": i.role.as_str(),
            "expires_at": rfc3339(i.expires_at),
        })),
    ))
}

fn invitation_json(i: &InvitationListing) -> Value {
    json!({
        "id": i.view.id.as_str(),
        "org_id": i.view.org_id.as_str(),
        "email": i.view.email.as_str(),
        "role": i.view.role.as_str(),
        "state": i.state,
        "invited_by": i.invited_by.as_str(),
        "created_at": rfc3339(i.created_at),
        "expires_at": rfc3339(i.view.expires_at),
    })
}

/// The newest invitations of an organization with their state (never a token).
async fn invitations(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let list = s.app.invitations(&who, &id).await?;
    Ok(axum::Json(json!({
        "invitations": list.iter().map(invitation_json).collect::<Vec<_>>()
    })))
}

async fn revoke_invitation(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path((id, invitation)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.revoke_invitation(&who, &id, &invitation).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tries count against the login limit of the caller's IP: a token is a secret
/// to guess like a password.
async fn accept(
    State(s): State<HttpState>,
    peer: Peer,
    Json(b): Json<TokenAndPassword>,
) -> Result<axum::Json<Value>, ApiError> {
    limit(&s, boxoffice_ports::LimitClass::Login, &peer.key()).await?;
    let t = s.app.accept_invitation(&b.token, &b.password).await?;
    Ok(super::identity::tokens(t))
}

/// Always 202: whether the account exists is not told.
async fn reset_request(
    State(s): State<HttpState>,
    peer: Peer,
    Json(b): Json<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    limit(&s, boxoffice_ports::LimitClass::Login, &peer.key()).await?;
    s.app.request_password_reset(&b.email).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn reset_confirm(
    State(s): State<HttpState>,
    peer: Peer,
    Json(b): Json<TokenAndPassword>,
) -> Result<StatusCode, ApiError> {
    limit(&s, boxoffice_ports::LimitClass::Login, &peer.key()).await?;
    s.app.confirm_password_reset(&b.token, &b.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn staff(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let staff = s.app.event_staff(&who, &id).await?;
    Ok(axum::Json(staff_json(&id, &staff)))
}

async fn assign_staff(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(b): Json<Assign>,
) -> Result<axum::Json<Value>, ApiError> {
    let staff = s.app.assign_staff(&who, &id, &b.user_id).await?;
    Ok(axum::Json(staff_json(&id, &staff)))
}

/// Who the token says the caller is (role and organization as of its issue).
async fn me(Auth(who): Auth) -> axum::Json<Value> {
    axum::Json(json!({
        "user_id": who.user_id.as_str(),
        "role": who.role.as_str(),
        "org_id": who.org.as_ref().map(|o| o.as_str()),
    }))
}
