//! The hold-engine suite: semantics, races, and a property test against a reference
//! model that is written independently of `EventInventory` (it recomputes everything
//! from the list of holds instead of keeping counters).

use async_trait::async_trait;
use boxoffice_domain::{EventId, HoldId, HoldItems, HoldRejection, Millis};
use boxoffice_ports::{
    Clock, EngineError, HoldEngine, HoldRequest, InventorySnapshot, SeatMap, SnapshotHold,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The suite's clock, for an engine that keeps time itself (Redis reads its own
/// `TIME`): [`OwnClock`] sets it to the `now` of each call just before making it,
/// and the engine, built on it as its test clock, shifts its own clock to match.
#[derive(Debug, Default)]
pub struct SuiteClock(AtomicI64);

impl Clock for SuiteClock {
    fn now(&self) -> time::OffsetDateTime {
        Millis(self.0.load(Ordering::SeqCst)).to_datetime()
    }
}

/// How many of the engine's milliseconds one of the suite's is, under [`OwnClock`]:
/// a minute, so the moment between setting the clock and Redis reading its own
/// (a round trip, a busy scheduler) never crosses a deadline the suite placed a
/// millisecond away. Only comparisons of instants matter to an engine, so the
/// answers are those of the unscaled suite.
pub const OWN_CLOCK_SCALE: i64 = 60_000;

/// Runs the suite on an engine that decides expiry by its own clock: every instant
/// the suite passes (now, deadlines) is scaled by [`OWN_CLOCK_SCALE`], and the
/// engine's clock is set to each call's `now` first. The engine under test is the
/// real one, with its clock shifted; nothing of its logic is replaced.
#[derive(Debug)]
pub struct OwnClock<E> {
    engine: E,
    clock: Arc<SuiteClock>,
}

impl<E: HoldEngine> OwnClock<E> {
    /// `engine` must read `clock` as its test clock.
    pub fn new(engine: E, clock: Arc<SuiteClock>) -> Self {
        Self { engine, clock }
    }

    fn at(&self, now: Millis) -> Millis {
        let now = Millis(now.0 * OWN_CLOCK_SCALE);
        self.clock.0.store(now.0, Ordering::SeqCst);
        now
    }
}

fn scaled(t: Millis) -> Millis {
    Millis(t.0 * OWN_CLOCK_SCALE)
}

#[async_trait]
impl<E: HoldEngine> HoldEngine for OwnClock<E> {
    async fn prepare_load(&self, event: &EventId) -> Result<Option<String>, EngineError> {
        self.engine.prepare_load(event).await
    }
    async fn load_event(&self, mut s: InventorySnapshot, now: Millis) -> Result<(), EngineError> {
        for h in &mut s.holds {
            h.expires_at = scaled(h.expires_at);
        }
        let now = self.at(now);
        self.engine.load_event(s, now).await
    }
    async fn hold(&self, mut req: HoldRequest) -> Result<Result<(), HoldRejection>, EngineError> {
        req.expires_at = scaled(req.expires_at);
        req.now = self.at(req.now);
        self.engine.hold(req).await
    }
    async fn release(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        let now = self.at(now);
        self.engine.release(event, hold, now).await
    }
    async fn confirm(
        &self,
        event: &EventId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        let now = self.at(now);
        self.engine.confirm(event, hold, now).await
    }
    async fn extend(
        &self,
        event: &EventId,
        hold: &HoldId,
        expires_at: Millis,
        now: Millis,
    ) -> Result<bool, EngineError> {
        let now = self.at(now);
        self.engine
            .extend(event, hold, scaled(expires_at), now)
            .await
    }
    async fn seat_map(&self, event: &EventId, now: Millis) -> Result<SeatMap, EngineError> {
        let now = self.at(now);
        self.engine.seat_map(event, now).await
    }
    async fn seat_map_version(&self, event: &EventId, now: Millis) -> Result<u64, EngineError> {
        let now = self.at(now);
        self.engine.seat_map_version(event, now).await
    }
    async fn evict(&self, event: &EventId) -> Result<(), EngineError> {
        self.engine.evict(event).await
    }
    async fn expire_due(&self, now: Millis) -> Result<Vec<(EventId, HoldId)>, EngineError> {
        let now = self.at(now);
        self.engine.expire_due(now).await
    }
    async fn ping(&self) -> Result<(), EngineError> {
        self.engine.ping().await
    }
    fn volatile(&self) -> bool {
        self.engine.volatile()
    }
}

fn snapshot(event: &EventId, seats: usize, caps: &[u32]) -> InventorySnapshot {
    InventorySnapshot {
        event: event.clone(),
        seat_count: seats,
        ga_capacities: caps.to_vec(),
        sold_seats: vec![],
        ga_sold: vec![0; caps.len()],
        holds: vec![],
        base_version: 0,
        load_token: None,
    }
}

/// Loads as the app does: prepare (a volatile engine leaves its token), then load.
async fn load<E: HoldEngine>(engine: &E, mut snapshot: InventorySnapshot, now: i64) {
    snapshot.load_token = engine.prepare_load(&snapshot.event).await.unwrap();
    engine.load_event(snapshot, Millis(now)).await.unwrap();
}

fn req(event: &EventId, items: HoldItems, expires_at: i64, now: i64) -> HoldRequest {
    HoldRequest {
        event: event.clone(),
        hold: HoldId::new(),
        items,
        expires_at: Millis(expires_at),
        now: Millis(now),
    }
}

/// A store commit's follow-up (here a release) that finds the event not loaded while
/// a loader holds a snapshot from before the commit: the load must not bring the
/// released hold back. It either refuses the snapshot (`StaleSnapshot`, and a new
/// load reads the store again) or applies the follow-up after it.
pub async fn a_follow_up_during_a_load_is_not_lost<E: HoldEngine>(engine: Arc<E>) {
    let ev = EventId::new();
    let now = 1_000;
    let hold = HoldId::new();
    let mut before = snapshot(&ev, 4, &[]);
    before.holds = vec![SnapshotHold {
        id: hold.clone(),
        items: HoldItems::Seats(vec![1, 2]),
        expires_at: Millis(now + 60_000),
    }];
    before.load_token = engine.prepare_load(&ev).await.unwrap();
    // The store released the hold after the snapshot was read; the engine follows.
    assert!(matches!(
        engine.release(&ev, &hold, Millis(now)).await,
        Err(EngineError::EventNotLoaded(_))
    ));
    match engine.load_event(before, Millis(now)).await {
        Ok(()) => {}
        Err(EngineError::StaleSnapshot(_)) => {
            // The loader reads the store again, which has the release.
            load(&*engine, snapshot(&ev, 4, &[]), now).await;
        }
        Err(e) => panic!("load: {e:?}"),
    }
    assert_eq!(
        engine.seat_map(&ev, Millis(now)).await.unwrap().status,
        b"AAAA",
        "the released hold came back with the stale snapshot"
    );
}

/// An evict (a refund made the store sell seats no more, which the engine cannot
/// undo but by forgetting the event) while a loader holds a snapshot from before
/// it: the load must not bring the sold seats back. It refuses the snapshot
/// (`StaleSnapshot`, and a new load reads the store again).
pub async fn an_evict_during_a_load_voids_the_snapshot<E: HoldEngine>(engine: Arc<E>) {
    let ev = EventId::new();
    let now = 1_000;
    let mut before = snapshot(&ev, 4, &[]);
    before.sold_seats = vec![1, 2];
    before.load_token = engine.prepare_load(&ev).await.unwrap();
    // The store unsold seats 1 and 2 after the snapshot was read; the engine forgets.
    engine.evict(&ev).await.unwrap();
    match engine.load_event(before, Millis(now)).await {
        Err(EngineError::StaleSnapshot(_)) => load(&*engine, snapshot(&ev, 4, &[]), now).await,
        other => panic!("the stale snapshot was loaded: {other:?}"),
    }
    assert_eq!(
        engine.seat_map(&ev, Millis(now)).await.unwrap().status,
        b"AAAA",
        "the unsold seats came back sold with the stale snapshot"
    );
}

pub async fn basic_semantics<E: HoldEngine>(engine: Arc<E>) {
    let ev = EventId::new();
    let now = 1_000;
    assert!(matches!(
        engine.seat_map(&ev, Millis(now)).await,
        Err(EngineError::EventNotLoaded(_))
    ));
    load(&*engine, snapshot(&ev, 4, &[2]), now).await;
    let v0 = engine.seat_map(&ev, Millis(now)).await.unwrap();
    assert_eq!(v0.status, b"AAAA");

    let a = req(&ev, HoldItems::Seats(vec![0, 1]), now + 100, now);
    engine.hold(a.clone()).await.unwrap().unwrap();
    let b = req(&ev, HoldItems::Seats(vec![3, 1]), now + 100, now);
    assert_eq!(
        engine.hold(b).await.unwrap(),
        Err(HoldRejection::SeatsUnavailable(vec![1]))
    );
    let m = engine.seat_map(&ev, Millis(now)).await.unwrap();
    assert_eq!(m.status, b"HHAA");
    assert!(m.version > v0.version);

    // Loading again is a no-op: the hold survives.
    load(&*engine, snapshot(&ev, 4, &[2]), now).await;
    assert_eq!(
        engine.seat_map(&ev, Millis(now)).await.unwrap().status,
        b"HHAA"
    );

    // Release gives seats back at once; a second release finds nothing.
    assert!(engine
        .release(&ev, &a.hold, Millis(now))
        .await
        .unwrap()
        .is_some());
    assert!(engine
        .release(&ev, &a.hold, Millis(now))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        engine.seat_map(&ev, Millis(now)).await.unwrap().status,
        b"AAAA"
    );

    // Confirm makes seats sold for good.
    let c = req(&ev, HoldItems::Seats(vec![2]), now + 100, now);
    engine.hold(c.clone()).await.unwrap().unwrap();
    assert!(engine
        .confirm(&ev, &c.hold, Millis(now))
        .await
        .unwrap()
        .is_some());
    assert!(engine
        .release(&ev, &c.hold, Millis(now))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        engine
            .seat_map(&ev, Millis(now + 1_000))
            .await
            .unwrap()
            .status,
        b"AASA"
    );

    // Expiry is exact: at the deadline the seat is free for the next buyer.
    let d = req(&ev, HoldItems::Seats(vec![3]), now + 50, now);
    engine.hold(d.clone()).await.unwrap().unwrap();
    let e = req(&ev, HoldItems::Seats(vec![3]), now + 500, now + 50);
    engine.hold(e).await.unwrap().unwrap();
    assert!(engine
        .release(&ev, &d.hold, Millis(now + 60))
        .await
        .unwrap()
        .is_none());

    // Extend keeps a hold past its first deadline.
    let f = req(
        &ev,
        HoldItems::Ga {
            tier: 0,
            quantity: 2,
        },
        now + 10,
        now,
    );
    engine.hold(f.clone()).await.unwrap().unwrap();
    assert!(engine
        .extend(&ev, &f.hold, Millis(now + 1_000), Millis(now + 5))
        .await
        .unwrap());
    let g = req(
        &ev,
        HoldItems::Ga {
            tier: 0,
            quantity: 1,
        },
        now + 2_000,
        now + 20,
    );
    assert_eq!(
        engine.hold(g).await.unwrap(),
        Err(HoldRejection::SoldOut { remaining: 0 })
    );

    // The sweeper reports what expired.
    let expired = engine.expire_due(Millis(now + 10_000)).await.unwrap();
    assert!(expired.iter().any(|(e, h)| e == &ev && h == &f.hold));
    assert_eq!(
        engine.seat_map(&ev, Millis(now + 10_000)).await.unwrap().ga[0].remaining(),
        2
    );
    engine.ping().await.unwrap();
}

/// `seat_map_version` is the version `seat_map` reports, and it does the same lazy
/// expiry: a hold past its deadline is gone when only the version is asked, and its
/// expiry counts as a change.
pub async fn seat_map_version<E: HoldEngine>(engine: Arc<E>) {
    let ev = EventId::new();
    let now = 1_000;
    assert!(matches!(
        engine.seat_map_version(&ev, Millis(now)).await,
        Err(EngineError::EventNotLoaded(_))
    ));
    let mut snap = snapshot(&ev, 4, &[3]);
    snap.base_version = 7_000;
    load(&*engine, snap, now).await;
    let v0 = engine.seat_map_version(&ev, Millis(now)).await.unwrap();
    assert_eq!(v0, engine.seat_map(&ev, Millis(now)).await.unwrap().version);
    assert!(v0 >= 7_000, "the version starts at the snapshot's base");

    // A change moves it; asking again without a change does not.
    let a = req(&ev, HoldItems::Seats(vec![1]), now + 50, now);
    engine.hold(a.clone()).await.unwrap().unwrap();
    let g = req(
        &ev,
        HoldItems::Ga {
            tier: 0,
            quantity: 2,
        },
        now + 80,
        now,
    );
    engine.hold(g.clone()).await.unwrap().unwrap();
    let v1 = engine
        .seat_map_version(&ev, Millis(now + 10))
        .await
        .unwrap();
    assert!(v1 > v0);
    assert_eq!(
        engine
            .seat_map_version(&ev, Millis(now + 10))
            .await
            .unwrap(),
        v1
    );
    assert_eq!(
        engine
            .seat_map(&ev, Millis(now + 10))
            .await
            .unwrap()
            .version,
        v1
    );

    // At the seat hold's deadline, the version alone expires it: the version moved,
    // the seat is free in the next map at the same version, and the hold is gone.
    let v2 = engine
        .seat_map_version(&ev, Millis(now + 50))
        .await
        .unwrap();
    assert!(v2 > v1, "an expiry is a change");
    let m = engine.seat_map(&ev, Millis(now + 50)).await.unwrap();
    assert_eq!((m.version, m.status.as_slice()), (v2, &b"AAAA"[..]));
    assert_eq!(m.ga[0].held, 2);
    assert!(engine
        .release(&ev, &a.hold, Millis(now + 50))
        .await
        .unwrap()
        .is_none());

    // The GA hold too, well past its deadline.
    let v3 = engine
        .seat_map_version(&ev, Millis(now + 500))
        .await
        .unwrap();
    assert!(v3 > v2);
    let m = engine.seat_map(&ev, Millis(now + 500)).await.unwrap();
    assert_eq!((m.version, m.ga[0].held), (v3, 0));
    assert!(engine
        .release(&ev, &g.hold, Millis(now + 500))
        .await
        .unwrap()
        .is_none());
}

/// 500 tasks race for overlapping sets of 1–4 seats among 120. Every grant is
/// disjoint from every other, and every rejection names only seats some grant holds.
pub async fn concurrent_overlapping_holds<E: HoldEngine>(engine: Arc<E>) {
    let ev = EventId::new();
    let now = 1_000;
    load(&*engine, snapshot(&ev, 120, &[]), now).await;
    let tasks: Vec<_> = (0..500u32)
        .map(|i| {
            let engine = engine.clone();
            let ev = ev.clone();
            tokio::spawn(async move {
                let start = (i * 7919) % 117;
                let n = 1 + i % 4;
                let seats: Vec<u32> = (0..n).map(|k| (start + k * 3) % 120).collect();
                let r = req(&ev, HoldItems::Seats(seats.clone()), now + 60_000, now);
                (seats, engine.hold(r).await.unwrap())
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut held = BTreeSet::new();
    for (seats, r) in &results {
        if r.is_ok() {
            for s in seats {
                assert!(held.insert(*s), "seat {s} granted twice");
            }
        }
    }
    for (seats, r) in &results {
        if let Err(HoldRejection::SeatsUnavailable(taken)) = r {
            assert!(!taken.is_empty());
            for s in taken {
                assert!(
                    seats.contains(s) && held.contains(s),
                    "rejection named free seat {s}"
                );
            }
        } else {
            assert!(r.is_ok(), "unexpected {r:?}");
        }
    }
    let map = engine.seat_map(&ev, Millis(now)).await.unwrap();
    let shown: BTreeSet<u32> = (0..120)
        .filter(|&i| map.status[i as usize] == b'H')
        .collect();
    assert_eq!(shown, held);
}

/// 500 tasks race for 1–4 units of a 300-unit GA tier: held never passes capacity,
/// and every `sold_out` asked for more than what was left at the end.
pub async fn concurrent_ga_holds<E: HoldEngine>(engine: Arc<E>) {
    let ev = EventId::new();
    let now = 1_000;
    load(&*engine, snapshot(&ev, 0, &[300]), now).await;
    let tasks: Vec<_> = (0..500u32)
        .map(|i| {
            let engine = engine.clone();
            let ev = ev.clone();
            tokio::spawn(async move {
                let q = 1 + i % 4;
                let r = req(
                    &ev,
                    HoldItems::Ga {
                        tier: 0,
                        quantity: q,
                    },
                    now + 60_000,
                    now,
                );
                (q, engine.hold(r).await.unwrap())
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let granted: u32 = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(q, _)| q)
        .sum();
    assert!(granted <= 300);
    let map = engine.seat_map(&ev, Millis(now)).await.unwrap();
    assert_eq!(map.ga[0].held, granted);
    for (q, r) in &results {
        if let Err(e) = r {
            assert!(matches!(e, HoldRejection::SoldOut { .. }), "{e:?}");
            assert!(map.ga[0].remaining() < *q);
        }
    }
}

// ---- the reference model ----

#[derive(Debug, Clone)]
enum Op {
    Hold(Vec<u32>, i64),
    HoldGa(u16, u32, i64),
    Release(usize),
    Confirm(usize),
    Extend(usize, i64),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec(0u32..13, 0..5), 1i64..60).prop_map(|(s, t)| Op::Hold(s, t)),
        2 => (0u16..3, 0u32..5, 1i64..60).prop_map(|(t, q, ttl)| Op::HoldGa(t, q, ttl)),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Confirm),
        1 => (any::<usize>(), 1i64..60).prop_map(|(i, t)| Op::Extend(i, t)),
        2 => (0i64..40).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Live,
    Gone,
    Sold,
}

#[derive(Debug, Clone)]
struct MHold {
    id: HoldId,
    items: HoldItems,
    expires_at: i64,
    state: State,
}

/// Seat count 12 (seat 12 is out of range on purpose), GA capacities [5, 3].
struct Model {
    holds: Vec<MHold>,
    now: i64,
}

const SEATS: usize = 12;
const CAPS: [u32; 2] = [5, 3];

impl Model {
    fn live(&self) -> impl Iterator<Item = &MHold> {
        self.holds
            .iter()
            .filter(|h| h.state == State::Live && h.expires_at > self.now)
    }
    fn seat_state(&self, s: u32) -> u8 {
        let has = |h: &&MHold| matches!(&h.items, HoldItems::Seats(v) if v.contains(&s));
        if self
            .holds
            .iter()
            .filter(|h| h.state == State::Sold)
            .any(|h| has(&h))
        {
            b'S'
        } else if self.live().any(|h| has(&h)) {
            b'H'
        } else {
            b'A'
        }
    }
    fn ga(&self, tier: u16, state: State) -> u32 {
        self.holds
            .iter()
            .filter(|h| match state {
                State::Live => h.state == State::Live && h.expires_at > self.now,
                _ => h.state == state,
            })
            .filter_map(|h| match h.items {
                HoldItems::Ga { tier: t, quantity } if t == tier => Some(quantity),
                _ => None,
            })
            .sum()
    }
    fn remaining(&self, tier: u16) -> u32 {
        CAPS[tier as usize] - self.ga(tier, State::Live) - self.ga(tier, State::Sold)
    }
    fn hold(&mut self, items: HoldItems) -> Result<(), HoldRejection> {
        match &items {
            HoldItems::Seats(s) => {
                let uniq: BTreeSet<_> = s.iter().collect();
                if s.is_empty() || uniq.len() != s.len() || s.iter().any(|&x| x as usize >= SEATS) {
                    return Err(HoldRejection::InvalidItems(""));
                }
                let taken: Vec<u32> = s
                    .iter()
                    .copied()
                    .filter(|&x| self.seat_state(x) != b'A')
                    .collect();
                if !taken.is_empty() {
                    return Err(HoldRejection::SeatsUnavailable(taken));
                }
            }
            HoldItems::Ga { tier, quantity } => {
                if *tier as usize >= CAPS.len() || *quantity == 0 {
                    return Err(HoldRejection::InvalidItems(""));
                }
                let remaining = self.remaining(*tier);
                if *quantity > remaining {
                    return Err(HoldRejection::SoldOut { remaining });
                }
            }
        }
        Ok(())
    }
}

fn same_kind(a: &Result<(), HoldRejection>, b: &Result<(), HoldRejection>) -> bool {
    match (a, b) {
        (Err(HoldRejection::InvalidItems(_)), Err(HoldRejection::InvalidItems(_))) => true,
        _ => a == b,
    }
}

/// Runs random sequences of hold / release / confirm / extend / clock advance
/// against the engine and the model; after every step the answers and the seat map
/// must agree, and the same engine loaded with the model's state under a new event
/// must agree too. Each case uses fresh events. Call it from a multi-threaded tokio
/// runtime (the engine's connections live there).
pub fn matches_reference_model<E: HoldEngine>(engine: Arc<E>) {
    let rt = tokio::runtime::Handle::current();
    let config = ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    };
    tokio::task::block_in_place(|| {
        proptest!(config, |(ops in prop::collection::vec(op(), 1..60))| {
            rt.block_on(async {
                let engine = engine.clone();
                let ev = EventId::new();
                let mut m = Model { holds: vec![], now: 1_000_000 };
                load(&*engine, snapshot(&ev, SEATS, &CAPS), m.now).await;
                let mut last_version = 0;
                let mut last_map = engine.seat_map(&ev, Millis(m.now)).await.unwrap();
                for op in ops {
                    let now = Millis(m.now);
                    match op {
                        Op::Hold(seats, ttl) => {
                            let items = HoldItems::Seats(seats);
                            let expected = m.hold(items.clone());
                            let r = HoldRequest { event: ev.clone(), hold: HoldId::new(), items: items.clone(), expires_at: Millis(m.now + ttl), now };
                            let got = engine.hold(r.clone()).await.unwrap();
                            prop_assert!(same_kind(&got, &expected), "hold {:?}: engine {:?}, model {:?}", items, got, expected);
                            if got.is_ok() {
                                m.holds.push(MHold { id: r.hold, items, expires_at: m.now + ttl, state: State::Live });
                            }
                        }
                        Op::HoldGa(tier, quantity, ttl) => {
                            let items = HoldItems::Ga { tier, quantity };
                            let expected = m.hold(items.clone());
                            let r = HoldRequest { event: ev.clone(), hold: HoldId::new(), items: items.clone(), expires_at: Millis(m.now + ttl), now };
                            let got = engine.hold(r.clone()).await.unwrap();
                            prop_assert!(same_kind(&got, &expected), "ga {:?}: engine {:?}, model {:?}", items, got, expected);
                            if got.is_ok() {
                                m.holds.push(MHold { id: r.hold, items, expires_at: m.now + ttl, state: State::Live });
                            }
                        }
                        Op::Release(i) | Op::Confirm(i) if m.holds.is_empty() => { let _ = i; }
                        Op::Release(i) => {
                            let k = i % m.holds.len();
                            let live = m.holds[k].state == State::Live && m.holds[k].expires_at > m.now;
                            let got = engine.release(&ev, &m.holds[k].id, now).await.unwrap();
                            prop_assert_eq!(got.is_some(), live);
                            if live { m.holds[k].state = State::Gone; }
                        }
                        Op::Confirm(i) => {
                            let k = i % m.holds.len();
                            let live = m.holds[k].state == State::Live && m.holds[k].expires_at > m.now;
                            let got = engine.confirm(&ev, &m.holds[k].id, now).await.unwrap();
                            prop_assert_eq!(got.is_some(), live);
                            if live { m.holds[k].state = State::Sold; }
                        }
                        Op::Extend(i, ttl) => {
                            if m.holds.is_empty() { continue; }
                            let k = i % m.holds.len();
                            let live = m.holds[k].state == State::Live && m.holds[k].expires_at > m.now;
                            let got = engine.extend(&ev, &m.holds[k].id, Millis(m.now + ttl), now).await.unwrap();
                            prop_assert_eq!(got, live);
                            if live { m.holds[k].expires_at = m.now + ttl; }
                        }
                        Op::Advance(ms) => m.now += ms,
                    }
                    // The version alone first: it must expire what is due exactly as
                    // the map would, so the map then reports the same version.
                    let version = engine.seat_map_version(&ev, Millis(m.now)).await.unwrap();
                    let map = engine.seat_map(&ev, Millis(m.now)).await.unwrap();
                    prop_assert_eq!(version, map.version);
                    let expected: Vec<u8> = (0..SEATS as u32).map(|s| m.seat_state(s)).collect();
                    prop_assert_eq!(&map.status, &expected);
                    for t in 0..CAPS.len() as u16 {
                        prop_assert_eq!(map.ga[t as usize].remaining(), m.remaining(t));
                        prop_assert_eq!(map.ga[t as usize].sold, m.ga(t, State::Sold));
                    }
                    prop_assert!(map.version >= last_version);
                    if map.status != last_map.status || map.ga != last_map.ga {
                        prop_assert!(map.version > last_version, "state changed, version did not");
                    }
                    last_version = map.version;
                    last_map = map;
                }

                // Rebuild: the model's state loaded as a new event serves the same map.
                let fresh = engine.clone();
                let ev = EventId::new();
                let sold_seats = (0..SEATS as u32).filter(|&s| m.seat_state(s) == b'S').collect();
                let snap = InventorySnapshot {
                    event: ev.clone(),
                    seat_count: SEATS,
                    ga_capacities: CAPS.to_vec(),
                    sold_seats,
                    ga_sold: (0..CAPS.len() as u16).map(|t| m.ga(t, State::Sold)).collect(),
                    holds: m.live().map(|h| SnapshotHold { id: h.id.clone(), items: h.items.clone(), expires_at: Millis(h.expires_at) }).collect(),
                    base_version: last_version + 1,
                    load_token: None,
                };
                load(&*fresh, snap, m.now).await;
                let rebuilt = fresh.seat_map(&ev, Millis(m.now)).await.unwrap();
                prop_assert_eq!(rebuilt.status, last_map.status);
                prop_assert_eq!(rebuilt.ga, last_map.ga);
                prop_assert!(rebuilt.version > last_version);
                // Live holds came back as holds: each can be released on the fresh engine.
                for h in m.live() {
                    prop_assert!(fresh.release(&ev, &h.id, Millis(m.now)).await.unwrap().is_some());
                }
                Ok(())
            })?;
        })
    });
}
