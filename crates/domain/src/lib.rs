//! The boxoffice domain: identifiers, money, venues and their seat maps, events and
//! their price tiers, holds, and the per-event inventory state machine.
//!
//! This crate owns the rules and must never do I/O: no tokio, no database, no HTTP.
//! Everything here is deterministic given its inputs (time is always passed in).

pub mod audit;
pub mod best_available;
pub mod event;
pub mod hold;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod order;
pub mod ticket_code;
pub mod time;
pub mod user;
pub mod venue;
pub mod waiting_room;
pub mod waitlist;

pub use audit::{AuditRecord, Origin};
pub use event::{
    check_max_tickets_per_customer, Event, EventDetails, EventStatus, GaTier, NewEvent, PriceTier,
};
pub use hold::{Hold, HoldSelection, HoldStatus};
pub use ids::{
    EventId, HoldId, IdError, InvitationId, OrgId, SeatId, TierId, UserId, VenueId, WaitlistId,
};
pub use inventory::{EventInventory, GaIx, HoldItems, HoldRejection, SeatIx};
pub use money::{Currency, Money};
pub use order::{
    CheckoutAnswer, Consumer, Job, MessageId, Order, OrderId, OrderItem, OrderStatus, RefundId,
    Ticket, TicketId,
};
pub use time::Millis;
pub use user::{Email, Organization, Password, Role, User};
pub use venue::{Seat, Venue, VenueSpec};
pub use waiting_room::{lottery_rank, WaitingRoomSettings};
pub use waitlist::{WaitlistEntry, WaitlistState};

/// A rule broken by input: which field, and why. Maps to 422 `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
