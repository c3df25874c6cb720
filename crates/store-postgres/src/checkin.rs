//! Check-in on PostgreSQL: signing keys, tickets as a gate sees them, and scans.
//! A scan is one transaction: its row first (`ON CONFLICT DO NOTHING` on the
//! scanner's scan id: a repeat, even one sent at the same instant, waits for the
//! first and reads its answer), then the conditional update that admits the ticket
//! (see migration 0110 for why two gates cannot both win it).

use async_trait::async_trait;
use boxoffice_domain::ticket_code::ScanResult;
use boxoffice_domain::{EventId, Money, OrderId, Ticket, TicketId};
use boxoffice_ports::{
    CheckinStore, FirstScan, NewScan, ScanRecord, StoreError, TicketKey, TicketRecord,
};
use time::OffsetDateTime;

use crate::writes::count_commit;
use crate::{corrupt, map_err, ts, PgStore};

const TICKET_COLUMNS: &str = "t.id, t.seat_id, t.tier_id, t.amount, t.currency, t.code, \
     t.order_id, t.event_id, o.customer_id, t.voided_at, t.checked_in_at, t.checked_in_gate";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    seat_id: Option<String>,
    tier_id: String,
    amount: i64,
    currency: String,
    code: String,
    order_id: String,
    event_id: String,
    customer_id: String,
    voided_at: Option<OffsetDateTime>,
    checked_in_at: Option<OffsetDateTime>,
    checked_in_gate: Option<String>,
}

fn parsed<T: TryFrom<String>>(s: String, what: &str) -> Result<T, StoreError> {
    T::try_from(s).map_err(|_| corrupt(what))
}

impl TryFrom<Row> for TicketRecord {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(TicketRecord {
            ticket: Ticket {
                id: TicketId::parse(&r.id).ok_or_else(|| corrupt("tickets.id"))?,
                seat_id: r
                    .seat_id
                    .map(|s| parsed(s, "tickets.seat_id"))
                    .transpose()?,
                tier_id: parsed(r.tier_id, "tickets.tier_id")?,
                price: Money::new(r.amount, parsed(r.currency, "tickets.currency")?),
                code: r.code,
            },
            order_id: OrderId::parse(&r.order_id).ok_or_else(|| corrupt("tickets.order_id"))?,
            event_id: parsed(r.event_id, "tickets.event_id")?,
            customer_id: parsed(r.customer_id, "orders.customer_id")?,
            void: r.voided_at.is_some(),
            first_scan: r.checked_in_at.map(|at| FirstScan {
                at,
                gate: r.checked_in_gate.unwrap_or_default(),
            }),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ScanRow {
    scan_id: String,
    ticket_id: Option<String>,
    gate: String,
    scanned_at: OffsetDateTime,
    result: String,
    first_at: Option<OffsetDateTime>,
    first_gate: Option<String>,
}

impl TryFrom<ScanRow> for ScanRecord {
    type Error = StoreError;
    fn try_from(r: ScanRow) -> Result<Self, StoreError> {
        Ok(ScanRecord {
            scan_id: r.scan_id,
            ticket_id: r
                .ticket_id
                .map(|t| TicketId::parse(&t).ok_or_else(|| corrupt("checkin_scans.ticket_id")))
                .transpose()?,
            gate: r.gate,
            scanned_at: r.scanned_at,
            result: ScanResult::parse(&r.result).ok_or_else(|| corrupt("checkin_scans.result"))?,
            first_scan: r.first_at.map(|at| FirstScan {
                at,
                gate: r.first_gate.unwrap_or_default(),
            }),
        })
    }
}

impl PgStore {
    async fn one_ticket(&self, by: &str, value: &str) -> Result<Option<TicketRecord>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.{by} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(TryInto::try_into).transpose()
    }
}

#[async_trait]
impl CheckinStore for PgStore {
    async fn set_event_rotating_codes(
        &self,
        event: &EventId,
        on: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE events SET rotating_codes = $1, updated_at = $2 WHERE id = $3")
                .bind(on)
                .bind(ts(now))
                .bind(event.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        count_commit();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn ticket_keys(&self) -> Result<Vec<TicketKey>, StoreError> {
        let rows: Vec<(i16, Vec<u8>, String, OffsetDateTime)> = sqlx::query_as(
            "SELECT kid, public_key, sealed_seed, created_at FROM ticket_keys ORDER BY kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(kid, public_key, sealed_seed, created_at)| {
                Ok(TicketKey {
                    kid: u8::try_from(kid).map_err(|_| corrupt("ticket_keys.kid"))?,
                    public_key,
                    sealed_seed,
                    created_at,
                })
            })
            .collect()
    }

    async fn add_ticket_key(&self, key: &TicketKey) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO ticket_keys (kid, public_key, sealed_seed, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(i16::from(key.kid))
        .bind(&key.public_key)
        .bind(&key.sealed_seed)
        .bind(ts(key.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(done.rows_affected() == 1)
    }

    async fn ticket(&self, id: &TicketId) -> Result<Option<TicketRecord>, StoreError> {
        self.one_ticket("id", id.as_str()).await
    }

    async fn ticket_by_code(&self, code: &str) -> Result<Option<TicketRecord>, StoreError> {
        self.one_ticket("code", code).await
    }

    async fn event_tickets(&self, event: &EventId) -> Result<Vec<TicketRecord>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t JOIN orders o ON o.id = t.order_id \
             WHERE t.event_id = $1 ORDER BY t.issued_at, t.order_id, t.position"
        ))
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn ticket_secret(
        &self,
        ticket: &TicketId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        // One statement: set it if unset; the row's value either way.
        let kept: Option<String> = sqlx::query_scalar(
            "WITH set AS (UPDATE tickets SET rotating_secret = $2 \
                          WHERE id = $1 AND rotating_secret IS NULL RETURNING rotating_secret) \
             SELECT rotating_secret FROM set \
             UNION ALL SELECT rotating_secret FROM tickets WHERE id = $1 AND rotating_secret IS NOT NULL \
             LIMIT 1",
        )
        .bind(ticket.as_str())
        .bind(candidate)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        if let Some(kept) = kept {
            return Ok(kept);
        }
        // A concurrent first ask set it after this statement's snapshot was taken
        // (its UPDATE waited for that one and then matched nothing): read it now.
        let kept: Option<Option<String>> =
            sqlx::query_scalar("SELECT rotating_secret FROM tickets WHERE id = $1")
                .bind(ticket.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        kept.flatten().ok_or(StoreError::NotFound)
    }

    async fn record_scan(&self, s: &NewScan) -> Result<ScanRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let inserted = sqlx::query(
            "INSERT INTO checkin_scans (scanned_by, scan_id, event_id, ticket_id, gate, \
             scanned_at, recorded_at, offline, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (scanned_by, scan_id) DO NOTHING",
        )
        .bind(s.scanned_by.as_str())
        .bind(&s.scan_id)
        .bind(s.event_id.as_ref().map(|e| e.as_str()))
        .bind(s.ticket_id.as_ref().map(|t| t.as_str()))
        .bind(&s.gate)
        .bind(ts(s.scanned_at))
        .bind(ts(s.recorded_at))
        .bind(s.offline)
        .bind(s.result.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if inserted.rows_affected() == 0 {
            let earlier: ScanRow = sqlx::query_as(
                "SELECT scan_id, ticket_id, gate, scanned_at, result, first_at, first_gate \
                 FROM checkin_scans WHERE scanned_by = $1 AND scan_id = $2",
            )
            .bind(s.scanned_by.as_str())
            .bind(&s.scan_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            return earlier.try_into();
        }
        let mut result = s.result;
        let mut first_scan = None;
        if let (ScanResult::Ok, Some(ticket)) = (result, &s.ticket_id) {
            let admitted = sqlx::query(
                "UPDATE tickets SET checked_in_at = $1, checked_in_gate = $2 \
                 WHERE id = $3 AND checked_in_at IS NULL AND voided_at IS NULL",
            )
            .bind(ts(s.scanned_at))
            .bind(&s.gate)
            .bind(ticket.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if admitted.rows_affected() == 0 {
                let (voided, at, gate): (
                    Option<OffsetDateTime>,
                    Option<OffsetDateTime>,
                    Option<String>,
                ) = sqlx::query_as(
                    "SELECT voided_at, checked_in_at, checked_in_gate FROM tickets WHERE id = $1",
                )
                .bind(ticket.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
                if voided.is_some() {
                    result = ScanResult::Voided;
                } else {
                    result = ScanResult::AlreadyUsed;
                    first_scan = at.map(|at| FirstScan {
                        at,
                        gate: gate.unwrap_or_default(),
                    });
                }
                sqlx::query(
                    "UPDATE checkin_scans SET result = $3, first_at = $4, first_gate = $5 \
                     WHERE scanned_by = $1 AND scan_id = $2",
                )
                .bind(s.scanned_by.as_str())
                .bind(&s.scan_id)
                .bind(result.as_str())
                .bind(first_scan.as_ref().map(|f| f.at))
                .bind(first_scan.as_ref().map(|f| f.gate.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        tx.commit().await.map_err(map_err)?;
        count_commit();
        Ok(ScanRecord {
            scan_id: s.scan_id.clone(),
            ticket_id: s.ticket_id.clone(),
            gate: s.gate.clone(),
            scanned_at: ts(s.scanned_at),
            result,
            first_scan,
        })
    }
}
