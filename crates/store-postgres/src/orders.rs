//! Checkout, payment outcomes and orders on PostgreSQL: each business step is one
//! transaction, outbox rows included; an order is locked (`FOR UPDATE`) while its
//! payment outcome is recorded, so two deliveries of one job cannot both record it.

use boxoffice_domain::{
    Currency, EventId, HoldStatus, Job, MessageId, Money, Order, OrderId, OrderItem, OrderStatus,
    SeatId, Ticket, TicketId, TierId, UserId,
};
use boxoffice_ports::{
    CheckoutOutcome, CheckoutRecord, FailOutcome, Idempotent, PaidOutcome, StoreError,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use crate::{corrupt, dt, map_err, ms, parse, PgStore};

/// Writes a job to the outbox and fans it out to its consumers' queues.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    message: &MessageId,
    job: &Job,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.into()))?;
    sqlx::query("INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, $2, $3, $4)")
        .bind(message.as_str())
        .bind(job.topic())
        .bind(payload)
        .bind(ms(now))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    for consumer in job.consumers() {
        sqlx::query(
            "INSERT INTO jobs (message_id, consumer, state, available_at, enqueued_at) VALUES ($1, $2, 'ready', $3, $4)",
        )
        .bind(message.as_str())
        .bind(consumer.as_str())
        .bind(ms(now))
        .bind(ms(now))
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Sells a hold's items under the store's guards: one `sold_seats` row per seat (the
/// primary key refuses a second sale) or GA `sold` moved under its capacity CHECK.
pub(crate) async fn sell_items(
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

const ORDER_COLUMNS: &str = "id, customer_id, event_id, hold_id, email, status, failure_code, amount, currency, payment_token, created_at, updated_at";

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

fn status_of(s: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(s).ok_or_else(|| corrupt("orders.status"))
}

impl PgStore {
    pub(crate) async fn idempotent_impl(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        sqlx::query("SELECT user_id, route, key, fingerprint, status, body FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3")
            .bind(user.as_str())
            .bind(route)
            .bind(key)
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(idempotent_from)
            .transpose()
    }

    pub(crate) async fn checkout_impl(
        &self,
        rec: &CheckoutRecord,
        now: OffsetDateTime,
    ) -> Result<CheckoutOutcome, StoreError> {
        let o = &rec.order;
        let i = &rec.idempotency;
        let mut tx = self.writer.begin().await.map_err(map_err)?;
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
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if fresh.rows_affected() == 0 {
            drop(tx);
            let existing = self
                .idempotent_impl(&i.user_id, &i.route, &i.key)
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
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if converted.rows_affected() == 0 {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT status, expires_at FROM holds WHERE id = $1")
                    .bind(o.hold_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let (status, expires_at) = row.ok_or(StoreError::NotFound)?;
            return Ok(CheckoutOutcome::HoldNotActive {
                status: HoldStatus::parse(&status).ok_or_else(|| corrupt("holds.status"))?,
                expired: expires_at <= ms(now),
            });
        }
        sqlx::query(&format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        QueryBuilder::<Postgres>::new(
            "INSERT INTO order_items (order_id, position, seat_id, tier_id, amount, currency) ",
        )
        .push_values(o.items.iter().enumerate(), |mut b, (n, it)| {
            b.push_bind(o.id.as_str())
                .push_bind(n as i64)
                .push_bind(it.seat_id.as_ref().map(|s| s.as_str().to_owned()))
                .push_bind(it.tier_id.as_str())
                .push_bind(it.price.amount)
                .push_bind(it.price.currency.as_str());
        })
        .build()
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        enqueue(
            &mut tx,
            &rec.message,
            &Job::PaymentRequested {
                order_id: o.id.clone(),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(CheckoutOutcome::Created)
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
            "SELECT id FROM orders WHERE status = 'pending_payment' ORDER BY created_at",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        ids.iter()
            .map(|s| OrderId::parse(s).ok_or_else(|| corrupt("orders.id")))
            .collect()
    }

    pub(crate) async fn complete_payment_impl(
        &self,
        order: &OrderId,
        charge_id: &str,
        tickets: &[Ticket],
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<PaidOutcome, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let row: Option<(String, String, String, i64, String)> = sqlx::query_as(
            "SELECT status, hold_id, event_id, amount, currency FROM orders WHERE id = $1 FOR UPDATE",
        )
        .bind(order.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let (status, hold, event, amount, currency) = row.ok_or(StoreError::NotFound)?;
        let status = status_of(&status)?;
        if status != OrderStatus::PendingPayment {
            return Ok(PaidOutcome::AlreadyFinal(status));
        }
        let (ga_tier, quantity): (Option<String>, i64) =
            sqlx::query_as("SELECT ga_tier_id, quantity FROM holds WHERE id = $1")
                .bind(&hold)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
        sell_items(&mut tx, &event, &hold, ga_tier.as_deref(), quantity, now).await?;
        sqlx::query("UPDATE holds SET sold_at = $1, updated_at = $2 WHERE id = $3")
            .bind(ms(now))
            .bind(ms(now))
            .bind(&hold)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE orders SET status = 'paid', failure_code = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(ms(now))
        .bind(order.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("INSERT INTO payments (order_id, charge_id, amount, currency, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(order.as_str())
            .bind(charge_id)
            .bind(amount)
            .bind(&currency)
            .bind(ms(now))
            .execute(&mut *tx)
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
                    .push_bind(t.seat_id.as_ref().map(|s| s.as_str().to_owned()))
                    .push_bind(t.tier_id.as_str())
                    .push_bind(t.price.amount)
                    .push_bind(t.price.currency.as_str())
                    .push_bind(&t.code)
                    .push_bind(ms(now));
            })
            .build()
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        enqueue(
            &mut tx,
            message,
            &Job::OrderPaid {
                order_id: order.clone(),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(PaidOutcome::Paid)
    }

    pub(crate) async fn fail_payment_impl(
        &self,
        order: &OrderId,
        code: &str,
        restore_hold: bool,
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<FailOutcome, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT status, hold_id FROM orders WHERE id = $1 FOR UPDATE")
                .bind(order.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let (status, hold) = row.ok_or(StoreError::NotFound)?;
        let status = status_of(&status)?;
        if status != OrderStatus::PendingPayment {
            return Ok(FailOutcome::AlreadyFinal(status));
        }
        sqlx::query(
            "UPDATE orders SET status = 'failed', failure_code = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(code)
        .bind(ms(now))
        .bind(order.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let ttl: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE(ttl_expires_at, expires_at) FROM holds WHERE id = $1 AND status = 'converted' AND sold_at IS NULL",
        )
        .bind(&hold)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut hold_until = None;
        if let Some(ttl) = ttl {
            let back = restore_hold && ttl > ms(now);
            sqlx::query(
                "UPDATE holds SET status = $1, expires_at = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(if back { "active" } else { "expired" })
            .bind(if back { ttl } else { ttl.min(ms(now)) })
            .bind(ms(now))
            .bind(&hold)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            hold_until = back.then(|| dt(ttl));
        }
        enqueue(
            &mut tx,
            message,
            &Job::OrderFailed {
                order_id: order.clone(),
                code: code.to_owned(),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(FailOutcome::Failed { hold_until })
    }

    pub(crate) async fn record_audit_impl(
        &self,
        message: &MessageId,
        action: &str,
        subject: &str,
        detail: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_log (message_id, at, action, subject, detail) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
            .bind(message.as_str())
            .bind(ms(now))
            .bind(action)
            .bind(subject)
            .bind(detail)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn record_sale_stats_impl(
        &self,
        message: &MessageId,
        event: &EventId,
        tickets: u32,
        revenue: Money,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let first = sqlx::query(
            "INSERT INTO stats_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind(message.as_str())
        .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
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

    pub(crate) async fn mark_relayed_impl(
        &self,
        ids: &[MessageId],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        for id in ids {
            sqlx::query("UPDATE outbox SET relayed_at = $1 WHERE id = $2 AND relayed_at IS NULL")
                .bind(ms(now))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("UPDATE jobs SET state = 'done', done_at = $1 WHERE message_id = $2 AND state = 'ready'")
                .bind(ms(now))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    pub(crate) async fn mark_email_sent_impl(
        &self,
        message: &MessageId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO emails_sent (message_id, sent_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(message.as_str())
        .bind(ms(now))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
