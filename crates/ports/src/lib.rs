//! Ports: what the use cases need from the outside world, as traits shaped around
//! business actions (`hold`, `record_hold`, `sell_hold`), not generic CRUD.
//!
//! Adapters implement these (SQLite/PostgreSQL stores; in-process/Redis engines);
//! `boxoffice-conformance` holds the one suite each adapter must pass. Nothing here
//! picks a backend or does I/O itself.

pub mod clock;
pub mod engine;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{EngineError, HoldEngine, HoldRequest, InventorySnapshot, SeatMap, SnapshotHold};
pub use store::{EventRecord, LayoutSeat, ReleaseOutcome, Store, StoreError, StoredInventory};
