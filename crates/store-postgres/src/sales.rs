//! Holds, checkout, orders and payments on PostgreSQL. The writes are the
//! group-committed batches of `writes.rs`; what is read back here: holds (with their
//! seats, in one statement), the inventory an engine is rebuilt from (one REPEATABLE
//! READ snapshot), orders with their items and tickets (three statements however
//! many orders), and stored idempotent answers.

use async_trait::async_trait;
use boxoffice_domain::{
    Currency, EventId, Hold, HoldId, Money, Order, OrderId, OrderItem, OrderStatus, RefundId,
    Ticket, TicketId, UserId,
};
use boxoffice_ports::{
    CancelWork, Idempotent, RefundRecord, SalesStore, StoreError, StoredInventory, Write, Written,
};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::rows::{self, HoldRow, IdempotentRow, OrderItemRow, OrderRow, TicketRow};
use crate::{corrupt, map_err, ts, PgStore};

/// A stored idempotent answer, read on `conn` (inside a write, it sees the write's
/// own transaction).
pub(crate) async fn idempotent_in(
    conn: &mut PgConnection,
    user: &UserId,
    route: &str,
    key: &str,
) -> Result<Option<Idempotent>, StoreError> {
    sqlx::query_as::<_, IdempotentRow>(&format!(
        "SELECT {} FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3",
        IdempotentRow::COLUMNS
    ))
    .bind(user.as_str())
    .bind(route)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    .map(Idempotent::try_from)
    .transpose()
}

#[async_trait]
impl SalesStore for PgStore {
    async fn write(&self, batch: &[Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_impl(batch).await
    }

    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError> {
        sqlx::query_as::<_, HoldRow>(&format!(
            "SELECT {} FROM holds h WHERE h.id = $1",
            HoldRow::COLUMNS
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(Hold::try_from)
        .transpose()
    }

    /// Live holds, sold seats and GA sold counts as of one instant: the reads share
    /// one REPEATABLE READ snapshot, so a sale committing meanwhile is seen either
    /// wholly (a sale, its hold gone) or not at all (a live hold), never both — at
    /// READ COMMITTED each statement had its own snapshot and a GA sale between them
    /// was counted twice (issue 8, fault 5).
    async fn inventory(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<StoredInventory, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(map_err)?;
        let holds = sqlx::query_as::<_, HoldRow>(&format!(
            "SELECT {} FROM holds h WHERE h.event_id = $1 AND h.status IN ('active', 'converted') \
             AND h.sold_at IS NULL AND h.expires_at > $2",
            HoldRow::COLUMNS
        ))
        .bind(event.as_str())
        .bind(ts(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let (sold, ga_sold): (Vec<String>, Vec<i32>) = sqlx::query_as(
            "SELECT ARRAY(SELECT seat_id FROM sold_seats WHERE event_id = $1), \
                    ARRAY(SELECT sold FROM ga_tiers WHERE event_id = $1 ORDER BY position)",
        )
        .bind(event.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(StoredInventory {
            live_holds: rows::all(holds)?,
            sold_seats: sold
                .into_iter()
                .map(|s| s.try_into().map_err(|_| corrupt("sold_seats.seat_id")))
                .collect::<Result<_, _>>()?,
            ga_sold: ga_sold
                .into_iter()
                .map(|n| u32::try_from(n).map_err(|_| corrupt("ga_tiers.sold")))
                .collect::<Result<_, _>>()?,
        })
    }

    async fn idempotent(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        idempotent_in(&mut conn, user, route, key).await
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.orders_where("id = $1", id.as_str()).await?.pop())
    }

    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError> {
        self.orders_where("customer_id = $1", customer.as_str())
            .await
    }

    async fn pending_orders(&self, idle_since: OffsetDateTime) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'payment_unknown' \
             OR (status = 'pending_payment' AND updated_at <= $1) ORDER BY created_at",
        )
        .bind(crate::ts(idle_since))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        ids.iter()
            .map(|s| OrderId::parse(s).ok_or_else(|| corrupt("orders.id")))
            .collect()
    }

    /// Which of `ids` are no longer pending, in one statement.
    async fn ticket_order(&self, ticket: &TicketId) -> Result<Option<OrderId>, StoreError> {
        let id: Option<String> = sqlx::query_scalar("SELECT order_id FROM tickets WHERE id = $1")
            .bind(ticket.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        id.map(|o| OrderId::parse(&o).ok_or_else(|| corrupt("tickets.order_id")))
            .transpose()
    }

    async fn order_state(&self, id: &OrderId) -> Result<Option<(UserId, OrderStatus)>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT customer_id, status FROM orders WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|(customer, status)| {
            Ok((
                UserId::try_from(customer).map_err(|_| corrupt("orders.customer_id"))?,
                OrderStatus::parse(&status).ok_or_else(|| corrupt("orders.status"))?,
            ))
        })
        .transpose()
    }

    async fn settled_among(&self, ids: &[OrderId]) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(|o| o.as_str()).collect();
        let settled: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE id = ANY($1) AND status <> 'pending_payment'",
        )
        .bind(ids)
        .persistent(false) // see `children`
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        settled
            .iter()
            .map(|s| OrderId::parse(s).ok_or_else(|| corrupt("orders.id")))
            .collect()
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<RefundRecord>, StoreError> {
        let row: Option<(String, String, i64, String, bool, bool)> = sqlx::query_as(
            "SELECT order_id, charge_id, amount, currency, settled_at IS NOT NULL, whole FROM refunds WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|(order, charge_id, amount, currency, settled, whole)| {
            Ok(RefundRecord {
                id: id.clone(),
                order_id: OrderId::parse(&order).ok_or_else(|| corrupt("refunds.order_id"))?,
                charge_id,
                amount: Money::new(
                    amount,
                    Currency::try_from(currency.as_str())
                        .map_err(|_| corrupt("refunds.currency"))?,
                ),
                settled,
                whole,
            })
        })
        .transpose()
    }

    async fn cancel_work(
        &self,
        event: &EventId,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<CancelWork, StoreError> {
        let (holds, orders, unsettled): (Vec<String>, Vec<String>, i64) = sqlx::query_as(
            "SELECT \
               ARRAY(SELECT id FROM holds WHERE event_id = $1 AND status = 'active' AND expires_at > $2 \
                     ORDER BY id LIMIT $3), \
               ARRAY(SELECT id FROM orders WHERE event_id = $1 AND status = 'paid' \
                     AND amount > refunded_amount ORDER BY id LIMIT $3), \
               (SELECT COUNT(*) FROM orders WHERE event_id = $1 \
                  AND status IN ('pending_payment', 'payment_unknown'))",
        )
        .bind(event.as_str())
        .bind(ts(now))
        .bind(limit as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(CancelWork {
            active_holds: holds
                .into_iter()
                .map(|h| HoldId::try_from(h.as_str()).map_err(|_| corrupt("holds.id")))
                .collect::<Result<_, _>>()?,
            paid_orders: orders
                .into_iter()
                .map(|o| OrderId::parse(&o).ok_or_else(|| corrupt("orders.id")))
                .collect::<Result<_, _>>()?,
            unsettled_orders: unsettled as u64,
        })
    }
}

impl PgStore {
    /// Orders matching `filter` (over `$1`), newest first, at most 500, each with
    /// its items and tickets.
    pub(crate) async fn orders_where(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<Order>, StoreError> {
        let sql = format!(
            "SELECT {} FROM orders WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT 500",
            OrderRow::COLUMNS
        );
        // The order and its children on one connection: one pool round trip, not three.
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let orders = sqlx::query_as::<_, OrderRow>(&sql)
            .bind(value)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        Self::with_children_on::<OrderItemRow, TicketRow, _, OrderItem, Ticket, _>(
            &mut conn,
            orders,
            |o| o.id.as_str(),
            |o, items, tickets| o.into_order(items, tickets),
        )
        .await
    }
}
