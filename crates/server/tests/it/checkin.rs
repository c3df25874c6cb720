//! Issue 13, check-in: signed ticket codes scanned at the gates. Each ticket is
//! admitted once however many gates race for it (the store decides), refunded
//! tickets are void, forged or altered codes and rotating codes outside their
//! window are invalid, offline scanners' double entries are reported, the same
//! scan sent twice answers the same, and only the event's staff may scan.

use crate::helpers::*;
use crate::roles::{create_org, invited};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Buys `n` GA tickets of `sale` as a fresh customer, `per_order` at a time:
/// (customer token, order ids, tickets as (id, code)).
async fn buy(
    app: &TestApp,
    sale: &Sale,
    n: usize,
    per_order: usize,
) -> (String, Vec<String>, Vec<(String, String)>) {
    let buyer = app.customer().await;
    let mut orders = Vec::new();
    let mut tickets = Vec::new();
    let mut left = n;
    while left > 0 {
        let q = left.min(per_order);
        let hold = app
            .post(
                &format!("/v1/events/{}/holds", sale.id),
                Some(&buyer),
                json!({"tier_id": sale.ga_tier, "quantity": q}),
            )
            .await;
        assert_eq!(hold.status, 201, "{hold:?}");
        let r = app
            .checkout(
                &buyer,
                hold.body["hold_id"].as_str().unwrap(),
                &ulid_like(),
                "tok_visa",
            )
            .await;
        assert_eq!(r.status, 202, "{r:?}");
        let order = r.body["order_id"].as_str().unwrap().to_owned();
        let paid = app.final_order(&buyer, &order).await;
        assert_eq!(paid["status"], "paid", "{paid}");
        for t in paid["tickets"].as_array().unwrap() {
            tickets.push((
                t["id"].as_str().unwrap().to_owned(),
                t["code"].as_str().unwrap().to_owned(),
            ));
        }
        orders.push(order);
        left -= q;
    }
    (buyer, orders, tickets)
}

async fn scan(app: &TestApp, token: &str, body: Value) -> Res {
    app.post("/v1/checkin", Some(token), body).await
}

async fn scan_ok(app: &TestApp, token: &str, code: &str, event: &str, gate: &str) -> Value {
    let r = scan(
        app,
        token,
        json!({"code": code, "gate": gate, "scan_id": ulid_like(), "event_id": event}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// `code` with the character at `ix` replaced by another base32 character.
fn altered(code: &str, ix: usize) -> String {
    let mut b = code.as_bytes().to_vec();
    b[ix] = if b[ix] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gates_racing_over_500_tickets_admit_each_exactly_once() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(1, 1, 500, 600, 50).await;
    let buyers = futures::future::join_all((0..5).map(|_| buy(&app, &sale, 100, 50))).await;
    let tickets: Vec<(String, String)> = buyers.into_iter().flat_map(|b| b.2).collect();
    assert_eq!(tickets.len(), 500);
    for (_, code) in &tickets {
        assert_eq!(code.len(), 157, "a signed code: {code}");
    }

    // Each gate scans every ticket twice: 2 gates × 1,000 scans, all at once (at
    // most 128 in flight), each ticket's four scans spread over the run.
    let scans: Vec<(String, String, String)> = (0..4)
        .flat_map(|round| {
            tickets.iter().map(move |(id, code)| {
                let gate = if round % 2 == 0 { "north" } else { "south" };
                (id.clone(), code.clone(), gate.to_owned())
            })
        })
        .collect();
    assert_eq!(scans.len(), 2_000);
    let started = std::time::Instant::now();
    let answers: Vec<(String, Res)> = futures::stream::iter(scans)
        .map(|(id, code, gate)| {
            let app = app.clone();
            let event = sale.id.clone();
            async move {
                let admin = app.admin.clone();
                let r = scan(
                    &app,
                    &admin,
                    json!({"code": code, "gate": gate, "scan_id": ulid_like(), "event_id": event}),
                )
                .await;
                (id, r)
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let took = started.elapsed();

    let mut ok: HashMap<String, usize> = HashMap::new();
    let mut used = 0;
    for (id, r) in &answers {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["ticket"]["id"], id.as_str());
        match r.body["result"].as_str().unwrap() {
            "ok" => *ok.entry(id.clone()).or_default() += 1,
            "already_used" => {
                used += 1;
                assert!(r.body["first_scan"]["gate"].is_string(), "{:?}", r.body);
                assert!(r.body["first_scan"]["at"].is_string(), "{:?}", r.body);
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!(ok.len(), 500, "every ticket admitted");
    assert!(ok.values().all(|n| *n == 1), "no ticket admitted twice");
    assert_eq!(used, 1_500);
    eprintln!("2,000 racing scans of 500 tickets: {took:?}");
}

#[tokio::test]
async fn refunded_tickets_are_voided_and_listed_as_revoked() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 1, 10, 600, 4).await;
    let (_, orders, tickets) = buy(&app, &sale, 2, 2).await;
    let r = app
        .post(
            &format!("/v1/orders/{}/refund", orders[0]),
            Some(&app.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "refunded");
    let v = scan_ok(&app, &app.admin, &tickets[0].1, &sale.id, "g").await;
    assert_eq!(v["result"], "voided", "{v}");
    assert_eq!(v["ticket"]["id"], tickets[0].0.as_str());
    let b = app
        .get(
            &format!("/v1/events/{}/checkin/bundle", sale.id),
            Some(&app.admin),
        )
        .await;
    assert_eq!(b.status, 200, "{b:?}");
    let revoked: Vec<&str> = b.body["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.contains(&tickets[1].0.as_str()));
}

#[tokio::test]
async fn forged_altered_and_foreign_codes_are_refused() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 1, 10, 600, 4).await;
    let other = app.sale(1, 1, 10, 600, 4).await;
    let (_, _, tickets) = buy(&app, &sale, 1, 1).await;
    let code = &tickets[0].1;
    // Any one character changed — in the ticket id, the event tag, the item, the
    // time, or the signature — and the code is no ticket.
    for ix in [0, 5, 20, 35, 45, 52, 60, 100, 150, 156] {
        let v = scan_ok(&app, &app.admin, &altered(code, ix), &sale.id, "g").await;
        assert_eq!(v["result"], "invalid", "changed at {ix}: {v}");
        assert!(v.get("ticket").is_none(), "{v}");
    }
    for forged in ["", "HELLO", "ABCDEFGHJKLMNPQRSTUVWXYZ23", &"A".repeat(157)] {
        let v = scan_ok(&app, &app.admin, forged, &sale.id, "g").await;
        assert_eq!(v["result"], "invalid", "{forged:?}: {v}");
    }
    // A real ticket of another event.
    let v = scan_ok(&app, &app.admin, code, &other.id, "g").await;
    assert_eq!(v["result"], "wrong_event", "{v}");
    // Still unused for its own event.
    let v = scan_ok(&app, &app.admin, code, &sale.id, "g").await;
    assert_eq!(v["result"], "ok", "{v}");
    assert_eq!(v["ticket"]["id"], tickets[0].0.as_str());
    assert_eq!(v["ticket"]["tier_id"], sale.ga_tier.as_str());
    // Bad input is 422, not a scan.
    let r = scan(
        &app,
        &app.admin,
        json!({"code": code, "gate": "", "scan_id": "x"}),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = scan(&app, &app.admin, json!({"code": code})).await;
    assert_eq!(r.status, 422, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_scan_twice_answers_the_same() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(1, 1, 10, 600, 4).await;
    let (_, _, tickets) = buy(&app, &sale, 2, 2).await;
    let code = tickets[0].1.clone();
    let body = json!({"code": code, "gate": "east", "scan_id": "scan-1", "event_id": sale.id});
    let first = scan(&app, &app.admin, body.clone()).await;
    assert_eq!(first.body["result"], "ok", "{first:?}");
    let again = scan(&app, &app.admin, body.clone()).await;
    assert_eq!(again.body, first.body);
    // Another scan of it is a second entry.
    let second = scan_ok(&app, &app.admin, &code, &sale.id, "west").await;
    assert_eq!(second["result"], "already_used");
    assert_eq!(second["first_scan"]["gate"], "east");
    // The same scan id sent twice at once: one admission, one answer.
    let body =
        json!({"code": tickets[1].1, "gate": "east", "scan_id": "scan-2", "event_id": sale.id});
    let (a, b) = tokio::join!(
        scan(&app, &app.admin, body.clone()),
        scan(&app, &app.admin, body.clone())
    );
    assert_eq!(a.body["result"], "ok", "{a:?}");
    assert_eq!(a.body, b.body);
}

#[tokio::test]
async fn only_the_events_staff_may_scan() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Door org").await;
    let n = ulid_like();
    let (organizer, _) = invited(
        &app,
        &app.admin,
        &org,
        &format!("door-org-{n}@example.com"),
        "organizer",
    )
    .await;
    let (staff, staff_id) = invited(
        &app,
        &organizer,
        &org,
        &format!("door-{n}@example.com"),
        "checkin",
    )
    .await;
    let venue = app
        .post(
            "/v1/venues",
            Some(&organizer),
            json!({"name": "Door hall", "sections": [{"name": "A", "rows": 1, "seats_per_row": 4}]}),
        )
        .await;
    let venue = venue.body["id"].as_str().unwrap().to_owned();
    let mk = |name: &str| {
        json!({
            "venue_id": venue, "name": name, "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 600, "max_tickets_per_order": 4,
            "tiers": [{"name": "Stalls", "price": {"amount": 5000, "currency": "EUR"}, "sections": ["A"]}],
            "ga_tiers": [{"name": "Floor", "price": {"amount": 2000, "currency": "EUR"}, "capacity": 10}]
        })
    };
    let mut sales = Vec::new();
    for name in ["Assigned night", "Other night"] {
        let ev = app.post("/v1/events", Some(&organizer), mk(name)).await;
        assert_eq!(ev.status, 201, "{ev:?}");
        let id = ev.body["id"].as_str().unwrap().to_owned();
        app.set_status(&id, "on_sale").await;
        sales.push(Sale {
            id,
            seats: vec![],
            ga_tier: ev.body["ga_tiers"][0]["id"].as_str().unwrap().to_owned(),
        });
    }
    let r = app
        .post(
            &format!("/v1/events/{}/staff", sales[0].id),
            Some(&organizer),
            json!({"user_id": staff_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let (buyer, _, tickets) = buy(&app, &sales[0], 1, 1).await;
    let (_, _, other_tickets) = buy(&app, &sales[1], 1, 1).await;

    // A customer may not scan, not even their own ticket.
    let r = scan(
        &app,
        &buyer,
        json!({"code": tickets[0].1, "gate": "g", "scan_id": "c1", "event_id": sales[0].id}),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "forbidden");
    let r = scan(
        &app,
        &buyer,
        json!({"code": tickets[0].1, "gate": "g", "scan_id": "c2"}),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = app
        .get(
            &format!("/v1/events/{}/checkin/bundle", sales[0].id),
            Some(&buyer),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    // Staff not assigned to the other event may not scan for it, nor its tickets.
    let r = scan(
        &app,
        &staff,
        json!({"code": other_tickets[0].1, "gate": "g", "scan_id": "s1", "event_id": sales[1].id}),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = scan(
        &app,
        &staff,
        json!({"code": other_tickets[0].1, "gate": "g", "scan_id": "s2"}),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = app
        .get(
            &format!("/v1/events/{}/checkin/bundle", sales[1].id),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    // At its own event's gate, the other event's ticket is the wrong event.
    let v = scan_ok(&app, &staff, &other_tickets[0].1, &sales[0].id, "g").await;
    assert_eq!(v["result"], "wrong_event");
    // And its own event's ticket gets in (without naming the event, too).
    let r = scan(
        &app,
        &staff,
        json!({"code": tickets[0].1, "gate": "g", "scan_id": "s3"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["result"], "ok");
    // Staff of another organization do not know a draft exists.
    let other_org = create_org(&app, "Far org").await;
    let (far_organizer, _) = invited(
        &app,
        &app.admin,
        &other_org,
        &format!("far-{n}@example.com"),
        "organizer",
    )
    .await;
    let draft = app.post("/v1/events", Some(&organizer), mk("Draft")).await;
    let draft = draft.body["id"].as_str().unwrap();
    let r = app
        .get(
            &format!("/v1/events/{draft}/checkin/bundle"),
            Some(&far_organizer),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
}

#[tokio::test]
async fn offline_scans_sync_and_double_entries_are_reported() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 1, 10, 600, 4).await;
    let (_, _, tickets) = buy(&app, &sale, 3, 3).await;
    let b = app
        .get(
            &format!("/v1/events/{}/checkin/bundle", sale.id),
            Some(&app.admin),
        )
        .await;
    assert_eq!(b.status, 200, "{b:?}");
    assert_eq!(b.body["event_id"], sale.id.as_str());
    assert_eq!(b.body["event_tag"].as_str().unwrap().len(), 16);
    assert!(!b.body["keys"].as_array().unwrap().is_empty());
    assert_eq!(b.body["keys"][0]["alg"], "Ed25519");
    assert_eq!(b.body["tickets"].as_array().unwrap().len(), 3);
    assert!(b.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["checked_in"] == false && t["void"] == false));

    // Ticket 0 admitted online at the main gate, then offline at the side gate;
    // ticket 1 offline twice at two gates (once by code, once by id); ticket 2 once.
    let online = scan_ok(&app, &app.admin, &tickets[0].1, &sale.id, "main").await;
    assert_eq!(online["result"], "ok");
    let t1 = "2030-06-01T19:01:00Z";
    let t2 = "2030-06-01T19:02:30Z";
    let scans = json!({"scans": [
        {"code": tickets[0].1, "gate": "side", "scan_id": "off-1", "scanned_at": t1},
        {"code": tickets[1].1, "gate": "side", "scan_id": "off-2", "scanned_at": t1},
        {"ticket_id": tickets[1].0, "gate": "back", "scan_id": "off-3", "scanned_at": t2},
        {"ticket_id": tickets[2].0, "gate": "back", "scan_id": "off-4", "scanned_at": t2},
        {"code": "FORGED", "gate": "back", "scan_id": "off-5", "scanned_at": t2},
    ]});
    let path = format!("/v1/events/{}/checkin/sync", sale.id);
    let r = app.post(&path, Some(&app.admin), scans.clone()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let results: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["already_used", "ok", "already_used", "ok", "invalid"]
    );
    let conflicts = r.body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    assert_eq!(conflicts[0]["ticket_id"], tickets[0].0.as_str());
    assert_eq!(conflicts[0]["first"]["gate"], "main");
    assert_eq!(conflicts[0]["second"]["gate"], "side");
    assert_eq!(conflicts[0]["second"]["at"], t1);
    assert_eq!(conflicts[1]["ticket_id"], tickets[1].0.as_str());
    assert_eq!(conflicts[1]["first"]["gate"], "side");
    assert_eq!(conflicts[1]["first"]["at"], t1);
    assert_eq!(conflicts[1]["second"]["gate"], "back");
    assert_eq!(conflicts[1]["second"]["at"], t2);
    assert_eq!(conflicts[1]["second"]["scan_id"], "off-3");

    // Uploading again (a retry after a lost answer) changes nothing.
    let again = app.post(&path, Some(&app.admin), scans).await;
    assert_eq!(again.body, r.body);
    let b = app
        .get(
            &format!("/v1/events/{}/checkin/bundle", sale.id),
            Some(&app.admin),
        )
        .await;
    assert!(b.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["checked_in"] == true));
    // A scan needs a code or a ticket id.
    let r = app
        .post(
            &path,
            Some(&app.admin),
            json!({"scans": [{"gate": "g", "scan_id": "x", "scanned_at": t1}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
}

#[tokio::test]
async fn a_rotated_key_keeps_old_tickets_valid() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 1, 10, 600, 4).await;
    let (_, _, old) = buy(&app, &sale, 1, 1).await;
    let before = app.get("/v1/ticket-keys", None).await;
    let r = app
        .post("/v1/admin/ticket-keys", Some(&app.admin), json!({}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let kid = r.body["kid"].as_u64().unwrap();
    let after = app.get("/v1/ticket-keys", None).await;
    assert_eq!(
        after.body["keys"].as_array().unwrap().len(),
        before.body["keys"].as_array().unwrap().len() + 1
    );
    let (_, _, new) = buy(&app, &sale, 1, 1).await;
    assert_ne!(
        old[0].1[..4],
        new[0].1[..4],
        "the new key's id is in the code"
    );
    for (_, code) in [&old[0], &new[0]] {
        let v = scan_ok(&app, &app.admin, code, &sale.id, "g").await;
        assert_eq!(v["result"], "ok", "{v}");
    }
    assert!(kid >= 2);
}

#[tokio::test]
async fn rotating_codes_are_accepted_within_one_step_only() {
    let clock = Arc::new(boxoffice_ports::ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = app.sale(1, 1, 10, 600, 4).await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{}", sale.id),
            Some(&app.admin),
            Some(json!({"rotating_codes": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["rotating_codes"], true);
    let (buyer, _, tickets) = buy(&app, &sale, 3, 3).await;
    let rotating = |i: usize| {
        let (app, buyer, id) = (&app, buyer.clone(), tickets[i].0.clone());
        async move {
            let r = app
                .get(&format!("/v1/tickets/{id}/rotating"), Some(&buyer))
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body
        }
    };
    // Only its holder gets the secret.
    let r = app
        .get(
            &format!("/v1/tickets/{}/rotating", tickets[0].0),
            Some(&app.customer().await),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let shown: Vec<Value> = futures::future::join_all((0..3).map(rotating)).await;
    assert_eq!(shown[0]["period"], 15);
    assert_eq!(shown[0]["algorithm"], "HMAC-SHA256");
    assert!(shown[0]["current"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}-", tickets[0].1)));

    // The static code alone is not enough for a rotating event.
    let v = scan_ok(&app, &app.admin, &tickets[0].1, &sale.id, "g").await;
    assert_eq!(v["result"], "invalid", "{v}");
    // One step later, the code shown then is still good (±1 step).
    clock.advance(time::Duration::seconds(15));
    let v = scan_ok(
        &app,
        &app.admin,
        shown[0]["current"].as_str().unwrap(),
        &sale.id,
        "g",
    )
    .await;
    assert_eq!(v["result"], "ok", "{v}");
    // Three steps later, a screenshot of it is not.
    clock.advance(time::Duration::seconds(30));
    let v = scan_ok(
        &app,
        &app.admin,
        shown[1]["current"].as_str().unwrap(),
        &sale.id,
        "g",
    )
    .await;
    assert_eq!(v["result"], "invalid", "{v}");
    // What the holder's app shows now is.
    let now = rotating(1).await;
    let v = scan_ok(
        &app,
        &app.admin,
        now["current"].as_str().unwrap(),
        &sale.id,
        "g",
    )
    .await;
    assert_eq!(v["result"], "ok", "{v}");
    // A changed digit is not.
    let mut wrong = rotating(2).await["current"].as_str().unwrap().to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let v = scan_ok(&app, &app.admin, &wrong, &sale.id, "g").await;
    assert_eq!(v["result"], "invalid", "{v}");
    // The scanners' bundle carries the secrets.
    let b = app
        .get(
            &format!("/v1/events/{}/checkin/bundle", sale.id),
            Some(&app.admin),
        )
        .await;
    assert_eq!(b.body["rotating_codes"], true);
    assert!(b.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["rotating_secret"].as_str().is_some_and(|s| s.len() == 32)));
}
