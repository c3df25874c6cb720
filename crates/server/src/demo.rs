//! The demo event: a 2,000-seat arena in four sections, two price tiers, a standing
//! area, on sale now. Seeded on an empty database so a fresh `cargo run` has
//! something to sell.

use boxoffice_app::{App, AppError, Principal};
use boxoffice_domain::{EventId, EventStatus, NewEvent, VenueSpec};
use time::{Duration, OffsetDateTime};

pub async fn seed(app: &App) -> Result<EventId, AppError> {
    let admin = Principal::system();
    let spec: VenueSpec = serde_json::from_value(serde_json::json!({
        "name": "Boxoffice Arena",
        "sections": [
            {"name": "A", "rows": 10, "seats_per_row": 50},
            {"name": "B", "rows": 10, "seats_per_row": 50},
            {"name": "C", "rows": 10, "seats_per_row": 50},
            {"name": "D", "rows": 10, "seats_per_row": 50}
        ]
    }))
    .map_err(|e| AppError::Internal(e.into()))?;
    let venue = app.create_venue(&admin, spec).await?;
    let starts = (OffsetDateTime::now_utc() + Duration::days(30))
        .replace_time(time::Time::from_hms(20, 0, 0).expect("valid time"));
    let new: NewEvent = serde_json::from_value(serde_json::json!({
        "venue_id": venue.id,
        "name": "Boxoffice Demo Night",
        "starts_at": starts.format(&time::format_description::well_known::Rfc3339).map_err(|e| AppError::Internal(e.into()))?,
        "hold_ttl_seconds": 300,
        "max_tickets_per_order": 8,
        "tiers": [
            {"name": "Front", "price": {"amount": 6500, "currency": "EUR"}, "sections": ["A", "B"]},
            {"name": "Back", "price": {"amount": 4500, "currency": "EUR"}, "sections": ["C", "D"]}
        ],
        "ga_tiers": [
            {"name": "Standing", "price": {"amount": 3000, "currency": "EUR"}, "capacity": 500}
        ]
    }))
    .map_err(|e| AppError::Internal(e.into()))?;
    let event = app.create_event(&admin, new).await?;
    let id = event.event.id.clone();
    app.set_event_status(&admin, id.as_str(), EventStatus::OnSale)
        .await?;
    Ok(id)
}

/// Seeds the demo only if there are no events at all, and only once however many
/// nodes start together on the empty database.
pub async fn seed_if_empty(app: &App) -> Result<Option<EventId>, AppError> {
    if !app.events(Some(&Principal::system())).await?.is_empty() || !app.claim_once("demo").await? {
        return Ok(None);
    }
    seed(app).await.map(Some)
}
