//! What the outbox relay and the downstream workers read on SQLite.

use async_trait::async_trait;
use boxoffice_domain::{EventId, Job, MessageId};
use boxoffice_ports::{OutboxStore, StoreError};
use rusqlite::Connection;

use crate::db::{corrupt, OrStore};
use crate::rows;
use crate::SqliteStore;

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                Ok(rows::first(
                    conn,
                    "SELECT tickets, revenue FROM event_sales WHERE event_id = ?",
                    [event],
                    |r| Ok((r.get::<_, i64>(0).db()? as u64, r.get::<_, i64>(1).db()?)),
                )?
                .unwrap_or((0, 0)))
            })
            .await
    }

    async fn unrelayed(
        &self,
        limit: usize,
    ) -> Result<Vec<(MessageId, boxoffice_domain::Job)>, StoreError> {
        self.db.read(move |conn| unrelayed(conn, limit)).await
    }

    async fn sms_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        let message = message.as_str().to_owned();
        self.db
            .read(move |conn| {
                Ok(rows::scalar::<i64>(
                    conn,
                    "SELECT COUNT(*) FROM sms_sent WHERE message_id = ?",
                    [message],
                )?
                .unwrap_or(0)
                    > 0)
            })
            .await
    }

    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        let message = message.as_str().to_owned();
        self.db
            .read(move |conn| {
                Ok(rows::scalar::<i64>(
                    conn,
                    "SELECT COUNT(*) FROM emails_sent WHERE message_id = ?",
                    [message],
                )?
                .unwrap_or(0)
                    > 0)
            })
            .await
    }
}

pub(crate) fn unrelayed(
    conn: &mut Connection,
    limit: usize,
) -> Result<Vec<(MessageId, Job)>, StoreError> {
    rows::all(
        conn,
        "SELECT id, payload FROM outbox WHERE relayed_at IS NULL ORDER BY created_at, id LIMIT ?",
        [limit as i64],
        |r| {
            Ok((
                MessageId::parse(&r.get::<_, String>(0).db()?)
                    .ok_or_else(|| corrupt("outbox.id"))?,
                serde_json::from_str(&r.get::<_, String>(1).db()?)
                    .map_err(|_| corrupt("outbox.payload"))?,
            ))
        },
    )
}
