//! The virtual waiting room (issue 12): `POST /v1/events/{id}/queue` (join, after
//! a proof of work when the room asks), `GET /v1/events/{id}/queue/challenge`,
//! `GET /v1/queue/{queue_id}` (where one stands, with the admission token once
//! admitted), its Server-Sent Events stream `GET /v1/queue/{queue_id}/stream`, and
//! `DELETE /v1/queue/{queue_id}` (done shopping: the slot goes to the next).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::{JoinAsk, QueueState, QueueView};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;

use crate::extract::{Auth, Path};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/events/{id}/queue", post(join))
        .route("/v1/events/{id}/queue/challenge", get(challenge))
        .route("/v1/queue/{queue_id}", get(show).delete(leave))
        .route("/v1/queue/{queue_id}/stream", get(stream))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn view(v: &QueueView) -> Value {
    let mut out = json!({
        "queue_id": v.queue_id,
        "event_id": v.event_id.as_str(),
        "state": v.state.as_str(),
        "position": v.position,
        "rank": v.rank,
        "estimated_wait_seconds": v.estimated_wait_seconds,
    });
    if let Some(t) = &v.admission_token {
        out["admission_token"] = json!(t);
    }
    if let Some(t) = v.session_expires_at {
        out["session_expires_at"] = json!(rfc3339(t));
    }
    out
}

async fn challenge(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(event): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let c = s.app.queue_challenge(&who, &event).await?;
    Ok(axum::Json(json!({
        "challenge": c.challenge,
        "difficulty": c.difficulty,
        "algorithm": "sha256",
        "expires_at": rfc3339(c.expires_at),
    })))
}

async fn join(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(event): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let client = format!("c:{}", who.user_id);
    crate::rate_limits::limit(&s, boxoffice_ports::LimitClass::Shop, &client).await?;
    // The body is optional: a room without a challenge needs none.
    let ask = if body.iter().all(u8::is_ascii_whitespace) {
        JoinAsk::default()
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
        serde_json::from_value(v).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                e.to_string(),
            )
        })?
    };
    let (v, _) = s.app.join_queue(&who, &event, ask).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&v))))
}

/// Reading one's place is limited per queue id (a customer on an event): a
/// client polling in a loop gets 429 with `Retry-After`, others are served.
async fn poll_limit(s: &HttpState, queue_id: &str) -> Result<(), ApiError> {
    let key: String = queue_id.chars().take(200).collect();
    crate::rate_limits::limit(s, boxoffice_ports::LimitClass::Poll, &format!("q:{key}")).await
}

async fn show(
    State(s): State<HttpState>,
    Path(queue_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    poll_limit(&s, &queue_id).await?;
    Ok(axum::Json(view(&s.app.queue_status(&queue_id).await?)))
}

async fn leave(
    State(s): State<HttpState>,
    Path(queue_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.leave_queue(&queue_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The same view as an event stream: an event `state` now and at every change,
/// until admitted or expired. Admissions are decided when the room is asked, so
/// the stream asks once a second; a keep-alive comment keeps proxies from closing
/// a quiet stream.
async fn stream(
    State(s): State<HttpState>,
    peer: crate::rate_limits::Peer,
    Path(queue_id): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    poll_limit(&s, &queue_id).await?;
    let slot = crate::slots::stream_slot(&s, &peer)?;
    let first = s.app.queue_status(&queue_id).await?;
    let app = s.app.clone();
    let events = futures::stream::unfold(
        (Some(first), None::<Value>, false),
        move |(next, last, done)| {
            // Held while the stream lives (the closure is dropped with it).
            let _open = &slot;
            let app = app.clone();
            let queue_id = queue_id.clone();
            async move {
                if done {
                    return None;
                }
                let mut current = next;
                loop {
                    let v = match current.take() {
                        Some(v) => v,
                        None => {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            match app.queue_status(&queue_id).await {
                                Ok(v) => v,
                                Err(_) => continue,
                            }
                        }
                    };
                    let body = view(&v);
                    let mut same = body.clone();
                    if let (Some(o), Some(l)) = (same.as_object_mut(), last.as_ref()) {
                        // The estimate alone moving is no change worth an event.
                        o.insert(
                            "estimated_wait_seconds".into(),
                            l["estimated_wait_seconds"].clone(),
                        );
                    }
                    if last.as_ref() == Some(&same) {
                        continue;
                    }
                    let end = matches!(v.state, QueueState::Admitted | QueueState::Expired);
                    let event = Event::default().event("state").data(body.to_string());
                    return Some((Ok(event), (None, Some(body), end)));
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
