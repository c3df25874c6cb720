//! Ports: what the use cases need from the outside world, as traits shaped around
//! business actions (`hold`, `record_hold`, `complete_payment`), not generic CRUD.
//!
//! Adapters implement these (SQLite/PostgreSQL stores; in-process/Redis engines);
//! `boxoffice-conformance` holds the one suite each adapter must pass. Nothing here
//! picks a backend or does I/O itself.

pub mod analytics;
pub mod audit;
pub mod clock;
pub mod engine;
pub mod gateway;
pub mod limits;
pub mod mail;
pub mod queue;
pub mod sms;
pub mod store;
pub mod waiting_room;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{EngineError, HoldEngine, HoldRequest, InventorySnapshot, SeatMap, SnapshotHold};
pub use gateway::{
    ChargeOutcome, ChargeRecord, ChargeRequest, GatewayError, KeyState, NextAction, PaymentGateway,
};
pub use limits::{LimitClass, Quota, RateLimiter};
pub use mail::{Attachment, MailError, Mailer, OutgoingEmail};
pub use queue::{Delivery, JobQueue, QueueError};
pub use sms::{OutgoingSms, SmsError, SmsSender};
pub use store::{
    AccessStore, Ack, CancelWork, CatalogueStore, CheckinStore, CheckoutOutcome, CheckoutRecord,
    EventRecord, EventSearch, FailOutcome, FirstScan, Idempotent, IdentityStore, Invitation,
    Joining, LayoutSeat, NewScan, OutboxStore, PaidOutcome, PasswordReset, RefundOutcome,
    RefundRecord, ReleaseOutcome, SalesStore, ScanRecord, Session, Store, StoreError,
    StoredInventory, TicketKey, TicketRecord, WaitlistMove, WaitlistStore, Write, Written,
};
pub use waiting_room::{Draw, Joined, RoomParams, RoomState, WaitingRoom};
