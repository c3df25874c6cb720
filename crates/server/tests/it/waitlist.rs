//! The waitlist (issue 12): joining a sold-out event or tier, the exclusive offer
//! (a hold in the customer's name) when seats come back, its email, its expiry
//! rolling to the next in line, first come first served per kind of ticket, and no
//! entry or seat offered twice when many passes and releases race (on two nodes in
//! the distributed run).

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use time::OffsetDateTime;

/// An on-sale event: one section `A` of `seats` seats (tier Main, 25 EUR) and a GA
/// tier `Floor` of `ga` places; at most 4 tickets an order. Answers (event, seat ids
/// in layout order, main tier, GA tier).
async fn small_sale(app: &TestApp, seats: u32, ga: u32) -> (String, Vec<String>, String, String) {
    let venue = app.venue(&[("A", 1, seats)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue,
            "name": "Sold-out night",
            "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 600,
            "max_tickets_per_order": 4,
            "tiers": [{"name": "Main", "price": {"amount": 2500, "currency": "EUR"}, "sections": ["A"]}],
            "ga_tiers": [{"name": "Floor", "price": {"amount": 1000, "currency": "EUR"}, "capacity": ga}]
        }))
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&id, "on_sale").await;
    let layout = app.get(&format!("/v1/events/{id}/layout"), None).await;
    let seats = layout.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    (
        id,
        seats,
        ev["tiers"][0]["id"].as_str().unwrap().to_owned(),
        ev["ga_tiers"][0]["id"].as_str().unwrap().to_owned(),
    )
}

async fn join(app: &TestApp, token: &str, event: &str, body: Value) -> Res {
    app.post(&format!("/v1/events/{event}/waitlist"), Some(token), body)
        .await
}

async fn entry(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.get(&format!("/v1/waitlist/{id}"), Some(token)).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

async fn hold_ga(app: &TestApp, token: &str, event: &str, tier: &str, n: u32) -> String {
    let r = app
        .post(
            &format!("/v1/events/{event}/holds"),
            Some(token),
            json!({"tier_id": tier, "quantity": n}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["hold_id"].as_str().unwrap().to_owned()
}

/// Waits until the entry is in `state`, and answers it.
async fn entry_becomes(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    eventually(&format!("waitlist entry {id} is {state}"), || async {
        entry(app, token, id).await["state"] == state
    })
    .await;
    entry(app, token, id).await
}

/// The offer emails written by these nodes (`.eml` files of their data dirs).
fn offer_emails(apps: &[&TestApp]) -> Vec<String> {
    apps.iter()
        .filter_map(|a| std::fs::read_dir(a.data_dir.path().join("mail")).ok())
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        // Quoted-printable: join the soft line breaks.
        .map(|t| t.replace("=\r\n", "").replace("=\n", ""))
        .filter(|t| t.contains("are held for you"))
        .collect()
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::now_utc()))
}

/// Offers last 60 s; passes run every 50 ms (the test config's sweep interval).
fn short_offers(c: &mut boxoffice_server::Config) {
    c.waitlist_offer_seconds = 60;
}

/// No background pass after the first tick (nor sweeper): the test drives passes.
fn passes_by_hand(c: &mut boxoffice_server::Config) {
    c.sweep_interval_ms = 24 * 3600 * 1000;
    c.waitlist_offer_seconds = 600;
}

/// Sold out, a customer joins (201, then 200 with the same entry when joining again);
/// when the seats are released the entry is offered a hold of its own, in its
/// name, for the offer's time; one email announces it; checking the hold out
/// converts the entry.
#[tokio::test]
async fn a_release_makes_an_offer_to_the_next_in_line() {
    let app = TestApp::spawn_with(short_offers).await;
    let (event, seats, _, _) = small_sale(&app, 4, 1).await;
    let buyer = app.customer().await;
    let all: Vec<&String> = seats.iter().collect();
    let held = app.hold_seats(&buyer, &event, &all).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold = held.body["hold_id"].as_str().unwrap().to_owned();

    let waiter = app.customer().await;
    let r = join(&app, &waiter, &event, json!({"quantity": 2})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["waitlist_id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["position"], 1);
    assert_eq!(r.body["state"], "waiting");
    let again = join(&app, &waiter, &event, json!({"quantity": 2})).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["waitlist_id"], id.as_str());
    // Someone else's entry does not exist for another customer.
    let other = app.customer().await;
    let r = app.get(&format!("/v1/waitlist/{id}"), Some(&other)).await;
    assert_eq!(r.status, 404, "{r:?}");

    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&buyer))
            .await
            .status,
        204
    );
    let offered = entry_becomes(&app, &waiter, &id, "offered").await;
    assert_eq!(offered["position"], Value::Null);
    let offer = offered["hold_id"].as_str().unwrap().to_owned();
    let h = app.get(&format!("/v1/holds/{offer}"), Some(&waiter)).await;
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(h.body["status"], "active");
    assert_eq!(h.body["seats"].as_array().unwrap().len(), 2);
    assert_eq!(h.body["expires_at"], offered["expires_at"]);
    let expires = OffsetDateTime::parse(
        offered["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(60) && left > time::Duration::seconds(30),
        "{left}"
    );
    // Exactly two seats are held: the offer's; the others are free for anyone.
    let map: String = app.statuses(&event).await.into_iter().collect();
    assert_eq!(map.matches('H').count(), 2, "{map}");
    eventually("the offer email is sent", || async {
        !offer_emails(&[&app]).is_empty()
    })
    .await;
    let mails = offer_emails(&[&app]);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains(&offer), "{}", mails[0]);

    let r = app.checkout(&waiter, &offer, "wl-1", "tok_visa").await;
    assert_eq!(r.status, 202, "{r:?}");
    let order = r.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.final_order(&waiter, &order).await["status"], "paid");
    entry_becomes(&app, &waiter, &id, "converted").await;
    assert_eq!(offer_emails(&[&app]).len(), 1);
}

/// Joining is for what cannot be bought now: free seats → 409 `seats_available`;
/// a bad tier or quantity → 422; a GA-only wish must name its tier.
#[tokio::test]
async fn joining_checks_what_is_asked() {
    let app = TestApp::spawn().await;
    let (event, _, main, ga) = small_sale(&app, 4, 2).await;
    let c = app.customer().await;
    let r = join(&app, &c, &event, json!({"quantity": 2})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "seats_available"),
        "{r:?}"
    );
    let r = join(&app, &c, &event, json!({"quantity": 1, "tier_id": ga})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "seats_available"),
        "{r:?}"
    );
    let r = join(&app, &c, &event, json!({"quantity": 5, "tier_id": main})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "invalid_request"),
        "{r:?}"
    );
    let r = join(&app, &c, &event, json!({"quantity": 0})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "invalid_request"),
        "{r:?}"
    );
    let r = join(
        &app,
        &c,
        &event,
        json!({"quantity": 1, "tier_id": "tier_nope"}),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "invalid_request"),
        "{r:?}"
    );
    // GA sold out (held): joining for 1 is taken; 3 when 2 are free is too.
    let buyer = app.customer().await;
    hold_ga(&app, &buyer, &event, &ga, 2).await;
    let r = join(&app, &c, &event, json!({"quantity": 1, "tier_id": ga})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["waitlist_id"].as_str().unwrap().to_owned();
    let r = app.delete(&format!("/v1/waitlist/{id}"), Some(&c)).await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = app
        .post(
            "/v1/events/evt_nope/waitlist",
            Some(&c),
            json!({"quantity": 1}),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = app
        .post(
            &format!("/v1/events/{event}/waitlist"),
            None,
            json!({"quantity": 1}),
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
}

/// An offer nobody takes expires with its hold (the manual clock moves past it) and
/// the seats roll to the next in line; one email per offer; leaving with an offer
/// gives its seats back at once.
#[tokio::test]
async fn an_unclaimed_offer_rolls_to_the_next() {
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(short_offers, clock.clone()).await;
    let (event, _, _, ga) = small_sale(&app, 2, 1).await;
    let buyer = app.customer().await;
    let hold = hold_ga(&app, &buyer, &event, &ga, 1).await;
    let (first, second) = (app.customer().await, app.customer().await);
    let one = join(&app, &first, &event, json!({"quantity": 1, "tier_id": ga})).await;
    let two = join(&app, &second, &event, json!({"quantity": 1, "tier_id": ga})).await;
    assert_eq!((one.status.as_u16(), two.status.as_u16()), (201, 201));
    assert_eq!(two.body["position"], 2);
    let (one, two) = (
        one.body["waitlist_id"].as_str().unwrap().to_owned(),
        two.body["waitlist_id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&buyer))
            .await
            .status,
        204
    );
    let offer = entry_becomes(&app, &first, &one, "offered").await;
    assert_eq!(entry(&app, &second, &two).await["position"], 1);
    // Not yet: one millisecond before the offer's end it is still the first's.
    clock.advance(time::Duration::seconds(60) - time::Duration::milliseconds(1));
    app.app().waitlist_pass().await.unwrap();
    assert_eq!(entry(&app, &first, &one).await["state"], "offered");
    assert_eq!(entry(&app, &second, &two).await["state"], "waiting");
    clock.advance(time::Duration::milliseconds(1));
    entry_becomes(&app, &first, &one, "expired").await;
    let rolled = entry_becomes(&app, &second, &two, "offered").await;
    assert_ne!(rolled["hold_id"], offer["hold_id"]);
    eventually("two offer emails", || async {
        offer_emails(&[&app]).len() >= 2
    })
    .await;
    // The second leaves: the offer's place goes back at once.
    let r = app
        .delete(&format!("/v1/waitlist/{two}"), Some(&second))
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(entry(&app, &second, &two).await["state"], "left");
    let h = app
        .get(
            &format!("/v1/holds/{}", rolled["hold_id"].as_str().unwrap()),
            Some(&second),
        )
        .await;
    assert_eq!(h.body["status"], "released", "{h:?}");
    assert_eq!(app.seat_map(&event).await["ga"][0]["remaining"], 1);
    let mails = offer_emails(&[&app]);
    assert_eq!(mails.len(), 2, "{mails:?}");
    // Its offer over and the place free, the first may buy it now, not wait.
    let r = join(&app, &first, &event, json!({"quantity": 1, "tier_id": ga})).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "seats_available"),
        "{r:?}"
    );
}

/// First come, first served per kind of ticket: an entry that does not fit what is
/// free keeps those behind it (same tier) waiting, but not those waiting for
/// another tier; quantities are held whole.
#[tokio::test]
async fn quantities_and_tiers_keep_their_place() {
    let app = TestApp::spawn_with(passes_by_hand).await;
    let (event, seats, main, ga) = small_sale(&app, 2, 3).await;
    let (b1, b2, b3) = (
        app.customer().await,
        app.customer().await,
        app.customer().await,
    );
    let h1 = hold_ga(&app, &b1, &event, &ga, 1).await;
    let h2 = hold_ga(&app, &b2, &event, &ga, 2).await;
    let all: Vec<&String> = seats.iter().collect();
    let h3 = app.hold_seats(&b3, &event, &all).await.body["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (w1, w2, w3) = (
        app.customer().await,
        app.customer().await,
        app.customer().await,
    );
    let e1 = join(&app, &w1, &event, json!({"quantity": 2, "tier_id": ga})).await;
    let e2 = join(&app, &w2, &event, json!({"quantity": 1, "tier_id": ga})).await;
    let e3 = join(&app, &w3, &event, json!({"quantity": 2, "tier_id": main})).await;
    let ids: Vec<String> = [&e1, &e2, &e3]
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{r:?}");
            r.body["waitlist_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(e3.body["position"], 3);

    // One GA place back (the first wants two, so nobody gets it), and the seats:
    // the seated tier's line moves on its own. (Each release also wakes the
    // node's own pass: states are awaited, not read once.)
    assert_eq!(
        app.delete(&format!("/v1/holds/{h1}"), Some(&b1))
            .await
            .status,
        204
    );
    assert_eq!(
        app.delete(&format!("/v1/holds/{h3}"), Some(&b3))
            .await
            .status,
        204
    );
    app.app().waitlist_pass().await.unwrap();
    let o3 = entry_becomes(&app, &w3, &ids[2], "offered").await;
    let h = app
        .get(
            &format!("/v1/holds/{}", o3["hold_id"].as_str().unwrap()),
            Some(&w3),
        )
        .await;
    assert_eq!(h.body["seats"].as_array().unwrap().len(), 2, "{h:?}");
    // Every pass since the release saw one GA place: the first blocks the second.
    app.app().waitlist_pass().await.unwrap();
    assert_eq!(entry(&app, &w1, &ids[0]).await["state"], "waiting");
    let e2 = entry(&app, &w2, &ids[1]).await;
    assert_eq!(
        (e2["state"].as_str(), e2["position"].as_u64()),
        (Some("waiting"), Some(2))
    );
    // Three GA places back: the first gets two, the second one.
    assert_eq!(
        app.delete(&format!("/v1/holds/{h2}"), Some(&b2))
            .await
            .status,
        204
    );
    app.app().waitlist_pass().await.unwrap();
    for (token, id, n) in [(&w1, &ids[0], 2), (&w2, &ids[1], 1)] {
        let e = entry_becomes(&app, token, id, "offered").await;
        let h = app
            .get(
                &format!("/v1/holds/{}", e["hold_id"].as_str().unwrap()),
                Some(token),
            )
            .await;
        assert_eq!(h.body["status"], "active", "{h:?}");
        assert_eq!(e["quantity"], n);
    }
    assert_eq!(app.seat_map(&event).await["ga"][0]["remaining"], 0);
    let audit = app.engine_audit(&event).await;
    assert_eq!(audit["agrees"], true, "{audit}");
}

/// Many releases and many offering passes at once (several tasks; in the
/// distributed run on two nodes sharing PostgreSQL and Redis): every freed pair of
/// seats goes to exactly one entry, no entry gets two holds, no seat is in two
/// holds, one email per offer, and the engine agrees with the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_entry_or_seat_is_offered_twice_in_a_race() {
    const PAIRS: usize = 10;
    const WAITING: usize = 14;
    let one = TestApp::spawn_with(passes_by_hand).await;
    let two = if one.backend.is_distributed() {
        Some(TestApp::spawn_on(one.backend.clone(), passes_by_hand).await)
    } else {
        None
    };
    let nodes: Vec<&TestApp> = std::iter::once(&one).chain(two.as_ref()).collect();
    let (event, seats, _, _) = small_sale(&one, 2 * PAIRS as u32, 1).await;
    let mut holds = Vec::new();
    for pair in seats.chunks(2) {
        let b = one.customer().await;
        let r = one
            .hold_seats(&b, &event, &pair.iter().collect::<Vec<_>>())
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        holds.push((b, r.body["hold_id"].as_str().unwrap().to_owned()));
    }
    let mut waiters = Vec::new();
    for _ in 0..WAITING {
        let w = one.customer().await;
        let r = join(&one, &w, &event, json!({"quantity": 2})).await;
        assert_eq!(r.status, 201, "{r:?}");
        waiters.push((w, r.body["waitlist_id"].as_str().unwrap().to_owned()));
    }
    // Releases (spread over the nodes) and passes (8 tasks a node) all at once.
    let mut tasks = Vec::new();
    for (i, (b, h)) in holds.iter().enumerate() {
        let node = nodes[i % nodes.len()];
        let (url, client, b) = (
            node.url(&format!("/v1/holds/{h}")),
            node.client.clone(),
            b.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client.delete(url).bearer_auth(b).send().await.unwrap();
            assert_eq!(r.status(), 204);
        }));
    }
    for node in &nodes {
        for _ in 0..8 {
            let app = node.app().clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    app.waitlist_pass().await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Whatever the race left for later, a last pass on each node offers it.
    for node in &nodes {
        node.app().waitlist_pass().await.unwrap();
    }
    // Passes the releases woke on their nodes may still be finishing an offer.
    eventually("every freed pair offered", || async {
        let mut n = 0;
        for (w, id) in &waiters {
            n += usize::from(entry(&one, w, id).await["state"] == "offered");
        }
        n >= PAIRS
    })
    .await;
    for node in &nodes {
        node.app().settle().await;
    }
    let mut offered = Vec::new();
    let mut states = BTreeMap::new();
    for (w, id) in &waiters {
        let e = entry(&one, w, id).await;
        *states
            .entry(e["state"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        if e["state"] == "offered" {
            offered.push((w.clone(), e["hold_id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(offered.len(), PAIRS, "{states:?}");
    assert_eq!(
        states.get("waiting"),
        Some(&(WAITING - PAIRS)),
        "{states:?}"
    );
    let mut seen = BTreeSet::new();
    for (w, h) in &offered {
        let r = one.get(&format!("/v1/holds/{h}"), Some(w)).await;
        assert_eq!(r.body["status"], "active", "{r:?}");
        for s in r.body["seats"].as_array().unwrap() {
            assert!(
                seen.insert(s.as_str().unwrap().to_owned()),
                "seat {s} offered twice"
            );
        }
    }
    assert_eq!(seen.len(), 2 * PAIRS);
    // Held seats are exactly the offers' (a second hold for an entry would show).
    let map: String = one.statuses(&event).await.into_iter().collect();
    assert_eq!(map.matches('H').count(), 2 * PAIRS, "{map}");
    for node in &nodes {
        node.app().settle().await;
    }
    let audit = one.engine_audit(&event).await;
    assert_eq!(audit["agrees"], true, "{audit}");
    eventually("one email per offer", || async {
        offer_emails(&nodes).len() >= PAIRS
    })
    .await;
    let mails = offer_emails(&nodes);
    assert_eq!(mails.len(), PAIRS, "{mails:?}");
    for (_, h) in &offered {
        assert_eq!(
            mails.iter().filter(|m| m.contains(h.as_str())).count(),
            1,
            "{h}"
        );
    }
}
