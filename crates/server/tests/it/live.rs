//! The live seat map over Server-Sent Events (`GET /v1/events/{id}/stream`): a
//! snapshot, then changes with layout indices and GA remaining; `Last-Event-ID`
//! resumption; a hold on one node seen on another's stream; and a stream that
//! follows a burst of concurrent holds ends exactly where `GET /seats` is.

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// One event as received.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub id: u64,
    pub data: Value,
}

/// A client of one event's stream: reads and parses events as they come.
pub struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    pub async fn open(app: &TestApp, event: &str, last: Option<&str>) -> Stream {
        // As a browser asks: a compressed stream would hold pushes in the encoder.
        let mut req = app
            .client
            .get(app.url(&format!("/v1/events/{event}/stream")))
            .header("accept-encoding", "gzip, br");
        if let Some(l) = last {
            req = req.header("Last-Event-ID", l);
        }
        let res = req.send().await.expect("stream opened");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        assert!(res.headers().get("content-encoding").is_none());
        assert_eq!(res.headers()["cache-control"], "no-cache");
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped). Bounded only to fail, not to
    /// wait: a change is pushed within a tick (250 ms) of happening.
    pub async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().expect("a numeric id"));
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if event.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return Sse {
                    event,
                    id: id.expect("every event has an id"),
                    data: serde_json::from_str(&data).expect("JSON data"),
                };
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.res.chunk())
                .await
                .expect("an event within 30 s")
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// The seat map as a page keeps it: a snapshot, patched by each change.
#[derive(Debug, Default)]
pub struct Mirror {
    pub version: u64,
    pub status: Vec<char>,
    pub ga: HashMap<String, u64>,
}

impl Mirror {
    pub fn apply(&mut self, e: &Sse) {
        match e.event.as_str() {
            "snapshot" => {
                self.status = e.data["status"].as_str().unwrap().chars().collect();
                self.ga.clear();
            }
            "change" => {
                assert!(
                    e.id > self.version,
                    "versions grow: {} after {}",
                    e.id,
                    self.version
                );
                for c in e.data["changes"].as_array().unwrap() {
                    let ix = c[0].as_u64().unwrap() as usize;
                    self.status[ix] = c[1].as_str().unwrap().chars().next().unwrap();
                }
            }
            other => panic!("unexpected event {other}"),
        }
        assert_eq!(e.data["version"].as_u64(), Some(e.id), "id: is the version");
        for g in e.data["ga"].as_array().unwrap() {
            self.ga.insert(
                g["tier_id"].as_str().unwrap().to_owned(),
                g["remaining"].as_u64().unwrap(),
            );
        }
        self.version = e.id;
    }

    /// Reads until `done` holds for the mirror.
    pub async fn follow(&mut self, s: &mut Stream, done: impl Fn(&Mirror) -> bool) {
        while !done(self) {
            let e = s.next().await;
            self.apply(&e);
        }
    }
}

fn changes(e: &Sse) -> Value {
    e.data["changes"].clone()
}

async fn hold_ga(app: &TestApp, token: &str, sale: &Sale, quantity: u32) -> Res {
    app.post(
        &format!("/v1/events/{}/holds", sale.id),
        Some(token),
        json!({"tier_id": sale.ga_tier, "quantity": quantity}),
    )
    .await
}

/// The first event is the body of `GET /seats`; a hold, a GA hold, a release and a
/// sale each arrive as a change naming the seats by layout index.
#[tokio::test]
async fn a_stream_starts_with_the_seat_map_then_pushes_each_change() {
    let app = TestApp::spawn().await;
    let sale = app.sale(2, 10, 50, 600, 6).await;
    let before = app.seat_map(&sale.id).await;
    let mut s = Stream::open(&app, &sale.id, None).await;
    let first = s.next().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data, before, "the snapshot is GET /seats");
    assert_eq!(first.id, before["version"].as_u64().unwrap());

    let ann = app.customer().await;
    let h = app
        .hold_seats(&ann, &sale.id, &[&sale.seats[0], &sale.seats[3]])
        .await;
    assert_eq!(h.status, 201, "{h:?}");
    let e = s.next().await;
    assert_eq!(e.event, "change");
    assert!(e.id > first.id);
    assert_eq!(changes(&e), json!([[0, "H"], [3, "H"]]));
    assert_eq!(e.data["ga"], json!([]));

    assert_eq!(hold_ga(&app, &ann, &sale, 2).await.status, 201);
    let g = s.next().await;
    assert_eq!(changes(&g), json!([]));
    assert_eq!(
        g.data["ga"],
        json!([{"tier_id": sale.ga_tier, "remaining": 48}])
    );
    assert!(g.id > e.id);

    let hold = h.body["hold_id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/holds/{hold}"), Some(&ann))
            .await
            .status,
        204
    );
    let r = s.next().await;
    assert_eq!(changes(&r), json!([[0, "A"], [3, "A"]]));

    // A sale: held, then sold (one change or two, as the ticks fall).
    let h = app.hold_seats(&ann, &sale.id, &[&sale.seats[12]]).await;
    let hold = h.body["hold_id"].as_str().unwrap().to_owned();
    let c = app.checkout(&ann, &hold, "live-sale-1", "tok_visa").await;
    assert_eq!(c.status, 202, "{c:?}");
    let order = c.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.final_order(&ann, &order).await["status"], "paid");
    let mut m = Mirror::default();
    m.apply(&first);
    m.apply(&e);
    m.apply(&g);
    m.apply(&r);
    m.follow(&mut s, |m| m.status[12] == 'S').await;
    let now = app.seat_map(&sale.id).await;
    assert_eq!(m.status.iter().collect::<String>(), now["status"]);
    assert_eq!(m.ga[&sale.ga_tier], 48);
}

/// A hold that runs out (on the manual clock: no waiting) shows as available.
#[tokio::test]
async fn an_expired_hold_is_pushed_as_available() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = app.sale(1, 10, 10, 60, 6).await;
    let mut s = Stream::open(&app, &sale.id, None).await;
    assert_eq!(s.next().await.event, "snapshot");
    let ann = app.customer().await;
    let h = app.hold_seats(&ann, &sale.id, &[&sale.seats[7]]).await;
    assert_eq!(h.status, 201, "{h:?}");
    assert_eq!(changes(&s.next().await), json!([[7, "H"]]));
    assert_eq!(hold_ga(&app, &ann, &sale, 3).await.status, 201);
    assert_eq!(s.next().await.data["ga"][0]["remaining"], 7);
    clock.advance(time::Duration::seconds(61));
    let mut m = Mirror {
        status: vec!['H'; 15],
        ..Default::default()
    };
    m.follow(&mut s, |m| {
        m.status[7] == 'A' && m.ga.get(&sale.ga_tier) == Some(&10)
    })
    .await;
}

/// `Last-Event-ID` resumes: the changes since that version and no snapshot; an id
/// the node does not know (too old, or garbage) gets a fresh snapshot.
#[tokio::test]
async fn last_event_id_resumes_with_the_changes_since() {
    let app = TestApp::spawn().await;
    let sale = app.sale(2, 10, 10, 600, 6).await;
    let ann = app.customer().await;
    // A second page keeps the event's producer (and its history) alive.
    let mut watcher = Stream::open(&app, &sale.id, None).await;
    let snap = watcher.next().await;

    let mut s = Stream::open(&app, &sale.id, None).await;
    assert_eq!(s.next().await.id, snap.id);
    assert_eq!(
        app.hold_seats(&ann, &sale.id, &[&sale.seats[1]])
            .await
            .status,
        201
    );
    let one = s.next().await;
    assert_eq!(changes(&one), json!([[1, "H"]]));
    assert_eq!(watcher.next().await.id, one.id);
    drop(s); // the page loses its connection

    // Two changes while it is away, seen by the watcher.
    assert_eq!(
        app.hold_seats(&ann, &sale.id, &[&sale.seats[2]])
            .await
            .status,
        201
    );
    let two = watcher.next().await;
    assert_eq!(
        app.hold_seats(&ann, &sale.id, &[&sale.seats[3]])
            .await
            .status,
        201
    );
    let three = watcher.next().await;

    let mut back = Stream::open(&app, &sale.id, Some(&one.id.to_string())).await;
    let a = back.next().await;
    assert_eq!((a.event.as_str(), a.id), ("change", two.id));
    assert_eq!(changes(&a), json!([[2, "H"]]));
    let b = back.next().await;
    assert_eq!((b.event.as_str(), b.id), ("change", three.id));
    assert_eq!(changes(&b), json!([[3, "H"]]));

    // Current already: nothing is sent until the next change, which is a change.
    let mut current = Stream::open(&app, &sale.id, Some(&three.id.to_string())).await;
    assert_eq!(
        app.hold_seats(&ann, &sale.id, &[&sale.seats[4]])
            .await
            .status,
        201
    );
    let c = current.next().await;
    assert_eq!(
        (c.event.as_str(), changes(&c)),
        ("change", json!([[4, "H"]]))
    );

    for unknown in ["1", "not-a-version", ""] {
        let mut fresh = Stream::open(&app, &sale.id, Some(unknown)).await;
        let f = fresh.next().await;
        assert_eq!(f.event, "snapshot", "Last-Event-ID {unknown:?}");
        assert_eq!(&f.data["status"].as_str().unwrap()[..6], "AHHHHA");
    }
}

/// A stream of a draft is as hidden as the draft: 404 for anyone but an admin.
#[tokio::test]
async fn a_drafts_stream_is_not_found() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 3)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Draft", "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 60, "max_tickets_per_order": 4,
            "tiers": [{"name": "Main", "price": {"amount": 100, "currency": "EUR"}, "sections": ["A"]}]
        }))
        .await;
    let id = ev["id"].as_str().unwrap();
    let r = app.get(&format!("/v1/events/{id}/stream"), None).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = app.get("/v1/events/nonsense/stream", None).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

/// Many buyers at once (some lose races, some release): however the pushes were
/// coalesced, a page that applied every one ends on exactly the map `GET /seats`
/// serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_following_concurrent_holds_ends_on_the_seat_map() {
    let app = Arc::new(TestApp::spawn().await);
    let sale = app.sale(10, 20, 100, 600, 6).await;
    let mut s = Stream::open(&app, &sale.id, None).await;
    let mut m = Mirror::default();
    m.apply(&s.next().await);

    let buyers = futures::future::join_all((0..40).map(|_| app.customer())).await;
    let tasks = buyers.into_iter().enumerate().map(|(i, buyer)| {
        let (app, sale) = (
            app.clone(),
            (sale.id.clone(), sale.seats.clone(), sale.ga_tier.clone()),
        );
        tokio::spawn(async move {
            let (event, seats, tier) = sale;
            for round in 0..5usize {
                // Overlapping asks: neighbours race for the same seats.
                let a = (i * 3 + round * 7) % 200;
                let r = app
                    .hold_seats(&buyer, &event, &[&seats[a], &seats[(a + 1) % 200]])
                    .await;
                assert!(matches!(r.status.as_u16(), 201 | 409), "{r:?}");
                if r.status == 201 && round % 2 == 0 {
                    let hold = r.body["hold_id"].as_str().unwrap();
                    let d = app.delete(&format!("/v1/holds/{hold}"), Some(&buyer)).await;
                    assert_eq!(d.status, 204);
                }
                let g = app
                    .post(
                        &format!("/v1/events/{event}/holds"),
                        Some(&buyer),
                        json!({"tier_id": tier, "quantity": 1}),
                    )
                    .await;
                assert!(matches!(g.status.as_u16(), 201 | 409), "{g:?}");
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let end = app.seat_map(&sale.id).await;
    let version = end["version"].as_u64().unwrap();
    m.follow(&mut s, |m| m.version >= version).await;
    assert_eq!(m.version, version, "no change after the last hold");
    assert_eq!(m.status.iter().collect::<String>(), end["status"]);
    assert_eq!(
        m.ga.get(&sale.ga_tier).copied(),
        end["ga"][0]["remaining"].as_u64(),
        "GA remaining"
    );
    assert!(m.status.iter().filter(|&&c| c == 'H').count() > 20);
}

/// Two nodes on one PostgreSQL and Redis: a hold taken on node 1 reaches a stream
/// open on node 2 (each node's producer reads the shared engine's version).
#[ignore = "distributed: run with BOXOFFICE_TEST_BACKEND=distributed and --include-ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_on_one_node_reaches_a_stream_on_another() {
    let backend = match Backend::from_env().await {
        b if b.is_distributed() => b,
        _ => Backend::distributed().await,
    };
    let one = TestApp::spawn_on(backend.clone(), |_| {}).await;
    let two = TestApp::spawn_on(backend, |_| {}).await;
    let sale = one.sale(2, 10, 20, 600, 6).await;
    let mut on_two = Stream::open(&two, &sale.id, None).await;
    let mut m = Mirror::default();
    m.apply(&on_two.next().await);
    assert!(m.status.iter().all(|&c| c == 'A'));

    let ann = one.customer().await;
    let h = one
        .hold_seats(&ann, &sale.id, &[&sale.seats[5], &sale.seats[6]])
        .await;
    assert_eq!(h.status, 201, "{h:?}");
    let e = on_two.next().await;
    assert_eq!(changes(&e), json!([[5, "H"], [6, "H"]]));
    assert_eq!(hold_ga(&one, &ann, &sale, 4).await.status, 201);
    let g = on_two.next().await;
    assert_eq!(
        g.data["ga"],
        json!([{"tier_id": sale.ga_tier, "remaining": 16}])
    );

    // And back: released on node 2, seen on a stream of node 1.
    let mut on_one = Stream::open(&one, &sale.id, None).await;
    m = Mirror::default();
    m.apply(&on_one.next().await);
    assert_eq!(m.status[5], 'H');
    let hold = h.body["hold_id"].as_str().unwrap();
    assert_eq!(
        two.delete(&format!("/v1/holds/{hold}"), Some(&ann))
            .await
            .status,
        204
    );
    m.follow(&mut on_one, |m| m.status[5] == 'A' && m.status[6] == 'A')
        .await;
}
