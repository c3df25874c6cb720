//! Venues and events: admin writes, public reads, the static layout (cacheable,
//! ETag) and the live compact seat map.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use boxoffice_domain::{EventStatus, NewEvent, ValidationError, VenueSpec};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Admin, Json, MaybeAuth, Path};
use crate::seat_maps::{self, Coding};
use crate::{views, ApiError, HttpLimits, HttpState, PreEncoded};
use bytes::Bytes;

pub fn router(limits: &HttpLimits) -> Router<HttpState> {
    Router::new()
        .route(
            "/v1/venues",
            get(list_venues)
                .post(create_venue)
                .layer(DefaultBodyLimit::max(limits.venue_body_limit)),
        )
        .route("/v1/venues/{id}", get(get_venue))
        .route("/v1/events", get(list_events).post(create_event))
        .route("/v1/events/{id}", get(get_event).patch(patch_event))
        .route("/v1/events/{id}/layout", get(layout))
        .route("/v1/events/{id}/seats", get(seats))
}

async fn create_venue(
    State(s): State<HttpState>,
    Admin(who): Admin,
    Json(spec): Json<VenueSpec>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let v = s.app.create_venue(&who, spec).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(views::venue(&v)))))
}

async fn list_venues(
    State(s): State<HttpState>,
    Admin(_): Admin,
) -> Result<axum::Json<Value>, ApiError> {
    let venues = s.app.venues().await?;
    Ok(axum::Json(
        json!({ "venues": venues.iter().map(views::venue).collect::<Vec<_>>() }),
    ))
}

async fn get_venue(
    State(s): State<HttpState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let v = s.app.venue(&id).await?;
    Ok(axum::Json(json!(views::venue(&v))))
}

async fn create_event(
    State(s): State<HttpState>,
    Admin(who): Admin,
    Json(new): Json<NewEvent>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let r = s.app.create_event(&who, new).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(views::event(&r)))))
}

async fn list_events(
    State(s): State<HttpState>,
    MaybeAuth(who): MaybeAuth,
) -> Result<axum::Json<Value>, ApiError> {
    let events = s.app.events(who.as_ref()).await?;
    Ok(axum::Json(
        json!({ "events": events.iter().map(views::event).collect::<Vec<_>>() }),
    ))
}

async fn get_event(
    State(s): State<HttpState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let ev = s.app.visible_event(who.as_ref(), &id).await?;
    Ok(axum::Json(json!(views::event(&ev.record))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventPatch {
    #[serde(default)]
    status: Option<String>,
    /// Absent: unchanged; `null`: no cap; a number: the cap.
    #[serde(default, deserialize_with = "present")]
    max_tickets_per_customer: Option<Option<u32>>,
    /// Absent: unchanged; `null`: removed; an object: the room's settings.
    #[serde(default, deserialize_with = "present")]
    waiting_room: Option<Option<boxoffice_domain::WaitingRoomSettings>>,
}

/// A field that is present (even as `null`) is `Some`; an absent one stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

async fn patch_event(
    State(s): State<HttpState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    Json(patch): Json<EventPatch>,
) -> Result<axum::Json<Value>, ApiError> {
    let to = patch
        .status
        .map(|st| {
            EventStatus::parse(&st).ok_or_else(|| {
                boxoffice_app::AppError::Invalid(ValidationError::new(
                    "status",
                    "one of draft, on_sale, paused, ended, cancelled",
                ))
            })
        })
        .transpose()?;
    if to.is_none() && patch.max_tickets_per_customer.is_none() && patch.waiting_room.is_none() {
        return Err(boxoffice_app::AppError::Invalid(ValidationError::new(
            "status",
            "send status, max_tickets_per_customer and/or waiting_room",
        ))
        .into());
    }
    if let Some(cap) = patch.max_tickets_per_customer {
        boxoffice_domain::check_max_tickets_per_customer(cap)
            .map_err(boxoffice_app::AppError::Invalid)?;
    }
    if let Some(Some(room)) = &patch.waiting_room {
        room.validate().map_err(boxoffice_app::AppError::Invalid)?;
    }
    let mut r = None;
    if let Some(room) = patch.waiting_room {
        r = Some(s.app.set_event_waiting_room(&who, &id, room).await?);
    }
    if let Some(cap) = patch.max_tickets_per_customer {
        r = Some(s.app.set_event_customer_limit(&who, &id, cap).await?);
    }
    if let Some(to) = to {
        r = Some(s.app.set_event_status(&who, &id, to).await?);
    }
    let r = r.ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(json!(views::event(&r))))
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn with_etag(status: StatusCode, etag: &str, cache: &'static str, body: Option<Bytes>) -> Response {
    let mut res = match body {
        Some(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

async fn layout(
    State(s): State<HttpState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ev = s.app.visible_event(who.as_ref(), &id).await?;
    let eid = ev.event().id.clone();
    let (body, etag) = match s.layouts.get(&eid) {
        Some(hit) => hit,
        None => {
            let table = s.app.seat_table(&ev).await?;
            let rendered = views::layout(ev.event(), &table);
            s.layouts.insert(eid, rendered.clone());
            rendered
        }
    };
    // A draft's layout is for the eyes that may see it: no shared cache keeps it.
    let cache = if ev.event().status == EventStatus::Draft {
        "private, no-cache"
    } else {
        "public, max-age=300"
    };
    if not_modified(&headers, &etag) {
        return Ok(with_etag(StatusCode::NOT_MODIFIED, &etag, cache, None));
    }
    Ok(with_etag(StatusCode::OK, &etag, cache, Some(body)))
}

/// The live map, served from memory: the engine is asked only for the version (a
/// 304 costs no more), and the body comes from the per-version cache, already
/// encoded in the coding this handler negotiated (the global compression layer is
/// told to leave it).
async fn seats(
    State(s): State<HttpState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (ev, version) = s.app.seat_map_version(who.as_ref(), &id).await?;
    // The version identifies the state: a client polling with If-None-Match gets a
    // 304 until something changes.
    let etag = seat_maps::etag(version);
    if not_modified(&headers, &etag) {
        return Ok(seat_map_response(StatusCode::NOT_MODIFIED, &etag, None));
    }
    let encoded = s
        .seat_maps
        .get(&ev.event().id, version, || s.app.live_seat_map(&ev))
        .await?;
    // The map may have moved on since the version was read; the client may have
    // that newer one already.
    if not_modified(&headers, &encoded.etag) {
        return Ok(seat_map_response(
            StatusCode::NOT_MODIFIED,
            &encoded.etag,
            None,
        ));
    }
    let body = encoded.body(Coding::negotiate(&headers)).await;
    Ok(seat_map_response(StatusCode::OK, &encoded.etag, Some(body)))
}

fn seat_map_response(status: StatusCode, etag: &str, body: Option<(Coding, Bytes)>) -> Response {
    let coding = body.as_ref().and_then(|(c, _)| c.header());
    let mut res = with_etag(status, etag, "no-cache", body.map(|(_, b)| b));
    let h = res.headers_mut();
    // Caches must key on the coding, for the 304 too (same headers as the 200).
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(c) = coding {
        h.insert(header::CONTENT_ENCODING, c);
    }
    res.extensions_mut().insert(PreEncoded);
    res
}
