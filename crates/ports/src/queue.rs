//! The job queue: at-least-once delivery of outbox jobs to each kind of worker.
//!
//! Jobs enter through the outbox, in the same transaction as the change they
//! announce; a queue only delivers them. A delivery is leased: if it is neither acked
//! nor retried before its lease runs out (the worker died), it is delivered again.
//! Workers are idempotent, so a second delivery changes nothing.
//!
//! Where the queue's state lives in the store ([`JobQueue::acked_in_store`]), a job
//! is acknowledged by the very transaction that records its outcome (an
//! [`crate::Ack`] carried by the [`crate::Write`]): there is no write that exists
//! only to say a job is done.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, Job, MessageId, OrderId};
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
    /// Acknowledges a finished job (a broker's ack). Queues acknowledged in the
    /// store have nothing to do here: the outcome's transaction did it.
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

    /// Whether a finished job is acknowledged in the store, in the transaction that
    /// records its outcome (then `ack` and `bury` are for the store to do, through an
    /// [`crate::Ack`]), rather than by `ack` and `bury` here.
    fn acked_in_store(&self) -> bool {
        false
    }

    /// Messages this node has just committed to the outbox: a queue fed in process
    /// delivers them from here, without reading them back.
    fn committed(&self, messages: &[(MessageId, Job)], now: OffsetDateTime) {
        let _ = (messages, now);
    }

    /// At start: takes back what was committed but not finished before a stop.
    async fn recover(&self, now: OffsetDateTime) -> Result<usize, QueueError> {
        let _ = now;
        Ok(0)
    }

    /// Whether an [`JobQueue::announce`] reaches the long-polls of every node (one
    /// process, or a bus every node listens to). If not, long-polls poll the store.
    fn announces(&self) -> bool {
        false
    }

    /// Tells every node that `order` reached a final status (best effort: a missed
    /// announcement only delays a long-poll until its safety poll).
    async fn announce(&self, order: &OrderId) {
        let _ = order;
    }

    /// Calls `on` with every order announced by any node, until the queue closes.
    /// Returns at once if this queue carries no announcements between nodes.
    async fn listen(&self, on: Box<dyn Fn(OrderId) + Send + Sync>) -> Result<(), QueueError> {
        let _ = on;
        Ok(())
    }

    /// Whether outbox messages must be relayed into this queue (an external broker);
    /// a store-as-queue already has them.
    fn relays(&self) -> bool {
        false
    }

    /// Hands outbox messages to the queue, each once per consumer kind: all of them,
    /// or an error (then some may be in; publishing them again is harmless, the
    /// broker de-duplicates by message id).
    async fn publish(&self, messages: &[(MessageId, Job)]) -> Result<(), QueueError> {
        let _ = messages;
        Ok(())
    }
}
