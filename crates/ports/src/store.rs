//! The durable store: the source of truth for accounts, the catalogue, holds and
//! sales. Its constraints make a double sale impossible even if a hold engine were
//! wrong; every write that matters is one transaction.
//!
//! The port is split by what it serves, one trait a module, so that a reader finds
//! one capability in one place and a use case can ask for only what it uses:
//! [`IdentityStore`] (accounts, the token key, once-only chores), [`CatalogueStore`]
//! (venues, events, layouts), [`SalesStore`] (holds, checkout, orders, payments,
//! the engine's inventory, and the group-committed write batches) and
//! [`OutboxStore`] (what the relay and the downstream workers read), and
//! [`AccessStore`] (organizations, invitations, staff, password resets), and
//! [`CheckinStore`] (signing keys, tickets at the gate, scans). [`Store`] is
//! all five, plus the health check, for the components that need the whole store.

mod access;
mod catalogue;
mod checkin;
mod identity;
mod outbox;
mod sales;
mod waitlist;

use async_trait::async_trait;

pub use access::{AccessStore, Invitation, Joining, PasswordReset};
pub use catalogue::{CatalogueStore, EventRecord, EventSearch, LayoutSeat};
pub use checkin::{CheckinStore, FirstScan, NewScan, ScanRecord, TicketKey, TicketRecord};
pub use identity::{IdentityStore, Session};
pub use outbox::{Ack, OutboxStore};
pub use sales::{
    CancelWork, CheckoutOutcome, CheckoutRecord, FailOutcome, Idempotent, PaidOutcome,
    RefundOutcome, RefundRecord, ReleaseOutcome, SalesStore, StoredInventory, Write, Written,
};
pub use waitlist::{WaitlistMove, WaitlistStore};

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

/// The whole store: every capability, and whether the database answers.
#[async_trait]
pub trait Store:
    IdentityStore
    + AccessStore
    + CatalogueStore
    + SalesStore
    + OutboxStore
    + WaitlistStore
    + CheckinStore
{
    async fn ping(&self) -> Result<(), StoreError>;
}
