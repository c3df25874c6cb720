//! The in-process engine against the hold-engine conformance suite.

use boxoffice_holds_memory::MemoryHoldEngine;
use std::sync::Arc;

fn engine() -> Arc<MemoryHoldEngine> {
    Arc::new(MemoryHoldEngine::new())
}

#[tokio::test]
async fn basic_semantics() {
    boxoffice_conformance::engine::basic_semantics(engine()).await;
}

#[tokio::test]
async fn seat_map_version() {
    boxoffice_conformance::engine::seat_map_version(engine()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overlapping_holds_never_double_book() {
    boxoffice_conformance::engine::concurrent_overlapping_holds(engine()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ga_holds_respect_capacity() {
    boxoffice_conformance::engine::concurrent_ga_holds(engine()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_the_reference_model() {
    boxoffice_conformance::engine::matches_reference_model(engine());
}

#[tokio::test]
async fn a_follow_up_during_a_load_is_not_lost() {
    boxoffice_conformance::engine::a_follow_up_during_a_load_is_not_lost(engine()).await;
}

#[tokio::test]
async fn an_evict_during_a_load_voids_the_snapshot() {
    boxoffice_conformance::engine::an_evict_during_a_load_voids_the_snapshot(engine()).await;
}

mod room {
    use boxoffice_holds_memory::MemoryWaitingRoom;
    use boxoffice_ports::{ManualClock, WaitingRoom};
    use std::sync::Arc;

    fn room() -> (Arc<dyn WaitingRoom>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        (Arc::new(MemoryWaitingRoom::new(clock.clone())), clock)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn joins_are_numbered_once_and_densely() {
        boxoffice_conformance::room::joins_are_numbered_once_and_densely(room().0).await;
    }

    #[tokio::test]
    async fn the_pre_queue_is_drawn_once() {
        boxoffice_conformance::room::the_pre_queue_is_drawn_once(room().0).await;
    }

    #[tokio::test]
    async fn admits_at_the_rate_within_the_capacity() {
        let (room, clock) = room();
        boxoffice_conformance::room::admits_at_the_rate_within_the_capacity(room, clock).await;
    }
}
