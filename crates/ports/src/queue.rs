//! The job queue: at-least-once delivery of outbox jobs to each kind of worker.
//!
//! Jobs enter through the outbox, in the same transaction as the change they
//! announce; a queue only delivers them. A delivery is leased: if it is neither acked
//! nor retried before its lease runs out (the worker died), it is delivered again.
//! Workers are idempotent, so a second delivery changes nothing.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, Job, MessageId};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: MessageId,
    pub consumer: Consumer,
    pub job: Job,
    /// 1 on the first delivery.
    pub attempt: u32,
    pub enqueued_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
}

#[async_trait]
pub trait JobQueue: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `max` jobs for `consumer` that are due, each leased for `lease`.
    async fn claim(
        &self,
        consumer: Consumer,
        max: usize,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Delivery>, QueueError>;
    async fn ack(&self, d: &Delivery, now: OffsetDateTime) -> Result<(), QueueError>;
    /// Deliver again at `at` (backoff).
    async fn retry(&self, d: &Delivery, at: OffsetDateTime, error: &str) -> Result<(), QueueError>;
    /// Give up: the job goes to the dead-letter state for an operator to look at.
    async fn bury(&self, d: &Delivery, error: &str) -> Result<(), QueueError>;
    /// Jobs waiting for `consumer` and the age of the oldest (for metrics).
    async fn backlog(
        &self,
        consumer: Consumer,
        now: OffsetDateTime,
    ) -> Result<(u64, Duration), QueueError>;

    /// Whether outbox messages must be relayed into this queue (an external broker);
    /// a store-as-queue already has them.
    fn relays(&self) -> bool {
        false
    }

    /// Hands one outbox message to the queue, once per consumer kind; publishing it
    /// again is harmless (the broker de-duplicates by message id).
    async fn publish(&self, message: &MessageId, job: &Job) -> Result<(), QueueError> {
        let _ = (message, job);
        Ok(())
    }
}
