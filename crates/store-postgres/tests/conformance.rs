//! The PostgreSQL store against the store conformance suite, each test on a fresh
//! database of the server at BOXOFFICE_TEST_DATABASE_URL (default: local), and
//! what only PostgreSQL has: its migrations from older schemas, and the round trips
//! a group commit costs.

use boxoffice_store_postgres::{testing, PgStore};
use std::sync::Arc;

async fn store() -> Arc<PgStore> {
    let url = testing::fresh_database()
        .await
        .expect("PostgreSQL answers (scripts/services starts it)");
    let s = PgStore::connect(&url, 8).await.unwrap();
    s.migrate().await.unwrap();
    assert!(s.pending_migrations().await.unwrap().is_empty());
    Arc::new(s)
}

#[tokio::test]
async fn identity() {
    boxoffice_conformance::store::identity(store().await).await;
}

#[tokio::test]
async fn catalogue() {
    boxoffice_conformance::store::catalogue(store().await).await;
}

#[tokio::test]
async fn holds_and_releases() {
    boxoffice_conformance::store::holds_and_releases(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn double_sale_is_impossible() {
    boxoffice_conformance::store::double_sale_is_impossible(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_is_idempotent() {
    boxoffice_conformance::store::checkout_is_idempotent(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_leases() {
    boxoffice_conformance::store::queue_leases(store().await).await;
}

#[tokio::test]
async fn migrating_twice_at_once_is_safe() {
    let url = testing::fresh_database().await.unwrap();
    let (a, b) = (
        PgStore::connect(&url, 2).await.unwrap(),
        PgStore::connect(&url, 2).await.unwrap(),
    );
    assert!(!a.pending_migrations().await.unwrap().is_empty());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    assert!(a.pending_migrations().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_write_fails_alone() {
    boxoffice_conformance::store::a_refused_write_fails_alone(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_is_one_snapshot() {
    boxoffice_conformance::store::inventory_is_one_snapshot(store().await).await;
}

#[tokio::test]
async fn a_mixed_batch_commits_all_but_the_refused() {
    boxoffice_conformance::store::a_mixed_batch_commits_all_but_the_refused(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_batches_sell_each_seat_once() {
    boxoffice_conformance::store::racing_batches_sell_each_seat_once(store().await).await;
}

#[path = "conformance/native.rs"]
mod native;

#[tokio::test]
async fn a_batch_keeps_the_order_of_writes_on_one_hold() {
    boxoffice_conformance::store::a_batch_keeps_the_order_of_writes_on_one_hold(store().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_racing_releases_in_batches() {
    boxoffice_conformance::store::checkouts_racing_releases_in_batches(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_race_and_free_what_they_sold() {
    boxoffice_conformance::store::refunds_race_and_free_what_they_sold(store().await).await;
}

/// Order reads are planned for the tables as they are, not held to a generic plan
/// made while the tables were small: such a plan scans `tickets` and `order_items`
/// whole, and a 50,000-seat sale ran 55,000 full scans of each (its PostgreSQL
/// busy, its buyers waiting; docs/benchmarks.md). As in a sale: orders read while
/// few exist, then the tables grow (no ANALYZE in between: autovacuum's comes a
/// minute later at best), then read again. One connection: its statement cache is
/// the one read.
#[tokio::test]
async fn order_reads_are_not_held_to_a_generic_plan() {
    use boxoffice_ports::SalesStore;
    use sqlx::Connection;
    let url = testing::fresh_database().await.unwrap();
    let store = PgStore::connect(&url, 1).await.unwrap();
    store.migrate().await.unwrap();
    let mut orders = boxoffice_conformance::store::paid_orders(&store, 6).await;
    let grown = orders.pop().unwrap();
    let read_all = || async {
        for order in &orders {
            assert!(!store
                .order(order)
                .await
                .unwrap()
                .unwrap()
                .tickets
                .is_empty());
            store.settled_among(&orders).await.unwrap();
        }
    };
    read_all().await;
    read_all().await;
    // The sale goes on: 20,000 more items and tickets (on an order not read).
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for table in ["order_items", "tickets"] {
        let extra = if table == "tickets" {
            ", event_id, id, code, issued_at) SELECT o.order_id, g, o.tier_id, o.amount,              o.currency, o.event_id, o.id || '-' || g, o.code || '-' || g, o.issued_at"
        } else {
            ") SELECT o.order_id, g, o.tier_id, o.amount, o.currency"
        };
        sqlx::query(&format!(
            "INSERT INTO {table} (order_id, position, tier_id, amount, currency{extra}              FROM tickets o, generate_series(1, 20000) g WHERE o.order_id = $1"
        ))
        .bind(grown.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    for _ in 0..4 {
        read_all().await;
    }
    let generic = store.generic_plans().await.unwrap();
    let held: Vec<&String> = generic.iter().filter(|s| s.contains("= ANY(")).collect();
    assert!(
        held.is_empty(),
        "reads by a list of ids on a generic plan: {held:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_event_sells_nothing_more() {
    boxoffice_conformance::store::a_cancelled_event_sells_nothing_more(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waitlist_claims_are_exclusive() {
    boxoffice_conformance::store::waitlist_claims_are_exclusive(store().await).await;
}

#[tokio::test]
async fn access() {
    boxoffice_conformance::store::access(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_admits_each_ticket_once() {
    boxoffice_conformance::store::checkin_admits_each_ticket_once(store().await).await;
}
