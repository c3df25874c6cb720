//! Issue 8, cancellation of an event: `PATCH /v1/events/{id} {"status":"cancelled"}`.
//! The event stops selling at once (holds 409 `not_on_sale`, checkouts 409
//! `event_cancelled`), its live holds are released and every paid order is refunded
//! in full exactly once by the `event.cancelled` job, a charge that lands after the
//! cancellation is refunded, and at the end the engine and the store agree seat by
//! seat (every seat free: nothing held, nothing sold).

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

async fn patch_status(app: &TestApp, token: &str, event: &str, status: &str) -> Res {
    app.call(
        Method::PATCH,
        &format!("/v1/events/{event}"),
        Some(token),
        Some(json!({ "status": status })),
    )
    .await
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

async fn order(app: &TestApp, buyer: &str, order: &str) -> Value {
    let r = app.get(&format!("/v1/orders/{order}"), Some(buyer)).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// The gateway's succeeded charges of `order`.
fn succeeded<'a>(charges: &'a [Value], order: &str) -> Vec<&'a Value> {
    charges
        .iter()
        .filter(|c| c["order_id"] == order && c["outcome"] == "succeeded")
        .collect()
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

async fn sales(app: &TestApp, event: &str) -> (i64, i64) {
    let r = app
        .get(&format!("/v1/admin/events/{event}/sales"), Some(&app.admin))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    (
        r.body["tickets_sold"].as_i64().unwrap(),
        r.body["revenue"].as_i64().unwrap(),
    )
}

/// Paid orders (one already refunded in part), a payment still processing at the
/// gateway and a live hold: the cancellation answers at once, the event sells
/// nothing more, every paid order is refunded in full once (the partial one: the
/// rest of it), the live hold is released, the processing payment that succeeds
/// afterwards is refunded, the buyers are told, analytics counts it all back, and
/// the engine and the store agree that every seat is free. Repeating it is harmless;
/// only an admin may do it, and a cancelled event stays cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_an_event_refunds_every_paid_order_once_and_frees_every_seat() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 8, 10, 300, 4).await;
    let s = &sale.seats;

    // Three paid orders.
    let mut paid = vec![];
    for seats in [vec![&s[0], &s[1]], vec![&s[2]], vec![&s[3]]] {
        let buyer = app.customer().await;
        let h = hold(&app, &buyer, &sale.id, &seats).await;
        let o = check_out(&app, &buyer, &h, "tok_visa").await;
        assert_eq!(app.final_order(&buyer, &o).await["status"], "paid");
        paid.push((buyer, o));
    }
    // One refunded in part before the cancellation: 500 of 2500.
    let r = app
        .post(
            &format!("/v1/orders/{}/refund", paid[1].1),
            Some(&app.admin),
            json!({"amount": {"amount": 500, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // A payment in flight at the gateway (a delayed method).
    let late_buyer = app.customer().await;
    let h = hold(&app, &late_buyer, &sale.id, &[&s[4]]).await;
    let late_order = check_out(&app, &late_buyer, &h, "tok_processing").await;
    eventually("the payment is processing at the gateway", || async {
        intents_of(&app, &late_order)
            .await
            .first()
            .is_some_and(|pi| pi["status"] == "processing")
    })
    .await;
    // A live hold, and one a buyer will try to check out after the cancellation.
    let holder = app.customer().await;
    let live = hold(&app, &holder, &sale.id, &[&s[5]]).await;
    let unpaid = hold(&app, &holder, &sale.id, &[&s[6]]).await;
    assert_eq!(
        &app.statuses(&sale.id).await[..8],
        &['S', 'S', 'S', 'S', 'H', 'H', 'H', 'A']
    );
    eventually("the sales are counted", || async {
        sales(&app, &sale.id).await == (4, 10000 - 500)
    })
    .await;

    // Only an admin; the role is checked first.
    let r = patch_status(&app, &holder, &sale.id, "cancelled").await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{r:?}");

    let r = patch_status(&app, &app.admin, &sale.id, "cancelled").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "cancelled");

    // At once: nothing sells.
    let buyer = app.customer().await;
    let r = app.hold_seats(&buyer, &sale.id, &[&s[7]]).await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "not_on_sale"), "{r:?}");
    let r = app.checkout(&holder, &unpaid, "k-after", "tok_visa").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "event_cancelled"),
        "{r:?}"
    );
    // Final, and a repeat is the same answer.
    for to in ["on_sale", "paused", "ended", "draft"] {
        let r = patch_status(&app, &app.admin, &sale.id, to).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (409, "event_cancelled"),
            "{to}: {r:?}"
        );
    }
    let r = patch_status(&app, &app.admin, &sale.id, "cancelled").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        app.get(&format!("/v1/events/{}", sale.id), None).await.body["status"],
        "cancelled"
    );

    // The job: every paid order refunded in full, tickets void.
    for (buyer, o) in &paid {
        eventually("the paid order is refunded", || async {
            order(&app, buyer, o).await["status"] == "refunded"
        })
        .await;
        let body = order(&app, buyer, o).await;
        assert_eq!(body["refunded"], body["total"], "{body}");
        assert!(
            body["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["status"] == "voided"),
            "{body}"
        );
    }
    // The holds are released.
    for h in [&live, &unpaid] {
        eventually("the hold is released", || async {
            app.get(&format!("/v1/holds/{h}"), Some(&holder)).await.body["status"] == "released"
        })
        .await;
    }

    // The processing payment succeeds after the cancellation: refunded, order failed.
    let pi = intents_of(&app, &late_order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    gateway(
        &app,
        Method::POST,
        &format!("/v1/test_helpers/payment_intents/{pi}/settle"),
        &[("outcome", "succeeded")],
    )
    .await;
    eventually("the late payment's order fails", || async {
        order(&app, &late_buyer, &late_order).await["status"] == "failed"
    })
    .await;
    let lo = order(&app, &late_buyer, &late_order).await;
    assert_eq!(lo["failure_code"], "event_cancelled", "{lo}");

    // The gateway: each charge refunded in full, the cancellation's part once.
    eventually("the gateway refunded every charge in full", || async {
        let charges = app.charges().await;
        paid.iter()
            .map(|(_, o)| o)
            .chain([&late_order])
            .all(|o| succeeded(&charges, o).iter().all(|c| c["refunded"] == true))
    })
    .await;
    let charges = app.charges().await;
    for (i, (_, o)) in paid.iter().enumerate() {
        let mine = succeeded(&charges, o);
        assert_eq!(mine.len(), 1, "one charge: {mine:?}");
        assert_eq!(mine[0]["amount_refunded"], mine[0]["amount"], "{mine:?}");
        // The partially refunded order: its own refund and the cancellation's.
        let refunds = if i == 1 { 2 } else { 1 };
        assert_eq!(mine[0]["refunds"], refunds, "{mine:?}");
    }
    let mine = succeeded(&charges, &late_order);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["refunds"], 1, "{mine:?}");

    // Every seat free, in the engine as in the store.
    eventually("every seat is free", || async {
        app.statuses(&sale.id).await.iter().all(|&c| c == 'A')
    })
    .await;
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
    // Analytics counted everything back; the buyers were told.
    eventually("analytics counted the refunds", || async {
        sales(&app, &sale.id).await == (0, 0)
    })
    .await;
    eventually("the buyers are emailed", || async {
        let mail = emails(&app);
        mail.iter()
            .filter(|m| m.contains("has been cancelled"))
            .count()
            > paid.len()
    })
    .await;
}

/// A cancellation in the middle of a sale: 60 buyers hold, check out and pay, and
/// the event is cancelled (twice at once) after 20 holds were granted. At the end no
/// order is paid, every charge that landed is refunded exactly once, every seat is
/// free, and the engine agrees with the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancellation_racing_buyers_leaves_no_charge_kept_and_none_refunded_twice() {
    const BUYERS: usize = 60;
    // Charges take a while at the gateway: some are in flight when the event is
    // cancelled, and land after it (the store refuses their sale: refunded).
    let app = Arc::new(TestApp::spawn_with(|c| c.gateway_latency_ms = 150).await);
    let sale = app.sale(6, 10, 10, 300, 4).await;
    let granted = Arc::new(AtomicUsize::new(0));
    let cancel_now = Arc::new(tokio::sync::Notify::new());

    let mut buyers = vec![];
    for i in 0..BUYERS {
        let (app, seat, event) = (app.clone(), sale.seats[i].clone(), sale.id.clone());
        let (granted, cancel_now) = (granted.clone(), cancel_now.clone());
        buyers.push(tokio::spawn(async move {
            let buyer = app.customer().await;
            let h = app.hold_seats(&buyer, &event, &[&seat]).await;
            if h.status != 201 {
                assert_eq!((h.status.as_u16(), h.code()), (409, "not_on_sale"), "{h:?}");
                return None;
            }
            if granted.fetch_add(1, Ordering::SeqCst) + 1 == 20 {
                cancel_now.notify_one();
            }
            let hold = h.body["hold_id"].as_str().unwrap();
            let c = app
                .checkout(&buyer, hold, &format!("k-{hold}"), "tok_visa")
                .await;
            if c.status != 202 {
                assert_eq!(
                    (c.status.as_u16(), c.code()),
                    (409, "event_cancelled"),
                    "{c:?}"
                );
                return None;
            }
            let o = c.body["order_id"].as_str().unwrap().to_owned();
            let fin = app.final_order(&buyer, &o).await;
            assert!(
                ["paid", "failed", "refunded"].contains(&fin["status"].as_str().unwrap()),
                "{fin}"
            );
            Some((buyer, o))
        }));
    }
    cancel_now.notified().await;
    let (a, b) = tokio::join!(
        patch_status(&app, &app.admin, &sale.id, "cancelled"),
        patch_status(&app, &app.admin, &sale.id, "cancelled"),
    );
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (200, 200),
        "{a:?} {b:?}"
    );
    let mut orders = vec![];
    for b in buyers {
        orders.extend(b.await.unwrap());
    }

    // No order stays paid: each is refunded, or failed (its charge, if any, refunded).
    let mut outcome: HashMap<String, Value> = HashMap::new();
    for (buyer, o) in &orders {
        eventually("the order is settled", || async {
            let s = order(&app, buyer, o).await["status"].clone();
            s == "refunded" || s == "failed"
        })
        .await;
        outcome.insert(o.clone(), order(&app, buyer, o).await);
    }
    eventually("the gateway refunded every charge", || async {
        let charges = app.charges().await;
        orders
            .iter()
            .all(|(_, o)| succeeded(&charges, o).iter().all(|c| c["refunded"] == true))
    })
    .await;
    let charges = app.charges().await;
    let (mut refunded, mut landed_late, mut never_charged) = (0, 0, 0);
    for (_, o) in &orders {
        let charged = !succeeded(&charges, o).is_empty();
        match (outcome[o]["status"].as_str(), charged) {
            (Some("failed"), true) => landed_late += 1,
            (Some("failed"), false) => never_charged += 1,
            _ => {}
        }
        let mine = succeeded(&charges, o);
        assert!(mine.len() <= 1, "one charge per order: {mine:?}");
        for c in mine {
            assert_eq!(c["refunds"], 1, "refunded exactly once: {c}");
            assert_eq!(c["amount_refunded"], c["amount"], "{c}");
            refunded += 1;
        }
        let body = &outcome[o];
        if body["status"] == "failed" {
            let code = body["failure_code"].as_str().unwrap();
            assert_eq!(code, "event_cancelled", "{body}");
        }
    }
    eprintln!(
        "{} orders ({landed_late} charged after the cancellation, {never_charged} never charged), \
         {refunded} charges refunded, {} holds granted",
        orders.len(),
        granted.load(Ordering::SeqCst)
    );
    assert!(granted.load(Ordering::SeqCst) >= 20);

    eventually("every seat is free", || async {
        app.statuses(&sale.id).await.iter().all(|&c| c == 'A')
    })
    .await;
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
}

/// A cancellation bigger than one batch of the job (600 paid orders, batches of
/// 500), whose node is SIGKILLed while the job runs and started again on the same
/// data: the job resumes (the outbox replays it embedded, the lease returns it
/// distributed) and every order is refunded in full exactly once — one gateway
/// refund per charge — every seat is free and the engine agrees with the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_cancellation_resumes_and_refunds_each_order_once() {
    use boxoffice_payments::{FakeStripe, FakeStripeConfig, TEST_SECRET_KEY};
    const ORDERS: usize = 600;
    let backend = Backend::from_env().await;
    let gateway_dir = tempfile::tempdir().unwrap();
    let gateway = FakeStripe::start(
        gateway_dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        FakeStripeConfig::default(),
    )
    .await
    .unwrap();
    let url = gateway.url();
    let env = [
        ("BOXOFFICE_GATEWAY", "stripe"),
        ("BOXOFFICE_STRIPE_URL", url.as_str()),
        ("BOXOFFICE_STRIPE_SECRET_KEY", TEST_SECRET_KEY),
        ("BOXOFFICE_DEMO", "true"),
        ("BOXOFFICE_JOB_LEASE_MS", "4000"),
        ("BOXOFFICE_GATEWAY_RATE_LIMIT", "1000"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut node = Process::boot(dir.path(), &backend, &env);
    let app = TestApp::attach(node.addr, dir, backend.clone()).await;
    let events = app.get("/v1/events", None).await.body["events"].clone();
    let event = events[0]["id"].as_str().unwrap().to_owned();
    let seats: Vec<String> = app
        .get(&format!("/v1/events/{event}/layout"), None)
        .await
        .body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let tokens: Vec<String> = futures::future::join_all((0..30).map(|_| app.customer())).await;

    // 600 paid orders of one seat each.
    let app = Arc::new(app);
    let mut buying = vec![];
    for (i, seat) in seats.iter().take(ORDERS).enumerate() {
        let (app, token, seat, event) = (
            app.clone(),
            tokens[i % tokens.len()].clone(),
            seat.clone(),
            event.clone(),
        );
        buying.push(tokio::spawn(async move {
            let h = hold(&app, &token, &event, &[&seat]).await;
            let o = check_out(&app, &token, &h, "tok_visa").await;
            (token, o)
        }));
    }
    let mut orders = vec![];
    for b in buying {
        orders.push(b.await.unwrap());
    }
    for (token, o) in &orders {
        assert_eq!(app.final_order(token, o).await["status"], "paid");
    }

    let r = patch_status(&app, &app.admin, &event, "cancelled").await;
    assert_eq!(r.status, 200, "{r:?}");
    // Killed once the job has refunded something.
    eventually("the job is under way", || async {
        let mut refunded = 0;
        for (token, o) in orders.iter().take(5) {
            if order(&app, token, o).await["status"] == "refunded" {
                refunded += 1;
            }
        }
        refunded > 0
    })
    .await;
    node.kill();
    let mut app = Arc::into_inner(app).expect("no other handle");
    let node = Process::boot(app.data_dir.path(), &backend, &env);
    app.addr = node.addr;

    for (token, o) in &orders {
        eventually("the order is refunded", || async {
            order(&app, token, o).await["status"] == "refunded"
        })
        .await;
    }
    eventually("the gateway refunded every charge", || async {
        let charges = app.charges().await;
        orders
            .iter()
            .all(|(_, o)| succeeded(&charges, o).iter().all(|c| c["refunded"] == true))
    })
    .await;
    let charges = app.charges().await;
    for (_, o) in &orders {
        let mine = succeeded(&charges, o);
        assert_eq!(mine.len(), 1, "one charge per order: {mine:?}");
        assert_eq!(mine[0]["refunds"], 1, "refunded exactly once: {mine:?}");
        assert_eq!(mine[0]["amount_refunded"], mine[0]["amount"], "{mine:?}");
    }
    eventually("every seat is free", || async {
        app.statuses(&event).await.iter().all(|&c| c == 'A')
    })
    .await;
    let audit = app.engine_audit(&event).await;
    assert_eq!(audit["agrees"], true, "{audit}");
    drop(node);
}
