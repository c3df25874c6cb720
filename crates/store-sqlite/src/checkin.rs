//! Check-in on SQLite: signing keys, tickets as a gate sees them, and scans. The
//! single writer runs each scan's transaction alone, so the conditional update that
//! admits a ticket cannot interleave with another gate's.

use async_trait::async_trait;
use boxoffice_domain::ticket_code::ScanResult;
use boxoffice_domain::{EventId, Ticket, TicketId};
use boxoffice_ports::{
    CheckinStore, FirstScan, NewScan, ScanRecord, StoreError, TicketKey, TicketRecord,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use time::OffsetDateTime;

use crate::db::{corrupt, dt, ms, OrStore};
use crate::rows::{self, id, money, opt_id, text};
use crate::SqliteStore;

const TICKET_COLUMNS: &str = "t.id, t.seat_id, t.tier_id, t.amount, t.currency, t.code, \
     t.order_id, t.event_id, o.customer_id, t.voided_at, t.checked_in_at, t.checked_in_gate";

fn ticket(r: &Row) -> Result<TicketRecord, StoreError> {
    let first_scan = match r.get::<_, Option<i64>>("checked_in_at").db()? {
        Some(at) => Some(FirstScan {
            at: dt(at),
            gate: r
                .get::<_, Option<String>>("checked_in_gate")
                .db()?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(TicketRecord {
        ticket: Ticket {
            id: TicketId::parse(&text(r, "id")?).ok_or_else(|| corrupt("tickets.id"))?,
            seat_id: opt_id(r, "seat_id")?,
            tier_id: id(r, "tier_id")?,
            price: money(r)?,
            code: text(r, "code")?,
        },
        order_id: boxoffice_domain::OrderId::parse(&text(r, "order_id")?)
            .ok_or_else(|| corrupt("tickets.order_id"))?,
        event_id: id(r, "event_id")?,
        customer_id: id(r, "customer_id")?,
        void: r.get::<_, Option<i64>>("voided_at").db()?.is_some(),
        first_scan,
    })
}

fn one_ticket(
    conn: &Connection,
    by: &str,
    value: &str,
) -> Result<Option<TicketRecord>, StoreError> {
    rows::first(
        conn,
        &format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.{by} = ?"
        ),
        [value],
        ticket,
    )
}

fn scan(r: &Row) -> Result<ScanRecord, StoreError> {
    let first_scan = match r.get::<_, Option<i64>>("first_at").db()? {
        Some(at) => Some(FirstScan {
            at: dt(at),
            gate: r
                .get::<_, Option<String>>("first_gate")
                .db()?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(ScanRecord {
        scan_id: text(r, "scan_id")?,
        ticket_id: r
            .get::<_, Option<String>>("ticket_id")
            .db()?
            .map(|t| TicketId::parse(&t).ok_or_else(|| corrupt("checkin_scans.ticket_id")))
            .transpose()?,
        gate: text(r, "gate")?,
        scanned_at: dt(r.get("scanned_at").db()?),
        result: ScanResult::parse(&text(r, "result")?)
            .ok_or_else(|| corrupt("checkin_scans.result"))?,
        first_scan,
    })
}

const SCAN_COLUMNS: &str = "scan_id, ticket_id, gate, scanned_at, result, first_at, first_gate";

#[async_trait]
impl CheckinStore for SqliteStore {
    async fn set_event_rotating_codes(
        &self,
        event: &EventId,
        on: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let event = event.as_str().to_owned();
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached("UPDATE events SET rotating_codes = ?, updated_at = ? WHERE id = ?")
                .db()?
                .execute(params![on, ms(now), event])
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn ticket_keys(&self) -> Result<Vec<TicketKey>, StoreError> {
        self.db
            .read(|conn| {
                rows::all(
                    conn,
                    "SELECT kid, public_key, sealed_seed, created_at FROM ticket_keys ORDER BY kid",
                    [],
                    |r| {
                        Ok(TicketKey {
                            kid: u8::try_from(r.get::<_, i64>("kid").db()?)
                                .map_err(|_| corrupt("ticket_keys.kid"))?,
                            public_key: r.get("public_key").db()?,
                            sealed_seed: text(r, "sealed_seed")?,
                            created_at: dt(r.get("created_at").db()?),
                        })
                    },
                )
            })
            .await
    }

    async fn add_ticket_key(&self, key: &TicketKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "INSERT INTO ticket_keys (kid, public_key, sealed_seed, created_at) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (kid) DO NOTHING",
                )
                .db()?
                .execute(params![
                    i64::from(key.kid),
                    key.public_key,
                    key.sealed_seed,
                    ms(key.created_at)
                ])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn ticket(&self, id: &TicketId) -> Result<Option<TicketRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.db.read(move |conn| one_ticket(conn, "id", &id)).await
    }

    async fn ticket_by_code(&self, code: &str) -> Result<Option<TicketRecord>, StoreError> {
        let code = code.to_owned();
        self.db
            .read(move |conn| one_ticket(conn, "code", &code))
            .await
    }

    async fn event_tickets(&self, event: &EventId) -> Result<Vec<TicketRecord>, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!(
                        "SELECT {TICKET_COLUMNS} FROM tickets t JOIN orders o ON o.id = t.order_id \
                         WHERE t.event_id = ? ORDER BY t.issued_at, t.order_id, t.position"
                    ),
                    [event],
                    ticket,
                )
            })
            .await
    }

    async fn ticket_secret(
        &self,
        ticket: &TicketId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let (ticket, candidate) = (ticket.as_str().to_owned(), candidate.to_owned());
        self.transaction(move |tx| {
            tx.prepare_cached(
                "UPDATE tickets SET rotating_secret = ? WHERE id = ? AND rotating_secret IS NULL",
            )
            .db()?
            .execute(params![candidate, ticket])
            .db()?;
            rows::scalar::<String>(
                tx,
                "SELECT rotating_secret FROM tickets WHERE id = ?",
                [&ticket],
            )?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn record_scan(&self, s: &NewScan) -> Result<ScanRecord, StoreError> {
        let s = s.clone();
        self.transaction(move |tx| {
            let by = s.scanned_by.as_str();
            let earlier = tx
                .prepare_cached(&format!(
                    "SELECT {SCAN_COLUMNS} FROM checkin_scans WHERE scanned_by = ? AND scan_id = ?"
                ))
                .db()?
                .query_row(params![by, s.scan_id], |r| Ok(scan(r)))
                .optional()
                .db()?;
            if let Some(earlier) = earlier {
                return earlier;
            }
            let mut result = s.result;
            let mut first: Option<(i64, String)> = None;
            if let (ScanResult::Ok, Some(ticket)) = (result, &s.ticket_id) {
                let admitted = tx
                    .prepare_cached(
                        "UPDATE tickets SET checked_in_at = ?, checked_in_gate = ? \
                         WHERE id = ? AND checked_in_at IS NULL AND voided_at IS NULL",
                    )
                    .db()?
                    .execute(params![ms(s.scanned_at), s.gate, ticket.as_str()])
                    .db()?;
                if admitted == 0 {
                    let (voided, at, gate) = tx
                        .prepare_cached(
                            "SELECT voided_at, checked_in_at, checked_in_gate FROM tickets WHERE id = ?",
                        )
                        .db()?
                        .query_row([ticket.as_str()], |r| {
                            Ok((
                                r.get::<_, Option<i64>>(0)?,
                                r.get::<_, Option<i64>>(1)?,
                                r.get::<_, Option<String>>(2)?,
                            ))
                        })
                        .optional()
                        .db()?
                        .ok_or(StoreError::NotFound)?;
                    if voided.is_some() {
                        result = ScanResult::Voided;
                    } else {
                        result = ScanResult::AlreadyUsed;
                        first = at.map(|at| (at, gate.unwrap_or_default()));
                    }
                }
            }
            tx.prepare_cached(
                "INSERT INTO checkin_scans (scanned_by, scan_id, event_id, ticket_id, gate, \
                 scanned_at, recorded_at, offline, result, first_at, first_gate) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .db()?
            .execute(params![
                by,
                s.scan_id,
                s.event_id.as_ref().map(|e| e.as_str()),
                s.ticket_id.as_ref().map(|t| t.as_str()),
                s.gate,
                ms(s.scanned_at),
                ms(s.recorded_at),
                s.offline,
                result.as_str(),
                first.as_ref().map(|f| f.0),
                first.as_ref().map(|f| f.1.as_str()),
            ])
            .db()?;
            Ok(ScanRecord {
                scan_id: s.scan_id.clone(),
                ticket_id: s.ticket_id.clone(),
                gate: s.gate.clone(),
                scanned_at: dt(ms(s.scanned_at)),
                result,
                first_scan: first.map(|(at, gate)| FirstScan { at: dt(at), gate }),
            })
        })
        .await
    }
}
