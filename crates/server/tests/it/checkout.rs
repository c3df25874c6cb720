//! Checkout over HTTP: payment through the test gateway, declines, idempotency,
//! transient errors, expiry.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

async fn held(app: &TestApp, sale: &Sale, buyer: &str, seats: &[usize]) -> String {
    let ids: Vec<&String> = seats.iter().map(|&i| &sale.seats[i]).collect();
    let r = app.hold_seats(buyer, &sale.id, &ids).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["hold_id"].as_str().unwrap().to_owned()
}

fn order_id(r: &Res) -> String {
    r.body["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_paid_checkout_issues_tickets_and_sells_the_seats() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let buyer = app.customer().await;
    let hold = held(&app, &sale, &buyer, &[1, 2]).await;

    let r = app.checkout(&buyer, &hold, "key-1", "tok_visa").await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["status"], "pending_payment");
    let order = order_id(&r);
    assert_eq!(
        r.headers["location"],
        format!("/v1/orders/{order}").as_str()
    );

    let o = app.final_order(&buyer, &order).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["total"], json!({"amount": 5000, "currency": "EUR"}));
    let tickets = o["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    let seats: BTreeSet<&str> = tickets
        .iter()
        .map(|t| t["seat_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        seats,
        BTreeSet::from([sale.seats[1].as_str(), sale.seats[2].as_str()])
    );
    let codes: BTreeSet<&str> = tickets
        .iter()
        .map(|t| t["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.iter().all(|c| c.len() >= 20));

    assert_eq!(&app.statuses(&sale.id).await[..4], ['A', 'S', 'S', 'A']);
    assert_eq!(
        app.get(&format!("/v1/holds/{hold}"), Some(&buyer))
            .await
            .body["status"],
        "converted"
    );
    // A sold hold cannot be released or checked out again.
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&buyer))
            .await
            .code(),
        "hold_converted"
    );
    assert_eq!(
        app.checkout(&buyer, &hold, "key-2", "tok_visa")
            .await
            .status,
        409
    );

    let mine = app.get("/v1/me/orders", Some(&buyer)).await;
    assert_eq!(mine.body["orders"][0]["id"], order.as_str());
    let other = app.customer().await;
    assert_eq!(
        app.get(&format!("/v1/orders/{order}"), Some(&other))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/v1/orders/{order}"), Some(&app.admin))
            .await
            .status,
        200
    );

    let charges = app.charges().await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["order_id"], order.as_str());
    assert_eq!(charges[0]["idempotency_key"], order.as_str());
    assert_eq!(charges[0]["amount"]["amount"], 5000);
    assert_eq!(charges[0]["outcome"], "succeeded");

    // The workers downstream of order.paid: analytics counted it, and the tickets
    // were emailed. Both run after the order is paid; wait for them to show.
    let sales = wait_for(|| async {
        let s = app
            .get(
                &format!("/v1/admin/events/{}/sales", sale.id),
                Some(&app.admin),
            )
            .await
            .body;
        (s["tickets_sold"] == 2).then_some(s)
    })
    .await;
    assert_eq!(sales["revenue"], 5000);
    let mail =
        wait_for(|| async { read_mail(&app).into_iter().find(|m| m.contains(&order)) }).await;
    // A signed code (157 characters) is longer than a mail line: the body is
    // quoted-printable, its soft line breaks (`=` at a line's end) go.
    let mail = mail.replace("=\r\n", "").replace("=\n", "");
    for c in &codes {
        assert!(mail.contains(c), "the email lists ticket {c}");
    }
}

/// Polls `probe` until it yields, for work done by a background worker after the
/// answer the test already has (there is nothing else to wait on).
async fn wait_for<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the worker never did it");
}

fn read_mail(app: &TestApp) -> Vec<String> {
    let dir = app.data_dir.path().join("mail");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_declined_card_keeps_the_hold_for_another_try() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    let hold = held(&app, &sale, &buyer, &[0]).await;
    let before = app
        .get(&format!("/v1/holds/{hold}"), Some(&buyer))
        .await
        .body;

    let r = app
        .checkout(&buyer, &hold, "first", "tok_chargeDeclined")
        .await;
    assert_eq!(r.status, 202);
    let failed = app.final_order(&buyer, &order_id(&r)).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure_code"], "card_declined");
    assert_eq!(failed["tickets"], json!([]));

    // The hold is the buyer's again, with its original deadline; the seat stays held.
    let after = app
        .get(&format!("/v1/holds/{hold}"), Some(&buyer))
        .await
        .body;
    assert_eq!(after["status"], "active");
    assert_eq!(after["expires_at"], before["expires_at"]);
    assert_eq!(app.statuses(&sale.id).await[0], 'H');
    let rival = app.customer().await;
    assert_eq!(
        app.hold_seats(&rival, &sale.id, &[&sale.seats[0]])
            .await
            .status,
        409
    );

    // The same key with another card is a different request: refused.
    let reused = app.checkout(&buyer, &hold, "first", "tok_visa").await;
    assert_eq!(
        (reused.status.as_u16(), reused.code()),
        (422, "idempotency_key_reused")
    );
    // A new key with a good card pays.
    let r = app.checkout(&buyer, &hold, "second", "tok_visa").await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        app.final_order(&buyer, &order_id(&r)).await["status"],
        "paid"
    );
    assert_eq!(app.statuses(&sale.id).await[0], 'S');

    let outcomes: Vec<Value> = app
        .charges()
        .await
        .iter()
        .map(|c| c["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("declined"), json!("succeeded")]);

    let hold2 = held(&app, &sale, &buyer, &[2]).await;
    let r = app
        .checkout(
            &buyer,
            &hold2,
            "third",
            "tok_chargeDeclinedInsufficientFunds",
        )
        .await;
    assert_eq!(
        app.final_order(&buyer, &order_id(&r)).await["failure_code"],
        "insufficient_funds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_identical_checkouts_make_one_order_and_one_charge() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    let hold = held(&app, &sale, &buyer, &[0, 1]).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, buyer, hold) = (app.clone(), buyer.clone(), hold.clone());
            tokio::spawn(async move { app.checkout(&buyer, &hold, "same-key", "tok_visa").await })
        })
        .collect();
    let answers: Vec<Res> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let orders: BTreeSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{r:?}");
            order_id(r)
        })
        .collect();
    assert_eq!(orders.len(), 1, "one order for one key");
    let order = orders.into_iter().next().unwrap();
    assert_eq!(app.final_order(&buyer, &order).await["status"], "paid");
    assert_eq!(
        app.get("/v1/me/orders", Some(&buyer)).await.body["orders"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A late replay still answers the same.
    assert_eq!(
        order_id(&app.checkout(&buyer, &hold, "same-key", "tok_visa").await),
        order
    );
    let charges = app.charges().await;
    assert_eq!(charges.len(), 1, "{charges:?}");
}

#[tokio::test]
async fn transient_gateway_errors_are_retried_to_success() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    let hold = held(&app, &sale, &buyer, &[3]).await;
    let r = app
        .checkout(&buyer, &hold, "k", "tok_processingError")
        .await;
    let o = app.final_order(&buyer, &order_id(&r)).await;
    assert_eq!(o["status"], "paid", "{o}");
    let charges = app.charges().await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["outcome"], "succeeded");
}

#[tokio::test]
async fn a_flaky_gateway_still_charges_each_order_once() {
    // A third of the calls fail; the breaker is out of the way (its own tests are
    // in resilience.rs): this is about charging once, not about waiting.
    let app = TestApp::spawn_with(|c| {
        c.gateway_failure_rate = 0.3;
        c.gateway_breaker_threshold = 1000;
    })
    .await;
    let sale = app.sale(2, 5, 10, 300, 4).await;
    let buyer = app.customer().await;
    let mut orders = Vec::new();
    for i in 0..8 {
        let hold = held(&app, &sale, &buyer, &[i]).await;
        orders.push(order_id(
            &app.checkout(&buyer, &hold, &format!("k{i}"), "tok_visa")
                .await,
        ));
    }
    for o in &orders {
        assert_eq!(app.final_order(&buyer, o).await["status"], "paid");
    }
    let charged: Vec<String> = app
        .charges()
        .await
        .iter()
        .map(|c| c["order_id"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<&String> = charged.iter().collect();
    assert_eq!(charged.len(), 8, "{charged:?}");
    assert_eq!(unique.len(), 8);
}

#[tokio::test]
async fn checkout_refusals() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 1, 4).await;
    let buyer = app.customer().await;
    let hold = held(&app, &sale, &buyer, &[0]).await;
    let url = app.url(&format!("/v1/holds/{hold}/checkout"));
    let good = json!({"email": "a@b.c", "payment": {"token": "tok_visa"}});

    let r = app
        .client
        .post(&url)
        .bearer_auth(&buyer)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_missing"
    );
    for bad in [
        json!({"email": "nope", "payment": {"token": "tok_visa"}}),
        json!({"email": "a@b.c"}),
        json!({"email": "a@b.c", "payment": {"token": ""}}),
    ] {
        let r = app
            .client
            .post(&url)
            .bearer_auth(&buyer)
            .header("Idempotency-Key", "x")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
    }
    let other = app.customer().await;
    assert_eq!(
        app.checkout(&other, &hold, "k", "tok_visa").await.status,
        404
    );
    assert_eq!(
        app.checkout(&buyer, "hld_01arz3ndektsv4rrffq69g5fav", "k", "tok_visa")
            .await
            .status,
        404
    );

    // Released, and expired: 410.
    let released = held(&app, &sale, &buyer, &[1]).await;
    assert_eq!(
        app.delete(&format!("/v1/holds/{released}"), Some(&buyer))
            .await
            .status,
        204
    );
    let r = app.checkout(&buyer, &released, "k1", "tok_visa").await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "hold_expired"));
    let expiring = app.hold_seats(&buyer, &sale.id, &[&sale.seats[2]]).await;
    let deadline = time::OffsetDateTime::parse(
        expiring.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = deadline - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(5);
    tokio::time::sleep(left.unsigned_abs()).await;
    let r = app
        .checkout(
            &buyer,
            expiring.body["hold_id"].as_str().unwrap(),
            "k2",
            "tok_visa",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "hold_expired"));
    let r = app
        .get(
            "/v1/orders/ord_01arz3ndektsv4rrffq69g5fav?wait=x",
            Some(&buyer),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn general_admission_checkout() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 2, 5, 300, 4).await;
    let buyer = app.customer().await;
    let r = app
        .post(
            &format!("/v1/events/{}/holds", sale.id),
            Some(&buyer),
            json!({"tier_id": sale.ga_tier, "quantity": 3}),
        )
        .await;
    let hold = r.body["hold_id"].as_str().unwrap();
    let o = app
        .final_order(
            &buyer,
            &order_id(&app.checkout(&buyer, hold, "ga", "tok_visa").await),
        )
        .await;
    assert_eq!(o["status"], "paid");
    let tickets = o["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 3);
    assert!(tickets
        .iter()
        .all(|t| t["seat_id"].is_null() && t["tier_id"] == sale.ga_tier.as_str()));
    assert_eq!(app.seat_map(&sale.id).await["ga"][0]["remaining"], 2);
}

/// A buyer releases a hold while checking it out (two tabs): exactly one wins, and
/// the seat ends consistent with the winner — sold if the checkout won, available if
/// the release did — never released-and-charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_racing_release_has_one_winner() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(4, 10, 10, 300, 4).await;
    let buyer = app.customer().await;
    let mut holds = Vec::new();
    for i in 0..40 {
        holds.push(held(&app, &sale, &buyer, &[i]).await);
    }
    let tasks: Vec<_> = holds
        .iter()
        .enumerate()
        .map(|(i, hold)| {
            let (app, buyer, hold) = (app.clone(), buyer.clone(), hold.clone());
            tokio::spawn(async move {
                let (path, key) = (format!("/v1/holds/{hold}"), format!("race-{i}"));
                let release = app.delete(&path, Some(&buyer));
                let checkout = app.checkout(&buyer, &hold, &key, "tok_visa");
                let (r, c) = tokio::join!(release, checkout);
                (i, r, c)
            })
        })
        .collect();
    let statuses_after = |app: Arc<TestApp>| async move { app.statuses(&sale.id).await };
    let mut outcomes = Vec::new();
    for t in tasks {
        let (i, release, checkout) = t.await.unwrap();
        let released = release.status == 204;
        let checked_out = checkout.status == 202;
        assert!(
            released != checked_out,
            "seat {i}: release {:?} / checkout {:?}",
            release.status,
            checkout.status
        );
        if released {
            assert_eq!(
                (checkout.status.as_u16(), checkout.code()),
                (410, "hold_expired")
            );
        } else {
            assert_eq!(
                (release.status.as_u16(), release.code()),
                (409, "hold_converted")
            );
            let o = app
                .final_order(&buyer, checkout.body["order_id"].as_str().unwrap())
                .await;
            assert_eq!(o["status"], "paid");
        }
        outcomes.push((i, released));
    }
    let statuses = statuses_after(app.clone()).await;
    for (i, released) in outcomes {
        assert_eq!(statuses[i], if released { 'A' } else { 'S' }, "seat {i}");
    }
    eprintln!(
        "race: {} released, {} checked out",
        statuses.iter().take(40).filter(|&&c| c == 'A').count(),
        statuses.iter().filter(|&&c| c == 'S').count()
    );
    let paid = app.charges().await.len();
    let sold = statuses.iter().filter(|&&c| c == 'S').count();
    assert_eq!(paid, sold, "one charge per sold seat");
}

/// A long-poll answers the same order however it ends: at its deadline while the
/// payment still waits (the status alone is read again then) it equals a plain read,
/// and woken by the payment's outcome it equals a read made after.
#[tokio::test]
async fn a_long_poll_answers_the_same_order_at_its_deadline_and_when_woken() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let buyer = app.customer().await;
    // The gateway answers 503 for now: the payment retries and the order waits.
    app.gateway_faults(&[("unavailable", "true")]).await;
    let hold = held(&app, &sale, &buyer, &[1, 2]).await;
    let r = app.checkout(&buyer, &hold, "key-1", "tok_visa").await;
    assert_eq!(r.status, 202, "{r:?}");
    let order = order_id(&r);

    let waited = app
        .get(&format!("/v1/orders/{order}?wait=1"), Some(&buyer))
        .await;
    let plain = app.get(&format!("/v1/orders/{order}"), Some(&buyer)).await;
    assert_eq!(waited.status, 200, "{waited:?}");
    assert_eq!(waited.body["status"], "pending_payment", "{waited:?}");
    assert_eq!(waited.body, plain.body);

    let poll = {
        let (app, buyer, order) = (app.clone(), buyer.clone(), order.clone());
        tokio::spawn(async move {
            app.get(&format!("/v1/orders/{order}?wait=30"), Some(&buyer))
                .await
        })
    };
    app.gateway_faults(&[("unavailable", "false")]).await;
    let woken = poll.await.unwrap();
    let after = app.get(&format!("/v1/orders/{order}"), Some(&buyer)).await;
    assert_eq!(woken.body["status"], "paid", "{woken:?}");
    assert_eq!(woken.body, after.body);
}
