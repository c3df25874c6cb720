//! Issue 8, refunds: `POST /v1/orders/{id}/refund`, whole or in part. The store
//! decides (one winner when refunds race), the seats are on sale again at once, the
//! gateway refunds once under the refund's key (through the outbox and the payment
//! worker), the tickets are void, and the buyer, audit and analytics hear of it.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// A paid order of `seats` for a fresh buyer: (buyer, order).
async fn paid_order(app: &TestApp, event: &str, seats: &[&String]) -> (String, Value) {
    let buyer = app.customer().await;
    let h = app.hold_seats(&buyer, event, seats).await;
    assert_eq!(h.status, 201, "{h:?}");
    let hold = h.body["hold_id"].as_str().unwrap();
    let c = app
        .checkout(&buyer, hold, &format!("k-{hold}"), "tok_visa")
        .await;
    assert_eq!(c.status, 202, "{c:?}");
    let o = app
        .final_order(&buyer, c.body["order_id"].as_str().unwrap())
        .await;
    assert_eq!(o["status"], "paid", "{o}");
    (buyer, o)
}

async fn refund(app: &TestApp, token: &str, order: &str, body: Value) -> Res {
    app.post(&format!("/v1/orders/{order}/refund"), Some(token), body)
        .await
}

/// The gateway's record of `order`'s charge.
async fn charge_of(app: &TestApp, order: &str) -> Value {
    let charges = app.charges().await;
    let mine: Vec<&Value> = charges
        .iter()
        .filter(|c| c["order_id"] == order && c["outcome"] == "succeeded")
        .collect();
    assert_eq!(mine.len(), 1, "one charge per order: {mine:?}");
    mine[0].clone()
}

/// Waits until the gateway has refunded `amount` of `order`'s charge, and answers
/// how many refunds it made of it.
async fn gateway_refunded(app: &TestApp, order: &str, amount: i64) -> u64 {
    eventually("the gateway refunded the order", || async {
        charge_of(app, order).await["amount_refunded"]["amount"] == amount
    })
    .await;
    charge_of(app, order).await["refunds"].as_u64().unwrap()
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

/// A whole refund: the order is refunded and its tickets void, its seats show
/// available at once and another buyer can hold and buy them; the gateway refunds
/// the charge once; the buyer's email, the audit and the analytics figures follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_refund_frees_the_seats_at_once_and_the_money_goes_back() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let (_, o) = paid_order(&app, &sale.id, &[&sale.seats[0], &sale.seats[1]]).await;
    let order = o["id"].as_str().unwrap().to_owned();
    assert_eq!(o["refunded"], json!({"amount": 0, "currency": "EUR"}));
    assert_eq!(&app.statuses(&sale.id).await[..2], &['S', 'S']);
    eventually("the sale is counted", || async {
        sales(&app, &sale.id).await == (2, 5000)
    })
    .await;

    let r = refund(&app, &app.admin, &order, json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "refunded");
    assert_eq!(
        r.body["refunded"],
        json!({"amount": 5000, "currency": "EUR"})
    );
    let tickets = r.body["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert!(
        tickets.iter().all(|t| t["status"] == "voided"),
        "{tickets:?}"
    );
    // At once: the very next read of the seat map, no waiting.
    assert_eq!(&app.statuses(&sale.id).await[..2], &['A', 'A']);
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
    // Analytics counts the sale back (`order.refunded` reached it).
    eventually("analytics counted the refund", || async {
        sales(&app, &sale.id).await == (0, 0)
    })
    .await;

    // Another buyer gets the seats, and is sold them (a new ticket for a seat whose
    // old ticket is void).
    let (_, o2) = paid_order(&app, &sale.id, &[&sale.seats[0], &sale.seats[1]]).await;
    assert!(o2["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "valid"));
    assert_eq!(&app.statuses(&sale.id).await[..2], &['S', 'S']);

    assert_eq!(gateway_refunded(&app, &order, 5000).await, 1);
    assert_eq!(charge_of(&app, &order).await["refunded"], true);
    eventually("the buyer is told", || async {
        emails(&app)
            .iter()
            .any(|m| m.contains(&order) && m.contains("refund of 50.00 EUR"))
    })
    .await;
    let mail = emails(&app);
    let told = mail
        .iter()
        .find(|m| m.contains(&order) && m.contains("refund of"))
        .unwrap();
    assert!(told.contains("void"), "{told}");
    // Analytics: the first sale counted back, the second counted.
    eventually("analytics counted the second sale", || async {
        sales(&app, &sale.id).await == (2, 5000)
    })
    .await;
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
}

/// A partial refund keeps the order paid and its tickets valid and its seats sold;
/// more than what is left is refused (422); the rest makes it refunded. The gateway
/// made exactly the two refunds, adding up to the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partial_refund_then_the_rest() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let (_, o) = paid_order(&app, &sale.id, &[&sale.seats[0], &sale.seats[1]]).await;
    let order = o["id"].as_str().unwrap().to_owned();

    let r = refund(
        &app,
        &app.admin,
        &order,
        json!({"amount": {"amount": 1000, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "paid");
    assert_eq!(r.body["refunded"]["amount"], 1000);
    assert!(r.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "valid"));
    assert_eq!(&app.statuses(&sale.id).await[..2], &['S', 'S']);

    let over = refund(
        &app,
        &app.admin,
        &order,
        json!({"amount": {"amount": 4001, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(over.status, 422, "{over:?}");
    assert_eq!(over.code(), "refund_exceeds_remaining");
    assert_eq!(over.body["error"]["remaining"]["amount"], 4000);
    // Another currency, nothing, a negative amount: refused, nothing moves.
    for bad in [
        json!({"amount": {"amount": 100, "currency": "USD"}}),
        json!({"amount": {"amount": 0, "currency": "EUR"}}),
        json!({"amount": {"amount": -5, "currency": "EUR"}}),
        json!({"amount": 100}),
    ] {
        let r = refund(&app, &app.admin, &order, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {r:?}");
        assert_eq!(r.code(), "invalid_request", "{bad}: {r:?}");
    }

    let rest = refund(&app, &app.admin, &order, json!({})).await;
    assert_eq!(rest.status, 200, "{rest:?}");
    assert_eq!(rest.body["status"], "refunded");
    assert_eq!(rest.body["refunded"]["amount"], 5000);
    assert_eq!(&app.statuses(&sale.id).await[..2], &['A', 'A']);
    assert_eq!(gateway_refunded(&app, &order, 5000).await, 2);
    // Nothing is left: a further partial refund is more than that.
    let more = refund(
        &app,
        &app.admin,
        &order,
        json!({"amount": {"amount": 1, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(more.status, 200, "{more:?}");
    assert_eq!(more.body["refunded"]["amount"], 5000);
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
}

/// Refunding twice, one after the other and then many at once: the same answer,
/// one refund at the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunding_twice_or_at_once_is_one_gateway_refund() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;

    let (_, o) = paid_order(&app, &sale.id, &[&sale.seats[0]]).await;
    let order = o["id"].as_str().unwrap().to_owned();
    let first = refund(&app, &app.admin, &order, json!({})).await;
    let second = refund(&app, &app.admin, &order, json!({})).await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (200, 200));
    assert_eq!(first.body["status"], "refunded");
    assert_eq!(first.body["refunded"], second.body["refunded"]);
    assert_eq!(first.body["status"], second.body["status"]);

    let (_, o) = paid_order(&app, &sale.id, &[&sale.seats[1], &sale.seats[2]]).await;
    let raced = o["id"].as_str().unwrap().to_owned();
    let answers =
        futures::future::join_all((0..8).map(|_| refund(&app, &app.admin, &raced, json!({}))))
            .await;
    for a in &answers {
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body["status"], "refunded");
        assert_eq!(a.body["refunded"]["amount"], 5000);
    }

    assert_eq!(gateway_refunded(&app, &order, 2500).await, 1);
    assert_eq!(gateway_refunded(&app, &raced, 5000).await, 1);
    // The worker may still be at work: once it is idle, still one each.
    app.app().settle().await;
    eventually("one email per refund", || async {
        emails(&app)
            .iter()
            .filter(|m| m.contains(&raced) && m.contains("refund of"))
            .count()
            == 1
    })
    .await;
    assert_eq!(charge_of(&app, &raced).await["refunds"], 1);
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
}

/// Who may refund, and what: only an admin (the buyer is 403); an order that is not
/// paid is 409 `order_not_paid`; an unknown one 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_paid_orders_and_only_admins() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let (buyer, o) = paid_order(&app, &sale.id, &[&sale.seats[0]]).await;
    let order = o["id"].as_str().unwrap().to_owned();
    let r = refund(&app, &buyer, &order, json!({})).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "forbidden");
    let stranger = app.customer().await;
    let r = refund(&app, &stranger, &order, json!({})).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = app
        .post(&format!("/v1/orders/{order}/refund"), None, json!({}))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = refund(
        &app,
        &app.admin,
        "ord_01arz3ndektsv4rrffq69g5fav",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");

    // Declined: failed, nothing was taken.
    let h = app.hold_seats(&buyer, &sale.id, &[&sale.seats[3]]).await;
    let hold = h.body["hold_id"].as_str().unwrap();
    let c = app
        .checkout(&buyer, hold, &format!("k-{hold}"), "tok_chargeDeclined")
        .await;
    let failed = c.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.final_order(&buyer, &failed).await["status"], "failed");
    let r = refund(&app, &app.admin, &failed, json!({})).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.code(), "order_not_paid");
    assert_eq!(r.body["error"]["status"], "failed");

    // Still being paid (a delayed method: it stays processing at the gateway).
    let h = app.hold_seats(&buyer, &sale.id, &[&sale.seats[4]]).await;
    let hold = h.body["hold_id"].as_str().unwrap();
    let c = app
        .checkout(&buyer, hold, &format!("k-{hold}"), "tok_processing")
        .await;
    let pending = c.body["order_id"].as_str().unwrap().to_owned();
    let r = refund(&app, &app.admin, &pending, json!({})).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.code(), "order_not_paid");
    assert_eq!(r.body["error"]["status"], "pending_payment");
    // The refused refunds changed nothing.
    let o = app.get(&format!("/v1/orders/{order}"), Some(&buyer)).await;
    assert_eq!(o.body["status"], "paid");
    assert_eq!(o.body["refunded"]["amount"], 0);
}

/// A refund racing fresh buyers who try to hold the refunded seats: some buyer may
/// get them (once the refund committed), nobody gets them twice, and whoever is
/// sold them is the only valid ticket holder. Engine and store agree at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_racing_new_holds_never_double_sells() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 8, 10, 300, 4).await;
    for round in 0..3 {
        let seats = [&sale.seats[2 * round], &sale.seats[2 * round + 1]];
        let (_, o) = paid_order(&app, &sale.id, &seats).await;
        let order = o["id"].as_str().unwrap().to_owned();
        let buyers: Vec<String> = futures::future::join_all((0..6).map(|_| app.customer())).await;
        let done = std::sync::atomic::AtomicBool::new(false);
        let grabs = futures::future::join_all(buyers.iter().map(|b| {
            let (app, done, event, seats) = (&app, &done, &sale.id, &seats);
            async move {
                // Each buyer keeps trying until an attempt started after the refund
                // was answered (its seats were on sale again by then) is refused.
                loop {
                    let after = done.load(std::sync::atomic::Ordering::SeqCst);
                    let r = app.hold_seats(b, event, seats).await;
                    if r.status == 201 {
                        return Some((b.clone(), r.body["hold_id"].as_str().unwrap().to_owned()));
                    }
                    assert_eq!(r.status, 409, "{r:?}");
                    if after {
                        return None;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }));
        let refunded = async {
            let r = refund(&app, &app.admin, &order, json!({})).await;
            assert_eq!(r.status, 200, "{r:?}");
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        let (grabs, ()) = tokio::join!(grabs, refunded);
        let winners: Vec<(String, String)> = grabs.into_iter().flatten().collect();
        assert_eq!(
            winners.len(),
            1,
            "exactly one buyer holds the seats: {winners:?}"
        );
        let (b, hold) = &winners[0];
        let c = app
            .checkout(b, hold, &format!("k-{hold}"), "tok_visa")
            .await;
        let o2 = app
            .final_order(b, c.body["order_id"].as_str().unwrap())
            .await;
        assert_eq!(o2["status"], "paid", "{o2}");
    }
    // Every seat on at most one valid ticket, and engine and store agree.
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
    let statuses = app.statuses(&sale.id).await;
    assert_eq!(&statuses[..6], &['S'; 6]);
    let charges = app.charges().await;
    let kept: BTreeSet<&str> = charges
        .iter()
        .filter(|c| c["outcome"] == "succeeded" && c["refunded"] == false)
        .map(|c| c["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept.len(),
        3,
        "three sales kept, three refunded: {charges:?}"
    );
}

/// A partial refund sent twice is two refunds (each request is a refund of its
/// own), so a client that retries one sends an `Idempotency-Key`: the same key
/// refunds once, however many times and however at once it comes, and answers the
/// order as it stands; the same key with another amount is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partial_refund_retried_under_its_idempotency_key_is_one_refund() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let (_, o) = paid_order(&app, &sale.id, &[&sale.seats[0], &sale.seats[1]]).await;
    let order = o["id"].as_str().unwrap().to_owned();
    let keyed = |key: &'static str, amount: i64| {
        let (app, order) = (&app, order.clone());
        async move {
            let res = app
                .client
                .post(app.url(&format!("/v1/orders/{order}/refund")))
                .bearer_auth(&app.admin)
                .header("Idempotency-Key", key)
                .json(&json!({"amount": {"amount": amount, "currency": "EUR"}}))
                .send()
                .await
                .expect("request sent");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Eight identical requests at once: one refund of 500.
    let answers = futures::future::join_all((0..8).map(|_| keyed("refund-1", 500))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["refunded"]["amount"], 500, "{body}");
        assert_eq!(body["status"], "paid", "{body}");
    }
    // Later, the same again: the same refund, the order as it stands.
    let (status, body) = keyed("refund-1", 500).await;
    assert_eq!((status, &body["refunded"]["amount"]), (200, &json!(500)));
    // The same key for another request: refused, nothing refunded.
    let (status, body) = keyed("refund-1", 700).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    // A bad key is a 422, not a refund.
    let (status, body) = keyed("has space", 100).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "Idempotency-Key", "{body}");

    // Without a key, two identical requests are two refunds (as documented).
    for _ in 0..2 {
        let r = refund(
            &app,
            &app.admin,
            &order,
            json!({"amount": {"amount": 500, "currency": "EUR"}}),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    // Another key: another refund, whose repeat is the same one.
    let (status, body) = keyed("refund-2", 1000).await;
    assert_eq!((status, &body["refunded"]["amount"]), (200, &json!(2500)));
    let (status, body) = keyed("refund-2", 1000).await;
    assert_eq!((status, &body["refunded"]["amount"]), (200, &json!(2500)));

    // The gateway made exactly four refunds: 500 (keyed), 500, 500, 1000.
    assert_eq!(gateway_refunded(&app, &order, 2500).await, 4);
}
