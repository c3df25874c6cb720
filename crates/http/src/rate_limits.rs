//! Rate limits at the door (issue 12): each limited route asks the limiter for its
//! client before doing any work; over the quota is 429 `rate_limited` with
//! `Retry-After` (whole seconds, rounded up) and `retry_after_seconds` in the body.

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use boxoffice_ports::LimitClass;
use std::net::SocketAddr;

use crate::{ApiError, HttpState};

/// The client's address, as the server saw the connection (no forwarding header is
/// trusted); `None` where the router runs without one (unit tests).
pub(crate) struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

impl Peer {
    pub(crate) fn key(&self) -> String {
        match self.0 {
            Some(a) => format!("ip:{}", a.ip()),
            None => "ip:unknown".to_owned(),
        }
    }
}

/// The key of an account's login limit: a digest of the email as logins compare
/// it (trimmed, lower-cased), so the limiter's keys hold no address and have one
/// length, and every spelling of one account shares its quota.
pub(crate) fn account_key(email: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("acct:{hex}")
}

/// Counts one request of `key` in `class`. A limiter that does not answer lets
/// the request through (and says so in the log): the hold itself then fails or
/// succeeds on its own backends.
pub(crate) async fn limit(s: &HttpState, class: LimitClass, key: &str) -> Result<(), ApiError> {
    let Some(limiter) = &s.limiter else {
        return Ok(());
    };
    match limiter.check(class, key).await {
        Ok(None) => Ok(()),
        Ok(Some(wait)) => {
            metrics::counter!("boxoffice_rate_limited_total", "class" => class.as_str())
                .increment(1);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {secs} s"),
            )
            .with("retry_after_seconds", secs))
        }
        Err(e) => {
            metrics::counter!("boxoffice_rate_limiter_errors_total").increment(1);
            tracing::warn!(error = ?e, class = class.as_str(), "rate limiter unavailable: request let through");
            Ok(())
        }
    }
}
