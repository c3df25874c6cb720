//! The one error type of the use cases. Each variant is a distinct answer a client
//! can act on; the HTTP crate says how each is sent, with a stable code.

use boxoffice_domain::{EventStatus, Money, OrderStatus, SeatId, ValidationError};
use boxoffice_ports::{EngineError, GatewayError, QueueError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("not found")]
    NotFound,
    #[error("this email is already registered")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("authentication required")]
    Unauthenticated,
    #[error("this refresh token is not valid (expired, revoked or unknown): log in again")]
    InvalidRefreshToken,
    #[error("this refresh token was already used: the session is revoked, log in again")]
    RefreshTokenReused,
    #[error("your role may not do this")]
    Forbidden,
    /// An invitation or password-reset token that is unknown, used or expired.
    #[error("this token is not valid (unknown, already used or expired)")]
    InvalidToken,
    #[error("only its owner may do this")]
    OwnerOnly,
    /// A store constraint refused a write (a race another request won): 409 with
    /// a code named after the constraint, never a 500.
    #[error("this conflicts with the current state ({constraint})")]
    Conflict { constraint: &'static str },
    #[error("the event is not on sale")]
    NotOnSale,
    /// A ticket's QR or PDF asked for before its order was paid (or after it failed).
    #[error("this order has no tickets: it is not paid")]
    TicketsNotIssued,
    #[error("some seats are already taken")]
    SeatsUnavailable(Vec<SeatId>),
    #[error("not enough tickets left in this tier")]
    SoldOut { remaining: u32 },
    /// The event's per-buyer cap (`max_tickets_per_customer`) would be exceeded.
    #[error("this would take you over the event's limit of {limit} tickets per customer")]
    CustomerLimitReached { limit: u32 },
    /// A waitlist join while enough is free to buy now.
    #[error(
        "{available} tickets of this kind are available: buy them instead of joining the waitlist"
    )]
    SeatsAvailable { available: u32 },
    /// The event's waiting room is on and this hold has no valid admission.
    #[error("admission required: {why}")]
    AdmissionRequired { why: &'static str },
    #[error("this event has no waiting room")]
    NoWaitingRoom,
    #[error("the queue of this event is not open (before its pre-queue, or after the sale)")]
    QueueNotOpen,
    /// Joining needs a proof of work: fetch a challenge and solve it.
    #[error("joining this queue needs a solved challenge (difficulty {difficulty})")]
    ChallengeRequired { difficulty: u8 },
    #[error("the challenge's solution was refused: {why}")]
    ChallengeFailed { why: &'static str },
    #[error("the challenge has expired: fetch a new one")]
    ChallengeExpired,
    #[error("the hold has expired")]
    HoldExpired,
    #[error("the hold has been taken to checkout")]
    HoldConverted,
    #[error("send an Idempotency-Key header")]
    IdempotencyKeyMissing,
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    /// A webhook that is not provably from the gateway (or not fresh).
    #[error("webhook refused: {why}")]
    WebhookRejected {
        code: &'static str,
        why: &'static str,
    },
    /// A refund of an order that is not paid (nothing was taken, or not yet).
    #[error("only a paid order can be refunded; this one is {}", status.as_str())]
    OrderNotPaid { status: OrderStatus },
    /// A refund of more than what is left to refund.
    #[error("the refund is more than what is left to refund ({} minor units)", remaining.amount)]
    RefundTooLarge { remaining: Money },
    #[error("the payment gateway is unavailable")]
    GatewayUnavailable(#[source] anyhow::Error),
    #[error("an event cannot go from {} to {}", from.as_str(), to.as_str())]
    InvalidTransition { from: EventStatus, to: EventStatus },
    /// A backend (store, engine) does not answer; retrying later may work.
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Unavailable(e) => AppError::Unavailable(e),
            StoreError::Conflict { constraint } => AppError::Conflict { constraint },
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(e) => AppError::Unavailable(e),
            e @ EngineError::StaleSnapshot(_) => AppError::Unavailable(e.into()),
            e @ EngineError::EventNotLoaded(_) => AppError::Internal(e.into()),
        }
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Unavailable(e) => AppError::Unavailable(e),
        }
    }
}

impl From<GatewayError> for AppError {
    fn from(e: GatewayError) -> Self {
        AppError::GatewayUnavailable(e.into())
    }
}
