//! What the outbox relay and the downstream workers (email, audit, analytics) read,
//! and the acknowledgement a job's outcome carries.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, EventId, Job, MessageId};

use super::StoreError;

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
    /// Tickets sold and revenue per event, as the analytics worker counted them.
    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError>;
    /// Outbox messages not yet handed to an external queue, oldest first.
    async fn unrelayed(&self, limit: usize) -> Result<Vec<(MessageId, Job)>, StoreError>;
    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError>;
    /// Whether the SMS of `message` was marked sent ([`crate::Write::SmsSent`]).
    async fn sms_was_sent(&self, message: &MessageId) -> Result<bool, StoreError>;
}
