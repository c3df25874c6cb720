//! Cancellation of an event (issue 8): `PATCH /v1/events/{id} {"status":"cancelled"}`.
//!
//! The request only decides: one [`Write::CancelEvent`] makes the event
//! `cancelled` for good and queues `event.cancelled` in the same transaction, and
//! the PATCH answers at once. From that commit on the store refuses, on every node,
//! a new hold, a checkout's order and an order's payment of the event (triggers,
//! migration 0040), whatever a node's cached copy of the event still says; a charge
//! that lands anyway is refunded by the payment path (`payments.rs`).
//!
//! The rest is the job's, on the payment worker: in batches of [`BATCH`], it
//! releases the event's live holds and refunds its paid orders in full, each
//! through the same store writes as a buyer's release and an admin's refund (so a
//! refund racing it, a repeated cancellation or a second delivery finds the order
//! refunded already and refunds nothing more). Each batch is durable on its own: a
//! node that dies mid-way leaves the job unacknowledged, and its redelivery carries
//! on from what the store says is left. It is done when nothing is held, nothing
//! sold, and no payment of the event is still unsettled (those end failed, or paid
//! and refunded, by the payment worker and the reconciler; a failed payment may
//! give its hold back for a while, which the next pass releases).
//! This module must never refund outside [`Write::Refund`].

use boxoffice_domain::{EventId, EventStatus, MessageId, RefundId};
use boxoffice_ports::{Ack, EventRecord, RefundOutcome, ReleaseOutcome, Write, Written};

use crate::resilience::backoff;
use crate::{App, AppError, Principal};

/// How many holds and how many orders one pass of the job takes: one pass is a
/// few group commits, never one giant transaction.
pub const BATCH: usize = 500;

/// What a cancellation job's attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAttempt {
    /// Nothing is left to release or refund.
    Done,
    /// Payments of the event are still unsettled: look again then.
    RetryAt(time::OffsetDateTime),
}

impl App {
    /// Cancels the event: final, answered at once; the job does the rest.
    /// Cancelling a cancelled event again is the same answer and changes nothing.
    pub async fn cancel_event(&self, who: &Principal, id: &str) -> Result<EventRecord, AppError> {
        who.require_catalogue_writer()?;
        let id = self.managed_event(who, id).await?;
        let record = self.audit_record(
            who,
            "event.cancel_requested",
            id.as_str(),
            Some(&id),
            None,
            Some(serde_json::json!({"status": "cancelled"})),
        );
        let w = Write::CancelEvent {
            event: id.clone(),
            message: MessageId::new(),
            now: self.clock.now(),
        };
        let written = self.writer.write(self.audited(w, record)).await?;
        self.forget_cached_event(&id);
        if written == Written::Marked(true) {
            tracing::info!(event = %id, "event cancelled; its holds are released and its orders refunded by the event.cancelled job");
            metrics::counter!("boxoffice_events_cancelled_total").increment(1);
        }
        self.store.event(&id).await?.ok_or(AppError::NotFound)
    }

    /// One attempt of an `event.cancelled` job: batch after batch until nothing
    /// is left, then the job's ack. A failure (the store, the writer) is retried
    /// by the queue; what was done stays done.
    pub async fn carry_out_cancellation(
        &self,
        event: &EventId,
        attempt: u32,
        ack: Option<Ack>,
    ) -> Result<CancelAttempt, AppError> {
        self.forget_cached_event(event);
        match self.store.event(event).await? {
            Some(r) if r.event.status == EventStatus::Cancelled => {}
            // Not (or no longer) an event to cancel: nothing to do.
            _ => {
                self.ack(ack).await?;
                return Ok(CancelAttempt::Done);
            }
        }
        loop {
            let now = self.clock.now();
            let work = self.store.cancel_work(event, BATCH, now).await?;
            if work.active_holds.is_empty() && work.paid_orders.is_empty() {
                if work.unsettled_orders > 0 {
                    tracing::info!(%event, unsettled = work.unsettled_orders, "cancelled event: payments still unsettled; looking again later");
                    let wait = backoff(attempt).min(std::time::Duration::from_secs(5));
                    return Ok(CancelAttempt::RetryAt(now + wait));
                }
                // The engine is rebuilt from the store at its next use: nothing
                // held, nothing sold.
                self.follower.forget(event).await;
                self.ack(ack).await?;
                tracing::info!(%event, "event cancellation complete");
                return Ok(CancelAttempt::Done);
            }
            // Every write of the batch at once: the writer commits them together,
            // a few transactions of hundreds of writes each.
            let mut writes = tokio::task::JoinSet::new();
            for hold in &work.active_holds {
                let (writer, hold) = (self.writer.clone(), hold.clone());
                writes.spawn(async move { writer.write(Write::Release { hold, now }).await });
            }
            for order in &work.paid_orders {
                let (writer, order) = (self.writer.clone(), order.clone());
                writes.spawn(async move {
                    writer
                        .write(Write::Refund {
                            refund: RefundId::new(),
                            order,
                            amount: None,
                            idempotency: None,
                            message: MessageId::new(),
                            now,
                        })
                        .await
                });
            }
            let (mut n_released, mut n_refunded) = (0u64, 0u64);
            while let Some(done) = writes.join_next().await {
                let written = done.map_err(|e| AppError::Internal(e.into()))??;
                match written {
                    Written::Released(ReleaseOutcome::Released) => n_released += 1,
                    Written::Refund(RefundOutcome::Refunded { whole: true, .. }) => n_refunded += 1,
                    _ => {}
                }
            }
            metrics::counter!("boxoffice_orders_total", "status" => "refunded")
                .increment(n_refunded);
            metrics::counter!("boxoffice_cancellation_refunds_total").increment(n_refunded);
            tracing::info!(%event, released = n_released, refunded = n_refunded, "cancelled event: batch done");
            if n_released == 0 && n_refunded == 0 {
                // Nothing this pass could change (a hold that expired meanwhile, or
                // an order with nothing to refund): look again later rather than
                // spin; an operator should look if this repeats.
                tracing::warn!(%event, holds = work.active_holds.len(), orders = work.paid_orders.len(), "cancelled event: a pass changed nothing; looking again later");
                self.follower.forget(event).await;
                return Ok(CancelAttempt::RetryAt(now + backoff(attempt)));
            }
            // Seats sold or held no more in the store: the engine forgets the event
            // (as after a whole refund) and is rebuilt from the store at its next use.
            self.follower.forget(event).await;
        }
    }
}
