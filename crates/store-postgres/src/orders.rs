//! Checkout, payment outcomes and orders on PostgreSQL: each business step is one
//! transaction, outbox rows included; an order is locked (`FOR UPDATE`) while its
//! payment outcome is recorded, so two deliveries of one job cannot both record it.

use boxoffice_domain::{
    Currency, EventId, Job, MessageId, Money, Order, OrderId, OrderItem, OrderStatus, SeatId,
    Ticket, TicketId, TierId, UserId,
};
use boxoffice_ports::{Idempotent, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{corrupt, dt, map_err, parse, PgStore};

fn idempotent_from(r: &PgRow) -> Result<Idempotent, StoreError> {
    Ok(Idempotent {
        user_id: parse(
            UserId::try_from(r.get::<String, _>("user_id")),
            "idempotency.user_id",
        )?,
        route: r.get("route"),
        key: r.get("key"),
        fingerprint: r.get("fingerprint"),
        status: r.get::<i64, _>("status") as u16,
        body: r.get("body"),
    })
}

pub(crate) const ORDER_COLUMNS: &str = "id, customer_id, event_id, hold_id, email, status, failure_code, amount, currency, payment_token, created_at, updated_at";

fn money(r: &PgRow) -> Result<Money, StoreError> {
    Ok(Money::new(
        r.get("amount"),
        parse(
            Currency::try_from(r.get::<String, _>("currency")),
            "currency",
        )?,
    ))
}

fn opt_seat(r: &PgRow) -> Result<Option<SeatId>, StoreError> {
    r.get::<Option<String>, _>("seat_id")
        .map(|s| parse(SeatId::try_from(s), "seat_id"))
        .transpose()
}

pub(crate) fn status_of(s: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(s).ok_or_else(|| corrupt("orders.status"))
}

/// A stored idempotent answer, read on `conn` (inside a write, it sees the write's
/// own transaction).
pub(crate) async fn idempotent_in(
    conn: &mut PgConnection,
    user: &UserId,
    route: &str,
    key: &str,
) -> Result<Option<Idempotent>, StoreError> {
    sqlx::query("SELECT user_id, route, key, fingerprint, status, body FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3")
        .bind(user.as_str())
        .bind(route)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(idempotent_from)
        .transpose()
}

impl PgStore {
    pub(crate) async fn idempotent_impl(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        idempotent_in(&mut conn, user, route, key).await
    }

    async fn order_from(&self, r: PgRow) -> Result<Order, StoreError> {
        let id: String = r.get("id");
        let items = sqlx::query("SELECT seat_id, tier_id, amount, currency FROM order_items WHERE order_id = $1 ORDER BY position")
            .bind(&id)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(OrderItem {
                    seat_id: opt_seat(r)?,
                    tier_id: parse(TierId::try_from(r.get::<String, _>("tier_id")), "tier_id")?,
                    price: money(r)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tickets = sqlx::query("SELECT id, seat_id, tier_id, amount, currency, code FROM tickets WHERE order_id = $1 ORDER BY position")
            .bind(&id)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| {
                Ok(Ticket {
                    id: TicketId::parse(r.get("id")).ok_or_else(|| corrupt("tickets.id"))?,
                    seat_id: opt_seat(r)?,
                    tier_id: parse(TierId::try_from(r.get::<String, _>("tier_id")), "tier_id")?,
                    price: money(r)?,
                    code: r.get("code"),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Order {
            id: OrderId::parse(&id).ok_or_else(|| corrupt("orders.id"))?,
            customer_id: parse(
                UserId::try_from(r.get::<String, _>("customer_id")),
                "customer_id",
            )?,
            event_id: parse(
                EventId::try_from(r.get::<String, _>("event_id")),
                "event_id",
            )?,
            hold_id: parse(
                boxoffice_domain::HoldId::try_from(r.get::<String, _>("hold_id")),
                "hold_id",
            )?,
            email: r.get("email"),
            status: status_of(r.get("status"))?,
            failure_code: r.get("failure_code"),
            items,
            total: money(&r)?,
            payment_token: r.get("payment_token"),
            tickets,
            created_at: dt(r.get("created_at")),
            updated_at: dt(r.get("updated_at")),
        })
    }

    pub(crate) async fn order_impl(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        match row {
            Some(r) => Ok(Some(self.order_from(r).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn orders_of_impl(&self, customer: &UserId) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500"
        ))
        .bind(customer.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.order_from(r).await?);
        }
        Ok(out)
    }

    pub(crate) async fn pending_orders_impl(&self) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status IN ('pending_payment', 'payment_unknown') ORDER BY created_at",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        ids.iter()
            .map(|s| OrderId::parse(s).ok_or_else(|| corrupt("orders.id")))
            .collect()
    }

    pub(crate) async fn sale_stats_impl(&self, event: &EventId) -> Result<(u64, i64), StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT tickets, revenue FROM event_sales WHERE event_id = $1")
                .bind(event.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(row.map_or((0, 0), |(t, r)| (t as u64, r)))
    }

    pub(crate) async fn unrelayed_impl(
        &self,
        limit: usize,
    ) -> Result<Vec<(MessageId, Job)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, payload FROM outbox WHERE relayed_at IS NULL ORDER BY created_at, id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.reader)
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
}
