//! The embedded job queue: committed outbox messages are handed to this process's
//! workers directly, in memory, with no queue table to claim from or ack into.
//!
//! Delivery stays at least once: a consumer's outcome sets its bit in the outbox
//! row's `done` in the same transaction (an [`boxoffice_ports::Ack`]), and on start
//! [`JobQueue::recover`] replays every message some consumer has not finished. A
//! retry waits here until it is due; a crash forgets the wait, and the replay
//! delivers the job again at once. One process owns a data directory, so nothing is
//! leased.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, Job, MessageId};
use boxoffice_ports::{Delivery, JobQueue, QueueError};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use time::OffsetDateTime;

use crate::db::{dt, ms, OrStore};
use crate::SqliteStore;

fn unavailable(e: impl Into<anyhow::Error>) -> QueueError {
    QueueError::Unavailable(e.into())
}

/// One consumer kind's jobs: ready now, and waiting for a retry time.
#[derive(Debug, Default)]
struct Lane {
    ready: VecDeque<Delivery>,
    /// By (due time in ms, sequence), so equal times keep their order.
    delayed: BTreeMap<(i64, u64), Delivery>,
    seq: u64,
}

/// The in-memory part of the queue, shared by every clone of the store.
#[derive(Debug, Default)]
pub(crate) struct Dispatcher {
    lanes: [Mutex<Lane>; 4],
}

fn lane_ix(c: Consumer) -> usize {
    match c {
        Consumer::Payment => 0,
        Consumer::Email => 1,
        Consumer::Audit => 2,
        Consumer::Analytics => 3,
    }
}

impl Dispatcher {
    fn push(&self, d: Delivery) {
        self.lanes[lane_ix(d.consumer)].lock().ready.push_back(d);
    }

    fn offer(&self, message: &MessageId, job: &Job, enqueued_at: OffsetDateTime, done: u8) {
        for &consumer in job.consumers() {
            if done & consumer.bit() == 0 {
                self.push(Delivery {
                    message: message.clone(),
                    consumer,
                    job: job.clone(),
                    attempt: 1,
                    enqueued_at,
                });
            }
        }
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn claim(
        &self,
        consumer: Consumer,
        max: usize,
        _lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut lane = self.dispatch.lanes[lane_ix(consumer)].lock();
        let now = ms(now);
        while let Some(entry) = lane.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let d = entry.remove();
            lane.ready.push_back(d);
        }
        let n = max.min(lane.ready.len());
        Ok(lane.ready.drain(..n).collect())
    }

    async fn ack(&self, _d: &Delivery, _now: OffsetDateTime) -> Result<(), QueueError> {
        // Done in the outcome's transaction.
        Ok(())
    }

    async fn retry(
        &self,
        d: &Delivery,
        at: OffsetDateTime,
        _error: &str,
    ) -> Result<(), QueueError> {
        let mut lane = self.dispatch.lanes[lane_ix(d.consumer)].lock();
        lane.seq += 1;
        let key = (ms(at), lane.seq);
        lane.delayed.insert(
            key,
            Delivery {
                attempt: d.attempt + 1,
                ..d.clone()
            },
        );
        Ok(())
    }

    async fn bury(&self, _d: &Delivery, _error: &str) -> Result<(), QueueError> {
        // Recorded in the store with the ack (`Ack::dead`).
        Ok(())
    }

    async fn backlog(
        &self,
        consumer: Consumer,
        now: OffsetDateTime,
    ) -> Result<(u64, Duration), QueueError> {
        let lane = self.dispatch.lanes[lane_ix(consumer)].lock();
        let n = lane.ready.len() + lane.delayed.len();
        let oldest = lane
            .ready
            .iter()
            .chain(lane.delayed.values())
            .map(|d| d.enqueued_at)
            .min();
        let age = oldest.map_or(Duration::ZERO, |t| {
            Duration::try_from(now - t).unwrap_or_default()
        });
        Ok((n as u64, age))
    }

    fn acked_in_store(&self) -> bool {
        true
    }

    /// One process serves this store: an announcement in process reaches every
    /// long-poll there is.
    fn announces(&self) -> bool {
        true
    }

    fn committed(&self, messages: &[(MessageId, Job)], now: OffsetDateTime) {
        for (id, job) in messages {
            self.dispatch.offer(id, job, now, 0);
        }
    }

    async fn recover(&self, _now: OffsetDateTime) -> Result<usize, QueueError> {
        let rows = self
            .db
            .read(|conn| {
                crate::rows::all(
                    conn,
                    "SELECT id, payload, created_at, done FROM outbox WHERE done != pending ORDER BY created_at, id",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0).db()?,
                            r.get::<_, String>(1).db()?,
                            r.get::<_, i64>(2).db()?,
                            r.get::<_, i64>(3).db()?,
                        ))
                    },
                )
            })
            .await
            .map_err(unavailable)?;
        let n = rows.len();
        for (id, payload, created_at, done) in rows {
            let message = MessageId::parse(&id)
                .ok_or_else(|| unavailable(anyhow::anyhow!("bad message id {id}")))?;
            match serde_json::from_str::<Job>(&payload) {
                Ok(job) => self
                    .dispatch
                    .offer(&message, &job, dt(created_at), done as u8),
                // A job this build cannot read (a newer version): left for it, loudly.
                Err(e) => {
                    tracing::error!(message = %id, error = %e, "unreadable job left in the outbox")
                }
            }
        }
        Ok(n)
    }
}
