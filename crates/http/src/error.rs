//! The one place where errors become HTTP answers.
//!
//! Every error body is `{"error": {"code": "<snake_case>", "message": "...", ...}}`.
//! 5xx bodies are opaque: the cause chain goes to the log, never to the client.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use boxoffice_app::AppError;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            AppError::Invalid(v) => ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_request", msg)
                .with("field", v.field),
            AppError::NotFound => ApiError::not_found(),
            AppError::EmailTaken => ApiError::new(S::CONFLICT, "email_taken", msg),
            AppError::InvalidCredentials => {
                ApiError::new(S::UNAUTHORIZED, "invalid_credentials", msg)
            }
            AppError::Unauthenticated => ApiError::new(S::UNAUTHORIZED, "unauthorized", msg),
            AppError::InvalidRefreshToken => {
                ApiError::new(S::UNAUTHORIZED, "invalid_refresh_token", msg)
            }
            AppError::RefreshTokenReused => {
                ApiError::new(S::UNAUTHORIZED, "refresh_token_reused", msg)
            }
            AppError::InvalidToken => ApiError::new(S::BAD_REQUEST, "invalid_token", msg),
            AppError::Forbidden | AppError::OwnerOnly => {
                ApiError::new(S::FORBIDDEN, "forbidden", msg)
            }
            AppError::Conflict { constraint } => {
                ApiError::new(S::CONFLICT, conflict_code(constraint), msg)
            }
            AppError::NotOnSale => ApiError::new(S::CONFLICT, "not_on_sale", msg),
            AppError::TicketsNotIssued => ApiError::new(S::CONFLICT, "tickets_not_issued", msg),
            AppError::SeatsUnavailable(seats) => {
                ApiError::new(S::CONFLICT, "seats_unavailable", msg).with(
                    "seats",
                    seats.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            }
            AppError::SoldOut { remaining } => {
                ApiError::new(S::CONFLICT, "sold_out", msg).with("remaining", remaining)
            }
            AppError::CustomerLimitReached { limit } => {
                ApiError::new(S::CONFLICT, "customer_limit_reached", msg).with("limit", limit)
            }
            AppError::SeatsAvailable { available } => {
                ApiError::new(S::CONFLICT, "seats_available", msg).with("available", available)
            }
            AppError::AdmissionRequired { .. } => {
                ApiError::new(S::FORBIDDEN, "admission_required", msg)
            }
            AppError::NoWaitingRoom => ApiError::new(S::CONFLICT, "no_waiting_room", msg),
            AppError::QueueNotOpen => ApiError::new(S::CONFLICT, "queue_not_open", msg),
            AppError::ChallengeRequired { difficulty } => {
                ApiError::new(S::FORBIDDEN, "challenge_required", msg)
                    .with("difficulty", difficulty)
            }
            AppError::ChallengeFailed { .. } => {
                ApiError::new(S::FORBIDDEN, "challenge_failed", msg)
            }
            AppError::ChallengeExpired => ApiError::new(S::FORBIDDEN, "challenge_expired", msg),
            AppError::HoldExpired => ApiError::new(S::GONE, "hold_expired", msg),
            AppError::HoldConverted => ApiError::new(S::CONFLICT, "hold_converted", msg),
            AppError::InvalidTransition { from, to } => {
                ApiError::new(S::CONFLICT, "invalid_status_transition", msg)
                    .with("from", from.as_str())
                    .with("to", to.as_str())
            }
            AppError::IdempotencyKeyMissing => {
                ApiError::new(S::BAD_REQUEST, "idempotency_key_missing", msg)
            }
            AppError::IdempotencyKeyReused => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", msg)
            }
            AppError::OrderNotPaid { status } => {
                ApiError::new(S::CONFLICT, "order_not_paid", msg).with("status", status.as_str())
            }
            AppError::RefundTooLarge { remaining } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "refund_exceeds_remaining", msg).with(
                    "remaining",
                    serde_json::to_value(remaining).unwrap_or_default(),
                )
            }
            AppError::WebhookRejected { code, .. } => ApiError::new(S::BAD_REQUEST, code, msg),
            AppError::GatewayUnavailable(cause) => {
                tracing::warn!(error = ?cause, "payment gateway unavailable");
                ApiError::new(S::BAD_GATEWAY, "gateway_unavailable", msg)
            }
            AppError::Unavailable(cause) => {
                tracing::error!(error = ?cause, "backend unavailable");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "try again shortly",
                )
            }
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
            }
        }
    }
}

/// The code of a store conflict, by the constraint that refused the write. Every
/// constraint a client can run into by racing another client is named here; any
/// other is still a 409 `conflict`, never a 500.
pub fn conflict_code(constraint: &str) -> &'static str {
    match constraint {
        "users_email" => "email_taken",
        "sold_seats" | "held_seats" => "seats_unavailable",
        "ga_capacity" => "sold_out",
        "customer_limit" => "customer_limit_reached",
        "event_cancelled" => "event_cancelled",
        "idempotency_keys" => "idempotency_key_reused",
        "users_role" => "account_has_role",
        "invitation_closed" => "invitation_closed",
        _ => "conflict",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("code".into(), self.code.into());
        body.insert("message".into(), self.message.into());
        let retry_after = self
            .extra
            .get("retry_after_seconds")
            .and_then(Value::as_u64);
        body.extend(self.extra);
        let mut res = (self.status, axum::Json(json!({ "error": body }))).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

/// The last line of the error shape: an error answer that did not come from
/// `ApiError` (a rejection of axum's own: a body over the limit where raw bytes are
/// read, a missing route's default) is rewritten into `{"error": {...}}`, keeping
/// its status and headers (`Allow`, `Retry-After`). Handlers should not rely on it:
/// every extractor of ours already answers in the shape; this catches the rest.
pub(crate) async fn error_shape(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // JSON is already in the shape; HTML is a web page's own error page.
    if json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_request",
        431 => "headers_too_large",
        s if s >= 500 => "internal_error",
        _ => "bad_request",
    };
    let message = if status.is_server_error() {
        tracing::error!(status = status.as_u16(), body = %text, "an error answer outside ApiError");
        "internal error".to_owned()
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body too large".to_owned()
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut shaped = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_ports::StoreError;

    #[test]
    fn store_conflicts_are_409_by_constraint_name_never_500() {
        for (constraint, code) in [
            ("users_email", "email_taken"),
            ("sold_seats", "seats_unavailable"),
            ("ga_capacity", "sold_out"),
            ("customer_limit", "customer_limit_reached"),
            ("event_cancelled", "event_cancelled"),
            ("something_new", "conflict"),
        ] {
            let e = ApiError::from(AppError::from(StoreError::Conflict { constraint }));
            assert_eq!((e.status, e.code), (StatusCode::CONFLICT, code));
        }
    }
}
