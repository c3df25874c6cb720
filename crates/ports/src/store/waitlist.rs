//! The waitlist's line (issue 12). Its moves are conditional updates, so two nodes
//! never both claim an entry; the offer itself (the entry `offered` and its email
//! queued) is a [`crate::Write::WaitlistOffer`], group-committed with the rest.

use async_trait::async_trait;
use boxoffice_domain::{EventId, HoldId, WaitlistEntry, WaitlistId, WaitlistState};
use time::OffsetDateTime;

use super::StoreError;

/// A conditional move of an entry ([`WaitlistStore::move_waitlist`]).
#[derive(Debug, Clone)]
pub struct WaitlistMove {
    pub entry: WaitlistId,
    /// The states it may be in.
    pub from: Vec<WaitlistState>,
    /// The hold it must name (`None`: whatever it names).
    pub hold: Option<HoldId>,
    pub to: WaitlistState,
    /// Moving to `claimed`: the hold being made and until when the claim is the
    /// node's. Moving to `waiting` forgets the hold; other moves keep it.
    pub claim: Option<(HoldId, OffsetDateTime)>,
    pub now: OffsetDateTime,
}

#[async_trait]
pub trait WaitlistStore: Send + Sync + std::fmt::Debug + 'static {
    /// Puts `entry` at the end of its event's line, unless its customer already
    /// has a live entry (waiting, claimed or offered) there: then that one is
    /// answered and nothing is added (also when two joins race).
    async fn join_waitlist(&self, entry: &WaitlistEntry) -> Result<WaitlistEntry, StoreError>;
    async fn waitlist_entry(&self, id: &WaitlistId) -> Result<Option<WaitlistEntry>, StoreError>;
    /// Events with live entries.
    async fn waitlist_events(&self) -> Result<Vec<EventId>, StoreError>;
    /// An event's live entries in line order.
    async fn waitlist_line(&self, event: &EventId) -> Result<Vec<WaitlistEntry>, StoreError>;
    /// Moves an entry if it is as `m` expects; false (and nothing changed) if not.
    async fn move_waitlist(&self, m: &WaitlistMove) -> Result<bool, StoreError>;
}
