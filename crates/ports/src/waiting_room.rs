//! The virtual waiting room's queue (issue 12), AWS-style: per event, a join
//! counter, a serving counter and the admitted shoppers' sessions; nothing per
//! waiting user but the customer's join number (so joining twice finds the same
//! place). A user's place in the admission order (the *rank*) is computed from the
//! join number and the pre-queue draw (`boxoffice_domain::lottery_rank`), and the
//! queue id the user holds carries the join number, signed by the app.
//!
//! Adapters decide admissions atomically and lazily: every call first lets in whoever
//! the rate and the free capacity allow by now (on the adapter's clock: the app's in
//! process, Redis's in Redis, a test's when given), so no timer has to run.

use async_trait::async_trait;
use boxoffice_domain::{EventId, UserId};
use std::fmt;

use crate::EngineError;

/// The room's settings as the queue needs them, sent with every call (the store
/// keeps them; the queue is told, never asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomParams {
    /// Milliseconds between two admissions (a minute over the rate).
    pub admission_interval_ms: u64,
    /// Most live sessions at once (none: no cap).
    pub max_active: Option<u32>,
    /// A session's length from its admission.
    pub session_ms: u64,
    /// Whether the sale runs now: admissions happen only then, and the first call
    /// that says so draws the pre-queue.
    pub started: bool,
    /// The lottery's seed if this call draws the pre-queue (callers send a fresh
    /// random one each time; only the drawing call's is kept).
    pub seed: u64,
}

/// The pre-queue's draw: the joins numbered below `pre_queue_len` are ranked by a
/// permutation keyed by `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    pub pre_queue_len: u64,
    pub seed: u64,
}

/// The counters of an event's room, after the call's admissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomState {
    /// Joins so far (join numbers are `0..joined`).
    pub joined: u64,
    /// None while the pre-queue is still open (the sale has not started).
    pub draw: Option<Draw>,
    /// Ranks below this have been admitted.
    pub served: u64,
    /// When (unix ms, the adapter's clock) the next admission is due by the rate.
    pub next_admission_ms: i64,
    /// The adapter's clock at the call (unix ms).
    pub now_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// This customer's join number (0-based): the same on every join.
    pub number: u64,
    /// False when the customer had joined before.
    pub new: bool,
    pub state: RoomState,
}

#[async_trait]
pub trait WaitingRoom: Send + Sync + fmt::Debug + 'static {
    /// Joins `customer` (once: a second join returns the first one's number).
    async fn join(
        &self,
        event: &EventId,
        customer: &UserId,
        params: &RoomParams,
    ) -> Result<Joined, EngineError>;

    /// Admits whoever is due, and returns the counters.
    async fn state(&self, event: &EventId, params: &RoomParams) -> Result<RoomState, EngineError>;

    /// The end (unix ms) of the session of the admitted `rank`, if it is live (not
    /// over, not left).
    async fn session(&self, event: &EventId, rank: u64) -> Result<Option<i64>, EngineError>;

    /// Ends the session of `rank` (the shopper is done): its slot is free for the
    /// next in line. False when it was not live.
    async fn leave(&self, event: &EventId, rank: u64) -> Result<bool, EngineError>;
}
