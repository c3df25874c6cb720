//! Holds, checkout, orders and payments on SQLite. The writes are the
//! group-committed batches of `writes.rs`; what is read back is here.

use async_trait::async_trait;
use boxoffice_domain::{
    Currency, EventId, Hold, HoldId, Money, Order, OrderId, OrderStatus, RefundId, SeatId,
    TicketId, UserId,
};
use boxoffice_ports::{
    CancelWork, Idempotent, RefundRecord, SalesStore, StoreError, StoredInventory, Write, Written,
};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use time::OffsetDateTime;

use crate::db::{corrupt, ms, parse, OrStore};
use crate::rows::{self, HOLD_COLUMNS, IDEMPOTENT_COLUMNS, ORDER_READ_COLUMNS};
use crate::SqliteStore;

#[async_trait]
impl SalesStore for SqliteStore {
    async fn write(&self, batch: &[Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_impl(batch).await
    }

    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = ?"),
                    [id],
                    |r| rows::hold(r, |h| rows::hold_seats(conn, h)),
                )
            })
            .await
    }

    async fn inventory(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<StoredInventory, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                // One read transaction, so holds and sales are seen at the same instant.
                let tx = conn.transaction().db()?;
                let mut seats_of: HashMap<String, Vec<SeatId>> = HashMap::new();
                for (hold, seat) in rows::all(
                    &tx,
                    "SELECT hs.hold_id, hs.seat_id FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id \
                     WHERE h.event_id = ? AND h.status IN ('active', 'converted') AND h.sold_at IS NULL AND h.expires_at > ? \
                     ORDER BY hs.hold_id, hs.position",
                    params![event, ms(now)],
                    |r| Ok((r.get::<_, String>(0).db()?, r.get::<_, String>(1).db()?)),
                )? {
                    seats_of
                        .entry(hold)
                        .or_default()
                        .push(parse(SeatId::try_from(seat), "hold_seats.seat_id")?);
                }
                let live_holds = rows::all(
                    &tx,
                    &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = ? AND status IN ('active', 'converted') AND sold_at IS NULL AND expires_at > ?"),
                    params![event, ms(now)],
                    |r| {
                        rows::hold(r, |h| Ok(seats_of.get(h).cloned().unwrap_or_default()))
                    },
                )?;
                let sold_seats = rows::all(
                    &tx,
                    "SELECT seat_id FROM sold_seats WHERE event_id = ?",
                    [&event],
                    |r| parse(SeatId::try_from(r.get::<_, String>(0).db()?), "sold_seats.seat_id"),
                )?;
                let ga_sold = rows::all(
                    &tx,
                    "SELECT sold FROM ga_tiers WHERE event_id = ? ORDER BY position",
                    [&event],
                    |r| Ok(r.get::<_, i64>(0).db()? as u32),
                )?;
                Ok(StoredInventory {
                    live_holds,
                    sold_seats,
                    ga_sold,
                })
            })
            .await
    }

    async fn idempotent(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        let (user, route, key) = (user.clone(), route.to_owned(), key.to_owned());
        self.db
            .read(move |conn| idempotent_in(conn, &user, &route, &key))
            .await
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let id = id.clone();
        self.db.read(move |conn| order(conn, &id)).await
    }

    async fn ticket_order(&self, ticket: &TicketId) -> Result<Option<OrderId>, StoreError> {
        let ticket = ticket.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    "SELECT order_id FROM tickets WHERE id = ?",
                    [ticket],
                    order_id,
                )
            })
            .await
    }

    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError> {
        let customer = customer.clone();
        self.db.read(move |conn| orders_of(conn, &customer)).await
    }

    async fn pending_orders(&self, idle_since: OffsetDateTime) -> Result<Vec<OrderId>, StoreError> {
        self.db.read(move |conn| pending(conn, idle_since)).await
    }

    async fn order_state(&self, id: &OrderId) -> Result<Option<(UserId, OrderStatus)>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    "SELECT customer_id, status FROM orders WHERE id = ?",
                    [id],
                    |r| {
                        Ok((
                            UserId::try_from(r.get::<_, String>(0).db()?)
                                .map_err(|_| corrupt("orders.customer_id"))?,
                            OrderStatus::parse(&r.get::<_, String>(1).db()?)
                                .ok_or_else(|| corrupt("orders.status"))?,
                        ))
                    },
                )
            })
            .await
    }

    async fn settled_among(&self, ids: &[OrderId]) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|o| o.as_str().to_owned()).collect();
        self.db.read(move |conn| settled_among(conn, &ids)).await
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<RefundRecord>, StoreError> {
        let id = id.clone();
        self.db.read(move |conn| refund(conn, &id)).await
    }

    async fn cancel_work(
        &self,
        event: &EventId,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<CancelWork, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                let tx = conn.transaction().db()?;
                let active_holds = rows::all(
                    &tx,
                    "SELECT id FROM holds WHERE event_id = ? AND status = 'active' AND expires_at > ? \
                     ORDER BY id LIMIT ?",
                    params![event, ms(now), limit as i64],
                    |r| parse(HoldId::try_from(r.get::<_, String>(0).db()?), "holds.id"),
                )?;
                let paid_orders = rows::all(
                    &tx,
                    "SELECT id FROM orders WHERE event_id = ? AND status = 'paid' \
                     AND amount > refunded_amount ORDER BY id LIMIT ?",
                    params![event, limit as i64],
                    |r| {
                        OrderId::parse(&r.get::<_, String>(0).db()?)
                            .ok_or_else(|| corrupt("orders.id"))
                    },
                )?;
                let unsettled = rows::scalar::<i64>(
                    &tx,
                    "SELECT COUNT(*) FROM orders WHERE event_id = ? \
                     AND status IN ('pending_payment', 'payment_unknown')",
                    [&event],
                )?
                .unwrap_or(0);
                Ok(CancelWork {
                    active_holds,
                    paid_orders,
                    unsettled_orders: unsettled as u64,
                })
            })
            .await
    }
}

/// A stored idempotent answer, read on `conn` (inside a write, it sees the write's
/// own transaction).
pub(crate) fn idempotent_in(
    conn: &Connection,
    user: &UserId,
    route: &str,
    key: &str,
) -> Result<Option<Idempotent>, StoreError> {
    rows::first(
        conn,
        &format!("SELECT {IDEMPOTENT_COLUMNS} FROM idempotency_keys WHERE user_id = ? AND route = ? AND key = ?"),
        params![user.as_str(), route, key],
        rows::idempotent,
    )
}

pub(crate) fn order(conn: &mut Connection, id: &OrderId) -> Result<Option<Order>, StoreError> {
    // Order, items and tickets from one snapshot.
    let tx = conn.transaction().db()?;
    rows::first(
        &tx,
        &format!("SELECT {ORDER_READ_COLUMNS} FROM orders WHERE id = ?"),
        [id.as_str()],
        |r| rows::order(&tx, r),
    )
}

pub(crate) fn orders_of(
    conn: &mut Connection,
    customer: &UserId,
) -> Result<Vec<Order>, StoreError> {
    let tx = conn.transaction().db()?;
    rows::all(
        &tx,
        &format!("SELECT {ORDER_READ_COLUMNS} FROM orders WHERE customer_id = ? ORDER BY created_at DESC, id DESC LIMIT 500"),
        [customer.as_str()],
        |r| rows::order(&tx, r),
    )
}

fn order_id(r: &rusqlite::Row) -> Result<OrderId, StoreError> {
    OrderId::parse(&r.get::<_, String>(0).db()?).ok_or_else(|| corrupt("orders.id"))
}

pub(crate) fn pending(
    conn: &mut Connection,
    idle_since: OffsetDateTime,
) -> Result<Vec<OrderId>, StoreError> {
    rows::all(
        conn,
        "SELECT id FROM orders WHERE status = 'payment_unknown' \
         OR (status = 'pending_payment' AND updated_at <= ?) ORDER BY created_at",
        [ms(idle_since)],
        order_id,
    )
}

/// Which of `ids` are no longer pending: one statement (the ids as a JSON array).
pub(crate) fn settled_among(
    conn: &mut Connection,
    ids: &[String],
) -> Result<Vec<OrderId>, StoreError> {
    let ids = serde_json::to_string(ids).map_err(|e| StoreError::Unavailable(e.into()))?;
    rows::all(
        conn,
        "SELECT id FROM orders WHERE id IN (SELECT value FROM json_each(?)) AND status <> 'pending_payment'",
        [ids],
        order_id,
    )
}

/// A refund, for the payment worker.
pub(crate) fn refund(
    conn: &mut Connection,
    id: &RefundId,
) -> Result<Option<RefundRecord>, StoreError> {
    rows::first(
        conn,
        "SELECT id, order_id, charge_id, amount, currency, settled_at IS NOT NULL, whole FROM refunds WHERE id = ?",
        [id.as_str()],
        |r| {
            let currency: String = r.get(4).db()?;
            Ok(RefundRecord {
                id: RefundId::parse(&r.get::<_, String>(0).db()?)
                    .ok_or_else(|| corrupt("refunds.id"))?,
                order_id: OrderId::parse(&r.get::<_, String>(1).db()?)
                    .ok_or_else(|| corrupt("refunds.order_id"))?,
                charge_id: r.get(2).db()?,
                amount: Money::new(
                    r.get(3).db()?,
                    Currency::try_from(currency.as_str()).map_err(|_| corrupt("refunds.currency"))?,
                ),
                settled: r.get(5).db()?,
                whole: r.get(6).db()?,
            })
        },
    )
}
