//! The audit ledger and the sales read model (issue 13): every state change is an
//! audit record in one hash chain that `boxoffice audit verify` (the real binary)
//! checks, naming the first record changed, removed or inserted behind the
//! writer's back; and the sales endpoint, read from the analytics worker's model
//! alone, agrees number for number with the orders after a burst of purchases.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Runs `boxoffice audit verify` on the app's store: (exit code, stdout + stderr).
fn verify(app: &TestApp) -> (i32, String) {
    let mut cmd = binary();
    cmd.env("BOXOFFICE_DATA_DIR", app.data_dir.path())
        .env("BOXOFFICE_LOG", "error")
        .args(["audit", "verify"]);
    for (k, v) in app.backend.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs SQL on the app's database directly (what someone with the database and
/// not the server secret can do).
async fn tamper(app: &TestApp, sql: &str) {
    match &app.backend.database_url {
        Some(url) => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
        None => {
            let c = rusqlite::Connection::open(app.data_dir.path().join("boxoffice.db")).unwrap();
            c.execute_batch(sql).unwrap();
        }
    }
}

/// Every record of the audit log, oldest first, read page by page (newest first)
/// through `GET /v1/audit`.
async fn audit_records(app: &TestApp, event: Option<&str>) -> Vec<Value> {
    let mut out = vec![];
    let mut cursor: Option<i64> = None;
    loop {
        let mut q = String::from("/v1/audit?limit=50");
        if let Some(e) = event {
            q.push_str(&format!("&event_id={e}"));
        }
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&q, Some(&app.admin)).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["order"], "newest_first");
        let page = r.body["records"].as_array().unwrap().clone();
        for w in page.windows(2) {
            assert!(w[0]["seq"].as_i64() > w[1]["seq"].as_i64(), "newest first");
        }
        out.extend(page);
        match r.body["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.reverse();
    out
}

/// Polls `probe` until it yields, for work a background worker does after the
/// answers the test already has (bounded only to fail rather than hang).
async fn until<T, F, Fut>(what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..3000 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}

fn count(records: &[Value], action: &str) -> usize {
    records.iter().filter(|r| r["action"] == action).count()
}

/// Holds (made, released), a checkout paid and admin actions are all recorded with
/// who, from where and what; the chain verifies; then one record changed, one
/// removed, one inserted in the database: each time `audit verify` names it and
/// exits 1, and exits 0 again once the database is as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_changed_removed_or_inserted_record() {
    let mut app = TestApp::spawn().await;
    let sale = app.sale(2, 5, 10, 600, 4).await;
    let buyer = app.customer().await;
    let mut holds = vec![];
    for s in &sale.seats[..3] {
        let r = app.hold_seats(&buyer, &sale.id, &[s]).await;
        assert_eq!(r.status, 201, "{r:?}");
        holds.push(r.body["hold_id"].as_str().unwrap().to_owned());
    }
    // A release with the caller's own request id: the record carries it.
    let r = app
        .client
        .delete(app.url(&format!("/v1/holds/{}", holds[0])))
        .bearer_auth(&buyer)
        .header("x-request-id", "ledger-release-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .checkout(&buyer, &holds[1], "k-ledger-1", "tok_visa")
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let order = r.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.final_order(&buyer, &order).await["status"], "paid");

    let records = until("the audit worker appended every record", || async {
        let records = audit_records(&app, Some(&sale.id)).await;
        (count(&records, "hold.made") == 3
            && count(&records, "hold.released") == 1
            && count(&records, "order.created") == 1
            && count(&records, "order.paid") == 1
            && count(&records, "event.created") == 1
            && count(&records, "event.status_changed") == 1)
            .then_some(records)
    })
    .await;
    let released = records
        .iter()
        .find(|r| r["action"] == "hold.released")
        .unwrap();
    assert_eq!(released["subject"], holds[0]);
    assert_eq!(released["role"], "customer");
    assert_eq!(released["request_id"], "ledger-release-1");
    assert_eq!(released["ip"], "127.0.0.1");
    assert_eq!(released["before"], json!({"status": "active"}));
    assert_eq!(released["after"], json!({"status": "released"}));
    assert!(released["actor"].as_str().unwrap().starts_with("usr_"));
    let paid = records
        .iter()
        .find(|r| r["action"] == "order.paid")
        .unwrap();
    assert_eq!(paid["actor"], "system");
    assert_eq!(paid["after"]["tickets_issued"].as_array().unwrap().len(), 1);
    let created = records
        .iter()
        .find(|r| r["action"] == "event.created")
        .unwrap();
    assert_eq!(created["role"], "admin");
    // Every record links to the one before it in the chain.
    let all = audit_records(&app, None).await;
    for w in all.windows(2) {
        assert_eq!(w[1]["prev_hash"], w[0]["hash"]);
        assert_eq!(
            w[1]["seq"].as_i64().unwrap(),
            w[0]["seq"].as_i64().unwrap() + 1
        );
    }
    // A checkpoint signed now covers the chain so far.
    assert!(app.app().checkpoint_audit().await.unwrap().is_some());
    let n = all.len();
    app.stop().await;

    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("intact: {n} records, 1 signed checkpoints")),
        "{out}"
    );

    // Changed: another actor on record 3.
    let r3 = &all[2];
    let id3 = r3["id"].as_str().unwrap();
    tamper(
        &app,
        "UPDATE audit_records SET actor = 'usr_01arz3ndektsv4rrffq69g5fav' WHERE seq = 3",
    )
    .await;
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("record 3 ({id3}) was altered")),
        "{out}"
    );
    tamper(
        &app,
        &format!(
            "UPDATE audit_records SET actor = '{}' WHERE seq = 3",
            r3["actor"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(verify(&app).0, 0);

    // Removed: record 4 deleted (kept aside to put back).
    let hash4 = all[3]["hash"].as_str().unwrap();
    let id5 = all[4]["id"].as_str().unwrap();
    tamper(&app, "CREATE TABLE audit_aside AS SELECT * FROM audit_records WHERE seq = 4; DELETE FROM audit_records WHERE seq = 4").await;
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "record 4 was removed (its hash was {hash4}); the chain goes on at record 5 ({id5})"
        )),
        "{out}"
    );
    tamper(
        &app,
        "INSERT INTO audit_records SELECT * FROM audit_aside; DROP TABLE audit_aside",
    )
    .await;
    assert_eq!(verify(&app).0, 0);

    // Inserted: a copy of the last record appended after it, linked to it.
    let forged = "msg_01arz3ndektsv4rrffq69g5fav";
    tamper(
        &app,
        &format!(
            "INSERT INTO audit_records SELECT seq + 1, '{forged}', at, actor, role, request_id, ip, action, \
             subject, event_id, before, after, hash, hash FROM audit_records \
             WHERE seq = (SELECT max(seq) FROM audit_records)"
        ),
    )
    .await;
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("record {} ({forged}) was inserted", n + 1)),
        "{out}"
    );

    // The last record removed (and the forged one): the head names it.
    tamper(&app, &format!("DELETE FROM audit_records WHERE seq >= {n}")).await;
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("record {n} was removed")), "{out}");
}

/// What one purchase became.
struct Bought {
    order: String,
    tier: String,
    tickets: i64,
    amount: i64,
    paid: bool,
    refunded: i64,
    refunds: i64,
    whole: bool,
}

/// 500 purchases at once (seated and general admission, one in seven declined),
/// then refunds (whole and partial) through the API: once the analytics worker
/// has counted every message it was sent, the sales endpoint equals what the
/// orders say, number for number, in total and per tier; the CSV export says the
/// same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sales_after_a_burst_of_purchases_equal_the_orders() {
    const N: usize = 500;
    let app = TestApp::spawn().await;
    let sale = app.sale(25, 10, 1000, 600, 4).await;
    let ev = app.get(&format!("/v1/events/{}", sale.id), None).await.body;
    let seat_tier = ev["tiers"][0]["id"].as_str().unwrap().to_owned();
    let buyers: Vec<String> = futures::stream::iter(0..20)
        .map(|_| app.customer())
        .buffer_unordered(4)
        .collect()
        .await;
    let bought: Vec<Bought> = futures::stream::iter(0..N)
        .map(|i| {
            let (app, sale, buyers, seat_tier) = (&app, &sale, &buyers, &seat_tier);
            async move {
                let buyer = &buyers[i % buyers.len()];
                let (r, tier, tickets, amount) = if i % 2 == 0 {
                    let seat = &sale.seats[i / 2];
                    (
                        app.hold_seats(buyer, &sale.id, &[seat]).await,
                        seat_tier.clone(),
                        1,
                        2500,
                    )
                } else {
                    let q = 1 + (i % 3) as i64;
                    let r = app
                        .post(
                            &format!("/v1/events/{}/holds", sale.id),
                            Some(buyer),
                            json!({"tier_id": sale.ga_tier, "quantity": q}),
                        )
                        .await;
                    (r, sale.ga_tier.clone(), q, 1000 * q)
                };
                assert_eq!(r.status, 201, "{r:?}");
                let hold = r.body["hold_id"].as_str().unwrap();
                let token = if i % 7 == 3 {
                    "tok_chargeDeclined"
                } else {
                    "tok_visa"
                };
                let r = app.checkout(buyer, hold, &format!("k-{i}"), token).await;
                assert_eq!(r.status, 202, "{r:?}");
                let order = r.body["order_id"].as_str().unwrap().to_owned();
                let status = app.final_order(buyer, &order).await["status"].clone();
                assert_eq!(
                    status,
                    if token == "tok_visa" {
                        "paid"
                    } else {
                        "failed"
                    }
                );
                Bought {
                    order,
                    tier,
                    tickets,
                    amount,
                    paid: status == "paid",
                    refunded: 0,
                    refunds: 0,
                    whole: false,
                }
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut bought = bought;
    // Refunds: every 9th paid order in full, every 13th 300 cents, one of them
    // (the 117th) partly then in full.
    for (k, b) in bought.iter_mut().filter(|b| b.paid).enumerate() {
        let mut asks = vec![];
        if k % 13 == 0 {
            asks.push(json!({"amount": {"amount": 300, "currency": "EUR"}}));
        }
        if k % 9 == 0 {
            asks.push(json!({}));
        }
        for ask in asks {
            let r = app
                .post(
                    &format!("/v1/orders/{}/refund", b.order),
                    Some(&app.admin),
                    ask.clone(),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            let now = r.body["refunded"]["amount"].as_i64().unwrap();
            b.refunds += 1;
            b.refunded = now;
            b.whole = ask == json!({});
        }
    }
    // What the analytics worker must count: a hold made and a checkout per
    // purchase, a payment per paid order, and each refund.
    let paid = bought.iter().filter(|b| b.paid).count();
    let refunds: i64 = bought.iter().map(|b| b.refunds).sum();
    let expected = (2 * N + paid) as u64 + refunds as u64;
    until("the analytics worker counted every message", || async {
        let processed = app.app().sales_processed().await.unwrap();
        assert!(
            processed <= expected,
            "counted {processed} of {expected}: a message twice"
        );
        (processed == expected).then_some(())
    })
    .await;

    let r = app
        .get(
            &format!("/v1/admin/events/{}/sales", sale.id),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let s = r.body;
    // What the orders say, per tier ("*": the whole event).
    let mut want: BTreeMap<String, [i64; 7]> = BTreeMap::new();
    for b in &bought {
        for key in ["*".to_owned(), b.tier.clone()] {
            let w = want.entry(key).or_default();
            // tickets, revenue, holds made, converted, refunds, refunded, tickets refunded
            w[2] += 1;
            w[3] += 1;
            if b.paid {
                w[0] += b.tickets;
                w[1] += b.amount;
            }
            w[4] += b.refunds;
            w[5] += b.refunded;
            if b.whole {
                w[6] += b.tickets;
            }
        }
    }
    let got = |v: &Value| {
        [
            v["tickets"].as_i64().unwrap(),
            v["revenue"].as_i64().unwrap(),
            v["holds_made"].as_i64().unwrap(),
            v["holds_converted"].as_i64().unwrap(),
            v["refunds"].as_i64().unwrap(),
            v["refunded_amount"].as_i64().unwrap(),
            v["tickets_refunded"].as_i64().unwrap(),
        ]
    };
    assert_eq!(got(&s["totals"]), want["*"], "totals: {s}");
    let tiers: BTreeMap<String, [i64; 7]> = s["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tier_id"].as_str().unwrap().to_owned(), got(t)))
        .collect();
    assert_eq!(tiers.len(), 2, "{s}");
    assert_eq!(tiers[&seat_tier], want[&seat_tier], "seated tier");
    assert_eq!(tiers[&sale.ga_tier], want[&sale.ga_tier], "GA tier");
    let w = want["*"];
    assert_eq!(s["tickets_sold"].as_i64().unwrap(), w[0] - w[6]);
    assert_eq!(s["revenue"].as_i64().unwrap(), w[1] - w[5]);
    // The minute series adds up to the totals.
    let mut sum = [0i64; 7];
    let minutes = s["minute"].as_array().unwrap();
    assert!(!minutes.is_empty());
    for m in minutes {
        assert!(m["minute"].as_str().unwrap().ends_with(":00Z"), "{m}");
        for (a, b) in sum.iter_mut().zip(got(m)) {
            *a += b;
        }
    }
    assert_eq!(sum, w);
    // The orders as the buyers' store reads them agree (the write side).
    let orders_paid: BTreeSet<&str> = bought
        .iter()
        .filter(|b| b.paid)
        .map(|b| b.order.as_str())
        .collect();
    assert_eq!(orders_paid.len(), paid);

    // The CSV export: the same totals and tiers.
    let csv = app
        .client
        .get(app.url(&format!("/v1/admin/events/{}/sales?format=csv", sale.id)))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let total = csv.lines().find(|l| l.starts_with("total,")).unwrap();
    assert_eq!(
        total,
        format!(
            "total,,{},{},{},{},0,{},{},{}",
            w[0], w[1], w[2], w[3], w[4], w[5], w[6]
        )
    );
    assert!(csv
        .lines()
        .any(|l| l.starts_with(&format!("tier,{},", sale.ga_tier))));
    let r = app
        .get(
            &format!("/v1/admin/events/{}/sales?format=xml", sale.id),
            Some(&app.admin),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "invalid_request"),
        "{r:?}"
    );
    // A redelivered message is not counted twice: the count stays.
    assert_eq!(app.app().sales_processed().await.unwrap(), expected);
}

/// Two nodes on one PostgreSQL append audit records at once (each node's audit
/// worker takes the records its queue gives it): the chain has every record once,
/// in one line, and verifies.
#[ignore = "distributed: run with BOXOFFICE_TEST_BACKEND=distributed and --include-ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_appending_at_once_keep_one_chain() {
    const HOLDS: usize = 300;
    let backend = Backend::distributed().await;
    let a = TestApp::spawn_on(backend.clone(), |_| {}).await;
    let b = TestApp::spawn_on(backend.clone(), |_| {}).await;
    let sale = a.sale(1, 1, 2000, 600, 4).await;
    let buyers: Vec<(usize, String)> = futures::stream::iter(0..20)
        .map(|i| {
            let node = if i % 2 == 0 { &a } else { &b };
            async move { (i, node.customer().await) }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let holds: Vec<String> = futures::stream::iter(0..HOLDS)
        .map(|i| {
            let (node_ix, buyer) = &buyers[i % buyers.len()];
            let node = if node_ix % 2 == 0 { &a } else { &b };
            let ga = sale.ga_tier.clone();
            let ev = sale.id.clone();
            async move {
                let r = node
                    .post(
                        &format!("/v1/events/{ev}/holds"),
                        Some(buyer),
                        json!({"tier_id": ga, "quantity": 1}),
                    )
                    .await;
                assert_eq!(r.status, 201, "{r:?}");
                r.body["hold_id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let records = until("both nodes' audit workers appended every hold", || async {
        let records = audit_records(&a, Some(&sale.id)).await;
        (count(&records, "hold.made") == HOLDS).then_some(records)
    })
    .await;
    let subjects: BTreeSet<&str> = records
        .iter()
        .filter(|r| r["action"] == "hold.made")
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, holds.iter().map(String::as_str).collect());
    // Both nodes sign a checkpoint of the same head: one is kept.
    let (x, y) = tokio::join!(a.app().checkpoint_audit(), b.app().checkpoint_audit());
    assert!(x.unwrap().is_some() || y.unwrap().is_some());
    let (code, out) = verify(&a);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit chain intact"), "{out}");
}
