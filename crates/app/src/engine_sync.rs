//! Bringing the hold engine to what the store committed.
//!
//! The store is the truth and changes first for releases and payment outcomes; the
//! engine follows. If the engine fails right after the commit (a Redis call that
//! timed out), nothing else would bring it along: a retried job or request finds
//! the store already final and does not touch the engine, so a sold seat would
//! come back as available at its hold's payment deadline, or a failed order's seats
//! stay held until then. So a failed follow-up is repaired on a task of its own,
//! retried until the engine answers, each time from what the store says *then*
//! (never a stale target that a later change superseded). Where the engine cannot
//! do what the store says (the hold is no longer live there: confirmed too late,
//! lost), the engine forgets the event and is rebuilt from the store on next use.
//!
//! This module must never write to the store: it only reads it and moves the engine.

use boxoffice_domain::{EventId, HoldId, HoldStatus, Millis};
use boxoffice_ports::{Clock, EngineError, HoldEngine, SalesStore};
use std::sync::Arc;
use std::time::Duration;

/// What the engine must do to a hold after the store committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// The hold's order was paid: its items are sold.
    Confirm,
    /// The hold was released, expired or never recorded: its items are free.
    Release,
    /// The hold is live until this instant (or free, once it has passed).
    Extend(Millis),
}

/// The engine's follower: cheap to clone into detached tasks.
#[derive(Debug, Clone)]
pub(crate) struct Follower {
    pub(crate) engine: Arc<dyn HoldEngine>,
    pub(crate) store: Arc<dyn SalesStore>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Repairs in progress; [`crate::App::settle`] waits for them.
    pub(crate) repairs: tokio_util::task::TaskTracker,
}

impl Follower {
    /// Makes the engine do `what` to `hold`, now; if the engine fails, a repair takes
    /// over and this returns at once (the store's change stands either way).
    pub(crate) async fn follow(&self, event: &EventId, hold: &HoldId, what: Follow) {
        if let Err(e) = self.apply(event, hold, what).await {
            tracing::warn!(%event, %hold, ?what, error = ?e, "the hold engine failed after a commit; repairing it from the store");
            self.repair(event.clone(), hold.clone());
        }
    }

    /// Retries, until the engine answers, bringing `hold` in the engine to what the
    /// store says about it at each try.
    pub(crate) fn repair(&self, event: EventId, hold: HoldId) {
        metrics::counter!("boxoffice_engine_repairs_total").increment(1);
        let this = self.clone();
        self.repairs.spawn(async move {
            let mut wait = Duration::from_millis(20);
            for attempt in 1u32.. {
                tokio::time::sleep(wait).await;
                match this.sync_from_store(&event, &hold).await {
                    Ok(()) => {
                        tracing::info!(%event, %hold, attempt, "hold engine repaired");
                        return;
                    }
                    Err(e) if attempt % 10 == 1 => {
                        tracing::warn!(%event, %hold, attempt, error = ?e, "hold engine still failing; repair continues");
                    }
                    Err(_) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// Brings `hold` in the engine to what the store says about it now; if the
    /// engine fails, a repair takes over. For a job delivered again after its node
    /// died between the commit and the engine call.
    pub(crate) async fn follow_store(&self, event: &EventId, hold: &HoldId) {
        if let Err(e) = self.sync_from_store(event, hold).await {
            tracing::warn!(%event, %hold, error = ?e, "the hold engine failed to follow the store; repairing it");
            self.repair(event.clone(), hold.clone());
        }
    }

    /// Makes the engine forget `event`, so that its next use rebuilds it from the
    /// store (after a change the engine has no operation for: a sale undone by a
    /// refund). Retried on a task of its own until the engine answers.
    pub(crate) async fn forget(&self, event: &EventId) {
        metrics::counter!("boxoffice_engine_evictions_total", "reason" => "refund").increment(1);
        if let Err(e) = self.engine.evict(event).await {
            tracing::warn!(%event, error = ?e, "the hold engine could not forget an event; retrying");
            let (this, event) = (self.clone(), event.clone());
            self.repairs.spawn(async move {
                let mut wait = Duration::from_millis(20);
                while this.engine.evict(&event).await.is_err() {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            });
        }
    }

    /// What the store says about `hold` now, done in the engine.
    async fn sync_from_store(&self, event: &EventId, hold: &HoldId) -> anyhow::Result<()> {
        let now = self.clock.now();
        let what = match self.store.hold(hold).await? {
            // Never recorded: nobody was told of it, so it holds nothing.
            None => Follow::Release,
            Some(h) => match h.status_at(now) {
                HoldStatus::Sold => Follow::Confirm,
                HoldStatus::Active | HoldStatus::Converted => {
                    Follow::Extend(Millis::from_datetime(h.expires_at))
                }
                HoldStatus::Released | HoldStatus::Expired => Follow::Release,
            },
        };
        Ok(self.apply(event, hold, what).await?)
    }

    async fn apply(&self, event: &EventId, hold: &HoldId, what: Follow) -> Result<(), EngineError> {
        let now = Millis::from_datetime(self.clock.now());
        let engine = &self.engine;
        let done = match what {
            Follow::Confirm => engine.confirm(event, hold, now).await.map(|r| r.is_some()),
            Follow::Extend(until) if until > now => engine.extend(event, hold, until, now).await,
            Follow::Release | Follow::Extend(_) => {
                engine.release(event, hold, now).await.map(|_| true)
            }
        };
        match done {
            // Not loaded: a rebuild will read the store, which already says it.
            Ok(true) | Err(EngineError::EventNotLoaded(_)) => Ok(()),
            Ok(false) => {
                // The engine no longer has the hold live, so it cannot sell or keep
                // it: rebuild the event from the store, which has it right.
                tracing::warn!(%event, %hold, ?what, "the hold engine lost a hold the store still has; rebuilding the event");
                metrics::counter!("boxoffice_engine_evictions_total", "reason" => "diverged")
                    .increment(1);
                engine.evict(event).await
            }
            Err(e) => Err(e),
        }
    }
}
