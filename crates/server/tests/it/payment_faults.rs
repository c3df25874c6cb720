//! Payments through gateway faults: a charge whose answer is lost, a shared store
//! without a shared gateway.

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use futures::StreamExt;
use std::sync::Arc;
use time::Duration;

/// The charges the test gateway recorded for `order`, as (outcome, refunded).
async fn charges_of(app: &TestApp, order: &str) -> Vec<(String, bool)> {
    app.charges()
        .await
        .iter()
        .filter(|c| c["order_id"] == order)
        .map(|c| {
            (
                c["outcome"].as_str().unwrap().to_owned(),
                c["refunded"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Fault 1: the gateway commits the charge and then drops the connection (and its
/// webhooks are held back), every time, past the give-up point of the payment (90 % of a 100 s payment hold). The
/// order must not fail while a charge may exist: it waits as `payment_unknown`, its
/// seat stays held past the original payment deadline, and the reconciler — several
/// passes at once, while the gateway still loses answers and then once it answers —
/// settles it as paid on the one charge there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_charge_whose_answer_is_lost_waits_as_payment_unknown_and_the_reconciler_settles_it() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(
        |c| {
            c.payment_hold_seconds = 100;
            // The test runs the reconciler's passes itself.
            c.reconcile_interval_ms = 3_600_000;
        },
        clock.clone(),
    )
    .await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    let rival = app.customer().await;

    // Its answers are lost, and so are its webhooks for now (held back).
    app.gateway_faults(&[("lose_answers", "true"), ("webhooks_hold", "true")])
        .await;
    let h = app.hold_seats(&buyer, &sale.id, &[&sale.seats[0]]).await;
    assert_eq!(h.status, 201, "{h:?}");
    let c = app
        .checkout(
            &buyer,
            h.body["hold_id"].as_str().unwrap(),
            "lost",
            "tok_visa",
        )
        .await;
    assert_eq!(c.status, 202, "{c:?}");
    let order = c.body["order_id"].as_str().unwrap().to_owned();

    // Past the give-up point (90 s), before the payment deadline (100 s): whatever
    // attempts ran, the next one is the last chance, and its answer is lost too.
    clock.advance(Duration::seconds(95));
    let o = app.final_order(&buyer, &order).await;
    assert_eq!(
        o["status"], "payment_unknown",
        "a charge may exist, so the order must not fail: {o}"
    );
    assert_eq!(
        charges_of(&app, &order).await,
        vec![("succeeded".to_owned(), false)],
        "the gateway did charge"
    );

    // Past the original payment deadline the seat is still kept for this order.
    clock.advance(Duration::seconds(50));
    assert_eq!(app.statuses(&sale.id).await[0], 'H');
    let r = app.hold_seats(&rival, &sale.id, &[&sale.seats[0]]).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "seats_unavailable"),
        "{r:?}"
    );

    // A pass while the gateway still loses its answers settles nothing and charges
    // nothing again.
    let pass = app.app().reconcile().await.unwrap();
    assert_eq!((pass.settled, pass.unknown), (0, 1), "{pass:?}");
    let o = app
        .get(&format!("/v1/orders/{order}"), Some(&buyer))
        .await
        .body;
    assert_eq!(o["status"], "payment_unknown");
    assert_eq!(charges_of(&app, &order).await.len(), 1);

    // The gateway answers again; four passes race (as on four nodes).
    app.gateway_faults(&[("lose_answers", "false")]).await;
    let passes = futures::future::join_all((0..4).map(|_| app.app().reconcile())).await;
    let settled: usize = passes.into_iter().map(|p| p.unwrap().settled).sum();
    assert!(settled >= 1, "some pass settled it");
    let o = app.final_order(&buyer, &order).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(
        charges_of(&app, &order).await,
        vec![("succeeded".to_owned(), false)],
        "one charge, not refunded"
    );
    assert_eq!(app.statuses(&sale.id).await[0], 'S');
    let pass = app.app().reconcile().await.unwrap();
    assert_eq!((pass.settled, pass.unknown), (0, 0), "{pass:?}");
}

/// Fault 8: on a shared store (PostgreSQL) each node's built-in test gateway would
/// keep its own charge list, so a node refuses to start with one, saying what to do
/// instead, before it touches the database (this one does not even exist).
#[test]
fn a_node_on_a_shared_store_refuses_a_private_test_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let out = binary()
        .arg("serve")
        .env("BOXOFFICE_LISTEN", "127.0.0.1:0")
        .env("BOXOFFICE_DATA_DIR", dir.path())
        .env("BOXOFFICE_LOG", "warn")
        .env(
            "BOXOFFICE_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/boxoffice_never_created",
        )
        .output()
        .expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {err}");
    assert!(
        err.contains("built-in test gateway is private to this node")
            && err.contains("boxoffice test-gateway")
            && err.contains("BOXOFFICE_GATEWAY=stripe"),
        "{err}"
    );
    assert!(
        !dir.path().join("test-gateway.db").exists(),
        "no private gateway was started"
    );
}

/// The fault run of issue 8: during a sale of 5,000 seats the gateway
/// commits every charge and loses every answer (webhooks held too) for longer than
/// the payment deadline, then recovers. Zero orders both failed and charged, zero
/// double charges, every charged order paid, every seat sold, and engine and store
/// agreeing seat by seat. Some buyers' cards are declined: those orders fail, with
/// no charge, once the gateway answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_lost_past_the_deadline_then_back_loses_no_sale_and_charges_nothing_twice() {
    const N: usize = 5_000;
    const BUYERS: usize = 50;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = Arc::new(
        TestApp::spawn_with_clock(
            |c| {
                c.payment_hold_seconds = 100;
                c.reconcile_interval_ms = 3_600_000;
                c.gateway_rate_limit = 10_000;
            },
            clock.clone(),
        )
        .await,
    );
    let sale = app.sale(50, 100, 10, 600, 4).await;
    let buyers: Vec<String> = futures::future::join_all((0..BUYERS).map(|_| app.customer())).await;
    app.gateway_faults(&[("lose_answers", "true"), ("webhooks_hold", "true")])
        .await;
    // 64 buyers' requests in flight at a time, each hold then its checkout.
    let orders: Vec<(String, String, &str)> = futures::stream::iter((0..N).map(|i| {
        let (app, buyer, seat) = (
            app.clone(),
            buyers[i % BUYERS].clone(),
            sale.seats[i].clone(),
        );
        let event = sale.id.clone();
        async move {
            let token = if i % 10 == 9 {
                "tok_chargeDeclined"
            } else {
                "tok_visa"
            };
            let h = app.hold_seats(&buyer, &event, &[&seat]).await;
            assert_eq!(h.status, 201, "{h:?}");
            let c = app
                .checkout(
                    &buyer,
                    h.body["hold_id"].as_str().unwrap(),
                    &format!("f{i}"),
                    token,
                )
                .await;
            assert_eq!(c.status, 202, "{c:?}");
            (
                buyer,
                c.body["order_id"].as_str().unwrap().to_owned(),
                token,
            )
        }
    }))
    .buffered(64)
    .collect()
    .await;

    // Past the give-up point; nothing is known: every order waits, every seat held.
    clock.advance(Duration::seconds(95));
    let pass = app.app().reconcile().await.unwrap();
    assert_eq!(pass.settled, 0, "{pass:?}");
    for (buyer, order, _) in &orders {
        let o = app.final_order(buyer, order).await;
        assert_eq!(o["status"], "payment_unknown", "{o}");
    }
    // Past the original deadline too, the seats are still theirs.
    clock.advance(Duration::seconds(30));
    assert!(app.statuses(&sale.id).await[..N].iter().all(|&c| c == 'H'));

    // The gateway is back: one pass settles everything.
    app.gateway_faults(&[("lose_answers", "false")]).await;
    let pass = app.app().reconcile().await.unwrap();
    assert_eq!((pass.settled, pass.unknown), (N, 0), "{pass:?}");
    app.gateway_faults(&[("webhooks_hold", "false")]).await;

    let charges = app.charges().await;
    let mut paid = 0;
    for (buyer, order, token) in &orders {
        let o = app.final_order(buyer, order).await;
        let succeeded = charges
            .iter()
            .filter(|c| c["order_id"] == order.as_str() && c["outcome"] == "succeeded")
            .count();
        match (*token, o["status"].as_str().unwrap()) {
            ("tok_visa", "paid") => {
                assert_eq!(succeeded, 1, "one charge for {order}");
                assert_eq!(o["tickets"].as_array().unwrap().len(), 1);
                paid += 1;
            }
            ("tok_chargeDeclined", "failed") => assert_eq!(succeeded, 0, "{o}"),
            other => panic!("order {order}: {other:?}: {o}"),
        }
    }
    assert_eq!(paid, N - N / 10);
    let succeeded_total = charges
        .iter()
        .filter(|c| c["outcome"] == "succeeded")
        .count();
    assert_eq!(succeeded_total, paid, "charges = paid orders");
    let statuses = app.statuses(&sale.id).await;
    for (i, (_, _, token)) in orders.iter().enumerate() {
        // A declined buyer's hold went back to its own TTL (600 s, not yet over).
        let want = if *token == "tok_visa" { 'S' } else { 'H' };
        assert_eq!(statuses[i], want, "seat {i}");
    }
    let audit = app
        .get(
            &format!("/v1/admin/events/{}/engine-audit", sale.id),
            Some(&app.admin),
        )
        .await;
    assert_eq!(audit.body["agrees"], true, "{audit:?}");
}
