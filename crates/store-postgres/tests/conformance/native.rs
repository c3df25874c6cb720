//! What only the PostgreSQL store has: a database made by the first schema (times
//! as BIGINT milliseconds) migrates forward without losing a value.

use boxoffice_domain::{
    CheckoutAnswer, Consumer, Email, EventId, HoldId, HoldSelection, HoldStatus, Job, MessageId,
    OrderId, SeatId, TierId, UserId, VenueId,
};
use boxoffice_ports::{CatalogueStore, IdentityStore, JobQueue, SalesStore};
use boxoffice_store_postgres::{testing, PgStore};
use time::OffsetDateTime;

fn at(ms: i64) -> OffsetDateTime {
    boxoffice_domain::Millis(ms).to_datetime()
}

/// A database at migration 0002 (the SQLite-shaped schema), filled the way the old
/// store wrote it, then migrated: every value reads back the same through the store.
#[tokio::test]
async fn an_old_database_migrates_forward_without_loss() {
    let url = testing::fresh_database().await.unwrap();
    let old = tempfile::tempdir().unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for name in ["0001_schema.sql", "0002_outbox_relay.sql"] {
        std::fs::copy(here.join(name), old.path().join(name)).unwrap();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    // Distinct milliseconds everywhere, so a swapped column would show.
    let t = 1_900_000_000_123_i64;
    let (usr, ven) = (UserId::new(), VenueId::new());
    let (seat1, seat2) = (SeatId::new(), SeatId::new());
    let (evt, tier, ga) = (EventId::new(), TierId::new(), TierId::new());
    let (hold, ord, msg) = (HoldId::new(), OrderId::new(), MessageId::new());
    let payload = serde_json::to_string(&Job::PaymentRequested {
        order_id: ord.clone(),
    })
    .unwrap();
    let script = format!(
        r#"
        INSERT INTO users VALUES ('{usr}', 'ann@example.com', 'hash', 'customer', {t});
        INSERT INTO venues VALUES ('{ven}', 'Hall', '["A","B"]', 2, {t1});
        INSERT INTO seats VALUES ('{seat1}', '{ven}', 0, 'A', '1', '1', 10, 20),
                                 ('{seat2}', '{ven}', 1, 'A', '1', '2', 11, 20);
        INSERT INTO events VALUES ('{evt}', '{ven}', 'Gig', {t2}, {t3}, NULL, 'on_sale', 60, 6, 'EUR', 2, {t4}, {t5});
        INSERT INTO price_tiers VALUES ('{tier}', '{evt}', 0, 'Main', 2500, 'EUR', '["A"]');
        INSERT INTO ga_tiers VALUES ('{ga}', '{evt}', 0, 'Floor', 1000, 'EUR', 50, 3);
        INSERT INTO event_seats VALUES ('{evt}', 0, '{seat1}', '{tier}'), ('{evt}', 1, '{seat2}', '{tier}');
        INSERT INTO holds VALUES ('{hold}', '{evt}', '{usr}', 'converted', NULL, 2, 5000, 'EUR', {t6}, {t7}, {t8}, {t9}, NULL);
        INSERT INTO hold_seats VALUES ('{hold}', 0, '{seat2}'), ('{hold}', 1, '{seat1}');
        INSERT INTO orders VALUES ('{ord}', '{usr}', '{evt}', '{hold}', 'a@b.c', 'pending_payment', NULL, 5000, 'EUR', 'tok_visa', {t10}, {t11});
        INSERT INTO order_items VALUES ('{ord}', 0, '{seat2}', '{tier}', 2500, 'EUR'), ('{ord}', 1, '{seat1}', '{tier}', 2500, 'EUR');
        INSERT INTO idempotency_keys VALUES ('{usr}', 'checkout', 'k1', 'fp', 202, '{{"order_id":"{ord}"}}', {t10});
        INSERT INTO outbox VALUES ('{msg}', 'payment.requested', '{payload}', {t10}, NULL);
        INSERT INTO jobs VALUES ('{msg}', 'payment', 'ready', 0, {t10}, NULL, NULL, {t10}, NULL);
        "#,
        t1 = t + 1,
        t2 = t + 2,
        t3 = t + 3,
        t4 = t + 4,
        t5 = t + 5,
        t6 = t + 600_000,
        t7 = t + 7,
        t8 = t + 8,
        t9 = t + 60_009,
        t10 = t + 10,
        t11 = t + 11,
    );
    sqlx::raw_sql(&script).execute(&pool).await.unwrap();
    pool.close().await;

    let s = PgStore::connect(&url, 2).await.unwrap();
    assert!(!s.pending_migrations().await.unwrap().is_empty());
    s.migrate().await.unwrap();
    assert!(s.pending_migrations().await.unwrap().is_empty());

    let user = s
        .user_by_email(&Email::parse("ann@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.created_at, at(t));
    let venue = s.venue(&ven).await.unwrap().unwrap();
    assert_eq!(
        (venue.sections, venue.seat_count, venue.created_at),
        (vec!["A".to_owned(), "B".to_owned()], 2, at(t + 1))
    );
    let seats = s.venue_seats(&venue.id).await.unwrap();
    assert_eq!(
        seats
            .iter()
            .map(|s| (s.position, s.x, s.y))
            .collect::<Vec<_>>(),
        vec![(0, 10, 20), (1, 11, 20)]
    );
    let event_id = evt;
    let rec = s.event(&event_id).await.unwrap().unwrap();
    let e = &rec.event;
    assert_eq!(
        (e.starts_at, e.sale_starts_at, e.sale_ends_at, e.created_at),
        (at(t + 2), Some(at(t + 3)), None, at(t + 4))
    );
    assert_eq!((e.hold_ttl_seconds, e.max_tickets_per_order), (60, 6));
    assert_eq!(e.tiers[0].sections, vec!["A".to_owned()]);
    assert_eq!(e.ga_tiers[0].capacity, 50);
    assert_eq!(rec.seat_count, 2);
    let hold = s.hold(&hold).await.unwrap().unwrap();
    assert_eq!(hold.status, HoldStatus::Converted);
    assert_eq!(
        (hold.expires_at, hold.created_at),
        (at(t + 600_000), at(t + 7))
    );
    let seat_ids: Vec<&str> = match &hold.selection {
        HoldSelection::Seats(s) => s.iter().map(|s| s.as_str()).collect(),
        HoldSelection::Ga { .. } => vec![],
    };
    assert_eq!(seat_ids, [seat2.as_str(), seat1.as_str()]);
    let inv = s.inventory(&event_id, at(t + 100)).await.unwrap();
    assert_eq!(inv.live_holds.len(), 1);
    assert_eq!(inv.ga_sold, vec![3]);
    // Not live once its deadline has passed, to the millisecond.
    let inv = s.inventory(&event_id, at(t + 600_000)).await.unwrap();
    assert!(inv.live_holds.is_empty());

    assert_eq!(
        s.pending_orders(at(t + 600_000)).await.unwrap(),
        vec![ord.clone()]
    );
    let order_id = ord;
    let order = s.order(&order_id).await.unwrap().unwrap();
    assert_eq!(
        (order.created_at, order.updated_at),
        (at(t + 10), at(t + 11))
    );
    assert_eq!(order.items.len(), 2);
    let key = s
        .idempotent(&user.id, "checkout", "k1")
        .await
        .unwrap()
        .unwrap();
    // A checkout answer kept as status 202 and a body replays as the outcome it was.
    assert_eq!(
        key.answer,
        CheckoutAnswer::Accepted {
            order_id: order_id.clone()
        }
    );
    // The old job is claimable, with its enqueue time, and its restored deadline
    // comes back when its payment fails.
    let d = s
        .claim(
            Consumer::Payment,
            10,
            std::time::Duration::from_secs(30),
            at(t + 20),
        )
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].enqueued_at, d[0].attempt), (at(t + 10), 1));
    let failed = s
        .fail_payment(
            &order_id,
            "card_declined",
            true,
            &MessageId::new(),
            at(t + 30),
        )
        .await
        .unwrap();
    assert_eq!(
        failed,
        boxoffice_ports::FailOutcome::Failed {
            hold_until: Some(at(t + 60_009))
        }
    );
}
