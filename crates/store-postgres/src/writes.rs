//! Every state transition, group-committed: [`Store::write`] applies a batch of
//! [`Write`]s in one transaction (each node has one writer task; nodes commit
//! side by side, and row locks order them).
//!
//! The batch is first tried whole, with no savepoints (the common case: nothing is
//! refused, and consecutive holds go in multi-row inserts). If any write fails, the
//! transaction is rolled back and the batch runs again with a savepoint per write, so
//! the refused one fails alone and leaves nothing of itself behind; a write that meets
//! a deadlock with another node's batch is retried behind its savepoint. A job's ack
//! ([`Ack`]) is written in the same transaction as the outcome it acknowledges: the
//! `jobs` row is done (or dead) exactly when the outcome is recorded.
//!
//! [`Store::write`]: boxoffice_ports::Store::write

use boxoffice_domain::{
    EventId, Hold, HoldSelection, HoldStatus, Job, MessageId, Money, OrderId, OrderStatus, Ticket,
};
use boxoffice_ports::{
    Ack, CheckoutOutcome, CheckoutRecord, FailOutcome, PaidOutcome, ReleaseOutcome, StoreError,
    Write, Written,
};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::{corrupt, dt, map_err, ms, PgStore, INSERT_CHUNK};

/// Counts a committed write transaction (`boxoffice_store_commits_total`).
pub(crate) fn count_commit() {
    metrics::counter!("boxoffice_store_commits_total", "store" => "postgres").increment(1);
}

impl PgStore {
    pub(crate) async fn write_impl(
        &self,
        batch: &[Write],
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        let mut tx = conn.begin().await.map_err(map_err)?;
        let mut out = Vec::with_capacity(batch.len());
        let mut refused = None;
        let mut i = 0;
        while i < batch.len() {
            // Consecutive holds: one multi-row insert.
            let run = batch[i..]
                .iter()
                .take_while(|w| matches!(w, Write::Hold(_)))
                .count();
            let step = if run > 0 {
                let holds: Vec<&Hold> = batch[i..i + run]
                    .iter()
                    .filter_map(|w| match w {
                        Write::Hold(h) => Some(h),
                        _ => None,
                    })
                    .collect();
                insert_holds(&mut tx, &holds).await.map(|()| {
                    out.extend((0..run).map(|_| Ok(Written::Done)));
                    run
                })
            } else {
                apply(&mut tx, &batch[i]).await.map(|w| {
                    out.push(Ok(w));
                    1
                })
            };
            match step {
                Ok(n) => i += n,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let Some(first_error) = refused else {
            tx.commit().await.map_err(map_err)?;
            count_commit();
            return Ok(out);
        };
        tx.rollback().await.map_err(map_err)?;
        if batch.len() == 1 {
            return Ok(vec![Err(first_error)]);
        }
        // Write by write, each behind a savepoint: the refused ones fail alone.
        let mut tx = conn.begin().await.map_err(map_err)?;
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            let mut tries = 0;
            loop {
                tries += 1;
                let mut sp = tx.begin().await.map_err(map_err)?;
                match apply(&mut sp, w).await {
                    Ok(written) => {
                        sp.commit().await.map_err(map_err)?;
                        out.push(Ok(written));
                    }
                    // Another node's batch and this one waited on each other: the
                    // rollback to the savepoint freed this write's locks; again.
                    Err(e) if crate::transient(&e) && tries < 3 => {
                        sp.rollback().await.map_err(map_err)?;
                        continue;
                    }
                    Err(e) => {
                        sp.rollback().await.map_err(map_err)?;
                        out.push(Err(e));
                    }
                }
                break;
            }
        }
        tx.commit().await.map_err(map_err)?;
        count_commit();
        Ok(out)
    }
}

async fn apply(conn: &mut PgConnection, w: &Write) -> Result<Written, StoreError> {
    match w {
        Write::Hold(h) => insert_holds(conn, &[h]).await.map(|()| Written::Done),
        Write::Release { hold, now } => release(conn, hold.as_str(), *now)
            .await
            .map(Written::Released),
        Write::ExpireHolds { now } => {
            let done = sqlx::query(
                "UPDATE holds SET status = 'expired', updated_at = $1 WHERE status = 'active' AND expires_at <= $2",
            )
            .bind(ms(*now))
            .bind(ms(*now))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok(Written::Expired(done.rows_affected()))
        }
        Write::Checkout { rec, now } => checkout(conn, rec, *now).await.map(Written::Checkout),
        Write::Paid {
            order,
            charge_id,
            tickets,
            message,
            now,
            ack,
        } => {
            let paid = complete_payment(conn, order, charge_id, tickets, message, *now).await?;
            // An order that ended otherwise leaves the job to the caller, which owes
            // the buyer a refund before the job is done.
            if matches!(
                paid,
                PaidOutcome::Paid | PaidOutcome::AlreadyFinal(OrderStatus::Paid)
            ) {
                acknowledge(conn, ack.as_ref(), *now).await?;
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
            let failed = fail_payment(conn, order, code, *restore_hold, message, *now).await?;
            acknowledge(conn, ack.as_ref(), *now).await?;
            Ok(Written::Failed(failed))
        }
        Write::PaymentUnknown {
            order,
            hold_until,
            now,
            ack,
        } => {
            let marked = sqlx::query(
                "UPDATE orders SET status = 'payment_unknown', updated_at = $1 WHERE id = $2 AND status IN ('pending_payment', 'payment_unknown')",
            )
            .bind(ms(*now))
            .bind(order.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected()
                == 1;
            if let (true, Some(hold_until)) = (marked, hold_until) {
                sqlx::query(
                    "UPDATE holds SET expires_at = GREATEST(expires_at, $1), updated_at = $2 WHERE id = (SELECT hold_id FROM orders WHERE id = $3) AND status = 'converted' AND sold_at IS NULL",
                )
                .bind(ms(*hold_until))
                .bind(ms(*now))
                .bind(order.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            }
            acknowledge(conn, ack.as_ref(), *now).await?;
            Ok(Written::Marked(marked))
        }
        Write::Audit {
            message,
            action,
            subject,
            detail,
            at,
            ack,
        } => {
            sqlx::query("INSERT INTO audit_log (message_id, at, action, subject, detail) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                .bind(message.as_str())
                .bind(ms(*at))
                .bind(action)
                .bind(subject)
                .bind(detail)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            acknowledge(conn, ack.as_ref(), *at).await?;
            Ok(Written::Done)
        }
        Write::SaleStats {
            message,
            event,
            tickets,
            revenue,
            ack,
        } => {
            sale_stats(conn, message, event, *tickets, *revenue).await?;
            acknowledge(conn, ack.as_ref(), OffsetDateTime::now_utc()).await?;
            Ok(Written::Done)
        }
        Write::EmailSent { message, now, ack } => {
            let done = sqlx::query(
                "INSERT INTO emails_sent (message_id, sent_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(message.as_str())
            .bind(ms(*now))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            acknowledge(conn, ack.as_ref(), *now).await?;
            Ok(Written::Marked(done.rows_affected() == 1))
        }
        Write::Ack(ack) => {
            acknowledge(conn, Some(ack), OffsetDateTime::now_utc()).await?;
            Ok(Written::Done)
        }
        Write::Relayed { ids, now } => {
            let ids: Vec<&str> = ids.iter().map(|m| m.as_str()).collect();
            // The broker delivers them from now on: their store-queue rows are done.
            sqlx::query(
                "UPDATE outbox SET relayed_at = $1 WHERE id = ANY($2) AND relayed_at IS NULL",
            )
            .bind(ms(*now))
            .bind(&ids)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            sqlx::query("UPDATE jobs SET state = 'done', done_at = $1 WHERE message_id = ANY($2) AND state = 'ready'")
                .bind(ms(*now))
                .bind(&ids)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok(Written::Done)
        }
    }
}

/// Marks a consumer's job done (or dead) in the `jobs` table, in the caller's
/// transaction, so it is done exactly when its outcome is recorded.
async fn acknowledge(
    conn: &mut PgConnection,
    ack: Option<&Ack>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let Some(ack) = ack else { return Ok(()) };
    sqlx::query(
        "UPDATE jobs SET state = $1, done_at = $2, lease_until = NULL, last_error = COALESCE($3, last_error) \
         WHERE message_id = $4 AND consumer = $5 AND state = 'ready'",
    )
    .bind(if ack.dead.is_some() { "dead" } else { "done" })
    .bind(ms(now))
    .bind(ack.dead.as_deref())
    .bind(ack.message.as_str())
    .bind(ack.consumer.as_str())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Writes a job to the outbox and fans it out to its consumers' `jobs` rows.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    message: &MessageId,
    job: &Job,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.into()))?;
    let consumers: Vec<&str> = job.consumers().iter().map(|c| c.as_str()).collect();
    sqlx::query(
        "WITH m AS (INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id) \
         INSERT INTO jobs (message_id, consumer, state, available_at, enqueued_at) \
         SELECT m.id, c, 'ready', $4, $4 FROM m, unnest($5::text[]) AS c",
    )
    .bind(message.as_str())
    .bind(job.topic())
    .bind(payload)
    .bind(ms(now))
    .bind(&consumers)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_holds(conn: &mut PgConnection, holds: &[&Hold]) -> Result<(), StoreError> {
    // 12 columns a hold: 500 holds stay far below SQLite's parameter cap.
    for chunk in holds.chunks(500) {
        QueryBuilder::<Postgres>::new(
            "INSERT INTO holds (id, event_id, customer_id, status, ga_tier_id, quantity, amount, currency, \
             expires_at, created_at, updated_at, ttl_expires_at) ",
        )
        .push_values(chunk, |mut b, hold| {
            let (ga_tier, quantity) = match &hold.selection {
                HoldSelection::Seats(s) => (None, s.len() as i64),
                HoldSelection::Ga { tier_id, quantity } => {
                    (Some(tier_id.as_str()), i64::from(*quantity))
                }
            };
            b.push_bind(hold.id.as_str())
                .push_bind(hold.event_id.as_str())
                .push_bind(hold.customer_id.as_str())
                .push_bind(hold.status.as_str())
                .push_bind(ga_tier)
                .push_bind(quantity)
                .push_bind(hold.total.amount)
                .push_bind(hold.total.currency.as_str())
                .push_bind(ms(hold.expires_at))
                .push_bind(ms(hold.created_at))
                .push_bind(ms(hold.created_at))
                .push_bind(ms(hold.expires_at));
        })
        .build()
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    let seats: Vec<(&str, i64, &str)> = holds
        .iter()
        .flat_map(|h| {
            let seats = match &h.selection {
                HoldSelection::Seats(s) => s.as_slice(),
                HoldSelection::Ga { .. } => &[],
            };
            seats
                .iter()
                .enumerate()
                .map(|(i, seat)| (h.id.as_str(), i as i64, seat.as_str()))
        })
        .collect();
    for chunk in seats.chunks(INSERT_CHUNK) {
        QueryBuilder::<Postgres>::new("INSERT INTO hold_seats (hold_id, position, seat_id) ")
            .push_values(chunk, |mut b, (hold, pos, seat)| {
                b.push_bind(*hold).push_bind(*pos).push_bind(*seat);
            })
            .build()
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

async fn release(
    conn: &mut PgConnection,
    id: &str,
    now: OffsetDateTime,
) -> Result<ReleaseOutcome, StoreError> {
    let done = sqlx::query(
        "UPDATE holds SET status = 'released', updated_at = $1 WHERE id = $2 AND status = 'active' AND expires_at > $3",
    )
    .bind(ms(now))
    .bind(id)
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 1 {
        return Ok(ReleaseOutcome::Released);
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT status FROM holds WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(match row.as_ref().map(|(s,)| s.as_str()) {
        None => ReleaseOutcome::NotFound,
        Some("released") => ReleaseOutcome::AlreadyReleased,
        Some("converted") => ReleaseOutcome::Converted,
        Some(_) => ReleaseOutcome::Expired,
    })
}

async fn checkout(
    conn: &mut PgConnection,
    rec: &CheckoutRecord,
    now: OffsetDateTime,
) -> Result<CheckoutOutcome, StoreError> {
    let o = &rec.order;
    let i = &rec.idempotency;
    let fresh = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, status, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(i.user_id.as_str())
    .bind(&i.route)
    .bind(&i.key)
    .bind(&i.fingerprint)
    .bind(i64::from(i.status))
    .bind(&i.body)
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if fresh.rows_affected() == 0 {
        let existing = crate::orders::idempotent_in(conn, &i.user_id, &i.route, &i.key)
            .await?
            .ok_or_else(|| corrupt("idempotency key vanished"))?;
        return Ok(CheckoutOutcome::Replay(existing));
    }
    let converted = sqlx::query(
        "UPDATE holds SET status = 'converted', expires_at = $1, updated_at = $2 \
         WHERE id = $3 AND customer_id = $4 AND status = 'active' AND expires_at > $5",
    )
    .bind(ms(rec.payment_deadline))
    .bind(ms(now))
    .bind(o.hold_id.as_str())
    .bind(o.customer_id.as_str())
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if converted.rows_affected() == 0 {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT status, expires_at FROM holds WHERE id = $1")
                .bind(o.hold_id.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
        let (status, expires_at) = row.ok_or(StoreError::NotFound)?;
        // The idempotency row must not outlive this refusal: a later try with the
        // same key deserves a fresh answer. (The caller's savepoint or transaction
        // is not rolled back for an outcome, so undo it here.)
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3")
            .bind(i.user_id.as_str())
            .bind(&i.route)
            .bind(&i.key)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        return Ok(CheckoutOutcome::HoldNotActive {
            status: HoldStatus::parse(&status).ok_or_else(|| corrupt("holds.status"))?,
            expired: expires_at <= ms(now),
        });
    }
    sqlx::query(&format!(
        "INSERT INTO orders ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        crate::orders::ORDER_COLUMNS
    ))
    .bind(o.id.as_str())
    .bind(o.customer_id.as_str())
    .bind(o.event_id.as_str())
    .bind(o.hold_id.as_str())
    .bind(&o.email)
    .bind(o.status.as_str())
    .bind(o.failure_code.as_deref())
    .bind(o.total.amount)
    .bind(o.total.currency.as_str())
    .bind(&o.payment_token)
    .bind(ms(o.created_at))
    .bind(ms(o.updated_at))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    QueryBuilder::<Postgres>::new(
        "INSERT INTO order_items (order_id, position, seat_id, tier_id, amount, currency) ",
    )
    .push_values(o.items.iter().enumerate(), |mut b, (n, it)| {
        b.push_bind(o.id.as_str())
            .push_bind(n as i64)
            .push_bind(it.seat_id.as_ref().map(|s| s.as_str()))
            .push_bind(it.tier_id.as_str())
            .push_bind(it.price.amount)
            .push_bind(it.price.currency.as_str());
    })
    .build()
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    enqueue(
        conn,
        &rec.message,
        &Job::PaymentRequested {
            order_id: o.id.clone(),
        },
        now,
    )
    .await?;
    Ok(CheckoutOutcome::Created)
}

/// Sells a hold's items under the store's guards: one `sold_seats` row per seat (the
/// primary key refuses a second sale) or GA `sold` moved under its capacity CHECK.
async fn sell_items(
    conn: &mut PgConnection,
    event_id: &str,
    hold_id: &str,
    ga_tier: Option<&str>,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match ga_tier {
        Some(tier) => sqlx::query("UPDATE ga_tiers SET sold = sold + $1 WHERE id = $2")
            .bind(quantity)
            .bind(tier)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?,
        None => sqlx::query(
            "INSERT INTO sold_seats (event_id, seat_id, hold_id, sold_at) \
             SELECT $1, seat_id, hold_id, $2 FROM hold_seats WHERE hold_id = $3",
        )
        .bind(event_id)
        .bind(ms(now))
        .bind(hold_id)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?,
    };
    Ok(())
}

async fn complete_payment(
    conn: &mut PgConnection,
    order: &OrderId,
    charge_id: &str,
    tickets: &[Ticket],
    message: &MessageId,
    now: OffsetDateTime,
) -> Result<PaidOutcome, StoreError> {
    let row: Option<(String, String, String, i64, String)> = sqlx::query_as(
        "SELECT status, hold_id, event_id, amount, currency FROM orders WHERE id = $1 FOR UPDATE",
    )
    .bind(order.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let (status, hold, event, amount, currency) = row.ok_or(StoreError::NotFound)?;
    let status = crate::orders::status_of(&status)?;
    if status.is_final() {
        return Ok(PaidOutcome::AlreadyFinal(status));
    }
    let (ga_tier, quantity): (Option<String>, i64) =
        sqlx::query_as("SELECT ga_tier_id, quantity FROM holds WHERE id = $1")
            .bind(&hold)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
    sell_items(conn, &event, &hold, ga_tier.as_deref(), quantity, now).await?;
    sqlx::query("UPDATE holds SET sold_at = $1, updated_at = $2 WHERE id = $3")
        .bind(ms(now))
        .bind(ms(now))
        .bind(&hold)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "UPDATE orders SET status = 'paid', failure_code = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(ms(now))
    .bind(order.as_str())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    sqlx::query("INSERT INTO payments (order_id, charge_id, amount, currency, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(order.as_str())
        .bind(charge_id)
        .bind(amount)
        .bind(&currency)
        .bind(ms(now))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    if !tickets.is_empty() {
        QueryBuilder::<Postgres>::new(
            "INSERT INTO tickets (id, order_id, position, event_id, seat_id, tier_id, amount, currency, code, issued_at) ",
        )
        .push_values(tickets.iter().enumerate(), |mut b, (n, t)| {
            b.push_bind(t.id.as_str())
                .push_bind(order.as_str())
                .push_bind(n as i64)
                .push_bind(&event)
                .push_bind(t.seat_id.as_ref().map(|s| s.as_str()))
                .push_bind(t.tier_id.as_str())
                .push_bind(t.price.amount)
                .push_bind(t.price.currency.as_str())
                .push_bind(&t.code)
                .push_bind(ms(now));
        })
        .build()
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    enqueue(
        conn,
        message,
        &Job::OrderPaid {
            order_id: order.clone(),
        },
        now,
    )
    .await?;
    Ok(PaidOutcome::Paid)
}

async fn fail_payment(
    conn: &mut PgConnection,
    order: &OrderId,
    code: &str,
    restore_hold: bool,
    message: &MessageId,
    now: OffsetDateTime,
) -> Result<FailOutcome, StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT status, hold_id FROM orders WHERE id = $1 FOR UPDATE")
            .bind(order.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    let (status, hold) = row.ok_or(StoreError::NotFound)?;
    let status = crate::orders::status_of(&status)?;
    if status.is_final() {
        return Ok(FailOutcome::AlreadyFinal(status));
    }
    sqlx::query(
        "UPDATE orders SET status = 'failed', failure_code = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(code)
    .bind(ms(now))
    .bind(order.as_str())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    let ttl: Option<i64> = sqlx::query_scalar(
        "SELECT COALESCE(ttl_expires_at, expires_at) FROM holds WHERE id = $1 AND status = 'converted' AND sold_at IS NULL",
    )
    .bind(&hold)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let mut hold_until = None;
    if let Some(ttl) = ttl {
        let back = restore_hold && ttl > ms(now);
        sqlx::query("UPDATE holds SET status = $1, expires_at = $2, updated_at = $3 WHERE id = $4")
            .bind(if back { "active" } else { "expired" })
            .bind(if back { ttl } else { ttl.min(ms(now)) })
            .bind(ms(now))
            .bind(&hold)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
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
    )
    .await?;
    Ok(FailOutcome::Failed { hold_until })
}

async fn sale_stats(
    conn: &mut PgConnection,
    message: &MessageId,
    event: &EventId,
    tickets: u32,
    revenue: Money,
) -> Result<(), StoreError> {
    let first =
        sqlx::query("INSERT INTO stats_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(message.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    if first.rows_affected() == 1 {
        sqlx::query(
            "INSERT INTO event_sales (event_id, tickets, revenue) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO UPDATE SET tickets = event_sales.tickets + excluded.tickets, revenue = event_sales.revenue + excluded.revenue",
        )
        .bind(event.as_str())
        .bind(i64::from(tickets))
        .bind(revenue.amount)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}
