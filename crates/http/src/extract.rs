//! Extractors: JSON bodies whose rejections speak our error format, and the caller's
//! identity from a bearer token.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use boxoffice_app::Principal;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::HttpState;

/// A JSON body. Malformed JSON is 400 `malformed_json`; JSON of the wrong shape is
/// 422 `invalid_request`; another content type is 415; too large is 413.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", text)
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ),
        other => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
    }
}

/// A path parameter. A segment that does not decode (`/v1/events/%FF`) is 400
/// `invalid_path` in our error shape, not axum's plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) if r.status().is_server_error() => Err(internal(r.body_text())),
            Err(r) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                r.body_text(),
            )),
        }
    }
}

/// A query string. One that does not parse (a parameter given twice, bad
/// percent-encoding) is 400 `invalid_query` in our error shape.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                r.body_text(),
            )),
        }
    }
}

fn internal(cause: String) -> ApiError {
    tracing::error!(%cause, "extractor misconfigured");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error",
    )
}

/// An authenticated caller; 401 without a valid bearer token.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// An authenticated admin, decided from the headers alone: 401 without a valid
/// token, 403 for another role, before any body is read. A handler that takes a
/// body from admins only takes this extractor first, so nobody else's body is
/// ever read or parsed (and the route's larger body limit serves admins alone).
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequestParts<HttpState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        who.require_admin()?;
        Ok(Admin(who))
    }
}

/// An authenticated catalogue writer (an organizer of an organization, or an
/// admin), decided from the headers alone like [`Admin`]: 403 for anyone else
/// before the body is read. Which venues and events it may change the use case
/// decides.
#[derive(Debug, Clone)]
pub struct CatalogueWriter(pub Principal);

impl FromRequestParts<HttpState> for CatalogueWriter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        who.require_catalogue_writer()?;
        Ok(CatalogueWriter(who))
    }
}

/// The caller if a valid token was sent; anonymous otherwise (a bad token is 401).
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Principal>);

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <token>",
        )
    };
    let value = value.to_str().map_err(|_| unauthorized())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized());
    }
    Ok(Some(token.trim()))
}

impl FromRequestParts<HttpState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required",
            )
        })?;
        let mut who = state.app.authenticate(token)?;
        who.origin = origin(parts);
        Ok(Auth(who))
    }
}

impl FromRequestParts<HttpState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        match bearer(parts)? {
            None => Ok(MaybeAuth(None)),
            Some(token) => {
                let mut who = state.app.authenticate(token)?;
                who.origin = origin(parts);
                Ok(MaybeAuth(Some(who)))
            }
        }
    }
}

/// What the audit log records of where a request came from: the edge's request id
/// and the connection's address (no forwarding header is trusted).
fn origin(parts: &Parts) -> boxoffice_domain::Origin {
    boxoffice_domain::Origin {
        request_id: parts
            .headers
            .get(&crate::edge::X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    }
}
