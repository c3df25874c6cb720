//! Taking payment for an order: one attempt per call, safe to repeat.
//!
//! Every attempt charges under the order's idempotency key, so repeating one — after
//! a timeout, a crash between charge and commit, a redelivered job — never charges
//! twice: the gateway replays its first answer. What the charge means is then
//! recorded in one transaction. If the store refuses the sale (a seat sold to
//! someone else, which a correct engine never allows) the charge is refunded and the
//! order fails cleanly.

use boxoffice_domain::{
    HoldItems, HoldRejection, HoldSelection, MessageId, Millis, Order, OrderId, OrderStatus,
};
use boxoffice_ports::{
    Ack, ChargeOutcome, ChargeRequest, EngineError, FailOutcome, GatewayError, HoldRequest,
    KeyState, PaidOutcome, StoreError, Write, Written,
};
use std::time::Instant;
use time::OffsetDateTime;

use crate::engine_sync::Follow;
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
    /// The payment waits on its buyer (3-D Secure) or its bank: the job is done, the
    /// webhook or the reconciler finishes the order.
    Waiting,
}

/// How far a webhook's timestamp may be from our clock (Stripe's libraries use 300 s).
pub const WEBHOOK_TOLERANCE_SECONDS: i64 = 300;

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks a `Stripe-Signature` header (`t=<unix time>,v1=<hex>[,v1=…]`): some `v1`
/// must be the HMAC-SHA256 of `<t>.<body>` under `secret` (compared in constant
/// time), and `t` within `tolerance` seconds of `now`.
pub fn verify_signature(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), AppError> {
    use hmac::{Hmac, Mac};
    let header = header.ok_or(AppError::WebhookRejected {
        code: "signature_missing",
        why: "no Stripe-Signature header",
    })?;
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex_decode(v)),
            _ => {}
        }
    }
    let t = t.ok_or(AppError::WebhookRejected {
        code: "signature_invalid",
        why: "the Stripe-Signature header has no timestamp",
    })?;
    if (now - t).abs() > tolerance {
        return Err(AppError::WebhookRejected {
            code: "signature_expired",
            why: "the webhook's timestamp is outside the tolerance",
        });
    }
    let valid = signatures.iter().any(|sig| {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(AppError::WebhookRejected {
            code: "signature_invalid",
            why: "no signature matches the body",
        })
    }
}

/// How long a late payment's re-claimed seats are kept for its sale to be recorded.
const RECLAIM_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// What re-claiming a late payment's seats found.
enum Reclaim {
    /// The payment is not late, or its hold is still live: nothing to re-claim.
    NotNeeded,
    /// The engine holds the seats for this order again.
    Reclaimed,
    /// Some seat is held or sold by someone else.
    Gone,
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
        let started = Instant::now();
        let read = self.store.order(order).await;
        metrics::histogram!("boxoffice_payment_stage_seconds", "stage" => "read")
            .record(started.elapsed().as_secs_f64());
        let Some(order) = read? else {
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
        let unknown = order.status == OrderStatus::PaymentUnknown;
        let now = self.clock.now();
        if self.event_cancelled(&order).await {
            // The event is cancelled: charge nothing anew; only what an earlier
            // attempt started is finished (and a charge that landed is refunded,
            // since the store refuses the sale: see `payment_succeeded`).
            return self.pay_late(&order, attempt, ack, "event_cancelled").await;
        }
        if now >= self.payment_deadline(&order) {
            // Too late to charge (a backlog, a restart): the seats may be someone
            // else's by now. Only what an earlier attempt started is finished — for
            // an unknown payment too: if its key was never used, no charge exists,
            // and replaying it now would make the late charge this forbids.
            return self.pay_late(&order, attempt, ack, "payment_expired").await;
        }
        // Leave a margin before the hold's payment deadline to record the outcome.
        let give_up_at = order.created_at + self.settings.payment_hold.mul_f64(0.9);
        let last_chance = unknown || now >= give_up_at;
        if let Err(reopens) = self.guard.allow() {
            if !last_chance {
                // The checkout waits, its seats kept; by the give-up point at the
                // latest it asks the gateway whatever the breaker says.
                let wait = reopens.saturating_duration_since(Instant::now());
                return Ok(Attempt::RetryAt((now + wait).min(give_up_at)));
            }
            // Past the give-up point: ask anyway before deciding anything.
        }
        self.guard.pace().await;
        let req = self.charge_request(&order)?;
        let started = Instant::now();
        let result = tokio::time::timeout(self.settings.gateway_timeout, self.gateway.charge(&req))
            .await
            .unwrap_or_else(|_| Err(GatewayError::Transient("timed out".into())));
        metrics::histogram!("boxoffice_gateway_call_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let recorded = self
            .record_outcome(&order, result, last_chance, attempt, ack)
            .await;
        metrics::histogram!("boxoffice_payment_stage_seconds", "stage" => "record")
            .record(started.elapsed().as_secs_f64());
        recorded
    }

    /// The gateway request for `order`, its payment token unsealed (the store
    /// keeps it sealed: `sealing.rs`).
    fn charge_request(&self, order: &Order) -> Result<ChargeRequest, AppError> {
        let token = self
            .sealer
            .open(&order.payment_token, order.id.as_str())
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "the payment token of order {} does not open with this node's key (was BOXOFFICE_SECRET_KEY changed?)",
                    order.id
                ))
            })?;
        Ok(ChargeRequest {
            idempotency_key: order.payment_key().to_owned(),
            amount: order.total,
            token,
            order_id: order.id.to_string(),
            description: format!("boxoffice order {}", order.id),
        })
    }

    /// The instant `order`'s seats were held until at checkout: after it the engine
    /// may have given them to someone else. (`payment_unknown` extends the hold.)
    fn payment_deadline(&self, order: &Order) -> OffsetDateTime {
        order.created_at + self.settings.payment_hold
    }

    /// A pending order's attempt after its payment deadline. Nothing is charged
    /// anew: the gateway is asked (without charging) whether an earlier attempt used
    /// the order's key, and the key is closed if not. Unused: the order fails
    /// (`payment_expired`), nothing charged, and no request still in flight can
    /// charge later. Used: the earlier request is replayed, which answers what
    /// became of it (a success is then completed only if its seats can be had
    /// again). No answer: `payment_unknown`, for the reconciler.
    async fn pay_late(
        &self,
        order: &Order,
        attempt: u32,
        ack: Option<Ack>,
        code: &str,
    ) -> Result<Attempt, AppError> {
        let req = self.charge_request(order)?;
        let closed =
            tokio::time::timeout(self.settings.gateway_timeout, self.gateway.close_key(&req))
                .await
                .unwrap_or_else(|_| Err(GatewayError::Transient("timed out".into())));
        match closed {
            Ok(KeyState::Unused) => {
                tracing::info!(order = %order.id, code, "no charge may be made any more and none was: order failed, nothing charged");
                self.payment_failed(order, code, false, ack).await?;
                Ok(Attempt::Done)
            }
            Ok(KeyState::Used) => {
                let result =
                    tokio::time::timeout(self.settings.gateway_timeout, self.gateway.charge(&req))
                        .await
                        .unwrap_or_else(|_| Err(GatewayError::Transient("timed out".into())));
                self.record_outcome(order, result, true, attempt, ack).await
            }
            Err(GatewayError::Busy(_)) => Ok(Attempt::RetryAt(self.clock.now() + backoff(attempt))),
            Err(e) => {
                tracing::warn!(order = %order.id, error = %e, "payment deadline passed and the gateway cannot say whether its key was used: payment unknown");
                self.payment_unknown(order, ack).await?;
                Ok(Attempt::Unknown)
            }
        }
    }

    /// Records what the gateway said of `order`'s payment (`last_chance`: no later
    /// attempt will come, so a payment still waiting is given up or left unknown).
    async fn record_outcome(
        &self,
        order: &Order,
        result: Result<ChargeOutcome, GatewayError>,
        last_chance: bool,
        attempt: u32,
        ack: Option<Ack>,
    ) -> Result<Attempt, AppError> {
        let order = order.clone();
        let unknown = order.status == OrderStatus::PaymentUnknown;
        let give_up_at = order.created_at + self.settings.payment_hold.mul_f64(0.9);
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
            Ok(ChargeOutcome::RequiresAction {
                payment_id,
                next_action,
            }) => {
                self.guard.success();
                if last_chance {
                    // The buyer never completed 3-D Secure: give the payment up.
                    return self.abandon(&order, &payment_id, ack).await;
                }
                self.next_actions
                    .lock()
                    .insert(order.id.clone(), next_action);
                self.waiting(&order, ack).await?;
                Ok(Attempt::Waiting)
            }
            Ok(ChargeOutcome::Processing { .. }) => {
                self.guard.success();
                if last_chance {
                    // It may still settle: keep the seats and let the reconciler see.
                    self.payment_unknown(&order, ack).await?;
                    return Ok(Attempt::Unknown);
                }
                self.waiting(&order, ack).await?;
                Ok(Attempt::Waiting)
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
            Err(GatewayError::Busy(why)) => {
                // Another call under this key (another node, the reconciler, a
                // webhook) is in flight and will record its answer; the gateway is
                // fine. Look again a little later, even past the give-up point.
                tracing::debug!(order = %order.id, %why, "payment call already in flight");
                Ok(Attempt::RetryAt(self.clock.now() + backoff(attempt)))
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
                Ok(Attempt::RetryAt((now + backoff(attempt)).min(give_up_at)))
            }
        }
    }

    /// The payment waits on its buyer (3-D Secure) or its bank (processing): the job
    /// is done, and the webhook (or, failing it, the reconciler) finishes the order.
    /// Long-polls wake, so a buyer who must act hears so at once.
    async fn waiting(&self, order: &Order, ack: Option<Ack>) -> Result<(), AppError> {
        self.ack(ack).await?;
        self.announce(&order.id).await;
        Ok(())
    }

    /// Cancels a payment its buyer left waiting past the give-up point. The gateway
    /// says where it stands after that: cancelled (the order fails and its hold goes
    /// back to its own TTL), succeeded meanwhile (the order is paid), or unknown.
    async fn abandon(
        &self,
        order: &Order,
        payment_id: &str,
        ack: Option<Ack>,
    ) -> Result<Attempt, AppError> {
        let cancelled = tokio::time::timeout(
            self.settings.gateway_timeout,
            self.gateway.cancel(payment_id),
        )
        .await
        .unwrap_or_else(|_| Err(GatewayError::Transient("timed out".into())));
        match cancelled {
            Ok(ChargeOutcome::Succeeded { charge_id }) => {
                self.payment_succeeded(order, &charge_id, ack).await?;
                Ok(Attempt::Done)
            }
            Ok(ChargeOutcome::Declined { code }) => {
                let code = if code == "payment_canceled" {
                    "authentication_required"
                } else {
                    code.as_str()
                };
                self.payment_failed(order, code, true, ack).await?;
                Ok(Attempt::Done)
            }
            Ok(_) | Err(_) => {
                self.payment_unknown(order, ack).await?;
                Ok(Attempt::Unknown)
            }
        }
    }

    /// What the buyer must do for `order`'s payment to go on, if anything: known
    /// here when this node ran the payment, else asked of the gateway.
    pub async fn next_action(&self, order: &Order) -> Option<boxoffice_ports::NextAction> {
        if order.status != OrderStatus::PendingPayment {
            return None;
        }
        if let Some(a) = self.next_actions.lock().get(&order.id) {
            return Some(a.clone());
        }
        // A courtesy for the buyer, never worth holding their request up for.
        let asked = tokio::time::timeout(
            self.settings
                .gateway_timeout
                .min(std::time::Duration::from_secs(2)),
            self.gateway.next_action(order.id.as_str()),
        )
        .await;
        match asked {
            Ok(Ok(Some(a))) => {
                self.next_actions.lock().insert(order.id.clone(), a.clone());
                Some(a)
            }
            _ => None,
        }
    }

    /// A Stripe webhook: verified (`Stripe-Signature`, HMAC-SHA256 of `t.body`
    /// compared in constant time, `t` within 300 s of our clock), then used only as
    /// a nudge: the payment it names is read again from the gateway under the
    /// order's key and recorded as it stands. So a duplicate, a late or an
    /// out-of-order event changes nothing that is not true, and an order is
    /// fulfilled even if its buyer never comes back.
    pub async fn stripe_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), AppError> {
        let secret = self
            .settings
            .stripe_webhook_secret
            .as_deref()
            .ok_or(AppError::NotFound)?;
        verify_signature(
            secret,
            signature,
            body,
            self.clock.now().unix_timestamp(),
            WEBHOOK_TOLERANCE_SECONDS,
        )?;
        let event: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| boxoffice_domain::ValidationError::new("body", "a Stripe event (JSON)"))?;
        let kind = event["type"].as_str().unwrap_or_default();
        metrics::counter!("boxoffice_webhooks_total", "type" => kind.to_owned()).increment(1);
        if !kind.starts_with("payment_intent.") {
            return Ok(());
        }
        let intent = &event["data"]["object"];
        let (Some(order), Some(payment_id)) = (
            intent["metadata"]["order_id"]
                .as_str()
                .and_then(OrderId::parse),
            intent["id"].as_str(),
        ) else {
            return Ok(());
        };
        let Some(order) = self.store.order(&order).await? else {
            return Ok(());
        };
        if order.status.is_final() {
            return Ok(());
        }
        // Read from the gateway, not from the event: a late or reordered event then
        // tells nothing stale. If the gateway does not answer, Stripe retries.
        let now = tokio::time::timeout(
            self.settings.gateway_timeout,
            self.gateway.payment(payment_id),
        )
        .await
        .unwrap_or_else(|_| Err(GatewayError::Transient("timed out".into())))?;
        self.record_outcome(&order, Ok(now), false, 1, None).await?;
        Ok(())
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
        let now = self.clock.now();
        let tickets = self.issue_tickets(order, now).await?;
        let reclaimed = match self.reclaim(order, now).await? {
            Reclaim::NotNeeded => false,
            Reclaim::Reclaimed => true,
            Reclaim::Gone => {
                // Someone else has the seats now: the buyer gets the money back and
                // is told so. A concurrent completion may have sold them to this
                // very order (its re-claim won): then there is nothing to undo.
                if let Some(o) = self.store.order(&order.id).await? {
                    if o.status == OrderStatus::Paid {
                        return self.ack(ack).await;
                    }
                }
                tracing::warn!(order = %order.id, "paid after its payment deadline and its seats are gone: refunding");
                metrics::counter!("boxoffice_late_payments_refunded_total").increment(1);
                self.refund(order, charge_id).await?;
                return self
                    .payment_failed(order, "seats_unavailable", false, ack)
                    .await;
            }
        };
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
                self.next_actions.lock().remove(&order.id);
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
                if reclaimed {
                    self.follower
                        .follow(&order.event_id, &order.hold_id, Follow::Release)
                        .await;
                }
                self.refund(order, charge_id).await?;
                self.ack(ack).await
            }
            Err(StoreError::Conflict {
                constraint: "event_cancelled",
            }) => {
                // The event was cancelled while this payment ran: the store sells
                // nothing of it any more, so the charge goes back and the order fails.
                tracing::warn!(order = %order.id, "charged for a cancelled event: refunding");
                metrics::counter!("boxoffice_cancelled_event_charges_refunded_total").increment(1);
                if reclaimed {
                    self.follower
                        .follow(&order.event_id, &order.hold_id, Follow::Release)
                        .await;
                }
                self.refund(order, charge_id).await?;
                self.payment_failed(order, "event_cancelled", false, ack)
                    .await
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

    /// Before completing a payment whose deadline passed: the engine may have
    /// expired the hold and given its seats to someone else, and the store's sale
    /// guard only refuses seats already *sold*, not seats another buyer holds. So
    /// the seats are claimed again in the engine, atomically (a hold under the same
    /// id and items, all or nothing, until a short new deadline), before the store
    /// records the sale. `Gone` when any of them is taken.
    async fn reclaim(&self, order: &Order, now: OffsetDateTime) -> Result<Reclaim, AppError> {
        if now < self.payment_deadline(order) {
            return Ok(Reclaim::NotNeeded);
        }
        let Some(hold) = self.store.hold(&order.hold_id).await? else {
            return Ok(Reclaim::Gone);
        };
        if hold.expires_at > now {
            // Still held (a `payment_unknown` order's hold was extended, engine first).
            return Ok(Reclaim::NotNeeded);
        }
        let ev = self.cached_event(&order.event_id).await?;
        let items = match &hold.selection {
            HoldSelection::Seats(ids) => {
                let table = self.seat_table(&ev).await?;
                let Some(ixs) = ids
                    .iter()
                    .map(|id| table.index.get(id).copied())
                    .collect::<Option<Vec<_>>>()
                else {
                    return Ok(Reclaim::Gone);
                };
                HoldItems::Seats(ixs)
            }
            HoldSelection::Ga { tier_id, quantity } => {
                let Some((tier, _)) = ev.event().ga_tier(tier_id) else {
                    return Ok(Reclaim::Gone);
                };
                HoldItems::Ga {
                    tier: tier as u16,
                    quantity: *quantity,
                }
            }
        };
        let until = now + RECLAIM_FOR;
        let req = HoldRequest {
            event: order.event_id.clone(),
            hold: order.hold_id.clone(),
            items,
            expires_at: Millis::from_datetime(until),
            now: Millis::from_datetime(now),
        };
        let engine = self.engine.clone();
        let granted = self
            .with_engine(&ev, || {
                let (engine, req) = (engine.clone(), req.clone());
                async move { engine.hold(req).await }
            })
            .await?;
        Ok(match granted {
            Ok(()) => Reclaim::Reclaimed,
            // The engine still keeps this very hold (its own clock has not passed
            // the deadline yet): the seats are this order's.
            Err(HoldRejection::DuplicateHold) => Reclaim::NotNeeded,
            Err(_) => Reclaim::Gone,
        })
    }

    /// Whether `order`'s event is cancelled, as this node knows it (the store
    /// refuses the sale in any case: this only spares a charge).
    async fn event_cancelled(&self, order: &Order) -> bool {
        matches!(
            self.cached_event(&order.event_id).await,
            Ok(ev) if ev.event().status == boxoffice_domain::EventStatus::Cancelled
        )
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
            self.gateway.refund(charge_id, None, &key),
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
        self.next_actions.lock().remove(&order.id);
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
            if hold_until.is_none() {
                // Its seats are free again: the waitlist's next in line may have them.
                self.nudge_waitlist();
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
        // Fresh pending orders are in their payment's hands: only the idle ones (and
        // every unknown one) are read, so a pass costs little in the middle of a sale.
        let idle_since = self.clock.now() - self.settings.reconcile_after;
        let ids = self.store.pending_orders(idle_since).await?;
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
                Ok(Attempt::Waiting) => out.pending += 1,
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

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn sign(secret: &str, t: i64, body: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn code(r: Result<(), AppError>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(AppError::WebhookRejected { code, .. }) => code,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn webhook_signatures() {
        let (secret, body, now) = ("whsec_x", r#"{"type":"x"}"#, 1_700_000_000);
        let good = sign(secret, now, body);
        let check = |h: &str, at: i64| {
            code(verify_signature(
                secret,
                Some(h),
                body.as_bytes(),
                at,
                WEBHOOK_TOLERANCE_SECONDS,
            ))
        };
        assert_eq!(check(&format!("t={now},v1={good}"), now), "ok");
        // Several signatures (a secret being rolled): one valid one is enough.
        let other = sign("whsec_old", now, body);
        assert_eq!(check(&format!("t={now},v1={other},v1={good}"), now), "ok");
        assert_eq!(
            check(&format!("t={now},v1={other}"), now),
            "signature_invalid"
        );
        // Other schemes (v0) are not ours to trust.
        assert_eq!(
            check(&format!("t={now},v0={good}"), now),
            "signature_invalid"
        );
        assert_eq!(check(&format!("v1={good}"), now), "signature_invalid");
        assert_eq!(
            check(&format!("t={now},v1=zz{}", &good[2..]), now),
            "signature_invalid"
        );
        // The timestamp is signed too: moving it breaks the signature.
        assert_eq!(
            check(&format!("t={},v1={good}", now - 1), now),
            "signature_invalid"
        );
        // 300 s either way of our clock.
        assert_eq!(check(&format!("t={now},v1={good}"), now + 300), "ok");
        assert_eq!(
            check(&format!("t={now},v1={good}"), now + 301),
            "signature_expired"
        );
        assert_eq!(
            check(&format!("t={now},v1={good}"), now - 301),
            "signature_expired"
        );
        assert_eq!(
            code(verify_signature(secret, None, body.as_bytes(), now, 300)),
            "signature_missing"
        );
    }
}
