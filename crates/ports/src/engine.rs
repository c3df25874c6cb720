//! The hold engine: the fast, atomic gate that decides every hold and sale.
//!
//! It is not the source of truth (the store is), so every engine can be rebuilt
//! from an [`InventorySnapshot`] the store provides. Semantics are those of
//! [`boxoffice_domain::EventInventory`], exactly, including lazy expiry: a hold past
//! its deadline is gone for every operation, swept or not. `now` is always passed in
//! so that every node and every test agrees on time.

use async_trait::async_trait;
use boxoffice_domain::{
    inventory::GaCounts, EventId, HoldId, HoldItems, HoldRejection, Millis, SeatIx,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine has no state for this event (never loaded, or lost): load a
    /// snapshot from the store and try again.
    #[error("event {0} is not loaded in the hold engine")]
    EventNotLoaded(EventId),
    /// The engine lost state after the snapshot was read: read it again.
    #[error("the snapshot of event {0} predates a loss of the engine's state")]
    StaleSnapshot(EventId),
    #[error("hold engine unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
}

#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub event: EventId,
    pub hold: HoldId,
    pub items: HoldItems,
    pub expires_at: Millis,
    pub now: Millis,
}

/// The live picture of an event for the seat map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    pub version: u64,
    /// One byte per seat in layout order: `A`, `H` or `S`.
    pub status: Vec<u8>,
    pub ga: Vec<GaCounts>,
}

#[derive(Debug, Clone)]
pub struct SnapshotHold {
    pub id: HoldId,
    pub items: HoldItems,
    pub expires_at: Millis,
}

/// Everything an engine needs to serve an event from scratch, read from the store.
#[derive(Debug, Clone)]
pub struct InventorySnapshot {
    pub event: EventId,
    pub seat_count: usize,
    pub ga_capacities: Vec<u32>,
    pub sold_seats: Vec<SeatIx>,
    pub ga_sold: Vec<u32>,
    /// Holds that were live when the snapshot was read.
    pub holds: Vec<SnapshotHold>,
    /// Where the seat-map version starts, above any version served before.
    pub base_version: u64,
    /// From [`HoldEngine::prepare_load`], taken before the snapshot was read: a
    /// volatile engine refuses the snapshot if it lost state since (the token is gone).
    pub load_token: Option<String>,
}

impl InventorySnapshot {
    /// The inventory this snapshot describes, as every engine must rebuild it. Holds
    /// that conflict with the snapshot's sales or with each other (a store written by
    /// a wrong engine) are left out: the store's constraints settle those at sale.
    pub fn to_inventory(&self, now: Millis) -> boxoffice_domain::EventInventory {
        let mut inv = boxoffice_domain::EventInventory::new(
            self.seat_count,
            &self.ga_capacities,
            self.base_version,
        );
        for &seat in &self.sold_seats {
            inv.restore_sold_seat(seat);
        }
        for (tier, &sold) in self.ga_sold.iter().enumerate() {
            inv.restore_ga_sold(tier as u16, sold);
        }
        for h in &self.holds {
            let _ = inv.hold(h.id.clone(), h.items.clone(), h.expires_at, now);
        }
        inv
    }
}

#[async_trait]
pub trait HoldEngine: Send + Sync + std::fmt::Debug + 'static {
    /// Called before reading a snapshot from the store. A volatile engine leaves a
    /// token with the event; losing state deletes it, and `load_event` with that
    /// token then answers `StaleSnapshot`: the snapshot may predate the loss.
    /// A follow-up of a store commit (`release`, `confirm`, `extend`) that finds the
    /// event not loaded after this must not be lost either: the load refuses the
    /// snapshot (Redis) or applies the follow-up after it (in-process).
    async fn prepare_load(&self, event: &EventId) -> Result<Option<String>, EngineError> {
        let _ = event;
        Ok(None)
    }

    /// Loads an event from a snapshot unless the engine has it already (then this is
    /// a no-op: a stale snapshot never overwrites newer state).
    async fn load_event(&self, snapshot: InventorySnapshot, now: Millis)
        -> Result<(), EngineError>;

    /// Holds all the items or none.
    async fn hold(&self, req: HoldRequest) -> Result<Result<(), HoldRejection>, EngineError>;

    /// Gives a live hold back; `None` if it was not live.
    async fn release(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError>;

    /// Turns a live hold into sold items; `None` if it was not live.
    async fn confirm(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError>;

    /// Moves a live hold's deadline; false if it was not live.
    async fn extend(
        &self,
        event: &EventId,
        hold: &HoldId,
        expires_at: Millis,
        now: Millis,
    ) -> Result<bool, EngineError>;

    async fn seat_map(&self, event: &EventId, now: Millis) -> Result<SeatMap, EngineError>;

    /// The version [`Self::seat_map`] would report at `now`, without the map: lazy
    /// expiry happens exactly as there (a hold past its deadline is gone, and its
    /// expiry bumps the version). Readers that cache the encoded map ask this on every
    /// request and fetch the map only when it changed. The default fetches the whole
    /// map; engines override it with something that does not copy the seats.
    async fn seat_map_version(&self, event: &EventId, now: Millis) -> Result<u64, EngineError> {
        Ok(self.seat_map(event, now).await?.version)
    }

    /// Forgets an event: the next call for it reports `EventNotLoaded` and the app
    /// rebuilds it from the store (after the store caught the engine being wrong).
    async fn evict(&self, event: &EventId) -> Result<(), EngineError>;

    /// Expires every due hold of every loaded event; returns what it expired.
    async fn expire_due(&self, now: Millis) -> Result<Vec<(EventId, HoldId)>, EngineError>;

    async fn ping(&self) -> Result<(), EngineError>;

    /// Whether this engine can lose acknowledged state on its own (a Redis restart,
    /// flush or failover). Then a hold is checked again after the store recorded it.
    fn volatile(&self) -> bool {
        false
    }
}
