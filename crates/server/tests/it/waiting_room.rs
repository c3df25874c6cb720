//! The virtual waiting room (issue 12): settings, joining, admission by rate and by
//! capacity, the pre-queue lottery, the admission token on holds, proof of work.
//! Time moves by hand (the manual clock drives the in-process room and, in the
//! distributed run, Redis's scripts).

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

async fn patch_event(app: &TestApp, event: &str, body: Value) -> Res {
    app.call(
        Method::PATCH,
        &format!("/v1/events/{event}"),
        Some(&app.admin),
        Some(body),
    )
    .await
}

/// An on-sale event with this waiting room.
async fn room_sale(app: &TestApp, room: Value) -> Sale {
    let sale = app.sale(4, 10, 100, 300, 4).await;
    let r = patch_event(app, &sale.id, json!({ "waiting_room": room })).await;
    assert_eq!(r.status, 200, "{r:?}");
    sale
}

async fn join(app: &TestApp, token: &str, event: &str) -> Res {
    app.call(
        Method::POST,
        &format!("/v1/events/{event}/queue"),
        Some(token),
        None,
    )
    .await
}

async fn status(app: &TestApp, queue_id: &str) -> Value {
    let r = app.get(&format!("/v1/queue/{queue_id}"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

async fn hold_with(app: &TestApp, token: &str, sale: &Sale, seat: usize, admission: &str) -> Res {
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{}/holds", sale.id)))
        .bearer_auth(token)
        .header("Boxoffice-Admission", admission)
        .json(&json!({ "seats": [sale.seats[seat]] }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    Res {
        status,
        body: r.json().await.unwrap_or(Value::Null),
        headers,
    }
}

fn room(per_minute: u32, max_active: Option<u32>, session: u32) -> Value {
    json!({
        "enabled": true,
        "admission_per_minute": per_minute,
        "max_active_shoppers": max_active,
        "session_seconds": session,
    })
}

/// A customer in the queue: their token and queue id.
struct Joiner {
    token: String,
    queue_id: String,
}

async fn joiners(app: &TestApp, event: &str, n: usize) -> Vec<Joiner> {
    let mut out = Vec::new();
    for _ in 0..n {
        let token = app.customer().await;
        let r = join(app, &token, event).await;
        assert_eq!(r.status, 201, "{r:?}");
        out.push(Joiner {
            token,
            queue_id: r.body["queue_id"].as_str().unwrap().to_owned(),
        });
    }
    out
}

async fn states(app: &TestApp, js: &[Joiner]) -> Vec<String> {
    let mut out = Vec::new();
    for j in js {
        out.push(
            status(app, &j.queue_id).await["state"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    out
}

fn count(states: &[String], s: &str) -> usize {
    states.iter().filter(|x| *x == s).count()
}

fn clocked() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::now_utc()))
}

#[tokio::test]
async fn waiting_room_settings_are_kept_shown_and_checked() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 5)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Roomy", "starts_at": "2031-01-01T20:00:00Z",
            "tiers": [{"name": "T", "price": {"amount": 100, "currency": "EUR"}, "sections": ["A"]}],
            "waiting_room": {"enabled": true, "admission_per_minute": 120, "max_active_shoppers": 50,
                             "session_seconds": 600, "pre_queue_opens_at": "2030-12-01T10:00:00Z",
                             "challenge_difficulty": 12}
        }))
        .await;
    let id = ev["id"].as_str().unwrap();
    let shown = app.get(&format!("/v1/events/{id}"), Some(&app.admin)).await;
    let wr = &shown.body["waiting_room"];
    assert_eq!(wr["admission_per_minute"], 120);
    assert_eq!(wr["max_active_shoppers"], 50);
    assert_eq!(wr["session_seconds"], 600);
    assert_eq!(wr["challenge_difficulty"], 12);
    assert_eq!(wr["pre_queue_opens_at"], "2030-12-01T10:00:00Z");
    let r = patch_event(&app, id, json!({"waiting_room": room(60, None, 300)})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["waiting_room"]["max_active_shoppers"], Value::Null);
    assert_eq!(r.body["waiting_room"]["challenge_difficulty"], 0);
    for bad in [
        json!({"waiting_room": room(0, None, 300)}),
        json!({"waiting_room": room(60, Some(0), 300)}),
        json!({"waiting_room": room(60, None, 0)}),
        json!({"waiting_room": {"enabled": true, "admission_per_minute": 60, "session_seconds": 60, "challenge_difficulty": 40}}),
    ] {
        let r = patch_event(&app, id, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {r:?}");
        assert_eq!(r.code(), "invalid_request");
    }
    let r = patch_event(&app, id, json!({"waiting_room": {"enabled": "yes"}})).await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = patch_event(&app, id, json!({"waiting_room": null})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["waiting_room"], Value::Null);
}

/// Holds need an admission while the room is on: none, a forged one, another
/// customer's or another event's are all 403 `admission_required`; the customer's
/// own works.
#[tokio::test]
async fn holds_need_the_customers_own_admission_token() {
    let app = TestApp::spawn().await;
    let sale = room_sale(&app, room(600, None, 600)).await;
    let other_sale = room_sale(&app, room(600, None, 600)).await;
    let ann = app.customer().await;
    let bob = app.customer().await;

    let r = app.hold_seats(&ann, &sale.id, &[&sale.seats[0]]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "admission_required");

    let joined = join(&app, &ann, &sale.id).await;
    assert_eq!(joined.status, 201, "{joined:?}");
    assert_eq!(joined.body["state"], "admitted");
    let st = status(&app, joined.body["queue_id"].as_str().unwrap()).await;
    assert_eq!(st["state"], "admitted");
    assert_eq!(st["position"], 0);
    let token = st["admission_token"].as_str().unwrap().to_owned();

    // Forged: the signature of another payload, or a flipped claim.
    let (body, sig) = token.rsplit_once('.').unwrap();
    let mut forged_sig = sig.to_owned().into_bytes();
    forged_sig[3] = if forged_sig[3] == b'A' { b'B' } else { b'A' };
    let forged = format!("{body}.{}", String::from_utf8(forged_sig).unwrap());
    for bad in [forged.as_str(), "nonsense", "a.b.c", ""] {
        let r = hold_with(&app, &ann, &sale, 0, bad).await;
        assert_eq!(r.status, 403, "{bad}: {r:?}");
        assert_eq!(r.code(), "admission_required");
    }
    // Another customer replaying Ann's token.
    let r = hold_with(&app, &bob, &sale, 1, &token).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "admission_required");
    // Ann's token on another event with a room.
    let r = hold_with(&app, &ann, &other_sale, 1, &token).await;
    assert_eq!(r.status, 403, "{r:?}");
    // Ann's own: held.
    let r = hold_with(&app, &ann, &sale, 0, &token).await;
    assert_eq!(r.status, 201, "{r:?}");
    // The room off: no token needed.
    let r = patch_event(&app, &sale.id, json!({"waiting_room": {"enabled": false, "admission_per_minute": 1, "session_seconds": 1}})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.hold_seats(&bob, &sale.id, &[&sale.seats[2]]).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = join(&app, &bob, &sale.id).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.code(), "no_waiting_room");
}

/// The admission token and the session end together: after `session_seconds` the
/// hold is refused and the queue says `expired`.
#[tokio::test]
async fn the_admission_expires_with_the_session() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = room_sale(&app, room(600, None, 120)).await;
    let ann = app.customer().await;
    let q = join(&app, &ann, &sale.id).await.body["queue_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let st = status(&app, &q).await;
    let token = st["admission_token"].as_str().unwrap().to_owned();
    clock.advance(Duration::seconds(119));
    let r = hold_with(&app, &ann, &sale, 0, &token).await;
    assert_eq!(r.status, 201, "{r:?}");
    clock.advance(Duration::seconds(1));
    let r = hold_with(&app, &ann, &sale, 1, &token).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "admission_required");
    let st = status(&app, &q).await;
    assert_eq!(st["state"], "expired");
    assert!(st.get("admission_token").is_none(), "{st}");
}

#[tokio::test]
async fn joining_twice_returns_the_same_place() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = room_sale(&app, room(1, None, 600)).await;
    let first = joiners(&app, &sale.id, 3).await;
    let again = join(&app, &first[2].token, &sale.id).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body["queue_id"], first[2].queue_id.as_str());
    assert_eq!(again.body["state"], "waiting");
    assert_eq!(again.body["position"], 2);
    assert_eq!(again.body["rank"], 3);
    let again = join(&app, &first[0].token, &sale.id).await;
    assert_eq!(again.body["queue_id"], first[0].queue_id.as_str());
    assert_eq!(again.body["state"], "admitted");
    // A made-up or altered queue id is not found.
    let r = app
        .get("/v1/queue/bm90LWEtcXVldWUtaWQ.AAAAAAAAAAAAAAAAAAAAAA", None)
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = app.get("/v1/queue/%FF", None).await;
    assert_eq!(r.status, 400, "{r:?}");
}

/// At 60 a minute the room lets in one at once and one a second after, whoever
/// asks and whenever: after t seconds, t + 1 are in.
#[tokio::test]
async fn rate_admission_follows_the_configured_rate() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = room_sale(&app, room(60, None, 3600)).await;
    let js = joiners(&app, &sale.id, 10).await;
    let s = states(&app, &js).await;
    assert_eq!(count(&s, "admitted"), 1, "{s:?}");
    assert_eq!(s[0], "admitted");
    let st = status(&app, &js[5].queue_id).await;
    assert_eq!(st["state"], "waiting");
    assert_eq!(st["position"], 5);
    assert_eq!(st["estimated_wait_seconds"], 5);
    clock.advance(Duration::milliseconds(999));
    assert_eq!(count(&states(&app, &js).await, "admitted"), 1);
    clock.advance(Duration::milliseconds(1));
    assert_eq!(count(&states(&app, &js).await, "admitted"), 2);
    // Nobody asks for 3.5 s: the admissions are caught up at the next call.
    clock.advance(Duration::milliseconds(3500));
    let s = states(&app, &js).await;
    assert_eq!(count(&s, "admitted"), 5, "{s:?}");
    assert!(s[..5].iter().all(|x| x == "admitted") && s[5..].iter().all(|x| x == "waiting"));
    clock.advance(Duration::seconds(60));
    assert_eq!(count(&states(&app, &js).await, "admitted"), 10);
    // An empty queue saves nothing up: the next joiner gets in, the one after waits.
    let late = joiners(&app, &sale.id, 2).await;
    assert_eq!(states(&app, &late).await, ["admitted", "waiting"]);
}

/// With at most two shoppers inside, the third gets in as one leaves (DELETE, the
/// leaver's token dies with the slot) and the fourth as a session times out.
#[tokio::test]
async fn capacity_admits_one_as_one_leaves() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = room_sale(&app, room(6000, Some(2), 300)).await;
    let js = joiners(&app, &sale.id, 4).await;
    clock.advance(Duration::seconds(10));
    let s = states(&app, &js).await;
    assert_eq!(s, ["admitted", "admitted", "waiting", "waiting"]);
    let token0 = status(&app, &js[0].queue_id).await["admission_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete(&format!("/v1/queue/{}", js[0].queue_id), None)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let s = states(&app, &js).await;
    assert_eq!(s, ["expired", "admitted", "admitted", "waiting"]);
    let r = hold_with(&app, &js[0].token, &sale, 0, &token0).await;
    assert_eq!(r.status, 403, "a left session's token: {r:?}");
    // Sessions 1 and 2 time out: the fourth gets in (one slot left over, no one
    // waiting for it).
    clock.advance(Duration::seconds(300));
    let s = states(&app, &js).await;
    assert_eq!(s, ["expired", "expired", "expired", "admitted"]);
}

/// Joins before the sale start are drawn by lot at the start (their places are a
/// permutation of 1..n, not the join order), joins after it queue behind them in
/// join order, and admission follows the drawn order.
#[tokio::test]
async fn the_pre_queue_is_a_lottery_then_fifo() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let now = clock_now(&clock);
    let venue = app.venue(&[("A", 2, 10)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Lottery", "starts_at": "2031-01-01T20:00:00Z",
            "sale_starts_at": rfc3339(now + Duration::hours(1)),
            "tiers": [{"name": "T", "price": {"amount": 100, "currency": "EUR"}, "sections": ["A"]}],
            "waiting_room": {"enabled": true, "admission_per_minute": 60, "session_seconds": 600,
                             "pre_queue_opens_at": rfc3339(now + Duration::minutes(30))}
        }))
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&id, "on_sale").await;
    let early = app.customer().await;
    let r = join(&app, &early, &id).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.code(), "queue_not_open");

    clock.advance(Duration::minutes(30));
    let n = 24;
    let pre = joiners(&app, &id, n).await;
    for (i, j) in pre.iter().enumerate() {
        let st = status(&app, &j.queue_id).await;
        assert_eq!(st["state"], "pre_queue");
        assert_eq!(st["position"], i as u64 + 1);
        assert_eq!(st["rank"], Value::Null);
    }
    clock.advance(Duration::minutes(30));
    let mut ranks = Vec::new();
    for j in &pre {
        ranks.push(status(&app, &j.queue_id).await["rank"].as_u64().unwrap());
    }
    let mut sorted = ranks.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=n as u64).collect::<Vec<_>>(), "a permutation");
    assert_ne!(ranks, sorted, "drawn, not in join order");
    let post = joiners(&app, &id, 3).await;
    for (i, j) in post.iter().enumerate() {
        assert_eq!(
            status(&app, &j.queue_id).await["rank"],
            n as u64 + 1 + i as u64
        );
    }
    // Admission follows the draw: after 4 s, ranks 1 to 5 are in, no one else.
    clock.advance(Duration::seconds(4));
    for (j, rank) in pre.iter().zip(&ranks) {
        let st = status(&app, &j.queue_id).await;
        let expected = if *rank <= 5 { "admitted" } else { "waiting" };
        assert_eq!(st["state"], expected, "rank {rank}: {st}");
    }
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    boxoffice_ports::Clock::now(clock)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Many customers joining at once get unique, dense places (join numbers 1..n in
/// the pre-queue; ranks 1..n once drawn), and a customer joining twice at once
/// gets one place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_get_unique_dense_places() {
    let clock = clocked();
    let app = Arc::new(TestApp::spawn_with_clock(|_| {}, clock.clone()).await);
    let now = clock_now(&clock);
    let sale = app.sale(2, 10, 10, 300, 4).await;
    let r = patch_event(
        &app,
        &sale.id,
        json!({"waiting_room": {"enabled": true, "admission_per_minute": 1, "session_seconds": 60,
                                "pre_queue_opens_at": rfc3339(now - Duration::minutes(1))}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Paused: the sale has not started, the pre-queue is open.
    app.set_status(&sale.id, "paused").await;
    let n = 60;
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(app.customer().await);
    }
    // Every customer joins twice at once.
    let tasks: Vec<_> = tokens
        .iter()
        .chain(tokens.iter())
        .map(|t| {
            let (app, t, ev) = (app.clone(), t.clone(), sale.id.clone());
            tokio::spawn(async move { join(&app, &t, &ev).await })
        })
        .collect();
    let results: Vec<Res> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut places = Vec::new();
    for (a, b) in results[..n].iter().zip(&results[n..]) {
        assert_eq!(a.status, 201, "{a:?}");
        assert_eq!(
            a.body["queue_id"], b.body["queue_id"],
            "one place per customer"
        );
        assert_eq!(a.body["state"], "pre_queue");
        places.push(a.body["position"].as_u64().unwrap());
    }
    let unique: HashSet<u64> = places.iter().copied().collect();
    assert_eq!(unique.len(), n, "unique places");
    assert_eq!(
        unique,
        (1..=n as u64).collect::<HashSet<_>>(),
        "dense places"
    );
    // The draw at the start ranks them 1..n.
    app.set_status(&sale.id, "on_sale").await;
    let mut ranks = HashSet::new();
    for r in &results[..n] {
        let st = status(&app, r.body["queue_id"].as_str().unwrap()).await;
        ranks.insert(st["rank"].as_u64().unwrap());
    }
    assert_eq!(ranks, (1..=n as u64).collect::<HashSet<_>>());
}

/// With `challenge_difficulty` set, a join needs a solved challenge: none, a wrong
/// nonce, another customer's or an expired challenge are refused with their codes.
#[tokio::test]
async fn joining_needs_a_solved_proof_of_work() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = room_sale(
        &app,
        json!({"enabled": true, "admission_per_minute": 600, "session_seconds": 600, "challenge_difficulty": 10}),
    )
    .await;
    let ann = app.customer().await;
    let bob = app.customer().await;
    let r = join(&app, &ann, &sale.id).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "challenge_required");
    assert_eq!(r.body["error"]["difficulty"], 10);

    let challenge = |who: String| {
        let app = &app;
        let ev = sale.id.clone();
        async move {
            let r = app
                .get(&format!("/v1/events/{ev}/queue/challenge"), Some(&who))
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.body["difficulty"], 10);
            r.body["challenge"].as_str().unwrap().to_owned()
        }
    };
    let path = format!("/v1/events/{}/queue", sale.id);
    let post = |who: &str, body: Value| {
        let (app, path, who) = (&app, path.clone(), who.to_owned());
        async move { app.post(&path, Some(&who), body).await }
    };
    let c = challenge(ann.clone()).await;
    let nonce = boxoffice_app::waiting_room::solve_pow(&c, 10);
    // A nonce that does not solve it (one that does for 10 bits is rare for 20).
    let wrong = (0u64..)
        .map(|n| n.to_string())
        .find(|n| !boxoffice_app::waiting_room::pow_ok(&c, n, 10))
        .unwrap();
    let r = post(&ann, json!({"challenge": c, "nonce": wrong})).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "challenge_failed");
    // Bob replaying Ann's solved challenge.
    let r = post(&bob, json!({"challenge": c, "nonce": nonce})).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "challenge_failed");
    // A forged challenge.
    let r = post(&ann, json!({"challenge": "eHg.AAAA", "nonce": "1"})).await;
    assert_eq!(r.code(), "challenge_failed", "{r:?}");
    let r = post(&ann, json!({"challenge": c, "nonce": nonce})).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["state"], "admitted");
    // Expired: five minutes to answer.
    let c = challenge(bob.clone()).await;
    let nonce = boxoffice_app::waiting_room::solve_pow(&c, 10);
    clock.advance(Duration::seconds(300));
    let r = post(&bob, json!({"challenge": c, "nonce": nonce})).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "challenge_expired");
    let r = post(&bob, json!({"challenge": 5})).await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{}/queue", sale.id)))
        .bearer_auth(&bob)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The stream sends the state at once (here: admitted, with the token) and ends
/// when there is nothing more to say.
#[tokio::test]
async fn the_queue_streams_its_state() {
    let app = TestApp::spawn().await;
    let sale = room_sale(&app, room(600, None, 600)).await;
    let ann = app.customer().await;
    let q = join(&app, &ann, &sale.id).await.body["queue_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .get(app.url(&format!("/v1/queue/{q}/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.starts_with("event: state\n"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["state"], "admitted");
    assert!(v["admission_token"].is_string());
}

/// A checkout ends the shopper's session (its admission token sent on the checkout):
/// with admission by capacity, the next in line is admitted at once, not when the
/// session would have timed out; the token no longer holds.
#[tokio::test]
async fn a_checkout_ends_the_session_and_admits_the_next() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = room_sale(&app, room(6000, Some(1), 3600)).await;
    let js = joiners(&app, &sale.id, 2).await;
    clock.advance(Duration::seconds(10));
    assert_eq!(states(&app, &js).await, ["admitted", "waiting"]);
    let token0 = status(&app, &js[0].queue_id).await["admission_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let h = hold_with(&app, &js[0].token, &sale, 0, &token0).await;
    assert_eq!(h.status, 201, "{h:?}");
    let hold = h.body["hold_id"].as_str().unwrap();
    let r = app
        .client
        .post(app.url(&format!("/v1/holds/{hold}/checkout")))
        .bearer_auth(&js[0].token)
        .header("Idempotency-Key", "room-1")
        .header("Boxoffice-Admission", &token0)
        .json(&json!({"email": "buyer@example.com", "payment": {"token": "tok_visa"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(states(&app, &js).await, ["expired", "admitted"]);
    let r = hold_with(&app, &js[0].token, &sale, 1, &token0).await;
    assert_eq!(r.status, 403, "a finished session's token: {r:?}");
}

/// Reading one's place is rate limited per queue id: a client polling in a loop
/// gets 429 `rate_limited` with `Retry-After` (polls and stream opens alike), while
/// another shopper's polls are served.
#[tokio::test]
async fn polling_the_queue_is_rate_limited_per_queue_id() {
    let clock = clocked();
    let app = TestApp::spawn_with_clock(
        |c| {
            c.rate_limit_poll_per_minute = 60;
            c.rate_limit_poll_burst = 3;
        },
        clock.clone(),
    )
    .await;
    let sale = room_sale(&app, room(1, Some(1), 300)).await;
    let js = joiners(&app, &sale.id, 2).await;
    let path = format!("/v1/queue/{}", js[0].queue_id);
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(app.get(&path, None).await.status.as_u16());
    }
    assert!(codes[..3].iter().all(|&c| c == 200), "{codes:?}");
    assert_eq!(codes[5], 429, "{codes:?}");
    let r = app.get(&path, None).await;
    assert_eq!(r.code(), "rate_limited");
    assert!(r.headers.get("retry-after").is_some(), "{r:?}");
    let r = app.get(&format!("{path}/stream"), None).await;
    assert_eq!(r.status, 429, "a stream open counts too: {r:?}");
    // The polite one is served.
    assert_eq!(
        app.get(&format!("/v1/queue/{}", js[1].queue_id), None)
            .await
            .status,
        200
    );
    // Time gives the allowance back.
    clock.advance(Duration::seconds(2));
    assert_eq!(app.get(&path, None).await.status, 200);
}
