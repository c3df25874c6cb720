//! `GET /v1/audit?event_id=&cursor=&limit=`: the tamper-evident audit log, newest
//! first, for admins and ops (read-only). A page's `next_cursor` asks for the
//! older records after it; each record carries its place in the hash chain.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use crate::extract::{Auth, Query};
use crate::{ApiError, HttpState};

pub fn router() -> Router<HttpState> {
    Router::new().route("/v1/audit", get(audit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    event_id: Option<String>,
    /// The `next_cursor` of the page before (a record's `seq`): records older than it.
    cursor: Option<i64>,
    limit: Option<usize>,
}

async fn audit(
    State(s): State<HttpState>,
    Auth(who): Auth,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let page = s
        .app
        .audit_log(
            &who,
            q.event_id.as_deref(),
            q.cursor,
            q.limit.unwrap_or(100),
        )
        .await?;
    let records: Vec<_> = page
        .records
        .iter()
        .map(|c| {
            let r = &c.record;
            json!({
                "seq": c.seq,
                "id": r.id,
                "at": r.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "actor": r.actor,
                "role": r.role,
                "request_id": r.request_id,
                "ip": r.ip,
                "action": r.action,
                "subject": r.subject,
                "event_id": r.event_id,
                "before": r.before.as_deref().and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok()),
                "after": r.after.as_deref().and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok()),
                "prev_hash": c.prev_hash,
                "hash": c.hash,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "order": "newest_first",
        "records": records,
        "next_cursor": page.next,
    })))
}
