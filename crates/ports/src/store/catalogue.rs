//! Venues, events and their layouts.

use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Event, EventDetails, EventId, EventStatus, Seat, TierId, Venue, VenueId,
};
use time::OffsetDateTime;

use super::StoreError;

/// An event as stored, with its seat count.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub event: Event,
    pub seat_count: u32,
}

/// A seat as an event's layout lists it (layout order is the vector's order).
#[derive(Debug, Clone)]
pub struct LayoutSeat {
    pub seat: Seat,
    pub tier_id: TierId,
}

/// What a buyer browses for. Every filter is optional; results come in
/// (`starts_at`, `id`) order, the page after `after`, at most `limit` of them.
#[derive(Debug, Clone, Default)]
pub struct EventSearch {
    /// Words, all of which must match the name, description, city or category
    /// (stemmed: "concerts" finds "concert"). Only letters and digits count.
    pub text: Option<String>,
    /// Matched whole, case-insensitively.
    pub city: Option<String>,
    pub category: Option<String>,
    /// `starts_at >= from` and `starts_at < to`.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub include_drafts: bool,
    /// The last event of the previous page: its `starts_at` and id.
    pub after: Option<(OffsetDateTime, EventId)>,
    pub limit: u32,
}

impl EventSearch {
    /// The words of `text` a full-text index can match: runs of letters and digits,
    /// lower-cased (at most 16, each at most 64 characters).
    pub fn words(&self) -> Vec<String> {
        self.text
            .as_deref()
            .unwrap_or_default()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(16)
            .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
            .collect()
    }
}

#[async_trait]
pub trait CatalogueStore: Send + Sync + std::fmt::Debug + 'static {
    async fn create_venue(&self, venue: &Venue, seats: &[Seat]) -> Result<(), StoreError>;
    async fn venue(&self, id: &VenueId) -> Result<Option<Venue>, StoreError>;
    async fn venue_seats(&self, id: &VenueId) -> Result<Vec<Seat>, StoreError>;
    async fn list_venues(&self) -> Result<Vec<Venue>, StoreError>;
    async fn create_event(&self, event: &Event, seats: &[EventSeat]) -> Result<(), StoreError>;
    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError>;
    /// Oldest first; drafts only when asked.
    async fn list_events(&self, include_drafts: bool) -> Result<Vec<EventRecord>, StoreError>;
    async fn set_event_status(
        &self,
        id: &EventId,
        status: EventStatus,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Sets (or, with `None`, lifts) the per-buyer cap that recording a hold enforces.
    async fn set_event_customer_limit(
        &self,
        id: &EventId,
        cap: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Sets (or, with `None`, removes) the event's waiting room settings.
    async fn set_event_waiting_room(
        &self,
        id: &EventId,
        room: Option<&boxoffice_domain::WaitingRoomSettings>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Replaces the event's searchable details.
    async fn set_event_details(
        &self,
        id: &EventId,
        details: &EventDetails,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Events matching the search, one page (see [`EventSearch`]).
    async fn search_events(&self, q: &EventSearch) -> Result<Vec<EventRecord>, StoreError>;
    /// The event's seats in layout order.
    async fn event_layout(&self, id: &EventId) -> Result<Vec<LayoutSeat>, StoreError>;
}
