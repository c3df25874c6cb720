//! The Redis engine against the hold-engine conformance suite, on a single Redis
//! (BOXOFFICE_TEST_REDIS_URL, default local) and on a Redis Cluster
//! (BOXOFFICE_TEST_REDIS_CLUSTER, default the 3 masters `scripts/services cluster`
//! starts). Each test uses its own key prefix.

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

async fn engine(urls: &str) -> Arc<RedisHoldEngine> {
    let prefix = format!("test:{}:", ulid::Ulid::new());
    Arc::new(
        RedisHoldEngine::connect(urls, &prefix)
            .await
            .expect("Redis answers (scripts/services starts it)"),
    )
}

macro_rules! suite {
    ($modname:ident, $urls:expr) => {
        mod $modname {
            use super::*;

            #[tokio::test]
            async fn basic_semantics() {
                boxoffice_conformance::engine::basic_semantics(engine(&$urls).await).await;
            }

            #[tokio::test]
            async fn seat_map_version() {
                boxoffice_conformance::engine::seat_map_version(engine(&$urls).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_overlapping_holds_never_double_book() {
                boxoffice_conformance::engine::concurrent_overlapping_holds(engine(&$urls).await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_ga_holds_respect_capacity() {
                boxoffice_conformance::engine::concurrent_ga_holds(engine(&$urls).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn matches_the_reference_model() {
                boxoffice_conformance::engine::matches_reference_model(engine(&$urls).await);
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
