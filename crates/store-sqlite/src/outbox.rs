//! What the outbox relay and the downstream workers read on SQLite.

use async_trait::async_trait;
use boxoffice_domain::{AuditRecord, EventId, Job, MessageId};
use boxoffice_ports::analytics::{SalesCounts, SalesRow};
use boxoffice_ports::audit::{Chained, Checkpoint};
use boxoffice_ports::{OutboxStore, StoreError};
use rusqlite::{params, Connection};

use crate::db::{corrupt, dt, OrStore};
use crate::rows;
use crate::SqliteStore;

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn sales_rows(&self, event: &EventId) -> Result<Vec<SalesRow>, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    "SELECT tier, minute, tickets, revenue, holds_made, holds_converted, holds_expired, \
                     refunds, refunded_amount, tickets_refunded FROM sales_minutes WHERE event_id = ? \
                     ORDER BY minute, tier",
                    [event],
                    |r| {
                        Ok(SalesRow {
                            tier: r.get(0).db()?,
                            minute: r.get(1).db()?,
                            counts: SalesCounts {
                                tickets: r.get(2).db()?,
                                revenue: r.get(3).db()?,
                                holds_made: r.get(4).db()?,
                                holds_converted: r.get(5).db()?,
                                holds_expired: r.get(6).db()?,
                                refunds: r.get(7).db()?,
                                refunded_amount: r.get(8).db()?,
                                tickets_refunded: r.get(9).db()?,
                            },
                        })
                    },
                )
            })
            .await
    }

    async fn sales_processed(&self) -> Result<u64, StoreError> {
        self.db
            .read(|conn| {
                Ok(
                    rows::scalar::<i64>(conn, "SELECT COUNT(*) FROM sales_messages", [])?
                        .unwrap_or(0) as u64,
                )
            })
            .await
    }

    async fn audit_chain(&self, after: i64, limit: usize) -> Result<Vec<Chained>, StoreError> {
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!("{CHAINED} WHERE seq > ? ORDER BY seq LIMIT ?"),
                    params![after, limit as i64],
                    chained,
                )
            })
            .await
    }

    async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        self.db
            .read(|conn| {
                rows::first(
                    conn,
                    "SELECT seq, hash FROM audit_head WHERE one = 1",
                    [],
                    |r| Ok((r.get(0).db()?, r.get(1).db()?)),
                )?
                .ok_or_else(|| corrupt("audit_head"))
            })
            .await
    }

    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.db
            .read(|conn| {
                rows::all(
                    conn,
                    "SELECT seq, hash, at, public_key, signature FROM audit_checkpoints ORDER BY seq",
                    [],
                    |r| {
                        Ok(Checkpoint {
                            seq: r.get(0).db()?,
                            hash: r.get(1).db()?,
                            at: dt(r.get(2).db()?),
                            public_key: r.get(3).db()?,
                            signature: r.get(4).db()?,
                        })
                    },
                )
            })
            .await
    }

    async fn audit_page(
        &self,
        event: Option<&EventId>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Chained>, StoreError> {
        let event = event.map(|e| e.as_str().to_owned());
        let before = before.unwrap_or(i64::MAX);
        self.db
            .read(move |conn| match event {
                Some(e) => rows::all(
                    conn,
                    &format!("{CHAINED} WHERE event_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"),
                    params![e, before, limit as i64],
                    chained,
                ),
                None => rows::all(
                    conn,
                    &format!("{CHAINED} WHERE seq < ? ORDER BY seq DESC LIMIT ?"),
                    params![before, limit as i64],
                    chained,
                ),
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

const CHAINED: &str =
    "SELECT seq, id, at, actor, role, request_id, ip, action, subject, event_id, \
                       before, after, prev_hash, hash FROM audit_records";

/// A row of [`CHAINED`]. A row altered into nonsense (an id that does not parse)
/// is still read, as it is, for the verifier to name: only its id is replaced by
/// a placeholder that cannot hash like the original.
fn chained(r: &rusqlite::Row) -> Result<Chained, StoreError> {
    let id: String = r.get(1).db()?;
    let event: Option<String> = r.get(9).db()?;
    Ok(Chained {
        seq: r.get(0).db()?,
        record: AuditRecord {
            id: MessageId::parse(&id).ok_or_else(|| corrupt("audit_records.id"))?,
            at: dt(r.get(2).db()?),
            actor: r.get(3).db()?,
            role: r.get(4).db()?,
            request_id: r.get(5).db()?,
            ip: r.get(6).db()?,
            action: r.get(7).db()?,
            subject: r.get(8).db()?,
            event_id: event
                .map(EventId::try_from)
                .transpose()
                .map_err(|_| corrupt("audit_records.event_id"))?,
            before: r.get(10).db()?,
            after: r.get(11).db()?,
        },
        prev_hash: r.get(12).db()?,
        hash: r.get(13).db()?,
    })
}
