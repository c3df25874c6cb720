//! The load generator against a real embedded server: a small sale passes its audit,
//! and the audit fails on a crafted inconsistent state (a second ticket for a sold
//! seat, written straight into the database).

use boxoffice_loadgen::{audit, run, Config, Mode, Target};
use boxoffice_server::{Application, Config as ServerConfig};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_sale_passes_and_a_doctored_database_fails_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ServerConfig::defaults();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.data_dir = dir.path().to_owned();
    c.admin_password = Some("loadgen-admin-pw".into());
    c.demo = false;
    c.gateway_rate_limit = 1000;
    let running = Application::build(Arc::new(c)).await.unwrap().start();
    let base = format!("http://{}", running.address());

    let cfg = Config {
        mode: Mode::Sale,
        targets: vec![base.clone()],
        admin_email: "admin@localhost".into(),
        admin_password: "loadgen-admin-pw".into(),
        seats: 120,
        ga_capacity: 10,
        buyers: 80,
        connections: 8,
        duration: Duration::from_secs(60),
        ramp: Duration::ZERO,
        accounts: 4,
        decline_share: 0.1,
        abandon_share: 0.1,
        retries: 3,
        hold_ttl_seconds: 300,
    };
    let report = run(cfg).await.unwrap();
    assert!(report.audit_passed, "{:?}", report.audit_failures);
    assert!(report.tickets_sold > 0);
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
