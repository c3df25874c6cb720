//! The SQLite store against the store conformance suite, each test on a fresh file.

use boxoffice_store_sqlite::SqliteStore;
use std::sync::Arc;

async fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).await.unwrap();
    s.migrate().await.unwrap();
    assert!(s.pending_migrations().await.unwrap().is_empty());
    (Arc::new(s), dir)
}

#[tokio::test]
async fn identity() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::identity(s).await;
}

#[tokio::test]
async fn catalogue() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::catalogue(s).await;
}

#[tokio::test]
async fn holds_and_releases() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::holds_and_releases(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_sale_is_impossible() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::double_sale_is_impossible(s).await;
}

#[tokio::test]
async fn a_fresh_database_reports_its_pending_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(
        s.pending_migrations().await.unwrap().len(),
        boxoffice_store_sqlite::MIGRATOR.iter().count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_is_idempotent() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::checkout_is_idempotent(s).await;
}

#[tokio::test]
async fn in_process_queue_replays_what_is_unfinished() {
    let (s, d) = store().await;
    let path = d.path().to_owned();
    boxoffice_conformance::store::in_process_queue_replays_what_is_unfinished(s, move || {
        let path = path.clone();
        Box::pin(async move { Arc::new(SqliteStore::open(&path).await.unwrap()) })
    })
    .await;
}

#[tokio::test]
async fn a_refused_write_fails_alone() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::a_refused_write_fails_alone(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_is_one_snapshot() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::inventory_is_one_snapshot(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_batches_sell_each_seat_once() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::racing_batches_sell_each_seat_once(s).await;
}

#[tokio::test]
async fn a_batch_keeps_the_order_of_writes_on_one_hold() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::a_batch_keeps_the_order_of_writes_on_one_hold(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_racing_releases_in_batches() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::checkouts_racing_releases_in_batches(s).await;
}

/// A checkout answer stored before 0011 (HTTP status 202 and its JSON body) still
/// replays after the migration, as the outcome it was: the same order.
#[tokio::test]
async fn an_answer_stored_as_a_status_and_body_replays_after_migrating() {
    use boxoffice_domain::{CheckoutAnswer, OrderId, UserId};
    use boxoffice_ports::SalesStore;
    use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection};

    let dir = tempfile::tempdir().unwrap();
    let before = tempfile::tempdir().unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for m in std::fs::read_dir(&here).unwrap() {
        let m = m.unwrap();
        if m.file_name().to_string_lossy().as_ref() < "0011" {
            std::fs::copy(m.path(), before.path().join(m.file_name())).unwrap();
        }
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.path().join("boxoffice.db"))
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let (user, order) = (UserId::new(), OrderId::new());
    sqlx::query("INSERT INTO idempotency_keys VALUES (?, 'checkout', 'k1', 'fp', 202, ?, 1)")
        .bind(user.as_str())
        .bind(format!(
            r#"{{"order_id":"{order}","status":"pending_payment"}}"#
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let s = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(s.pending_migrations().await.unwrap().first(), Some(&11));
    s.migrate().await.unwrap();
    let kept = s
        .idempotent(&user, "checkout", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.fingerprint, "fp");
    assert_eq!(kept.answer, CheckoutAnswer::Accepted { order_id: order });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_race_and_free_what_they_sold() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::refunds_race_and_free_what_they_sold(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_event_sells_nothing_more() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::a_cancelled_event_sells_nothing_more(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waitlist_claims_are_exclusive() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::waitlist_claims_are_exclusive(s).await;
}

#[tokio::test]
async fn access() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::access(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_admits_each_ticket_once() {
    let (s, _d) = store().await;
    boxoffice_conformance::store::checkin_admits_each_ticket_once(s).await;
}
