//! Best available (`POST /v1/events/{id}/holds` with `{"best_available": {...}}`):
//! adjacent seats in one row nearest the stage, no orphan single seat when another
//! choice exists, then relaxing (orphan allowed, then split across rows), 409
//! `sold_out` when no choice exists; and a crowd racing for it never gets a seat
//! twice.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A seat of the layout: (section, row, label as a number).
type Place = (String, String, u32);

async fn layout(app: &TestApp, event: &str) -> HashMap<String, (usize, Place)> {
    let l = app.get(&format!("/v1/events/{event}/layout"), None).await;
    l.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                s["id"].as_str().unwrap().to_owned(),
                (
                    i,
                    (
                        s["section"].as_str().unwrap().to_owned(),
                        s["row"].as_str().unwrap().to_owned(),
                        s["label"].as_str().unwrap().parse().unwrap(),
                    ),
                ),
            )
        })
        .collect()
}

async fn best(app: &TestApp, token: &str, event: &str, ask: Value) -> Res {
    app.post(
        &format!("/v1/events/{event}/holds"),
        Some(token),
        json!({ "best_available": ask }),
    )
    .await
}

/// The places of a granted hold, sorted.
fn places(r: &Res, lay: &HashMap<String, (usize, Place)>) -> Vec<Place> {
    let mut p: Vec<Place> = r.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| lay[s.as_str().unwrap()].1.clone())
        .collect();
    p.sort();
    p
}

/// One row, consecutive labels.
fn adjacent(p: &[Place]) -> bool {
    p.windows(2)
        .all(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1 && w[0].2 + 1 == w[1].2)
}

/// An on-sale event over one section `A` of rows × seats (row 1 nearest the stage).
async fn hall(app: &TestApp, rows: u32, seats: u32, max: u32) -> (String, Vec<String>) {
    let venue = app.venue(&[("A", rows, seats)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Best night", "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 600, "max_tickets_per_order": max,
            "tiers": [{"name": "Main", "price": {"amount": 2000, "currency": "EUR"}, "sections": ["A"]}]
        }))
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&id, "on_sale").await;
    let l = app.get(&format!("/v1/events/{id}/layout"), None).await;
    let seats = l.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    (id, seats)
}

/// Takes the seats at these layout indices (another buyer).
async fn take(app: &TestApp, event: &str, seats: &[String], ixs: &[usize]) {
    let who = app.customer().await;
    let refs: Vec<&String> = ixs.iter().map(|&i| &seats[i]).collect();
    let r = app.hold_seats(&who, event, &refs).await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn best_available_is_adjacent_in_the_nearest_row_and_its_middle() {
    let app = TestApp::spawn().await;
    let (event, _) = hall(&app, 3, 10, 10).await;
    let lay = layout(&app, &event).await;
    let ann = app.customer().await;
    let r = best(&app, &ann, &event, json!({"quantity": 2})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let p = places(&r, &lay);
    assert_eq!(
        p,
        [("A".into(), "1".into(), 5), ("A".into(), "1".into(), 6)]
    );
    assert_eq!(r.body["total"], json!({"amount": 4000, "currency": "EUR"}));
    // The hold is an ordinary hold: the map shows it, GET /holds knows it.
    let st = app.statuses(&event).await;
    assert_eq!((st[4], st[5]), ('H', 'H'));
    let h = app
        .get(
            &format!("/v1/holds/{}", r.body["hold_id"].as_str().unwrap()),
            Some(&ann),
        )
        .await;
    assert_eq!(h.body["status"], "active");

    // Four more: still row 1, adjacent, beside the first pair, no seat alone.
    let r = best(&app, &ann, &event, json!({"quantity": 4})).await;
    let p = places(&r, &lay);
    assert!(adjacent(&p) && p[0].1 == "1", "{p:?}");
    let row1: String = app.statuses(&event).await[..10].iter().collect();
    assert!(!has_orphan(&row1), "{row1}");
}

/// A single free seat with no free neighbour (a row's end counts as taken).
fn has_orphan(row: &str) -> bool {
    let b = row.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'A' && (i == 0 || b[i - 1] != b'A') && (i + 1 == b.len() || b[i + 1] != b'A')
    })
}

#[tokio::test]
async fn no_orphan_seat_when_avoidable_then_relaxing_step_by_step() {
    let app = TestApp::spawn().await;
    let (event, seats) = hall(&app, 3, 6, 6).await;
    let lay = layout(&app, &event).await;
    let ann = app.customer().await;
    // Row 1: only seats 1–3 free. Any pair there leaves one seat alone.
    take(&app, &event, &seats, &[3, 4, 5]).await;
    let r = best(&app, &ann, &event, json!({"quantity": 2})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let p = places(&r, &lay);
    assert!(
        adjacent(&p) && p[0].1 == "2",
        "row 2 has a choice without an orphan: {p:?}"
    );
    let row2: String = app.statuses(&event).await[6..12].iter().collect();
    assert!(!has_orphan(&row2), "{row2}");

    // Rows 2 and 3 full: the pair in row 1 is the only adjacent choice left, orphan
    // and all.
    let st = app.statuses(&event).await;
    let free: Vec<usize> = (6..18).filter(|&i| st[i] == 'A').collect();
    for chunk in free.chunks(6) {
        take(&app, &event, &seats, chunk).await;
    }
    let r = best(&app, &ann, &event, json!({"quantity": 2})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let p = places(&r, &lay);
    assert!(adjacent(&p) && p[0].1 == "1", "{p:?}");

    // One seat left: three is no choice at all.
    let st = app.statuses(&event).await;
    assert_eq!(st.iter().filter(|&&c| c == 'A').count(), 1);
    let r = best(&app, &ann, &event, json!({"quantity": 3})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "sold_out"),
        "only one seat is free: {r:?}"
    );
    assert_eq!(r.body["error"]["remaining"], 1);
    let r = best(&app, &ann, &event, json!({"quantity": 1})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = best(&app, &ann, &event, json!({"quantity": 1})).await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "sold_out"));
}

#[tokio::test]
async fn seats_split_across_rows_when_no_row_has_them_together() {
    let app = TestApp::spawn().await;
    let (event, seats) = hall(&app, 2, 4, 4).await;
    let lay = layout(&app, &event).await;
    // Free: row 1 seats 1, 3, 4; row 2 seat 2. Three together nowhere.
    take(&app, &event, &seats, &[1, 4, 6, 7]).await;
    let ann = app.customer().await;
    let r = best(&app, &ann, &event, json!({"quantity": 3})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let p = places(&r, &lay);
    // Row 1's pair (3, 4) first, then its single seat 1: the nearest row's seats.
    assert_eq!(
        p,
        [
            ("A".into(), "1".into(), 1),
            ("A".into(), "1".into(), 3),
            ("A".into(), "1".into(), 4)
        ]
    );
}

#[tokio::test]
async fn best_available_of_a_tier_and_bad_asks() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 2, 5), ("B", 2, 5)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Two tiers", "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 600, "max_tickets_per_order": 4,
            "tiers": [{"name": "Front", "price": {"amount": 5000, "currency": "EUR"}, "sections": ["A"]},
                      {"name": "Back", "price": {"amount": 1000, "currency": "EUR"}, "sections": ["B"]}],
            "ga_tiers": [{"name": "Floor", "price": {"amount": 500, "currency": "EUR"}, "capacity": 10}]
        }))
        .await;
    let event = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&event, "on_sale").await;
    let lay = layout(&app, &event).await;
    let back = ev["tiers"][1]["id"].as_str().unwrap();
    let ann = app.customer().await;
    let r = best(&app, &ann, &event, json!({"quantity": 3, "tier_id": back})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let p = places(&r, &lay);
    assert!(p.iter().all(|s| s.0 == "B") && adjacent(&p), "{p:?}");
    assert_eq!(r.body["total"]["amount"], 3000);

    let ga = ev["ga_tiers"][0]["id"].as_str().unwrap();
    for (ask, field) in [
        (json!({"quantity": 0}), "best_available.quantity"),
        (json!({"quantity": 5}), "best_available.quantity"),
        (
            json!({"quantity": 2, "tier_id": ga}),
            "best_available.tier_id",
        ),
        (
            json!({"quantity": 2, "tier_id": "nope"}),
            "best_available.tier_id",
        ),
    ] {
        let r = best(&app, &ann, &event, ask.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "invalid_request"),
            "{ask}"
        );
        assert_eq!(r.body["error"]["field"], field, "{ask}");
    }
    for body in [
        json!({"best_available": {"quantity": 1}, "seats": [lay.keys().next().unwrap()]}),
        json!({"best_available": {"quantity": 1, "rows": 2}}),
        json!({"best_available": {"tier_id": back}}),
        json!({"best_available": {"quantity": "two"}}),
    ] {
        let r = app
            .post(
                &format!("/v1/events/{event}/holds"),
                Some(&ann),
                body.clone(),
            )
            .await;
        assert_eq!(r.status, 422, "{body}: {r:?}");
    }
    // Nothing was held by the refused asks.
    let st = app.statuses(&event).await;
    assert_eq!(st.iter().filter(|&&c| c == 'H').count(), 3);
}

/// 500 best-available requests at once on a 2,000-seat event: no seat in two holds,
/// every granted hold adjacent in one row, the seat map holding exactly the granted
/// seats, the engine agreeing with the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_of_500_best_available_requests_never_shares_a_seat() {
    const REQUESTS: usize = 500;
    const CUSTOMERS: usize = 25;
    let app = Arc::new(TestApp::spawn().await);
    let (event, _) = hall(&app, 40, 50, 4).await;
    let lay = layout(&app, &event).await;
    let tokens = futures::future::join_all((0..CUSTOMERS).map(|_| app.customer())).await;
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (app, event, token) = (app.clone(), event.clone(), tokens[i % CUSTOMERS].clone());
            tokio::spawn(async move {
                let n = 1 + i % 4;
                (n, best(&app, &token, &event, json!({"quantity": n})).await)
            })
        })
        .collect();
    let mut taken = BTreeSet::new();
    let (mut granted, mut seats_granted) = (0, 0);
    for t in futures::future::join_all(tasks).await {
        let (n, r) = t.unwrap();
        assert_eq!(r.status, 201, "{r:?}");
        granted += 1;
        let ids = r.body["seats"].as_array().unwrap();
        assert_eq!(ids.len(), n);
        for s in ids {
            assert!(
                taken.insert(s.as_str().unwrap().to_owned()),
                "{s} granted twice"
            );
        }
        seats_granted += n;
        let p = places(&r, &lay);
        assert!(adjacent(&p), "not adjacent in one row: {p:?}");
    }
    assert_eq!(granted, REQUESTS);
    let st = app.statuses(&event).await;
    let held: BTreeSet<String> = lay
        .iter()
        .filter(|(_, (i, _))| st[*i] == 'H')
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(held, taken, "the map holds exactly the granted seats");
    assert_eq!(seats_granted, 1250);
    assert_eq!(app.engine_audit(&event).await["agrees"], true);
}
