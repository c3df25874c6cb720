//! Bad input: every error code the API promises, and nothing that panics or 500s.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn hold_requests_that_are_invalid() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 10, 20, 300, 3).await;
    let other = app.sale(1, 2, 1, 300, 3).await;
    let buyer = app.customer().await;
    let path = format!("/v1/events/{}/holds", sale.id);
    let s = &sale.seats;
    let cases = [
        ("unknown seat id shape", json!({"seats": ["nope"]})),
        (
            "unknown seat",
            json!({"seats": ["st_01arz3ndektsv4rrffq69g5fav"]}),
        ),
        ("seat of another event", json!({"seats": [other.seats[0]]})),
        ("a seat twice", json!({"seats": [s[0], s[0]]})),
        ("no seats", json!({"seats": []})),
        (
            "more than the per-order limit",
            json!({"seats": [s[0], s[1], s[2], s[3]]}),
        ),
        (
            "quantity zero",
            json!({"tier_id": sale.ga_tier, "quantity": 0}),
        ),
        (
            "negative quantity",
            json!({"tier_id": sale.ga_tier, "quantity": -1}),
        ),
        (
            "quantity over the limit",
            json!({"tier_id": sale.ga_tier, "quantity": 4}),
        ),
        (
            "GA tier of another event",
            json!({"tier_id": other.ga_tier, "quantity": 1}),
        ),
        (
            "seats and GA at once",
            json!({"seats": [s[0]], "tier_id": sale.ga_tier, "quantity": 1}),
        ),
        ("GA without quantity", json!({"tier_id": sale.ga_tier})),
        ("nothing", json!({})),
        ("unknown field", json!({"seats": [s[0]], "colour": "red"})),
        ("wrong type", json!({"seats": "A1"})),
    ];
    for (what, body) in cases {
        let r = app.post(&path, Some(&buyer), body).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "invalid_request"),
            "{what}: {r:?}"
        );
    }
    // Nothing was held by any of that.
    assert!(app.statuses(&sale.id).await.iter().all(|&c| c == 'A'));
    assert_eq!(app.seat_map(&sale.id).await["ga"][0]["remaining"], 20);
}

#[tokio::test]
async fn malformed_bodies_and_unknown_things() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 2, 2, 300, 2).await;
    let buyer = app.customer().await;
    let url = app.url(&format!("/v1/events/{}/holds", sale.id));

    let r = app
        .client
        .post(&url)
        .bearer_auth(&buyer)
        .header("content-type", "application/json")
        .body("{\"seats\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");

    let r = app
        .client
        .post(&url)
        .bearer_auth(&buyer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let huge = format!("{{\"seats\": [\"{}\"]}}", "x".repeat(200 * 1024));
    let r = app
        .client
        .post(&url)
        .bearer_auth(&buyer)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = app
        .post(
            &format!("/v1/events/{}/holds", sale.id),
            None,
            json!({"seats": [sale.seats[0]]}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));

    for path in [
        "/v1/events/evt_01arz3ndektsv4rrffq69g5fav",
        "/v1/events/garbage",
        "/v1/events/garbage/seats",
        "/v1/events/garbage/layout",
        "/v1/venues/nope",
        "/nowhere",
    ] {
        let r = app.get(path, None).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{path}");
    }
    for path in [
        "/v1/holds/hld_01arz3ndektsv4rrffq69g5fav",
        "/v1/holds/garbage",
    ] {
        let r = app.get(path, Some(&buyer)).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{path}");
    }
    let r = app
        .post(
            "/v1/events/garbage/holds",
            Some(&buyer),
            json!({"seats": [sale.seats[0]]}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = app.call(Method::PUT, "/v1/events", None, None).await;
    assert_eq!((r.status.as_u16(), r.code()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn catalogue_writes_that_are_invalid() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    let bad_venues = [
        json!({"name": "", "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]}),
        json!({"name": "x", "sections": []}),
        json!({"name": "x", "sections": [{"name": "A", "rows": 0, "seats_per_row": 1}]}),
        json!({"name": "x", "sections": [{"name": "A", "rows": 1000, "seats_per_row": 1000}]}),
        json!({"name": "x", "sections": [{"name": "A", "rows": -1, "seats_per_row": 1}]}),
    ];
    for body in bad_venues {
        let r = app.post("/v1/venues", Some(&app.admin), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "invalid_request"),
            "{body}"
        );
    }
    let price = json!({"amount": 100, "currency": "EUR"});
    let bad_events = [
        json!({"venue_id": "ven_01arz3ndektsv4rrffq69g5fav", "name": "x", "starts_at": "2030-01-01T00:00:00Z", "ga_tiers": [{"name": "F", "price": price, "capacity": 1}]}),
        json!({"venue_id": venue, "name": "x", "starts_at": "not a time", "ga_tiers": [{"name": "F", "price": price, "capacity": 1}]}),
        json!({"venue_id": venue, "name": "x", "starts_at": "2030-01-01T00:00:00Z"}),
        json!({"venue_id": venue, "name": "x", "starts_at": "2030-01-01T00:00:00Z", "tiers": [{"name": "T", "price": price, "sections": ["Z"]}]}),
        json!({"venue_id": venue, "name": "x", "starts_at": "2030-01-01T00:00:00Z", "hold_ttl_seconds": 0, "ga_tiers": [{"name": "F", "price": price, "capacity": 1}]}),
        json!({"venue_id": venue, "name": "x", "starts_at": "2030-01-01T00:00:00Z", "max_tickets_per_order": 0, "ga_tiers": [{"name": "F", "price": price, "capacity": 1}]}),
        json!({"venue_id": venue, "name": "x", "starts_at": "2030-01-01T00:00:00Z", "ga_tiers": [{"name": "F", "price": {"amount": -1, "currency": "EUR"}, "capacity": 1}]}),
        json!({"venue_id": venue, "name": "x", "starts_at": "2030-01-01T00:00:00Z", "ga_tiers": [{"name": "F", "price": {"amount": 1, "currency": "euro"}, "capacity": 1}]}),
    ];
    for body in bad_events {
        let r = app.post("/v1/events", Some(&app.admin), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "invalid_request"),
            "{body}: {r:?}"
        );
    }
    let ev = app
        .create_event(json!({"venue_id": venue, "name": "ok", "starts_at": "2030-01-01T00:00:00Z", "ga_tiers": [{"name": "F", "price": price, "capacity": 1}]}))
        .await;
    let path = format!("/v1/events/{}", ev["id"].as_str().unwrap());
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"status": "sold"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "invalid_request"));
    let buyer = app.customer().await;
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&buyer),
            Some(json!({"status": "on_sale"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = app
        .call(
            Method::PATCH,
            "/v1/events/garbage",
            Some(&app.admin),
            Some(json!({"status": "on_sale"})),
        )
        .await;
    assert_eq!(r.status, 404);
}
