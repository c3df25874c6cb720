//! Order reads on SQLite.

use boxoffice_domain::{Job, MessageId, Order, OrderId, UserId};
use boxoffice_ports::{Idempotent, StoreError};
use rusqlite::{params, Connection};

use crate::db::{corrupt, ms, OrStore};
use crate::rows::{self, IDEMPOTENT_COLUMNS, ORDER_COLUMNS};
use time::OffsetDateTime;

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
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"),
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
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = ? ORDER BY created_at DESC, id DESC LIMIT 500"),
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
