//! Instants as Unix milliseconds: what the hold engines compare and store. Wall-clock
//! `OffsetDateTime` is used at the edges (API, store); conversions live here.

use time::OffsetDateTime;

/// Unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        Millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn plus_seconds(self, s: u32) -> Self {
        Millis(self.0 + i64::from(s) * 1000)
    }
}

/// Truncates to whole milliseconds, the precision every store keeps.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    Millis::from_datetime(t).to_datetime()
}
