//! Check-in: `POST /v1/checkin` (a scan at a gate), `GET /v1/events/{id}/checkin/bundle`
//! and `POST /v1/events/{id}/checkin/sync` (scanners working offline), the public
//! ticket keys (`GET /v1/ticket-keys`; `POST /v1/admin/ticket-keys` rotates), and a
//! holder's rotating code (`GET /v1/tickets/{id}/rotating`). Who may scan what is
//! the use cases' (`checkin.rs`, `permissions.rs`); a scan's business outcome is
//! always 200 with its `result`.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use boxoffice_app::checkin::{
    Bundle, Conflict, OfflineScan, PublicTicketKey, RotatingView, ScanAsk, ScanView,
};
use boxoffice_ports::FirstScan;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::extract::{Admin, Auth, Json, Path};
use crate::{ApiError, HttpState};

/// A sync may carry a day's scans of a busy gate (`MAX_SYNC_SCANS` of ~200 bytes).
const SYNC_BODY_LIMIT: usize = 2 * 1024 * 1024;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v1/checkin", post(check_in))
        .route("/v1/events/{id}/checkin/bundle", get(bundle))
        .route(
            "/v1/events/{id}/checkin/sync",
            post(sync).layer(DefaultBodyLimit::max(SYNC_BODY_LIMIT)),
        )
        .route("/v1/ticket-keys", get(keys))
        .route("/v1/admin/ticket-keys", post(rotate))
        .route("/v1/tickets/{id}/rotating", get(rotating))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    code: String,
    gate: String,
    scan_id: String,
    #[serde(default)]
    event_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    scans: Vec<SyncScan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncScan {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    ticket_id: Option<String>,
    gate: String,
    scan_id: String,
    #[serde(with = "time::serde::rfc3339")]
    scanned_at: OffsetDateTime,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn first_json(f: &FirstScan) -> Value {
    json!({ "at": rfc3339(f.at), "gate": f.gate })
}

fn scan_json(v: &ScanView) -> Value {
    let mut out = json!({ "result": v.result.as_str(), "scan_id": v.scan_id });
    if let Some(t) = &v.ticket {
        out["ticket"] = json!({
            "id": t.ticket.id.as_str(),
            "event_id": t.event_id.as_str(),
            "seat_id": t.ticket.seat_id.as_ref().map(|s| s.as_str()),
            "tier_id": t.ticket.tier_id.as_str(),
        });
    }
    if let Some(f) = &v.first_scan {
        out["first_scan"] = first_json(f);
    }
    out
}

fn keys_json(keys: &[PublicTicketKey]) -> Value {
    json!(keys
        .iter()
        .map(|k| json!({ "kid": k.kid, "alg": "Ed25519", "public_key": k.public_key }))
        .collect::<Vec<_>>())
}

fn conflict_json(c: &Conflict) -> Value {
    json!({
        "ticket_id": c.ticket_id.as_str(),
        "first": first_json(&c.first),
        "second": { "at": rfc3339(c.second.at), "gate": c.second.gate, "scan_id": c.second_scan_id },
    })
}

fn bundle_json(b: &Bundle) -> Value {
    json!({
        "event_id": b.event_id.as_str(),
        "event_tag": b.event_tag,
        "keys": keys_json(&b.keys),
        "rotating_codes": b.rotating_codes,
        "rotating_period_seconds": boxoffice_app::checkin::ROTATING_STEP_SECONDS,
        "revoked": b.revoked.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "tickets": b.tickets.iter().map(|t| {
            let r = &t.record;
            let mut v = json!({
                "id": r.ticket.id.as_str(),
                "seat_id": r.ticket.seat_id.as_ref().map(|s| s.as_str()),
                "tier_id": r.ticket.tier_id.as_str(),
                "checked_in": r.first_scan.is_some(),
                "void": r.void,
            });
            if let Some(s) = &t.rotating_secret {
                v["rotating_secret"] = json!(s);
            }
            v
        }).collect::<Vec<_>>(),
        "generated_at": rfc3339(b.generated_at),
    })
}

fn rotating_json(r: &RotatingView) -> Value {
    json!({
        "ticket_id": r.ticket_id.as_str(),
        "code": r.code,
        "secret": r.secret,
        "algorithm": "HMAC-SHA256",
        "period": r.period,
        "digits": r.digits,
        "current": r.current,
    })
}

async fn check_in(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Json(b): Json<ScanBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let v = s
        .app
        .check_in(
            &who,
            ScanAsk {
                code: b.code,
                gate: b.gate,
                scan_id: b.scan_id,
                event_id: b.event_id,
            },
        )
        .await?;
    Ok(axum::Json(scan_json(&v)))
}

async fn bundle(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let b = s.app.checkin_bundle(&who, &id).await?;
    Ok(axum::Json(bundle_json(&b)))
}

async fn sync(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(b): Json<SyncBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let scans = b
        .scans
        .into_iter()
        .map(|x| OfflineScan {
            code: x.code,
            ticket_id: x.ticket_id,
            gate: x.gate,
            scan_id: x.scan_id,
            scanned_at: x.scanned_at,
        })
        .collect();
    let r = s.app.checkin_sync(&who, &id, scans).await?;
    Ok(axum::Json(json!({
        "results": r.results.iter().map(scan_json).collect::<Vec<_>>(),
        "conflicts": r.conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
    })))
}

async fn keys(State(s): State<HttpState>) -> Result<axum::Json<Value>, ApiError> {
    let keys = s.app.ticket_public_keys().await?;
    Ok(axum::Json(json!({ "keys": keys_json(&keys) })))
}

async fn rotate(
    State(s): State<HttpState>,
    Admin(who): Admin,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let kid = s.app.rotate_ticket_key(&who).await?;
    let keys = s.app.ticket_public_keys().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "kid": kid, "keys": keys_json(&keys) })),
    ))
}

async fn rotating(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let r = s.app.ticket_rotating(&who, &id).await?;
    Ok(axum::Json(rotating_json(&r)))
}
