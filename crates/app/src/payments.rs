//! Taking payment for an order: one attempt per call, safe to repeat.
//!
//! Every attempt charges under the order's idempotency key, so repeating one — after
//! a timeout, a crash between charge and commit, a redelivered job — never charges
//! twice: the gateway replays its first answer. What the charge means is then
//! recorded in one transaction. If the store refuses the sale (a seat sold to
//! someone else, which a correct engine never allows) the charge is refunded and the
//! order fails cleanly.

use boxoffice_domain::{MessageId, Millis, Order, OrderId, Ticket, TicketId};
use boxoffice_ports::{
    Ack, ChargeOutcome, ChargeRequest, FailOutcome, GatewayError, PaidOutcome, StoreError, Write,
};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

use crate::engine_sync::Follow;
use crate::resilience::backoff;
use crate::{App, AppError};

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The order is final (now, or it already was).
    Done,
    /// Try again at this instant (gateway trouble).
    RetryAt(OffsetDateTime),
}

fn ticket_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    // 26 characters of a 32-letter alphabet: 130 random bits.
    (0..26)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl App {
    /// One payment attempt for `order`; `attempt` counts from 1. `ack` is the job's
    /// acknowledgement, recorded with the attempt's outcome once the order is final.
    pub async fn pay(
        &self,
        order: &OrderId,
        attempt: u32,
        ack: Option<Ack>,
    ) -> Result<Attempt, AppError> {
        let Some(order) = self.store.order(order).await? else {
            self.ack(ack).await?;
            return Ok(Attempt::Done);
        };
        if order.status.is_final() {
            // Delivered again: its node may have died after the store committed the
            // outcome and before the engine followed (the engine outlives a node in
            // the distributed mode). The engine follows the store before the job is done.
            self.follower
                .follow_store(&order.event_id, &order.hold_id)
                .await;
            self.ack(ack).await?;
            return Ok(Attempt::Done);
        }
        let now = self.clock.now();
        // Leave a margin before the hold's payment deadline to record the outcome.
        let give_up_at = order.created_at + self.settings.payment_hold.mul_f64(0.9);
        if let Err(reopens) = self.guard.allow() {
            if now >= give_up_at {
                self.payment_failed(&order, "payment_unavailable", true, ack)
                    .await?;
                return Ok(Attempt::Done);
            }
            let wait = reopens.saturating_duration_since(Instant::now());
            return Ok(Attempt::RetryAt(now + wait));
        }
        self.guard.pace().await;
        let req = ChargeRequest {
            idempotency_key: order.payment_key().to_owned(),
            amount: order.total,
            token: order.payment_token.clone(),
            order_id: order.id.to_string(),
            description: format!("boxoffice order {}", order.id),
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.settings.gateway_timeout, self.gateway.charge(&req))
            .await
            .unwrap_or_else(|_| Err(GatewayError::Transient("timed out".into())));
        metrics::histogram!("boxoffice_gateway_call_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(ChargeOutcome::Succeeded { charge_id }) => {
                self.guard.success();
                self.payment_succeeded(&order, &charge_id, ack).await?;
                Ok(Attempt::Done)
            }
            Ok(ChargeOutcome::Declined { code }) => {
                self.guard.success();
                self.payment_failed(&order, &code, true, ack).await?;
                Ok(Attempt::Done)
            }
            Err(GatewayError::Rejected(why)) => {
                // The gateway answered; it will answer the same again.
                self.guard.success();
                tracing::warn!(order = %order.id, %why, "gateway rejected the charge");
                metrics::counter!("boxoffice_gateway_errors_total", "kind" => "rejected")
                    .increment(1);
                self.payment_failed(&order, "payment_error", true, ack)
                    .await?;
                Ok(Attempt::Done)
            }
            Err(GatewayError::Transient(why)) => {
                self.guard.failure();
                metrics::counter!("boxoffice_gateway_errors_total", "kind" => "transient")
                    .increment(1);
                let now = self.clock.now();
                if now >= give_up_at {
                    tracing::warn!(order = %order.id, %why, "gateway unavailable past the payment deadline");
                    self.payment_failed(&order, "payment_unavailable", true, ack)
                        .await?;
                    return Ok(Attempt::Done);
                }
                tracing::debug!(order = %order.id, %why, attempt, "transient gateway error");
                Ok(Attempt::RetryAt(now + backoff(attempt)))
            }
        }
    }

    async fn payment_succeeded(
        &self,
        order: &Order,
        charge_id: &str,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        let tickets: Vec<Ticket> = order
            .items
            .iter()
            .map(|it| Ticket {
                id: TicketId::new(),
                seat_id: it.seat_id.clone(),
                tier_id: it.tier_id.clone(),
                price: it.price,
                code: ticket_code(),
            })
            .collect();
        let now = self.clock.now();
        let paid = Write::Paid {
            order: order.id.clone(),
            charge_id: charge_id.to_owned(),
            tickets,
            message: MessageId::new(),
            now,
            ack: ack.clone(),
        };
        match self.writer.paid(paid).await {
            Ok(PaidOutcome::Paid) => {
                // The store sold it: the engine follows, repaired if it fails now.
                self.follower
                    .follow(&order.event_id, &order.hold_id, Follow::Confirm)
                    .await;
                metrics::counter!("boxoffice_orders_total", "status" => "paid").increment(1);
                self.announce(&order.id).await;
                Ok(())
            }
            Ok(PaidOutcome::AlreadyFinal(boxoffice_domain::OrderStatus::Paid)) => Ok(()),
            Ok(PaidOutcome::AlreadyFinal(_)) => {
                // The order ended without this charge (it failed meanwhile): the money
                // goes back, and only then is the job done.
                self.refund(order, charge_id).await?;
                self.ack(ack).await
            }
            Err(StoreError::Conflict { constraint }) => {
                tracing::error!(order = %order.id, constraint, "the store refused a sale the engine allowed; refunding");
                metrics::counter!("boxoffice_sales_refused_total", "constraint" => constraint)
                    .increment(1);
                self.refund(order, charge_id).await?;
                self.payment_failed(order, "seats_unavailable", false, ack)
                    .await?;
                // The engine was wrong about this event: rebuild it from the store.
                self.engine.evict(&order.event_id).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records that a job is done when its handler had nothing else to write.
    pub(crate) async fn ack(&self, ack: Option<Ack>) -> Result<(), AppError> {
        if let Some(ack) = ack {
            self.writer.write(Write::Ack(ack)).await?;
        }
        Ok(())
    }

    async fn refund(&self, order: &Order, charge_id: &str) -> Result<(), AppError> {
        let key = format!("refund-{}", order.id);
        match tokio::time::timeout(
            self.settings.gateway_timeout,
            self.gateway.refund(charge_id, &key),
        )
        .await
        {
            Ok(Ok(())) => {
                metrics::counter!("boxoffice_refunds_total").increment(1);
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(GatewayError::Transient("refund timed out".into()).into()),
        }
    }

    pub(crate) async fn payment_failed(
        &self,
        order: &Order,
        code: &str,
        restore_hold: bool,
        ack: Option<Ack>,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let out = self
            .writer
            .failed(Write::Failed {
                order: order.id.clone(),
                code: code.to_owned(),
                restore_hold,
                message: MessageId::new(),
                now,
                ack,
            })
            .await?;
        if let FailOutcome::Failed { hold_until } = out {
            // The buyer may try again with another card until the hold's own TTL;
            // the engine follows the store, repaired if it fails now.
            let follow = match hold_until {
                Some(t) => Follow::Extend(Millis::from_datetime(t)),
                None => Follow::Release,
            };
            self.follower
                .follow(&order.event_id, &order.hold_id, follow)
                .await;
            metrics::counter!("boxoffice_orders_total", "status" => "failed").increment(1);
            self.announce(&order.id).await;
        }
        Ok(())
    }

    /// On start: every order left pending (a crash between charge and commit, or
    /// before the charge) is paid or failed now, by replaying its charge under its key.
    pub async fn reconcile_pending(&self) -> Result<usize, AppError> {
        let pending = self.store.pending_orders().await?;
        let n = pending.len();
        for id in pending {
            let mut attempt = 1;
            loop {
                match self.pay(&id, attempt, None).await? {
                    Attempt::Done => break,
                    Attempt::RetryAt(_) if attempt >= 3 => break, // the queue takes over
                    Attempt::RetryAt(at) => {
                        let wait = (at - self.clock.now()).max(time::Duration::ZERO);
                        tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
                        attempt += 1;
                    }
                }
            }
        }
        if n > 0 {
            tracing::info!(orders = n, "reconciled pending payments");
        }
        Ok(n)
    }
}
