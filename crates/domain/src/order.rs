//! Orders, their items and tickets, and the jobs that follow a state change.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

use crate::{EventId, HoldId, Money, SeatId, TierId, UserId};

macro_rules! plain_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(format!("{}_{}", $prefix, ulid::Ulid::new().to_string().to_lowercase()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Parses an id of this kind; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix(concat!($prefix, "_"))?;
                (rest.len() == 26 && ulid::Ulid::from_string(rest).is_ok())
                    .then(|| Self(s.to_ascii_lowercase()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

plain_id!(/// An order: one checkout of one hold.
    OrderId, "ord");
plain_id!(/// An e-ticket.
    TicketId, "tkt");
plain_id!(/// An outbox message; also the de-duplication id of what it triggers.
    MessageId, "msg");
plain_id!(/// A refund of (part of) a paid order; also its idempotency key at the gateway.
    RefundId, "rfd");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    /// The gateway could not say whether the charge went through (its answers were
    /// lost until the payment deadline): the seats stay held and the reconciler asks
    /// the gateway again until it knows. Never `failed` while a charge may exist.
    PaymentUnknown,
    Paid,
    Failed,
    Refunded,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::PaymentUnknown => "payment_unknown",
            OrderStatus::Paid => "paid",
            OrderStatus::Failed => "failed",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending_payment" => OrderStatus::PendingPayment,
            "payment_unknown" => OrderStatus::PaymentUnknown,
            "paid" => OrderStatus::Paid,
            "failed" => OrderStatus::Failed,
            "refunded" => OrderStatus::Refunded,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the payment is settled: `pending_payment` and `payment_unknown` still
    /// wait for the gateway's answer.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            OrderStatus::PendingPayment | OrderStatus::PaymentUnknown
        )
    }
}

/// One line of an order: a seat, or one unit of a GA tier, at its frozen price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    pub seat_id: Option<SeatId>,
    pub tier_id: TierId,
    pub price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub seat_id: Option<SeatId>,
    pub tier_id: TierId,
    pub price: Money,
    /// What the door scans: a signed code (`ticket_code`), or, for tickets issued
    /// before signing, 130 random bits in a 32-letter alphabet. Unique.
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: UserId,
    pub event_id: EventId,
    pub hold_id: HoldId,
    /// Where the tickets go.
    pub email: String,
    /// An E.164 number the buyer gave for an SMS with the ticket links (none: no SMS).
    pub phone: Option<String>,
    pub status: OrderStatus,
    pub failure_code: Option<String>,
    pub items: Vec<OrderItem>,
    pub total: Money,
    /// The gateway's token for the buyer's card (never a card number).
    pub payment_token: String,
    pub tickets: Vec<Ticket>,
    /// How much of `total` has been refunded so far (decided: the gateway's refunds
    /// follow through the outbox). `total` refunded makes the order `refunded`.
    pub refunded: Money,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Order {
    /// The idempotency key of this order's charge: one order, at most one charge.
    pub fn payment_key(&self) -> &str {
        self.id.as_str()
    }

    /// What may still be refunded: the total less what was refunded already.
    pub fn refundable(&self) -> Money {
        Money::new(
            (self.total.amount - self.refunded.amount).max(0),
            self.total.currency,
        )
    }

    /// Whether its tickets are void: a refunded order's are (a partial refund keeps
    /// them valid).
    pub fn tickets_void(&self) -> bool {
        self.status == OrderStatus::Refunded
    }
}

/// What a checkout answered, kept under its idempotency key and given again, as it
/// was first given, to a repeat of the same request. A business outcome: how it is
/// sent (status, body) is the HTTP layer's to say. Refusals (the hold expired or
/// already checked out) are not kept: a repeat after one is decided afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutAnswer {
    /// The order was created; its payment was pending when this was answered.
    Accepted { order_id: OrderId },
    /// A refund of the order was decided (`POST /v1/orders/{id}/refund` with an
    /// `Idempotency-Key`): a repeat answers the order as it stands, refunding
    /// nothing more.
    Refunded { order_id: OrderId },
}

impl CheckoutAnswer {
    /// The name a store keeps the outcome under (beside [`Self::order_id`]).
    pub fn kind(&self) -> &'static str {
        match self {
            CheckoutAnswer::Accepted { .. } => "accepted",
            CheckoutAnswer::Refunded { .. } => "refunded",
        }
    }

    /// The order the answer names.
    pub fn order_id(&self) -> Option<&OrderId> {
        match self {
            CheckoutAnswer::Accepted { order_id } | CheckoutAnswer::Refunded { order_id } => {
                Some(order_id)
            }
        }
    }

    /// Back from what a store kept ([`Self::kind`], [`Self::order_id`]); `None`
    /// when the two do not make an answer.
    pub fn from_stored(kind: &str, order_id: Option<&str>) -> Option<Self> {
        match (kind, order_id) {
            ("accepted", Some(id)) => Some(CheckoutAnswer::Accepted {
                order_id: OrderId::parse(id)?,
            }),
            ("refunded", Some(id)) => Some(CheckoutAnswer::Refunded {
                order_id: OrderId::parse(id)?,
            }),
            _ => None,
        }
    }
}

/// Work that follows a committed state change, written to the outbox in the same
/// transaction. Versioned by tag: a worker refuses a version it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Job {
    #[serde(rename = "payment.requested.v1")]
    PaymentRequested { order_id: OrderId },
    #[serde(rename = "order.paid.v1")]
    OrderPaid { order_id: OrderId },
    #[serde(rename = "order.failed.v1")]
    OrderFailed { order_id: OrderId, code: String },
    /// A refund was decided: the payment worker moves the money at the gateway
    /// (retried until it confirms), the buyer is told, audit and analytics record it.
    #[serde(rename = "order.refunded.v1")]
    OrderRefunded {
        order_id: OrderId,
        refund_id: RefundId,
    },
    /// An event was cancelled: the payment worker releases its live holds and
    /// refunds its paid orders in batches, until none is left (resumable: each
    /// batch is durable, a redelivery carries on where the last one stopped).
    #[serde(rename = "event.cancelled.v1")]
    EventCancelled { event_id: crate::EventId },
    /// A waitlist entry was offered seats: a hold made in its customer's name. The
    /// email worker tells the customer (once per offer: the message id).
    #[serde(rename = "waitlist.offered.v1")]
    WaitlistOffered {
        entry_id: crate::WaitlistId,
        hold_id: crate::HoldId,
    },
    /// A state change a person (or the system) made, as the audit log keeps it,
    /// written in the change's own transaction. The audit worker appends it to the
    /// hash chain; analytics counts the holds it tells of.
    #[serde(rename = "audit.recorded.v1")]
    AuditRecorded {
        record: Box<crate::audit::AuditRecord>,
    },
}

impl Job {
    pub fn topic(&self) -> &'static str {
        match self {
            Job::PaymentRequested { .. } => "payment.requested",
            Job::OrderPaid { .. } => "order.paid",
            Job::OrderFailed { .. } => "order.failed",
            Job::OrderRefunded { .. } => "order.refunded",
            Job::EventCancelled { .. } => "event.cancelled",
            Job::WaitlistOffered { .. } => "waitlist.offered",
            Job::AuditRecorded { .. } => "audit.recorded",
        }
    }

    /// The worker types that consume this job, each once.
    pub fn consumers(&self) -> &'static [Consumer] {
        match self {
            Job::PaymentRequested { .. } => &[Consumer::Payment],
            Job::OrderPaid { .. } => &[Consumer::Email, Consumer::Audit, Consumer::Analytics],
            Job::OrderFailed { .. } => &[Consumer::Email, Consumer::Audit],
            Job::OrderRefunded { .. } => &[
                Consumer::Payment,
                Consumer::Email,
                Consumer::Audit,
                Consumer::Analytics,
            ],
            Job::EventCancelled { .. } => &[Consumer::Payment, Consumer::Audit],
            Job::WaitlistOffered { .. } => &[Consumer::Email, Consumer::Audit],
            Job::AuditRecorded { .. } => &[Consumer::Audit, Consumer::Analytics],
        }
    }
}

/// A kind of worker; each kind sees each of its jobs at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consumer {
    Payment,
    Email,
    Audit,
    Analytics,
}

impl Consumer {
    pub const ALL: [Consumer; 4] = [
        Consumer::Payment,
        Consumer::Email,
        Consumer::Audit,
        Consumer::Analytics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Payment => "payment",
            Consumer::Email => "email",
            Consumer::Audit => "audit",
            Consumer::Analytics => "analytics",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// This consumer's bit in a set of consumers (stored: never renumber).
    pub fn bit(self) -> u8 {
        match self {
            Consumer::Payment => 1,
            Consumer::Email => 2,
            Consumer::Audit => 4,
            Consumer::Analytics => 8,
        }
    }

    /// The set of `consumers` as bits.
    pub fn bits(consumers: &[Consumer]) -> u8 {
        consumers.iter().fold(0, |acc, c| acc | c.bit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_tagged_and_versioned() {
        let j = Job::PaymentRequested {
            order_id: OrderId::new(),
        };
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["type"], "payment.requested.v1");
        assert_eq!(serde_json::from_value::<Job>(v).unwrap(), j);
        assert!(
            serde_json::from_str::<Job>(r#"{"type":"payment.requested.v9","order_id":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn an_unknown_payment_is_not_final() {
        assert_eq!(
            OrderStatus::parse("payment_unknown"),
            Some(OrderStatus::PaymentUnknown)
        );
        assert_eq!(OrderStatus::PaymentUnknown.as_str(), "payment_unknown");
        assert!(!OrderStatus::PaymentUnknown.is_final());
        assert!(!OrderStatus::PendingPayment.is_final());
        assert!(OrderStatus::Failed.is_final() && OrderStatus::Paid.is_final());
    }

    #[test]
    fn checkout_answers_round_trip_through_a_store() {
        let a = CheckoutAnswer::Accepted {
            order_id: OrderId::new(),
        };
        let id = a.order_id().map(|o| o.as_str());
        assert_eq!(CheckoutAnswer::from_stored(a.kind(), id), Some(a));
        let r = CheckoutAnswer::Refunded {
            order_id: OrderId::new(),
        };
        let id = r.order_id().map(|o| o.as_str());
        assert_eq!(CheckoutAnswer::from_stored(r.kind(), id), Some(r));
        assert_eq!(CheckoutAnswer::from_stored("refunded", None), None);
        assert_eq!(CheckoutAnswer::from_stored("accepted", None), None);
        assert_eq!(CheckoutAnswer::from_stored("accepted", Some("x")), None);
        assert_eq!(
            CheckoutAnswer::from_stored("refused", Some(OrderId::new().as_str())),
            None
        );
    }

    #[test]
    fn order_ids_parse() {
        let id = OrderId::new();
        assert_eq!(OrderId::parse(id.as_str()), Some(id));
        assert_eq!(OrderId::parse("ord_nope"), None);
        assert_eq!(OrderId::parse("hld_01arz3ndektsv4rrffq69g5fav"), None);
    }
}
