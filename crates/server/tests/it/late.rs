//! Issue 8, fault 2: a payment that arrives after its hold's payment deadline. The
//! seats may be someone else's by then: it is completed only if they can be had
//! again (engine first, then the store), else refunded and its buyer told so; and a
//! payment not even attempted by its deadline is never charged.

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use boxoffice_server::Config;
use serde_json::Value;
use std::sync::Arc;

/// A payment hold of 60 s (so a jump past it stays inside the webhooks' 300 s
/// tolerance) and no reconciler pass except the first: what settles an order here
/// is a job, a webhook or the test.
fn late(c: &mut Config) {
    c.reconcile_interval_ms = 3_600_000;
    c.payment_hold_seconds = 60;
}

async fn hold(app: &TestApp, buyer: &str, event: &str, seats: &[&String]) -> String {
    let h = app.hold_seats(buyer, event, seats).await;
    assert_eq!(h.status, 201, "{h:?}");
    h.body["hold_id"].as_str().unwrap().to_owned()
}

async fn check_out(app: &TestApp, buyer: &str, hold: &str, token: &str) -> String {
    let c = app.checkout(buyer, hold, &format!("k-{hold}"), token).await;
    assert_eq!(c.status, 202, "{c:?}");
    c.body["order_id"].as_str().unwrap().to_owned()
}

/// The gateway's charges of `order`: (succeeded and kept, refunded).
fn charges_of(charges: &[Value], order: &str) -> (usize, usize) {
    let mine = charges
        .iter()
        .filter(|c| c["order_id"] == order && c["outcome"] == "succeeded");
    let kept = mine.clone().filter(|c| c["refunded"] == false).count();
    (kept, mine.count() - kept)
}

/// The text of the emails sent to buyers (the `.eml` files of the data dir).
fn emails(app: &TestApp) -> Vec<String> {
    let dir = app.data_dir.path().join("mail");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}

/// A's payment is in flight at the gateway (a delayed method: `processing`) when
/// the clock passes its payment deadline; A's hold expires and B holds the seat;
/// then A's payment succeeds (its webhook arrives). A is refunded and told so, B
/// buys the seat: one sale, one refund, and engine and store agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_payment_after_the_seat_was_resold_is_refunded() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(late, clock.clone()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let seat = &sale.seats[0];
    let (a, b) = (app.customer().await, app.customer().await);

    let a_hold = hold(&app, &a, &sale.id, &[seat]).await;
    let a_order = check_out(&app, &a, &a_hold, "tok_processing").await;
    eventually("A's payment is in flight at the gateway", || async {
        intents_of(&app, &a_order)
            .await
            .first()
            .is_some_and(|pi| pi["status"] == "processing")
    })
    .await;

    // The payment deadline passes: A's hold is gone, and B holds the seat.
    clock.advance(time::Duration::seconds(61));
    let b_hold = hold(&app, &b, &sale.id, &[seat]).await;

    // A's bank settles at last: its webhook reports the success.
    let pi = intents_of(&app, &a_order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    gateway(
        &app,
        reqwest::Method::POST,
        &format!("/v1/test_helpers/payment_intents/{pi}/settle"),
        &[("outcome", "succeeded")],
    )
    .await;
    let ao = app.final_order(&a, &a_order).await;
    assert_eq!(
        (ao["status"].as_str(), ao["failure_code"].as_str()),
        (Some("failed"), Some("seats_unavailable")),
        "A paid too late for a seat B holds: {ao}"
    );

    // B's hold stands: B buys the seat.
    let b_order = check_out(&app, &b, &b_hold, "tok_visa").await;
    let bo = app.final_order(&b, &b_order).await;
    assert_eq!(bo["status"], "paid", "{bo}");
    assert_eq!(app.statuses(&sale.id).await[0], 'S');

    // The gateway: B's charge kept, A's refunded; nothing else.
    let charges = app.charges().await;
    assert_eq!(charges_of(&charges, &b_order), (1, 0), "{charges:?}");
    assert_eq!(charges_of(&charges, &a_order), (0, 1), "{charges:?}");

    // Both told the truth: A that the money came back, B the tickets.
    eventually("A and B have their emails", || async {
        let mail = emails(&app);
        mail.iter().any(|m| m.contains(a_order.as_str()))
            && mail.iter().any(|m| m.contains(b_order.as_str()))
    })
    .await;
    let mail = emails(&app);
    let a_mail = mail.iter().find(|m| m.contains(a_order.as_str())).unwrap();
    assert!(a_mail.contains("refunded"), "{a_mail}");
    assert!(!a_mail.contains("Nothing was charged"), "{a_mail}");
    let b_mail = mail.iter().find(|m| m.contains(b_order.as_str())).unwrap();
    assert!(b_mail.contains("Your tickets"), "{b_mail}");

    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
}

/// A payment job that first gets to the gateway after its order's payment deadline
/// (a backlog: the gateway was down the whole time) never charges: the order fails
/// with `payment_expired`, and a replay of its key afterwards charges nothing.
// Racy as written: the job's own retry can pass the deadline check just before the
// clock jump and reach the gateway just after it comes back, a charge in flight at
// the deadline that completion then rightly keeps (its seat is still free). It needs
// the job held back while the clock moves; until then it is run by hand.
#[ignore = "racy test (the worker's own attempt races the clock jump); run with --include-ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_first_attempted_after_its_deadline_is_not_charged() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(late, clock.clone()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let a = app.customer().await;
    app.gateway_faults(&[("unavailable", "true")]).await;
    let a_hold = hold(&app, &a, &sale.id, &[&sale.seats[0]]).await;
    let a_order = check_out(&app, &a, &a_hold, "tok_visa").await;
    clock.advance(time::Duration::seconds(61));
    app.gateway_faults(&[("unavailable", "false")]).await;

    // The backlog reaches the order now (as its job would).
    let id = boxoffice_domain::OrderId::parse(&a_order).unwrap();
    app.app().pay(&id, 1, None).await.unwrap();
    let ao = app.final_order(&a, &a_order).await;
    assert_eq!(
        (ao["status"].as_str(), ao["failure_code"].as_str()),
        (Some("failed"), Some("payment_expired")),
        "{ao}"
    );
    // However often it is tried again, nothing is charged under its key.
    app.app().pay(&id, 2, None).await.unwrap();
    let charges = app.charges().await;
    assert_eq!(charges_of(&charges, &a_order), (0, 0), "{charges:?}");
    assert_eq!(app.statuses(&sale.id).await[0], 'A');
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
}

/// Late payments and fresh buyers race for the same seats: no seat is sold twice,
/// and every charge ends either in a paid order or refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_payments_and_fresh_buyers_race_for_the_same_seats() {
    const N: usize = 6;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = Arc::new(TestApp::spawn_with_clock(late, clock.clone()).await);
    let sale = app.sale(1, N as u32, 10, 60, 4).await;
    let mut late_orders = Vec::new();
    for seat in sale.seats.iter().take(N) {
        let buyer = app.customer().await;
        let h = hold(&app, &buyer, &sale.id, &[seat]).await;
        let o = check_out(&app, &buyer, &h, "tok_processing").await;
        late_orders.push((buyer, o));
    }
    for (_, o) in &late_orders {
        eventually("the late payment is in flight", || async {
            intents_of(&app, o)
                .await
                .first()
                .is_some_and(|pi| pi["status"] == "processing")
        })
        .await;
    }
    clock.advance(time::Duration::seconds(61));

    // At once: each late payment settles, and a fresh buyer goes for its seat.
    let mut tasks = Vec::new();
    for (i, (buyer, o)) in late_orders.iter().enumerate() {
        let (app2, o2) = (app.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            let pi = intents_of(&app2, &o2).await[0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            gateway(
                &app2,
                reqwest::Method::POST,
                &format!("/v1/test_helpers/payment_intents/{pi}/settle"),
                &[("outcome", "succeeded")],
            )
            .await;
            None
        }));
        let _ = buyer;
        let (app2, seat, event) = (app.clone(), sale.seats[i].clone(), sale.id.clone());
        tasks.push(tokio::spawn(async move {
            let fresh = app2.customer().await;
            let h = app2.hold_seats(&fresh, &event, &[&seat]).await;
            if h.status != 201 {
                assert_eq!(h.code(), "seats_unavailable", "{h:?}");
                return None;
            }
            let hold = h.body["hold_id"].as_str().unwrap().to_owned();
            let c = app2
                .checkout(&fresh, &hold, &format!("k-{hold}"), "tok_visa")
                .await;
            if c.status != 202 {
                assert_eq!(c.code(), "hold_expired", "{c:?}");
                return None;
            }
            Some((fresh, c.body["order_id"].as_str().unwrap().to_owned()))
        }));
    }
    let mut orders: Vec<(String, String)> = late_orders.clone();
    for t in tasks {
        if let Some(o) = t.await.unwrap() {
            orders.push(o);
        }
    }
    let mut paid_seats = Vec::new();
    for (buyer, o) in &orders {
        let body = app.final_order(buyer, o).await;
        if body["status"] == "paid" {
            for t in body["tickets"].as_array().unwrap() {
                paid_seats.push(t["seat_id"].as_str().unwrap().to_owned());
            }
        } else {
            assert_eq!(body["status"], "failed", "{body}");
        }
    }
    let mut unique = paid_seats.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        paid_seats.len(),
        "no seat sold twice: {paid_seats:?}"
    );
    assert_eq!(paid_seats.len(), N, "every seat sold once: {paid_seats:?}");

    let charges = app.charges().await;
    for (buyer, o) in &orders {
        let status = app.final_order(buyer, o).await["status"].clone();
        let (kept, refunded) = charges_of(&charges, o);
        match status.as_str().unwrap() {
            "paid" => assert_eq!((kept, refunded), (1, 0), "{o}: {charges:?}"),
            _ => assert_eq!(kept, 0, "a failed order keeps no charge: {o}: {charges:?}"),
        }
    }
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
}
