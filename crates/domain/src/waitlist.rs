//! The waitlist of a sold-out event or tier (issue 12): a line of customers, each
//! wanting `quantity` tickets of one tier (or any seat). When seats come back, the
//! next in line is offered them: a hold made in their name, valid for a while.
//!
//! An entry moves `waiting → claimed → offered → converted | expired`, or to
//! `left` from any live state. `claimed` is a node's exclusive right, recorded in
//! the store by a conditional update, to make the one offer an entry gets; it
//! names the hold it is making, so a claim left by a dead node can be finished
//! (the hold was recorded) or given back (it was not).

use crate::{EventId, HoldId, TierId, UserId, WaitlistId};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitlistState {
    /// In line.
    Waiting,
    /// A node is making this entry's offer (still in line, to its owner).
    Claimed,
    /// A hold was made for the customer; it is theirs until it expires.
    Offered,
    /// The offer's hold was checked out.
    Converted,
    /// The offer lapsed (its hold expired or was released) and rolled to the next.
    Expired,
    /// The customer left the line.
    Left,
}

impl WaitlistState {
    pub const ALL: [WaitlistState; 6] = [
        WaitlistState::Waiting,
        WaitlistState::Claimed,
        WaitlistState::Offered,
        WaitlistState::Converted,
        WaitlistState::Expired,
        WaitlistState::Left,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitlistState::Waiting => "waiting",
            WaitlistState::Claimed => "claimed",
            WaitlistState::Offered => "offered",
            WaitlistState::Converted => "converted",
            WaitlistState::Expired => "expired",
            WaitlistState::Left => "left",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// Still in line or holding an offer: one such entry per customer and event.
    pub fn live(self) -> bool {
        matches!(
            self,
            WaitlistState::Waiting | WaitlistState::Claimed | WaitlistState::Offered
        )
    }

    /// What its owner sees: a claim in progress is still waiting.
    pub fn public(self) -> &'static str {
        match self {
            WaitlistState::Claimed => "waiting",
            s => s.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitlistEntry {
    pub id: WaitlistId,
    pub event_id: EventId,
    pub customer_id: UserId,
    /// Where the offer is announced (the account's email when it joined).
    pub email: String,
    /// A seated or GA tier of the event; `None`: any seat.
    pub tier_id: Option<TierId>,
    pub quantity: u32,
    pub state: WaitlistState,
    /// The order of the line (given by the store; 0 before it is stored).
    pub seq: i64,
    /// The offer's hold (claimed: the hold being made).
    pub hold_id: Option<HoldId>,
    /// Until when the offer's hold is valid.
    pub offer_expires_at: Option<OffsetDateTime>,
    /// Until when a claim is its node's; past it another node finishes or undoes it.
    pub claim_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_claims_look_like_waiting() {
        for s in WaitlistState::ALL {
            assert_eq!(WaitlistState::parse(s.as_str()), Some(s));
        }
        assert_eq!(WaitlistState::Claimed.public(), "waiting");
        assert!(WaitlistState::Offered.live());
        assert!(!WaitlistState::Expired.live());
    }
}
