//! The durable store: the source of truth for accounts, the catalogue, holds and
//! sales. Its constraints make a double sale impossible even if a hold engine were
//! wrong; every write that matters is one transaction.

use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Email, Event, EventId, EventStatus, Hold, HoldId, Seat, SeatId, TierId, User,
    Venue, VenueId,
};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or check constraint refused the write; `constraint` names it
    /// (e.g. `users_email`, `sold_seats`, `ga_capacity`).
    #[error("constraint {constraint} refused the write")]
    Conflict { constraint: &'static str },
    #[error("not found")]
    NotFound,
    #[error("store unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released,
    AlreadyReleased,
    Expired,
    Converted,
    NotFound,
}

/// What an engine rebuild needs: the live holds, the sold seats, GA sold counts.
#[derive(Debug, Clone)]
pub struct StoredInventory {
    pub live_holds: Vec<Hold>,
    pub sold_seats: Vec<SeatId>,
    /// Per GA tier, in the event's tier order.
    pub ga_sold: Vec<u32>,
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    async fn ping(&self) -> Result<(), StoreError>;

    // --- identity ---
    /// `Conflict { constraint: "users_email" }` when the email is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    async fn admin_exists(&self) -> Result<bool, StoreError>;
    /// Returns the stored secret, storing `candidate` first if there is none; every
    /// node calling this at once gets the same answer.
    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    // --- catalogue ---
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
    /// The event's seats in layout order.
    async fn event_layout(&self, id: &EventId) -> Result<Vec<LayoutSeat>, StoreError>;

    // --- holds and sales ---
    async fn record_hold(&self, hold: &Hold) -> Result<(), StoreError>;
    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError>;
    /// Marks an active, unexpired hold released (one winner if called at once).
    async fn release_hold(
        &self,
        id: &HoldId,
        now: OffsetDateTime,
    ) -> Result<ReleaseOutcome, StoreError>;
    /// Records as expired every active hold past its deadline; returns how many.
    async fn expire_holds(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
    async fn inventory(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<StoredInventory, StoreError>;
    /// Sells a hold's items: one row per seat under a uniqueness constraint
    /// (`Conflict { constraint: "sold_seats" }` on a second sale), GA under a
    /// capacity check (`Conflict { constraint: "ga_capacity" }`). Marks it converted.
    async fn sell_hold(&self, id: &HoldId, now: OffsetDateTime) -> Result<(), StoreError>;
}
