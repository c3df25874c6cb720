//! Every state transition, group-committed: [`Store::write`] applies a batch of
//! [`Write`]s in one transaction on the writer thread.
//!
//! The batch is first tried whole, with no savepoints (the common case: nothing is
//! refused). If any write fails, the transaction is rolled back and the batch runs
//! again with a savepoint per write, so the refused one fails alone and leaves
//! nothing of itself behind. A job's ack ([`Ack`]) is written in the same
//! transaction as the outcome it acknowledges. Statements are prepared once per
//! connection (rusqlite's statement cache), so a batch is a run of bound executions.
//!
//! [`Store::write`]: boxoffice_ports::Store::write

use boxoffice_domain::{
    Consumer, Currency, EventId, Hold, HoldSelection, HoldStatus, Job, MessageId, Money, OrderId,
    OrderStatus, RefundId, Ticket,
};
use boxoffice_ports::{
    Ack, CheckoutOutcome, CheckoutRecord, FailOutcome, PaidOutcome, RefundOutcome, ReleaseOutcome,
    StoreError, Write, Written,
};
use rusqlite::{params, Connection, TransactionBehavior};
use time::OffsetDateTime;

use crate::db::{corrupt, count_commit, dt, ms, OrStore};
use crate::rows::{self, ORDER_COLUMNS};
use crate::SqliteStore;

impl SqliteStore {
    pub(crate) async fn write_impl(
        &self,
        batch: &[Write],
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let batch = batch.to_vec();
        self.db.write(move |conn| write_batch(conn, &batch)).await
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &[Write],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let first_error = {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let mut out = Vec::with_capacity(batch.len());
        let mut refused = None;
        for w in batch {
            match apply(&tx, w) {
                Ok(written) => out.push(Ok(written)),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        match refused {
            None => {
                tx.commit().db()?;
                count_commit();
                return Ok(out);
            }
            // Dropping the transaction rolls it back.
            Some(e) => e,
        }
    };
    if batch.len() == 1 {
        return Ok(vec![Err(first_error)]);
    }
    // Write by write, each behind a savepoint: the refused ones fail alone.
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let mut out = Vec::with_capacity(batch.len());
    for w in batch {
        let sp = tx.savepoint().db()?;
        match apply(&sp, w) {
            Ok(written) => {
                sp.commit().db()?;
                out.push(Ok(written));
            }
            // Dropping the savepoint rolls it back.
            Err(e) => out.push(Err(e)),
        }
    }
    tx.commit().db()?;
    count_commit();
    Ok(out)
}

/// Executes one cached statement.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql).db()?.execute(params).db()
}

fn apply(conn: &Connection, w: &Write) -> Result<Written, StoreError> {
    match w {
        Write::Hold(h) => insert_hold(conn, h).map(|()| Written::Done),
        Write::Release { hold, now } => release(conn, hold.as_str(), *now).map(Written::Released),
        Write::ExpireHolds { now } => exec(
            conn,
            "UPDATE holds SET status = 'expired', updated_at = ?1 WHERE status = 'active' AND expires_at <= ?1",
            [ms(*now)],
        )
        .map(|n| Written::Expired(n as u64)),
        Write::Checkout { rec, now } => checkout(conn, rec, *now).map(Written::Checkout),
        Write::Paid {
            order,
            charge_id,
            tickets,
            message,
            now,
            ack,
        } => {
            let paid = complete_payment(conn, order, charge_id, tickets, message, *now)?;
            // An order that ended otherwise leaves the job to the caller, which owes
            // the buyer a refund before the job is done.
            if matches!(
                paid,
                PaidOutcome::Paid | PaidOutcome::AlreadyFinal(OrderStatus::Paid)
            ) {
                acknowledge(conn, ack.as_ref(), *now)?;
            }
            Ok(Written::Paid(paid))
        }
        Write::Failed {
            order,
            code,
            restore_hold,
            message,
            now,
            ack,
        } => {
            let failed = fail_payment(conn, order, code, *restore_hold, message, *now)?;
            acknowledge(conn, ack.as_ref(), *now)?;
            Ok(Written::Failed(failed))
        }
        Write::PaymentUnknown {
            order,
            hold_until,
            now,
            ack,
        } => {
            let marked = exec(
                conn,
                "UPDATE orders SET status = 'payment_unknown', updated_at = ? WHERE id = ? AND status IN ('pending_payment', 'payment_unknown')",
                params![ms(*now), order.as_str()],
            )? == 1;
            if let (true, Some(until)) = (marked, hold_until) {
                exec(
                    conn,
                    "UPDATE holds SET expires_at = MAX(expires_at, ?1), updated_at = ?2 \
                     WHERE id = (SELECT hold_id FROM orders WHERE id = ?3) AND status = 'converted' AND sold_at IS NULL",
                    params![ms(*until), ms(*now), order.as_str()],
                )?;
            }
            acknowledge(conn, ack.as_ref(), *now)?;
            Ok(Written::Marked(marked))
        }
        Write::Refund {
            refund,
            order,
            amount,
            idempotency,
            message,
            now,
        } => {
            // A key used before answers what it answered (the single writer makes
            // the look-up and the refund one decision).
            if let Some(i) = idempotency {
                if let Some(prev) =
                    crate::sales::idempotent_in(conn, &i.user_id, &i.route, &i.key)?
                {
                    return Ok(Written::Refund(RefundOutcome::Replay(prev)));
                }
            }
            let out = refund_order(conn, refund, order, *amount, message, *now)?;
            if let (Some(i), RefundOutcome::Refunded { .. }) = (idempotency, &out) {
                exec(
                    conn,
                    "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, answer, order_id, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    params![
                        i.user_id.as_str(),
                        i.route,
                        i.key,
                        i.fingerprint,
                        i.answer.kind(),
                        i.answer.order_id().map(|o| o.as_str()),
                        ms(*now)
                    ],
                )?;
            }
            Ok(Written::Refund(out))
        }
        Write::CancelEvent {
            event,
            message,
            now,
        } => cancel_event(conn, event, message, *now).map(Written::Marked),
        Write::WaitlistOffer {
            entry,
            hold,
            expires_at,
            message,
            now,
        } => {
            let offered = exec(
                conn,
                "UPDATE waitlist SET state = 'offered', offer_expires_at = ?1, claim_until = NULL, updated_at = ?2 \
                 WHERE id = ?3 AND state = 'claimed' AND hold_id = ?4",
                params![ms(*expires_at), ms(*now), entry.as_str(), hold.as_str()],
            )? == 1;
            if offered {
                let job = Job::WaitlistOffered {
                    entry_id: entry.clone(),
                    hold_id: hold.clone(),
                };
                enqueue(conn, message, &job, *now)?;
            }
            Ok(Written::Marked(offered))
        }
        Write::RefundSettled { refund, now, ack } => {
            let fresh = exec(
                conn,
                "UPDATE refunds SET settled_at = ? WHERE id = ? AND settled_at IS NULL",
                params![ms(*now), refund.as_str()],
            )?;
            acknowledge(conn, ack.as_ref(), *now)?;
            Ok(Written::Marked(fresh == 1))
        }
        Write::Audit { record, ack } => {
            append_audit(conn, record)?;
            acknowledge(conn, ack.as_ref(), record.at)?;
            Ok(Written::Done)
        }
        Write::Audited { write, record } => {
            let written = apply(conn, write)?;
            if Write::audit_due(write, &written) {
                let job = Job::AuditRecorded {
                    record: record.clone(),
                };
                enqueue(conn, &record.id, &job, record.at)?;
            }
            Ok(written)
        }
        Write::AuditOnly(record) => {
            let job = Job::AuditRecorded {
                record: record.clone(),
            };
            enqueue(conn, &record.id, &job, record.at)?;
            Ok(Written::Done)
        }
        Write::AuditCheckpoint(c) => {
            exec(
                conn,
                "INSERT INTO audit_checkpoints (seq, hash, at, public_key, signature) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
                params![c.seq, c.hash, ms(c.at), c.public_key, c.signature],
            )?;
            Ok(Written::Done)
        }
        Write::SalesFacts {
            message,
            facts,
            ack,
        } => {
            sales_facts(conn, message, facts)?;
            acknowledge(conn, ack.as_ref(), OffsetDateTime::now_utc())?;
            Ok(Written::Done)
        }
        Write::EmailSent { message, now, ack } => {
            let fresh = exec(
                conn,
                "INSERT INTO emails_sent (message_id, sent_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                params![message.as_str(), ms(*now)],
            )?;
            acknowledge(conn, ack.as_ref(), *now)?;
            Ok(Written::Marked(fresh == 1))
        }
        Write::SmsSent { message, now, ack } => {
            let fresh = exec(
                conn,
                "INSERT INTO sms_sent (message_id, sent_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                params![message.as_str(), ms(*now)],
            )?;
            acknowledge(conn, ack.as_ref(), *now)?;
            Ok(Written::Marked(fresh == 1))
        }
        Write::Ack(ack) => {
            acknowledge(conn, Some(ack), OffsetDateTime::now_utc())?;
            Ok(Written::Done)
        }
        Write::Relayed { ids, now } => {
            for id in ids {
                // The broker delivers it from now on: nothing is left to replay.
                exec(
                    conn,
                    "UPDATE outbox SET relayed_at = ?, done = pending WHERE id = ? AND relayed_at IS NULL",
                    params![ms(*now), id.as_str()],
                )?;
            }
            Ok(Written::Done)
        }
    }
}

/// Marks a consumer's part of an outbox message done (or dead), in the caller's
/// transaction: the outbox row's `done` bits are what a restart replays against.
fn acknowledge(
    conn: &Connection,
    ack: Option<&Ack>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let Some(ack) = ack else { return Ok(()) };
    exec(
        conn,
        "UPDATE outbox SET done = done | ? WHERE id = ?",
        params![ack.consumer.bit(), ack.message.as_str()],
    )?;
    if let Some(error) = &ack.dead {
        exec(
            conn,
            "INSERT INTO dead_jobs (message_id, consumer, error, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            params![ack.message.as_str(), ack.consumer.as_str(), error, ms(now)],
        )?;
    }
    Ok(())
}

/// Writes a job to the outbox, with the set of consumers that must handle it.
fn enqueue(
    conn: &Connection,
    message: &MessageId,
    job: &Job,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.into()))?;
    exec(
        conn,
        "INSERT INTO outbox (id, topic, payload, created_at, pending) VALUES (?, ?, ?, ?, ?)",
        params![
            message.as_str(),
            job.topic(),
            payload,
            ms(now),
            Consumer::bits(job.consumers())
        ],
    )?;
    Ok(())
}

fn insert_hold(conn: &Connection, hold: &Hold) -> Result<(), StoreError> {
    let (ga_tier, quantity, seats) = match &hold.selection {
        HoldSelection::Seats(s) => (None, s.len() as u32, s.as_slice()),
        HoldSelection::Ga { tier_id, quantity } => (Some(tier_id.as_str()), *quantity, &[][..]),
    };
    exec(
        conn,
        "INSERT INTO holds (id, event_id, customer_id, status, ga_tier_id, quantity, amount, currency, \
         expires_at, created_at, updated_at, ttl_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?9)",
        params![
            hold.id.as_str(),
            hold.event_id.as_str(),
            hold.customer_id.as_str(),
            hold.status.as_str(),
            ga_tier,
            quantity,
            hold.total.amount,
            hold.total.currency.as_str(),
            ms(hold.expires_at),
            ms(hold.created_at)
        ],
    )?;
    let mut seat = conn
        .prepare_cached("INSERT INTO hold_seats (hold_id, position, seat_id) VALUES (?, ?, ?)")
        .db()?;
    for (i, s) in seats.iter().enumerate() {
        seat.execute(params![hold.id.as_str(), i, s.as_str()])
            .db()?;
    }
    check_customer_limit(conn, hold)
}

/// The per-buyer cap (`events.max_tickets_per_customer`), checked after the hold's
/// insert inside the writer's transaction, which runs alone: the customer's tickets
/// kept by live holds and by converted ones (an order pending or paid, not refunded
/// whole), this hold's included, must not exceed it. Refused: the constraint `customer_limit`.
fn check_customer_limit(conn: &Connection, hold: &Hold) -> Result<(), StoreError> {
    let cap = rows::scalar::<Option<i64>>(
        conn,
        "SELECT max_tickets_per_customer FROM events WHERE id = ?",
        [hold.event_id.as_str()],
    )?
    .flatten();
    let Some(cap) = cap else {
        return Ok(());
    };
    let kept = rows::scalar::<i64>(
        conn,
        "SELECT COALESCE(SUM(quantity), 0) FROM holds \
         WHERE event_id = ?1 AND customer_id = ?2 \
           AND ((status = 'converted' AND NOT EXISTS (SELECT 1 FROM orders o \
                 WHERE o.customer_id = ?2 AND o.hold_id = holds.id AND o.status = 'refunded')) \
                OR (status = 'active' AND expires_at > ?3))",
        params![
            hold.event_id.as_str(),
            hold.customer_id.as_str(),
            ms(hold.created_at)
        ],
    )?
    .unwrap_or(0);
    if kept > cap {
        return Err(StoreError::Conflict {
            constraint: "customer_limit",
        });
    }
    Ok(())
}

fn release(conn: &Connection, id: &str, now: OffsetDateTime) -> Result<ReleaseOutcome, StoreError> {
    let done = exec(
        conn,
        "UPDATE holds SET status = 'released', updated_at = ?1 WHERE id = ?2 AND status = 'active' AND expires_at > ?1",
        params![ms(now), id],
    )?;
    if done == 1 {
        return Ok(ReleaseOutcome::Released);
    }
    let status = rows::scalar::<String>(conn, "SELECT status FROM holds WHERE id = ?", [id])?;
    Ok(match status.as_deref() {
        None => ReleaseOutcome::NotFound,
        Some("released") => ReleaseOutcome::AlreadyReleased,
        Some("converted") => ReleaseOutcome::Converted,
        Some(_) => ReleaseOutcome::Expired,
    })
}

fn checkout(
    conn: &Connection,
    rec: &CheckoutRecord,
    now: OffsetDateTime,
) -> Result<CheckoutOutcome, StoreError> {
    let o = &rec.order;
    let i = &rec.idempotency;
    let fresh = exec(
        conn,
        "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, answer, order_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        params![
            i.user_id.as_str(),
            i.route,
            i.key,
            i.fingerprint,
            i.answer.kind(),
            i.answer.order_id().map(|o| o.as_str()),
            ms(now)
        ],
    )?;
    if fresh == 0 {
        let existing = crate::sales::idempotent_in(conn, &i.user_id, &i.route, &i.key)?
            .ok_or_else(|| corrupt("idempotency key vanished"))?;
        return Ok(CheckoutOutcome::Replay(existing));
    }
    let converted = exec(
        conn,
        "UPDATE holds SET status = 'converted', expires_at = ?1, updated_at = ?2 \
         WHERE id = ?3 AND customer_id = ?4 AND status = 'active' AND expires_at > ?2",
        params![
            ms(rec.payment_deadline),
            ms(now),
            o.hold_id.as_str(),
            o.customer_id.as_str()
        ],
    )?;
    if converted == 0 {
        let (status, expires_at) = rows::first(
            conn,
            "SELECT status, expires_at FROM holds WHERE id = ?",
            [o.hold_id.as_str()],
            |r| Ok((r.get::<_, String>(0).db()?, r.get::<_, i64>(1).db()?)),
        )?
        .ok_or(StoreError::NotFound)?;
        // The idempotency row must not outlive this refusal: a later try with the
        // same key deserves a fresh answer. (The caller's savepoint or transaction
        // is not rolled back for an outcome, so undo it here.)
        exec(
            conn,
            "DELETE FROM idempotency_keys WHERE user_id = ? AND route = ? AND key = ?",
            params![i.user_id.as_str(), i.route, i.key],
        )?;
        return Ok(CheckoutOutcome::HoldNotActive {
            status: HoldStatus::parse(&status).ok_or_else(|| corrupt("holds.status"))?,
            expired: expires_at <= ms(now),
        });
    }
    exec(
        conn,
        &format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        params![
            o.id.as_str(),
            o.customer_id.as_str(),
            o.event_id.as_str(),
            o.hold_id.as_str(),
            o.email,
            o.status.as_str(),
            o.failure_code.as_deref(),
            o.total.amount,
            o.total.currency.as_str(),
            o.payment_token,
            ms(o.created_at),
            ms(o.updated_at),
            o.phone.as_deref()
        ],
    )?;
    let mut item = conn
        .prepare_cached("INSERT INTO order_items (order_id, position, seat_id, tier_id, amount, currency) VALUES (?, ?, ?, ?, ?, ?)")
        .db()?;
    for (n, it) in o.items.iter().enumerate() {
        item.execute(params![
            o.id.as_str(),
            n,
            it.seat_id.as_ref().map(|s| s.as_str()),
            it.tier_id.as_str(),
            it.price.amount,
            it.price.currency.as_str()
        ])
        .db()?;
    }
    enqueue(
        conn,
        &rec.message,
        &Job::PaymentRequested {
            order_id: o.id.clone(),
        },
        now,
    )?;
    Ok(CheckoutOutcome::Created)
}

/// Sells a hold's items under the store's guards: one `sold_seats` row per seat (the
/// primary key refuses a second sale) or GA `sold` moved under its capacity CHECK.
fn sell_items(
    conn: &Connection,
    event_id: &str,
    hold_id: &str,
    ga_tier: Option<&str>,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match ga_tier {
        Some(tier) => exec(
            conn,
            "UPDATE ga_tiers SET sold = sold + ? WHERE id = ?",
            params![quantity, tier],
        )?,
        None => exec(
            conn,
            "INSERT INTO sold_seats (event_id, seat_id, hold_id, sold_at) \
             SELECT ?, seat_id, hold_id, ? FROM hold_seats WHERE hold_id = ?",
            params![event_id, ms(now), hold_id],
        )?,
    };
    Ok(())
}

fn complete_payment(
    conn: &Connection,
    order: &OrderId,
    charge_id: &str,
    tickets: &[Ticket],
    message: &MessageId,
    now: OffsetDateTime,
) -> Result<PaidOutcome, StoreError> {
    let (status, hold, event, amount, currency, ga_tier, quantity) = rows::first(
        conn,
        "SELECT o.status, o.hold_id, o.event_id, o.amount, o.currency, h.ga_tier_id, h.quantity \
         FROM orders o JOIN holds h ON h.id = o.hold_id WHERE o.id = ?",
        [order.as_str()],
        |r| {
            Ok((
                r.get::<_, String>(0).db()?,
                r.get::<_, String>(1).db()?,
                r.get::<_, String>(2).db()?,
                r.get::<_, i64>(3).db()?,
                r.get::<_, String>(4).db()?,
                r.get::<_, Option<String>>(5).db()?,
                r.get::<_, i64>(6).db()?,
            ))
        },
    )?
    .ok_or(StoreError::NotFound)?;
    let status = rows::order_status(&status)?;
    if status.is_final() {
        return Ok(PaidOutcome::AlreadyFinal(status));
    }
    sell_items(conn, &event, &hold, ga_tier.as_deref(), quantity, now)?;
    exec(
        conn,
        "UPDATE holds SET sold_at = ?1, updated_at = ?1 WHERE id = ?2",
        params![ms(now), hold],
    )?;
    exec(
        conn,
        "UPDATE orders SET status = 'paid', failure_code = NULL, updated_at = ? WHERE id = ?",
        params![ms(now), order.as_str()],
    )?;
    exec(
        conn,
        "INSERT INTO payments (order_id, charge_id, amount, currency, created_at) VALUES (?, ?, ?, ?, ?)",
        params![order.as_str(), charge_id, amount, currency, ms(now)],
    )?;
    let mut ticket = conn
        .prepare_cached(
            "INSERT INTO tickets (id, order_id, position, event_id, seat_id, tier_id, amount, currency, code, issued_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .db()?;
    for (n, t) in tickets.iter().enumerate() {
        ticket
            .execute(params![
                t.id.as_str(),
                order.as_str(),
                n,
                event,
                t.seat_id.as_ref().map(|s| s.as_str()),
                t.tier_id.as_str(),
                t.price.amount,
                t.price.currency.as_str(),
                t.code,
                ms(now)
            ])
            .db()?;
    }
    enqueue(
        conn,
        message,
        &Job::OrderPaid {
            order_id: order.clone(),
        },
        now,
    )?;
    Ok(PaidOutcome::Paid)
}

fn fail_payment(
    conn: &Connection,
    order: &OrderId,
    code: &str,
    restore_hold: bool,
    message: &MessageId,
    now: OffsetDateTime,
) -> Result<FailOutcome, StoreError> {
    let (status, hold) = rows::first(
        conn,
        "SELECT status, hold_id FROM orders WHERE id = ?",
        [order.as_str()],
        |r| Ok((r.get::<_, String>(0).db()?, r.get::<_, String>(1).db()?)),
    )?
    .ok_or(StoreError::NotFound)?;
    let status = rows::order_status(&status)?;
    if status.is_final() {
        return Ok(FailOutcome::AlreadyFinal(status));
    }
    exec(
        conn,
        "UPDATE orders SET status = 'failed', failure_code = ?, updated_at = ? WHERE id = ?",
        params![code, ms(now), order.as_str()],
    )?;
    let ttl = rows::scalar::<i64>(
        conn,
        "SELECT COALESCE(ttl_expires_at, expires_at) FROM holds WHERE id = ? AND status = 'converted' AND sold_at IS NULL",
        [&hold],
    )?;
    let mut hold_until = None;
    if let Some(ttl) = ttl {
        let back = restore_hold && ttl > ms(now);
        exec(
            conn,
            "UPDATE holds SET status = ?, expires_at = ?, updated_at = ? WHERE id = ?",
            params![
                if back { "active" } else { "expired" },
                if back { ttl } else { ttl.min(ms(now)) },
                ms(now),
                hold
            ],
        )?;
        hold_until = back.then(|| dt(ttl));
    }
    enqueue(
        conn,
        message,
        &Job::OrderFailed {
            order_id: order.clone(),
            code: code.to_owned(),
        },
        now,
    )?;
    Ok(FailOutcome::Failed { hold_until })
}

/// See [`Write::CancelEvent`]. The triggers of migration 0040 refuse, from this
/// commit on, new holds, orders and payments of the event; the single writer puts
/// every write either before the cancellation or after it.
fn cancel_event(
    conn: &Connection,
    event: &EventId,
    message: &MessageId,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = exec(
        conn,
        "UPDATE events SET cancelled_at = ?1, updated_at = ?1 WHERE id = ?2 AND cancelled_at IS NULL",
        params![ms(now), event.as_str()],
    )?;
    if n == 0 {
        return match rows::scalar::<i64>(
            conn,
            "SELECT 1 FROM events WHERE id = ?",
            [event.as_str()],
        )? {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound),
        };
    }
    enqueue(
        conn,
        message,
        &Job::EventCancelled {
            event_id: event.clone(),
        },
        now,
    )?;
    Ok(true)
}

/// See [`Write::Refund`]. The single writer makes the read and the update one
/// decision: two refunds of one order never both take what is left.
fn refund_order(
    conn: &Connection,
    refund: &RefundId,
    order: &OrderId,
    amount: Option<i64>,
    message: &MessageId,
    now: OffsetDateTime,
) -> Result<RefundOutcome, StoreError> {
    let (status, total, refunded, currency, hold, event, ga_tier, quantity, charge) = rows::first(
        conn,
        "SELECT o.status, o.amount, o.refunded_amount, o.currency, o.hold_id, o.event_id, \
                h.ga_tier_id, h.quantity, p.charge_id \
         FROM orders o JOIN holds h ON h.id = o.hold_id LEFT JOIN payments p ON p.order_id = o.id \
         WHERE o.id = ?",
        [order.as_str()],
        |r| {
            Ok((
                r.get::<_, String>(0).db()?,
                r.get::<_, i64>(1).db()?,
                r.get::<_, i64>(2).db()?,
                r.get::<_, String>(3).db()?,
                r.get::<_, String>(4).db()?,
                r.get::<_, String>(5).db()?,
                r.get::<_, Option<String>>(6).db()?,
                r.get::<_, i64>(7).db()?,
                r.get::<_, Option<String>>(8).db()?,
            ))
        },
    )?
    .ok_or(StoreError::NotFound)?;
    let currency = Currency::try_from(currency.as_str()).map_err(|_| corrupt("orders.currency"))?;
    match rows::order_status(&status)? {
        OrderStatus::Paid => {}
        OrderStatus::Refunded => return Ok(RefundOutcome::NothingLeft),
        other => return Ok(RefundOutcome::NotPaid(other)),
    }
    let remaining = total - refunded;
    let amount = amount.unwrap_or(remaining);
    if amount > remaining {
        return Ok(RefundOutcome::TooMuch {
            remaining: Money::new(remaining, currency),
        });
    }
    if amount <= 0 {
        // A free order (or nothing left): nothing moves at the gateway.
        return Ok(RefundOutcome::NothingLeft);
    }
    let charge = charge.ok_or_else(|| corrupt("a paid order without its payment"))?;
    let whole = amount == remaining;
    exec(
        conn,
        "UPDATE orders SET refunded_amount = refunded_amount + ?1, \
             status = CASE WHEN ?2 THEN 'refunded' ELSE status END, updated_at = ?3 WHERE id = ?4",
        params![amount, whole, ms(now), order.as_str()],
    )?;
    exec(
        conn,
        "INSERT INTO refunds (id, order_id, charge_id, amount, whole, currency, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![refund.as_str(), order.as_str(), charge, amount, whole, currency.as_str(), ms(now)],
    )?;
    if whole {
        // Sold no more: the seats (or GA places) are on sale again, the tickets void.
        match ga_tier {
            Some(tier) => exec(
                conn,
                "UPDATE ga_tiers SET sold = sold - ? WHERE id = ?",
                params![quantity, tier],
            )?,
            None => exec(
                conn,
                "DELETE FROM sold_seats WHERE event_id = ? AND hold_id = ?",
                params![event, hold],
            )?,
        };
        exec(
            conn,
            "UPDATE tickets SET voided_at = ? WHERE order_id = ? AND voided_at IS NULL",
            params![ms(now), order.as_str()],
        )?;
    }
    enqueue(
        conn,
        message,
        &Job::OrderRefunded {
            order_id: order.clone(),
            refund_id: refund.clone(),
        },
        now,
    )?;
    Ok(RefundOutcome::Refunded {
        amount: Money::new(amount, currency),
        whole,
    })
}

/// Appends `record` to the hash chain after the head, once per record id (the
/// writer runs alone: reading the head and moving it is one decision).
fn append_audit(
    conn: &Connection,
    record: &boxoffice_domain::AuditRecord,
) -> Result<(), StoreError> {
    let seen = rows::scalar::<i64>(
        conn,
        "SELECT seq FROM audit_records WHERE id = ?",
        [record.id.as_str()],
    )?;
    if seen.is_some() {
        return Ok(());
    }
    let (seq, prev) = rows::first(
        conn,
        "SELECT seq, hash FROM audit_head WHERE one = 1",
        [],
        |r| Ok((r.get::<_, i64>(0).db()?, r.get::<_, String>(1).db()?)),
    )?
    .ok_or_else(|| corrupt("audit_head"))?;
    let rec = record.clone().truncate_time();
    let hash = boxoffice_ports::audit::chain_hash(&prev, &rec);
    exec(
        conn,
        "INSERT INTO audit_records (seq, id, at, actor, role, request_id, ip, action, subject, event_id, \
         before, after, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            seq + 1,
            rec.id.as_str(),
            ms(rec.at),
            rec.actor,
            rec.role,
            rec.request_id,
            rec.ip,
            rec.action,
            rec.subject,
            rec.event_id.as_ref().map(|e| e.as_str()),
            rec.before,
            rec.after,
            prev,
            hash
        ],
    )?;
    exec(
        conn,
        "UPDATE audit_head SET seq = ?, hash = ? WHERE one = 1",
        params![seq + 1, hash],
    )?;
    Ok(())
}

/// Adds a message's facts to the read model, unless the message was counted.
fn sales_facts(
    conn: &Connection,
    message: &MessageId,
    facts: &[boxoffice_ports::analytics::SalesFact],
) -> Result<(), StoreError> {
    let first = exec(
        conn,
        "INSERT INTO sales_messages (message_id) VALUES (?) ON CONFLICT DO NOTHING",
        [message.as_str()],
    )?;
    if first == 0 {
        return Ok(());
    }
    for f in facts {
        let Some(event) = &f.event else { continue };
        let c = &f.counts;
        exec(
            conn,
            "INSERT INTO sales_minutes (event_id, tier, minute, tickets, revenue, holds_made, holds_converted, \
             holds_expired, refunds, refunded_amount, tickets_refunded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (event_id, tier, minute) DO UPDATE SET tickets = tickets + excluded.tickets, \
             revenue = revenue + excluded.revenue, holds_made = holds_made + excluded.holds_made, \
             holds_converted = holds_converted + excluded.holds_converted, \
             holds_expired = holds_expired + excluded.holds_expired, refunds = refunds + excluded.refunds, \
             refunded_amount = refunded_amount + excluded.refunded_amount, \
             tickets_refunded = tickets_refunded + excluded.tickets_refunded",
            rusqlite::params_from_iter(
                [
                    rusqlite::types::Value::from(event.as_str().to_owned()),
                    f.tier.clone().into(),
                    f.minute.into(),
                ]
                .into_iter()
                .chain(c.values().map(rusqlite::types::Value::from)),
            ),
        )?;
    }
    Ok(())
}
