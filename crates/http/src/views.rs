//! Response shapes. The domain types stay free of HTTP naming; these are what the
//! API contract says, built from them.

use boxoffice_app::{HoldView, LiveSeatMap, SeatTable};
use boxoffice_domain::{Event, EventId, GaTier, HoldSelection, Money, PriceTier, Venue};
use boxoffice_ports::EventRecord;
use bytes::Bytes;
use serde::Serialize;
use std::collections::HashMap;
use time::OffsetDateTime;

/// Serialized layouts by event: a layout never changes after the event is created,
/// so it is rendered once and served with a content hash as its ETag.
#[derive(Debug, Default)]
pub struct LayoutCache(
    parking_lot::RwLock<HashMap<EventId, std::sync::Arc<crate::seat_maps::Encoded>>>,
);

impl LayoutCache {
    pub fn get(&self, id: &EventId) -> Option<std::sync::Arc<crate::seat_maps::Encoded>> {
        self.0.read().get(id).cloned()
    }

    pub fn insert(&self, id: EventId, v: std::sync::Arc<crate::seat_maps::Encoded>) {
        self.0.write().insert(id, v);
    }
}

#[derive(Serialize)]
pub struct TierView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub price: Money,
    pub sections: &'a [String],
}

#[derive(Serialize)]
pub struct GaTierView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub price: Money,
    pub capacity: u32,
}

fn tier(t: &PriceTier) -> TierView<'_> {
    TierView {
        id: t.id.as_str(),
        name: &t.name,
        price: t.price,
        sections: &t.sections,
    }
}

fn ga_tier(t: &GaTier) -> GaTierView<'_> {
    GaTierView {
        id: t.id.as_str(),
        name: &t.name,
        price: t.price,
        capacity: t.capacity,
    }
}

#[derive(Serialize)]
pub struct EventView<'a> {
    pub id: &'a str,
    pub venue_id: &'a str,
    pub name: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sale_starts_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sale_ends_at: Option<OffsetDateTime>,
    pub status: &'static str,
    pub hold_ttl_seconds: u32,
    pub max_tickets_per_order: u32,
    /// `null`: no per-buyer cap.
    pub max_tickets_per_customer: Option<u32>,
    /// `null`: no waiting room was ever set.
    pub waiting_room: Option<&'a boxoffice_domain::WaitingRoomSettings>,
    /// Tickets show a code that changes every 15 s.
    pub rotating_codes: bool,
    pub currency: String,
    pub seat_count: u32,
    pub tiers: Vec<TierView<'a>>,
    pub ga_tiers: Vec<GaTierView<'a>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub city: Option<&'a str>,
    pub category: Option<&'a str>,
    pub description: Option<&'a str>,
    pub org_id: &'a str,
}

pub fn event(r: &EventRecord) -> EventView<'_> {
    let e: &Event = &r.event;
    EventView {
        id: e.id.as_str(),
        venue_id: e.venue_id.as_str(),
        name: &e.name,
        starts_at: e.starts_at,
        sale_starts_at: e.sale_starts_at,
        sale_ends_at: e.sale_ends_at,
        status: e.status.as_str(),
        hold_ttl_seconds: e.hold_ttl_seconds,
        max_tickets_per_order: e.max_tickets_per_order,
        max_tickets_per_customer: e.max_tickets_per_customer,
        waiting_room: e.waiting_room.as_ref(),
        rotating_codes: e.rotating_codes,
        currency: e.currency.to_string(),
        seat_count: r.seat_count,
        tiers: e.tiers.iter().map(tier).collect(),
        ga_tiers: e.ga_tiers.iter().map(ga_tier).collect(),
        created_at: e.created_at,
        city: e.details.city.as_deref(),
        category: e.details.category.as_deref(),
        description: e.details.description.as_deref(),
        org_id: e.org_id.as_str(),
    }
}

/// A strong ETag from a body's content (the first 96 bits of its SHA-256).
pub fn content_etag(body: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body);
    format!(
        "\"{}\"",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[derive(Serialize)]
pub struct VenueView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub sections: &'a [String],
    pub seat_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub org_id: &'a str,
}

pub fn venue(v: &Venue) -> VenueView<'_> {
    VenueView {
        id: v.id.as_str(),
        name: &v.name,
        sections: &v.sections,
        seat_count: v.seat_count,
        created_at: v.created_at,
        org_id: v.org_id.as_str(),
    }
}

#[derive(Serialize)]
struct LayoutSeatView<'a> {
    id: &'a str,
    section: &'a str,
    row: &'a str,
    label: &'a str,
    x: i32,
    y: i32,
    tier_id: &'a str,
}

#[derive(Serialize)]
struct LayoutView<'a> {
    event_id: &'a str,
    seats: Vec<LayoutSeatView<'a>>,
    tiers: Vec<TierView<'a>>,
    ga_tiers: Vec<GaTierView<'a>>,
}

/// The layout JSON and its ETag.
pub fn layout(e: &Event, table: &SeatTable) -> (Bytes, String) {
    let view = LayoutView {
        event_id: e.id.as_str(),
        seats: table
            .layout
            .iter()
            .map(|s| LayoutSeatView {
                id: s.seat.id.as_str(),
                section: &s.seat.section,
                row: &s.seat.row,
                label: &s.seat.label,
                x: s.seat.x,
                y: s.seat.y,
                tier_id: s.tier_id.as_str(),
            })
            .collect(),
        tiers: e.tiers.iter().map(tier).collect(),
        ga_tiers: e.ga_tiers.iter().map(ga_tier).collect(),
    };
    let body = serde_json::to_vec(&view).expect("layout serializes");
    let etag = content_etag(&body);
    (Bytes::from(body), etag)
}

#[derive(Serialize)]
struct GaRemaining<'a> {
    tier_id: &'a str,
    remaining: u32,
}

#[derive(Serialize)]
struct SeatsView<'a> {
    version: u64,
    status: &'a str,
    ga: Vec<GaRemaining<'a>>,
}

pub fn seats(map: &LiveSeatMap) -> Vec<u8> {
    let view = SeatsView {
        version: map.version,
        // Only b'A', b'H' and b'S' are ever stored, so this never fails.
        status: std::str::from_utf8(&map.status).unwrap_or_default(),
        ga: map
            .ga
            .iter()
            .map(|(id, c)| GaRemaining {
                tier_id: id.as_str(),
                remaining: c.remaining(),
            })
            .collect(),
    };
    serde_json::to_vec(&view).expect("seat map serializes")
}

#[derive(Serialize)]
pub struct HoldJson {
    pub hold_id: String,
    pub event_id: String,
    pub status: &'static str,
    pub seats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_id: Option<String>,
    pub quantity: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub total: Money,
}

pub fn hold(v: &HoldView) -> HoldJson {
    let h = &v.hold;
    let (seats, tier_id) = match &h.selection {
        HoldSelection::Seats(s) => (s.iter().map(|s| s.to_string()).collect(), None),
        HoldSelection::Ga { tier_id, .. } => (vec![], Some(tier_id.to_string())),
    };
    HoldJson {
        hold_id: h.id.to_string(),
        event_id: h.event_id.to_string(),
        // A sold hold is still "converted" to clients: it became an order.
        status: match v.status {
            boxoffice_domain::HoldStatus::Sold => "converted",
            s => s.as_str(),
        },
        seats,
        tier_id,
        quantity: h.selection.ticket_count(),
        expires_at: h.expires_at,
        total: h.total,
    }
}

#[derive(Serialize)]
pub struct OrderItemJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_id: Option<String>,
    pub tier_id: String,
    pub price: Money,
}

#[derive(Serialize)]
pub struct TicketJson {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_id: Option<String>,
    pub tier_id: String,
    pub price: Money,
    pub code: String,
    /// `valid`, or `voided` once its order is refunded in full.
    pub status: &'static str,
}

#[derive(Serialize)]
pub struct OrderJson {
    pub id: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    pub event_id: String,
    pub hold_id: String,
    pub email: String,
    pub items: Vec<OrderItemJson>,
    pub total: Money,
    /// How much of `total` was refunded so far (zero until a refund).
    pub refunded: Money,
    pub tickets: Vec<TicketJson>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// What the buyer must do for the payment to go on (3-D Secure), while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<NextActionJson>,
}

#[derive(Serialize)]
pub struct NextActionJson {
    /// The gateway's kind of action (`use_stripe_sdk`, `redirect_to_url`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The page to send the buyer to, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For Stripe.js `handleNextAction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// An order with what its buyer must do next, if anything.
pub fn order_with(
    o: &boxoffice_domain::Order,
    next: Option<&boxoffice_ports::NextAction>,
) -> OrderJson {
    OrderJson {
        next_action: next.map(|n| NextActionJson {
            kind: n.kind.clone(),
            url: n.url.clone(),
            client_secret: n.client_secret.clone(),
        }),
        ..order(o)
    }
}

pub fn order(o: &boxoffice_domain::Order) -> OrderJson {
    OrderJson {
        next_action: None,
        id: o.id.to_string(),
        status: o.status.as_str(),
        failure_code: o.failure_code.clone(),
        event_id: o.event_id.to_string(),
        hold_id: o.hold_id.to_string(),
        email: o.email.clone(),
        items: o
            .items
            .iter()
            .map(|i| OrderItemJson {
                seat_id: i.seat_id.as_ref().map(|s| s.to_string()),
                tier_id: i.tier_id.to_string(),
                price: i.price,
            })
            .collect(),
        total: o.total,
        tickets: o
            .tickets
            .iter()
            .map(|t| TicketJson {
                id: t.id.to_string(),
                seat_id: t.seat_id.as_ref().map(|s| s.to_string()),
                tier_id: t.tier_id.to_string(),
                price: t.price,
                code: t.code.clone(),
                status: if o.tickets_void() { "voided" } else { "valid" },
            })
            .collect(),
        refunded: o.refunded,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

/// The counts of the sales read model, as the sales endpoint names them.
pub(crate) fn sales_counts(c: &boxoffice_ports::analytics::SalesCounts) -> serde_json::Value {
    serde_json::json!({
        "tickets": c.tickets,
        "revenue": c.revenue,
        "holds_made": c.holds_made,
        "holds_converted": c.holds_converted,
        "holds_expired": c.holds_expired,
        "refunds": c.refunds,
        "refunded_amount": c.refunded_amount,
        "tickets_refunded": c.tickets_refunded,
    })
}

pub(crate) fn minute_rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The sales report as CSV: a header, a `total` row, one row per tier, one per
/// minute (`kind` says which; `key` is the tier id or the minute).
pub(crate) fn sales_csv(r: &boxoffice_app::ledger::SalesReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "kind,key,tickets,revenue,holds_made,holds_converted,holds_expired,refunds,refunded_amount,tickets_refunded\n",
    );
    let mut row = |kind: &str, key: &str, c: &boxoffice_ports::analytics::SalesCounts| {
        let values: Vec<String> = c.values().iter().map(i64::to_string).collect();
        let _ = writeln!(out, "{kind},{key},{}", values.join(","));
    };
    row("total", "", &r.totals);
    for (tier, c) in &r.tiers {
        row("tier", tier, c);
    }
    for (m, c) in &r.minutes {
        row("minute", &minute_rfc3339(*m), c);
    }
    out
}
