//! A fake of Stripe's API (PaymentIntents, Charges, Refunds, webhooks), for tests and
//! the embedded default. The PaymentIntents part and the webhooks are in `intents`.
//!
//! It is a separate party in all but process: it has its own HTTP listener and its
//! own SQLite file, so what it charged survives a crash of the server that called it.
//! It implements Stripe's idempotency: the first answer under a key is stored and
//! replayed (`Idempotent-Replayed: true`), another request under the same key is a
//! 400 `idempotency_error`, and a key in use by a concurrent request is a 409.
//! Test tokens: `tok_visa` succeeds; `tok_chargeDeclined` and
//! `tok_chargeDeclinedInsufficientFunds` decline (402); `tok_processingError` fails
//! with a 500 the first time a key uses it and succeeds when that key retries.
//! It must never be selected outside tests and demos: it charges nobody.
//!
//! Faults on demand (for tests, and for trying an operator's runbook):
//! `POST /v1/test_helpers/faults` with `lose_answers=true` makes it do the work of
//! every API request that does any (a POST: a charge is committed, a key's answer
//! stored) and then drop the connection before the answer is out;
//! `unavailable=true` answers those with a 503 and does nothing. Listings still
//! answer, so a test can see what was charged. `false` turns them off. [`FakeStripe::set_faults`]
//! does the same in process.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::Rng;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod intents;
pub use intents::signature as webhook_signature;

/// The API key the fake accepts (any `sk_test_…` works).
pub const TEST_SECRET_KEY: &str = "sk_test_boxoffice";

#[derive(Debug, Clone, Default)]
pub struct FakeStripeConfig {
    /// Added to every charge and refund, as a real network and issuer would.
    pub latency: Duration,
    /// Share of charge requests answered with a transient 500 (0.0 to 1.0).
    pub failure_rate: f64,
}

#[derive(Debug)]
pub struct FakeStripe {
    deliver: Arc<tokio::sync::Notify>,
    config: Arc<parking_lot::Mutex<FakeStripeConfig>>,
    faults: Arc<parking_lot::Mutex<Faults>>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    /// The thread that serves it, on a runtime of its own.
    thread: Option<std::thread::JoinHandle<()>>,
    pool: SqlitePool,
}

/// Faults the fake can be told to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Do the work, then drop the connection before the answer is out.
    pub lose_answers: bool,
    /// Answer every API request 503 and do nothing.
    pub unavailable: bool,
    /// Send every webhook delivery twice.
    pub webhooks_duplicate: bool,
    /// Keep webhook deliveries queued (a delay) until this is turned off.
    pub webhooks_hold: bool,
    /// Send what is queued newest first (out of order).
    pub webhooks_reverse: bool,
}

#[derive(Clone)]
struct Fake {
    pool: SqlitePool,
    config: Arc<parking_lot::Mutex<FakeStripeConfig>>,
    faults: Arc<parking_lot::Mutex<Faults>>,
    /// Its own base URL (the 3-D Secure page lives here).
    base: String,
    /// Wakes the webhook deliverer.
    deliver: Arc<tokio::sync::Notify>,
}

impl Fake {
    fn faults(&self) -> Faults {
        *self.faults.lock()
    }
}

/// A response whose connection drops before its answer is out: the status line may
/// have been sent, the body never is (hyper aborts the connection on a body error).
fn dropped_connection() -> Response {
    let body = axum::body::Body::from_stream(futures::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::other(
            "connection dropped after the work was done (simulated)",
        ))
    }));
    (StatusCode::OK, body).into_response()
}

fn unavailable() -> Response {
    reply(error(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        None,
        "The service is unavailable (simulated).",
    ))
}

/// Runs a request's work on a task of its own: as at a real gateway, work that has
/// started finishes (and its key gets its answer) even if the caller hangs up
/// meanwhile, instead of leaving the key "in progress" for ever.
async fn detached<F, Fut>(fake: &Fake, work: F) -> anyhow::Result<Response>
where
    F: FnOnce(Fake) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Response>> + Send + 'static,
{
    tokio::spawn(work(fake.clone()))
        .await
        .map_err(|e| anyhow::anyhow!("the request's task failed: {e}"))?
}

/// Applies the faults around an API handler: `work` runs (or not), and its answer
/// reaches the caller (or not).
async fn with_faults(fake: &Fake, work: impl std::future::Future<Output = Response>) -> Response {
    let before = fake.faults();
    if before.unavailable {
        return unavailable();
    }
    let res = work.await;
    if before.lose_answers || fake.faults().lose_answers {
        return dropped_connection();
    }
    res
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_code TEXT,
    decline_code TEXT,
    metadata TEXT NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    body TEXT
);
CREATE TABLE IF NOT EXISTS transient_seen (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    charge_id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL,
    created INTEGER NOT NULL
);
-- Refunds, several per charge (partial refunds add up to at most its amount);
-- `refunds` above, one full refund per charge, is what older files kept.
CREATE TABLE IF NOT EXISTS charge_refunds (
    id TEXT PRIMARY KEY,
    charge_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS charge_refunds_charge ON charge_refunds (charge_id);
INSERT OR IGNORE INTO charge_refunds (id, charge_id, amount, created)
    SELECT id, charge_id, amount, created FROM refunds;
";

fn id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{tail}")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> (StatusCode, Value) {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    (status, json!({ "error": e }))
}

fn reply((status, body): (StatusCode, Value)) -> Response {
    (status, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k.starts_with("sk_test_"))
}

fn unauthorized() -> Response {
    reply(error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        None,
        "Invalid API Key provided.",
    ))
}

impl FakeStripe {
    /// Starts the fake on `listen` with its records in `dir/test-gateway.db`.
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        config: FakeStripeConfig,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join("test-gateway.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            // One connection, so every statement waits for the one before: no extra
            // ping each time it is taken out (sqlx pings it when it goes back).
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::raw_sql(intents::SCHEMA).execute(&pool).await?;
        // Requests that were in flight when a previous run died never got an answer
        // recorded (answers are recorded with their charge, atomically), so their
        // keys are free again.
        sqlx::query("DELETE FROM idempotency WHERE state = 'processing'")
            .execute(&pool)
            .await?;
        // It stands in for a service elsewhere, so it runs on a thread and runtime of
        // its own: its answers do not wait behind the node's own work (under a sale's
        // load, a single pooled connection held across a busy runtime's queue made
        // every charge wait in line).
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(parking_lot::Mutex::new(Faults::default()));
        let config = Arc::new(parking_lot::Mutex::new(config));
        let deliver = Arc::new(tokio::sync::Notify::new());
        let state = Fake {
            pool: pool.clone(),
            config: config.clone(),
            faults: faults.clone(),
            base: format!("http://{addr}"),
            deliver: deliver.clone(),
        };
        let app = Router::new()
            .route("/v1/charges", post(create_charge).get(list_charges))
            .route("/v1/refunds", post(create_refund))
            .route("/v1/payment_intents", post(intents::create))
            .route("/v1/payment_intents/search", get(intents::search))
            .route("/v1/payment_intents/{id}", get(intents::retrieve))
            .route("/v1/payment_intents/{id}/cancel", post(intents::cancel))
            .route("/v1/webhook_endpoints", post(intents::create_endpoint))
            .route("/v1/test_helpers/faults", post(set_faults))
            .route(
                "/v1/test_helpers/authenticate/{id}",
                get(intents::authenticate).post(intents::authenticate),
            )
            .route(
                "/v1/test_helpers/payment_intents/{id}/settle",
                post(intents::settle),
            )
            .route("/v1/test_helpers/webhooks", get(intents::queued))
            .with_state(state.clone());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("test-gateway".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let deliverer = tokio::spawn(intents::deliver(state, token.clone()));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move { token.cancelled().await })
                        .await;
                    let _ = deliverer.await;
                })
            })?;
        tracing::info!(%addr, "test payment gateway (fake Stripe) listening");
        Ok(Self {
            deliver,
            config,
            faults,
            addr,
            shutdown,
            thread: Some(thread),
            pool,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the added latency and the share of transient failures from now on.
    pub fn set_config(&self, config: FakeStripeConfig) {
        *self.config.lock() = config;
    }

    /// Turns faults on or off (what `POST /v1/test_helpers/faults` does).
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock() = faults;
        self.deliver.notify_one();
    }

    /// Registers a webhook endpoint with its signing secret (what
    /// `POST /v1/webhook_endpoints` does, with a secret of the caller's choosing).
    pub async fn add_webhook_endpoint(&self, url: &str, secret: &str) -> anyhow::Result<()> {
        intents::add_endpoint(&self.pool, url, secret).await?;
        Ok(())
    }

    /// Makes `url` the only webhook endpoint (what the embedded server does at each
    /// start: its address and secret may have changed since), dropping deliveries
    /// queued for any other.
    pub async fn set_webhook_endpoint(&self, url: &str, secret: &str) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM deliveries")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_endpoints")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.add_webhook_endpoint(url, secret).await
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.pool.close().await;
    }
}

impl Drop for FakeStripe {
    /// Dropped without [`FakeStripe::stop`]: its thread stops serving too.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Claims `key` for this request: `Ok(None)` to go ahead, `Ok(Some(reply))` when
/// the answer is a replay or a refusal.
async fn claim_key(
    pool: &SqlitePool,
    key: &str,
    fingerprint: &str,
) -> anyhow::Result<Option<Response>> {
    let fresh = sqlx::query("INSERT INTO idempotency (key, fingerprint, state) VALUES (?, ?, 'processing') ON CONFLICT DO NOTHING")
        .bind(key)
        .bind(fingerprint)
        .execute(pool)
        .await?;
    if fresh.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT fingerprint, state, status, body FROM idempotency WHERE key = ?")
        .bind(key)
        .fetch_one(pool)
        .await?;
    if row.get::<String, _>("fingerprint") != fingerprint {
        return Ok(Some(reply(error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            None,
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        ))));
    }
    if row.get::<String, _>("state") == "processing" {
        return Ok(Some(reply(error(
            StatusCode::CONFLICT,
            "idempotency_error",
            Some("idempotency_key_in_use"),
            "There is currently another in-progress request using this idempotency key.",
        ))));
    }
    let status = StatusCode::from_u16(row.get::<i64, _>("status") as u16)?;
    let body: Value = serde_json::from_str(&row.get::<String, _>("body"))?;
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert("idempotent-replayed", "true".parse()?);
    Ok(Some(res))
}

async fn forget_key(pool: &SqlitePool, key: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM idempotency WHERE key = ? AND state = 'processing'")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

fn charge_json(row: &sqlx::sqlite::SqliteRow) -> Value {
    let metadata: Value =
        serde_json::from_str(&row.get::<String, _>("metadata")).unwrap_or(json!({}));
    let status: String = row.get("status");
    let refunded = row.get::<i64, _>("refunded") != 0;
    let amount: i64 = row.get("amount");
    let amount_refunded: i64 = row.try_get("amount_refunded").unwrap_or(0);
    let refund_count: i64 = row.try_get("refund_count").unwrap_or(0);
    json!({
        "id": row.get::<String, _>("id"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": if refunded { amount } else { amount_refunded },
        "currency": row.get::<String, _>("currency"),
        "created": row.get::<i64, _>("created"),
        "status": status,
        "paid": status == "succeeded",
        "refunded": refunded,
        // Stripe lists them (when expanded); the count is what tests look at.
        "refunds": {"object": "list", "total_count": refund_count},
        "failure_code": row.get::<Option<String>, _>("failure_code"),
        "metadata": metadata,
    })
}

async fn create_charge(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    with_faults(&fake, async {
        match detached(&fake, move |fake| async move {
            charge(&fake, &headers, &form).await
        })
        .await
        {
            Ok(res) => res,
            Err(e) => {
                tracing::error!(error = ?e, "fake gateway failed");
                reply(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    None,
                    "internal error",
                ))
            }
        }
    })
    .await
}

async fn set_faults(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut faults = fake.faults.lock();
    for (k, v) in &form {
        let on = match v.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return reply(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_invalid_boolean"),
                    &format!("{k} must be true or false"),
                ))
            }
        };
        match k.as_str() {
            "lose_answers" => faults.lose_answers = on,
            "unavailable" => faults.unavailable = on,
            "webhooks_duplicate" => faults.webhooks_duplicate = on,
            "webhooks_hold" => faults.webhooks_hold = on,
            "webhooks_reverse" => faults.webhooks_reverse = on,
            _ => {
                return reply(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_unknown"),
                    &format!("Received unknown parameter: {k}"),
                ))
            }
        }
    }
    let f = *faults;
    drop(faults);
    fake.deliver.notify_one();
    reply((
        StatusCode::OK,
        json!({"object": "test_helpers.faults", "lose_answers": f.lose_answers, "unavailable": f.unavailable,
            "webhooks_duplicate": f.webhooks_duplicate, "webhooks_hold": f.webhooks_hold, "webhooks_reverse": f.webhooks_reverse}),
    ))
}

async fn charge(
    fake: &Fake,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> anyhow::Result<Response> {
    let fingerprint = serde_json::to_string(form)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key {
        if let Some(res) = claim_key(&fake.pool, k, &fingerprint).await? {
            return Ok(res);
        }
    }
    // Half the latency before deciding, half after recording the charge: like a real
    // round trip, a caller can die after the charge exists but before it hears so.
    let config = fake.config.lock().clone();
    let half = config.latency / 2;
    if !half.is_zero() {
        tokio::time::sleep(half).await;
    }
    if config.failure_rate > 0.0 && rand::thread_rng().gen_bool(config.failure_rate.min(1.0)) {
        return transient(
            fake,
            key.as_deref(),
            "An unexpected error occurred (simulated).",
        )
        .await;
    }

    let amount = form
        .get("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a > 0);
    let currency = form.get("currency").filter(|c| c.len() == 3);
    let source = form.get("source");
    let (Some(amount), Some(currency), Some(source)) = (amount, currency, source) else {
        let answer = error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "amount, currency and source are required",
        );
        return finish(fake, key.as_deref(), None, answer).await;
    };
    let outcome: Result<(), (&str, &str, &str)> = match source.as_str() {
        "tok_visa" => Ok(()),
        "tok_chargeDeclined" => Err((
            "card_declined",
            "generic_decline",
            "Your card was declined.",
        )),
        "tok_chargeDeclinedInsufficientFunds" => Err((
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        )),
        "tok_processingError" => {
            let first = match &key {
                Some(k) => {
                    sqlx::query(
                        "INSERT INTO transient_seen (key) VALUES (?) ON CONFLICT DO NOTHING",
                    )
                    .bind(k)
                    .execute(&fake.pool)
                    .await?
                    .rows_affected()
                        == 1
                }
                None => true,
            };
            if first {
                return transient(
                    fake,
                    key.as_deref(),
                    "An error occurred while processing your card. Try again.",
                )
                .await;
            }
            Ok(())
        }
        other => {
            let answer = error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such token: '{other}'"),
            );
            return finish(fake, key.as_deref(), None, answer).await;
        }
    };
    let metadata: BTreeMap<&str, &str> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?, v.as_str())))
        .collect();
    let charge_id = id("ch");
    let (status, failure_code, decline_code) = match outcome {
        Ok(()) => ("succeeded", None, None),
        Err((code, decline, _)) => ("failed", Some(code), Some(decline)),
    };
    let created = now_secs();
    let currency = currency.to_lowercase();
    let answer = match outcome {
        Ok(()) => (
            StatusCode::OK,
            json!({
                "id": charge_id, "object": "charge", "amount": amount, "amount_refunded": 0,
                "currency": currency, "created": created, "status": status,
                "paid": true, "refunded": false, "failure_code": null, "metadata": metadata,
            }),
        ),
        Err((code, decline, message)) => (
            StatusCode::PAYMENT_REQUIRED,
            json!({"error": {
                "type": "card_error", "code": code, "decline_code": decline,
                "message": message, "charge": charge_id,
            }}),
        ),
    };
    let row = NewCharge {
        id: &charge_id,
        created,
        amount,
        currency: &currency,
        source,
        status,
        failure_code,
        decline_code,
        metadata: serde_json::to_string(&metadata)?,
    };
    let res = finish(fake, key.as_deref(), Some(row), answer).await?;
    if !half.is_zero() {
        tokio::time::sleep(half).await;
    }
    Ok(res)
}

struct NewCharge<'a> {
    id: &'a str,
    created: i64,
    amount: i64,
    currency: &'a str,
    source: &'a str,
    status: &'a str,
    failure_code: Option<&'a str>,
    decline_code: Option<&'a str>,
    metadata: String,
}

/// Records the charge (if any) and the key's answer in one transaction, so that a
/// crash leaves either both or neither: a key never loses a charge it made.
async fn finish(
    fake: &Fake,
    key: Option<&str>,
    charge: Option<NewCharge<'_>>,
    (status, body): (StatusCode, Value),
) -> anyhow::Result<Response> {
    let mut tx = fake.pool.begin().await?;
    if let Some(c) = charge {
        sqlx::query("INSERT INTO charges (id, created, amount, currency, source, status, failure_code, decline_code, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(c.id)
            .bind(c.created)
            .bind(c.amount)
            .bind(c.currency)
            .bind(c.source)
            .bind(c.status)
            .bind(c.failure_code)
            .bind(c.decline_code)
            .bind(c.metadata)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(k) = key {
        sqlx::query("UPDATE idempotency SET state = 'done', status = ?, body = ? WHERE key = ?")
            .bind(i64::from(status.as_u16()))
            .bind(body.to_string())
            .bind(k)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(reply((status, body)))
}

/// A transient failure: nothing is recorded, and the key is free for the retry.
async fn transient(fake: &Fake, key: Option<&str>, message: &str) -> anyhow::Result<Response> {
    if let Some(k) = key {
        forget_key(&fake.pool, k).await?;
    }
    Ok(reply(error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        None,
        message,
    )))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    starting_after: Option<String>,
}

async fn list_charges(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    let before = match &q.starting_after {
        Some(after) => sqlx::query_scalar::<_, i64>("SELECT seq FROM charges WHERE id = ?")
            .bind(after)
            .fetch_optional(&fake.pool)
            .await
            .ok()
            .flatten()
            .unwrap_or(0),
        None => i64::MAX,
    };
    // Newest first, as Stripe lists.
    let rows = sqlx::query(
        "SELECT c.*, (SELECT COALESCE(SUM(r.amount), 0) FROM charge_refunds r WHERE r.charge_id = c.id) AS amount_refunded, \
             (SELECT COUNT(*) FROM charge_refunds r WHERE r.charge_id = c.id) AS refund_count \
         FROM charges c WHERE c.seq < ? ORDER BY c.seq DESC LIMIT ?",
    )
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&fake.pool)
        .await;
    match rows {
        Ok(rows) => {
            let has_more = rows.len() as i64 > limit;
            let data: Vec<Value> = rows.iter().take(limit as usize).map(charge_json).collect();
            reply((
                StatusCode::OK,
                json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/charges"}),
            ))
        }
        Err(_) => reply(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            "internal error",
        )),
    }
}

async fn create_refund(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    with_faults(&fake, async {
        match detached(&fake, move |fake| async move {
            refund(&fake, &headers, &form).await
        })
        .await
        {
            Ok(res) => res,
            Err(e) => {
                tracing::error!(error = ?e, "fake gateway failed");
                reply(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    None,
                    "internal error",
                ))
            }
        }
    })
    .await
}

/// A refund of `amount` (default: all that is left) of a charge, or of a
/// PaymentIntent's charge. As at Stripe: refunds of one charge add up to at most its
/// amount (`amount_too_large` past it; `charge_already_refunded` once it is all
/// back), and an `Idempotency-Key` makes a repeat the same refund, answered again.
async fn refund(
    fake: &Fake,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> anyhow::Result<Response> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key {
        let fingerprint = serde_json::to_string(form)?;
        if let Some(res) = claim_key(&fake.pool, k, &fingerprint).await? {
            return Ok(res);
        }
    }
    let latency = fake.config.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // A PaymentIntent is refunded through its latest charge.
    let by_intent = match form.get("payment_intent") {
        Some(pi) => sqlx::query_scalar::<_, Option<String>>(
            "SELECT latest_charge FROM payment_intents WHERE id = ? AND status = 'succeeded'",
        )
        .bind(pi)
        .fetch_optional(&fake.pool)
        .await?
        .flatten(),
        None => None,
    };
    let asked = match form.get("amount").map(|a| a.parse::<i64>()) {
        None => None,
        Some(Ok(a)) if a > 0 => Some(a),
        Some(_) => {
            let answer = error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "amount must be a positive integer",
            );
            return finish(fake, key.as_deref(), None, answer).await;
        }
    };
    let Some(charge) = by_intent.as_ref().or(form.get("charge")).cloned() else {
        let answer = error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "charge is required",
        );
        return finish(fake, key.as_deref(), None, answer).await;
    };
    let mut tx = fake.pool.begin().await?;
    let row: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT amount, status, refunded FROM charges WHERE id = ?")
            .bind(&charge)
            .fetch_optional(&mut *tx)
            .await?;
    let already: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount), 0) FROM charge_refunds WHERE charge_id = ?",
    )
    .bind(&charge)
    .fetch_one(&mut *tx)
    .await?;
    let answer = match row {
        None => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such charge: '{charge}'"),
        ),
        Some((amount, status, refunded))
            if status != "succeeded" || refunded != 0 || already >= amount =>
        {
            let _ = amount;
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("charge_already_refunded"),
                "Charge has already been refunded.",
            )
        }
        Some((amount, _, _)) if asked.is_some_and(|a| a > amount - already) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("amount_too_large"),
            &format!(
                "Refund amount ({}) is greater than unrefunded amount on charge ({}).",
                asked.unwrap_or_default(),
                amount - already
            ),
        ),
        Some((amount, _, _)) => {
            let this = asked.unwrap_or(amount - already);
            let refund = id("re");
            sqlx::query(
                "INSERT INTO charge_refunds (id, charge_id, amount, created) VALUES (?, ?, ?, ?)",
            )
            .bind(&refund)
            .bind(&charge)
            .bind(this)
            .bind(now_secs())
            .execute(&mut *tx)
            .await?;
            if already + this >= amount {
                sqlx::query("UPDATE charges SET refunded = 1 WHERE id = ?")
                    .bind(&charge)
                    .execute(&mut *tx)
                    .await?;
            }
            (
                StatusCode::OK,
                json!({"id": refund, "object": "refund", "charge": charge, "amount": this, "status": "succeeded"}),
            )
        }
    };
    // The refund and the key's answer in one transaction, as a charge and its answer.
    if let Some(k) = &key {
        sqlx::query("UPDATE idempotency SET state = 'done', status = ?, body = ? WHERE key = ?")
            .bind(i64::from(answer.0.as_u16()))
            .bind(answer.1.to_string())
            .bind(k)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(reply(answer))
}
