//! The in-process waiting room (embedded mode): per event, the counters of the
//! `WaitingRoom` port, each customer's join number (16 bytes of id and 8 of number:
//! the only per-joiner memory), and the live sessions (at most as many as the room
//! lets in at once). One mutex per event, never held across an `.await`; time is the
//! app's clock, so a test moving it moves admissions.
//!
//! The admission arithmetic is [`advance`], which `room.lua` mirrors for Redis.

use async_trait::async_trait;
use boxoffice_domain::{EventId, Millis, UserId};
use boxoffice_ports::{Clock, Draw, EngineError, Joined, RoomParams, RoomState, WaitingRoom};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, Default)]
struct Room {
    /// Customer (their id's ulid) → join number.
    joins: HashMap<u128, u64>,
    joined: u64,
    draw: Option<Draw>,
    served: u64,
    next_ms: i64,
    /// Live sessions: rank → end, and the same ordered by end for the purge.
    sessions: HashMap<u64, i64>,
    by_end: BTreeSet<(i64, u64)>,
}

impl Room {
    /// Lets in whoever the rate and the free capacity allow by `now` (see the port).
    fn advance(&mut self, p: &RoomParams, now: i64) {
        while let Some(&(end, rank)) = self.by_end.first() {
            if end > now {
                break;
            }
            self.by_end.pop_first();
            self.sessions.remove(&rank);
        }
        if !p.started {
            return;
        }
        if self.draw.is_none() {
            self.draw = Some(Draw {
                pre_queue_len: self.joined,
                seed: p.seed,
            });
            self.next_ms = now;
        }
        let (n, next) = advance(
            AdmissionInput {
                waiting: self.joined - self.served,
                live: self.sessions.len() as u64,
                max_active: p.max_active,
                next_ms: self.next_ms,
                interval_ms: p.admission_interval_ms,
            },
            now,
        );
        for rank in self.served..self.served + n {
            let end = now + p.session_ms as i64;
            self.sessions.insert(rank, end);
            self.by_end.insert((end, rank));
        }
        self.served += n;
        self.next_ms = next;
    }

    fn state(&self, now: i64) -> RoomState {
        RoomState {
            joined: self.joined,
            draw: self.draw,
            served: self.served,
            next_admission_ms: self.next_ms,
            now_ms: now,
        }
    }
}

/// What one admission step looks at.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionInput {
    /// Ranked but not yet admitted.
    pub waiting: u64,
    /// Live sessions.
    pub live: u64,
    pub max_active: Option<u32>,
    /// When the next admission is due by the rate.
    pub next_ms: i64,
    pub interval_ms: u64,
}

/// How many to admit at `now`, and when the next admission is then due. The rate
/// allows one at `next_ms` and one every interval after (GCRA with a burst of one):
/// time that passed with no one to admit, or no free slot, is not saved up.
pub fn advance(i: AdmissionInput, now: i64) -> (u64, i64) {
    let interval = i.interval_ms.max(1) as i64;
    let mut n = 0;
    if now >= i.next_ms {
        n = ((now - i.next_ms) / interval + 1) as u64;
    }
    n = n.min(i.waiting);
    if let Some(cap) = i.max_active {
        n = n.min(u64::from(cap).saturating_sub(i.live));
    }
    let next = (i.next_ms + n as i64 * interval).max(now);
    (n, next)
}

fn customer_key(c: &UserId) -> u128 {
    let s = c.as_str();
    let ulid = s.rsplit('_').next().unwrap_or(s);
    ulid::Ulid::from_string(&ulid.to_uppercase())
        .map(u128::from)
        // Ids are checked when parsed; this is never reached, and a hash would do.
        .unwrap_or_else(|_| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            u128::from(h.finish())
        })
}

#[derive(Debug)]
pub struct MemoryWaitingRoom {
    rooms: Mutex<HashMap<EventId, Arc<Mutex<Room>>>>,
    clock: Arc<dyn Clock>,
}

impl MemoryWaitingRoom {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            rooms: Default::default(),
            clock,
        }
    }

    fn room(&self, event: &EventId) -> Arc<Mutex<Room>> {
        self.rooms.lock().entry(event.clone()).or_default().clone()
    }

    fn now(&self) -> i64 {
        Millis::from_datetime(self.clock.now()).0
    }
}

#[async_trait]
impl WaitingRoom for MemoryWaitingRoom {
    async fn join(
        &self,
        event: &EventId,
        customer: &UserId,
        params: &RoomParams,
    ) -> Result<Joined, EngineError> {
        let now = self.now();
        let room = self.room(event);
        let mut r = room.lock();
        r.advance(params, now);
        let next = r.joined;
        let number = *r.joins.entry(customer_key(customer)).or_insert(next);
        let new = number == next;
        if new {
            r.joined += 1;
            r.advance(params, now);
        }
        Ok(Joined {
            number,
            new,
            state: r.state(now),
        })
    }

    async fn state(&self, event: &EventId, params: &RoomParams) -> Result<RoomState, EngineError> {
        let now = self.now();
        let room = self.room(event);
        let mut r = room.lock();
        r.advance(params, now);
        Ok(r.state(now))
    }

    async fn session(&self, event: &EventId, rank: u64) -> Result<Option<i64>, EngineError> {
        let now = self.now();
        let room = self.room(event);
        let r = room.lock();
        Ok(r.sessions.get(&rank).copied().filter(|&end| end > now))
    }

    async fn leave(&self, event: &EventId, rank: u64) -> Result<bool, EngineError> {
        let room = self.room(event);
        let mut r = room.lock();
        match r.sessions.remove(&rank) {
            Some(end) => {
                r.by_end.remove(&(end, rank));
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(waiting: u64, live: u64, cap: Option<u32>, next_ms: i64) -> AdmissionInput {
        AdmissionInput {
            waiting,
            live,
            max_active: cap,
            next_ms,
            interval_ms: 1000,
        }
    }

    #[test]
    fn the_rate_admits_one_per_interval_and_saves_nothing_up() {
        assert_eq!(advance(input(10, 0, None, 0), 0), (1, 1000));
        assert_eq!(advance(input(10, 0, None, 1000), 999), (0, 1000));
        assert_eq!(advance(input(10, 0, None, 1000), 3500), (3, 4000));
        // Nobody waiting: the time is not saved for later.
        assert_eq!(advance(input(0, 0, None, 1000), 60_000), (0, 60_000));
        assert_eq!(advance(input(2, 0, None, 1000), 60_000), (2, 60_000));
    }

    #[test]
    fn capacity_caps_admissions() {
        assert_eq!(advance(input(10, 3, Some(3), 0), 5000), (0, 5000));
        assert_eq!(advance(input(10, 2, Some(3), 0), 5000), (1, 5000));
    }
}
