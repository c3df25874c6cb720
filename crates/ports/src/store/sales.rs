//! Holds, checkout, orders and payments: the state transitions, written in
//! group-committed batches ([`SalesStore::write`]), and what is read back of them.

use async_trait::async_trait;
use boxoffice_domain::{
    AuditRecord, CheckoutAnswer, EventId, Hold, HoldId, HoldStatus, Job, MessageId, Money, Order,
    OrderId, OrderStatus, RefundId, SeatId, Ticket, TicketId, UserId,
};
use time::OffsetDateTime;

use super::{Ack, StoreError};

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
    /// What was answered, replayed as it was.
    pub answer: CheckoutAnswer,
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

/// What the store decided of a refund request ([`Write::Refund`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The request's idempotency key was used before: its stored answer, and
    /// nothing refunded now.
    Replay(Idempotent),
    /// Recorded: `amount` is refunded (the gateway's refund follows through the
    /// outbox); `whole` when the order is now refunded in full (its seats are sold no
    /// more, its tickets void).
    Refunded { amount: Money, whole: bool },
    /// The whole order was refunded already (a repeat): nothing new.
    NothingLeft,
    /// The order is not paid (pending, unknown, failed…): nothing to refund.
    NotPaid(OrderStatus),
    /// More than what is left to refund was asked for.
    TooMuch { remaining: Money },
}

/// A refund as the store keeps it: what the payment worker needs to move the money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: RefundId,
    pub order_id: OrderId,
    /// The payment it refunds (the gateway's charge or PaymentIntent id).
    pub charge_id: String,
    pub amount: Money,
    /// Whether it refunded all that was left (the order is `refunded` since).
    pub whole: bool,
    /// Whether the gateway confirmed it.
    pub settled: bool,
}

/// What is left to do for a cancelled event's job ([`SalesStore::cancel_work`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelWork {
    /// Live holds (active, deadline not passed), up to the limit asked.
    pub active_holds: Vec<HoldId>,
    /// Orders paid and not refunded in full, up to the limit asked (a free order,
    /// with nothing to refund, is not listed: it stays paid).
    pub paid_orders: Vec<OrderId>,
    /// How many orders still wait for their payment's outcome (`pending_payment`,
    /// `payment_unknown`): each ends failed, or paid and then refunded.
    pub unsettled_orders: u64,
}

/// One state transition, as the group-commit writer hands it to [`SalesStore::write`]
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
    /// Refunds `amount` of a paid order (`None`: all that is left), atomically: the
    /// order's refunded amount grows (one winner when two refunds race: the order
    /// row is locked), a refund row is kept for the gateway's refund, and
    /// `order.refunded` is queued. Refunded in full, the order becomes `refunded`,
    /// its seats are sold no more (`sold_seats` rows deleted, GA `sold` given back)
    /// and its tickets void. See [`RefundOutcome`] for what is refused.
    ///
    /// With `idempotency`, a key already stored for (user, route, key) answers
    /// [`RefundOutcome::Replay`] and refunds nothing (decided under the order's lock,
    /// so two requests with one key at once refund once); a refund decided keeps
    /// the key and its answer in the same transaction (refusals are not kept).
    Refund {
        refund: RefundId,
        order: OrderId,
        amount: Option<i64>,
        idempotency: Option<Box<Idempotent>>,
        message: MessageId,
        now: OffsetDateTime,
    },
    /// Cancels an event (issue 8): its status becomes `cancelled` for good and
    /// `event.cancelled` is queued, in one transaction; [`Written::Marked`] is false
    /// (and nothing is queued) if it was cancelled already, `NotFound` for no such
    /// event. From this commit on the store refuses, on any node, a new hold
    /// (`Conflict { constraint: "event_cancelled" }`), a checkout's order and an
    /// order's payment on the event: a write racing the cancellation either
    /// committed before it (and the cancellation job sees it) or is refused.
    CancelEvent {
        event: EventId,
        message: MessageId,
        now: OffsetDateTime,
    },
    /// The gateway confirmed a refund ([`Written::Marked`] false if it was already).
    RefundSettled {
        refund: RefundId,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// Appends an audit record to the hash chain, once per record id: its `seq` is
    /// the chain head's plus one, its `prev_hash` the head's hash, its `hash`
    /// [`crate::audit::chain_hash`] of the two; the head moves in the same
    /// transaction (serialised across nodes: the head row is locked).
    Audit {
        record: Box<AuditRecord>,
        ack: Option<Ack>,
    },
    /// A state change and its audit record: `write` is applied as it would be alone
    /// and answers as it would; when it changed something ([`Write::audit_due`]),
    /// the record is queued in the same transaction (`audit.recorded.v1`, message id
    /// = the record's id): one more outbox row, no more transactions.
    Audited {
        write: Box<Write>,
        record: Box<AuditRecord>,
    },
    /// An audit record alone, queued (a change made outside the group-committed
    /// writes: catalogue and organization changes).
    AuditOnly(Box<AuditRecord>),
    /// A signed checkpoint of the chain ([`crate::audit::Checkpoint`]); a second one
    /// for the same `seq` is ignored.
    AuditCheckpoint(crate::audit::Checkpoint),
    /// Counts facts into the sales read model, once per message (the message id is
    /// recorded in the same transaction: a redelivery counts nothing).
    SalesFacts {
        message: MessageId,
        facts: Vec<crate::analytics::SalesFact>,
        ack: Option<Ack>,
    },
    /// Marks an email as sent ([`Written::Marked`] is false if it was already).
    EmailSent {
        message: MessageId,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// Marks an SMS as sent ([`Written::Marked`] is false if it was already).
    SmsSent {
        message: MessageId,
        now: OffsetDateTime,
        ack: Option<Ack>,
    },
    /// A job whose handler had nothing to record.
    Ack(Ack),
    /// A waitlist entry claimed with `hold` is offered that hold (valid until
    /// `expires_at`) and `waitlist.offered` is queued; [`Written::Marked`] is false,
    /// and nothing is queued, if the entry is no longer claimed with that hold (its
    /// claim was taken over, or its customer left): the hold is then the caller's
    /// to release.
    WaitlistOffer {
        entry: boxoffice_domain::WaitlistId,
        hold: HoldId,
        expires_at: OffsetDateTime,
        message: MessageId,
        now: OffsetDateTime,
    },
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
    Refund(RefundOutcome),
    /// Whether a once-only mark was new.
    Marked(bool),
}

impl Write {
    /// Every outbox message this write queues, if it succeeded with `written`.
    pub fn queued_all(&self, written: &Written) -> Vec<(MessageId, Job)> {
        match self {
            Write::Audited { write, record } => {
                let mut out: Vec<_> = write.queued(written).into_iter().collect();
                if Write::audit_due(write, written) {
                    out.push((
                        record.id.clone(),
                        Job::AuditRecorded {
                            record: record.clone(),
                        },
                    ));
                }
                out
            }
            Write::AuditOnly(record) => vec![(
                record.id.clone(),
                Job::AuditRecorded {
                    record: record.clone(),
                },
            )],
            w => w.queued(written).into_iter().collect(),
        }
    }

    /// Whether `write`, answered `written`, changed something worth an audit
    /// record (a release of a released hold, a checkout replayed, a refund refused
    /// change nothing).
    pub fn audit_due(write: &Write, written: &Written) -> bool {
        match (write, written) {
            (Write::Hold(_), Written::Done) => true,
            (Write::Release { .. }, w) => *w == Written::Released(ReleaseOutcome::Released),
            (Write::Checkout { .. }, w) => *w == Written::Checkout(CheckoutOutcome::Created),
            (Write::Refund { .. }, w) => {
                matches!(w, Written::Refund(RefundOutcome::Refunded { .. }))
            }
            (_, Written::Marked(m)) => *m,
            (_, Written::Paid(p)) => *p == PaidOutcome::Paid,
            (_, Written::Failed(f)) => matches!(f, FailOutcome::Failed { .. }),
            (_, Written::Expired(n)) => *n > 0,
            _ => true,
        }
    }

    /// The write itself, without its audit record.
    pub fn unaudited(&self) -> &Write {
        match self {
            Write::Audited { write, .. } => write,
            w => w,
        }
    }

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
            (
                Write::Refund {
                    refund,
                    order,
                    message,
                    ..
                },
                Written::Refund(RefundOutcome::Refunded { .. }),
            ) => Some((
                message.clone(),
                Job::OrderRefunded {
                    order_id: order.clone(),
                    refund_id: refund.clone(),
                },
            )),
            (
                Write::WaitlistOffer {
                    entry,
                    hold,
                    message,
                    ..
                },
                Written::Marked(true),
            ) => Some((
                message.clone(),
                Job::WaitlistOffered {
                    entry_id: entry.clone(),
                    hold_id: hold.clone(),
                },
            )),
            (Write::CancelEvent { event, message, .. }, Written::Marked(true)) => Some((
                message.clone(),
                Job::EventCancelled {
                    event_id: event.clone(),
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

#[async_trait]
pub trait SalesStore: Send + Sync + std::fmt::Debug + 'static {
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
    /// The order a ticket belongs to (its QR and PDF are the order's to show).
    async fn ticket_order(&self, ticket: &TicketId) -> Result<Option<OrderId>, StoreError>;
    /// An order's owner and status alone (one statement): what a long-poll needs
    /// to know while it waits, without the items and tickets.
    async fn order_state(&self, id: &OrderId) -> Result<Option<(UserId, OrderStatus)>, StoreError>;
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

    /// A refund, for the payment worker that moves its money at the gateway.
    async fn refund(&self, id: &RefundId) -> Result<Option<RefundRecord>, StoreError>;

    /// The next batch of a cancelled event's work: up to `limit` live holds and
    /// `limit` paid orders, oldest first, and the count of unsettled orders.
    async fn cancel_work(
        &self,
        event: &EventId,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<CancelWork, StoreError>;
}
