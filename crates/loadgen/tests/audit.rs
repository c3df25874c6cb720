//! The load generator against servers. A real embedded server: a small sale passes
//! its audit, and the audit fails on a crafted inconsistent state (a second ticket
//! for a sold seat, written straight into the database); an open-loop sale that
//! sells out reports both clocks. A stub server with a known, slow seat map: open
//! loop keeps its rate and counts latency from the schedule, and the store-commit
//! counter is read around the timed part.
//!
//! The servers run in the test process, so the generator finds this process as
//! the one listening on the target's port.

use boxoffice_loadgen::{audit, run, Config, Mode, Report, Target, STORE_COMMITS};
use boxoffice_server::{Application, Config as ServerConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(target: String, mode: Mode) -> Config {
    Config {
        mode,
        targets: vec![target],
        admin_email: "admin@localhost".into(),
        admin_password: "loadgen-admin-pw".into(),
        seats: 120,
        ga_capacity: 10,
        buyers: 80,
        connections: 8,
        duration: Duration::from_secs(60),
        ramp: Duration::ZERO,
        rate: None,
        accounts: 4,
        decline_share: 0.0,
        abandon_share: 0.0,
        ga_share: 0.1,
        retries: 3,
        hold_ttl_seconds: 300,
        server_pids: vec![],
        waiting_room: None,
    }
}

async fn embedded_server(dir: &std::path::Path) -> boxoffice_server::Running {
    let mut c = ServerConfig::defaults();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.data_dir = dir.to_owned();
    c.admin_password = Some("loadgen-admin-pw".into());
    c.demo = false;
    c.gateway_rate_limit = 1000;
    Application::build(Arc::new(c)).await.unwrap().start()
}

/// What every report measured against a server in this process says about it.
fn measured_this_process(report: &Report) {
    let server = report.server.as_ref().expect("server measured");
    assert!(
        server.found_by.starts_with("listening on port"),
        "{server:?}"
    );
    assert_eq!(server.processes.len(), 1);
    assert_eq!(server.processes[0].pid, std::process::id());
    assert!(server.processes[0].peak_rss_kib >= server.processes[0].rss_after_kib);
    assert!(report.generator_cpu_seconds.is_some());
}

/// The server side of `boxoffice_store_commits_total` may or may not be there yet:
/// either it is counted, or the report says it is missing.
fn store_commits_consistent(report: &Report) {
    match report.store_commits {
        Some(c) => {
            assert!(c > 0, "a sale commits");
            assert_eq!(report.store_commits_note, None);
            let per = report.store_commits_per_paid_order.expect("paid orders");
            assert!((per - c as f64 / report.paid_orders as f64).abs() < 1e-9);
        }
        None => {
            assert_eq!(report.store_commits_per_paid_order, None);
            let note = report.store_commits_note.as_deref().unwrap_or_default();
            assert!(note.contains(STORE_COMMITS), "{note}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_sale_passes_and_a_doctored_database_fails_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let running = embedded_server(dir.path()).await;
    let base = format!("http://{}", running.address());

    let mut cfg = config(base.clone(), Mode::Sale);
    cfg.decline_share = 0.1;
    cfg.abandon_share = 0.1;
    let report = run(cfg).await.unwrap();
    assert!(report.audit_passed, "{:?}", report.audit_failures);
    assert!(report.tickets_sold > 0);
    assert_eq!(report.open_loop, None, "closed loop without a rate");
    measured_this_process(&report);
    assert!(
        report.server.as_ref().unwrap().cpu_seconds > 0.0,
        "a sale costs CPU"
    );
    store_commits_consistent(&report);
    // The clocks exist exactly when the sale sold out.
    assert_eq!(report.sold_out, report.all_checked_out_seconds.is_some());
    assert_eq!(report.sold_out, report.all_paid_seconds.is_some());
    let paid: Vec<&serde_json::Value> = report
        .orders
        .iter()
        .filter(|o| o["status"] == "paid")
        .collect();
    assert!(paid.len() >= 2, "need two paid orders to doctor");
    for step in ["seatmap", "hold", "checkout", "order_final"] {
        assert!(
            report.steps.iter().any(|s| s.step == step && s.count > 0),
            "{step} was measured"
        );
    }

    // Give the first paid order a second ticket for a seat the second order holds.
    let seat = paid[1]["tickets"][0]["seat_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let order = paid[0]["id"].as_str().unwrap().to_owned();
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("boxoffice.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("DROP INDEX tickets_seat")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO tickets (id, order_id, position, event_id, seat_id, tier_id, amount, currency, code, issued_at) \
         SELECT 'tkt_01arz3ndektsv4rrffq69g5fav', order_id, 99, event_id, ?, tier_id, amount, currency, 'FORGED', issued_at \
         FROM tickets WHERE order_id = ? LIMIT 1",
    )
    .bind(&seat)
    .bind(&order)
    .execute(&db)
    .await
    .unwrap();

    let target = Target::connect(&[base], "admin@localhost", "loadgen-admin-pw", 4)
        .await
        .unwrap();
    let failures = audit(
        &target,
        &report.event_id,
        &report.orders,
        report.orders.len(),
    )
    .await
    .unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f.contains(&seat) && f.contains("2 tickets")),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(|f| f.contains(&order)),
        "its ticket count no longer matches: {failures:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_loop_sale_that_sells_out_reports_both_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let running = embedded_server(dir.path()).await;
    let mut cfg = config(format!("http://{}", running.address()), Mode::Sale);
    // 70 places for 100 buyers wanting 1-4 each, nobody abandoning or declined:
    // the sale sells out. They arrive at 400/s, one in flight per connection.
    cfg.seats = 60;
    cfg.ga_capacity = 10;
    cfg.buyers = 100;
    cfg.ga_share = 0.15;
    cfg.rate = Some(400.0);
    let report = run(cfg).await.unwrap();
    assert!(report.audit_passed, "{:?}", report.audit_failures);

    let open = report.open_loop.clone().expect("open loop");
    assert_eq!(open.scheduled, 100, "one arrival per buyer");
    assert_eq!(open.sent + open.dropped, open.scheduled);
    assert_eq!(open.max_in_flight, 8);
    assert!(open.sent > 0);

    assert!(report.sold_out, "{}", report.markdown());
    assert_eq!(report.tickets_sold, 70);
    let ga_tickets = report
        .orders
        .iter()
        .filter(|o| o["status"] == "paid")
        .flat_map(|o| o["tickets"].as_array().cloned().unwrap_or_default())
        .filter(|t| t.get("seat_id").is_none())
        .count();
    assert_eq!(ga_tickets, 10, "the GA tier sold out too");
    let checked_out = report.all_checked_out_seconds.expect("sold out");
    let paid = report.all_paid_seconds.expect("sold out");
    assert!(
        0.0 < checked_out && checked_out < paid,
        "{checked_out} {paid}"
    );
    assert!(paid <= report.elapsed_seconds);
    measured_this_process(&report);
    store_commits_consistent(&report);
    running.stop().await.unwrap();
}

/// A sale behind the waiting room: every buyer joins the queue, is admitted, and
/// shops with its token (a hold without one is 403, and nothing would sell); the
/// audit passes and the room's counts are reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_behind_the_waiting_room_admits_every_buyer_and_passes_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let running = embedded_server(dir.path()).await;
    let mut cfg = config(format!("http://{}", running.address()), Mode::Sale);
    // Room for all: 24 buyers wanting at most 4 each, so every admitted buyer holds.
    cfg.seats = 100;
    cfg.ga_capacity = 0;
    cfg.ga_share = 0.0;
    cfg.buyers = 24;
    cfg.waiting_room = Some(6_000);
    let report = run(cfg).await.unwrap();
    assert!(report.audit_passed, "{:?}", report.audit_failures);
    let room = report.room.clone().expect("room measured");
    assert_eq!(room.admitted, 24, "{}", report.markdown());
    assert!(room.queued_peak >= 1);
    assert!(room.hold_attempts_per_admitted >= 1.0, "{room:?}");
    assert!(report.tickets_sold > 0, "{}", report.markdown());
    assert!(report.markdown().contains("waiting room: 24 admitted"));
    running.stop().await.unwrap();
}

/// `streams`: every stream opened follows the holds and releases and ends on the
/// final seat map; the bytes and the hold-to-stream time are measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_stream_follows_the_holds_to_the_final_seat_map() {
    let dir = tempfile::tempdir().unwrap();
    let running = embedded_server(dir.path()).await;
    let report = boxoffice_loadgen::run_streams(boxoffice_loadgen::StreamsConfig {
        targets: vec![format!("http://{}", running.address())],
        admin_email: "admin@localhost".into(),
        admin_password: "loadgen-admin-pw".into(),
        streams: 20,
        seats: 200,
        holds: 30,
        hold_rate: 60.0,
        hold_for: Duration::from_millis(600),
        accounts: 4,
        server_pids: vec![],
    })
    .await
    .unwrap();
    assert!(report.passed, "{}", report.markdown());
    assert_eq!(
        (
            report.streams_failed,
            report.streams_wrong,
            report.streams_behind
        ),
        (0, 0, 0)
    );
    assert!(report.holds_granted > 0);
    assert!(
        report.change_events_per_stream >= 1.0,
        "{}",
        report.markdown()
    );
    assert!(report.bytes_per_change_event > 0.0);
    assert!(report.propagation_samples > 0, "{}", report.markdown());
    assert!(
        report.server_rss_bytes_per_stream.is_some(),
        "{:?}",
        report.memory_note
    );
    running.stop().await.unwrap();
}

/// A stub of the API the `seatmap` mode uses, whose seat map takes `SERVICE` to
/// answer and whose `/metrics` counts one store commit per seat-map read.
async fn stub_server() -> (String, Arc<AtomicU64>) {
    use axum::routing::{get, patch, post};
    use axum::Json;
    use serde_json::json;
    const SERVICE: Duration = Duration::from_millis(50);
    let reads = Arc::new(AtomicU64::new(0));
    let counted = reads.clone();
    let app = axum::Router::new()
        .route("/v1/auth/login", post(|| async { Json(json!({"token": "admin"})) }))
        .route("/v1/auth/register", post(|| async { Json(json!({"token": "buyer"})) }))
        .route("/v1/venues", post(|| async { Json(json!({"id": "ven_1"})) }))
        .route("/v1/events", post(|| async { Json(json!({"id": "evt_1", "ga_tiers": []})) }))
        .route("/v1/events/{id}", patch(|| async { Json(json!({})) }))
        .route(
            "/v1/events/{id}/layout",
            get(|| async { Json(json!({"seats": [{"id": "seat_1", "section": "S01", "row": "1"}]})) }),
        )
        .route(
            "/v1/events/{id}/seats",
            get(move || {
                let reads = counted.clone();
                async move {
                    // Service time of a slow server, not synchronisation.
                    tokio::time::sleep(SERVICE).await;
                    reads.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"version": 1, "status": "A", "ga": []}))
                }
            }),
        )
        .route(
            "/metrics",
            get({
                let reads = reads.clone();
                move || {
                    let n = reads.load(Ordering::SeqCst);
                    async move {
                        format!(
                            "# HELP {STORE_COMMITS} Store commits.\n# TYPE {STORE_COMMITS} counter\n\
                             {STORE_COMMITS}{{kind=\"seat_read\"}} {n}\n\
                             {STORE_COMMITS}{{kind=\"other\",note=\"a }} b\"}} 7\n\
                             {STORE_COMMITS}_created{{kind=\"seat_read\"}} 1700000000\n"
                        )
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_keeps_its_rate_against_a_slow_server_and_counts_latency_from_the_schedule() {
    let (base, reads) = stub_server().await;
    let mut cfg = config(base, Mode::Seatmap);
    // One connection, a 50 ms seat map, 100 arrivals/s for 1 s: the server can take
    // about 20 of the 100 arrivals; the others wait for the connection.
    cfg.connections = 1;
    cfg.accounts = 1;
    cfg.rate = Some(100.0);
    cfg.duration = Duration::from_secs(1);
    let report = run(cfg).await.unwrap();

    let open = report.open_loop.clone().expect("open loop");
    assert_eq!(open.scheduled, 100);
    assert_eq!(open.max_in_flight, 1);
    assert_eq!(open.sent + open.dropped, 100);
    assert!(
        open.dropped >= 50,
        "the rate is not lowered to the server's: {open:?}"
    );
    assert!(
        open.late >= open.sent.saturating_sub(1),
        "all but the first waited: {open:?}"
    );
    let step = &report.steps[0];
    assert_eq!((step.step.as_str(), step.count), ("seatmap", open.sent));
    // Each read takes ~50 ms once sent, but the n-th was due at 10n ms and sent at
    // ~50n ms: counted from the schedule, the later ones took hundreds of ms.
    assert!(step.max_ms >= 300.0, "{step:?}");

    // One commit per read in the timed part (the setup's read came before), summed
    // over both labelled series.
    assert_eq!(report.store_commits, Some(open.sent), "{report:?}");
    assert!(reads.load(Ordering::SeqCst) > open.sent);
    assert_eq!(report.store_commits_per_paid_order, None, "not a sale");
    measured_this_process(&report);
}
