//! Holds as the store records them: who holds what, until when, at what price.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{EventId, HoldId, Money, SeatId, TierId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Released,
    Expired,
    /// Taken to checkout: it belongs to an order whose payment is pending. It does
    /// not expire at its TTL while the payment runs (up to a bound).
    Converted,
    /// Its order was paid: its seats are sold. The API shows it as `converted`.
    Sold,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "active",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
            HoldStatus::Converted => "converted",
            HoldStatus::Sold => "sold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => HoldStatus::Active,
            "released" => HoldStatus::Released,
            "expired" => HoldStatus::Expired,
            "converted" => HoldStatus::Converted,
            "sold" => HoldStatus::Sold,
            _ => return None,
        })
    }
}

/// What a hold is on: named seats, or a quantity of a general-admission tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldSelection {
    Seats(Vec<SeatId>),
    Ga { tier_id: TierId, quantity: u32 },
}

impl HoldSelection {
    pub fn ticket_count(&self) -> u32 {
        match self {
            HoldSelection::Seats(s) => s.len() as u32,
            HoldSelection::Ga { quantity, .. } => *quantity,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub event_id: EventId,
    pub customer_id: UserId,
    /// As recorded; see [`Hold::status_at`] for what it is now.
    pub status: HoldStatus,
    pub selection: HoldSelection,
    /// Frozen at hold time.
    pub total: Money,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

impl Hold {
    /// An active hold whose deadline has passed is expired, whether or not a sweeper
    /// has recorded it yet: expiry never waits for a background task.
    pub fn status_at(&self, now: OffsetDateTime) -> HoldStatus {
        match self.status {
            HoldStatus::Active if self.expires_at <= now => HoldStatus::Expired,
            s => s,
        }
    }
}
