//! A restart loses no hold and no sale: the engine is rebuilt from the store.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn holds_and_statuses_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let sale = app.sale(1, 6, 10, 300, 4).await;
    let ann = app.customer().await;
    let bob = app.customer().await;
    let kept = app
        .hold_seats(&ann, &sale.id, &[&sale.seats[0], &sale.seats[1]])
        .await;
    assert_eq!(kept.status, 201);
    let gone = app.hold_seats(&bob, &sale.id, &[&sale.seats[2]]).await;
    let gone_id = gone.body["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/v1/holds/{gone_id}"), Some(&bob))
            .await
            .status,
        204
    );
    let ga = app
        .post(
            &format!("/v1/events/{}/holds", sale.id),
            Some(&ann),
            json!({"tier_id": sale.ga_tier, "quantity": 3}),
        )
        .await;
    assert_eq!(ga.status, 201);
    let before = app.seat_map(&sale.id).await;

    app.restart().await;

    // Tokens issued before still work: the signing key lives in the store.
    let id = kept.body["hold_id"].as_str().unwrap();
    let h = app.get(&format!("/v1/holds/{id}"), Some(&ann)).await;
    assert_eq!(h.body["status"], "active");
    assert_eq!(
        app.get(&format!("/v1/holds/{gone_id}"), Some(&bob))
            .await
            .body["status"],
        "released"
    );
    let after = app.seat_map(&sale.id).await;
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["status"], "HHAAAA");
    assert_eq!(after["ga"][0]["remaining"], 7);
    // Never backwards across a restart (embedded: rebuilt above it; Redis: kept)…
    assert!(
        after["version"].as_u64() >= before["version"].as_u64(),
        "versions never go back"
    );

    let r = app.hold_seats(&bob, &sale.id, &[&sale.seats[1]]).await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "seats_unavailable"));
    assert_eq!(
        app.hold_seats(&bob, &sale.id, &[&sale.seats[2]])
            .await
            .status,
        201
    );
    // … and up with the next change.
    assert!(app.seat_map(&sale.id).await["version"].as_u64() > after["version"].as_u64());
}

#[tokio::test]
async fn a_killed_process_keeps_its_holds() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::from_env().await;
    let mut p = Process::boot(dir.path(), &backend, &[]);
    let mut app = TestApp::attach(p.addr, dir, backend).await;

    // The demo event was seeded on the empty database.
    let events = app.get("/v1/events", None).await.body["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["status"], "on_sale");
    assert_eq!(events[0]["seat_count"], 2000);
    let event = events[0]["id"].as_str().unwrap().to_owned();
    let layout = app.get(&format!("/v1/events/{event}/layout"), None).await;
    let seat = layout.body["seats"][7]["id"].as_str().unwrap().to_owned();
    let buyer = app.customer().await;
    let hold = app.hold_seats(&buyer, &event, &[&seat]).await;
    assert_eq!(hold.status, 201);

    p.child.kill().unwrap(); // SIGKILL: no graceful anything.
    p.child.wait().unwrap();
    let mut p = Process::boot(app.data_dir.path(), &app.backend, &[]);
    app.addr = p.addr;

    let id = hold.body["hold_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/holds/{id}"), Some(&buyer)).await.body["status"],
        "active"
    );
    assert_eq!(
        &app.statuses(&event).await[..9],
        ['A', 'A', 'A', 'A', 'A', 'A', 'A', 'H', 'A']
    );
    // Not seeded twice.
    assert_eq!(
        app.get("/v1/events", None).await.body["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}
