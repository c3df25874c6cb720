//! The job queue in PostgreSQL: the `jobs` table, one row per (outbox message,
//! consumer). A claim leases rows with one `UPDATE … RETURNING` over rows picked
//! `FOR UPDATE SKIP LOCKED`, so any number of nodes claim without blocking each other
//! and never get the same row while its lease runs; an expired lease makes it
//! claimable again.

use async_trait::async_trait;
use boxoffice_domain::{Consumer, Job, MessageId};
use boxoffice_ports::{Delivery, JobQueue, QueueError};
use std::time::Duration;
use time::OffsetDateTime;

use crate::{dt, ms, PgStore};

fn unavailable(e: impl Into<anyhow::Error>) -> QueueError {
    QueueError::Unavailable(e.into())
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
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        let leased: Vec<(String, i64, i64)> = sqlx::query_as(
            "UPDATE jobs SET lease_until = $1, attempts = attempts + 1 \
             WHERE consumer = $2 AND message_id IN ( \
                 SELECT message_id FROM jobs WHERE consumer = $3 AND state = 'ready' AND available_at <= $4 \
                 AND (lease_until IS NULL OR lease_until <= $5) ORDER BY available_at LIMIT $6 \
                 FOR UPDATE SKIP LOCKED) \
             RETURNING message_id, attempts, enqueued_at",
        )
        .bind(ms(now) + lease.as_millis() as i64)
        .bind(consumer.as_str())
        .bind(consumer.as_str())
        .bind(ms(now))
        .bind(ms(now))
        .bind(max as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let mut out = Vec::with_capacity(leased.len());
        for (id, attempts, enqueued_at) in leased {
            let payload: String = sqlx::query_scalar("SELECT payload FROM outbox WHERE id = $1")
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            let message = MessageId::parse(&id)
                .ok_or_else(|| unavailable(anyhow::anyhow!("bad message id {id}")))?;
            match serde_json::from_str::<Job>(&payload) {
                Ok(job) => out.push(Delivery {
                    message,
                    consumer,
                    job,
                    attempt: attempts as u32,
                    enqueued_at: dt(enqueued_at),
                }),
                // A job this build cannot read (a newer version): park it, loudly.
                Err(e) => {
                    tracing::error!(message = %id, error = %e, "unreadable job parked");
                    sqlx::query("UPDATE jobs SET state = 'dead', last_error = $1 WHERE message_id = $2 AND consumer = $3")
                        .bind(format!("unreadable: {e}"))
                        .bind(&id)
                        .bind(consumer.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
            }
        }
        tx.commit().await.map_err(unavailable)?;
        crate::writes::count_commit();
        Ok(out)
    }

    async fn ack(&self, d: &Delivery, now: OffsetDateTime) -> Result<(), QueueError> {
        sqlx::query("UPDATE jobs SET state = 'done', done_at = $1, lease_until = NULL WHERE message_id = $2 AND consumer = $3")
            .bind(ms(now))
            .bind(d.message.as_str())
            .bind(d.consumer.as_str())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        crate::writes::count_commit();
        Ok(())
    }

    async fn retry(&self, d: &Delivery, at: OffsetDateTime, error: &str) -> Result<(), QueueError> {
        sqlx::query("UPDATE jobs SET available_at = $1, lease_until = NULL, last_error = $2 WHERE message_id = $3 AND consumer = $4 AND state = 'ready'")
            .bind(ms(at))
            .bind(error)
            .bind(d.message.as_str())
            .bind(d.consumer.as_str())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        crate::writes::count_commit();
        Ok(())
    }

    async fn bury(&self, d: &Delivery, error: &str) -> Result<(), QueueError> {
        sqlx::query("UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = $1 WHERE message_id = $2 AND consumer = $3")
            .bind(error)
            .bind(d.message.as_str())
            .bind(d.consumer.as_str())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        crate::writes::count_commit();
        Ok(())
    }

    fn acked_in_store(&self) -> bool {
        true
    }

    async fn backlog(
        &self,
        consumer: Consumer,
        now: OffsetDateTime,
    ) -> Result<(u64, Duration), QueueError> {
        let (n, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(enqueued_at) FROM jobs WHERE consumer = $1 AND state = 'ready'",
        )
        .bind(consumer.as_str())
        .fetch_one(&self.reader)
        .await
        .map_err(unavailable)?;
        let age = oldest.map_or(0, |t| (ms(now) - t).max(0));
        Ok((n as u64, Duration::from_millis(age as u64)))
    }
}
