//! Venues and events: admin writes, public reads, the static layout (cacheable,
//! ETag) and the live compact seat map.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use boxoffice_domain::{EventId, EventStatus, NewEvent, ValidationError, VenueSpec};
use boxoffice_ports::EventSearch;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::extract::{Auth, CatalogueWriter, Json, MaybeAuth, Path, Query};
use crate::seat_maps::{self, Coding};
use crate::{views, ApiError, HttpLimits, HttpState, PreEncoded};
use bytes::Bytes;
use std::sync::Arc;

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
    CatalogueWriter(who): CatalogueWriter,
    Json(spec): Json<VenueSpec>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let v = s.app.create_venue(&who, spec).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(views::venue(&v)))))
}

async fn list_venues(
    State(s): State<HttpState>,
    Auth(who): Auth,
) -> Result<axum::Json<Value>, ApiError> {
    let venues = s.app.venues(&who).await?;
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
    CatalogueWriter(who): CatalogueWriter,
    Json(new): Json<NewEvent>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let r = s.app.create_event(&who, new).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(views::event(&r)))))
}

/// `GET /v1/events?q=&city=&category=&from=&to=&cursor=&limit=`. Every parameter
/// is read as text and checked here, so that a bad one is our 422 with its field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrowseQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

const PAGE_DEFAULT: u32 = 50;
const PAGE_MAX: u32 = 100;

fn invalid_param(field: &'static str, message: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message).with("field", field)
}

/// An instant (RFC 3339), or a date (`2030-06-01`: its midnight UTC).
fn instant(field: &'static str, v: &str) -> Result<OffsetDateTime, ApiError> {
    let bad = || invalid_param(field, "an RFC 3339 time or a date (YYYY-MM-DD)");
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| bad())
}

/// The cursor is opaque to clients: the hex of `<starts_at ms>:<event id>` of the
/// page's last event.
pub(crate) fn encode_cursor(at: OffsetDateTime, id: &EventId) -> String {
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    format!("{ms}:{id}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn decode_cursor(c: &str) -> Result<(OffsetDateTime, EventId), ApiError> {
    let bad = || invalid_param("cursor", "not a cursor this server gave");
    if !c.len().is_multiple_of(2) || c.len() > 256 {
        return Err(bad());
    }
    let bytes = (0..c.len())
        .step_by(2)
        .map(|i| c.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ms, id) = text.split_once(':').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| bad())?;
    let id = EventId::try_from(id).map_err(|_| bad())?;
    Ok((at, id))
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn list_events(
    State(s): State<HttpState>,
    MaybeAuth(who): MaybeAuth,
    Query(b): Query<BrowseQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let limit = match b.limit.as_deref() {
        None => PAGE_DEFAULT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=PAGE_MAX).contains(l))
            .ok_or_else(|| invalid_param("limit", "a number from 1 to 100"))?,
    };
    let q = EventSearch {
        text: nonempty(b.q),
        city: nonempty(b.city),
        category: nonempty(b.category),
        from: nonempty(b.from).map(|v| instant("from", &v)).transpose()?,
        to: nonempty(b.to).map(|v| instant("to", &v)).transpose()?,
        include_drafts: false,
        after: b.cursor.as_deref().map(decode_cursor).transpose()?,
        // One more than the page: whether there is a next one.
        limit: limit + 1,
    };
    let mut events = s.app.search_events(who.as_ref(), q).await?;
    let next = (events.len() > limit as usize).then(|| {
        events.truncate(limit as usize);
        let last = &events[limit as usize - 1].event;
        encode_cursor(last.starts_at, &last.id)
    });
    let mut body = json!({ "events": events.iter().map(views::event).collect::<Vec<_>>() });
    if let Some(n) = next {
        body["next_cursor"] = json!(n);
    }
    let body = Bytes::from(serde_json::to_vec(&body).expect("events serialize"));
    let etag = views::content_etag(&body);
    // Drafts are in an admin's answer: no shared cache keeps it. Anyone else's is
    // the same for all, and a CDN may keep it briefly and revalidate by ETag.
    let cache = if who.as_ref().is_some_and(|p| p.may_see_drafts()) {
        "private, no-cache"
    } else {
        "public, max-age=10"
    };
    let status = if not_modified(&headers, &etag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut res = with_etag(
        status,
        &etag,
        cache,
        (status == StatusCode::OK).then_some(body),
    );
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("authorization"));
    Ok(res)
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
    #[serde(default)]
    rotating_codes: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    city: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    category: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
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
    CatalogueWriter(who): CatalogueWriter,
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
    let details = boxoffice_app::DetailsChange {
        city: patch.city,
        category: patch.category,
        description: patch.description,
    };
    if to.is_none()
        && patch.max_tickets_per_customer.is_none()
        && patch.waiting_room.is_none()
        && patch.rotating_codes.is_none()
        && details.is_empty()
    {
        return Err(boxoffice_app::AppError::Invalid(ValidationError::new(
            "status",
            "send status, max_tickets_per_customer, waiting_room, rotating_codes, city, category or description",
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
    if let Some(on) = patch.rotating_codes {
        r = Some(s.app.set_event_rotating_codes(&who, &id, on).await?);
    }
    if !details.is_empty() {
        r = Some(s.app.set_event_details(&who, &id, details).await?);
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
    // Rendered once per event, and compressed once per coding (a 50,000-seat
    // layout is 6.9 MB of JSON: deflating it for every page view would cost more
    // than everything else the page asks for).
    let encoded = match s.layouts.get(&eid) {
        Some(hit) => hit,
        None => {
            let table = s.app.seat_table(&ev).await?;
            let (json, etag) = views::layout(ev.event(), &table);
            let encoded = Arc::new(seat_maps::Encoded::from_json(etag, json));
            s.layouts.insert(eid, encoded.clone());
            encoded
        }
    };
    // A draft's layout is for the eyes that may see it: no shared cache keeps it.
    let cache = if ev.event().status == EventStatus::Draft {
        "private, no-cache"
    } else {
        "public, max-age=300"
    };
    if not_modified(&headers, &encoded.etag) {
        return Ok(pre_encoded(
            StatusCode::NOT_MODIFIED,
            &encoded.etag,
            cache,
            None,
        ));
    }
    let body = encoded.body(Coding::negotiate(&headers)).await;
    Ok(pre_encoded(
        StatusCode::OK,
        &encoded.etag,
        cache,
        Some(body),
    ))
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
        return Ok(pre_encoded(
            StatusCode::NOT_MODIFIED,
            &etag,
            "no-cache",
            None,
        ));
    }
    let encoded = s
        .seat_maps
        .get(&ev.event().id, version, || s.app.live_seat_map(&ev))
        .await?;
    // The map may have moved on since the version was read; the client may have
    // that newer one already.
    if not_modified(&headers, &encoded.etag) {
        return Ok(pre_encoded(
            StatusCode::NOT_MODIFIED,
            &encoded.etag,
            "no-cache",
            None,
        ));
    }
    let body = encoded.body(Coding::negotiate(&headers)).await;
    Ok(pre_encoded(
        StatusCode::OK,
        &encoded.etag,
        "no-cache",
        Some(body),
    ))
}

/// A body this handler already encoded (the global compression layer leaves it).
fn pre_encoded(
    status: StatusCode,
    etag: &str,
    cache: &'static str,
    body: Option<(Coding, Bytes)>,
) -> Response {
    let coding = body.as_ref().and_then(|(c, _)| c.header());
    let mut res = with_etag(status, etag, cache, body.map(|(_, b)| b));
    let h = res.headers_mut();
    // Caches must key on the coding, for the 304 too (same headers as the 200).
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(c) = coding {
        h.insert(header::CONTENT_ENCODING, c);
    }
    res.extensions_mut().insert(PreEncoded);
    res
}
