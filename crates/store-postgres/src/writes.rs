//! Every state transition, group-committed: [`Store::write`] applies a batch of
//! [`Write`]s in one transaction (each node has one writer task; nodes commit
//! side by side, and row locks order them).
//!
//! A batch costs a few statements, not a few per write:
//! - Writes that change holds, orders and the outbox are grouped into runs of one
//!   kind, each ONE statement whose rows come as array parameters
//!   (`unnest($1::text[], …)`) and whose steps (lock the orders, check their state,
//!   update, sell, insert tickets, payments and outbox rows, fan out jobs) are
//!   data-modifying CTEs of that statement. A write joins the last run of its kind
//!   unless it must follow a later run ([`schedule`]): a write on a row another
//!   write of the batch changed runs after it (and never in the same statement: an
//!   `UPDATE … FROM` changes a row once, whatever matched it twice), so every write
//!   gets the answer it would get in batch order, while holds, checkouts and
//!   payments that arrive interleaved still go in three statements.
//! - The workers' records (audit rows, sales figures, email marks) touch tables no
//!   other write touches, so they commute with everything: each kind is one
//!   statement after the rest. Job acks ([`Ack`]) are one statement at the end (or
//!   before a relay mark that follows them), in batch order.
//!
//! The batch is first tried whole, with no savepoints (the common case: nothing is
//! refused). If any statement fails, the transaction is rolled back and the batch
//! runs again write by write, each behind a savepoint, so the refused one fails
//! alone and leaves nothing of itself behind; a write that meets a deadlock with
//! another node's batch is retried behind its savepoint. A job's ack is written in
//! the same transaction as the outcome it acknowledges: the `jobs` row is done (or
//! dead) exactly when the outcome is recorded.
//!
//! [`Store::write`]: boxoffice_ports::Store::write

use boxoffice_domain::{Currency, HoldSelection, HoldStatus, Job, Money, OrderStatus};
use boxoffice_ports::{
    Ack, CheckoutOutcome, FailOutcome, PaidOutcome, RefundOutcome, ReleaseOutcome, StoreError,
    Write, Written,
};
use sqlx::{Connection, PgConnection};
use std::collections::HashSet;
use time::OffsetDateTime;

use crate::rows::order_status;
use crate::{corrupt, map_err, ts, unavailable, PgStore};

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
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let mut tx = conn.begin().await.map_err(map_err)?;
        let first_error = match apply(&mut tx, batch).await {
            Ok(out) => {
                tx.commit().await.map_err(map_err)?;
                count_commit();
                return Ok(out.into_iter().map(Ok).collect());
            }
            Err(e) => e,
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
                match apply(&mut sp, std::slice::from_ref(w)).await {
                    Ok(mut written) => {
                        sp.commit().await.map_err(map_err)?;
                        out.push(Ok(written.pop().ok_or_else(|| corrupt("no answer"))?));
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

/// How writes group into statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hold,
    Release,
    Expire,
    Checkout,
    Paid,
    Failed,
    Unknown,
    /// Refunds and their settlements: rare, one by one.
    Refund,
    Relayed,
    /// The deferred kinds: their own tables only, or acks.
    Audit,
    Stats,
    Email,
    Ack,
}

fn kind(w: &Write) -> Kind {
    match w {
        Write::Hold(_) => Kind::Hold,
        Write::Release { .. } => Kind::Release,
        Write::ExpireHolds { .. } => Kind::Expire,
        Write::Checkout { .. } => Kind::Checkout,
        Write::Paid { .. } => Kind::Paid,
        Write::Failed { .. } => Kind::Failed,
        Write::PaymentUnknown { .. } => Kind::Unknown,
        Write::Refund { .. }
        | Write::RefundSettled { .. }
        | Write::CancelEvent { .. }
        | Write::WaitlistOffer { .. } => Kind::Refund,
        Write::Relayed { .. } => Kind::Relayed,
        Write::Audited { write, .. } => kind(write),
        Write::Audit { .. } | Write::AuditOnly(_) | Write::AuditCheckpoint(_) => Kind::Audit,
        Write::SalesFacts { .. } => Kind::Stats,
        Write::EmailSent { .. } | Write::SmsSent { .. } => Kind::Email,
        Write::Ack(_) => Kind::Ack,
    }
}

/// A row that a run's statement may change once only.
#[derive(Debug, Hash, PartialEq, Eq)]
enum Key<'a> {
    Hold(&'a str),
    Order(&'a str),
    Idempotency(&'a str, &'a str, &'a str),
}

/// The rows a write changes (that a later write may depend on).
fn keys(w: &Write) -> [Option<Key<'_>>; 3] {
    match w.unaudited() {
        Write::Hold(h) => [Some(Key::Hold(h.id.as_str())), None, None],
        Write::Release { hold, .. } => [Some(Key::Hold(hold.as_str())), None, None],
        Write::Checkout { rec, .. } => {
            let i = &rec.idempotency;
            [
                Some(Key::Hold(rec.order.hold_id.as_str())),
                Some(Key::Order(rec.order.id.as_str())),
                Some(Key::Idempotency(i.user_id.as_str(), &i.route, &i.key)),
            ]
        }
        Write::Paid { order, .. }
        | Write::Failed { order, .. }
        | Write::PaymentUnknown { order, .. }
        | Write::Refund { order, .. } => [Some(Key::Order(order.as_str())), None, None],
        _ => [None, None, None],
    }
}

/// Writes of one kind, executed as one statement, in the batch's order.
struct Run<'a> {
    kind: Kind,
    writes: Vec<usize>,
    keys: HashSet<Key<'a>>,
}

/// Whether `w` must run after `run`. Writes on the same rows keep their order. A
/// failed payment makes its order's hold active again, a hold the write does not
/// name, so it keeps its order with every release and checkout (a paid one leaves
/// its hold converted, which releases and checkouts answer alike before and
/// after). An expiry sweep and a relay mark keep their place among everything.
fn must_follow(run: &Run<'_>, w: &Write) -> bool {
    use Kind::*;
    let k = kind(w);
    matches!(run.kind, Expire | Relayed | Refund)
        || matches!(k, Expire | Relayed | Refund)
        || matches!(
            (run.kind, k),
            (Failed, Release | Checkout) | (Release | Checkout, Failed)
        )
        || keys(w).iter().flatten().any(|key| run.keys.contains(key))
}

/// Groups the ordered writes (indices into `batch`) into runs: each joins the last
/// run of its kind unless it must follow a later run, so the runs, executed in
/// turn, give every write the answer it would get in batch order, in a few
/// statements even when buyers' holds, checkouts and payments arrive interleaved.
fn schedule<'a>(batch: &'a [Write], ordered: &[usize]) -> Vec<Run<'a>> {
    let mut runs: Vec<Run<'a>> = vec![];
    for &i in ordered {
        let w = &batch[i];
        let k = kind(w);
        let after = runs.iter().rposition(|r| must_follow(r, w));
        let join = runs
            .iter()
            .rposition(|r| r.kind == k)
            .filter(|&p| after.is_none_or(|a| p > a));
        let p = join.unwrap_or_else(|| {
            runs.push(Run {
                kind: k,
                writes: vec![],
                keys: HashSet::new(),
            });
            runs.len() - 1
        });
        let run = &mut runs[p];
        run.writes.push(i);
        run.keys.extend(keys(w).into_iter().flatten());
    }
    runs
}

/// A job's ack, waiting for the batch's ack statement; `at` is its `done_at`.
struct PendingAck<'a> {
    index: usize,
    ack: &'a Ack,
    at: OffsetDateTime,
}

/// Applies `batch` on `conn` (a transaction or a savepoint): every answer, or the
/// first error (then the caller rolls back).
async fn apply(conn: &mut PgConnection, batch: &[Write]) -> Result<Vec<Written>, StoreError> {
    let mut out: Vec<Option<Written>> = vec![None; batch.len()];
    let mut acks: Vec<PendingAck<'_>> = vec![];
    let mut deferred: [Vec<usize>; 3] = Default::default();
    let mut ordered = vec![];
    for (i, w) in batch.iter().enumerate() {
        match kind(w) {
            Kind::Audit => deferred[0].push(i),
            Kind::Stats => deferred[1].push(i),
            Kind::Email => deferred[2].push(i),
            Kind::Ack => out[i] = Some(Written::Done),
            _ => ordered.push(i),
        }
        match w {
            Write::Audit { ack, record } => acks.extend(pending(i, ack.as_ref(), record.at)),
            Write::EmailSent { ack, now, .. } | Write::SmsSent { ack, now, .. } => {
                acks.extend(pending(i, ack.as_ref(), *now))
            }
            Write::SalesFacts { ack, .. } => {
                acks.extend(pending(i, ack.as_ref(), OffsetDateTime::now_utc()))
            }
            Write::Ack(ack) => acks.extend(pending(i, Some(ack), OffsetDateTime::now_utc())),
            _ => {}
        }
    }

    for r in schedule(batch, &ordered) {
        let run: Vec<&Write> = r.writes.iter().map(|&i| batch[i].unaudited()).collect();
        let written = match r.kind {
            Kind::Hold => holds(conn, &run).await?,
            Kind::Release => releases(conn, &run).await?,
            Kind::Expire => expire(conn, &run).await?,
            Kind::Checkout => checkouts(conn, &run).await?,
            Kind::Paid => {
                let written = payments(conn, &run).await?;
                // A paid order's job is done; one that ended otherwise is left to
                // the caller, which owes the buyer a refund before it is done.
                for (&i, w) in r.writes.iter().zip(&written) {
                    if let (
                        Write::Paid { ack, now, .. },
                        Written::Paid(
                            PaidOutcome::Paid | PaidOutcome::AlreadyFinal(OrderStatus::Paid),
                        ),
                    ) = (batch[i].unaudited(), w)
                    {
                        acks.extend(pending(i, ack.as_ref(), *now));
                    }
                }
                written
            }
            Kind::Failed => {
                for &i in &r.writes {
                    if let Write::Failed { ack, now, .. } = batch[i].unaudited() {
                        acks.extend(pending(i, ack.as_ref(), *now));
                    }
                }
                failures(conn, &run).await?
            }
            Kind::Unknown => {
                for &i in &r.writes {
                    if let Write::PaymentUnknown { ack, now, .. } = batch[i].unaudited() {
                        acks.extend(pending(i, ack.as_ref(), *now));
                    }
                }
                unknowns(conn, &run).await?
            }
            Kind::Refund => {
                for &i in &r.writes {
                    if let Write::RefundSettled { ack, now, .. } = batch[i].unaudited() {
                        acks.extend(pending(i, ack.as_ref(), *now));
                    }
                }
                refunds(conn, &run).await?
            }
            Kind::Relayed => {
                flush_acks(conn, &mut acks, r.writes[0]).await?;
                relayed(conn, &run).await?
            }
            Kind::Audit | Kind::Stats | Kind::Email | Kind::Ack => {
                return Err(corrupt("a deferred write among the ordered ones"))
            }
        };
        if written.len() != run.len() {
            return Err(corrupt("a run's answers do not match its writes"));
        }
        for (&i, w) in r.writes.iter().zip(written) {
            out[i] = Some(w);
        }
    }

    let [audit, stats, email] = &deferred;
    // The audit records of the changes just made, queued with them.
    let queued: Vec<&boxoffice_domain::AuditRecord> = batch
        .iter()
        .zip(&out)
        .filter_map(|(w, written)| match (w, written) {
            (Write::Audited { write, record }, Some(written))
                if Write::audit_due(write, written) =>
            {
                Some(&**record)
            }
            (Write::AuditOnly(record), _) => Some(&**record),
            _ => None,
        })
        .collect();
    enqueue_audits(conn, &queued).await?;
    audits(conn, batch, audit).await?;
    sales_facts(conn, batch, stats).await?;
    for (i, marked) in emails(conn, batch, email, "emails_sent").await? {
        out[i] = Some(Written::Marked(marked));
    }
    for (i, marked) in emails(conn, batch, email, "sms_sent").await? {
        out[i] = Some(Written::Marked(marked));
    }
    for &i in audit.iter().chain(stats) {
        out[i] = Some(Written::Done);
    }
    flush_acks(conn, &mut acks, batch.len()).await?;
    out.into_iter()
        .map(|w| w.ok_or_else(|| corrupt("a write without an answer")))
        .collect()
}

fn pending(index: usize, ack: Option<&Ack>, at: OffsetDateTime) -> Option<PendingAck<'_>> {
    ack.map(|ack| PendingAck {
        index,
        ack,
        at: ts(at),
    })
}

/// Marks done (or dead) the jobs of the acks of writes before `upto`, in batch
/// order: the first ack of a job wins, as one after another would.
async fn flush_acks(
    conn: &mut PgConnection,
    acks: &mut Vec<PendingAck<'_>>,
    upto: usize,
) -> Result<(), StoreError> {
    acks.sort_by_key(|a| a.index);
    let n = acks.partition_point(|a| a.index < upto);
    if n == 0 {
        return Ok(());
    }
    let mut seen = HashSet::new();
    let due: Vec<PendingAck<'_>> = acks
        .drain(..n)
        .filter(|a| seen.insert((a.ack.message.as_str(), a.ack.consumer.as_str())))
        .collect();
    sqlx::query(
        "UPDATE jobs SET state = CASE WHEN a.dead IS NULL THEN 'done' ELSE 'dead' END, \
             done_at = a.at, lease_until = NULL, last_error = COALESCE(a.dead, jobs.last_error) \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS a(message_id, consumer, dead, at) \
         WHERE jobs.message_id = a.message_id AND jobs.consumer = a.consumer AND jobs.state = 'ready'",
    )
    .bind(due.iter().map(|a| a.ack.message.as_str()).collect::<Vec<_>>())
    .bind(due.iter().map(|a| a.ack.consumer.as_str()).collect::<Vec<_>>())
    .bind(due.iter().map(|a| a.ack.dead.as_deref()).collect::<Vec<_>>())
    .bind(due.iter().map(|a| a.at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The outbox row of a job a write queues, and its fan-out: the SQL that inserts a
/// run's messages (from the CTE `src`, with columns `message_id`, `payload` and
/// `now`) and one `jobs` row per consumer. `$topic` and `$consumers` name the
/// statement's parameters carrying the job kind's topic and consumers.
fn enqueue_sql(src: &str, topic: &str, consumers: &str) -> String {
    format!(
        "m AS ( \
             INSERT INTO outbox (id, topic, payload, created_at) \
             SELECT message_id, {topic}, payload::jsonb, now FROM {src} RETURNING id, created_at), \
         j AS ( \
             INSERT INTO jobs (message_id, consumer, state, available_at, enqueued_at) \
             SELECT m.id, q.consumer, 'ready', m.created_at, m.created_at \
             FROM m, unnest({consumers}::text[]) AS q(consumer))"
    )
}

fn payload(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(job).map_err(unavailable)
}

fn consumers(job: &Job) -> Vec<&'static str> {
    job.consumers().iter().map(|c| c.as_str()).collect()
}

async fn holds(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let holds: Vec<_> = run
        .iter()
        .filter_map(|w| match w {
            Write::Hold(h) => Some(h),
            _ => None,
        })
        .collect();
    let (mut seat_hold, mut seat_pos, mut seat_id) = (vec![], vec![], vec![]);
    for h in &holds {
        if let HoldSelection::Seats(seats) = &h.selection {
            for (i, s) in seats.iter().enumerate() {
                seat_hold.push(h.id.as_str());
                seat_pos.push(i as i32);
                seat_id.push(s.as_str());
            }
        }
    }
    let (ga_tier, quantity): (Vec<_>, Vec<_>) = holds
        .iter()
        .map(|h| match &h.selection {
            HoldSelection::Seats(s) => (None, s.len() as i32),
            HoldSelection::Ga { tier_id, quantity } => (Some(tier_id.as_str()), *quantity as i32),
        })
        .unzip();
    sqlx::query(
        "WITH h AS ( \
             INSERT INTO holds (id, event_id, customer_id, status, ga_tier_id, quantity, amount, \
                 currency, expires_at, created_at, updated_at, ttl_expires_at) \
             SELECT id, event_id, customer_id, status, ga_tier_id, quantity, amount, currency, \
                 expires_at, created_at, created_at, expires_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], \
                         $7::bigint[], $8::text[], $9::timestamptz[], $10::timestamptz[]) \
                  AS t(id, event_id, customer_id, status, ga_tier_id, quantity, amount, currency, \
                       expires_at, created_at)) \
         INSERT INTO hold_seats (hold_id, position, seat_id) \
         SELECT * FROM unnest($11::text[], $12::int[], $13::text[])",
    )
    .bind(holds.iter().map(|h| h.id.as_str()).collect::<Vec<_>>())
    .bind(
        holds
            .iter()
            .map(|h| h.event_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        holds
            .iter()
            .map(|h| h.customer_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(holds.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
    .bind(ga_tier)
    .bind(quantity)
    .bind(holds.iter().map(|h| h.total.amount).collect::<Vec<_>>())
    .bind(
        holds
            .iter()
            .map(|h| h.total.currency.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(holds.iter().map(|h| ts(h.expires_at)).collect::<Vec<_>>())
    .bind(holds.iter().map(|h| ts(h.created_at)).collect::<Vec<_>>())
    .bind(seat_hold)
    .bind(seat_pos)
    .bind(seat_id)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    customer_limits(conn, &holds).await?;
    Ok(vec![Written::Done; holds.len()])
}

/// The per-buyer cap (`events.max_tickets_per_customer`) after a run of holds is
/// inserted: one transaction-scoped advisory lock per (event, customer) of a capped
/// event, taken in key order (so two batches cannot wait on each other), then, in a
/// statement whose snapshot follows the locks (READ COMMITTED), the customer's
/// tickets kept by live and converted (not refunded) holds, these included, against the cap. A
/// batch of another node that recorded holds of the same customer holds the lock
/// until it commits, so this count sees them. Refused: the constraint
/// `customer_limit` (the batch replays write by write; the one over the cap fails).
async fn customer_limits(
    conn: &mut PgConnection,
    holds: &[&boxoffice_domain::Hold],
) -> Result<(), StoreError> {
    let events: Vec<&str> = holds.iter().map(|h| h.event_id.as_str()).collect();
    let customers: Vec<&str> = holds.iter().map(|h| h.customer_id.as_str()).collect();
    let keys: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT hashtextextended(t.event_id || ' ' || t.customer_id, 0) AS k \
         FROM unnest($1::text[], $2::text[]) AS t(event_id, customer_id) \
         JOIN events e ON e.id = t.event_id \
         WHERE e.max_tickets_per_customer IS NOT NULL ORDER BY k",
    )
    .bind(&events)
    .bind(&customers)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS t(k)")
        .bind(&keys)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let now = holds
        .iter()
        .map(|h| h.created_at)
        .min()
        .ok_or_else(|| corrupt("no holds"))?;
    let over: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM (SELECT DISTINCT event_id, customer_id \
                        FROM unnest($1::text[], $2::text[]) AS t(event_id, customer_id)) p \
         JOIN events e ON e.id = p.event_id \
         WHERE e.max_tickets_per_customer IS NOT NULL \
           AND (SELECT COALESCE(SUM(h.quantity), 0) FROM holds h \
                WHERE h.event_id = p.event_id AND h.customer_id = p.customer_id \
                  AND ((h.status = 'converted' AND NOT EXISTS (SELECT 1 FROM orders o \
                        WHERE o.customer_id = h.customer_id AND o.hold_id = h.id \
                          AND o.status = 'refunded')) \
                       OR (h.status = 'active' AND h.expires_at > $3))) \
               > e.max_tickets_per_customer \
         LIMIT 1",
    )
    .bind(&events)
    .bind(&customers)
    .bind(ts(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    if over.is_some() {
        return Err(StoreError::Conflict {
            constraint: "customer_limit",
        });
    }
    Ok(())
}

async fn releases(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let (ids, nows): (Vec<&str>, Vec<OffsetDateTime>) = run
        .iter()
        .filter_map(|w| match w {
            Write::Release { hold, now } => Some((hold.as_str(), ts(*now))),
            _ => None,
        })
        .unzip();
    let released: Vec<(i64, bool)> = sqlx::query_as(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS r(id, now, n)), \
         u AS (UPDATE holds h SET status = 'released', updated_at = r.now FROM r \
               WHERE h.id = r.id AND h.status = 'active' AND h.expires_at > r.now RETURNING h.id) \
         SELECT r.n, u.id IS NOT NULL FROM r LEFT JOIN u ON u.id = r.id ORDER BY r.n",
    )
    .bind(&ids)
    .bind(&nows)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    // Why the others were not released: read after the update (a new snapshot), so
    // a hold another node converted or released meanwhile says so.
    let others: Vec<&str> = ids
        .iter()
        .zip(&released)
        .filter(|(_, (_, done))| !done)
        .map(|(id, _)| *id)
        .collect();
    let statuses: Vec<(String, String)> = if others.is_empty() {
        vec![]
    } else {
        sqlx::query_as("SELECT id, status FROM holds WHERE id = ANY($1)")
            .bind(&others)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
    };
    Ok(ids
        .iter()
        .zip(&released)
        .map(|(id, (_, done))| {
            Written::Released(if *done {
                ReleaseOutcome::Released
            } else {
                match statuses
                    .iter()
                    .find(|(h, _)| h == id)
                    .map(|(_, s)| s.as_str())
                {
                    None => ReleaseOutcome::NotFound,
                    Some("released") => ReleaseOutcome::AlreadyReleased,
                    Some("converted") => ReleaseOutcome::Converted,
                    Some(_) => ReleaseOutcome::Expired,
                }
            })
        })
        .collect())
}

async fn expire(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let mut out = Vec::with_capacity(run.len());
    for w in run {
        let Write::ExpireHolds { now } = w else {
            continue;
        };
        let done = sqlx::query(
            "UPDATE holds SET status = 'expired', updated_at = $1 WHERE status = 'active' AND expires_at <= $1",
        )
        .bind(ts(*now))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
        out.push(Written::Expired(done.rows_affected()));
    }
    Ok(out)
}

/// Checkouts: the idempotency key, the hold converted, the order with its items and
/// its payment job, all in one statement. A key used before, or a hold no longer
/// active, takes one more statement (the stored answer; undoing the key).
async fn checkouts(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let recs: Vec<_> = run
        .iter()
        .filter_map(|w| match w {
            Write::Checkout { rec, now } => Some((rec.as_ref(), ts(*now))),
            _ => None,
        })
        .collect();
    let jobs: Vec<Job> = recs
        .iter()
        .map(|(r, _)| Job::PaymentRequested {
            order_id: r.order.id.clone(),
        })
        .collect();
    let (mut item_order, mut item_pos, mut item_seat, mut item_tier, mut item_amount, mut item_cur) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (r, _) in &recs {
        for (n, it) in r.order.items.iter().enumerate() {
            item_order.push(r.order.id.as_str());
            item_pos.push(n as i32);
            item_seat.push(it.seat_id.as_ref().map(|s| s.as_str()));
            item_tier.push(it.tier_id.as_str());
            item_amount.push(it.price.amount);
            item_cur.push(it.price.currency.as_str());
        }
    }
    let i = |f: fn(&boxoffice_ports::Idempotent) -> &str| {
        recs.iter()
            .map(|(r, _)| f(&r.idempotency))
            .collect::<Vec<_>>()
    };
    let o = |f: fn(&boxoffice_domain::Order) -> &str| {
        recs.iter().map(|(r, _)| f(&r.order)).collect::<Vec<_>>()
    };
    let sql = format!(
        "WITH r AS ( \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
                 $14::bigint[], $15::text[], $16::text[], $17::timestamptz[], $18::timestamptz[], \
                 $19::timestamptz[], $20::timestamptz[], $21::text[], $22::text[], $31::text[]) \
             WITH ORDINALITY AS r(user_id, route, key, fingerprint, answer, answer_order, \
                 order_id, customer_id, event_id, hold_id, email, order_status, failure_code, \
                 amount, currency, payment_token, created_at, updated_at, \
                 deadline, now, message_id, payload, phone, n)), \
         k AS ( \
             INSERT INTO idempotency_keys (user_id, route, key, fingerprint, answer, order_id, created_at) \
             SELECT user_id, route, key, fingerprint, answer, answer_order, now FROM r \
             ON CONFLICT DO NOTHING RETURNING user_id, route, key), \
         c AS ( \
             UPDATE holds h SET status = 'converted', expires_at = r.deadline, updated_at = r.now \
             FROM r JOIN k USING (user_id, route, key) \
             WHERE h.id = r.hold_id AND h.customer_id = r.customer_id AND h.status = 'active' \
                 AND h.expires_at > r.now \
             RETURNING r.n), \
         ok AS (SELECT r.* FROM r JOIN c USING (n)), \
         o AS ( \
             INSERT INTO orders (id, customer_id, event_id, hold_id, email, status, failure_code, \
                 amount, currency, payment_token, created_at, updated_at, phone) \
             SELECT order_id, customer_id, event_id, hold_id, email, order_status, failure_code, \
                 amount, currency, payment_token, created_at, updated_at, phone FROM ok \
             RETURNING id), \
         i AS ( \
             INSERT INTO order_items (order_id, position, seat_id, tier_id, amount, currency) \
             SELECT i.* FROM unnest($23::text[], $24::int[], $25::text[], $26::text[], $27::bigint[], $28::text[]) \
                 AS i(order_id, position, seat_id, tier_id, amount, currency) \
             JOIN o ON o.id = i.order_id), \
         {} \
         SELECT k.key IS NOT NULL, c.n IS NOT NULL \
         FROM r LEFT JOIN k USING (user_id, route, key) LEFT JOIN c USING (n) ORDER BY r.n",
        enqueue_sql("ok", "$29", "$30")
    );
    let done: Vec<(bool, bool)> = sqlx::query_as(&sql)
        .bind(i(|i| i.user_id.as_str()))
        .bind(i(|i| &i.route))
        .bind(i(|i| &i.key))
        .bind(i(|i| &i.fingerprint))
        .bind(i(|i| i.answer.kind()))
        .bind(
            recs.iter()
                .map(|(r, _)| r.idempotency.answer.order_id().map(|o| o.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(o(|o| o.id.as_str()))
        .bind(o(|o| o.customer_id.as_str()))
        .bind(o(|o| o.event_id.as_str()))
        .bind(o(|o| o.hold_id.as_str()))
        .bind(o(|o| &o.email))
        .bind(o(|o| o.status.as_str()))
        .bind(
            recs.iter()
                .map(|(r, _)| r.order.failure_code.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            recs.iter()
                .map(|(r, _)| r.order.total.amount)
                .collect::<Vec<_>>(),
        )
        .bind(o(|o| o.total.currency.as_str()))
        .bind(o(|o| &o.payment_token))
        .bind(
            recs.iter()
                .map(|(r, _)| ts(r.order.created_at))
                .collect::<Vec<_>>(),
        )
        .bind(
            recs.iter()
                .map(|(r, _)| ts(r.order.updated_at))
                .collect::<Vec<_>>(),
        )
        .bind(
            recs.iter()
                .map(|(r, _)| ts(r.payment_deadline))
                .collect::<Vec<_>>(),
        )
        .bind(recs.iter().map(|(_, now)| *now).collect::<Vec<_>>())
        .bind(
            recs.iter()
                .map(|(r, _)| r.message.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(payload).collect::<Result<Vec<_>, _>>()?)
        .bind(item_order)
        .bind(item_pos)
        .bind(item_seat)
        .bind(item_tier)
        .bind(item_amount)
        .bind(item_cur)
        .bind(jobs.first().map(Job::topic).unwrap_or_default())
        .bind(jobs.first().map(consumers).unwrap_or_default())
        .bind(
            recs.iter()
                .map(|(r, _)| r.order.phone.as_deref())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut out = Vec::with_capacity(recs.len());
    for ((rec, now), (fresh, converted)) in recs.iter().zip(done) {
        let i = &rec.idempotency;
        out.push(Written::Checkout(match (fresh, converted) {
            (true, true) => CheckoutOutcome::Created,
            (false, _) => CheckoutOutcome::Replay(
                crate::sales::idempotent_in(conn, &i.user_id, &i.route, &i.key)
                    .await?
                    .ok_or_else(|| corrupt("idempotency key vanished"))?,
            ),
            // The key must not outlive this refusal: a later try with the same key
            // deserves a fresh answer. (A savepoint or transaction is not rolled
            // back for an outcome, so undo it here.)
            (true, false) => {
                let (status, expires_at): (String, OffsetDateTime) = sqlx::query_as(
                    "WITH d AS (DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3) \
                     SELECT status, expires_at FROM holds WHERE id = $4",
                )
                .bind(i.user_id.as_str())
                .bind(&i.route)
                .bind(&i.key)
                .bind(rec.order.hold_id.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
                CheckoutOutcome::HoldNotActive {
                    status: HoldStatus::parse(&status).ok_or_else(|| corrupt("holds.status"))?,
                    expired: expires_at <= *now,
                }
            }
        }));
    }
    Ok(out)
}

/// Payments that succeeded, in one statement: the orders locked and checked, paid;
/// their holds sold, with their seats in `sold_seats` (the primary key refuses a
/// second sale) or GA `sold` moved under its capacity CHECK; the charges, the
/// tickets and the `order.paid` jobs. A refusal fails the whole statement, and the
/// batch is replayed write by write.
async fn payments(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let paid: Vec<_> = run
        .iter()
        .filter_map(|w| match w {
            Write::Paid {
                order,
                charge_id,
                tickets,
                message,
                now,
                ..
            } => Some((
                order,
                charge_id.as_str(),
                tickets,
                message.as_str(),
                ts(*now),
            )),
            _ => None,
        })
        .collect();
    let jobs: Vec<Job> = paid
        .iter()
        .map(|(o, ..)| Job::OrderPaid {
            order_id: (*o).clone(),
        })
        .collect();
    let tickets: Vec<_> = paid
        .iter()
        .flat_map(|(o, _, t, ..)| t.iter().enumerate().map(move |(n, t)| (o.as_str(), n, t)))
        .collect();
    let sql = format!(
        "WITH r AS ( \
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]) \
             WITH ORDINALITY AS r(order_id, charge_id, now, message_id, payload, n)), \
         l AS ( \
             SELECT id, status, hold_id, event_id, amount, currency FROM orders \
             WHERE id IN (SELECT order_id FROM r) ORDER BY id FOR UPDATE), \
         p AS ( \
             SELECT r.*, l.hold_id, l.event_id, l.amount, l.currency FROM r JOIN l ON l.id = r.order_id \
             WHERE l.status IN ('pending_payment', 'payment_unknown')), \
         o AS ( \
             UPDATE orders SET status = 'paid', failure_code = NULL, updated_at = p.now \
             FROM p WHERE orders.id = p.order_id), \
         h AS ( \
             UPDATE holds SET sold_at = p.now, updated_at = p.now FROM p WHERE holds.id = p.hold_id \
             RETURNING holds.ga_tier_id, holds.quantity), \
         g AS ( \
             UPDATE ga_tiers SET sold = ga_tiers.sold + q.quantity \
             FROM (SELECT ga_tier_id, sum(quantity)::int AS quantity FROM h \
                   WHERE ga_tier_id IS NOT NULL GROUP BY ga_tier_id) q \
             WHERE ga_tiers.id = q.ga_tier_id), \
         s AS ( \
             INSERT INTO sold_seats (event_id, seat_id, hold_id, sold_at) \
             SELECT p.event_id, hs.seat_id, hs.hold_id, p.now FROM p JOIN hold_seats hs ON hs.hold_id = p.hold_id), \
         c AS ( \
             INSERT INTO payments (order_id, charge_id, amount, currency, created_at) \
             SELECT order_id, charge_id, amount, currency, now FROM p), \
         t AS ( \
             INSERT INTO tickets (id, order_id, position, event_id, seat_id, tier_id, amount, currency, code, issued_at) \
             SELECT t.id, t.order_id, t.position, p.event_id, t.seat_id, t.tier_id, t.amount, t.currency, t.code, p.now \
             FROM unnest($6::text[], $7::text[], $8::int[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[]) \
                 AS t(id, order_id, position, seat_id, tier_id, amount, currency, code) \
             JOIN p ON p.order_id = t.order_id), \
         {} \
         SELECT l.status FROM r LEFT JOIN l ON l.id = r.order_id ORDER BY r.n",
        enqueue_sql("p", "$14", "$15")
    );
    let statuses: Vec<(Option<String>,)> = sqlx::query_as(&sql)
        .bind(paid.iter().map(|p| p.0.as_str()).collect::<Vec<_>>())
        .bind(paid.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(paid.iter().map(|p| p.4).collect::<Vec<_>>())
        .bind(paid.iter().map(|p| p.3).collect::<Vec<_>>())
        .bind(jobs.iter().map(payload).collect::<Result<Vec<_>, _>>()?)
        .bind(
            tickets
                .iter()
                .map(|(_, _, t)| t.id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(tickets.iter().map(|(o, _, _)| *o).collect::<Vec<_>>())
        .bind(
            tickets
                .iter()
                .map(|(_, n, _)| *n as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|(_, _, t)| t.seat_id.as_ref().map(|s| s.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|(_, _, t)| t.tier_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|(_, _, t)| t.price.amount)
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|(_, _, t)| t.price.currency.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            tickets
                .iter()
                .map(|(_, _, t)| t.code.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.first().map(Job::topic).unwrap_or_default())
        .bind(jobs.first().map(consumers).unwrap_or_default())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| match map_err(e) {
            // A seat's ticket and its `sold_seats` row go in together, in one
            // statement, whichever PostgreSQL reaches first: the seat was sold.
            StoreError::Conflict {
                constraint: "tickets_seat",
            } => StoreError::Conflict {
                constraint: "sold_seats",
            },
            e => e,
        })?;
    statuses
        .into_iter()
        .map(|(status,)| {
            let status = order_status(&status.ok_or(StoreError::NotFound)?)?;
            Ok(Written::Paid(if !status.is_final() {
                PaidOutcome::Paid
            } else {
                PaidOutcome::AlreadyFinal(status)
            }))
        })
        .collect()
}

/// Payments that failed, in one statement: the orders locked and checked, failed;
/// their holds active again until their own deadline (when asked and not passed)
/// or expired; the `order.failed` jobs.
async fn failures(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let failed: Vec<_> = run
        .iter()
        .filter_map(|w| match w {
            Write::Failed {
                order,
                code,
                restore_hold,
                message,
                now,
                ..
            } => Some((
                order,
                code.as_str(),
                *restore_hold,
                message.as_str(),
                ts(*now),
            )),
            _ => None,
        })
        .collect();
    let jobs: Vec<Job> = failed
        .iter()
        .map(|(o, code, ..)| Job::OrderFailed {
            order_id: (*o).clone(),
            code: (*code).to_owned(),
        })
        .collect();
    let sql = format!(
        "WITH r AS ( \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::timestamptz[], $5::text[], $6::text[]) \
             WITH ORDINALITY AS r(order_id, code, restore, now, message_id, payload, n)), \
         l AS ( \
             SELECT id, status, hold_id FROM orders WHERE id IN (SELECT order_id FROM r) \
             ORDER BY id FOR UPDATE), \
         f AS ( \
             SELECT r.*, l.hold_id FROM r JOIN l ON l.id = r.order_id \
             WHERE l.status IN ('pending_payment', 'payment_unknown')), \
         o AS ( \
             UPDATE orders SET status = 'failed', failure_code = f.code, updated_at = f.now \
             FROM f WHERE orders.id = f.order_id), \
         h AS ( \
             UPDATE holds SET \
                 status = CASE WHEN f.restore AND COALESCE(ttl_expires_at, holds.expires_at) > f.now \
                          THEN 'active' ELSE 'expired' END, \
                 expires_at = CASE WHEN f.restore AND COALESCE(ttl_expires_at, holds.expires_at) > f.now \
                              THEN COALESCE(ttl_expires_at, holds.expires_at) \
                              ELSE LEAST(COALESCE(ttl_expires_at, holds.expires_at), f.now) END, \
                 updated_at = f.now \
             FROM f WHERE holds.id = f.hold_id AND holds.status = 'converted' AND holds.sold_at IS NULL \
             RETURNING holds.id, holds.status, holds.expires_at), \
         {} \
         SELECT l.status, h.status, h.expires_at \
         FROM r LEFT JOIN l ON l.id = r.order_id \
             LEFT JOIN h ON h.id = l.hold_id AND l.status IN ('pending_payment', 'payment_unknown') \
         ORDER BY r.n",
        enqueue_sql("f", "$7", "$8")
    );
    let rows: Vec<(Option<String>, Option<String>, Option<OffsetDateTime>)> = sqlx::query_as(&sql)
        .bind(failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>())
        .bind(failed.iter().map(|f| f.1).collect::<Vec<_>>())
        .bind(failed.iter().map(|f| f.2).collect::<Vec<_>>())
        .bind(failed.iter().map(|f| f.4).collect::<Vec<_>>())
        .bind(failed.iter().map(|f| f.3).collect::<Vec<_>>())
        .bind(jobs.iter().map(payload).collect::<Result<Vec<_>, _>>()?)
        .bind(jobs.first().map(Job::topic).unwrap_or_default())
        .bind(jobs.first().map(consumers).unwrap_or_default())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.into_iter()
        .map(|(status, hold_status, hold_until)| {
            let status = order_status(&status.ok_or(StoreError::NotFound)?)?;
            Ok(Written::Failed(if !status.is_final() {
                FailOutcome::Failed {
                    hold_until: hold_until.filter(|_| hold_status.as_deref() == Some("active")),
                }
            } else {
                FailOutcome::AlreadyFinal(status)
            }))
        })
        .collect()
}

/// Orders whose payment nobody can tell yet (rare: one statement each): pending
/// ones become `payment_unknown`, and their converted holds keep the seats until at
/// least `hold_until`.
async fn unknowns(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let mut out = Vec::with_capacity(run.len());
    for w in run {
        let Write::PaymentUnknown {
            order,
            hold_until,
            now,
            ..
        } = w
        else {
            return Err(corrupt("a run of another kind"));
        };
        let marked: Option<(String,)> = sqlx::query_as(
            "WITH o AS ( \
                 UPDATE orders SET status = 'payment_unknown', updated_at = $1 \
                 WHERE id = $2 AND status IN ('pending_payment', 'payment_unknown') RETURNING hold_id) \
             UPDATE holds SET expires_at = GREATEST(holds.expires_at, COALESCE($3, holds.expires_at)), updated_at = $1 \
             FROM o WHERE holds.id = o.hold_id AND holds.status = 'converted' AND holds.sold_at IS NULL \
             RETURNING o.hold_id",
        )
        .bind(ts(*now))
        .bind(order.as_str())
        .bind(hold_until.map(ts))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
        // No hold row to keep (sold, or gone): the order may still have been marked.
        let marked = match marked {
            Some(_) => true,
            None => {
                sqlx::query_scalar::<_, String>("SELECT status FROM orders WHERE id = $1")
                    .bind(order.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?
                    .as_deref()
                    == Some("payment_unknown")
            }
        };
        out.push(Written::Marked(marked));
    }
    Ok(out)
}

async fn relayed(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    // The first mark of a message wins, as one after another would.
    let mut seen = HashSet::new();
    let (ids, nows): (Vec<&str>, Vec<OffsetDateTime>) = run
        .iter()
        .filter_map(|w| match w {
            Write::Relayed { ids, now } => Some(ids.iter().map(move |m| (m.as_str(), ts(*now)))),
            _ => None,
        })
        .flatten()
        .filter(|(id, _)| seen.insert(*id))
        .unzip();
    // The broker delivers them from now on: their store-queue rows are done.
    sqlx::query(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS r(id, now)), \
         o AS (UPDATE outbox SET relayed_at = r.now FROM r WHERE outbox.id = r.id AND outbox.relayed_at IS NULL) \
         UPDATE jobs SET state = 'done', done_at = r.now FROM r WHERE jobs.message_id = r.id AND jobs.state = 'ready'",
    )
    .bind(ids)
    .bind(nows)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(vec![Written::Done; run.len()])
}

/// The first write of each message among `indices` (a message recorded twice in
/// one batch is recorded once, as the second would find the first).
fn firsts<'a, T>(
    batch: &'a [Write],
    indices: &[usize],
    pick: impl Fn(&'a Write) -> Option<(&'a str, T)>,
) -> Vec<(usize, &'a str, T)> {
    let mut seen = HashSet::new();
    indices
        .iter()
        .filter_map(|&i| pick(&batch[i]).map(|(m, t)| (i, m, t)))
        .filter(|(_, m, _)| seen.insert(*m))
        .collect()
}

async fn audits(
    conn: &mut PgConnection,
    batch: &[Write],
    indices: &[usize],
) -> Result<(), StoreError> {
    let rows = firsts(batch, indices, |w| match w {
        Write::Audit { record, .. } => Some((record.id.as_str(), record)),
        _ => None,
    });
    if !rows.is_empty() {
        append_audits(conn, rows.into_iter().map(|r| &**r.2).collect()).await?;
    }
    for &i in indices {
        if let Write::AuditCheckpoint(c) = &batch[i] {
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, at, public_key, signature) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(c.seq)
            .bind(&c.hash)
            .bind(ts(c.at))
            .bind(&c.public_key)
            .bind(&c.signature)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
    }
    Ok(())
}

/// Queues `audit.recorded` jobs for these records (one statement).
async fn enqueue_audits(
    conn: &mut PgConnection,
    records: &[&boxoffice_domain::AuditRecord],
) -> Result<(), StoreError> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    let job = Job::AuditRecorded {
        record: Box::new((*first).clone()),
    };
    let mut payloads = Vec::with_capacity(records.len());
    for r in records {
        payloads.push(payload(&Job::AuditRecorded {
            record: Box::new((*r).clone()),
        })?);
    }
    sqlx::query(&format!(
        "WITH src AS (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS s(message_id, payload, now)), \
         {} SELECT 1",
        enqueue_sql("src", "$4", "$5")
    ))
    .bind(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .bind(payloads)
    .bind(records.iter().map(|r| ts(r.at)).collect::<Vec<_>>())
    .bind(job.topic())
    .bind(consumers(&job))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Appends records to the chain: the head row is locked first (FOR UPDATE), so
/// one node's batch appends at a time and the chain never forks; records already
/// appended (a redelivery) are skipped.
async fn append_audits(
    conn: &mut PgConnection,
    records: Vec<&boxoffice_domain::AuditRecord>,
) -> Result<(), StoreError> {
    let (mut seq, mut prev): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE one FOR UPDATE")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let seen: Vec<String> = sqlx::query_scalar("SELECT id FROM audit_records WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let seen: HashSet<&str> = seen.iter().map(String::as_str).collect();
    let mut rows = vec![];
    for r in records {
        if seen.contains(r.id.as_str()) {
            continue;
        }
        let rec = r.clone().truncate_time();
        let hash = boxoffice_ports::audit::chain_hash(&prev, &rec);
        seq += 1;
        rows.push((seq, rec, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_records (seq, id, at, actor, role, request_id, ip, action, subject, event_id, \
             before, after, prev_hash, hash) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| ts(r.1.at)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.actor.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.role.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.request_id.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.ip.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.action.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.subject.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.event_id.as_ref().map(|e| e.as_str())).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.before.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1.after.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.3.as_str()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE one")
        .bind(seq)
        .bind(&prev)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// What a refund reads of its order (locked): status, amount, refunded amount,
/// currency, hold, event, GA tier, quantity, and the charge to refund.
type RefundRow = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    i32,
    Option<String>,
);

/// Refunds one by one (they are rare): see [`Write::Refund`]. The order row is
/// locked first, so two refunds of one order, on any nodes, decide one after the
/// other and never both take what is left.
async fn refunds(conn: &mut PgConnection, run: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let mut out = Vec::with_capacity(run.len());
    for w in run {
        out.push(match w {
            Write::Refund {
                refund,
                order,
                amount,
                idempotency,
                message,
                now,
            } => {
                let row: Option<RefundRow> =
                    sqlx::query_as(
                        "SELECT o.status, o.amount, o.refunded_amount, o.currency, o.hold_id, o.event_id, \
                                h.ga_tier_id, h.quantity, p.charge_id \
                         FROM orders o JOIN holds h ON h.id = o.hold_id \
                         LEFT JOIN payments p ON p.order_id = o.id \
                         WHERE o.id = $1 FOR UPDATE OF o",
                    )
                    .bind(order.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?;
                let (status, total, refunded, currency, hold, event, ga_tier, quantity, charge) =
                    row.ok_or(StoreError::NotFound)?;
                // Under the order's lock: a request with the same key on any node
                // waits here, then finds the first one's answer.
                if let Some(i) = idempotency {
                    if let Some(prev) =
                        crate::sales::idempotent_in(&mut *conn, &i.user_id, &i.route, &i.key)
                            .await?
                    {
                        out.push(Written::Refund(RefundOutcome::Replay(prev)));
                        continue;
                    }
                }
                let currency = Currency::try_from(currency.as_str())
                    .map_err(|_| corrupt("orders.currency"))?;
                let remaining = total - refunded;
                let asked = amount.unwrap_or(remaining);
                Written::Refund(match order_status(&status)? {
                    OrderStatus::Refunded => RefundOutcome::NothingLeft,
                    OrderStatus::Paid if asked > remaining => RefundOutcome::TooMuch {
                        remaining: Money::new(remaining, currency),
                    },
                    OrderStatus::Paid if asked <= 0 => RefundOutcome::NothingLeft,
                    OrderStatus::Paid => {
                        let charge =
                            charge.ok_or_else(|| corrupt("a paid order without its payment"))?;
                        let whole = asked == remaining;
                        let job = Job::OrderRefunded {
                            order_id: order.clone(),
                            refund_id: refund.clone(),
                        };
                        sqlx::query(&format!(
                            "WITH o AS (UPDATE orders SET refunded_amount = refunded_amount + $3, \
                                 status = CASE WHEN $4 THEN 'refunded' ELSE status END, updated_at = $5 \
                                 WHERE id = $2 RETURNING id), \
                             r AS (INSERT INTO refunds (id, order_id, charge_id, amount, whole, currency, created_at) \
                                 SELECT $1, id, $6, $3, $4, $7, $5 FROM o RETURNING id), \
                             src AS (SELECT $8::text AS message_id, $9::text AS payload, $5::timestamptz AS now FROM r), \
                             {} \
                             SELECT 1",
                            enqueue_sql("src", "$10", "$11")
                        ))
                        .bind(refund.as_str())
                        .bind(order.as_str())
                        .bind(asked)
                        .bind(whole)
                        .bind(ts(*now))
                        .bind(&charge)
                        .bind(currency.as_str())
                        .bind(message.as_str())
                        .bind(payload(&job)?)
                        .bind(job.topic())
                        .bind(consumers(&job))
                        .execute(&mut *conn)
                        .await
                        .map_err(map_err)?;
                        if whole {
                            // Sold no more: on sale again, the tickets void.
                            match &ga_tier {
                                Some(tier) => sqlx::query(
                                    "UPDATE ga_tiers SET sold = sold - $1 WHERE id = $2",
                                )
                                .bind(quantity)
                                .bind(tier),
                                None => sqlx::query(
                                    "DELETE FROM sold_seats WHERE event_id = $2 AND hold_id = $1",
                                )
                                .bind(&hold)
                                .bind(&event),
                            }
                            .execute(&mut *conn)
                            .await
                            .map_err(map_err)?;
                            sqlx::query(
                                "UPDATE tickets SET voided_at = $1 WHERE order_id = $2 AND voided_at IS NULL",
                            )
                            .bind(ts(*now))
                            .bind(order.as_str())
                            .execute(&mut *conn)
                            .await
                            .map_err(map_err)?;
                        }
                        if let Some(i) = idempotency {
                            // Another order's refund under the same key at once: the
                            // primary key refuses it (422 idempotency_key_reused).
                            sqlx::query(
                                "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, answer, order_id, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(i.user_id.as_str())
                            .bind(&i.route)
                            .bind(&i.key)
                            .bind(&i.fingerprint)
                            .bind(i.answer.kind())
                            .bind(i.answer.order_id().map(|o| o.as_str()))
                            .bind(ts(*now))
                            .execute(&mut *conn)
                            .await
                            .map_err(map_err)?;
                        }
                        RefundOutcome::Refunded {
                            amount: Money::new(asked, currency),
                            whole,
                        }
                    }
                    other => RefundOutcome::NotPaid(other),
                })
            }
            Write::RefundSettled { refund, now, .. } => {
                let n = sqlx::query(
                    "UPDATE refunds SET settled_at = $1 WHERE id = $2 AND settled_at IS NULL",
                )
                .bind(ts(*now))
                .bind(refund.as_str())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?
                .rows_affected();
                Written::Marked(n == 1)
            }
            Write::CancelEvent {
                event,
                message,
                now,
            } => {
                // The UPDATE waits for every transaction that read the event row
                // FOR SHARE to record a hold, order or payment (migration 0040).
                let job = Job::EventCancelled {
                    event_id: event.clone(),
                };
                let (exists, cancelled): (bool, bool) = sqlx::query_as(&format!(
                    "WITH e AS (UPDATE events SET status = 'cancelled', updated_at = $2 \
                         WHERE id = $1 AND status <> 'cancelled' RETURNING id), \
                     src AS (SELECT $3::text AS message_id, $4::text AS payload, $2::timestamptz AS now FROM e), \
                     {} \
                     SELECT EXISTS (SELECT 1 FROM events WHERE id = $1), EXISTS (SELECT 1 FROM e)",
                    enqueue_sql("src", "$5", "$6")
                ))
                .bind(event.as_str())
                .bind(ts(*now))
                .bind(message.as_str())
                .bind(payload(&job)?)
                .bind(job.topic())
                .bind(consumers(&job))
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
                if !exists {
                    return Err(StoreError::NotFound);
                }
                Written::Marked(cancelled)
            }
            Write::WaitlistOffer {
                entry,
                hold,
                expires_at,
                message,
                now,
            } => {
                // Offered only by the claim that made the hold (one UPDATE: of two
                // nodes, the second finds the entry offered already).
                let job = Job::WaitlistOffered {
                    entry_id: entry.clone(),
                    hold_id: hold.clone(),
                };
                let offered: bool = sqlx::query_scalar(&format!(
                    "WITH w AS (UPDATE waitlist SET state = 'offered', offer_expires_at = $3, claim_until = NULL, updated_at = $4 \
                         WHERE id = $1 AND state = 'claimed' AND hold_id = $2 RETURNING id), \
                     src AS (SELECT $5::text AS message_id, $6::text AS payload, $4::timestamptz AS now FROM w), \
                     {} \
                     SELECT EXISTS (SELECT 1 FROM w)",
                    enqueue_sql("src", "$7", "$8")
                ))
                .bind(entry.as_str())
                .bind(hold.as_str())
                .bind(ts(*expires_at))
                .bind(ts(*now))
                .bind(message.as_str())
                .bind(payload(&job)?)
                .bind(job.topic())
                .bind(consumers(&job))
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
                Written::Marked(offered)
            }
            _ => return Err(corrupt("a refund run with another write")),
        });
    }
    Ok(out)
}

/// Sales facts, each message counted once ever (`sales_messages`, inserted by the
/// same statement), summed into `sales_minutes`.
async fn sales_facts(
    conn: &mut PgConnection,
    batch: &[Write],
    indices: &[usize],
) -> Result<(), StoreError> {
    let msgs = firsts(batch, indices, |w| match w {
        Write::SalesFacts { message, facts, .. } => Some((message.as_str(), facts)),
        _ => None,
    });
    let mut m = vec![];
    let mut ev = vec![];
    let mut tier = vec![];
    let mut minute = vec![];
    let mut cols: [Vec<i64>; 8] = Default::default();
    for (_, message, facts) in &msgs {
        for f in facts.iter() {
            let Some(e) = &f.event else { continue };
            m.push(*message);
            ev.push(e.as_str());
            tier.push(f.tier.as_str());
            minute.push(
                OffsetDateTime::from_unix_timestamp(f.minute).map_err(|_| corrupt("minute"))?,
            );
            let c = &f.counts;
            for (col, v) in cols.iter_mut().zip(c.values()) {
                col.push(v);
            }
        }
    }
    if msgs.is_empty() {
        return Ok(());
    }
    let all: Vec<&str> = msgs.iter().map(|r| r.1).collect();
    let [c0, c1, c2, c3, c4, c5, c6, c7] = cols;
    sqlx::query(
        "WITH fresh AS (INSERT INTO sales_messages (message_id) SELECT unnest($1::text[]) \
                   ON CONFLICT DO NOTHING RETURNING message_id), \
         r AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], \
                   $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) \
               AS r(message_id, event_id, tier, minute, tickets, revenue, holds_made, holds_converted, \
                    holds_expired, refunds, refunded_amount, tickets_refunded)) \
         INSERT INTO sales_minutes (event_id, tier, minute, tickets, revenue, holds_made, holds_converted, \
             holds_expired, refunds, refunded_amount, tickets_refunded) \
         SELECT r.event_id, r.tier, r.minute, sum(r.tickets), sum(r.revenue), sum(r.holds_made), \
             sum(r.holds_converted), sum(r.holds_expired), sum(r.refunds), sum(r.refunded_amount), \
             sum(r.tickets_refunded) \
         FROM r JOIN fresh USING (message_id) GROUP BY r.event_id, r.tier, r.minute \
         ON CONFLICT (event_id, tier, minute) DO UPDATE SET \
             tickets = sales_minutes.tickets + excluded.tickets, \
             revenue = sales_minutes.revenue + excluded.revenue, \
             holds_made = sales_minutes.holds_made + excluded.holds_made, \
             holds_converted = sales_minutes.holds_converted + excluded.holds_converted, \
             holds_expired = sales_minutes.holds_expired + excluded.holds_expired, \
             refunds = sales_minutes.refunds + excluded.refunds, \
             refunded_amount = sales_minutes.refunded_amount + excluded.refunded_amount, \
             tickets_refunded = sales_minutes.tickets_refunded + excluded.tickets_refunded",
    )
    .bind(all)
    .bind(m)
    .bind(ev)
    .bind(tier)
    .bind(minute)
    .bind(c0)
    .bind(c1)
    .bind(c2)
    .bind(c3)
    .bind(c4)
    .bind(c5)
    .bind(c6)
    .bind(c7)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Email (`table` `emails_sent`) or SMS (`sms_sent`) marks: whether each was new
/// (a second mark of a message in the batch is not). Only the batch's writes of
/// that kind are answered.
async fn emails(
    conn: &mut PgConnection,
    batch: &[Write],
    indices: &[usize],
    table: &'static str,
) -> Result<Vec<(usize, bool)>, StoreError> {
    let sms = table == "sms_sent";
    let indices: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| matches!(batch[i], Write::SmsSent { .. }) == sms)
        .collect();
    let indices = &indices[..];
    let rows = firsts(batch, indices, |w| match w {
        Write::EmailSent { message, now, .. } | Write::SmsSent { message, now, .. } => {
            Some((message.as_str(), ts(*now)))
        }
        _ => None,
    });
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let new: Vec<String> = sqlx::query_scalar(&format!(
        "INSERT INTO {table} (message_id, sent_at) \
         SELECT * FROM unnest($1::text[], $2::timestamptz[]) \
         ON CONFLICT DO NOTHING RETURNING message_id"
    ))
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    let new: HashSet<&str> = new.iter().map(String::as_str).collect();
    let firsts: std::collections::HashMap<usize, &str> = rows.iter().map(|r| (r.0, r.1)).collect();
    Ok(indices
        .iter()
        .map(|&i| (i, firsts.get(&i).is_some_and(|m| new.contains(m))))
        .collect())
}
