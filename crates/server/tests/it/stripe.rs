//! Stripe's PaymentIntents protocol end to end against the test gateway: 3-D Secure,
//! a payment that stays processing, signed webhooks through forgeries, stale
//! timestamps, duplicates, delays and reordering, and the circuit breaker.
//!
//! Most tests run on a clock that never moves and a reconciler that never runs, so
//! no retry and no reconciler pass is ever due: what settles an order there can only
//! be the API answer or a webhook.

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use boxoffice_server::Config;
use serde_json::Value;
use std::sync::Arc;

fn frozen() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()))
}

fn quiet(c: &mut Config) {
    c.reconcile_interval_ms = 3_600_000;
    c.payment_hold_seconds = 100;
}

async fn webhooks_queued(app: &TestApp) -> i64 {
    gateway(app, reqwest::Method::GET, "/v1/test_helpers/webhooks", &[]).await["queued"]
        .as_i64()
        .unwrap()
}

/// Holds one seat and checks it out with `token`; returns (hold, order).
async fn buy(app: &TestApp, buyer: &str, event: &str, seat: &String, token: &str) -> String {
    let h = app.hold_seats(buyer, event, &[seat]).await;
    assert_eq!(h.status, 201, "{h:?}");
    let hold = h.body["hold_id"].as_str().unwrap();
    let c = app.checkout(buyer, hold, &format!("k-{hold}"), token).await;
    assert_eq!(c.status, 202, "{c:?}");
    c.body["order_id"].as_str().unwrap().to_owned()
}

fn succeeded_charges(charges: &[Value], order: &str) -> usize {
    charges
        .iter()
        .filter(|c| c["order_id"] == order && c["outcome"] == "succeeded" && c["refunded"] == false)
        .count()
}

/// A card that needs 3-D Secure: the order waits and its answer says what the buyer
/// must do; the buyer authenticates on the gateway's page and never comes back, and
/// the webhook alone makes the order paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_d_secure_waits_for_the_buyer_and_the_webhook_fulfils_the_order() {
    let app = TestApp::spawn_with_clock(quiet, frozen()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    let order = buy(
        &app,
        &buyer,
        &sale.id,
        &sale.seats[0],
        "tok_threeDSecure2Required",
    )
    .await;

    let o = app
        .get(&format!("/v1/orders/{order}?wait=30"), Some(&buyer))
        .await
        .body;
    assert_eq!(o["status"], "pending_payment", "{o}");
    assert_eq!(o["next_action"]["type"], "use_stripe_sdk", "{o}");
    let page = o["next_action"]["url"]
        .as_str()
        .expect("a page to send the buyer to");
    assert!(o["next_action"]["client_secret"].is_string(), "{o}");
    assert_eq!(app.statuses(&sale.id).await[0], 'H');

    // The buyer authenticates at the bank, and is gone.
    let r = app.client.get(page).send().await.unwrap();
    assert!(r.status().is_success());
    let o = app.final_order(&app.admin, &order).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert!(o.get("next_action").is_none(), "{o}");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(app.statuses(&sale.id).await[0], 'S');
    assert_eq!(succeeded_charges(&app.charges().await, &order), 1);
}

/// A buyer who fails 3-D Secure: the webhook fails the order with the gateway's
/// reason and the hold is theirs again for another card.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_three_d_secure_fails_the_order_and_gives_the_hold_back() {
    let app = TestApp::spawn_with_clock(quiet, frozen()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    let order = buy(
        &app,
        &buyer,
        &sale.id,
        &sale.seats[0],
        "tok_threeDSecure2Required",
    )
    .await;
    let o = app
        .get(&format!("/v1/orders/{order}?wait=30"), Some(&buyer))
        .await
        .body;
    let page = format!("{}?outcome=fail", o["next_action"]["url"].as_str().unwrap());
    assert!(app
        .client
        .get(page)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let o = app.final_order(&buyer, &order).await;
    assert_eq!(
        (o["status"].as_str(), o["failure_code"].as_str()),
        (
            Some("failed"),
            Some("payment_intent_authentication_failure")
        ),
        "{o}"
    );
    let hold = app
        .get(
            &format!("/v1/holds/{}", o["hold_id"].as_str().unwrap()),
            Some(&buyer),
        )
        .await;
    assert_eq!(hold.body["status"], "active", "{hold:?}");
    assert_eq!(succeeded_charges(&app.charges().await, &order), 0);
}

/// A payment that stays `processing` (a delayed method): the order waits with its
/// seat held and nothing for the buyer to do, until the settlement's webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_processing_payment_waits_until_its_settlement_webhook() {
    let app = TestApp::spawn_with_clock(quiet, frozen()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    let order = buy(&app, &buyer, &sale.id, &sale.seats[0], "tok_processing").await;
    eventually("the payment is processing at the gateway", || async {
        intents_of(&app, &order)
            .await
            .first()
            .is_some_and(|pi| pi["status"] == "processing")
    })
    .await;
    let o = app
        .get(&format!("/v1/orders/{order}"), Some(&buyer))
        .await
        .body;
    assert_eq!(o["status"], "pending_payment", "{o}");
    assert!(
        o.get("next_action").is_none(),
        "nothing for the buyer to do: {o}"
    );
    assert_eq!(app.statuses(&sale.id).await[0], 'H');

    let pi = intents_of(&app, &order).await[0]["id"]
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
    let o = app.final_order(&buyer, &order).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(app.statuses(&sale.id).await[0], 'S');
}

/// Webhooks that are not provably from the gateway, or not fresh, are refused with
/// a machine-readable code and change nothing; a forged "succeeded" for a real
/// waiting order does not fulfil it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_with_a_bad_signature_or_an_old_timestamp_are_refused() {
    let clock = frozen();
    let app = TestApp::spawn_with_clock(quiet, clock.clone()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    let order = buy(
        &app,
        &buyer,
        &sale.id,
        &sale.seats[0],
        "tok_threeDSecure2Required",
    )
    .await;
    let o = app
        .get(&format!("/v1/orders/{order}?wait=30"), Some(&buyer))
        .await
        .body;
    assert!(o["next_action"].is_object(), "{o}");
    let pi = intents_of(&app, &order).await[0].clone();
    let mut forged = pi.clone();
    forged["status"] = "succeeded".into();
    let body = serde_json::json!({
        "id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": forged},
    })
    .to_string();
    let now = clock_now(&clock);
    let post = |sig: Option<String>, body: String| {
        let mut r = app
            .client
            .post(app.url("/v1/payments/stripe/webhook"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            r = r.header("stripe-signature", s);
        }
        async move {
            let r = r.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let code = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_owned());

    let r = post(None, body.clone()).await;
    assert_eq!(code(&r), (400, "signature_missing".into()), "{r:?}");
    let wrong = boxoffice_payments::webhook_signature("whsec_not_ours", now, &body);
    let r = post(Some(wrong), body.clone()).await;
    assert_eq!(code(&r), (400, "signature_invalid".into()), "{r:?}");
    let tampered = boxoffice_payments::webhook_signature(WEBHOOK_SECRET, now, &body);
    let r = post(Some(tampered), body.replace("evt_forged", "evt_forgex")).await;
    assert_eq!(code(&r), (400, "signature_invalid".into()), "{r:?}");
    let stale = boxoffice_payments::webhook_signature(WEBHOOK_SECRET, now - 301, &body);
    let r = post(Some(stale), body.clone()).await;
    assert_eq!(code(&r), (400, "signature_expired".into()), "{r:?}");
    let garbage = boxoffice_payments::webhook_signature(WEBHOOK_SECRET, now, "not json");
    let r = post(Some(garbage), "not json".into()).await;
    assert_eq!(r.0, 422, "{r:?}");

    let o = app
        .get(&format!("/v1/orders/{order}"), Some(&buyer))
        .await
        .body;
    assert_eq!(
        o["status"], "pending_payment",
        "refused webhooks changed nothing: {o}"
    );

    // Even a genuinely signed event is only a nudge: the gateway says the payment
    // still waits for the buyer, so the order waits too.
    let signed = boxoffice_payments::webhook_signature(WEBHOOK_SECRET, now, &body);
    let r = post(Some(signed), body.clone()).await;
    assert_eq!(r.0, 200, "{r:?}");
    let o = app
        .get(&format!("/v1/orders/{order}"), Some(&buyer))
        .await
        .body;
    assert_eq!(
        o["status"], "pending_payment",
        "the event's own status is not trusted: {o}"
    );
    assert_eq!(succeeded_charges(&app.charges().await, &order), 0);
}

fn clock_now(clock: &ManualClock) -> i64 {
    boxoffice_ports::Clock::now(clock).unix_timestamp()
}

/// Webhooks held back (delayed), then delivered newest first (out of order) and
/// each twice (duplicated): a 3-D Secure order that succeeded and a declined one
/// end exactly as the gateway says, with one charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_delayed_and_reordered_webhooks_are_harmless() {
    let app = TestApp::spawn_with_clock(quiet, frozen()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let (ann, bob) = (app.customer().await, app.customer().await);
    app.gateway_faults(&[
        ("webhooks_hold", "true"),
        ("webhooks_duplicate", "true"),
        ("webhooks_reverse", "true"),
    ])
    .await;
    let paid = buy(
        &app,
        &ann,
        &sale.id,
        &sale.seats[0],
        "tok_threeDSecure2Required",
    )
    .await;
    let o = app
        .get(&format!("/v1/orders/{paid}?wait=30"), Some(&ann))
        .await
        .body;
    let page = o["next_action"]["url"].as_str().unwrap().to_owned();
    assert!(app
        .client
        .get(page)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let declined = buy(&app, &bob, &sale.id, &sale.seats[1], "tok_chargeDeclined").await;
    let d = app.final_order(&bob, &declined).await;
    assert_eq!(d["failure_code"], "card_declined");
    let o = app
        .get(&format!("/v1/orders/{paid}"), Some(&ann))
        .await
        .body;
    assert_eq!(
        o["status"], "pending_payment",
        "held webhooks: nothing settled it yet"
    );
    assert_eq!(
        webhooks_queued(&app).await,
        3,
        "requires_action, succeeded, payment_failed"
    );

    app.gateway_faults(&[("webhooks_hold", "false")]).await;
    eventually("every webhook delivered", || async {
        webhooks_queued(&app).await == 0
    })
    .await;
    let o = app.final_order(&ann, &paid).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 1);
    let d = app
        .get(&format!("/v1/orders/{declined}"), Some(&bob))
        .await
        .body;
    assert_eq!(
        (d["status"].as_str(), d["tickets"].as_array().unwrap().len()),
        (Some("failed"), 0)
    );
    let charges = app.charges().await;
    assert_eq!(succeeded_charges(&charges, &paid), 1);
    assert_eq!(succeeded_charges(&charges, &declined), 0);
    assert_eq!(&app.statuses(&sale.id).await[..2], &['S', 'H']);
}

/// The gateway's answer to the payment call never arrives (committed, then the
/// connection drops), and the clock never moves so no retry is ever due: the
/// webhook, which came first, fulfils the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_before_the_api_answer_fulfils_the_order() {
    let app = TestApp::spawn_with_clock(quiet, frozen()).await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    app.gateway_faults(&[("lose_answers", "true")]).await;
    let order = buy(&app, &buyer, &sale.id, &sale.seats[0], "tok_visa").await;
    let o = app.final_order(&buyer, &order).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 1);
    app.gateway_faults(&[("lose_answers", "false")]).await;
    assert_eq!(succeeded_charges(&app.charges().await, &order), 1);
}

/// The gateway is down and the breaker opens: checkouts are still accepted and wait
/// with their seats held, `/ready` says degraded (not down), `/metrics` shows the
/// breaker; at the give-up point the order is asked about once more and, still
/// unreachable, waits as payment_unknown; when the gateway is back the reconciler
/// pays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_breaker_is_open_checkouts_wait_and_ready_says_degraded() {
    let clock = frozen();
    let app = TestApp::spawn_with_clock(
        |c| {
            quiet(c);
            // Pending orders idle for 80 s are the reconciler's: the test runs its
            // pass itself once the clock has moved (a queue's retry delay is real
            // time with NATS, so it is not what the test waits for).
            c.reconcile_interval_ms = 20_000;
            c.gateway_breaker_threshold = 1;
            // Open for the whole test: no probe goes out on its own.
            c.gateway_breaker_cooldown_ms = 3_600_000;
        },
        clock.clone(),
    )
    .await;
    let sale = app.sale(1, 4, 10, 60, 4).await;
    let buyer = app.customer().await;
    assert_eq!(app.get("/ready", None).await.body["status"], "ready");
    app.gateway_faults(&[("unavailable", "true")]).await;
    let first = buy(&app, &buyer, &sale.id, &sale.seats[0], "tok_visa").await;
    eventually("the breaker opened", || async {
        app.get("/ready", None).await.body["status"] == "degraded"
    })
    .await;
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status, 200, "degraded, not down: {ready:?}");
    assert_eq!(ready.body["gateway"], "circuit_open");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("boxoffice_gateway_circuit_open"),
        "{metrics}"
    );

    // Accepted while open, and waiting with its seat held.
    let second = buy(&app, &buyer, &sale.id, &sale.seats[1], "tok_visa").await;
    for order in [&first, &second] {
        let o = app
            .get(&format!("/v1/orders/{order}"), Some(&buyer))
            .await
            .body;
        assert_eq!(o["status"], "pending_payment", "{o}");
    }
    assert_eq!(&app.statuses(&sale.id).await[..2], &['H', 'H']);

    // The give-up point (90 s of a 100 s payment hold): asked once more, no answer.
    clock.advance(time::Duration::seconds(95));
    let pass = app.app().reconcile().await.unwrap();
    assert_eq!((pass.settled, pass.unknown), (0, 2), "{pass:?}");
    for order in [&first, &second] {
        let o = app.final_order(&buyer, order).await;
        assert_eq!(o["status"], "payment_unknown", "never failed unasked: {o}");
    }
    assert_eq!(&app.statuses(&sale.id).await[..2], &['H', 'H']);

    app.gateway_faults(&[("unavailable", "false")]).await;
    let pass = app.app().reconcile().await.unwrap();
    assert_eq!(pass.unknown, 0, "{pass:?}");
    for order in [&first, &second] {
        let o = app.final_order(&buyer, order).await;
        assert_eq!(o["status"], "paid", "{o}");
    }
    assert_eq!(app.get("/ready", None).await.body["status"], "ready");
    let charges = app.charges().await;
    assert_eq!(
        succeeded_charges(&charges, &first) + succeeded_charges(&charges, &second),
        2
    );
}

/// Everything that settles a payment, at once: payment workers whose charges take a
/// while, duplicated webhooks, 3-D Secure completed by the buyers meanwhile, and the
/// reconciler passing every few milliseconds (on every order idle for a second).
/// Each order ends paid exactly once, on exactly one charge, with its ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_webhooks_and_reconciler_racing_settle_each_order_once() {
    const N: usize = 24;
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            // Calls outlast the reconciler's idle second: it replays keys whose
            // first call is still in flight, as well as intents awaiting buyers.
            c.gateway_latency_ms = 4000;
            c.reconcile_interval_ms = 10;
            c.job_lease_ms = 1000;
        })
        .await,
    );
    app.gateway_faults(&[("webhooks_duplicate", "true")]).await;
    let sale = app.sale(2, 20, 10, 300, 4).await;
    let buyer = app.customer().await;
    let mut orders = Vec::new();
    for i in 0..N {
        let token = if i % 2 == 0 {
            "tok_visa"
        } else {
            "tok_threeDSecure2Required"
        };
        orders.push((
            buy(&app, &buyer, &sale.id, &sale.seats[i], token).await,
            token,
        ));
    }
    // The buyers who must authenticate do so as soon as they are told to (one
    // account, so at most the node's 8 long-polls per customer wait at once).
    use futures::StreamExt;
    let authenticated: Vec<bool> = futures::stream::iter(
        orders
            .iter()
            .filter(|(_, t)| *t == "tok_threeDSecure2Required")
            .map(|(order, _)| {
                let (app, buyer, order) = (app.clone(), buyer.clone(), order.clone());
                async move {
                    let o = app
                        .get(&format!("/v1/orders/{order}?wait=30"), Some(&buyer))
                        .await
                        .body;
                    let page = o["next_action"]["url"]
                        .as_str()
                        .expect("a next action")
                        .to_owned();
                    app.client
                        .get(page)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .is_success()
                }
            }),
    )
    .buffer_unordered(8)
    .collect()
    .await;
    assert!(authenticated.iter().all(|&ok| ok));
    let charges_before_audit = {
        let mut out = Vec::new();
        for (order, _) in &orders {
            let o = app.final_order(&buyer, order).await;
            assert_eq!(o["status"], "paid", "{o}");
            assert_eq!(o["tickets"].as_array().unwrap().len(), 1, "{o}");
            out.push(order.clone());
        }
        out
    };
    let charges = app.charges().await;
    for order in &charges_before_audit {
        assert_eq!(
            succeeded_charges(&charges, order),
            1,
            "one charge for {order}"
        );
    }
    assert!(app.statuses(&sale.id).await[..N].iter().all(|&c| c == 'S'));
}
