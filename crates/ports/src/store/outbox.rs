//! What the outbox relay and the downstream workers (email, audit, analytics) read,
//! and the acknowledgement a job's outcome carries.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, EventId, Job, MessageId};

use super::StoreError;
use crate::analytics::SalesRow;
use crate::audit::{Chained, Checkpoint};

/// A finished job, acknowledged in the same transaction as its outcome (for queues
/// whose state lives in the store), so a job is done exactly when its effect is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub message: MessageId,
    pub consumer: Consumer,
    /// Set when the job was given up (dead-lettered) rather than done.
    pub dead: Option<String>,
}

#[async_trait]
pub trait OutboxStore: Send + Sync + std::fmt::Debug + 'static {
    /// The sales read model of an event: every (tier, minute) row, the totals'
    /// rows under [`crate::analytics::ALL_TIERS`].
    async fn sales_rows(&self, event: &EventId) -> Result<Vec<SalesRow>, StoreError>;
    /// How many messages the analytics worker has counted (for tests and metrics:
    /// it grows once per message, never on a redelivery).
    async fn sales_processed(&self) -> Result<u64, StoreError>;
    /// The chain in order: up to `limit` records with `seq > after`.
    async fn audit_chain(&self, after: i64, limit: usize) -> Result<Vec<Chained>, StoreError>;
    /// The chain head as the store last moved it: (seq, hash); `(0, GENESIS)` empty.
    async fn audit_head(&self) -> Result<(i64, String), StoreError>;
    /// Every signed checkpoint, by seq.
    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;
    /// A page of records, newest first: those with `seq < before` (all: `None`),
    /// of one event if asked.
    async fn audit_page(
        &self,
        event: Option<&EventId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Chained>, StoreError>;
    /// Outbox messages not yet handed to an external queue, oldest first.
    async fn unrelayed(&self, limit: usize) -> Result<Vec<(MessageId, Job)>, StoreError>;
    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError>;
    /// Whether the SMS of `message` was marked sent ([`crate::Write::SmsSent`]).
    async fn sms_was_sent(&self, message: &MessageId) -> Result<bool, StoreError>;
}
