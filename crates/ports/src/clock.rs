//! Time as a port, so tests can move it. Everything that compares against "now"
//! asks a `Clock`; nothing in the app calls `OffsetDateTime::now_utc()` directly.

use parking_lot::Mutex;
use std::fmt;
use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock, truncated to milliseconds (what every store keeps).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        boxoffice_domain::time::truncate_to_millis(OffsetDateTime::now_utc())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(boxoffice_domain::time::truncate_to_millis(
            start,
        )))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock()
    }
}
