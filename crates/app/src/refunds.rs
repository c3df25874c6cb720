//! Refunds of paid orders, whole or in part (issue 8).
//!
//! The decision is the store's, in one transaction ([`Write::Refund`]): the order
//! row is read and changed together (one writer on SQLite, a row lock on
//! PostgreSQL), so two refunds of one order never both take what is left, and a
//! repeat of a whole refund finds nothing left and changes nothing. The money moves
//! afterwards: the same transaction queues `order.refunded`, whose payment worker
//! asks the gateway for the refund under the refund's own id as idempotency key,
//! retried until the gateway confirms (at least once, never twice). A whole refund
//! sells the seats no more in the store, and the hold engine forgets the event so
//! that it is rebuilt from the store at its next use: the seats show available at
//! once. This module must never move money before the store has decided.

use boxoffice_domain::{
    CheckoutAnswer, Job, MessageId, Money, Order, OrderId, RefundId, ValidationError,
};
use boxoffice_ports::{Ack, GatewayError, Idempotent, RefundOutcome, Write, Written};
use serde::Deserialize;

use crate::resilience::backoff;
use crate::{App, AppError, Principal};

/// The action refund idempotency keys are scoped to.
const REFUND: &str = "refund";

/// `POST /v1/orders/{id}/refund`: how much to refund (all that is left if absent).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundAsk {
    #[serde(default)]
    pub amount: Option<Money>,
}

/// What a refund job's attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundAttempt {
    /// The gateway confirmed it (now or before).
    Done,
    /// Try again then: the gateway did not confirm.
    RetryAt(time::OffsetDateTime),
}

impl App {
    /// Refunds `ask.amount` of a paid order (all that is left without one) and
    /// answers the order as it stands after. Whole: the order is `refunded`, its
    /// tickets void, its seats on sale again at once. Repeating a whole refund is
    /// harmless: nothing is left, nothing more moves, the same order is answered.
    ///
    /// With an `Idempotency-Key` (`key`), the refund is decided once per key: a
    /// repeat (or a request sent twice at once) answers the order as it stands and
    /// refunds nothing more; the same key with another request is refused. Without
    /// one, each partial refund request is a refund of its own.
    pub async fn refund_order(
        &self,
        who: &Principal,
        id: &str,
        ask: RefundAsk,
        key: Option<&str>,
    ) -> Result<Order, AppError> {
        if key.is_some_and(|k| !crate::checkout::valid_key(k)) {
            return Err(ValidationError::new(
                "Idempotency-Key",
                "1 to 255 visible ASCII characters",
            )
            .into());
        }
        let id = OrderId::parse(id).ok_or(AppError::NotFound)?;
        let order = self.store.order(&id).await?.ok_or(AppError::NotFound)?;
        let event = self.cached_event(&order.event_id).await?;
        who.require_refund(&order, &event.event().org_id)?;
        let amount = match ask.amount {
            None => None,
            Some(m) if m.currency != order.total.currency => {
                return Err(ValidationError::new("amount.currency", "the order's currency").into())
            }
            Some(m) if m.amount <= 0 => {
                return Err(ValidationError::new("amount.amount", "a positive amount").into())
            }
            Some(m) => Some(m.amount),
        };
        let idempotency = key.map(|key| {
            let amount = amount.map_or_else(|| "rest".to_owned(), |a| a.to_string());
            Box::new(Idempotent {
                user_id: who.user_id.clone(),
                route: REFUND.into(),
                key: key.to_owned(),
                fingerprint: crate::checkout::fingerprint(id.as_str(), &amount, ""),
                answer: CheckoutAnswer::Refunded {
                    order_id: id.clone(),
                },
            })
        });
        if let Some(i) = &idempotency {
            if let Some(prev) = self.store.idempotent(&who.user_id, REFUND, &i.key).await? {
                return self.refund_replay(&i.fingerprint, prev).await;
            }
        }
        let refund = RefundId::new();
        let record = self.audit_record(
            who,
            "order.refund_requested",
            id.as_str(),
            Some(&order.event_id),
            Some(serde_json::json!({"status": order.status.as_str(), "refunded": order.refunded})),
            Some(serde_json::json!({"refund_id": refund, "amount": amount})),
        );
        let w = Write::Refund {
            refund,
            order: id.clone(),
            amount,
            idempotency: idempotency.clone(),
            message: MessageId::new(),
            now: self.clock.now(),
        };
        let written = self.writer.write(self.audited(w, record)).await?;
        match written {
            Written::Refund(RefundOutcome::Refunded { amount, whole }) => {
                tracing::info!(order = %id, amount = amount.amount, whole, "order refunded");
                metrics::counter!("boxoffice_refunds_decided_total", "whole" => whole.to_string())
                    .increment(1);
                if whole {
                    self.put_back_on_sale(&order).await;
                    self.nudge_waitlist();
                    metrics::counter!("boxoffice_orders_total", "status" => "refunded")
                        .increment(1);
                }
            }
            Written::Refund(RefundOutcome::NothingLeft) => {}
            Written::Refund(RefundOutcome::Replay(prev)) => {
                let fp = idempotency.map(|i| i.fingerprint).unwrap_or_default();
                return self.refund_replay(&fp, prev).await;
            }
            Written::Refund(RefundOutcome::NotPaid(status)) => {
                return Err(AppError::OrderNotPaid { status })
            }
            Written::Refund(RefundOutcome::TooMuch { remaining }) => {
                return Err(AppError::RefundTooLarge { remaining })
            }
            other => {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "the store answered {other:?} to a refund"
                )))
            }
        }
        self.store.order(&id).await?.ok_or(AppError::NotFound)
    }

    /// A refund request whose key was used before: the same request is answered
    /// the order as it stands now (nothing more refunded); another is refused.
    async fn refund_replay(&self, fingerprint: &str, prev: Idempotent) -> Result<Order, AppError> {
        match prev.answer {
            CheckoutAnswer::Refunded { order_id } if prev.fingerprint == fingerprint => {
                self.store.order(&order_id).await?.ok_or(AppError::NotFound)
            }
            _ => Err(AppError::IdempotencyKeyReused),
        }
    }

    /// A whole refund's seats are sold no more in the store: the engine, which
    /// still has them sold, forgets the event and is rebuilt from the store at its
    /// next use (rebuilds never forget a hold in flight: see `holds.rs`). If the
    /// engine does not answer, the forgetting is retried until it does; meanwhile
    /// the seats only stay unsellable, never sold twice (`sold_seats` decides).
    async fn put_back_on_sale(&self, order: &Order) {
        self.follower.forget(&order.event_id).await;
    }

    /// One attempt of a refund job (the payment worker, `order.refunded`): asks the
    /// gateway for the refund under its id, and records its confirmation with the
    /// job's ack. Until the gateway confirms it is retried, whatever the number of
    /// attempts: the buyer's money must come back.
    pub async fn move_refund(
        &self,
        refund: &RefundId,
        attempt: u32,
        ack: Option<Ack>,
    ) -> Result<RefundAttempt, AppError> {
        let Some(r) = self.store.refund(refund).await? else {
            self.ack(ack).await?;
            return Ok(RefundAttempt::Done);
        };
        if r.settled {
            self.ack(ack).await?;
            return Ok(RefundAttempt::Done);
        }
        let asked = tokio::time::timeout(
            self.settings.gateway_timeout,
            self.gateway
                .refund(&r.charge_id, Some(r.amount.amount), r.id.as_str()),
        )
        .await
        .unwrap_or_else(|_| Err(GatewayError::Transient("refund timed out".into())));
        match asked {
            Ok(()) => {
                self.writer
                    .write(Write::RefundSettled {
                        refund: r.id.clone(),
                        now: self.clock.now(),
                        ack,
                    })
                    .await?;
                metrics::counter!("boxoffice_refunds_total").increment(1);
                Ok(RefundAttempt::Done)
            }
            Err(e) => {
                if matches!(e, GatewayError::Rejected(_)) {
                    tracing::error!(refund = %r.id, order = %r.order_id, error = %e, "the gateway refused a refund; retrying (an operator should look)");
                } else {
                    tracing::warn!(refund = %r.id, order = %r.order_id, error = %e, attempt, "refund not confirmed yet; retrying");
                }
                metrics::counter!("boxoffice_refund_retries_total").increment(1);
                Ok(RefundAttempt::RetryAt(self.clock.now() + backoff(attempt)))
            }
        }
    }

    /// What an `order.refunded` email, audit row and analytics record say.
    pub(crate) async fn refund_of(
        &self,
        job: &Job,
    ) -> Result<Option<boxoffice_ports::RefundRecord>, AppError> {
        match job {
            Job::OrderRefunded { refund_id, .. } => Ok(self.store.refund(refund_id).await?),
            _ => Ok(None),
        }
    }
}
