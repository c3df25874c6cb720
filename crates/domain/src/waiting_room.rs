//! The virtual waiting room's rules (issue 12): an event's room settings, the
//! lottery that orders the pre-queue at sale start, and the queue arithmetic.
//!
//! The room keeps counters, not a list: every joiner gets a join number, and the
//! *rank* (place in the admission order) follows from it. Joins before the sale
//! start (the pre-queue) are shuffled once, at the start, by a keyed permutation of
//! `0..pre_queue_len` ([`lottery_rank`]): no list is stored, the seed and the length
//! are enough to compute anyone's rank. Joins after the start are ranked in join
//! order (FIFO) after the whole pre-queue. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ValidationError;

pub const MAX_ADMISSION_PER_MINUTE: u32 = 1_000_000;
pub const MAX_SESSION_SECONDS: u32 = 24 * 3600;
pub const MAX_CHALLENGE_DIFFICULTY: u8 = 32;

/// An event's waiting room, as the organizer sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomSettings {
    /// Off: holds need no admission, joining is refused.
    pub enabled: bool,
    /// New shoppers let in a minute (the inlet rate).
    pub admission_per_minute: u32,
    /// Most shoppers inside at once (none: only the rate limits admission).
    #[serde(default)]
    pub max_active_shoppers: Option<u32>,
    /// How long an admitted shopper may shop (the admission token's lifetime).
    pub session_seconds: u32,
    /// Joining opens here, before the sale: joins until the sale starts form the
    /// pre-queue, drawn by lot at the start. None: joining opens with the sale.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub pre_queue_opens_at: Option<OffsetDateTime>,
    /// Leading zero bits the proof-of-work of a join needs (0: no challenge).
    #[serde(default)]
    pub challenge_difficulty: u8,
}

impl WaitingRoomSettings {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let f = |field: &str, msg: String| {
            Err(ValidationError::new(format!("waiting_room.{field}"), msg))
        };
        if !(1..=MAX_ADMISSION_PER_MINUTE).contains(&self.admission_per_minute) {
            return f(
                "admission_per_minute",
                format!("must be between 1 and {MAX_ADMISSION_PER_MINUTE}"),
            );
        }
        if self.max_active_shoppers == Some(0) {
            return f(
                "max_active_shoppers",
                "must be at least 1, or null (no cap)".into(),
            );
        }
        if !(1..=MAX_SESSION_SECONDS).contains(&self.session_seconds) {
            return f(
                "session_seconds",
                format!("must be between 1 and {MAX_SESSION_SECONDS}"),
            );
        }
        if self.challenge_difficulty > MAX_CHALLENGE_DIFFICULTY {
            return f(
                "challenge_difficulty",
                format!("must be between 0 and {MAX_CHALLENGE_DIFFICULTY}"),
            );
        }
        Ok(())
    }

    /// Milliseconds between two admissions at the configured rate.
    pub fn admission_interval_ms(&self) -> u64 {
        (60_000 / u64::from(self.admission_per_minute.max(1))).max(1)
    }
}

/// The place in the admission order (0-based) of join number `join` (0-based),
/// once the pre-queue of `pre_queue_len` joins was drawn with `seed`: the pre-queue
/// by lot (a permutation of its join numbers), everyone after in join order.
pub fn lottery_rank(join: u64, pre_queue_len: u64, seed: u64) -> u64 {
    if join >= pre_queue_len {
        return join;
    }
    permute(join, pre_queue_len, seed)
}

/// A keyed permutation of `0..n`: a four-round Feistel network on the smallest
/// square power of two that holds `n`, walked until it lands inside `0..n` (cycle
/// walking keeps it a bijection). The key is secret until the draw, so no one can
/// choose their join moment to land early. Not cryptographic; it needs only to be
/// unpredictable without the seed and cheap (no table: O(1) memory per joiner).
pub fn permute(x: u64, n: u64, seed: u64) -> u64 {
    debug_assert!(x < n);
    if n <= 1 {
        return x;
    }
    let bits = 64 - (n - 1).leading_zeros();
    let half = bits.div_ceil(2).max(1);
    let mask = (1u64 << half) - 1;
    let mut v = x;
    loop {
        let (mut l, mut r) = (v >> half, v & mask);
        for round in 0..4u64 {
            let f = mix(seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ r) & mask;
            (l, r) = (r, l ^ f);
        }
        v = (l << half) | r;
        if v < n {
            return v;
        }
    }
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_lottery_is_a_permutation(n in 1u64..3000, seed: u64) {
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let r = lottery_rank(x, n, seed);
                prop_assert!(r < n);
                prop_assert!(!seen[r as usize]);
                seen[r as usize] = true;
            }
        }

        #[test]
        fn joins_after_the_draw_keep_their_order(n in 0u64..1000, seed: u64, k in 0u64..1000) {
            prop_assert_eq!(lottery_rank(n + k, n, seed), n + k);
        }
    }

    #[test]
    fn different_seeds_draw_differently() {
        let a: Vec<u64> = (0..100).map(|x| permute(x, 100, 1)).collect();
        let b: Vec<u64> = (0..100).map(|x| permute(x, 100, 2)).collect();
        assert_ne!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn settings_are_checked() {
        let ok = WaitingRoomSettings {
            enabled: true,
            admission_per_minute: 60,
            max_active_shoppers: None,
            session_seconds: 600,
            pre_queue_opens_at: None,
            challenge_difficulty: 0,
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.admission_interval_ms(), 1000);
        for bad in [
            WaitingRoomSettings {
                admission_per_minute: 0,
                ..ok.clone()
            },
            WaitingRoomSettings {
                max_active_shoppers: Some(0),
                ..ok.clone()
            },
            WaitingRoomSettings {
                session_seconds: 0,
                ..ok.clone()
            },
            WaitingRoomSettings {
                challenge_difficulty: 33,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
