//! Holds over HTTP: create, read, release, expiry.

use crate::helpers::*;
use boxoffice_ports::{Clock, ManualClock};
use serde_json::json;
use std::sync::Arc;
use time::OffsetDateTime;

#[tokio::test]
async fn hold_read_release() {
    let app = TestApp::spawn().await;
    let sale = app.sale(2, 5, 50, 300, 4).await;
    let ann = app.customer().await;
    let bob = app.customer().await;

    let r = app
        .hold_seats(&ann, &sale.id, &[&sale.seats[2], &sale.seats[3]])
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let hold = r.body["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["seats"], json!([sale.seats[2], sale.seats[3]]));
    assert_eq!(r.body["total"], json!({"amount": 5000, "currency": "EUR"}));
    let expires = OffsetDateTime::parse(
        r.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = expires - OffsetDateTime::now_utc();
    assert!(
        ttl > time::Duration::seconds(290) && ttl <= time::Duration::seconds(300),
        "{ttl}"
    );

    let got = app.get(&format!("/v1/holds/{hold}"), Some(&ann)).await;
    assert_eq!(got.body["status"], "active");
    assert_eq!(got.body["hold_id"], hold.as_str());
    assert_eq!(got.body["seats"], r.body["seats"]);
    assert_eq!(
        &app.statuses(&sale.id).await[..5],
        ['A', 'A', 'H', 'H', 'A']
    );

    // Another customer cannot see or release it; the admin can see it.
    assert_eq!(
        app.get(&format!("/v1/holds/{hold}"), Some(&bob))
            .await
            .status,
        404
    );
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&bob))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/v1/holds/{hold}"), Some(&app.admin))
            .await
            .status,
        200
    );

    // Bob is refused the overlapping seats, and told which ones.
    let r = app
        .hold_seats(&bob, &sale.id, &[&sale.seats[1], &sale.seats[3]])
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "seats_unavailable"));
    assert_eq!(r.body["error"]["seats"], json!([sale.seats[3]]));

    // Released: available at once, for Bob.
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&ann))
            .await
            .status,
        204
    );
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&ann))
            .await
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/v1/holds/{hold}"), Some(&ann)).await.body["status"],
        "released"
    );
    assert_eq!(
        &app.statuses(&sale.id).await[..5],
        ['A', 'A', 'A', 'A', 'A']
    );
    let r = app
        .hold_seats(&bob, &sale.id, &[&sale.seats[1], &sale.seats[3]])
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn ga_holds_count_down_capacity() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 2, 5, 300, 4).await;
    let ann = app.customer().await;
    let path = format!("/v1/events/{}/holds", sale.id);
    let r = app
        .post(
            &path,
            Some(&ann),
            json!({"tier_id": sale.ga_tier, "quantity": 4}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["quantity"], 4);
    assert_eq!(r.body["seats"], json!([]));
    assert_eq!(r.body["total"]["amount"], 4000);
    let r2 = app
        .post(
            &path,
            Some(&ann),
            json!({"tier_id": sale.ga_tier, "quantity": 2}),
        )
        .await;
    assert_eq!((r2.status.as_u16(), r2.code()), (409, "sold_out"));
    assert_eq!(app.seat_map(&sale.id).await["ga"][0]["remaining"], 1);
    let hold = r.body["hold_id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&ann))
            .await
            .status,
        204
    );
    assert_eq!(app.seat_map(&sale.id).await["ga"][0]["remaining"], 5);
}

fn deadline(body: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// A clock of its own, starting now, for a test that moves time by hand.
fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::now_utc()))
}

/// The sweeper never runs after its first tick (at start, with nothing to expire):
/// whatever expires here expires lazily, by the engine and the store themselves.
fn no_sweeper(c: &mut boxoffice_server::Config) {
    c.sweep_interval_ms = 24 * 3600 * 1000;
}

/// Holds expire at their deadline with no sweeper's help: time moves on the manual
/// clock only, the sweeper is off, and every read right after the deadline must
/// already see the hold gone (broken lazy expiry in the engine or the store fails
/// this; a sweeper every 50 ms used to hide it).
#[tokio::test]
async fn holds_expire_by_themselves() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(no_sweeper, clock.clone()).await;
    let sale = app.sale(1, 4, 3, 60, 4).await;
    let ann = app.customer().await;
    let bob = app.customer().await;
    let seat = app
        .hold_seats(&ann, &sale.id, &[&sale.seats[0], &sale.seats[1]])
        .await;
    assert_eq!(seat.status, 201);
    let ga = app
        .post(
            &format!("/v1/events/{}/holds", sale.id),
            Some(&ann),
            json!({"tier_id": sale.ga_tier, "quantity": 3}),
        )
        .await;
    assert_eq!(ga.status, 201);
    assert_eq!(
        deadline(&seat.body),
        clock.now() + time::Duration::seconds(60)
    );
    assert_eq!(app.seat_map(&sale.id).await["ga"][0]["remaining"], 0);
    let id = seat.body["hold_id"].as_str().unwrap();

    // A millisecond before the deadline everything is still held.
    clock.advance(time::Duration::seconds(60) - time::Duration::milliseconds(1));
    assert_eq!(
        app.get(&format!("/v1/holds/{id}"), Some(&ann)).await.body["status"],
        "active"
    );
    let map = app.seat_map(&sale.id).await;
    assert_eq!(
        (map["status"].as_str(), map["ga"][0]["remaining"].as_u64()),
        (Some("HHAA"), Some(0))
    );
    let r = app.hold_seats(&bob, &sale.id, &[&sale.seats[1]]).await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "seats_unavailable"));

    // At the deadline it is gone, for every reader, with no sweep in between.
    clock.advance(time::Duration::milliseconds(1));
    assert_eq!(
        app.get(&format!("/v1/holds/{id}"), Some(&ann)).await.body["status"],
        "expired"
    );
    let map = app.seat_map(&sale.id).await;
    assert_eq!(map["status"], "AAAA");
    assert_eq!(map["ga"][0]["remaining"], 3);
    let r = app.delete(&format!("/v1/holds/{id}"), Some(&ann)).await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "hold_expired"));
    let r = app.checkout(&ann, id, "late", "tok_visa").await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "hold_expired"));
    // The seats and the places are Bob's for the taking.
    assert_eq!(
        app.hold_seats(&bob, &sale.id, &[&sale.seats[1]])
            .await
            .status,
        201
    );
    let r = app
        .post(
            &format!("/v1/events/{}/holds", sale.id),
            Some(&bob),
            json!({"tier_id": sale.ga_tier, "quantity": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
}

/// The engine fails once right after the store committed a change (a Redis call
/// that timed out, say): a payment (confirm), a declined payment that gives the hold
/// back until its own deadline (extend), and a release. Each time the engine must
/// end up where the store is — at once, and still after every deadline passed — not
/// keep the seats held to the payment deadline and then show sold seats as free.
#[tokio::test]
async fn the_engine_converges_on_the_store_when_it_fails_after_a_commit() {
    let clock = manual_clock();
    let engine = FaultyEngine::new();
    let app = TestApp::spawn_with_engine(no_sweeper, clock.clone(), engine.clone()).await;
    let sale = app.sale(1, 6, 2, 300, 4).await;
    let ann = app.customer().await;
    let mut holds = Vec::new();
    for pair in sale.seats[..6].chunks(2) {
        let r = app.hold_seats(&ann, &sale.id, &[&pair[0], &pair[1]]).await;
        assert_eq!(r.status, 201, "{r:?}");
        holds.push(r.body["hold_id"].as_str().unwrap().to_owned());
    }

    // Paid; the engine's confirm after the commit fails.
    engine.fail("confirm", 1);
    let c = app.checkout(&ann, &holds[0], "paid", "tok_visa").await;
    assert_eq!(c.status, 202, "{c:?}");
    let o = app
        .final_order(&ann, c.body["order_id"].as_str().unwrap())
        .await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(engine.failures("confirm"), 1);

    // Declined; the checkout's own extension passes, the one that gives the hold
    // back after the failure fails.
    engine.fail("extend", 2);
    let c = app
        .checkout(&ann, &holds[1], "declined", "tok_chargeDeclined")
        .await;
    assert_eq!(c.status, 202, "{c:?}");
    let o = app
        .final_order(&ann, c.body["order_id"].as_str().unwrap())
        .await;
    assert_eq!(o["failure_code"], "card_declined", "{o}");
    assert_eq!(engine.failures("extend"), 1);

    // Released; the engine's release after the store's fails. The release happened
    // (the store says so), and a second one changes nothing.
    engine.fail("release", 1);
    let r = app
        .delete(&format!("/v1/holds/{}", holds[2]), Some(&ann))
        .await;
    assert_eq!(engine.failures("release"), 1);
    assert_eq!(r.status, 204, "{r:?}");
    let r = app
        .delete(&format!("/v1/holds/{}", holds[2]), Some(&ann))
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "right after: {audit}");
    assert_eq!(
        app.statuses(&sale.id).await[..6],
        ['S', 'S', 'H', 'H', 'A', 'A']
    );
    // Past the declined hold's own deadline, then past the payment deadline.
    clock.advance(time::Duration::seconds(301));
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "past the hold's deadline: {audit}");
    assert_eq!(
        app.statuses(&sale.id).await[..6],
        ['S', 'S', 'A', 'A', 'A', 'A']
    );
    clock.advance(time::Duration::seconds(900));
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "past the payment deadline: {audit}");
    assert_eq!(
        app.statuses(&sale.id).await[..6],
        ['S', 'S', 'A', 'A', 'A', 'A']
    );
}

/// The in-process engine is rebuilt from the store (it was evicted: the store caught
/// it wrong) while Ann's hold is granted by the engine but not yet recorded. Bob asks
/// for the same seat; the rebuild reads a store without Ann's hold and grants it to
/// Bob. Ann's hold, recorded afterwards, must not be acknowledged as well: one live
/// hold per seat, whatever the engine went through.
#[tokio::test]
async fn a_rebuild_with_a_hold_in_flight_never_gives_a_seat_to_two_holds() {
    let clock = manual_clock();
    let engine = FaultyEngine::new();
    let app = Arc::new(TestApp::spawn_with_engine(no_sweeper, clock, engine.clone()).await);
    let sale = app.sale(1, 4, 2, 300, 4).await;
    let ann = app.customer().await;
    let bob = app.customer().await;
    assert_eq!(app.statuses(&sale.id).await, ['A'; 4]); // loaded

    let paused = engine.pause_next_hold();
    let ann_hold = tokio::spawn({
        let (app, ann, event, seat) = (
            app.clone(),
            ann.clone(),
            sale.id.clone(),
            sale.seats[0].clone(),
        );
        async move { app.hold_seats(&ann, &event, &[&seat]).await }
    });
    paused.granted.await.unwrap(); // granted by the engine, not recorded yet
    let event = boxoffice_domain::EventId::try_from(sale.id.as_str()).unwrap();
    engine.inner().evict(&event).await.unwrap();
    let bob_hold = app.hold_seats(&bob, &sale.id, &[&sale.seats[0]]).await;
    paused.resume.send(()).unwrap();
    let ann_hold = ann_hold.await.unwrap();

    let granted: Vec<(&str, &Res)> = [("ann", &ann_hold), ("bob", &bob_hold)]
        .into_iter()
        .filter(|(_, r)| r.status == 201)
        .collect();
    assert_eq!(
        granted.len(),
        1,
        "seat 0 went to {} live holds: ann {ann_hold:?}, bob {bob_hold:?}",
        granted.len()
    );
    let (winner, loser) = if ann_hold.status == 201 {
        (&ann_hold, &bob_hold)
    } else {
        (&bob_hold, &ann_hold)
    };
    assert_eq!(
        (loser.status.as_u16(), loser.code()),
        (409, "seats_unavailable")
    );
    let id = winner.body["hold_id"].as_str().unwrap();
    let owner = if ann_hold.status == 201 { &ann } else { &bob };
    assert_eq!(
        app.get(&format!("/v1/holds/{id}"), Some(owner)).await.body["status"],
        "active"
    );
    assert_eq!(app.statuses(&sale.id).await, ['H', 'A', 'A', 'A']);
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
    // Releasing the winner frees the seat: nothing else holds it, in the engine or
    // in the store (a second live hold there would show in the audit).
    assert_eq!(
        app.delete(&format!("/v1/holds/{id}"), Some(owner))
            .await
            .status,
        204
    );
    assert_eq!(app.statuses(&sale.id).await, ['A'; 4]);
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
}
