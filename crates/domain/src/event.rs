//! Events: a venue, a date, price tiers and a sale with a status machine.
//!
//! An event sells the seats of the venue sections its reserved tiers name, in the
//! venue's seat order (the event's *layout order*), plus any general-admission tiers.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

use crate::{Currency, Money, Seat, SeatId, TierId, ValidationError, Venue, VenueId};

pub const DEFAULT_HOLD_TTL_SECONDS: u32 = 300;
pub const MAX_HOLD_TTL_SECONDS: u32 = 3600;
pub const DEFAULT_MAX_TICKETS_PER_ORDER: u32 = 10;
pub const MAX_TICKETS_PER_ORDER: u32 = 100;
pub const MAX_GA_CAPACITY: u32 = 1_000_000;
/// Highest per-buyer cap an organizer may set (`max_tickets_per_customer`).
pub const MAX_TICKETS_PER_CUSTOMER: u32 = 10_000;

/// Checks an organizer's per-buyer cap: unset, or between 1 and the maximum.
pub fn check_max_tickets_per_customer(cap: Option<u32>) -> Result<(), ValidationError> {
    match cap {
        Some(c) if !(1..=MAX_TICKETS_PER_CUSTOMER).contains(&c) => Err(ValidationError::new(
            "max_tickets_per_customer",
            format!("must be between 1 and {MAX_TICKETS_PER_CUSTOMER}, or null"),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Draft,
    OnSale,
    Paused,
    Ended,
    /// Called off for good (issue 8): nothing sells, every paid order is refunded
    /// (by the `event.cancelled` job), and no other status follows.
    Cancelled,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::OnSale => "on_sale",
            EventStatus::Paused => "paused",
            EventStatus::Ended => "ended",
            EventStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => EventStatus::Draft,
            "on_sale" => EventStatus::OnSale,
            "paused" => EventStatus::Paused,
            "ended" => EventStatus::Ended,
            "cancelled" => EventStatus::Cancelled,
            _ => return None,
        })
    }

    /// The allowed moves: a draft goes on sale; a sale pauses and resumes; anything
    /// but a draft's first step may end; an ended event stays ended. Any event not
    /// cancelled may be cancelled, and a cancelled one stays cancelled. Setting the
    /// current status again is allowed (idempotent PATCH).
    pub fn can_become(self, to: EventStatus) -> bool {
        use EventStatus::*;
        self == to
            || self != Cancelled && to == Cancelled
            || matches!(
                (self, to),
                (Draft, OnSale) | (OnSale, Paused) | (Paused, OnSale) | (_, Ended)
            ) && !matches!(self, Ended | Cancelled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceTier {
    pub id: TierId,
    pub name: String,
    pub price: Money,
    pub sections: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GaTier {
    pub id: TierId,
    pub name: String,
    pub price: Money,
    pub capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: crate::EventId,
    pub venue_id: VenueId,
    pub name: String,
    pub starts_at: OffsetDateTime,
    /// Holds are refused before this instant (if set) …
    pub sale_starts_at: Option<OffsetDateTime>,
    /// … and from this instant on (if set).
    pub sale_ends_at: Option<OffsetDateTime>,
    pub status: EventStatus,
    pub hold_ttl_seconds: u32,
    /// Most seats or GA units one hold (and so one order) may carry.
    pub max_tickets_per_order: u32,
    /// Most seats and GA units one customer may have at once across the event's
    /// live holds and pending or paid orders (none: no cap). The store enforces it.
    pub max_tickets_per_customer: Option<u32>,
    /// The virtual waiting room in front of the hold endpoint (none: never set).
    pub waiting_room: Option<crate::WaitingRoomSettings>,
    /// Tickets show a code that changes every 15 s (see the app's `checkin.rs`).
    pub rotating_codes: bool,
    pub currency: Currency,
    pub tiers: Vec<PriceTier>,
    pub ga_tiers: Vec<GaTier>,
    pub created_at: OffsetDateTime,
    /// Where, what kind, and what it is: what buyers search by.
    pub details: EventDetails,
    /// The organization that owns it: its venue's.
    pub org_id: crate::OrgId,
}

/// The searchable description of an event (all optional): `city` and `category`
/// are matched whole (case-insensitively), all three and the name by text search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetails {
    pub city: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
}

pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

/// A city or category: 1 to 100 printable characters, trimmed.
fn label(field: &str, s: &str) -> Result<String, ValidationError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must be 1 to 100 printable characters",
        ));
    }
    Ok(t.to_owned())
}

impl EventDetails {
    /// Checks and trims each field; `None` stays `None`.
    pub fn validated(&self) -> Result<EventDetails, ValidationError> {
        let description = match &self.description {
            None => None,
            Some(d) => {
                let t = d.trim();
                if t.chars().count() > MAX_DESCRIPTION_CHARS
                    || t.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
                {
                    return Err(ValidationError::new(
                        "description",
                        format!("at most {MAX_DESCRIPTION_CHARS} characters, no control characters but newlines and tabs"),
                    ));
                }
                (!t.is_empty()).then(|| t.to_owned())
            }
        };
        Ok(EventDetails {
            city: self.city.as_deref().map(|c| label("city", c)).transpose()?,
            category: self
                .category
                .as_deref()
                .map(|c| label("category", c))
                .transpose()?,
            description,
        })
    }
}

impl Event {
    /// Whether a buyer may hold tickets now.
    pub fn sale_open(&self, now: OffsetDateTime) -> bool {
        self.status == EventStatus::OnSale
            && self.sale_starts_at.is_none_or(|t| now >= t)
            && self.sale_ends_at.is_none_or(|t| now < t)
    }

    /// The waiting room, when it is on.
    pub fn room(&self) -> Option<&crate::WaitingRoomSettings> {
        self.waiting_room.as_ref().filter(|r| r.enabled)
    }

    pub fn ga_tier(&self, id: &TierId) -> Option<(usize, &GaTier)> {
        self.ga_tiers.iter().enumerate().find(|(_, t)| &t.id == id)
    }

    pub fn tier(&self, id: &TierId) -> Option<&PriceTier> {
        self.tiers.iter().find(|t| &t.id == id)
    }
}

/// What an organizer sends to create an event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub venue_id: VenueId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sale_starts_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sale_ends_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub hold_ttl_seconds: Option<u32>,
    #[serde(default)]
    pub max_tickets_per_order: Option<u32>,
    #[serde(default)]
    pub max_tickets_per_customer: Option<u32>,
    #[serde(default)]
    pub waiting_room: Option<crate::WaitingRoomSettings>,
    #[serde(default)]
    pub rotating_codes: bool,
    #[serde(default)]
    pub tiers: Vec<NewTier>,
    #[serde(default)]
    pub ga_tiers: Vec<NewGaTier>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTier {
    pub name: String,
    pub price: Money,
    pub sections: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGaTier {
    pub name: String,
    pub price: Money,
    pub capacity: u32,
}

/// A seat as an event sells it: its place in the layout order and its tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSeat {
    pub seat_id: SeatId,
    pub tier_id: TierId,
}

fn name(field: &str, s: &str) -> Result<String, ValidationError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(t.to_owned())
}

impl NewEvent {
    /// Validates against the venue and returns the event (status `draft`) and the
    /// seats it sells, in layout order.
    pub fn build(
        &self,
        venue: &Venue,
        venue_seats: &[Seat],
        now: OffsetDateTime,
    ) -> Result<(Event, Vec<EventSeat>), ValidationError> {
        if self.venue_id != venue.id {
            return Err(ValidationError::new("venue_id", "does not match the venue"));
        }
        let ev_name = name("name", &self.name)?;
        let ttl = self.hold_ttl_seconds.unwrap_or(DEFAULT_HOLD_TTL_SECONDS);
        if !(1..=MAX_HOLD_TTL_SECONDS).contains(&ttl) {
            return Err(ValidationError::new(
                "hold_ttl_seconds",
                format!("must be between 1 and {MAX_HOLD_TTL_SECONDS}"),
            ));
        }
        let max = self
            .max_tickets_per_order
            .unwrap_or(DEFAULT_MAX_TICKETS_PER_ORDER);
        if !(1..=MAX_TICKETS_PER_ORDER).contains(&max) {
            return Err(ValidationError::new(
                "max_tickets_per_order",
                format!("must be between 1 and {MAX_TICKETS_PER_ORDER}"),
            ));
        }
        check_max_tickets_per_customer(self.max_tickets_per_customer)?;
        if let Some(room) = &self.waiting_room {
            room.validate()?;
        }
        let details = EventDetails {
            city: self.city.clone(),
            category: self.category.clone(),
            description: self.description.clone(),
        }
        .validated()?;
        if let (Some(a), Some(b)) = (self.sale_starts_at, self.sale_ends_at) {
            if a >= b {
                return Err(ValidationError::new(
                    "sale_ends_at",
                    "must be after sale_starts_at",
                ));
            }
        }
        if self.tiers.is_empty() && self.ga_tiers.is_empty() {
            return Err(ValidationError::new(
                "tiers",
                "an event needs at least one tier or ga_tier",
            ));
        }
        let mut currency = None;
        let mut tier_names = HashSet::new();
        let mut check_price = |field: &str, tname: &str, price: &Money| {
            price.validate_price(&format!("{field}.price"))?;
            if *currency.get_or_insert(price.currency) != price.currency {
                return Err(ValidationError::new(
                    format!("{field}.price.currency"),
                    "all tiers of an event use one currency",
                ));
            }
            if !tier_names.insert(tname.to_owned()) {
                return Err(ValidationError::new(
                    format!("{field}.name"),
                    "tier names must be unique",
                ));
            }
            Ok(())
        };

        let known: HashSet<&str> = venue.sections.iter().map(String::as_str).collect();
        let mut section_tier: HashMap<&str, TierId> = HashMap::new();
        let mut tiers = Vec::with_capacity(self.tiers.len());
        for (i, t) in self.tiers.iter().enumerate() {
            let field = format!("tiers[{i}]");
            let tname = name(&format!("{field}.name"), &t.name)?;
            check_price(&field, &tname, &t.price)?;
            if t.sections.is_empty() {
                return Err(ValidationError::new(
                    format!("{field}.sections"),
                    "at least one section",
                ));
            }
            let id = TierId::new();
            for s in &t.sections {
                if !known.contains(s.as_str()) {
                    return Err(ValidationError::new(
                        format!("{field}.sections"),
                        format!("the venue has no section {s:?}"),
                    ));
                }
                if section_tier.insert(s.as_str(), id.clone()).is_some() {
                    return Err(ValidationError::new(
                        format!("{field}.sections"),
                        format!("section {s:?} is already in another tier"),
                    ));
                }
            }
            tiers.push(PriceTier {
                id,
                name: tname,
                price: t.price,
                sections: t.sections.clone(),
            });
        }
        let mut ga_tiers = Vec::with_capacity(self.ga_tiers.len());
        for (i, t) in self.ga_tiers.iter().enumerate() {
            let field = format!("ga_tiers[{i}]");
            let tname = name(&format!("{field}.name"), &t.name)?;
            check_price(&field, &tname, &t.price)?;
            if !(1..=MAX_GA_CAPACITY).contains(&t.capacity) {
                return Err(ValidationError::new(
                    format!("{field}.capacity"),
                    format!("must be between 1 and {MAX_GA_CAPACITY}"),
                ));
            }
            ga_tiers.push(GaTier {
                id: TierId::new(),
                name: tname,
                price: t.price,
                capacity: t.capacity,
            });
        }
        let seats = venue_seats
            .iter()
            .filter_map(|s| {
                section_tier.get(s.section.as_str()).map(|tier| EventSeat {
                    seat_id: s.id.clone(),
                    tier_id: tier.clone(),
                })
            })
            .collect();
        let event = Event {
            id: crate::EventId::new(),
            venue_id: venue.id.clone(),
            name: ev_name,
            starts_at: crate::time::truncate_to_millis(self.starts_at),
            sale_starts_at: self.sale_starts_at.map(crate::time::truncate_to_millis),
            sale_ends_at: self.sale_ends_at.map(crate::time::truncate_to_millis),
            status: EventStatus::Draft,
            hold_ttl_seconds: ttl,
            max_tickets_per_order: max,
            max_tickets_per_customer: self.max_tickets_per_customer,
            waiting_room: self.waiting_room.clone().map(|mut r| {
                r.pre_queue_opens_at = r.pre_queue_opens_at.map(crate::time::truncate_to_millis);
                r
            }),
            rotating_codes: self.rotating_codes,
            currency: currency.unwrap_or(Currency::EUR),
            tiers,
            ga_tiers,
            created_at: now,
            details,
            org_id: venue.org_id.clone(),
        };
        Ok((event, seats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VenueSpec;

    fn venue() -> (Venue, Vec<Seat>) {
        serde_json::from_str::<VenueSpec>(
            r#"{"name":"Hall","sections":[{"name":"A","rows":2,"seats_per_row":2},{"name":"B","rows":1,"seats_per_row":3}]}"#,
        )
        .unwrap()
        .build(OffsetDateTime::UNIX_EPOCH)
        .unwrap()
    }

    fn new_event(v: &Venue, tiers: &str, ga: &str) -> NewEvent {
        serde_json::from_str(&format!(
            r#"{{"venue_id":"{}","name":"Gig","starts_at":"2030-01-01T20:00:00Z","tiers":{tiers},"ga_tiers":{ga}}}"#,
            v.id
        ))
        .unwrap()
    }

    const EUR10: &str = r#"{"amount":1000,"currency":"EUR"}"#;

    #[test]
    fn event_sells_the_tiered_sections_in_venue_order() {
        let (v, seats) = venue();
        let ne = new_event(
            &v,
            &format!(r#"[{{"name":"Back","price":{EUR10},"sections":["B"]}}]"#),
            "[]",
        );
        let (ev, es) = ne.build(&v, &seats, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(ev.status, EventStatus::Draft);
        assert_eq!(ev.hold_ttl_seconds, DEFAULT_HOLD_TTL_SECONDS);
        assert_eq!(es.len(), 3);
        assert_eq!(es[0].seat_id, seats[4].id);
        assert!(es.iter().all(|s| s.tier_id == ev.tiers[0].id));
    }

    #[test]
    fn rejects_unknown_or_doubly_tiered_sections_and_mixed_currencies() {
        let (v, seats) = venue();
        let now = OffsetDateTime::UNIX_EPOCH;
        let unknown = new_event(
            &v,
            &format!(r#"[{{"name":"X","price":{EUR10},"sections":["Z"]}}]"#),
            "[]",
        );
        assert_eq!(
            unknown.build(&v, &seats, now).unwrap_err().field,
            "tiers[0].sections"
        );
        let twice = new_event(
            &v,
            &format!(
                r#"[{{"name":"X","price":{EUR10},"sections":["A"]}},{{"name":"Y","price":{EUR10},"sections":["A"]}}]"#
            ),
            "[]",
        );
        assert!(twice.build(&v, &seats, now).is_err());
        let mixed = new_event(
            &v,
            &format!(r#"[{{"name":"X","price":{EUR10},"sections":["A"]}}]"#),
            r#"[{"name":"Floor","price":{"amount":1,"currency":"USD"},"capacity":5}]"#,
        );
        assert!(mixed.build(&v, &seats, now).is_err());
        let nothing = new_event(&v, "[]", "[]");
        assert!(nothing.build(&v, &seats, now).is_err());
        let zero_cap = new_event(
            &v,
            "[]",
            &format!(r#"[{{"name":"Floor","price":{EUR10},"capacity":0}}]"#),
        );
        assert!(zero_cap.build(&v, &seats, now).is_err());
    }

    #[test]
    fn status_machine() {
        use EventStatus::*;
        assert!(Draft.can_become(OnSale));
        assert!(OnSale.can_become(Paused) && Paused.can_become(OnSale));
        assert!(OnSale.can_become(Ended) && Draft.can_become(Ended));
        assert!(!Ended.can_become(OnSale));
        assert!(!OnSale.can_become(Draft));
        assert!(Ended.can_become(Ended));
        // Anything may be cancelled (an ended sale's show too); a cancelled event
        // is final, and cancelling it again is the same answer.
        for from in [Draft, OnSale, Paused, Ended] {
            assert!(from.can_become(Cancelled), "{from:?}");
            assert!(!Cancelled.can_become(from), "{from:?}");
        }
        assert!(Cancelled.can_become(Cancelled));
        assert_eq!(EventStatus::parse("cancelled"), Some(Cancelled));
    }

    #[test]
    fn sale_window() {
        let (v, seats) = venue();
        let mut ne = new_event(
            &v,
            "[]",
            &format!(r#"[{{"name":"Floor","price":{EUR10},"capacity":5}}]"#),
        );
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        ne.sale_starts_at = Some(t0);
        ne.sale_ends_at = Some(t0 + time::Duration::hours(1));
        let (mut ev, _) = ne.build(&v, &seats, t0).unwrap();
        ev.status = EventStatus::OnSale;
        assert!(!ev.sale_open(t0 - time::Duration::seconds(1)));
        assert!(ev.sale_open(t0));
        assert!(!ev.sale_open(t0 + time::Duration::hours(1)));
    }
}
