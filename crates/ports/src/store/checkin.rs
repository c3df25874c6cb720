//! Check-in at the gates: the ticket signing keys, tickets as a scanner sees them,
//! and scans. Admission is decided here, by one conditional update of the ticket
//! (`… WHERE checked_in_at IS NULL AND voided_at IS NULL`) in the transaction that
//! records the scan, so two gates scanning one ticket at the same instant — on any
//! number of nodes — admit it once. A scan is kept under its scanner's
//! `(scanned_by, scan_id)`: the same scan sent again answers what it answered first.

use async_trait::async_trait;
use boxoffice_domain::ticket_code::ScanResult;
use boxoffice_domain::{EventId, OrderId, Ticket, TicketId, UserId};
use time::OffsetDateTime;

use super::StoreError;

/// One ticket signing key. Keys are global and numbered; the newest signs, every
/// one verifies (rotation keeps old tickets valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKey {
    pub kid: u8,
    /// Ed25519 public key (32 bytes).
    pub public_key: Vec<u8>,
    /// The private key's seed, sealed with the server secret (never in clear).
    pub sealed_seed: String,
    pub created_at: OffsetDateTime,
}

/// Where and when a ticket was first admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstScan {
    pub at: OffsetDateTime,
    pub gate: String,
}

/// A ticket with what a gate needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub ticket: Ticket,
    pub order_id: OrderId,
    pub event_id: EventId,
    pub customer_id: UserId,
    /// Its order was refunded.
    pub void: bool,
    pub first_scan: Option<FirstScan>,
}

/// A scan to record. `result` is what the app decided from the code alone; `Ok`
/// asks the store to admit the ticket, which it does only if the ticket is neither
/// admitted nor void (else the recorded result is `AlreadyUsed` or `Voided`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScan {
    pub scanned_by: UserId,
    pub scan_id: String,
    pub event_id: Option<EventId>,
    pub ticket_id: Option<TicketId>,
    pub gate: String,
    /// When the scanner scanned (an offline scan's own time).
    pub scanned_at: OffsetDateTime,
    pub recorded_at: OffsetDateTime,
    pub offline: bool,
    pub result: ScanResult,
}

/// A recorded scan: what it decided and, when the ticket had been admitted before,
/// that first admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRecord {
    pub scan_id: String,
    pub ticket_id: Option<TicketId>,
    pub gate: String,
    pub scanned_at: OffsetDateTime,
    pub result: ScanResult,
    pub first_scan: Option<FirstScan>,
}

#[async_trait]
pub trait CheckinStore: Send + Sync + std::fmt::Debug + 'static {
    /// Turns the event's rotating codes on or off.
    async fn set_event_rotating_codes(
        &self,
        event: &EventId,
        on: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Every signing key, oldest first.
    async fn ticket_keys(&self) -> Result<Vec<TicketKey>, StoreError>;
    /// Adds `key` unless its `kid` exists (`false`: another node's won; read again).
    async fn add_ticket_key(&self, key: &TicketKey) -> Result<bool, StoreError>;

    async fn ticket(&self, id: &TicketId) -> Result<Option<TicketRecord>, StoreError>;
    /// A ticket by its code's text (codes issued before signing are looked up so).
    async fn ticket_by_code(&self, code: &str) -> Result<Option<TicketRecord>, StoreError>;
    /// The event's issued tickets (void ones included), in issue order.
    async fn event_tickets(&self, event: &EventId) -> Result<Vec<TicketRecord>, StoreError>;

    /// The sealed rotating secret of a ticket: `candidate` is kept if it has none
    /// yet, and whichever is kept is returned (two first asks agree).
    async fn ticket_secret(&self, ticket: &TicketId, candidate: &str)
        -> Result<String, StoreError>;

    /// In one transaction: if `(scanned_by, scan_id)` is recorded, that record
    /// (nothing else changes); else the scan is recorded and, for `Ok`, the ticket
    /// admitted if it is neither admitted nor void (see [`NewScan`]).
    async fn record_scan(&self, scan: &NewScan) -> Result<ScanRecord, StoreError>;
}
