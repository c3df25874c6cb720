//! Races over HTTP: hundreds of buyers at once, one event. Nothing may be sold or
//! held twice, every 201 must be real, and every 409 must be true.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const REQUESTS: usize = 600;
const CUSTOMERS: usize = 24;

async fn customers(app: &TestApp) -> Vec<String> {
    futures::future::join_all((0..CUSTOMERS).map(|_| app.customer())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_seat_holds_never_double_book() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(10, 10, 10, 300, 4).await;
    let tokens = customers(&app).await;

    // Request i asks for 1–4 adjacent seats starting somewhere among 100: heavy overlap.
    let asks: Vec<(String, Vec<String>)> = (0..REQUESTS)
        .map(|i| {
            let start = (i * 37) % 97;
            let n = 1 + i % 4;
            (
                tokens[i % CUSTOMERS].clone(),
                sale.seats[start..start + n].to_vec(),
            )
        })
        .collect();
    let tasks: Vec<_> = asks
        .iter()
        .cloned()
        .map(|(token, seats)| {
            let app = app.clone();
            let event = sale.id.clone();
            tokio::spawn(async move {
                let refs: Vec<&String> = seats.iter().collect();
                app.hold_seats(&token, &event, &refs).await
            })
        })
        .collect();
    let results: Vec<Res> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let mut owner: HashMap<String, String> = HashMap::new();
    let mut granted = Vec::new();
    for ((token, seats), r) in asks.iter().zip(&results) {
        if r.status == 201 {
            assert_eq!(r.body["seats"], json!(seats));
            for s in seats {
                let prev = owner.insert(s.clone(), r.body["hold_id"].as_str().unwrap().to_owned());
                assert!(prev.is_none(), "seat {s} is in two holds");
            }
            granted.push((
                token.clone(),
                r.body["hold_id"].as_str().unwrap().to_owned(),
                seats.clone(),
            ));
        }
    }
    let mut conflicts = 0;
    for ((_, seats), r) in asks.iter().zip(&results) {
        match r.status.as_u16() {
            201 => {}
            409 => {
                conflicts += 1;
                assert_eq!(r.code(), "seats_unavailable");
                let named: Vec<String> =
                    serde_json::from_value(r.body["error"]["seats"].clone()).unwrap();
                assert!(!named.is_empty());
                for s in &named {
                    assert!(seats.contains(s), "named a seat it did not ask for");
                    assert!(owner.contains_key(s), "named seat {s}, which nobody holds");
                }
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert!(
        !granted.is_empty() && conflicts > 0,
        "the test must actually race"
    );

    // Every 201 is honoured: the hold is active with its seats, and the map agrees.
    for (token, hold, seats) in &granted {
        let h = app.get(&format!("/v1/holds/{hold}"), Some(token)).await;
        assert_eq!(h.body["status"], "active");
        assert_eq!(h.body["seats"], json!(seats));
    }
    let statuses = app.statuses(&sale.id).await;
    let shown: BTreeSet<&String> = sale
        .seats
        .iter()
        .zip(&statuses)
        .filter(|(_, &c)| c == 'H')
        .map(|(s, _)| s)
        .collect();
    let held: BTreeSet<&String> = owner.keys().collect();
    assert_eq!(shown, held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn general_admission_never_passes_capacity() {
    let app = Arc::new(TestApp::spawn().await);
    const CAPACITY: u64 = 300;
    let sale = app.sale(1, 1, CAPACITY as u32, 300, 4).await;
    let tokens = customers(&app).await;
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let app = app.clone();
            let path = format!("/v1/events/{}/holds", sale.id);
            let body = json!({"tier_id": sale.ga_tier, "quantity": 1 + i % 4});
            let token = tokens[i % CUSTOMERS].clone();
            tokio::spawn(async move {
                (
                    1 + (i % 4) as u64,
                    app.post(&path, Some(&token), body).await,
                )
            })
        })
        .collect();
    let results: Vec<(u64, Res)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let held: u64 = results
        .iter()
        .filter(|(_, r)| r.status == 201)
        .map(|(q, _)| q)
        .sum();
    assert!(held <= CAPACITY, "held {held} of {CAPACITY}");
    let map: Value = app.seat_map(&sale.id).await;
    let remaining = map["ga"][0]["remaining"].as_u64().unwrap();
    assert_eq!(remaining, CAPACITY - held);
    let mut sold_out = 0;
    for (q, r) in &results {
        match r.status.as_u16() {
            201 => assert_eq!(r.body["quantity"].as_u64(), Some(*q)),
            409 => {
                sold_out += 1;
                assert_eq!(r.code(), "sold_out");
                // Capacity only shrinks here, so whoever was refused asked for more
                // than what is left even now.
                assert!(*q > remaining, "refused {q} with {remaining} left");
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert!(sold_out > 0, "the test must actually sell out");
}

/// Redis loses the sale's state twice — between rounds and in the middle of one —
/// while buyers race for seats. Afterwards: every hold that got a 201 is still live
/// and shown held, no seat is in two live holds, and selling them all sells each
/// seat once. (Distributed backends only: the in-process engine cannot lose state on
/// its own; its rebuild is covered by the restart tests.)
// Needs PostgreSQL, Redis and NATS: skipped visibly in the embedded run (it used to
// return early there, and pass), run by scripts/test's distributed run.
#[ignore = "distributed: run with BOXOFFICE_TEST_BACKEND=distributed and --include-ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_losing_its_state_mid_sale_loses_no_hold_and_sells_nothing_twice() {
    let backend = match Backend::from_env().await {
        b if b.is_distributed() => b,
        _ => Backend::distributed().await,
    };
    let app = Arc::new(TestApp::spawn_on(backend, |_| {}).await);
    let sale = app.sale(6, 10, 50, 300, 4).await;
    let tokens = customers(&app).await;
    let round = |offset: usize| {
        let (app, sale_id, seats, tokens) = (
            app.clone(),
            sale.id.clone(),
            sale.seats.clone(),
            tokens.clone(),
        );
        async move {
            let tasks: Vec<_> = (0..80)
                .map(|i| {
                    let app = app.clone();
                    let token = tokens[i % tokens.len()].clone();
                    let start = (i * 13 + offset) % 57;
                    let ask: Vec<String> = seats[start..start + 1 + i % 3].to_vec();
                    let event = sale_id.clone();
                    tokio::spawn(async move {
                        let refs: Vec<&String> = ask.iter().collect();
                        let r = app.hold_seats(&token, &event, &refs).await;
                        (token, ask, r)
                    })
                })
                .collect();
            futures::future::join_all(tasks)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        }
    };
    let mut results = round(0).await;
    app.backend.lose_redis_state().await;
    let (second, ()) = tokio::join!(round(7), async {
        tokio::task::yield_now().await;
        app.backend.lose_redis_state().await;
    });
    results.extend(second);

    let mut live: HashMap<String, (String, String)> = HashMap::new(); // seat -> (hold, token)
    for (token, seats, r) in &results {
        match r.status.as_u16() {
            201 => {
                let hold = r.body["hold_id"].as_str().unwrap().to_owned();
                let h = app.get(&format!("/v1/holds/{hold}"), Some(token)).await;
                assert_eq!(h.body["status"], "active", "a granted hold was lost");
                for s in seats {
                    let prev = live.insert(s.clone(), (hold.clone(), token.clone()));
                    assert!(prev.is_none(), "seat {s} is in two live holds");
                }
            }
            409 => assert_eq!(r.code(), "seats_unavailable"),
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    let statuses = app.statuses(&sale.id).await;
    for (i, s) in sale.seats.iter().enumerate() {
        assert_eq!(
            statuses[i] == 'H',
            live.contains_key(s),
            "seat {i} shows {}",
            statuses[i]
        );
    }

    // Sell everything that is held: each seat once.
    let holds: BTreeSet<(String, String)> = live.values().cloned().collect();
    let mut ticket_seats = Vec::new();
    for (hold, token) in &holds {
        let c = app
            .checkout(token, hold, &format!("k-{hold}"), "tok_visa")
            .await;
        assert_eq!(c.status, 202, "{c:?}");
        let o = app
            .final_order(token, c.body["order_id"].as_str().unwrap())
            .await;
        assert_eq!(o["status"], "paid", "{o}");
        ticket_seats.extend(
            o["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["seat_id"].as_str().unwrap().to_owned()),
        );
    }
    let unique: BTreeSet<&String> = ticket_seats.iter().collect();
    assert_eq!(unique.len(), ticket_seats.len(), "a seat sold twice");
    assert_eq!(unique.len(), live.len());
}

/// A cheap, repeatable pseudo-random number per (seed, i).
fn jitter(seed: u64, i: u64) -> u64 {
    let mut x = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^ (x >> 33)
}

/// Sends `body` to `path` and gives up after `limit`: the server drops the request
/// wherever it is. Returns the answer if one came in time.
async fn impatient(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    key: Option<&str>,
    limit: std::time::Duration,
) -> Option<(u16, Value)> {
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .timeout(limit);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.ok()?;
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// Hold, checkout and release requests cancelled at random points (the client gives
/// up after a random few milliseconds, so the server drops the request's future
/// wherever it is). Afterwards the hold engine and the store agree seat by seat: once
/// every payment is final, again when every hold's TTL has passed (a checkout whose
/// engine extension outlived a store write that never happened shows only then), and
/// after a restart rebuilt the engine from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_requests_leave_engine_and_store_agreeing() {
    let clock = Arc::new(boxoffice_ports::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = app.sale(10, 10, 20, 60, 4).await;
    let tokens = customers(&app).await;
    let app_ref = Arc::new(app);
    let seed = std::process::id() as u64;
    let tasks: Vec<_> = (0..400u64)
        .map(|i| {
            let app = app_ref.clone();
            let token = tokens[i as usize % CUSTOMERS].clone();
            let (event, ga) = (sale.id.clone(), sale.ga_tier.clone());
            let start = (i as usize * 37) % 98;
            let seats: Vec<String> = sale.seats[start..start + 1 + (i as usize % 2)].to_vec();
            tokio::spawn(async move {
                let r = jitter(seed, i);
                // Some requests wait long enough to be answered, most are cut short
                // somewhere inside the server (a debug build on a busy machine takes
                // milliseconds per request).
                let patience = |n: u64| match n % 3 {
                    0 => std::time::Duration::from_secs(30),
                    _ => std::time::Duration::from_micros(500 + (n >> 8) % 40_000),
                };
                let body = if r.is_multiple_of(5) {
                    json!({"tier_id": ga, "quantity": 1})
                } else {
                    json!({ "seats": seats })
                };
                let path = format!("/v1/events/{event}/holds");
                let held = impatient(
                    &app,
                    reqwest::Method::POST,
                    &path,
                    &token,
                    Some(body),
                    None,
                    patience(r),
                )
                .await;
                let Some((201, hold)) = held else {
                    return held.is_none() as usize;
                };
                let hold = hold["hold_id"].as_str().unwrap().to_owned();
                let r2 = jitter(seed, i + 10_000);
                match r2 % 4 {
                    0 | 1 => {
                        let path = format!("/v1/holds/{hold}/checkout");
                        let body =
                            json!({"email": "b@example.com", "payment": {"token": "tok_visa"}});
                        let key = format!("k-{hold}");
                        impatient(
                            &app,
                            reqwest::Method::POST,
                            &path,
                            &token,
                            Some(body),
                            Some(&key),
                            patience(r2),
                        )
                        .await
                        .is_none() as usize
                    }
                    2 => {
                        let path = format!("/v1/holds/{hold}");
                        impatient(
                            &app,
                            reqwest::Method::DELETE,
                            &path,
                            &token,
                            None,
                            None,
                            patience(r2),
                        )
                        .await
                        .is_none() as usize
                    }
                    _ => 0,
                }
            })
        })
        .collect();
    let mut cancelled = 0;
    for t in tasks {
        cancelled += t.await.unwrap();
    }
    let audit = |app: Arc<TestApp>| {
        let event = sale.id.clone();
        async move {
            let r = app
                .get(
                    &format!("/v1/admin/events/{event}/engine-audit"),
                    Some(&app.admin),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body
        }
    };
    // Detached writes settle first (the audit waits for them); then every order the
    // cancelled checkouts may have created is paid or failed.
    audit(app_ref.clone()).await;
    let mut orders = 0;
    for token in &tokens {
        let mine = app_ref.get("/v1/me/orders", Some(token)).await;
        for o in mine.body["orders"].as_array().unwrap() {
            app_ref.final_order(token, o["id"].as_str().unwrap()).await;
            orders += 1;
        }
    }
    assert!(
        orders > 0 && cancelled > 0,
        "the race must have orders ({orders}) and cancelled requests ({cancelled})"
    );
    let now = audit(app_ref.clone()).await;
    assert_eq!(now["agrees"], true, "after the payments: {now}");
    clock.advance(time::Duration::seconds(61));
    let later = audit(app_ref.clone()).await;
    assert_eq!(later["agrees"], true, "once every TTL passed: {later}");
    let before = app_ref.statuses(&sale.id).await;
    let mut app = Arc::into_inner(app_ref).expect("no other owner");
    app.restart().await;
    assert_eq!(app.statuses(&sale.id).await, before, "the rebuilt engine");
    eprintln!(
        "cancellation race: {orders} orders, {cancelled} requests cancelled, statuses {:?}",
        before.iter().collect::<String>()
    );
}

/// Buyers race for seats while the hold engine is rebuilt from the store twice (it
/// evicts the event: the store caught it wrong), then release, pay for or keep what
/// they got while every third engine release and confirm fails right after its
/// commit. Afterwards every 201 is a live hold or became what its buyer did with it,
/// no seat is in two live holds, every seat shows exactly that, and the engine and
/// the store agree seat by seat (faults 7 and 3, raced).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilds_and_engine_failures_mid_sale_leave_one_truth() {
    let clock = Arc::new(boxoffice_ports::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let engine = FaultyEngine::new();
    let app = Arc::new(TestApp::spawn_with_engine(|_| {}, clock, engine.clone()).await);
    let sale = app.sale(6, 10, 50, 300, 4).await;
    let tokens = customers(&app).await;
    let event = boxoffice_domain::EventId::try_from(sale.id.as_str()).unwrap();
    let round = |offset: usize| {
        let (app, sale_id, seats, tokens) = (
            app.clone(),
            sale.id.clone(),
            sale.seats.clone(),
            tokens.clone(),
        );
        async move {
            let tasks: Vec<_> = (0..80)
                .map(|i| {
                    let app = app.clone();
                    let token = tokens[i % tokens.len()].clone();
                    let start = (i * 13 + offset) % 57;
                    let ask: Vec<String> = seats[start..start + 1 + i % 3].to_vec();
                    let event = sale_id.clone();
                    tokio::spawn(async move {
                        let refs: Vec<&String> = ask.iter().collect();
                        let r = app.hold_seats(&token, &event, &refs).await;
                        (token, ask, r)
                    })
                })
                .collect();
            futures::future::join_all(tasks)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        }
    };
    let evict = || async {
        tokio::task::yield_now().await;
        engine.inner().evict(&event).await.unwrap();
    };
    let (mut results, ()) = tokio::join!(round(0), evict());
    let (second, ()) = tokio::join!(round(7), evict());
    results.extend(second);

    let mut live: HashMap<String, (String, String)> = HashMap::new(); // seat -> (hold, token)
    for (token, seats, r) in &results {
        match r.status.as_u16() {
            201 => {
                let hold = r.body["hold_id"].as_str().unwrap().to_owned();
                let h = app.get(&format!("/v1/holds/{hold}"), Some(token)).await;
                assert_eq!(h.body["status"], "active", "a granted hold was lost");
                for s in seats {
                    let prev = live.insert(s.clone(), (hold.clone(), token.clone()));
                    assert!(prev.is_none(), "seat {s} is in two live holds");
                }
            }
            409 => assert_eq!(r.code(), "seats_unavailable"),
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    let holds: BTreeSet<(String, String)> = live.values().cloned().collect();
    assert!(
        holds.len() >= 6,
        "the race must grant holds: {}",
        holds.len()
    );

    // A third of the holds are paid for, a third released, a third kept, all at once,
    // while the engine fails every third release and confirm after the commit.
    engine.flaky("release", 3);
    engine.flaky("confirm", 3);
    let tasks: Vec<_> = holds
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (hold, token))| {
            let app = app.clone();
            tokio::spawn(async move {
                match i % 3 {
                    0 => {
                        let c = app
                            .checkout(&token, &hold, &format!("k-{hold}"), "tok_visa")
                            .await;
                        assert_eq!(c.status, 202, "{c:?}");
                        let o = app
                            .final_order(&token, c.body["order_id"].as_str().unwrap())
                            .await;
                        assert_eq!(o["status"], "paid", "{o}");
                        (hold, 'S')
                    }
                    1 => {
                        let r = app.delete(&format!("/v1/holds/{hold}"), Some(&token)).await;
                        assert_eq!(r.status, 204, "{r:?}");
                        (hold, 'A')
                    }
                    _ => (hold, 'H'),
                }
            })
        })
        .collect();
    let fate: HashMap<String, char> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        engine.failures("release") + engine.failures("confirm") > 0,
        "the engine must actually fail"
    );
    let audit = app.engine_audit(&sale.id).await;
    assert_eq!(audit["agrees"], true, "{audit}");
    let statuses = app.statuses(&sale.id).await;
    for (i, s) in sale.seats.iter().enumerate() {
        let expected = live.get(s).map_or('A', |(hold, _)| fate[hold]);
        assert_eq!(statuses[i], expected, "seat {i}");
    }
}
