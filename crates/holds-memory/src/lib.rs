//! The in-process hold engine, for the embedded mode.
//!
//! Each event's [`EventInventory`] sits behind its own mutex, so a hot event never
//! slows another; the map of events is behind a read-write lock taken for reading on
//! every call and for writing only when an event is loaded. Locks are
//! `parking_lot`'s and are never held across an `.await` (there is none inside):
//! every operation is a few microseconds of memory work.
//!
//! It must never decide anything the domain's `EventInventory` would decide
//! differently: it is the reference engine the conformance suite checks others with.

pub mod limits;
pub mod room;
pub use limits::GovernorLimiter;
pub use room::MemoryWaitingRoom;

use async_trait::async_trait;
use boxoffice_domain::{EventId, EventInventory, HoldId, HoldItems, HoldRejection, Millis};
use boxoffice_ports::{EngineError, HoldEngine, HoldRequest, InventorySnapshot, SeatMap};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct MemoryHoldEngine {
    events: RwLock<HashMap<EventId, Arc<Mutex<EventInventory>>>>,
    /// Events a loader is reading a snapshot of, with the follow-ups of store
    /// commits (release, confirm, extend) that found the event not loaded meanwhile:
    /// the snapshot may predate them, so the load applies them after it. (They are
    /// harmless if it does not: each finds its hold already in that state.) Changed
    /// only under `events`' lock, read for a follow-up and write for a load, so the
    /// two are ordered.
    loading: Mutex<HashMap<EventId, Vec<FollowUp>>>,
}

/// A store commit's follow-up that arrived while its event was being loaded.
#[derive(Debug, Clone)]
enum FollowUp {
    Release(HoldId, Millis),
    Confirm(HoldId, Millis),
    Extend(HoldId, Millis, Millis),
    /// The event was evicted (the store changed in a way the engine cannot follow:
    /// a refund unsold seats): the snapshot is stale, and the load refuses it.
    Evicted,
}

impl MemoryHoldEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn event(&self, id: &EventId) -> Result<Arc<Mutex<EventInventory>>, EngineError> {
        self.events
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::EventNotLoaded(id.clone()))
    }

    /// [`Self::event`] for a follow-up of a store commit: if the event is not
    /// loaded, a load in progress gets the follow-up to apply after its snapshot.
    fn followed_event(
        &self,
        id: &EventId,
        follow_up: impl FnOnce() -> FollowUp,
    ) -> Result<Arc<Mutex<EventInventory>>, EngineError> {
        let events = self.events.read();
        match events.get(id) {
            Some(inv) => Ok(inv.clone()),
            None => {
                if let Some(pending) = self.loading.lock().get_mut(id) {
                    pending.push(follow_up());
                }
                Err(EngineError::EventNotLoaded(id.clone()))
            }
        }
    }
}

#[async_trait]
impl HoldEngine for MemoryHoldEngine {
    async fn prepare_load(&self, event: &EventId) -> Result<Option<String>, EngineError> {
        // Under the lock, so no follow-up slips between "not loaded" and this.
        let _events = self.events.read();
        self.loading.lock().entry(event.clone()).or_default();
        Ok(None)
    }

    async fn load_event(
        &self,
        snapshot: InventorySnapshot,
        now: Millis,
    ) -> Result<(), EngineError> {
        if self.events.read().contains_key(&snapshot.event) {
            return Ok(());
        }
        let mut inv = snapshot.to_inventory(now);
        let mut events = self.events.write();
        if events.contains_key(&snapshot.event) {
            return Ok(());
        }
        let follow_ups = self
            .loading
            .lock()
            .remove(&snapshot.event)
            .unwrap_or_default();
        if follow_ups.iter().any(|f| matches!(f, FollowUp::Evicted)) {
            return Err(EngineError::StaleSnapshot(snapshot.event));
        }
        for follow_up in follow_ups {
            match follow_up {
                FollowUp::Release(hold, at) => {
                    let _ = inv.release(&hold, at);
                }
                FollowUp::Confirm(hold, at) => {
                    let _ = inv.confirm(&hold, at);
                }
                FollowUp::Extend(hold, until, at) => {
                    let _ = inv.extend(&hold, until, at);
                }
                FollowUp::Evicted => {}
            }
        }
        events.insert(snapshot.event, Arc::new(Mutex::new(inv)));
        Ok(())
    }

    async fn hold(&self, req: HoldRequest) -> Result<Result<(), HoldRejection>, EngineError> {
        let ev = self.event(&req.event)?;
        let mut inv = ev.lock();
        Ok(inv.hold(req.hold, req.items, req.expires_at, req.now))
    }

    async fn release(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        Ok(self
            .followed_event(event, || FollowUp::Release(hold.clone(), now))?
            .lock()
            .release(hold, now))
    }

    async fn confirm(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        Ok(self
            .followed_event(event, || FollowUp::Confirm(hold.clone(), now))?
            .lock()
            .confirm(hold, now))
    }

    async fn extend(
        &self,
        event: &EventId,
        hold: &HoldId,
        expires_at: Millis,
        now: Millis,
    ) -> Result<bool, EngineError> {
        Ok(self
            .followed_event(event, || FollowUp::Extend(hold.clone(), expires_at, now))?
            .lock()
            .extend(hold, expires_at, now))
    }

    async fn seat_map(&self, event: &EventId, now: Millis) -> Result<SeatMap, EngineError> {
        let ev = self.event(event)?;
        let mut inv = ev.lock();
        inv.expire_due(now);
        Ok(SeatMap {
            version: inv.version(),
            status: inv.status().to_vec(),
            ga: inv.ga().to_vec(),
        })
    }

    async fn seat_map_version(&self, event: &EventId, now: Millis) -> Result<u64, EngineError> {
        let ev = self.event(event)?;
        let mut inv = ev.lock();
        // Only what is due is touched: O(expired holds), no copy of the seats.
        inv.expire_due(now);
        Ok(inv.version())
    }

    async fn evict(&self, event: &EventId) -> Result<(), EngineError> {
        let mut events = self.events.write();
        events.remove(event);
        // A load reading its snapshot meanwhile may have read it before the change
        // that made us forget the event: it must read again.
        if let Some(pending) = self.loading.lock().get_mut(event) {
            pending.push(FollowUp::Evicted);
        }
        Ok(())
    }

    async fn expire_due(&self, now: Millis) -> Result<Vec<(EventId, HoldId)>, EngineError> {
        let events: Vec<_> = self
            .events
            .read()
            .iter()
            .map(|(id, inv)| (id.clone(), inv.clone()))
            .collect();
        let mut out = Vec::new();
        for (id, inv) in events {
            let expired = inv.lock().expire_due(now);
            out.extend(expired.into_iter().map(|h| (id.clone(), h)));
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }
}
