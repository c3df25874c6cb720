//! The inventory of one event, as a hold engine keeps it: each seat available, held
//! or sold; each general-admission tier's capacity, held and sold counts; the live
//! holds and their deadlines.
//!
//! This is the reference semantics every hold engine implements (the in-process one
//! wraps it directly; the Redis one mirrors it in Lua and is tested against it).
//! Invariants, kept by every operation:
//! - a seat is in at most one live hold, and a held or sold seat is never held again;
//! - for each GA tier, held + sold ≤ capacity;
//! - a hold whose deadline is ≤ `now` is gone: every operation first expires the
//!   holds that are due, so an expired hold never blocks a seat, swept or not.
//!
//! It never does I/O and never reads a clock: `now` is always an argument.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{HoldId, Millis};

/// A seat's place in its event's layout order.
pub type SeatIx = u32;
/// A GA tier's place in its event's `ga_tiers`.
pub type GaIx = u16;

pub const AVAILABLE: u8 = b'A';
pub const HELD: u8 = b'H';
pub const SOLD: u8 = b'S';

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HoldItems {
    Seats(Vec<SeatIx>),
    Ga { tier: GaIx, quantity: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRejection {
    /// Some requested seats are held or sold: these ones, in request order.
    SeatsUnavailable(Vec<SeatIx>),
    /// Not enough GA capacity left for the quantity asked.
    SoldOut { remaining: u32 },
    /// A live hold with this id exists already.
    DuplicateHold,
    /// Empty, repeated or out-of-range items, or a deadline not in the future.
    InvalidItems(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaCounts {
    pub capacity: u32,
    pub held: u32,
    pub sold: u32,
}

impl GaCounts {
    pub fn remaining(&self) -> u32 {
        self.capacity.saturating_sub(self.held + self.sold)
    }
}

#[derive(Debug, Clone)]
struct LiveHold {
    items: HoldItems,
    expires_at: Millis,
}

#[derive(Debug, Clone)]
pub struct EventInventory {
    /// One byte per seat in layout order: `A`, `H` or `S`. Kept up to date so the
    /// live seat map is a copy, not a computation.
    status: Vec<u8>,
    ga: Vec<GaCounts>,
    holds: HashMap<HoldId, LiveHold>,
    deadlines: BTreeSet<(Millis, HoldId)>,
    /// Grows by one with every change of status.
    version: u64,
    /// Reused by [`Self::check_seats`] for long seat lists, so holds do not allocate.
    scratch: Vec<SeatIx>,
}

impl EventInventory {
    /// An event with everything available. `version` is where counting starts: an
    /// engine rebuilt after a restart starts above anything it announced before.
    pub fn new(seat_count: usize, ga_capacities: &[u32], version: u64) -> Self {
        Self {
            status: vec![AVAILABLE; seat_count],
            ga: ga_capacities
                .iter()
                .map(|&capacity| GaCounts {
                    capacity,
                    held: 0,
                    sold: 0,
                })
                .collect(),
            holds: HashMap::new(),
            deadlines: BTreeSet::new(),
            version,
            scratch: Vec::new(),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Seat statuses in layout order (`A`/`H`/`S`). Call [`Self::expire_due`] first
    /// for an exact picture at a given instant.
    pub fn status(&self) -> &[u8] {
        &self.status
    }

    pub fn ga(&self) -> &[GaCounts] {
        &self.ga
    }

    pub fn live_holds(&self) -> usize {
        self.holds.len()
    }

    pub fn seat_count(&self) -> usize {
        self.status.len()
    }

    /// The live holds: id, items, deadline (for copying the state elsewhere).
    pub fn holds(&self) -> impl Iterator<Item = (&HoldId, &HoldItems, Millis)> {
        self.holds
            .iter()
            .map(|(id, h)| (id, &h.items, h.expires_at))
    }

    /// Rebuild: a seat sold before. Returns false if it was not available.
    pub fn restore_sold_seat(&mut self, seat: SeatIx) -> bool {
        match self.status.get_mut(seat as usize) {
            Some(s) if *s == AVAILABLE => {
                *s = SOLD;
                true
            }
            _ => false,
        }
    }

    /// Rebuild: GA units sold before. Returns false if that would pass capacity.
    pub fn restore_ga_sold(&mut self, tier: GaIx, quantity: u32) -> bool {
        match self.ga.get_mut(usize::from(tier)) {
            Some(g) if g.remaining() >= quantity => {
                g.sold += quantity;
                true
            }
            _ => false,
        }
    }

    /// Holds the items for `id` until `expires_at`, all or nothing.
    pub fn hold(
        &mut self,
        id: HoldId,
        items: HoldItems,
        expires_at: Millis,
        now: Millis,
    ) -> Result<(), HoldRejection> {
        self.expire_due(now);
        if expires_at <= now {
            return Err(HoldRejection::InvalidItems("deadline is not in the future"));
        }
        if self.holds.contains_key(&id) {
            return Err(HoldRejection::DuplicateHold);
        }
        match &items {
            HoldItems::Seats(seats) => {
                if seats.is_empty() {
                    return Err(HoldRejection::InvalidItems("no seats"));
                }
                self.check_seats(seats)?;
                for &s in seats {
                    self.status[s as usize] = HELD;
                }
            }
            HoldItems::Ga { tier, quantity } => {
                let Some(g) = self.ga.get_mut(usize::from(*tier)) else {
                    return Err(HoldRejection::InvalidItems("no such tier"));
                };
                if *quantity == 0 {
                    return Err(HoldRejection::InvalidItems("quantity must be positive"));
                }
                if g.remaining() < *quantity {
                    return Err(HoldRejection::SoldOut {
                        remaining: g.remaining(),
                    });
                }
                g.held += quantity;
            }
        }
        self.deadlines.insert((expires_at, id.clone()));
        self.holds.insert(id, LiveHold { items, expires_at });
        self.version += 1;
        Ok(())
    }

    /// Gives a live hold's items back. `None` if the hold is not live (unknown,
    /// released, confirmed or expired).
    pub fn release(&mut self, id: &HoldId, now: Millis) -> Option<HoldItems> {
        self.expire_due(now);
        let h = self.take(id)?;
        self.free(&h.items);
        self.version += 1;
        Some(h.items)
    }

    /// Turns a live hold's items into sold ones. `None` if the hold is not live.
    pub fn confirm(&mut self, id: &HoldId, now: Millis) -> Option<HoldItems> {
        self.expire_due(now);
        let h = self.take(id)?;
        match &h.items {
            HoldItems::Seats(seats) => {
                for &s in seats {
                    self.status[s as usize] = SOLD;
                }
            }
            HoldItems::Ga { tier, quantity } => {
                let g = &mut self.ga[usize::from(*tier)];
                g.held -= quantity;
                g.sold += quantity;
            }
        }
        self.version += 1;
        Some(h.items)
    }

    /// Moves a live hold's deadline (checkout keeps a hold while its payment runs).
    /// False if the hold is not live or the new deadline is not in the future.
    pub fn extend(&mut self, id: &HoldId, expires_at: Millis, now: Millis) -> bool {
        self.expire_due(now);
        if expires_at <= now {
            return false;
        }
        let Some(h) = self.holds.get_mut(id) else {
            return false;
        };
        self.deadlines.remove(&(h.expires_at, id.clone()));
        h.expires_at = expires_at;
        self.deadlines.insert((expires_at, id.clone()));
        true
    }

    pub fn is_live(&mut self, id: &HoldId, now: Millis) -> bool {
        self.expire_due(now);
        self.holds.contains_key(id)
    }

    /// Expires every hold whose deadline is ≤ `now` and returns their ids.
    pub fn expire_due(&mut self, now: Millis) -> Vec<HoldId> {
        let mut expired = Vec::new();
        while let Some(first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            let (_, id) = self.deadlines.pop_first().expect("checked above");
            if let Some(h) = self.holds.remove(&id) {
                self.free(&h.items);
                self.version += 1;
                expired.push(id);
            }
        }
        expired
    }

    /// Whether a hold may take these seats: every seat exists and appears once
    /// (else the first offender in request order is the error), and all are
    /// available (else the taken ones, in request order).
    ///
    /// This runs on every hold, so a valid request allocates nothing: a buyer asks
    /// for a handful of seats, and comparing each with those before it is cheaper
    /// than any set; a long list is checked for repeats in a sorted scratch copy kept
    /// between calls. Only a rejection allocates (the list it returns).
    fn check_seats(&mut self, seats: &[SeatIx]) -> Result<(), HoldRejection> {
        const SHORT: usize = 16;
        let mut taken = Vec::new();
        let mut invalid = false;
        for (i, &s) in seats.iter().enumerate() {
            let Some(&st) = self.status.get(s as usize) else {
                invalid = true;
                break;
            };
            if seats.len() <= SHORT && seats[..i].contains(&s) {
                invalid = true;
                break;
            }
            if st != AVAILABLE {
                taken.push(s);
            }
        }
        if !invalid && seats.len() > SHORT {
            self.scratch.clear();
            self.scratch.extend_from_slice(seats);
            self.scratch.sort_unstable();
            invalid = self.scratch.windows(2).any(|w| w[0] == w[1]);
        }
        if invalid {
            return Err(self.first_invalid_seat(seats));
        }
        if !taken.is_empty() {
            return Err(HoldRejection::SeatsUnavailable(taken));
        }
        Ok(())
    }

    /// The error for a seat list known to be invalid: the first seat, in request
    /// order, that does not exist or repeats an earlier one. Rare, so plain.
    fn first_invalid_seat(&self, seats: &[SeatIx]) -> HoldRejection {
        let mut seen = HashSet::with_capacity(seats.len());
        for &s in seats {
            if s as usize >= self.status.len() {
                return HoldRejection::InvalidItems("no such seat");
            }
            if !seen.insert(s) {
                return HoldRejection::InvalidItems("seat repeated");
            }
        }
        HoldRejection::InvalidItems("invalid seats")
    }

    fn take(&mut self, id: &HoldId) -> Option<LiveHold> {
        // The map gives its own key back, so the deadline's key needs no new copy.
        let (id, h) = self.holds.remove_entry(id)?;
        self.deadlines.remove(&(h.expires_at, id));
        Some(h)
    }

    fn free(&mut self, items: &HoldItems) {
        match items {
            HoldItems::Seats(seats) => {
                for &s in seats {
                    self.status[s as usize] = AVAILABLE;
                }
            }
            HoldItems::Ga { tier, quantity } => {
                self.ga[usize::from(*tier)].held -= quantity;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> EventInventory {
        EventInventory::new(5, &[3], 0)
    }

    #[test]
    fn all_or_nothing_and_names_the_taken_seats() {
        let mut i = inv();
        let a = HoldId::new();
        i.hold(
            a.clone(),
            HoldItems::Seats(vec![1, 2]),
            Millis(100),
            Millis(0),
        )
        .unwrap();
        let err = i
            .hold(
                HoldId::new(),
                HoldItems::Seats(vec![0, 2, 1]),
                Millis(100),
                Millis(0),
            )
            .unwrap_err();
        assert_eq!(err, HoldRejection::SeatsUnavailable(vec![2, 1]));
        assert_eq!(i.status(), b"AHHAA");
        assert_eq!(i.version(), 1);
    }

    #[test]
    fn expiry_is_exact_at_the_deadline() {
        let mut i = inv();
        let a = HoldId::new();
        i.hold(a.clone(), HoldItems::Seats(vec![0]), Millis(100), Millis(0))
            .unwrap();
        assert!(i.is_live(&a, Millis(99)));
        assert!(!i.is_live(&a, Millis(100)));
        assert_eq!(i.status(), b"AAAAA");
        // A new buyer gets the seat without any sweep in between.
        let mut j = inv();
        j.hold(a, HoldItems::Seats(vec![0]), Millis(100), Millis(0))
            .unwrap();
        j.hold(
            HoldId::new(),
            HoldItems::Seats(vec![0]),
            Millis(300),
            Millis(100),
        )
        .unwrap();
    }

    #[test]
    fn ga_capacity() {
        let mut i = inv();
        i.hold(
            HoldId::new(),
            HoldItems::Ga {
                tier: 0,
                quantity: 2,
            },
            Millis(10),
            Millis(0),
        )
        .unwrap();
        assert_eq!(
            i.hold(
                HoldId::new(),
                HoldItems::Ga {
                    tier: 0,
                    quantity: 2
                },
                Millis(10),
                Millis(0)
            ),
            Err(HoldRejection::SoldOut { remaining: 1 })
        );
        let c = HoldId::new();
        i.hold(
            c.clone(),
            HoldItems::Ga {
                tier: 0,
                quantity: 1,
            },
            Millis(10),
            Millis(0),
        )
        .unwrap();
        i.confirm(&c, Millis(1)).unwrap();
        assert_eq!(
            i.ga()[0],
            GaCounts {
                capacity: 3,
                held: 2,
                sold: 1
            }
        );
        i.expire_due(Millis(10));
        assert_eq!(i.ga()[0].remaining(), 2);
    }

    /// The seat check as it was first written (a set per call): the allocation-free
    /// one must give the same answer for every list, short or long.
    fn reference_check(status: &[u8], seats: &[SeatIx]) -> Result<(), HoldRejection> {
        let mut seen = BTreeSet::new();
        let mut taken = Vec::new();
        for &s in seats {
            let Some(&st) = status.get(s as usize) else {
                return Err(HoldRejection::InvalidItems("no such seat"));
            };
            if !seen.insert(s) {
                return Err(HoldRejection::InvalidItems("seat repeated"));
            }
            if st != AVAILABLE {
                taken.push(s);
            }
        }
        if !taken.is_empty() {
            return Err(HoldRejection::SeatsUnavailable(taken));
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn the_seat_check_matches_the_reference(
            held in proptest::collection::vec(0u32..60, 0..20),
            // Up to 40 seats among 62 (60 exist): short and long lists, repeats and
            // strays included.
            seats in proptest::collection::vec(0u32..62, 1..40),
        ) {
            let mut i = EventInventory::new(60, &[], 0);
            for s in held {
                let _ = i.hold(HoldId::new(), HoldItems::Seats(vec![s]), Millis(100), Millis(0));
            }
            let expected = reference_check(i.status(), &seats);
            let before = i.status().to_vec();
            let got = i.hold(HoldId::new(), HoldItems::Seats(seats.clone()), Millis(100), Millis(0));
            proptest::prop_assert_eq!(&got, &expected, "{:?}", seats);
            if got.is_err() {
                proptest::prop_assert_eq!(i.status(), &before[..]);
            }
        }
    }

    #[test]
    fn long_lists_name_the_first_offender() {
        let mut i = EventInventory::new(100, &[], 0);
        let mut seats: Vec<u32> = (0..30).collect();
        seats.push(5);
        seats.push(100);
        assert_eq!(
            i.hold(
                HoldId::new(),
                HoldItems::Seats(seats.clone()),
                Millis(9),
                Millis(0)
            ),
            Err(HoldRejection::InvalidItems("seat repeated"))
        );
        seats.swap(30, 31);
        assert_eq!(
            i.hold(HoldId::new(), HoldItems::Seats(seats), Millis(9), Millis(0)),
            Err(HoldRejection::InvalidItems("no such seat"))
        );
        let long: Vec<u32> = (40..80).rev().collect();
        i.hold(HoldId::new(), HoldItems::Seats(long), Millis(9), Millis(0))
            .unwrap();
        assert_eq!(i.status().iter().filter(|&&s| s == HELD).count(), 40);
    }

    #[test]
    fn invalid_items() {
        let mut i = inv();
        for items in [
            HoldItems::Seats(vec![]),
            HoldItems::Seats(vec![5]),
            HoldItems::Seats(vec![1, 1]),
            HoldItems::Ga {
                tier: 1,
                quantity: 1,
            },
            HoldItems::Ga {
                tier: 0,
                quantity: 0,
            },
        ] {
            assert!(matches!(
                i.hold(HoldId::new(), items, Millis(10), Millis(0)),
                Err(HoldRejection::InvalidItems(_))
            ));
        }
        assert_eq!(i.version(), 0);
    }
}
