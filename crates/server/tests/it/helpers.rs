//! Typed helpers: spawn the app, make accounts, venues and events, and call the API.

pub use crate::faulty_engine::FaultyEngine;
use boxoffice_ports::ManualClock;
use boxoffice_server::{Application, Config, EngineWrap, Running};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tempfile::TempDir;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password";
/// The signing secret of the test gateway's webhooks to every test app.
pub const WEBHOOK_SECRET: &str = "whsec_boxoffice_tests";

pub struct TestApp {
    pub addr: SocketAddr,
    pub backend: Backend,
    tweak: fn(&mut Config),
    pub client: reqwest::Client,
    pub admin: String,
    pub data_dir: TempDir,
    running: Option<Running>,
    /// Set when the app runs on a manual clock (kept across restarts).
    pub clock: Option<Arc<ManualClock>>,
    /// Set when the app's hold engine is wrapped (kept across restarts).
    engine: Option<Arc<FaultyEngine>>,
}

/// A response: status and JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Res {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// The backends a test runs on, from `BOXOFFICE_TEST_BACKEND`: `embedded` (the
/// default: SQLite and the in-process engine), `distributed` (PostgreSQL and Redis)
/// or `cluster` (PostgreSQL and a 3-master Redis Cluster). Each test gets a fresh
/// database and its own Redis key prefix, so tests run in parallel.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub nats_url: Option<String>,
    pub nats_prefix: String,
    /// With a shared store, the nodes share one test gateway (a node refuses to
    /// start with a private one): this one, run by the test.
    pub gateway: Option<Arc<SharedGateway>>,
}

/// A fake Stripe on its own, for the nodes of a distributed test to share.
#[derive(Debug)]
pub struct SharedGateway {
    pub fake: boxoffice_payments::FakeStripe,
    _dir: TempDir,
}

impl SharedGateway {
    pub async fn start() -> Arc<SharedGateway> {
        let dir = tempfile::tempdir().unwrap();
        let fake = boxoffice_payments::FakeStripe::start(
            dir.path(),
            "127.0.0.1:0".parse().unwrap(),
            Default::default(),
        )
        .await
        .expect("the test gateway starts");
        Arc::new(SharedGateway { fake, _dir: dir })
    }
}

fn redis_url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn nats_url() -> String {
    std::env::var("BOXOFFICE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", ulid::Ulid::new().to_string().to_lowercase())
}

impl Backend {
    pub async fn from_env() -> Backend {
        let mode = std::env::var("BOXOFFICE_TEST_BACKEND").unwrap_or_default();
        let redis = match mode.as_str() {
            "" | "embedded" => return Backend::default(),
            "distributed" => std::env::var("BOXOFFICE_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            "cluster" => std::env::var("BOXOFFICE_TEST_REDIS_CLUSTER").unwrap_or_else(|_| {
                "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
            }),
            other => panic!("BOXOFFICE_TEST_BACKEND={other}: embedded, distributed or cluster"),
        };
        Self::on(redis).await
    }

    /// A fresh database, key prefix and stream on these Redis nodes.
    async fn on(redis: String) -> Backend {
        Backend {
            database_url: Some(
                boxoffice_store_postgres::testing::fresh_database()
                    .await
                    .expect("PostgreSQL answers (scripts/services starts it)"),
            ),
            redis_url: Some(redis),
            redis_prefix: format!("test:{}:", ulid::Ulid::new()),
            nats_url: Some(nats_url()),
            nats_prefix: unique("test"),
            gateway: Some(SharedGateway::start().await),
        }
    }

    /// The test gateway the app talks to: the shared one, else the app's built-in.
    pub fn shared_gateway_url(&self) -> Option<String> {
        self.gateway.as_ref().map(|g| g.fake.url())
    }

    pub fn is_distributed(&self) -> bool {
        self.database_url.is_some()
    }

    pub fn apply(&self, c: &mut Config) {
        c.database_url = self.database_url.clone().map(Into::into);
        c.redis_url = self.redis_url.clone().map(Into::into);
        if !self.redis_prefix.is_empty() {
            c.redis_prefix = self.redis_prefix.clone();
        }
        c.nats_url = self.nats_url.clone().map(Into::into);
        if !self.nats_prefix.is_empty() {
            c.nats_prefix = self.nats_prefix.clone();
        }
        if let Some(g) = &self.gateway {
            c.gateway = boxoffice_server::config::GatewayKind::Stripe;
            c.stripe_url = g.fake.url();
            c.stripe_secret_key = Some(boxoffice_payments::TEST_SECRET_KEY.into());
        }
    }

    /// What a test asked of the built-in gateway, asked of the shared one instead.
    fn tune_gateway(&self, latency_ms: u64, failure_rate: f64) {
        if let Some(g) = &self.gateway {
            g.fake.set_config(boxoffice_payments::FakeStripeConfig {
                latency: std::time::Duration::from_millis(latency_ms),
                failure_rate,
            });
        }
    }

    /// The same, as environment for a child process.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(u) = &self.database_url {
            env.push(("BOXOFFICE_DATABASE_URL".into(), u.clone()));
        }
        if let Some(u) = &self.redis_url {
            env.push(("BOXOFFICE_REDIS_URL".into(), u.clone()));
            env.push(("BOXOFFICE_REDIS_PREFIX".into(), self.redis_prefix.clone()));
        }
        if let Some(u) = &self.nats_url {
            env.push(("BOXOFFICE_NATS_URL".into(), u.clone()));
            env.push(("BOXOFFICE_NATS_PREFIX".into(), self.nats_prefix.clone()));
        }
        if let Some(g) = &self.gateway {
            env.push(("BOXOFFICE_GATEWAY".into(), "stripe".into()));
            env.push(("BOXOFFICE_STRIPE_URL".into(), g.fake.url()));
            env.push((
                "BOXOFFICE_STRIPE_SECRET_KEY".into(),
                boxoffice_payments::TEST_SECRET_KEY.into(),
            ));
        }
        env
    }
}

pub fn config(data_dir: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.data_dir = data_dir.to_owned();
    c.admin_email = ADMIN_EMAIL.into();
    c.admin_password = Some(ADMIN_PASSWORD.into());
    c.demo = false;
    c.sweep_interval_ms = 50;
    // Tests move manual clocks by hours with tokens taken before: the 15-minute
    // access tokens are tested in security.rs.
    c.access_token_ttl_seconds = 7 * 24 * 3600;
    // Tests read their queue place in loops; the limit has its own test.
    c.rate_limit_poll_per_minute = 0;
    c
}

/// Tests are silent unless `TEST_LOG` names a filter (`TEST_LOG=warn cargo test`).
fn init_logging() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

async fn start(
    data_dir: &std::path::Path,
    backend: &Backend,
    tweak: fn(&mut Config),
    clock: Option<Arc<ManualClock>>,
    engine: Option<Arc<FaultyEngine>>,
) -> Running {
    init_logging();
    let mut c = config(data_dir);
    backend.apply(&mut c);
    c.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
    tweak(&mut c);
    backend.tune_gateway(c.gateway_latency_ms, c.gateway_failure_rate);
    let built = match (clock, engine) {
        (Some(clock), Some(engine)) => {
            let wrap: EngineWrap = Box::new(move |inner| engine.wrap(inner));
            Application::build_with_engine(Arc::new(c), clock, wrap).await
        }
        (Some(clock), None) => Application::build_with_clock(Arc::new(c), clock).await,
        (None, _) => Application::build(Arc::new(c)).await,
    }
    .expect("app builds");
    // A shared test gateway sends this node its webhooks too (the built-in one is
    // told by the node itself).
    if let Some(g) = &backend.gateway {
        let url = format!("http://{}/v1/payments/stripe/webhook", built.address());
        g.fake
            .add_webhook_endpoint(&url, WEBHOOK_SECRET)
            .await
            .expect("the test gateway takes the endpoint");
    }
    built.start()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// The app with some settings changed (kept across restarts).
    pub async fn spawn_with(tweak: fn(&mut Config)) -> TestApp {
        Self::spawn_on(Backend::from_env().await, tweak).await
    }

    /// The app on the given backends.
    pub async fn spawn_on(backend: Backend, tweak: fn(&mut Config)) -> TestApp {
        Self::spawn_full(backend, tweak, None, None).await
    }

    /// The app on a manual clock that the test moves.
    pub async fn spawn_with_clock(tweak: fn(&mut Config), clock: Arc<ManualClock>) -> TestApp {
        Self::spawn_full(Backend::from_env().await, tweak, Some(clock), None).await
    }

    /// The app on a manual clock, its hold engine wrapped in `engine` (which fails
    /// or pauses on the test's cue).
    pub async fn spawn_with_engine(
        tweak: fn(&mut Config),
        clock: Arc<ManualClock>,
        engine: Arc<FaultyEngine>,
    ) -> TestApp {
        Self::spawn_full(Backend::from_env().await, tweak, Some(clock), Some(engine)).await
    }

    async fn spawn_full(
        backend: Backend,
        tweak: fn(&mut Config),
        clock: Option<Arc<ManualClock>>,
        engine: Option<Arc<FaultyEngine>>,
    ) -> TestApp {
        let data_dir = tempfile::tempdir().unwrap();
        let running = start(
            data_dir.path(),
            &backend,
            tweak,
            clock.clone(),
            engine.clone(),
        )
        .await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let mut app = TestApp {
            addr: running.address(),
            backend,
            tweak,
            client,
            admin: String::new(),
            data_dir,
            running: Some(running),
            clock,
            engine,
        };
        app.admin = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        app
    }

    /// Talks to a server that runs elsewhere (a child process) on `data_dir` and
    /// `backend`.
    pub async fn attach(addr: SocketAddr, data_dir: TempDir, backend: Backend) -> TestApp {
        Self::attach_as(addr, data_dir, backend, ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// The same, logged in as this admin.
    pub async fn attach_as(
        addr: SocketAddr,
        data_dir: TempDir,
        backend: Backend,
        admin_email: &str,
        admin_password: &str,
    ) -> TestApp {
        let mut app = TestApp {
            addr,
            backend,
            tweak: |_| {},
            client: reqwest::Client::new(),
            admin: String::new(),
            data_dir,
            running: None,
            clock: None,
            engine: None,
        };
        app.admin = app.login(admin_email, admin_password).await;
        app
    }

    /// Stops the server (draining requests, finishing the jobs in hand).
    pub async fn stop(&mut self) {
        self.running.take().unwrap().stop().await.unwrap();
    }

    /// Stops the server (draining requests) and starts a new one on the same data.
    pub async fn restart(&mut self) {
        self.running.take().unwrap().stop().await.unwrap();
        let running = start(
            self.data_dir.path(),
            &self.backend,
            self.tweak,
            self.clock.clone(),
            self.engine.clone(),
        )
        .await;
        self.addr = running.address();
        self.running = Some(running);
    }

    /// Where `/metrics` is served alone, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().and_then(Running::metrics_address)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Res {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::DELETE, path, token, None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Registers a fresh customer and returns their token.
    pub async fn customer(&self) -> String {
        let email = format!("buyer-{}@example.com", ulid_like());
        let r = self
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// A venue with the given (section, rows, seats per row).
    pub async fn venue(&self, sections: &[(&str, u32, u32)]) -> String {
        let sections: Vec<Value> = sections
            .iter()
            .map(|(n, r, s)| json!({"name": n, "rows": r, "seats_per_row": s}))
            .collect();
        let r = self
            .post(
                "/v1/venues",
                Some(&self.admin),
                json!({"name": "Hall", "sections": sections}),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_event(&self, body: Value) -> Value {
        let r = self.post("/v1/events", Some(&self.admin), body).await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body
    }

    pub async fn set_status(&self, event: &str, status: &str) {
        let r = self
            .call(
                Method::PATCH,
                &format!("/v1/events/{event}"),
                Some(&self.admin),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    /// An on-sale event over one section `A` of rows × seats and a GA tier.
    pub async fn sale(&self, rows: u32, seats: u32, ga_capacity: u32, ttl: u32, max: u32) -> Sale {
        let venue = self.venue(&[("A", rows, seats), ("B", 1, 5)]).await;
        let ev = self
            .create_event(json!({
                "venue_id": venue,
                "name": "Test night",
                "starts_at": "2030-06-01T20:00:00Z",
                "hold_ttl_seconds": ttl,
                "max_tickets_per_order": max,
                "tiers": [{"name": "Main", "price": {"amount": 2500, "currency": "EUR"}, "sections": ["A"]}],
                "ga_tiers": [{"name": "Floor", "price": {"amount": 1000, "currency": "EUR"}, "capacity": ga_capacity}]
            }))
            .await;
        let id = ev["id"].as_str().unwrap().to_owned();
        self.set_status(&id, "on_sale").await;
        let layout = self.get(&format!("/v1/events/{id}/layout"), None).await;
        Sale {
            seats: layout.body["seats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect(),
            ga_tier: ev["ga_tiers"][0]["id"].as_str().unwrap().to_owned(),
            id,
        }
    }

    pub async fn hold_seats(&self, token: &str, event: &str, seats: &[&String]) -> Res {
        self.post(
            &format!("/v1/events/{event}/holds"),
            Some(token),
            json!({ "seats": seats }),
        )
        .await
    }

    pub async fn seat_map(&self, event: &str) -> Value {
        let r = self.get(&format!("/v1/events/{event}/seats"), None).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    /// The status character of each seat, in layout order.
    pub async fn statuses(&self, event: &str) -> Vec<char> {
        self.seat_map(event).await["status"]
            .as_str()
            .unwrap()
            .chars()
            .collect()
    }
}

pub struct Sale {
    pub id: String,
    /// Seat ids in layout order.
    pub seats: Vec<String>,
    pub ga_tier: String,
}

/// Unique within this test process (and across processes, by pid and time).
pub fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestApp {
    /// Checks a hold out with `token` under `key`.
    pub async fn checkout(&self, buyer: &str, hold: &str, key: &str, token: &str) -> Res {
        let res = self
            .client
            .post(self.url(&format!("/v1/holds/{hold}/checkout")))
            .bearer_auth(buyer)
            .header("Idempotency-Key", key)
            .json(&json!({"email": "buyer@example.com", "payment": {"token": token}}))
            .send()
            .await
            .expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.json().await.unwrap_or(Value::Null);
        Res {
            status,
            body,
            headers,
        }
    }

    /// The order once its payment has finished (long-polls up to 30 s at a time).
    pub async fn final_order(&self, buyer: &str, order: &str) -> Value {
        for _ in 0..10 {
            let r = self
                .get(&format!("/v1/orders/{order}?wait=30"), Some(buyer))
                .await;
            if r.status == 503 && r.code() == "timeout" {
                // The server gave up on this long-poll (a stalled store): ask again.
                continue;
            }
            assert_eq!(r.status, 200, "{r:?}");
            if r.body["status"] != "pending_payment" {
                return r.body;
            }
        }
        panic!("order {order} never left pending_payment");
    }

    /// Where the hold engine and the store disagree about `event` (the admin's
    /// engine audit, which first lets detached work finish): `agrees` is true when
    /// they agree seat by seat and tier by tier.
    pub async fn engine_audit(&self, event: &str) -> Value {
        let r = self
            .get(
                &format!("/v1/admin/events/{event}/engine-audit"),
                Some(&self.admin),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    /// The running app (its use cases, for tests that drive a background task
    /// themselves, such as a pass of the payment reconciler).
    pub fn app(&self) -> &Arc<boxoffice_app::App> {
        self.running
            .as_ref()
            .expect("the app runs in this process")
            .app()
    }

    /// The test gateway's base URL: the shared one, else the app's built-in one.
    pub fn gateway_url(&self) -> String {
        self.backend.shared_gateway_url().unwrap_or_else(|| {
            self.running
                .as_ref()
                .and_then(|r| r.test_gateway_url())
                .expect("a test gateway runs")
        })
    }

    /// Tells the test gateway which faults to show (its test-helpers endpoint).
    pub async fn gateway_faults(&self, faults: &[(&str, &str)]) {
        let r = self
            .client
            .post(format!("{}/v1/test_helpers/faults", self.gateway_url()))
            .bearer_auth(boxoffice_payments::TEST_SECRET_KEY)
            .form(faults)
            .send()
            .await
            .expect("the test gateway answers");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    /// Every charge the test gateway recorded.
    pub async fn charges(&self) -> Vec<Value> {
        let r = self
            .get("/v1/admin/test-gateway/charges", Some(&self.admin))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["charges"].as_array().unwrap().clone()
    }
}

/// The real binary as a child process (for crash tests: it can be SIGKILLed).
pub struct Process {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Its stdout, line by line, as it prints them (read on a thread).
    pub lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr (the log), line by line.
    pub log: std::sync::mpsc::Receiver<String>,
}

/// The binary with no `BOXOFFICE_*` from the test's environment (no colour either).
pub fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BOXOFFICE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// `boxoffice` on `data_dir` and `backend` with a fresh port and the test admin;
/// `env` adds settings.
pub fn server_command(
    data_dir: &std::path::Path,
    backend: &Backend,
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = binary();
    cmd.env("BOXOFFICE_LISTEN", "127.0.0.1:0")
        .env("BOXOFFICE_DATA_DIR", data_dir)
        .env("BOXOFFICE_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("BOXOFFICE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("BOXOFFICE_LOG", "warn");
    for (k, v) in backend.env() {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let setting = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    backend.tune_gateway(
        setting("BOXOFFICE_GATEWAY_LATENCY_MS").map_or(0, |v| v.parse().unwrap()),
        setting("BOXOFFICE_GATEWAY_FAILURE_RATE").map_or(0.0, |v| v.parse().unwrap()),
    );
    cmd
}

impl Process {
    /// Starts `boxoffice` on `data_dir` and `backend` with a fresh port and the test
    /// admin; `env` adds settings. Returns once it serves.
    pub fn boot(data_dir: &std::path::Path, backend: &Backend, env: &[(&str, &str)]) -> Process {
        Self::start(server_command(data_dir, backend, env))
    }

    /// Starts a server command; returns once it serves.
    pub fn start(mut cmd: std::process::Command) -> Process {
        use std::io::{BufRead, BufReader};
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary starts");
        let err = BufReader::new(child.stderr.take().unwrap());
        let (log_tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                let _ = log_tx.send(l);
            }
        });
        // The first line says where it serves, once it is bound.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        // Keep reading, so the server's later lines never meet a closed pipe.
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Process {
            child,
            addr,
            lines,
            log,
        }
    }

    /// The first line it printed (after the first) that contains `what`.
    pub fn line_with(&self, what: &str) -> String {
        Self::first_with(&self.lines, what)
    }

    /// The first line it logged (on stderr) that contains `what`.
    pub fn log_line_with(&self, what: &str) -> String {
        Self::first_with(&self.log, what)
    }

    fn first_with(lines: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {what:?}: {e}"),
            }
        }
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Backend {
    /// Deletes every Redis key of this test (what a FLUSHALL, a restart without
    /// persistence, or a failover to an empty replica does to it), on every node.
    /// An event's keys go in one DEL, as a real loss takes them: all or nothing.
    pub async fn lose_redis_state(&self) {
        let Some(urls) = &self.redis_url else { return };
        for url in urls.split(',') {
            let client = redis::Client::open(url.trim()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut cursor: u64 = 0;
            let mut by_tag: HashMap<String, Vec<String>> = HashMap::new();
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}*", self.redis_prefix))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                for k in keys {
                    let tag = k
                        .split_once('{')
                        .and_then(|(_, t)| t.split_once('}'))
                        .map_or(k.clone(), |(t, _)| t.to_owned());
                    by_tag.entry(tag).or_default().push(k);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            for keys in by_tag.into_values() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

impl Backend {
    /// PostgreSQL, a single Redis and NATS, whatever `BOXOFFICE_TEST_BACKEND` says
    /// (for the tests that are about many nodes).
    pub async fn distributed() -> Backend {
        Self::on(redis_url()).await
    }
}

// The test gateway as a test (the buyer's browser, the bank, the operator) calls it.

/// A gateway call as the test (the buyer's browser, or the operator) makes it.
pub async fn gateway(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> Value {
    let r = app
        .client
        .request(method, format!("{}{path}", app.gateway_url()))
        .bearer_auth(boxoffice_payments::TEST_SECRET_KEY)
        .form(form)
        .send()
        .await
        .expect("the test gateway answers");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// The payment intents of `order` at the gateway, newest first.
pub async fn intents_of(app: &TestApp, order: &str) -> Vec<Value> {
    let r = app
        .client
        .get(format!("{}/v1/payment_intents/search", app.gateway_url()))
        .bearer_auth(boxoffice_payments::TEST_SECRET_KEY)
        .query(&[("query", format!("metadata['order_id']:'{order}'"))])
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `what` until it holds (a condition, not a duration: bounded only to fail
/// rather than hang).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1500 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}
