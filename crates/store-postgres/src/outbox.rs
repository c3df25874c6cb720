//! What the outbox relay and the downstream workers read on PostgreSQL.

use async_trait::async_trait;
use boxoffice_domain::{AuditRecord, EventId, Job, MessageId};
use boxoffice_ports::analytics::{SalesCounts, SalesRow};
use boxoffice_ports::audit::{Chained, Checkpoint};
use boxoffice_ports::{OutboxStore, StoreError};
use time::OffsetDateTime;

use crate::{corrupt, map_err, PgStore};

#[async_trait]
impl OutboxStore for PgStore {
    async fn sales_rows(&self, event: &EventId) -> Result<Vec<SalesRow>, StoreError> {
        type Row = (
            String,
            OffsetDateTime,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT tier, minute, tickets, revenue, holds_made, holds_converted, holds_expired, \
             refunds, refunded_amount, tickets_refunded FROM sales_minutes WHERE event_id = $1 \
             ORDER BY minute, tier",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| SalesRow {
                tier: r.0,
                minute: r.1.unix_timestamp(),
                counts: SalesCounts {
                    tickets: r.2,
                    revenue: r.3,
                    holds_made: r.4,
                    holds_converted: r.5,
                    holds_expired: r.6,
                    refunds: r.7,
                    refunded_amount: r.8,
                    tickets_refunded: r.9,
                },
            })
            .collect())
    }

    async fn sales_processed(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sales_messages")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn audit_chain(&self, after: i64, limit: usize) -> Result<Vec<Chained>, StoreError> {
        let rows: Vec<ChainRow> =
            sqlx::query_as(&format!("{CHAINED} WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(after)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.into_iter().map(chained).collect()
    }

    async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE one")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<(i64, String, OffsetDateTime, String, String)> = sqlx::query_as(
            "SELECT seq, hash, at, public_key, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| Checkpoint {
                seq: r.0,
                hash: r.1,
                at: r.2,
                public_key: r.3,
                signature: r.4,
            })
            .collect())
    }

    async fn audit_page(
        &self,
        event: Option<&EventId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Chained>, StoreError> {
        let rows: Vec<ChainRow> = sqlx::query_as(&format!(
            "{CHAINED} WHERE ($1::text IS NULL OR event_id = $1) AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(event.map(|e| e.as_str()))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(chained).collect()
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

const CHAINED: &str =
    "SELECT seq, id, at, actor, role, request_id, ip, action, subject, event_id, \
                       before, after, prev_hash, hash FROM audit_records";

type ChainRow = (
    i64,
    String,
    OffsetDateTime,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn chained(r: ChainRow) -> Result<Chained, StoreError> {
    Ok(Chained {
        seq: r.0,
        record: AuditRecord {
            id: MessageId::parse(&r.1).ok_or_else(|| corrupt("audit_records.id"))?,
            at: r.2,
            actor: r.3,
            role: r.4,
            request_id: r.5,
            ip: r.6,
            action: r.7,
            subject: r.8,
            event_id: r
                .9
                .map(EventId::try_from)
                .transpose()
                .map_err(|_| corrupt("audit_records.event_id"))?,
            before: r.10,
            after: r.11,
        },
        prev_hash: r.12,
        hash: r.13,
    })
}
