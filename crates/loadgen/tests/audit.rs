//! The load generator against servers. A real embedded server: a small sale passes
//! its audit, and the audit fails on a crafted inconsistent state (a second ticket
//! for a sold seat, written straight into the database). A stub server with a
//! known, slow seat map: open loop keeps its rate and counts latency from the
//! schedule.

use boxoffice_loadgen::{audit, run, Config, Mode, Target};
use boxoffice_server::{Application, Config as ServerConfig};
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
        retries: 3,
        hold_ttl_seconds: 300,
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

/// A stub of the API the `seatmap` mode uses, whose seat map takes `SERVICE` to
/// answer.
async fn stub_server() -> String {
    use axum::routing::{get, patch, post};
    use axum::Json;
    use serde_json::json;
    const SERVICE: Duration = Duration::from_millis(50);
    let app = axum::Router::new()
        .route(
            "/v1/auth/login",
            post(|| async { Json(json!({"token": "admin"})) }),
        )
        .route(
            "/v1/auth/register",
            post(|| async { Json(json!({"token": "buyer"})) }),
        )
        .route(
            "/v1/venues",
            post(|| async { Json(json!({"id": "ven_1"})) }),
        )
        .route(
            "/v1/events",
            post(|| async { Json(json!({"id": "evt_1", "ga_tiers": []})) }),
        )
        .route("/v1/events/{id}", patch(|| async { Json(json!({})) }))
        .route(
            "/v1/events/{id}/layout",
            get(|| async {
                Json(json!({"seats": [{"id": "seat_1", "section": "S01", "row": "1"}]}))
            }),
        )
        .route(
            "/v1/events/{id}/seats",
            get(|| async {
                // Service time of a slow server, not synchronisation.
                tokio::time::sleep(SERVICE).await;
                Json(json!({"version": 1, "status": "A", "ga": []}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_keeps_its_rate_against_a_slow_server_and_counts_latency_from_the_schedule() {
    let base = stub_server().await;
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
}
