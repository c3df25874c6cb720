//! `GET /v1/events/{id}/stream`: the live seat map as Server-Sent Events (a
//! `snapshot`, then `change`s; `Last-Event-ID` resumes). The producing, diffing and
//! fan-out are `live.rs`'s; this only turns a subscription into an SSE body, which
//! ends when the client goes or the server shuts down.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use std::collections::VecDeque;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

use crate::extract::{MaybeAuth, Path};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new().route("/v1/events/{id}/stream", get(stream))
}

/// Counts open streams in `/metrics` while it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!("boxoffice_live_streams").increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("boxoffice_live_streams").decrement(1.0);
    }
}

async fn stream(
    State(s): State<HttpState>,
    MaybeAuth(who): MaybeAuth,
    peer: crate::rate_limits::Peer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let slot = crate::slots::stream_slot(&s, &peer)?;
    let ev = s.app.visible_event(who.as_ref(), &id).await?;
    // An unreadable Last-Event-ID is no position: the client gets a snapshot.
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut sub = s.live.subscribe(&s.app, &ev, last).await?;
    let pending: VecDeque<_> = std::mem::take(&mut sub.first).into();
    let body = futures::stream::unfold(
        (sub, pending, (Open::new(), slot)),
        |(mut sub, mut pending, open)| async move {
            loop {
                if let Some(p) = pending.pop_front() {
                    return Some((Ok::<SseEvent, Infallible>(p.sse()), (sub, pending, open)));
                }
                match sub.rx.recv().await {
                    Ok(p) => pending.push_back(p),
                    // Too slow for the channel: what it missed is gone; it starts
                    // again from the current map.
                    Err(RecvError::Lagged(_)) => {
                        metrics::counter!("boxoffice_live_resyncs_total").increment(1);
                        pending.push_back(sub.resync());
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    )
    .take_until(s.shutdown.clone().cancelled_owned());
    let mut res = Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies that buffer responses (nginx) would hold the pushes back.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}
