//! Taking payment for an order: one attempt per call, safe to repeat.
//!
//! Every attempt charges under the order's idempotency key, so repeating one — after
//! a timeout, a crash between charge and commit, a redelivered job — never charges
//! twice: the gateway replays its first answer. What the charge means is then
//! recorded in one transaction. If the store refuses the sale (a seat sold to
//! someone else, which a correct engine never allows) the charge is refunded and the
//! order fails cleanly.

use boxoffice_domain::{MessageId, Millis, Order, OrderId, OrderStatus, Ticket, TicketId};
use boxoffice_ports::{
    Ack, ChargeOutcome, ChargeRequest, EngineError, FailOutcome, GatewayError, PaidOutcome,
    StoreError, Write, Written,
};
use std::time::Instant;
use time::OffsetDateTime;

use crate::resilience::backoff;
use crate::{App, AppError};

/// What a pass of the reconciler found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Orders it settled (paid or failed) in this pass.
    pub settled: usize,
    /// Orders still `payment_unknown` after it (the gateway still does not answer).
    pub unknown: usize,
    /// Orders still `pending_payment` (their payment job is still at work).
    pub pending: usize,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The order is final (now, or it already was).
    Done,
    /// Try again at this instant (gateway trouble).
    RetryAt(OffsetDateTime),
    /// The gateway's answer could not be had by the deadline: the order is
    /// `payment_unknown` and the reconciler owns it (the job is done).
    Unknown,
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

fn ignore_unloaded<T: Default>(r: Result<T, EngineError>) -> Result<T, AppError> {
    match r {
        // The engine does not have the event: it will be rebuilt from the store,
        // which already says what happened.
        Err(EngineError::EventNotLoaded(_)) => Ok(T::default()),
        other => Ok(other?),
    }
}

impl App {
    /// One payment attempt for `order`; `attempt` counts from 1. `ack` is the job's
    /// acknowledgement, recorded with the attempt's outcome once the order is final
    /// (or handed to the reconciler as `payment_unknown`).
    ///
    /// An attempt never fails an order it cannot get an answer for: up to the give-up
    /// point (90% of the payment hold) it retries; from there it asks the gateway
    /// once more under the same key, even with the circuit breaker open (a replay
    /// returns the first answer, so this is the look-up of what happened to the
    /// key), and if that is lost too the order becomes `payment_unknown`: a charge
    /// may exist, so the seats stay held and the reconciler asks again later.
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
            self.ack(ack).await?;
            return Ok(Attempt::Done);
        }
        let unknown = order.status == OrderStatus::PaymentUnknown;
        let now = self.clock.now();
        // Leave a margin before the hold's payment deadline to record the outcome.
        let give_up_at = order.created_at + self.settings.payment_hold.mul_f64(0.9);
        let last_chance = unknown || now >= give_up_at;
        if let Err(reopens) = self.guard.allow() {
            if !last_chance {
                let wait = reopens.saturating_duration_since(Instant::now());
                return Ok(Attempt::RetryAt(now + wait));
            }
            // Past the give-up point: ask anyway before deciding anything.
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
                if unknown || now >= give_up_at {
                    tracing::warn!(order = %order.id, %why, "no answer from the gateway by the payment deadline: payment unknown");
                    self.payment_unknown(&order, ack).await?;
                    return Ok(Attempt::Unknown);
                }
                tracing::debug!(order = %order.id, %why, attempt, "transient gateway error");
                Ok(Attempt::RetryAt(now + backoff(attempt)))
            }
        }
    }

    /// Records that nobody knows yet whether `order` was charged: its seats are kept
    /// (in the engine first, then the store) for another payment hold, and the
    /// reconciler owns the order from now on. Repeating it extends the hold again.
    async fn payment_unknown(&self, order: &Order, ack: Option<Ack>) -> Result<(), AppError> {
        let now = self.clock.now();
        let until = now + self.settings.payment_hold;
        let extended = ignore_unloaded(
            self.engine
                .extend(
                    &order.event_id,
                    &order.hold_id,
                    Millis::from_datetime(until),
                    Millis::from_datetime(now),
                )
                .await,
        )?;
        if !extended {
            // The engine no longer keeps the seats (the deadline passed before we
            // could get here): the store must not claim them either. If the charge
            // turns out to exist, completing it re-checks the seats.
            tracing::warn!(order = %order.id, "payment unknown and its hold is gone");
        }
        let marked = self
            .writer
            .write(Write::PaymentUnknown {
                order: order.id.clone(),
                hold_until: extended.then_some(until),
                now,
                ack,
            })
            .await?;
        if marked == Written::Marked(true) && order.status == OrderStatus::PendingPayment {
            metrics::counter!("boxoffice_orders_total", "status" => "payment_unknown").increment(1);
            self.announce(&order.id).await;
        }
        Ok(())
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
                ignore_unloaded(
                    self.engine
                        .confirm(&order.event_id, &order.hold_id, Millis::from_datetime(now))
                        .await
                        .map(|_| ()),
                )?;
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
            let now_ms = Millis::from_datetime(now);
            match hold_until {
                // The buyer may try again with another card until the hold's own TTL.
                Some(t) => ignore_unloaded(
                    self.engine
                        .extend(
                            &order.event_id,
                            &order.hold_id,
                            Millis::from_datetime(t),
                            now_ms,
                        )
                        .await,
                )
                .map(|_| ())?,
                None => ignore_unloaded(
                    self.engine
                        .release(&order.event_id, &order.hold_id, now_ms)
                        .await
                        .map(|_| ()),
                )?,
            }
            metrics::counter!("boxoffice_orders_total", "status" => "failed").increment(1);
            self.announce(&order.id).await;
        }
        Ok(())
    }

    /// One pass of the payment reconciler: every order still waiting for its payment
    /// — `payment_unknown`, or `pending_payment` untouched for longer than
    /// `reconcile_after` (a crash between charge and commit, a job lost with its node)
    /// — is settled against the gateway by replaying its charge under its key: the
    /// gateway answers what it did the first time, or decides now if the first
    /// request never reached it. Runs on every node at once safely: the key makes
    /// the gateway answer every replay the same, and the store records an order's
    /// outcome once. Sets `boxoffice_payments_unsettled` to what is left.
    pub async fn reconcile(&self) -> Result<Reconciled, AppError> {
        let ids = self.store.pending_orders().await?;
        let mut out = Reconciled::default();
        for id in ids {
            let Some(o) = self.store.order(&id).await? else {
                continue;
            };
            let idle = self.clock.now() - o.updated_at;
            match o.status {
                OrderStatus::PaymentUnknown => {}
                OrderStatus::PendingPayment if idle >= self.settings.reconcile_after => {}
                OrderStatus::PendingPayment => {
                    out.pending += 1;
                    continue;
                }
                _ => continue,
            }
            match self.pay(&id, 1, None).await {
                Ok(Attempt::Done) => out.settled += 1,
                Ok(Attempt::Unknown) => out.unknown += 1,
                Ok(Attempt::RetryAt(_)) => out.pending += 1,
                Err(e) => {
                    tracing::warn!(order = %id, error = ?e, "reconciling a payment failed; next pass");
                    match o.status {
                        OrderStatus::PaymentUnknown => out.unknown += 1,
                        _ => out.pending += 1,
                    }
                }
            }
        }
        metrics::gauge!("boxoffice_payments_unsettled", "status" => "pending_payment")
            .set(out.pending as f64);
        metrics::gauge!("boxoffice_payments_unsettled", "status" => "payment_unknown")
            .set(out.unknown as f64);
        if out.settled > 0 || out.unknown > 0 {
            tracing::info!(
                settled = out.settled,
                unknown = out.unknown,
                pending = out.pending,
                "reconciled payments"
            );
        }
        Ok(out)
    }
}
