//! The job queue in PostgreSQL: the `jobs` table, one row per (outbox message,
//! consumer). A claim is one statement: it leases rows with an `UPDATE … RETURNING`
//! over rows picked `FOR UPDATE SKIP LOCKED` and joins their outbox payloads, so any
//! number of nodes claim without blocking each other and never get the same row
//! while its lease runs; an expired lease makes it claimable again.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, Job, MessageId};
use boxoffice_ports::{Delivery, JobQueue, QueueError};
use std::time::Duration;
use time::OffsetDateTime;

use crate::{ts, PgStore};

fn unavailable(e: impl Into<anyhow::Error>) -> QueueError {
    QueueError::Unavailable(e.into())
}

impl PgStore {
    /// Ends a job's delivery: `done` (with `done_at`) or `dead` (with its error).
    async fn finish(
        &self,
        message: &MessageId,
        consumer: Consumer,
        state: &str,
        done_at: Option<OffsetDateTime>,
        error: Option<&str>,
    ) -> Result<(), QueueError> {
        sqlx::query(
            "UPDATE jobs SET state = $1, done_at = COALESCE($2, done_at), lease_until = NULL, \
             last_error = COALESCE($3, last_error) WHERE message_id = $4 AND consumer = $5",
        )
        .bind(state)
        .bind(done_at.map(ts))
        .bind(error)
        .bind(message.as_str())
        .bind(consumer.as_str())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        crate::writes::count_commit();
        Ok(())
    }
}

#[async_trait]
impl JobQueue for PgStore {
    async fn claim(
        &self,
        consumer: Consumer,
        max: usize,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Delivery>, QueueError> {
        let now = ts(now);
        // One statement: lease the due rows and read their payloads.
        let leased: Vec<(String, i32, OffsetDateTime, String)> = sqlx::query_as(
            "WITH c AS ( \
                 UPDATE jobs SET lease_until = $1, attempts = attempts + 1 \
                 WHERE consumer = $2 AND message_id IN ( \
                     SELECT message_id FROM jobs WHERE consumer = $2 AND state = 'ready' AND available_at <= $3 \
                     AND (lease_until IS NULL OR lease_until <= $3) ORDER BY available_at LIMIT $4 \
                     FOR UPDATE SKIP LOCKED) \
                 RETURNING message_id, attempts, enqueued_at) \
             SELECT c.message_id, c.attempts, c.enqueued_at, o.payload::text \
             FROM c JOIN outbox o ON o.id = c.message_id ORDER BY c.enqueued_at, c.message_id",
        )
        .bind(ts(now + lease))
        .bind(consumer.as_str())
        .bind(now)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        crate::writes::count_commit();
        let mut out = Vec::with_capacity(leased.len());
        for (id, attempts, enqueued_at, payload) in leased {
            let message = MessageId::parse(&id)
                .ok_or_else(|| unavailable(anyhow::anyhow!("bad message id {id}")))?;
            match serde_json::from_str::<Job>(&payload) {
                Ok(job) => out.push(Delivery {
                    message,
                    consumer,
                    job,
                    attempt: attempts as u32,
                    enqueued_at,
                }),
                // A job this build cannot read (a newer version): park it, loudly.
                Err(e) => {
                    tracing::error!(message = %id, error = %e, "unreadable job parked");
                    self.finish(
                        &message,
                        consumer,
                        "dead",
                        None,
                        Some(&format!("unreadable: {e}")),
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    async fn ack(&self, d: &Delivery, now: OffsetDateTime) -> Result<(), QueueError> {
        self.finish(&d.message, d.consumer, "done", Some(now), None)
            .await
    }

    async fn retry(&self, d: &Delivery, at: OffsetDateTime, error: &str) -> Result<(), QueueError> {
        sqlx::query("UPDATE jobs SET available_at = $1, lease_until = NULL, last_error = $2 WHERE message_id = $3 AND consumer = $4 AND state = 'ready'")
            .bind(ts(at))
            .bind(error)
            .bind(d.message.as_str())
            .bind(d.consumer.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        crate::writes::count_commit();
        Ok(())
    }

    async fn bury(&self, d: &Delivery, error: &str) -> Result<(), QueueError> {
        self.finish(&d.message, d.consumer, "dead", None, Some(error))
            .await
    }

    fn acked_in_store(&self) -> bool {
        true
    }

    async fn backlog(
        &self,
        consumer: Consumer,
        now: OffsetDateTime,
    ) -> Result<(u64, Duration), QueueError> {
        let (n, oldest): (i64, Option<OffsetDateTime>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(enqueued_at) FROM jobs WHERE consumer = $1 AND state = 'ready'",
        )
        .bind(consumer.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        let age = oldest.map_or(time::Duration::ZERO, |t| ts(now) - t);
        Ok((n as u64, Duration::try_from(age).unwrap_or(Duration::ZERO)))
    }
}
