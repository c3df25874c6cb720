//! What the outbox relay and the downstream workers read on PostgreSQL.

use async_trait::async_trait;
use boxoffice_domain::{EventId, Job, MessageId};
use boxoffice_ports::{OutboxStore, StoreError};

use crate::{corrupt, map_err, PgStore};

#[async_trait]
impl OutboxStore for PgStore {
    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT tickets, revenue FROM event_sales WHERE event_id = $1")
                .bind(event.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(row.map_or((0, 0), |(t, r)| (t as u64, r)))
    }

    async fn unrelayed(&self, limit: usize) -> Result<Vec<(MessageId, Job)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, payload::text FROM outbox WHERE relayed_at IS NULL ORDER BY created_at, id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(id, payload)| {
                Ok((
                    MessageId::parse(&id).ok_or_else(|| corrupt("outbox.id"))?,
                    serde_json::from_str(&payload).map_err(|_| corrupt("outbox.payload"))?,
                ))
            })
            .collect()
    }

    async fn sms_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sms_sent WHERE message_id = $1)")
            .bind(message.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM emails_sent WHERE message_id = $1)")
            .bind(message.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}
