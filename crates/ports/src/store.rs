//! The durable store: the source of truth for accounts, the catalogue, holds and
//! sales. Its constraints make a double sale impossible even if a hold engine were
//! wrong; every write that matters is one transaction.

use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Consumer, Email, Event, EventId, EventStatus, Hold, HoldId, HoldStatus, Job,
    MessageId, Money, Order, OrderId, OrderStatus, Seat, SeatId, Ticket, TierId, User, UserId,
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

/// A finished job, acknowledged in the same transaction as its outcome (for queues
/// whose state lives in the store), so a job is done exactly when its effect is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub message: MessageId,
    pub consumer: Consumer,
    /// Set when the job was given up (dead-lettered) rather than done.
    pub dead: Option<String>,
}

/// One state transition, as the group-commit writer hands it to [`Store::write`]
/// together with whatever else arrived meanwhile. Each carries its own `now`.
#[derive(Debug, Clone)]
pub enum Write {
    /// Records a hold the engine granted.
    Hold(Hold),
    /// Marks an active, unexpired hold released (one winner if asked twice).
    Release { hold: HoldId, now: OffsetDateTime },
    /// Records as expired every active hold past its deadline.
    ExpireHolds { now: OffsetDateTime },
    /// Creates the order, converts the hold (if still active and unexpired), stores
    /// the idempotent answer and queues the payment job, all or nothing.
    Checkout {
        rec: Box<CheckoutRecord>,
        now: OffsetDateTime,
    },
    /// Payment succeeded: the order is paid, its tickets issued, the charge recorded
    /// and `order.paid` queued, and its items sold under the store's own guards: one
    /// `sold_seats` row per seat (`Conflict { constraint: "sold_seats" }` on a second
    /// sale), GA under its capacity check (`"ga_capacity"`). A conflict leaves
    /// everything as it was, so a wrong engine can never sell a seat twice.
    Paid {
        order: OrderId,
        charge_id: String,
        tickets: Vec<Ticket>,
        message: MessageId,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// Payment failed with `code`: the order fails and `order.failed` is queued.
    /// With `restore_hold`, the hold is active again until its original deadline.
    Failed {
        order: OrderId,
        code: String,
        restore_hold: bool,
        message: MessageId,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// The gateway's answer for this order's charge could not be had by its payment
    /// deadline: a pending (or already unknown) order becomes `payment_unknown` and,
    /// with `hold_until`, its converted hold keeps its seats at least until then (the
    /// engine extended it first), for the reconciler to settle. `Written::Marked(false)` when the order was already final.
    /// The job's ack is recorded either way: the reconciler owns the order from now on.
    PaymentUnknown {
        order: OrderId,
        hold_until: Option<OffsetDateTime>,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// An audit record, once per message.
    Audit {
        message: MessageId,
        action: String,
        subject: String,
        detail: String,
        at: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// Counts a sale into the analytics figures, once per message.
    SaleStats {
        message: MessageId,
        event: EventId,
        tickets: u32,
        revenue: Money,
        ack: Option<Ack>,
    },
    /// Marks an email as sent ([`Written::Marked`] is false if it was already).
    EmailSent {
        message: MessageId,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// A job whose handler had nothing to record.
    Ack(Ack),
    /// These messages are in the external queue (their store-queue rows are then
    /// done: the broker delivers them).
    Relayed {
        ids: Vec<MessageId>,
        now: OffsetDateTime,
    },
}

/// What one [`Write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Released(ReleaseOutcome),
    Expired(u64),
    Checkout(CheckoutOutcome),
    Paid(PaidOutcome),
    Failed(FailOutcome),
    /// Whether a once-only mark was new.
    Marked(bool),
}

impl Write {
    /// The outbox message this write queues, if it succeeded with `written`.
    pub fn queued(&self, written: &Written) -> Option<(MessageId, Job)> {
        match (self, written) {
            (Write::Checkout { rec, .. }, Written::Checkout(CheckoutOutcome::Created)) => Some((
                rec.message.clone(),
                Job::PaymentRequested {
                    order_id: rec.order.id.clone(),
                },
            )),
            (Write::Paid { order, message, .. }, Written::Paid(PaidOutcome::Paid)) => Some((
                message.clone(),
                Job::OrderPaid {
                    order_id: order.clone(),
                },
            )),
            (
                Write::Failed {
                    order,
                    code,
                    message,
                    ..
                },
                Written::Failed(FailOutcome::Failed { .. }),
            ) => Some((
                message.clone(),
                Job::OrderFailed {
                    order_id: order.clone(),
                    code: code.clone(),
                },
            )),
            _ => None,
        }
    }
}

fn unexpected(w: Written) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!(
        "the store answered {w:?} to a single write"
    ))
}

/// A login's refresh-token family. Each refresh moves it to the next generation
/// with a new token; the hash of the current token is all the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: UserId,
    pub generation: i64,
    /// SHA-256 (hex) of the current refresh token's secret part.
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
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

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    // --- sessions (refresh tokens) ---
    /// `Conflict { constraint: "sessions_pkey" }` when the id exists.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Moves a session that is at `from_generation` and not revoked to the next
    /// generation with `token_hash` and `expires_at`. False when it is not (a
    /// concurrent refresh won, or the session is revoked): nothing changes.
    async fn rotate_session(
        &self,
        id: &str,
        from_generation: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Revokes one session (its refresh token stops working); harmless twice.
    async fn revoke_session(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Revokes every session of `user`; returns how many were live.
    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

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

    // --- state transitions ---
    /// Commits every write of `batch` in one transaction, in order, and answers each:
    /// one that fails (a constraint refusing a seat) fails alone and leaves nothing
    /// of itself behind, while the others commit. `Err` means nothing committed.
    async fn write(&self, batch: &[Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError>;

    /// One write in a transaction of its own (tests, and paths too rare to batch).
    async fn write_one(&self, w: Write) -> Result<Written, StoreError> {
        self.write(std::slice::from_ref(&w))
            .await?
            .pop()
            .unwrap_or_else(|| Err(unexpected(Written::Done)))
    }

    async fn record_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        self.write_one(Write::Hold(hold.clone())).await.map(|_| ())
    }

    // --- holds and sales ---
    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError>;
    /// Marks an active, unexpired hold released (one winner if called at once).
    async fn release_hold(
        &self,
        id: &HoldId,
        now: OffsetDateTime,
    ) -> Result<ReleaseOutcome, StoreError> {
        match self
            .write_one(Write::Release {
                hold: id.clone(),
                now,
            })
            .await?
        {
            Written::Released(r) => Ok(r),
            w => Err(unexpected(w)),
        }
    }
    /// Records as expired every active hold past its deadline; returns how many.
    async fn expire_holds(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        match self.write_one(Write::ExpireHolds { now }).await? {
            Written::Expired(n) => Ok(n),
            w => Err(unexpected(w)),
        }
    }
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
    async fn checkout(
        &self,
        rec: &CheckoutRecord,
        now: OffsetDateTime,
    ) -> Result<CheckoutOutcome, StoreError> {
        let rec = Box::new(rec.clone());
        match self.write_one(Write::Checkout { rec, now }).await? {
            Written::Checkout(c) => Ok(c),
            w => Err(unexpected(w)),
        }
    }
    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError>;
    /// A customer's orders, newest first.
    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError>;
    /// Orders a reconciler must look at: every `payment_unknown` one, and those
    /// `pending_payment` with no change since `idle_since` (fresh ones are in
    /// their payment's hands), oldest first.
    async fn pending_orders(&self, idle_since: OffsetDateTime) -> Result<Vec<OrderId>, StoreError>;
    /// Which of `orders` are no longer `pending_payment` (one read for every
    /// long-poll of a node: the safety net when an announcement is lost).
    async fn settled_among(&self, orders: &[OrderId]) -> Result<Vec<OrderId>, StoreError>;
    async fn complete_payment(
        &self,
        order: &OrderId,
        charge_id: &str,
        tickets: &[Ticket],
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<PaidOutcome, StoreError> {
        let w = Write::Paid {
            order: order.clone(),
            charge_id: charge_id.to_owned(),
            tickets: tickets.to_vec(),
            message: message.clone(),
            now,
            ack: None,
        };
        match self.write_one(w).await? {
            Written::Paid(p) => Ok(p),
            w => Err(unexpected(w)),
        }
    }
    async fn fail_payment(
        &self,
        order: &OrderId,
        code: &str,
        restore_hold: bool,
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<FailOutcome, StoreError> {
        let w = Write::Failed {
            order: order.clone(),
            code: code.to_owned(),
            restore_hold,
            message: message.clone(),
            now,
            ack: None,
        };
        match self.write_one(w).await? {
            Written::Failed(f) => Ok(f),
            w => Err(unexpected(w)),
        }
    }

    // --- what workers read ---
    /// Tickets sold and revenue per event, as the analytics worker counted them.
    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError>;
    /// Outbox messages not yet handed to an external queue, oldest first.
    async fn unrelayed(&self, limit: usize) -> Result<Vec<(MessageId, Job)>, StoreError>;
    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError>;
}
