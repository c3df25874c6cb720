//! Live seat maps pushed to browsers (`GET /v1/events/{id}/stream`, Server-Sent
//! Events): one producer per event on this node, shared by every stream of it.
//!
//! The producer asks the hold engine for the event's seat-map version every
//! [`TICK`] while anyone listens; when it moved, it reads the map once, diffs it
//! against the last one (layout index → new status, GA remaining) and broadcasts the
//! change, already serialized, to every stream. The engine is what every node
//! already shares (Redis in the distributed mode), so a hold taken on any node shows
//! here on the next tick without a message bus; the tick is also the coalescing
//! window (at most 1 / `TICK` pushes a second, however busy the sale).
//!
//! It owns the producers (made on the first stream of an event, gone a few seconds
//! after the last one left) and the short history a reconnecting client resumes from. It must never
//! read the engine once per client, block the producer on a slow client (a stream
//! that falls behind the bounded channel gets a fresh snapshot instead), or hold a
//! lock across an `.await`.

use axum::response::sse::Event as SseEvent;
use boxoffice_app::{App, CachedEvent, LiveSeatMap};
use boxoffice_domain::EventId;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often a producer looks for a new version: the most pushes a second is 1/TICK.
pub const TICK: Duration = Duration::from_millis(250);
/// Pushes a stream may fall behind before it is cut over to a fresh snapshot.
const CHANNEL: usize = 32;
/// Pushes kept for `Last-Event-ID` resumption (older: a fresh snapshot).
const HISTORY: usize = 128;
/// Ticks a producer outlives its last stream (5 s): a page that lost its connection
/// and comes back resumes from the history instead of a snapshot.
const LINGER_TICKS: u32 = 20;

/// One message on a stream: a `snapshot` (the body of `GET /seats`) or a `change`.
#[derive(Debug)]
pub struct Push {
    /// The version this push leaves the client at (the SSE `id:`).
    pub version: u64,
    /// The version the client must be at for this push to apply (a change), or
    /// `None` for a snapshot, which applies to anything.
    pub from: Option<u64>,
    pub data: String,
}

impl Push {
    pub fn sse(&self) -> SseEvent {
        SseEvent::default()
            .event(if self.from.is_some() {
                "change"
            } else {
                "snapshot"
            })
            .id(self.version.to_string())
            .data(&self.data)
    }
}

#[derive(Serialize)]
struct GaView<'a> {
    tier_id: &'a str,
    remaining: u32,
}

#[derive(Serialize)]
struct ChangeView<'a> {
    version: u64,
    changes: Vec<(u32, &'static str)>,
    ga: Vec<GaView<'a>>,
}

fn status_str(b: u8) -> &'static str {
    match b {
        b'H' => "H",
        b'S' => "S",
        _ => "A",
    }
}

/// The push that takes a client from `old` to `new`: a `change` listing the seats
/// whose status differs and the GA tiers whose remaining count differs, or a
/// `snapshot` when the maps do not line up (never expected: the layout is fixed)
/// or when the change would be longer than the map itself.
pub fn diff(old: &LiveSeatMap, new: &LiveSeatMap) -> Push {
    let snapshot = || Push {
        version: new.version,
        from: None,
        data: String::from_utf8(crate::views::seats(new)).unwrap_or_default(),
    };
    if old.status.len() != new.status.len() || old.ga.len() != new.ga.len() {
        return snapshot();
    }
    let changes: Vec<(u32, &'static str)> = old
        .status
        .iter()
        .zip(&new.status)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (_, &b))| (i as u32, status_str(b)))
        .collect();
    // `[12345,"H"],` is about 12 bytes a seat; the snapshot one.
    if changes.len() * 12 > new.status.len() + 64 {
        return snapshot();
    }
    let ga = old
        .ga
        .iter()
        .zip(&new.ga)
        .filter(|((_, a), (_, b))| a.remaining() != b.remaining())
        .map(|(_, (t, b))| GaView {
            tier_id: t.as_str(),
            remaining: b.remaining(),
        })
        .collect();
    let view = ChangeView {
        version: new.version,
        changes,
        ga,
    };
    Push {
        version: new.version,
        from: Some(old.version),
        data: serde_json::to_string(&view).expect("a change serializes"),
    }
}

/// What one producer knows: the last map read, and the recent pushes.
#[derive(Debug)]
struct State {
    map: LiveSeatMap,
    /// The snapshot of `map`, made when a stream needs it.
    snapshot: Option<Arc<Push>>,
    history: VecDeque<Arc<Push>>,
}

impl State {
    fn snapshot(&mut self) -> Arc<Push> {
        let map = &self.map;
        self.snapshot
            .get_or_insert_with(|| {
                Arc::new(Push {
                    version: map.version,
                    from: None,
                    data: String::from_utf8(crate::views::seats(map)).unwrap_or_default(),
                })
            })
            .clone()
    }

    /// What a client at `last` (its `Last-Event-ID`) needs to be current: nothing,
    /// the pushes since, or (unknown or too old) a snapshot.
    fn catch_up(&mut self, last: Option<u64>) -> Vec<Arc<Push>> {
        let Some(last) = last else {
            return vec![self.snapshot()];
        };
        if last == self.map.version {
            return Vec::new();
        }
        match self.history.iter().position(|p| p.from == Some(last)) {
            Some(i) => self.history.iter().skip(i).cloned().collect(),
            None => vec![self.snapshot()],
        }
    }
}

#[derive(Debug)]
struct Producer {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Push>>,
}

/// A stream's subscription: what to send first, then the live pushes.
pub struct Subscription {
    pub first: Vec<Arc<Push>>,
    pub rx: broadcast::Receiver<Arc<Push>>,
    producer: Arc<Producer>,
}

impl Subscription {
    /// After falling behind: a fresh snapshot and a new place in the channel, taken
    /// together so that nothing between them is lost.
    pub fn resync(&mut self) -> Arc<Push> {
        let mut state = self.producer.state.lock();
        self.rx = self.producer.tx.subscribe();
        state.snapshot()
    }
}

/// The producers of this node, by event.
#[derive(Debug, Default)]
pub struct LiveHub {
    producers: Mutex<HashMap<EventId, Arc<Producer>>>,
}

impl LiveHub {
    /// Subscribes to `ev`'s pushes, starting its producer if none runs.
    pub async fn subscribe(
        self: &Arc<Self>,
        app: &Arc<App>,
        ev: &Arc<CachedEvent>,
        last: Option<u64>,
    ) -> Result<Subscription, boxoffice_app::AppError> {
        let id = ev.event().id.clone();
        // Joined under the producers' lock, which the producer also takes to stop
        // when no stream is left: a stream never joins a producer that has stopped.
        if let Some(p) = self.producers.lock().get(&id) {
            return Ok(join(p, last));
        }
        // Read outside the lock; a concurrent first stream may win the race, and
        // then this map is dropped.
        let map = app.live_seat_map(ev).await?;
        let mut producers = self.producers.lock();
        if let Some(p) = producers.get(&id) {
            return Ok(join(p, last));
        }
        let (tx, _) = broadcast::channel(CHANNEL);
        let p = Arc::new(Producer {
            state: Mutex::new(State {
                map,
                snapshot: None,
                history: VecDeque::with_capacity(HISTORY),
            }),
            tx,
        });
        producers.insert(id.clone(), p.clone());
        let sub = join(&p, last);
        tokio::spawn(run(self.clone(), app.clone(), id, p));
        Ok(sub)
    }
}

/// Subscribing and reading the state under one lock: no push is missed or sent
/// twice between the catch-up and the channel.
fn join(p: &Arc<Producer>, last: Option<u64>) -> Subscription {
    let mut state = p.state.lock();
    Subscription {
        first: state.catch_up(last),
        rx: p.tx.subscribe(),
        producer: p.clone(),
    }
}

/// One event's producer: polls the version, reads and diffs the map when it moved,
/// and stops once no stream listens.
async fn run(hub: Arc<LiveHub>, app: Arc<App>, id: EventId, p: Arc<Producer>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut idle = 0;
    loop {
        tick.tick().await;
        idle = if p.tx.receiver_count() == 0 {
            idle + 1
        } else {
            0
        };
        if idle > LINGER_TICKS {
            let mut producers = hub.producers.lock();
            // Streams join under this lock: checked again here, none slips in.
            if p.tx.receiver_count() == 0 {
                producers.remove(&id);
                return;
            }
        }
        if let Err(e) = step(&app, &id, &p).await {
            tracing::warn!(error = %e, event = %id, "live seat map not refreshed");
        }
    }
}

async fn step(app: &App, id: &EventId, p: &Producer) -> Result<(), boxoffice_app::AppError> {
    let ev = app.event(id.as_str()).await?;
    let version = app.live_seat_map_version(&ev).await?;
    if version == p.state.lock().map.version {
        return Ok(());
    }
    let map = app.live_seat_map(&ev).await?;
    let mut state = p.state.lock();
    // Versions only grow; an older read (never expected) is not news.
    if map.version <= state.map.version {
        return Ok(());
    }
    let push = Arc::new(diff(&state.map, &map));
    metrics::counter!("boxoffice_live_pushes_total").increment(1);
    metrics::counter!("boxoffice_live_push_bytes_total").increment(push.data.len() as u64);
    if state.history.len() == HISTORY {
        state.history.pop_front();
    }
    state.history.push_back(push.clone());
    state.map = map;
    state.snapshot = None;
    // Sent under the state lock, so a subscriber's catch-up and channel agree.
    let _ = p.tx.send(push);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_domain::inventory::GaCounts;
    use boxoffice_domain::TierId;

    fn map(version: u64, status: &str, held: u32) -> LiveSeatMap {
        LiveSeatMap {
            version,
            status: status.as_bytes().to_vec(),
            ga: vec![(
                TierId::try_from("01J0000000000000000000000T").unwrap_or_else(|_| TierId::new()),
                GaCounts {
                    capacity: 10,
                    held,
                    sold: 0,
                },
            )],
        }
    }

    #[test]
    fn a_change_lists_the_seats_and_tiers_that_moved() {
        let a = map(
            3,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            0,
        );
        let mut s = a.status.clone();
        s[1] = b'H';
        s[40] = b'S';
        let b = LiveSeatMap {
            version: 7,
            status: s,
            ga: a.ga.clone(),
        };
        let p = diff(&a, &b);
        assert_eq!((p.from, p.version), (Some(3), 7));
        let v: serde_json::Value = serde_json::from_str(&p.data).unwrap();
        assert_eq!(v["version"], 7);
        assert_eq!(v["changes"], serde_json::json!([[1, "H"], [40, "S"]]));
        assert_eq!(v["ga"], serde_json::json!([]));

        let c = map(8, std::str::from_utf8(&b.status).unwrap(), 4);
        let v: serde_json::Value = serde_json::from_str(&diff(&b, &c).data).unwrap();
        assert_eq!(v["changes"], serde_json::json!([]));
        assert_eq!(v["ga"][0]["remaining"], 6);
    }

    #[test]
    fn a_change_longer_than_the_map_is_a_snapshot() {
        let a = map(1, "AAAAAAAAAA", 0);
        let b = map(2, "HHHHHHHHHH", 0);
        let p = diff(&a, &b);
        assert_eq!(p.from, None);
        let v: serde_json::Value = serde_json::from_str(&p.data).unwrap();
        assert_eq!(v["status"], "HHHHHHHHHH");
    }

    #[test]
    fn catch_up_resumes_from_history_or_snapshots() {
        let mut st = State {
            map: map(1, "AAAA", 0),
            snapshot: None,
            history: VecDeque::new(),
        };
        for v in 2..=4 {
            let next = map(v, "AAAA", v as u32);
            st.history.push_back(Arc::new(diff(&st.map, &next)));
            st.map = next;
            st.snapshot = None;
        }
        assert!(st.catch_up(Some(4)).is_empty());
        let since2: Vec<_> = st.catch_up(Some(2)).iter().map(|p| p.version).collect();
        assert_eq!(since2, [3, 4]);
        for unknown in [None, Some(0), Some(99)] {
            let s = st.catch_up(unknown);
            assert_eq!((s.len(), s[0].from, s[0].version), (1, None, 4));
        }
    }

    /// A stream that fell behind the channel is cut over to the current snapshot,
    /// and from there follows the live pushes again; the producer never waited.
    #[tokio::test]
    async fn a_lagging_stream_resyncs_on_a_snapshot() {
        let (tx, _) = broadcast::channel(CHANNEL);
        let p = Arc::new(Producer {
            state: Mutex::new(State {
                map: map(1, "AAAA", 0),
                snapshot: None,
                history: VecDeque::new(),
            }),
            tx,
        });
        let mut sub = join(&p, None);
        assert_eq!(sub.first[0].from, None);
        let push = |v: u64| {
            let mut st = p.state.lock();
            let next = map(v, "AAAA", v as u32);
            let change = Arc::new(diff(&st.map, &next));
            st.map = next;
            st.snapshot = None;
            // Never blocks, however far behind the stream is.
            p.tx.send(change).unwrap();
        };
        for v in 2..(CHANNEL as u64 + 10) {
            push(v);
        }
        let last = CHANNEL as u64 + 9;
        assert!(matches!(
            sub.rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        let snap = sub.resync();
        assert_eq!((snap.from, snap.version), (None, last));
        push(last + 1);
        let next = sub.rx.recv().await.unwrap();
        assert_eq!((next.from, next.version), (Some(last), last + 1));
    }
}
