//! The Redis engine against the hold-engine conformance suite, on a single Redis
//! (BOXOFFICE_TEST_REDIS_URL, default local) and on a Redis Cluster
//! (BOXOFFICE_TEST_REDIS_CLUSTER, default the 3 masters `scripts/services cluster`
//! starts). Each test uses its own key prefix.

use boxoffice_conformance::engine::{OwnClock, SuiteClock};
use boxoffice_holds_redis::RedisHoldEngine;
use std::sync::Arc;

fn single_url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn cluster_urls() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_CLUSTER").unwrap_or_else(|_| {
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
    })
}

async fn connect(urls: &str) -> RedisHoldEngine {
    let prefix = format!("test:{}:", ulid::Ulid::new());
    RedisHoldEngine::connect(urls, &prefix)
        .await
        .expect("Redis answers (scripts/services starts it)")
}

async fn engine(urls: &str) -> Arc<RedisHoldEngine> {
    Arc::new(connect(urls).await)
}

/// The engine on the suite's clock: Redis decides expiry by its own clock, shifted
/// to the instants the suite passes (see `OwnClock`).
async fn suite_engine(urls: &str) -> Arc<OwnClock<RedisHoldEngine>> {
    let clock = Arc::new(SuiteClock::default());
    let engine = connect(urls).await.with_shifted_clock(clock.clone());
    Arc::new(OwnClock::new(engine, clock))
}

macro_rules! suite {
    ($modname:ident, $urls:expr) => {
        mod $modname {
            use super::*;

            #[tokio::test]
            async fn basic_semantics() {
                boxoffice_conformance::engine::basic_semantics(suite_engine(&$urls).await).await;
            }

            #[tokio::test]
            async fn seat_map_version() {
                boxoffice_conformance::engine::seat_map_version(suite_engine(&$urls).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_overlapping_holds_never_double_book() {
                boxoffice_conformance::engine::concurrent_overlapping_holds(
                    suite_engine(&$urls).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_ga_holds_respect_capacity() {
                boxoffice_conformance::engine::concurrent_ga_holds(suite_engine(&$urls).await)
                    .await;
            }

            #[tokio::test]
            async fn an_evict_during_a_load_voids_the_snapshot() {
                boxoffice_conformance::engine::an_evict_during_a_load_voids_the_snapshot(
                    suite_engine(&$urls).await,
                )
                .await;
            }

            #[tokio::test]
            async fn a_follow_up_during_a_load_is_not_lost() {
                boxoffice_conformance::engine::a_follow_up_during_a_load_is_not_lost(
                    suite_engine(&$urls).await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn matches_the_reference_model() {
                boxoffice_conformance::engine::matches_reference_model(suite_engine(&$urls).await);
            }
        }
    };
}

suite!(single, single_url());
suite!(cluster, cluster_urls());

/// A snapshot read before Redis lost the event is refused: loading it would bring
/// back a past that misses holds granted since.
#[tokio::test]
async fn a_snapshot_older_than_a_loss_is_refused() {
    use boxoffice_domain::{EventId, Millis};
    use boxoffice_ports::{EngineError, HoldEngine, InventorySnapshot};
    let engine = engine(&single_url()).await;
    let event = EventId::new();
    let snapshot = |token| InventorySnapshot {
        event: event.clone(),
        seat_count: 4,
        ga_capacities: vec![],
        sold_seats: vec![],
        ga_sold: vec![],
        holds: vec![],
        base_version: 0,
        load_token: token,
    };
    let token = engine.prepare_load(&event).await.unwrap();
    engine.evict(&event).await.unwrap(); // the loss, between reading and loading
    assert!(matches!(
        engine.load_event(snapshot(token), Millis(1)).await,
        Err(EngineError::StaleSnapshot(_))
    ));
    let token = engine.prepare_load(&event).await.unwrap();
    engine.load_event(snapshot(token), Millis(1)).await.unwrap();
    assert_eq!(
        engine.seat_map(&event, Millis(1)).await.unwrap().status,
        b"AAAA"
    );
}

/// Milliseconds since the epoch by this machine's clock (Redis runs on it too).
fn wall_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Two nodes share one Redis, and node B's clock runs ten minutes ahead of node A's.
/// A hold that A grants for five minutes stays held whatever B asks (a seat map, a
/// hold on the same seat, the sweeper) and whatever time B passes in: expiry is
/// decided by Redis's clock, one for every node. A's own view agrees, and the hold
/// can still be released and sold as usual.
#[tokio::test]
async fn a_node_whose_clock_runs_ahead_expires_no_one_elses_holds() {
    use boxoffice_domain::{EventId, HoldId, HoldItems, HoldRejection, Millis};
    use boxoffice_ports::{HoldEngine, HoldRequest, InventorySnapshot};
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let a = RedisHoldEngine::connect(&single_url(), &prefix)
        .await
        .unwrap();
    let b = RedisHoldEngine::connect(&single_url(), &prefix)
        .await
        .unwrap();
    let ahead = 10 * 60_000;
    let event = EventId::new();
    let a_now = wall_ms();
    let token = a.prepare_load(&event).await.unwrap();
    a.load_event(
        InventorySnapshot {
            event: event.clone(),
            seat_count: 4,
            ga_capacities: vec![3],
            sold_seats: vec![],
            ga_sold: vec![0],
            holds: vec![],
            base_version: 0,
            load_token: token,
        },
        Millis(a_now),
    )
    .await
    .unwrap();
    let seats = HoldRequest {
        event: event.clone(),
        hold: HoldId::new(),
        items: HoldItems::Seats(vec![0, 1]),
        expires_at: Millis(a_now + 5 * 60_000),
        now: Millis(a_now),
    };
    a.hold(seats.clone()).await.unwrap().unwrap();
    let ga = HoldRequest {
        hold: HoldId::new(),
        items: HoldItems::Ga {
            tier: 0,
            quantity: 3,
        },
        ..seats.clone()
    };
    a.hold(ga.clone()).await.unwrap().unwrap();

    // B, ten minutes ahead, looks, sweeps and tries for the seats and the places.
    let b_now = Millis(wall_ms() + ahead);
    let map = b.seat_map(&event, b_now).await.unwrap();
    assert_eq!(map.status, b"HHAA", "B's clock expired A's hold");
    assert_eq!(map.ga[0].remaining(), 0);
    assert!(b.expire_due(b_now).await.unwrap().is_empty());
    let grab = HoldRequest {
        event: event.clone(),
        hold: HoldId::new(),
        items: HoldItems::Seats(vec![1, 2]),
        expires_at: Millis(b_now.0 + 5 * 60_000),
        now: b_now,
    };
    assert_eq!(
        b.hold(grab).await.unwrap(),
        Err(HoldRejection::SeatsUnavailable(vec![1]))
    );
    let grab_ga = HoldRequest {
        event: event.clone(),
        hold: HoldId::new(),
        items: HoldItems::Ga {
            tier: 0,
            quantity: 1,
        },
        expires_at: Millis(b_now.0 + 5 * 60_000),
        now: b_now,
    };
    assert_eq!(
        b.hold(grab_ga).await.unwrap(),
        Err(HoldRejection::SoldOut { remaining: 0 })
    );

    // The holds are A's still: the seats sell, the places go back.
    let a_now = Millis(wall_ms());
    assert_eq!(a.seat_map(&event, a_now).await.unwrap().status, b"HHAA");
    assert!(a
        .confirm(&event, &seats.hold, a_now)
        .await
        .unwrap()
        .is_some());
    assert!(b
        .release(&event, &ga.hold, Millis(wall_ms() + ahead))
        .await
        .unwrap()
        .is_some());
    let map = b.seat_map(&event, Millis(wall_ms() + ahead)).await.unwrap();
    assert_eq!(
        (map.status.as_slice(), map.ga[0].remaining()),
        (&b"SSAA"[..], 3)
    );
}

/// Nodes that load the same event at once (the first requests of a sale reach every
/// node together) do not refuse each other's snapshots: only a loss of the engine's
/// state between a loader's prepare and its load does. (With one token per event,
/// each prepare voided the others' and three nodes could exhaust their retries:
/// 503 `the hold engine kept losing event`.)
#[tokio::test]
async fn loaders_at_once_do_not_refuse_each_other() {
    use boxoffice_domain::{EventId, Millis};
    use boxoffice_ports::{EngineError, HoldEngine, InventorySnapshot};
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let nodes = [
        RedisHoldEngine::connect(&single_url(), &prefix)
            .await
            .unwrap(),
        RedisHoldEngine::connect(&single_url(), &prefix)
            .await
            .unwrap(),
        RedisHoldEngine::connect(&single_url(), &prefix)
            .await
            .unwrap(),
    ];
    let event = EventId::new();
    let snapshot = |token| InventorySnapshot {
        event: event.clone(),
        seat_count: 4,
        ga_capacities: vec![],
        sold_seats: vec![],
        ga_sold: vec![],
        holds: vec![],
        base_version: 0,
        load_token: token,
    };
    let mut tokens = Vec::new();
    for n in &nodes {
        tokens.push(n.prepare_load(&event).await.unwrap());
    }
    // Loaded in another order than prepared: every load succeeds (the first loads,
    // the others find it loaded).
    for i in [1, 0, 2] {
        nodes[i]
            .load_event(snapshot(tokens[i].clone()), Millis(1))
            .await
            .unwrap_or_else(|e| panic!("node {i}'s load was refused: {e}"));
    }
    assert_eq!(
        nodes[2].seat_map(&event, Millis(1)).await.unwrap().status,
        b"AAAA"
    );

    // A loss between prepare and load still refuses every snapshot read before it.
    let late = nodes[0].prepare_load(&event).await.unwrap();
    let later = nodes[1].prepare_load(&event).await.unwrap();
    nodes[2].evict(&event).await.unwrap();
    for (n, t) in [(&nodes[0], late), (&nodes[1], later)] {
        assert!(matches!(
            n.load_event(snapshot(t), Millis(1)).await,
            Err(EngineError::StaleSnapshot(_))
        ));
    }
}

/// The waiting room on Redis (single and cluster), on the suite's manual clock.
mod room {
    use super::*;
    use boxoffice_ports::{ManualClock, WaitingRoom};

    async fn room(urls: &str) -> (Arc<dyn WaitingRoom>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let engine = connect(urls).await.with_test_clock(clock.clone());
        (Arc::new(engine.waiting_room()), clock)
    }

    macro_rules! room_suite {
        ($modname:ident, $urls:expr) => {
            mod $modname {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn joins_are_numbered_once_and_densely() {
                    boxoffice_conformance::room::joins_are_numbered_once_and_densely(
                        room(&$urls).await.0,
                    )
                    .await;
                }

                #[tokio::test]
                async fn the_pre_queue_is_drawn_once() {
                    boxoffice_conformance::room::the_pre_queue_is_drawn_once(room(&$urls).await.0)
                        .await;
                }

                #[tokio::test]
                async fn admits_at_the_rate_within_the_capacity() {
                    let (room, clock) = room(&$urls).await;
                    boxoffice_conformance::room::admits_at_the_rate_within_the_capacity(
                        room, clock,
                    )
                    .await;
                }
            }
        };
    }

    room_suite!(single, single_url());
    room_suite!(cluster, cluster_urls());
}

/// A room's keys expire a week after its last use, so a finished sale's queue does
/// not stay in Redis for ever.
#[tokio::test]
async fn a_rooms_keys_expire_a_week_after_its_last_use() {
    use boxoffice_domain::{EventId, UserId};
    use boxoffice_ports::{RoomParams, WaitingRoom};
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let engine = RedisHoldEngine::connect(&single_url(), &prefix)
        .await
        .unwrap();
    let room = engine.waiting_room();
    let event = EventId::new();
    let params = RoomParams {
        admission_interval_ms: 1000,
        max_active: None,
        session_ms: 60_000,
        started: true,
        seed: 1,
    };
    room.join(&event, &UserId::new(), &params).await.unwrap();
    let mut c = redis::Client::open(single_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let week = 7 * 24 * 3600 * 1000;
    for k in ["room", "room:joins", "room:sessions"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}{{{event}}}:{k}"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > week - 60_000 && ttl <= week, "{k}: {ttl}");
    }
}
