//! The security defects of issue 10, one test (or a few) each: secrets and keys,
//! roles before bodies, errors that never leak as 500 or plain text, closed metric
//! labels, drafts, slow clients, transport security of the secrets we send, and
//! tokens that can be revoked.

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use boxoffice_server::Application;
use reqwest::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound on how long a test waits for something that must happen at once: it
/// fails the test instead of hanging it, it never synchronises anything.
const BOUND: Duration = Duration::from_secs(20);

/// One HTTP/1.1 exchange on a fresh connection, written by hand: the status line's
/// code and the body. The request may announce a body it never sends.
async fn raw(addr: SocketAddr, request: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(BOUND, read_response(&mut s))
        .await
        .unwrap_or_else(|_| panic!("no answer to {request:?}"))
}

async fn read_response(s: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before an answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head[9..12].parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    (status, body)
}

fn is_error_shape(body: &Value, code: &str) -> bool {
    body["error"]["code"] == code && body["error"]["message"].is_string()
}

// --- 1. The token key ---

#[tokio::test]
async fn an_empty_or_short_secret_key_is_refused_at_start() {
    for key in [String::new(), "short".into(), "k".repeat(31)] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.secret_key = Some(key.clone().into());
        let Err(err) = Application::build(Arc::new(c)).await else {
            panic!("started with a {}-byte secret key", key.len());
        };
        let msg = format!("{err:#}");
        assert!(
            msg.contains("BOXOFFICE_SECRET_KEY") && msg.contains("at least 32 bytes"),
            "unclear message: {msg}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.secret_key = Some("k".repeat(32).into());
    Application::build(Arc::new(c))
        .await
        .expect("a 32-byte key is enough");
}

#[tokio::test]
async fn the_generated_key_is_kept_in_a_private_file_not_in_the_database() {
    let mut app = TestApp::spawn_on(Backend::default(), |_| {}).await;
    let file = app.data_dir.path().join("secret.key");
    let key = std::fs::read(&file).expect("the generated key is in <data_dir>/secret.key");
    assert!(key.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    for name in ["boxoffice.db", "boxoffice.db-wal"] {
        let Ok(db) = std::fs::read(app.data_dir.path().join(name)) else {
            continue;
        };
        assert!(
            !db.windows(key.len()).any(|w| w == key.as_slice()),
            "the key is in {name}"
        );
    }
    // The same key after a restart: a token issued before still works.
    let admin = app.admin.clone();
    app.restart().await;
    assert_eq!(app.get("/v1/venues", Some(&admin)).await.status, 200);
}

// --- 2. The role before the body ---

#[tokio::test]
async fn admin_routes_check_the_role_before_reading_the_body() {
    let app = TestApp::spawn().await;
    let buyer = app.customer().await;
    // A customer announcing 10 MB that never come: answered 403 at once, the body
    // never read (reading it would wait for bytes that never arrive).
    for (path, who, status, code) in [
        ("/v1/venues", Some(&buyer), 403, "forbidden"),
        ("/v1/events", Some(&buyer), 403, "forbidden"),
        (
            "/v1/orders/ord_01arz3ndektsv4rrffq69g5fav/refund",
            Some(&buyer),
            403,
            "forbidden",
        ),
        ("/v1/venues", None, 401, "unauthorized"),
    ] {
        let auth = who.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let (got, body) = raw(
            app.addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{{\"name\""
            ),
        )
        .await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(is_error_shape(&body, code), "{path}: {body}");
    }
    // Not even a body that would not parse is looked at.
    let r = app
        .client
        .post(app.url("/v1/venues"))
        .bearer_auth(&buyer)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .call(
            Method::PATCH,
            "/v1/events/evt_01arz3ndektsv4rrffq69g5fav",
            Some(&buyer),
            Some(json!({"status": "nonsense"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    // Large bodies only where the role may send them: a customer's megabyte is 413
    // on the routes a customer may call.
    let big = format!("{{\"seats\": [\"{}\"]}}", "x".repeat(1024 * 1024));
    let r = app
        .client
        .post(app.url("/v1/events/evt_01arz3ndektsv4rrffq69g5fav/holds"))
        .bearer_auth(&buyer)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // An admin's large venue is still taken.
    // About 150 KiB: over the 64 KiB every other route takes.
    let sections: Vec<Value> = (0..100)
        .map(|i| {
            let seats: Vec<String> = (1..=100).map(|n| format!("seat-{n:04}")).collect();
            json!({"name": format!("S{i}"), "rows": [{"label": "1", "seats": seats}]})
        })
        .collect();
    let r = app
        .post(
            "/v1/venues",
            Some(&app.admin),
            json!({"name": "Big", "sections": sections}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}

// --- 3. Someone else's hold at checkout; conflicts ---

#[tokio::test]
async fn an_admin_checking_out_a_customers_hold_is_refused_and_the_hold_keeps_its_deadline() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    let r = app
        .hold_seats(&buyer, &sale.id, &[&sale.seats[0], &sale.seats[1]])
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let hold = r.body["hold_id"].as_str().unwrap().to_owned();

    let r = app
        .checkout(&app.admin, &hold, "admin-try", "tok_visa")
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{r:?}");
    // Nothing was extended: at the hold's own deadline its seats are free, in the
    // engine as in the store.
    clock.advance(time::Duration::seconds(301));
    assert_eq!(app.statuses(&sale.id).await[..2], ['A', 'A']);
    assert_eq!(app.engine_audit(&sale.id).await["agrees"], true);
    let r = app.get(&format!("/v1/holds/{hold}"), Some(&buyer)).await;
    assert_eq!(r.body["status"], "expired", "{r:?}");
}

#[tokio::test]
async fn the_owner_checks_out_after_an_admin_was_refused() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    let r = app.hold_seats(&buyer, &sale.id, &[&sale.seats[0]]).await;
    let hold = r.body["hold_id"].as_str().unwrap().to_owned();
    let (admin, mine) = tokio::join!(
        app.checkout(&app.admin, &hold, "k1", "tok_visa"),
        app.checkout(&buyer, &hold, "k1", "tok_visa"),
    );
    assert_eq!(admin.status, 403, "{admin:?}");
    assert_eq!(mine.status, 202, "{mine:?}");
    let order = mine.body["order_id"].as_str().unwrap();
    assert_eq!(app.final_order(&buyer, order).await["status"], "paid");
}

// --- 4. Metric labels ---

#[tokio::test]
async fn metric_labels_come_from_a_closed_set() {
    let app = TestApp::spawn().await;
    let made_up = format!("BREW{}", std::process::id());
    let r = app
        .call(
            Method::from_bytes(made_up.as_bytes()).unwrap(),
            "/v1/events",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 405);
    let path = format!("/nowhere-{}", std::process::id());
    assert_eq!(app.get(&path, None).await.status, 404);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(&made_up), "a client-made method label");
    assert!(!metrics.contains(&path), "a raw path as a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(metrics.contains("route=\"unmatched\""), "{metrics}");
}

// --- 5. The error shape everywhere ---

#[tokio::test]
async fn every_rejection_has_the_error_shape() {
    let app = TestApp::spawn().await;
    let buyer = app.customer().await;
    let order = "/v1/orders/ord_01arz3ndektsv4rrffq69g5fav";
    let cases: Vec<(Method, String, Option<&str>, u16, &str)> = vec![
        (
            Method::GET,
            "/v1/events/%FF".into(),
            None,
            400,
            "invalid_path",
        ),
        (
            Method::GET,
            "/v1/events/%FF/seats".into(),
            None,
            400,
            "invalid_path",
        ),
        (
            Method::DELETE,
            "/v1/holds/%C3%28".into(),
            Some(&buyer),
            400,
            "invalid_path",
        ),
        (
            Method::GET,
            format!("{order}?wait=1&wait=2"),
            Some(&buyer),
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            format!("{order}?wait=%FF"),
            Some(&buyer),
            422,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{order}?wait=1&wait=1"),
            Some(&buyer),
            400,
            "invalid_query",
        ),
        (Method::GET, "/nowhere".into(), None, 404, "not_found"),
        (
            Method::GET,
            "/v1/events/x/y/z".into(),
            None,
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/events".into(),
            None,
            405,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/v1/holds/x".into(),
            Some(&buyer),
            405,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/v1/auth/login".into(),
            None,
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, token, status, code) in cases {
        let r = app.call(method.clone(), &path, token, None).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {r:?}");
        assert!(is_error_shape(&r.body, code), "{method} {path}: {r:?}");
        assert_eq!(
            r.headers["content-type"], "application/json",
            "{method} {path}"
        );
    }
    // A body over the limit on a route that reads raw bytes.
    let r = app
        .client
        .post(app.url("/v1/payments/stripe/webhook"))
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.expect("a JSON body");
    assert!(is_error_shape(&body, "payload_too_large"), "{body}");
}

// --- 6. Drafts ---

#[tokio::test]
async fn drafts_are_visible_to_admins_only_and_never_loaded_for_a_read() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let engine = FaultyEngine::new();
    let app = TestApp::spawn_with_engine(|_| {}, clock, engine.clone()).await;
    let venue = app.venue(&[("A", 2, 3)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Secret gig", "starts_at": "2031-01-01T20:00:00Z",
            "tiers": [{"name": "T", "price": {"amount": 100, "currency": "EUR"}, "sections": ["A"]}],
            "ga_tiers": [{"name": "F", "price": {"amount": 50, "currency": "EUR"}, "capacity": 7}]
        }))
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let buyer = app.customer().await;
    for path in [
        format!("/v1/events/{id}"),
        format!("/v1/events/{id}/layout"),
        format!("/v1/events/{id}/seats"),
        format!("/v1/events/{id}/holds"),
    ] {
        for who in [None, Some(buyer.as_str())] {
            let r = if path.ends_with("/holds") {
                app.post(
                    &path,
                    who,
                    json!({"tier_id": ev["ga_tiers"][0]["id"], "quantity": 1}),
                )
                .await
            } else {
                app.get(&path, who).await
            };
            if path.ends_with("/holds") && who.is_none() {
                assert_eq!(r.status, 401, "{path}");
            } else {
                assert_eq!(
                    (r.status.as_u16(), r.code()),
                    (404, "not_found"),
                    "{path} {who:?}: {r:?}"
                );
            }
        }
    }
    // The admin reads it all, and the seat map of a draft is read without loading
    // the event into the hold engine.
    assert_eq!(
        app.get(&format!("/v1/events/{id}"), Some(&app.admin))
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/events/{id}/layout"), Some(&app.admin))
            .await
            .status,
        200
    );
    let r = app
        .get(&format!("/v1/events/{id}/seats"), Some(&app.admin))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "AAAAAA");
    assert_eq!(r.body["ga"][0]["remaining"], 7);
    let eid = boxoffice_domain::EventId::try_from(id.as_str()).unwrap();
    let now = boxoffice_domain::Millis::from_datetime(OffsetDateTime::now_utc());
    assert!(
        matches!(
            engine.inner().seat_map_version(&eid, now).await,
            Err(boxoffice_ports::EngineError::EventNotLoaded(_))
        ),
        "a read loaded the draft into the hold engine"
    );
    // On sale, it is public (and loaded when read).
    app.set_status(&id, "on_sale").await;
    let r = app.get(&format!("/v1/events/{id}/seats"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "AAAAAA");
}

// --- 7. Slow clients ---

#[tokio::test]
async fn a_client_that_sends_half_a_request_is_disconnected() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout_ms = 500).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The server closes it (perhaps after a 408): the read ends.
    tokio::time::timeout(BOUND, s.read_to_end(&mut buf))
        .await
        .expect("the half request still holds its connection")
        .ok();
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // Everyone else is served as before.
    assert_eq!(app.get("/health", None).await.status, 200);
}

#[tokio::test]
async fn connections_over_the_limit_are_told_so_and_served_once_one_closes() {
    let app = TestApp::spawn_with(|c| c.max_connections = 4).await;
    // Slow clients take every connection (the test client's pooled one may be one).
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let health = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, body) = raw(app.addr, health).await;
    assert_eq!(status, 503, "{body}");
    assert!(is_error_shape(&body, "too_many_connections"), "{body}");
    // One slow client goes: a connection is free again.
    slow.clear();
    eventually("a connection is free again", || async {
        raw(app.addr, health).await.0 == 200
    })
    .await;
}

// --- 8. Secrets in transit and at rest ---

#[tokio::test]
async fn a_stripe_key_is_never_sent_over_plain_http_except_to_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.gateway = boxoffice_server::config::GatewayKind::Stripe;
    c.stripe_url = "http://api.stripe.example".into();
    c.stripe_secret_key = Some("sk_live_abc".into());
    let Err(err) = Application::build(Arc::new(c)).await else {
        panic!("a Stripe key would travel over plain HTTP");
    };
    let msg = format!("{err:#}");
    assert!(msg.contains("https://"), "{msg}");
    // Loopback (a test gateway on this machine) is allowed: the suite's distributed
    // runs use one.
    let gateway = SharedGateway::start().await;
    let mut c = config(dir.path());
    c.gateway = boxoffice_server::config::GatewayKind::Stripe;
    c.stripe_url = gateway.fake.url();
    c.stripe_secret_key = Some(boxoffice_payments::TEST_SECRET_KEY.into());
    assert!(c.stripe_url.starts_with("http://127.0.0.1"));
    Application::build(Arc::new(c))
        .await
        .expect("loopback is fine");
}

#[tokio::test]
async fn smtp_credentials_are_never_sent_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "smtp://user:secret@mail.example:587",
        "smtp://user@mail.example",
    ] {
        let mut c = config(dir.path());
        c.smtp_url = Some(url.into());
        let Err(err) = Application::build(Arc::new(c)).await else {
            panic!("{url}: credentials in clear");
        };
        let msg = format!("{err:#}");
        assert!(msg.contains("TLS"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
    }
    for url in [
        "smtps://user:secret@mail.example",
        "smtp://user:secret@mail.example:587?tls=required",
        "smtp://relay.internal:25",
    ] {
        let mut c = config(dir.path());
        c.smtp_url = Some(url.into());
        Application::build(Arc::new(c))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:#}"));
    }
}

#[tokio::test]
async fn the_payment_token_is_not_stored_in_plaintext() {
    let app = TestApp::spawn().await;
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    let r = app.hold_seats(&buyer, &sale.id, &[&sale.seats[0]]).await;
    let hold = r.body["hold_id"].as_str().unwrap().to_owned();
    // A token that is not a test card: the order fails, but it was stored.
    let token = format!("tok_secret{}", std::process::id());
    let r = app.checkout(&buyer, &hold, "k", &token).await;
    assert_eq!(r.status, 202, "{r:?}");
    let order = r.body["order_id"].as_str().unwrap().to_owned();
    app.final_order(&buyer, &order).await;
    let r = app.checkout(&buyer, &hold, "k2", "tok_visa").await;
    let paid = r.body["order_id"].as_str().map(str::to_owned);
    if let Some(paid) = &paid {
        app.final_order(&buyer, paid).await;
    }
    match &app.backend.database_url {
        None => {
            for name in ["boxoffice.db", "boxoffice.db-wal"] {
                let Ok(db) = std::fs::read(app.data_dir.path().join(name)) else {
                    continue;
                };
                for t in [token.as_str(), "tok_visa"] {
                    assert!(
                        !db.windows(t.len()).any(|w| w == t.as_bytes()),
                        "{t} in plaintext in {name}"
                    );
                }
            }
        }
        Some(url) => {
            use boxoffice_ports::SalesStore;
            let pg = boxoffice_store_postgres::PgStore::connect(url, 2)
                .await
                .unwrap();
            let o = pg
                .order(&boxoffice_domain::OrderId::parse(&order).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert!(!o.payment_token.contains(&token), "{}", o.payment_token);
        }
    }
}

#[tokio::test]
async fn a_generated_admin_password_goes_to_the_log_once_not_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::from_env().await;
    let mut cmd = server_command(&dir.path().join("data"), &backend, &[]);
    cmd.env_remove("BOXOFFICE_ADMIN_PASSWORD");
    let p = Process::start(cmd);
    let banner = p.log_line_with("generated admin password");
    // What stdout says once the admin exists: where to find the password.
    let created = p.line_with("admin account created");
    let password = banner
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    assert!(password.len() >= 16, "{banner}");
    assert!(!created.contains(&password), "on stdout: {created}");
    assert!(created.contains("log"), "{created}");
    let app = TestApp::attach_as(p.addr, dir, backend, ADMIN_EMAIL, &password).await;
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": password}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

// --- 9. Tokens ---

fn claims_of(token: &str) -> (Value, Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

async fn refresh(app: &TestApp, refresh_token: &str) -> crate::helpers::Res {
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": refresh_token }),
    )
    .await
}

#[tokio::test]
async fn access_tokens_are_short_lived_eddsa_and_refresh_tokens_rotate_with_reuse_detection() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|c| c.access_token_ttl_seconds = 900, clock.clone()).await;
    let email = format!("ann-{}@example.com", std::process::id());
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    let access = r.body["token"].as_str().unwrap().to_owned();
    let first_refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    let (header, claims) = claims_of(&access);
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(app.get("/v1/me/orders", Some(&access)).await.status, 200);

    // Fifteen minutes on, the access token is spent; the refresh token gives a new
    // pair, once.
    clock.advance(time::Duration::seconds(901));
    let r = app.get("/v1/me/orders", Some(&access)).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
    let r = refresh(&app, &first_refresh).await;
    assert_eq!(r.status, 200, "{r:?}");
    let access2 = r.body["token"].as_str().unwrap().to_owned();
    let second_refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(app.get("/v1/me/orders", Some(&access2)).await.status, 200);

    // The retired refresh token again: someone copied it. The session is revoked,
    // the current refresh token with it.
    let r = refresh(&app, &first_refresh).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "refresh_token_reused"));
    let r = refresh(&app, &second_refresh).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "invalid_refresh_token")
    );
    for junk in ["", "x", "a.1.b", "a.-1.b"] {
        let r = refresh(&app, junk).await;
        assert_eq!(r.status, 401, "{junk}");
    }

    // Logout: the refresh token stops working.
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": email, "password": "password123"}),
        )
        .await;
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .post("/v1/auth/logout", None, json!({ "refresh_token": rt }))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(refresh(&app, &rt).await.status, 401);
}

#[tokio::test]
async fn a_revoked_user_loses_access_within_the_access_tokens_lifetime() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|c| c.access_token_ttl_seconds = 900, clock.clone()).await;
    let email = format!("bob-{}@example.com", std::process::id());
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "password123"}),
        )
        .await;
    let access = r.body["token"].as_str().unwrap().to_owned();
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    let user = claims_of(&access).1["sub"].as_str().unwrap().to_owned();

    let buyer = app.customer().await;
    let path = format!("/v1/admin/users/{user}/revoke");
    let r = app.post(&path, Some(&buyer), json!({})).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = app.post(&path, Some(&app.admin), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["revoked_sessions"], 1);
    let r = app
        .post(
            "/v1/admin/users/usr_01arz3ndektsv4rrffq69g5fav/revoke",
            Some(&app.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);

    // No refresh any more; the access token in hand lasts to its expiry, no longer.
    assert_eq!(refresh(&app, &rt).await.status, 401);
    assert_eq!(app.get("/v1/me/orders", Some(&access)).await.status, 200);
    clock.advance(time::Duration::seconds(900));
    assert_eq!(app.get("/v1/me/orders", Some(&access)).await.status, 401);
}

#[tokio::test]
async fn two_refreshes_racing_with_one_token_get_one_pair_and_revoke_the_session() {
    let app = TestApp::spawn().await;
    let email = format!("race-{}@example.com", std::process::id());
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "password123"}),
        )
        .await;
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    let (a, b) = tokio::join!(refresh(&app, &rt), refresh(&app, &rt));
    let mut outcomes = [
        (a.status.as_u16(), a.code().to_owned()),
        (b.status.as_u16(), b.code().to_owned()),
    ];
    outcomes.sort();
    assert_eq!(
        outcomes,
        [(200, String::new()), (401, "refresh_token_reused".into())],
        "{a:?} {b:?}"
    );
    // The pair the winner got is revoked with the session: a token used twice
    // cannot be told from a stolen one.
    let winner = if a.status == 200 { &a } else { &b };
    let next = winner.body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, next).await.status, 401);
}
