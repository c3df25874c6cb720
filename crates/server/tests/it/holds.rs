//! Holds over HTTP: create, read, release, expiry.

use crate::helpers::*;
use serde_json::json;
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

/// Waits for a hold's deadline itself (the thing under test), then looks at once:
/// expiry must not depend on a sweeper having run.
async fn wait_past(t: OffsetDateTime) {
    let left = t - OffsetDateTime::now_utc() + time::Duration::milliseconds(5);
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
}

#[tokio::test]
async fn holds_expire_by_themselves() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 4, 3, 1, 4).await;
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
    assert_eq!(app.seat_map(&sale.id).await["ga"][0]["remaining"], 0);

    wait_past(deadline(&seat.body).max(deadline(&ga.body))).await;

    let id = seat.body["hold_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/holds/{id}"), Some(&ann)).await.body["status"],
        "expired"
    );
    let map = app.seat_map(&sale.id).await;
    assert_eq!(map["status"], "AAAA");
    assert_eq!(map["ga"][0]["remaining"], 3);
    let r = app.delete(&format!("/v1/holds/{id}"), Some(&ann)).await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "hold_expired"));
    // The seats are Bob's for the taking.
    assert_eq!(
        app.hold_seats(&bob, &sale.id, &[&sale.seats[1]])
            .await
            .status,
        201
    );
}
