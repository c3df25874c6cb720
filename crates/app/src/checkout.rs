//! Checkout and orders.
//!
//! A checkout turns an active hold into an order whose payment is pending, in one
//! store transaction that also stores the idempotent answer and queues the payment
//! job. Before it, the engine moves the hold's deadline to the payment deadline,
//! atomically and only if the hold is still live there, so a hold that expires in
//! the same instant is never both expired and checked out.
//! Idempotency (as zero2prod does it): the key is scoped to (user, action); the same
//! key with the same request replays the stored answer; with another request it is
//! refused; two identical requests at once produce one order.

use boxoffice_domain::{
    CheckoutAnswer, HoldSelection, HoldStatus, MessageId, Millis, Order, OrderId, OrderItem,
    OrderStatus, ValidationError,
};
use boxoffice_ports::{CheckoutOutcome, CheckoutRecord, Idempotent};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::engine_sync::Follow;
use crate::{App, AppError, Principal};

const CHECKOUT: &str = "checkout";
/// Longest a client may long-poll an order.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutAsk {
    pub email: String,
    pub payment: PaymentAsk,
    /// E.164; with it, `order.paid` also sends an SMS with the ticket links.
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentAsk {
    pub token: String,
}

pub(crate) fn fingerprint(hold: &str, email: &str, token: &str) -> String {
    let mut h = Sha256::new();
    for part in [hold, email, token] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

impl App {
    pub async fn checkout(
        &self,
        who: &Principal,
        hold_id: &str,
        key: Option<&str>,
        ask: CheckoutAsk,
    ) -> Result<CheckoutAnswer, AppError> {
        let key = key.ok_or(AppError::IdempotencyKeyMissing)?;
        if !valid_key(key) {
            return Err(ValidationError::new(
                "Idempotency-Key",
                "1 to 255 visible ASCII characters",
            )
            .into());
        }
        let email = boxoffice_domain::Email::parse(&ask.email)?;
        let phone = match ask.phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) if boxoffice_ports::sms::is_e164(p) => Some(p.to_owned()),
            Some(_) => {
                return Err(ValidationError::new(
                    "phone",
                    "an E.164 number: + and up to 15 digits, e.g. +4915112345678",
                )
                .into())
            }
        };
        let token = ask.payment.token.trim();
        if token.is_empty() || token.len() > 255 {
            return Err(
                ValidationError::new("payment.token", "a payment token from the gateway").into(),
            );
        }
        let hold = self.owned_hold_record(who, hold_id).await?;
        // Before anything else: the engine's deadline is extended only for a
        // checkout the store will record, and it records only the owner's.
        who.require_owner(&hold.customer_id)?;
        // The phone is part of the request (a repeat with another is another
        // request); without one the fingerprint is what it always was.
        let fp = match &phone {
            None => fingerprint(hold.id.as_str(), email.as_str(), token),
            Some(p) => fingerprint(hold.id.as_str(), &format!("{}\0{p}", email.as_str()), token),
        };
        let replay = |prev: Idempotent| {
            if prev.fingerprint == fp {
                Ok(prev.answer)
            } else {
                Err(AppError::IdempotencyKeyReused)
            }
        };
        if let Some(prev) = self.store.idempotent(&who.user_id, CHECKOUT, key).await? {
            return replay(prev);
        }
        let ev = self.cached_event(&hold.event_id).await?;
        if ev.event().status == boxoffice_domain::EventStatus::Cancelled {
            // Said first: its holds are being released. The store refuses the
            // order too (a cancellation this node has not seen yet).
            return Err(AppError::Conflict {
                constraint: "event_cancelled",
            });
        }
        let now = self.clock.now();
        match hold.status_at(now) {
            HoldStatus::Active => {}
            HoldStatus::Expired | HoldStatus::Released => return Err(AppError::HoldExpired),
            HoldStatus::Converted | HoldStatus::Sold => return Err(AppError::HoldConverted),
        }

        let items: Vec<OrderItem> = match &hold.selection {
            HoldSelection::Seats(seats) => {
                let table = self.seat_table(&ev).await?;
                seats
                    .iter()
                    .map(|s| {
                        let tier = table
                            .index
                            .get(s)
                            .map(|&i| table.layout[i as usize].tier_id.clone())
                            .ok_or_else(|| {
                                AppError::Internal(anyhow::anyhow!("held seat {s} not in layout"))
                            })?;
                        let price = ev
                            .price_of(&tier)
                            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no tier {tier}")))?;
                        Ok(OrderItem {
                            seat_id: Some(s.clone()),
                            tier_id: tier,
                            price,
                        })
                    })
                    .collect::<Result<_, AppError>>()?
            }
            HoldSelection::Ga { tier_id, quantity } => {
                let (_, tier) = ev
                    .event()
                    .ga_tier(tier_id)
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no GA tier {tier_id}")))?;
                (0..*quantity)
                    .map(|_| OrderItem {
                        seat_id: None,
                        tier_id: tier.id.clone(),
                        price: tier.price,
                    })
                    .collect()
            }
        };
        let order_id = OrderId::new();
        let order = Order {
            // The store keeps the token sealed, bound to this order.
            payment_token: self.sealer.seal(token, order_id.as_str()),
            id: order_id,
            customer_id: who.user_id.clone(),
            event_id: hold.event_id.clone(),
            hold_id: hold.id.clone(),
            email: email.to_string(),
            phone,
            status: OrderStatus::PendingPayment,
            failure_code: None,
            items,
            // Frozen when the hold was made.
            total: hold.total,
            tickets: vec![],
            refunded: boxoffice_domain::Money::zero(hold.total.currency),
            created_at: now,
            updated_at: now,
        };
        let payment_deadline = now + self.settings.payment_hold;

        let rec = CheckoutRecord {
            idempotency: Idempotent {
                user_id: who.user_id.clone(),
                route: CHECKOUT.into(),
                key: key.to_owned(),
                fingerprint: fp.clone(),
                answer: CheckoutAnswer::Accepted {
                    order_id: order.id.clone(),
                },
            },
            order,
            payment_deadline,
            message: MessageId::new(),
        };
        // The engine's extension to the payment deadline, the store's checkout, and
        // undoing the extension if the store did not convert the hold, run on their
        // own task: a dropped request (even one whose engine answer was lost on the
        // way back) must not leave the engine keeping seats to a deadline the store
        // never set.
        let record = self.audit_record(
            who,
            "order.created",
            rec.order.id.as_str(),
            Some(&hold.event_id),
            Some(serde_json::json!({"hold_id": hold.id, "status": "active"})),
            Some(serde_json::json!({
                "hold_id": hold.id,
                "hold_status": "converted",
                "status": "pending_payment",
                "total": rec.order.total,
                "tiers": crate::ledger::tiers_json(rec.order.items.iter().map(|i| i.tier_id.as_str())),
            })),
        );
        let (event_id, hid) = (hold.event_id.clone(), hold.id.clone());
        let ttl = Millis::from_datetime(hold.expires_at);
        let now_ms = Millis::from_datetime(now);
        let deadline = Millis::from_datetime(payment_deadline);
        // As for holds (see `holds.rs`): a rebuild between the engine's extension and
        // the store's checkout would keep the hold only to its first deadline.
        let epoch = ev.engine_epoch.load(Ordering::SeqCst);
        let outcome = self
            .detached_with_engine(&ev, || {
                let (engine, writer) = (self.engine.clone(), self.writer.clone());
                let follower = self.follower.clone();
                let (event_id, hid, rec) = (event_id.clone(), hid.clone(), rec.clone());
                let record = record.clone();
                async move {
                    if !engine.extend(&event_id, &hid, deadline, now_ms).await? {
                        return Ok(None);
                    }
                    let out = writer.checkout(rec, now, record).await;
                    let undo = match &out {
                        Ok(CheckoutOutcome::Created | CheckoutOutcome::Replay(_)) => false,
                        Ok(CheckoutOutcome::HoldNotActive { status, .. }) => {
                            !matches!(status, HoldStatus::Converted | HoldStatus::Sold)
                        }
                        Err(_) => true,
                    };
                    if undo {
                        let back = if ttl > now_ms {
                            engine.extend(&event_id, &hid, ttl, now_ms).await.map(|_| ())
                        } else {
                            engine.release(&event_id, &hid, now_ms).await.map(|_| ())
                        };
                        if let Err(e) = back {
                            tracing::warn!(hold = %hid, error = ?e, "could not undo a checkout's hold extension; repairing from the store");
                            follower.repair(event_id.clone(), hid.clone());
                        }
                    }
                    Ok(Some(out))
                }
            })
            .await?;
        let Some(outcome) = outcome else {
            return Err(AppError::HoldExpired);
        };
        let outcome = outcome?;
        if outcome == CheckoutOutcome::Created && ev.engine_epoch.load(Ordering::SeqCst) != epoch {
            self.follower
                .follow(&event_id, &hid, Follow::Extend(deadline))
                .await;
        }
        match outcome {
            CheckoutOutcome::Created => {
                metrics::counter!("boxoffice_orders_total", "status" => "pending_payment")
                    .increment(1);
                Ok(rec.idempotency.answer)
            }
            CheckoutOutcome::Replay(prev) => replay(prev),
            CheckoutOutcome::HoldNotActive { status, expired } => match status {
                HoldStatus::Converted | HoldStatus::Sold => Err(AppError::HoldConverted),
                // The store refused to convert a live hold (not this caller's):
                // a conflict, never a 500.
                HoldStatus::Active if !expired => Err(AppError::Conflict {
                    constraint: "holds_checkout",
                }),
                _ => Err(AppError::HoldExpired),
            },
        }
    }

    /// Whether `who` may read `o`: its buyer, admins, the event's organizers.
    async fn may_see_order(&self, who: &Principal, o: &Order) -> Result<bool, AppError> {
        if who.may_see(&o.customer_id) {
            return Ok(true);
        }
        let event = self.cached_event(&o.event_id).await?;
        Ok(who.may_see_order(o, &event.event().org_id))
    }

    /// An order; with `wait`, waits up to that long (at most 30 s) for its payment to
    /// finish. It sleeps until the order is announced final (by this node, or another
    /// over the queue's bus, or by the node's one safety-net poll of every waited-for
    /// order: [`App::poll_waited_orders`]) and reads the store only then.
    pub async fn order(
        &self,
        who: &Principal,
        id: &str,
        wait: Option<Duration>,
    ) -> Result<Order, AppError> {
        let id = OrderId::parse(id).ok_or(AppError::NotFound)?;
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default().min(MAX_WAIT);
        let interest = self.orders.interest(&id);
        loop {
            // Listening before the read: an announcement between the two still wakes us.
            let announced = interest.notify.notified();
            tokio::pin!(announced);
            announced.as_mut().enable();
            let order = self.store.order(&id).await?.ok_or(AppError::NotFound)?;
            if !self.may_see_order(who, &order).await? {
                return Err(AppError::NotFound);
            }
            let now = tokio::time::Instant::now();
            // Done waiting: the payment is no longer pending, or it waits on the buyer
            // (3-D Secure), who must hear what to do.
            if order.status != OrderStatus::PendingPayment
                || now >= deadline
                || self.next_actions.lock().contains_key(&order.id)
            {
                return Ok(order);
            }
            // Woken by an announcement: read it again. At the deadline with no
            // announcement, the status alone says whether it moved (one statement
            // instead of the order's three): a pending order's items and total do
            // not change, so the order read before the wait is still the answer.
            if tokio::time::timeout(deadline - now, announced)
                .await
                .is_err()
            {
                match self.store.order_state(&id).await? {
                    Some((_, OrderStatus::PendingPayment))
                        if !self.next_actions.lock().contains_key(&order.id) =>
                    {
                        return Ok(order)
                    }
                    _ => {}
                }
            }
        }
    }

    /// The safety net of every long-poll on this node, in one store read: the
    /// waited-for orders that are no longer pending wake their waiters (an
    /// announcement from another node may be lost). Returns how many it woke.
    pub async fn poll_waited_orders(&self) -> Result<usize, AppError> {
        let waited = self.orders.waited();
        if waited.is_empty() {
            return Ok(0);
        }
        let mut woken = 0;
        for chunk in waited.chunks(1000) {
            for id in self.store.settled_among(chunk).await? {
                woken += self.orders.wake(&id, "polled");
            }
        }
        Ok(woken)
    }

    /// How often [`App::poll_waited_orders`] runs: slow where announcements reach
    /// every node, fast where they do not.
    pub fn order_safety_poll(&self) -> Duration {
        if self.queue.announces() {
            self.settings.order_safety_poll
        } else {
            Duration::from_millis(250)
        }
    }

    pub async fn my_orders(&self, who: &Principal) -> Result<Vec<Order>, AppError> {
        Ok(self.store.orders_of(&who.user_id).await?)
    }

    /// Every charge the payment gateway recorded (admins; for the test gateway).
    pub async fn gateway_charges(
        &self,
        who: &Principal,
    ) -> Result<Vec<boxoffice_ports::ChargeRecord>, AppError> {
        who.require_admin()?;
        Ok(self.gateway.charges().await?)
    }

    /// Wakes the long-polls of `order`, here and (over the queue's bus) elsewhere.
    pub(crate) async fn announce(&self, order: &OrderId) {
        self.orders.wake(order, "announced");
        self.queue.announce(order).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint("ab", "c", "d"), fingerprint("a", "bc", "d"));
        assert_eq!(fingerprint("a", "b", "c"), fingerprint("a", "b", "c"));
    }

    #[test]
    fn keys() {
        assert!(valid_key("8c1e2c47-7f0a-4f0e-9f59-0d5b8b2e2d1a"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
    }
}
