//! The durable store: the source of truth for accounts, the catalogue, holds and
//! sales. Its constraints make a double sale impossible even if a hold engine were
//! wrong; every write that matters is one transaction.

use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Email, Event, EventId, EventStatus, Hold, HoldId, HoldStatus, Job, MessageId,
    Money, Order, OrderId, OrderStatus, Seat, SeatId, Ticket, TierId, User, UserId, Venue, VenueId,
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

/// The stored answer to an idempotent request, replayed for the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    pub user_id: UserId,
    /// The action the key is scoped to (`checkout`): one key, one action.
    pub route: String,
    pub key: String,
    /// A digest of what was asked; the same key with another request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// Everything a checkout writes, in one transaction.
#[derive(Debug, Clone)]
pub struct CheckoutRecord {
    /// `pending_payment`, with its items; no tickets yet.
    pub order: Order,
    pub idempotency: Idempotent,
    /// The hold's deadline while its payment runs (it no longer expires at its TTL).
    pub payment_deadline: OffsetDateTime,
    /// The outbox message that asks for the payment.
    pub message: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Created,
    /// The key was used before (perhaps a moment ago, concurrently): its answer.
    Replay(Idempotent),
    /// The hold is not active any more: as recorded, and whether its deadline passed.
    HoldNotActive {
        status: HoldStatus,
        expired: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidOutcome {
    Paid,
    AlreadyFinal(OrderStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The order failed; its hold is active again until this deadline (if it has
    /// not passed; else the hold is expired).
    Failed {
        hold_until: Option<OffsetDateTime>,
    },
    AlreadyFinal(OrderStatus),
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    async fn ping(&self) -> Result<(), StoreError>;

    // --- identity ---
    /// `Conflict { constraint: "users_email" }` when the email is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    async fn admin_exists(&self) -> Result<bool, StoreError>;
    /// Replaces an account's password hash (an operator's reset); false when there
    /// is no such account.
    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError>;
    /// Returns the stored secret, storing `candidate` first if there is none; every
    /// node calling this at once gets the same answer.
    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// True for exactly one caller ever per `what`, across every node (startup chores
    /// such as seeding the demo).
    async fn claim_once(&self, what: &str) -> Result<bool, StoreError>;

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
    /// Records holds in one transaction (a group commit): all or none.
    async fn record_holds(&self, holds: &[Hold]) -> Result<(), StoreError>;
    async fn record_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        self.record_holds(std::slice::from_ref(hold)).await
    }
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

    // --- checkout and orders ---
    async fn idempotent(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError>;
    /// Creates the order, converts the hold (if still active and unexpired), stores
    /// the idempotent answer and the payment job, all or nothing.
    async fn checkout(
        &self,
        rec: &CheckoutRecord,
        now: OffsetDateTime,
    ) -> Result<CheckoutOutcome, StoreError>;
    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError>;
    /// A customer's orders, newest first.
    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError>;
    async fn pending_orders(&self) -> Result<Vec<OrderId>, StoreError>;
    /// Payment succeeded: the order is paid, its tickets issued, the charge recorded
    /// and `order.paid` queued — and its items sold under the store's own guards: one
    /// `sold_seats` row per seat (`Conflict { constraint: "sold_seats" }` on a second
    /// sale), GA under its capacity check (`"ga_capacity"`). A conflict leaves
    /// everything as it was, so a wrong engine can never sell a seat twice.
    async fn complete_payment(
        &self,
        order: &OrderId,
        charge_id: &str,
        tickets: &[Ticket],
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<PaidOutcome, StoreError>;
    /// Payment failed with `code`: the order fails and `order.failed` is queued.
    /// With `restore_hold`, the hold is active again until its original deadline.
    async fn fail_payment(
        &self,
        order: &OrderId,
        code: &str,
        restore_hold: bool,
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<FailOutcome, StoreError>;

    // --- what workers record (each idempotent on the message id) ---
    async fn record_audit(
        &self,
        message: &MessageId,
        action: &str,
        subject: &str,
        detail: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    async fn record_sale_stats(
        &self,
        message: &MessageId,
        event: &EventId,
        tickets: u32,
        revenue: Money,
    ) -> Result<(), StoreError>;
    /// Tickets sold and revenue per event, as the analytics worker counted them.
    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError>;
    /// Outbox messages not yet handed to an external queue, oldest first.
    async fn unrelayed(&self, limit: usize) -> Result<Vec<(MessageId, Job)>, StoreError>;
    /// Records that these messages are in the external queue (their store-queue
    /// rows are then done: the broker delivers them).
    async fn mark_relayed(&self, ids: &[MessageId], now: OffsetDateTime) -> Result<(), StoreError>;
    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError>;
    /// Marks an email as sent; false if it was already.
    async fn mark_email_sent(
        &self,
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
