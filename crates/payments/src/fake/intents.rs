//! The fake's PaymentIntents API and its webhooks.
//!
//! `POST /v1/payment_intents` with `confirm=true` and a card token
//! (`payment_method_data[card][token]`, or `payment_method=pm_card_…`): `tok_visa`
//! succeeds; the decline tokens answer 402 and leave the intent
//! `requires_payment_method`; `tok_processingError` fails transiently once per key;
//! `tok_threeDSecure2Required` stops at `requires_action`, whose
//! `next_action.use_stripe_sdk.stripe_js` is the buyer's 3-D Secure page here
//! (`/v1/test_helpers/authenticate/{id}?outcome=succeed|fail`); `tok_processing`
//! (the fake's own: Stripe's cards never stay processing, but bank debits do) stays
//! `processing` until `POST /v1/test_helpers/payment_intents/{id}/settle` with
//! `outcome=succeeded|failed`. Retrieve, search by `metadata['order_id']`, cancel.
//!
//! Every change of an intent is an event (`payment_intent.succeeded`, `.payment_failed`,
//! `.requires_action`, `.processing`, `.canceled`) delivered to each registered
//! endpoint (`POST /v1/webhook_endpoints`, or [`FakeStripe::add_webhook_endpoint`])
//! signed as Stripe signs (`Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of `t.body`
//! with the endpoint's secret), and retried with backoff until it is answered 2xx.
//! Faults: `webhooks_duplicate` sends each delivery twice, `webhooks_hold` keeps
//! them queued (a delay), `webhooks_reverse` sends what is queued newest first
//! (out of order).
//!
//! [`FakeStripe::add_webhook_endpoint`]: super::FakeStripe::add_webhook_endpoint

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::{Row, SqlitePool};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    authorized, claim_key, error, id, now_secs, reply, transient, unauthorized, with_faults, Fake,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payment_intents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    last_error TEXT,
    latest_charge TEXT,
    cancellation_reason TEXT,
    description TEXT,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payment_intents_order ON payment_intents (json_extract(metadata, '$.order_id'));
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    event TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due INTEGER NOT NULL
);
";

type HmacSha256 = Hmac<Sha256>;

/// `Stripe-Signature` for `body` at unix time `t` with `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

fn intent_json(fake: &Fake, row: &sqlx::sqlite::SqliteRow) -> Value {
    let id: String = row.get("id");
    let status: String = row.get("status");
    let amount: i64 = row.get("amount");
    let metadata: Value =
        serde_json::from_str(&row.get::<String, _>("metadata")).unwrap_or(json!({}));
    let last_error: Option<Value> = row
        .get::<Option<String>, _>("last_error")
        .and_then(|e| serde_json::from_str(&e).ok());
    let next_action = (status == "requires_action").then(|| {
        json!({
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {
                "type": "three_d_secure_redirect",
                "stripe_js": format!("{}/v1/test_helpers/authenticate/{id}", fake.base),
            },
        })
    });
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "currency": row.get::<String, _>("currency"),
        "status": status,
        "client_secret": format!("{id}_secret_fake"),
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "payment_method_types": ["card"],
        "created": row.get::<i64, _>("created"),
        "description": row.get::<Option<String>, _>("description"),
        "last_payment_error": last_error,
        "latest_charge": row.get::<Option<String>, _>("latest_charge"),
        "cancellation_reason": row.get::<Option<String>, _>("cancellation_reason"),
        "next_action": next_action,
        "metadata": metadata,
        "livemode": false,
    })
}

async fn load(
    fake: &Fake,
    conn: impl sqlx::SqliteExecutor<'_>,
    pi: &str,
) -> sqlx::Result<Option<Value>> {
    Ok(sqlx::query("SELECT * FROM payment_intents WHERE id = ?")
        .bind(pi)
        .fetch_optional(conn)
        .await?
        .map(|r| intent_json(fake, &r)))
}

fn no_such(pi: &str) -> Response {
    reply(error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such payment_intent: '{pi}'"),
    ))
}

fn internal() -> Response {
    reply(error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        None,
        "internal error",
    ))
}

/// Queues `type` about `intent` for every endpoint, in the caller's transaction.
async fn emit(conn: &mut sqlx::SqliteConnection, kind: &str, intent: &Value) -> sqlx::Result<()> {
    let event = json!({
        "id": id("evt"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now_secs(),
        "type": kind,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": intent["metadata"]["idempotency_key"]},
        "data": {"object": intent},
    })
    .to_string();
    sqlx::query(
        "INSERT INTO deliveries (endpoint, event, due) SELECT id, ?, 0 FROM webhook_endpoints",
    )
    .bind(event)
    .execute(conn)
    .await?;
    Ok(())
}

/// The event a status change sends.
fn event_of(status: &str) -> &'static str {
    match status {
        "succeeded" => "payment_intent.succeeded",
        "requires_action" => "payment_intent.requires_action",
        "processing" => "payment_intent.processing",
        "canceled" => "payment_intent.canceled",
        _ => "payment_intent.payment_failed",
    }
}

/// Moves `pi` to `status` (with its charge when it succeeds or fails), and queues
/// its event; `Ok(None)` when it was not in `from`.
async fn transition(
    fake: &Fake,
    pi: &str,
    from: &[&str],
    status: &str,
    last_error: Option<Value>,
    cancellation_reason: Option<&str>,
) -> sqlx::Result<Option<Value>> {
    let mut tx = fake.pool.begin().await?;
    let Some(current) = load(fake, &mut *tx, pi).await? else {
        return Ok(None);
    };
    if !from.contains(&current["status"].as_str().unwrap_or_default()) {
        return Ok(Some(current));
    }
    let charge = match status {
        "succeeded" | "requires_payment_method" => Some(
            insert_charge(
                &mut tx,
                &current,
                status == "succeeded",
                last_error.as_ref(),
            )
            .await?,
        ),
        _ => None,
    };
    sqlx::query("UPDATE payment_intents SET status = ?, last_error = ?, latest_charge = COALESCE(?, latest_charge), cancellation_reason = ? WHERE id = ?")
        .bind(status)
        .bind(last_error.map(|e| e.to_string()))
        .bind(charge)
        .bind(cancellation_reason)
        .bind(pi)
        .execute(&mut *tx)
        .await?;
    let now = load(fake, &mut *tx, pi).await?.expect("just updated");
    emit(&mut tx, event_of(status), &now).await?;
    tx.commit().await?;
    fake.deliver.notify_one();
    Ok(Some(now))
}

/// A charge row for an intent's attempt (what `GET /v1/charges` lists).
async fn insert_charge(
    conn: &mut sqlx::SqliteConnection,
    intent: &Value,
    succeeded: bool,
    last_error: Option<&Value>,
) -> sqlx::Result<String> {
    let charge = id("ch");
    let mut metadata = intent["metadata"].clone();
    metadata["payment_intent"] = intent["id"].clone();
    sqlx::query("INSERT INTO charges (id, created, amount, currency, source, status, failure_code, decline_code, metadata) SELECT ?, ?, amount, currency, source, ?, ?, ?, ? FROM payment_intents WHERE id = ?")
        .bind(&charge)
        .bind(now_secs())
        .bind(if succeeded { "succeeded" } else { "failed" })
        .bind(last_error.and_then(|e| e["code"].as_str()))
        .bind(last_error.and_then(|e| e["decline_code"].as_str()))
        .bind(metadata.to_string())
        .bind(intent["id"].as_str())
        .execute(conn)
        .await?;
    Ok(charge)
}

fn card_error(code: &str, decline: &str, message: &str) -> Value {
    json!({"type": "card_error", "code": code, "decline_code": decline, "message": message})
}

pub(super) async fn create(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    with_faults(&fake, async {
        match super::detached(&fake, move |fake| async move {
            create_intent(&fake, &headers, &form).await
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = ?e, "fake gateway failed");
                internal()
            }
        }
    })
    .await
}

async fn create_intent(
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
    let config = fake.config.lock().clone();
    let half = config.latency / 2;
    if !half.is_zero() {
        tokio::time::sleep(half).await;
    }
    if config.failure_rate > 0.0
        && rand::Rng::gen_bool(&mut rand::thread_rng(), config.failure_rate.min(1.0))
    {
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
    let token = form
        .get("payment_method_data[card][token]")
        .cloned()
        .or_else(|| {
            form.get("payment_method")
                .and_then(|pm| pm.strip_prefix("pm_card_"))
                .map(|t| format!("tok_{t}"))
        });
    let (Some(amount), Some(currency), Some(token)) = (amount, currency, token) else {
        let answer = error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "amount, currency and a card (payment_method_data[card][token] or payment_method) are required",
        );
        return record(fake, key.as_deref(), None, answer).await;
    };
    if form.get("confirm").map(String::as_str) != Some("true") {
        let answer = error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "this fake creates intents with confirm=true only",
        );
        return record(fake, key.as_deref(), None, answer).await;
    }
    let outcome: (&str, Option<Value>) = match token.as_str() {
        "tok_visa" => ("succeeded", None),
        "tok_threeDSecure2Required" => ("requires_action", None),
        "tok_processing" => ("processing", None),
        "tok_chargeDeclined" => (
            "requires_payment_method",
            Some(card_error(
                "card_declined",
                "generic_decline",
                "Your card was declined.",
            )),
        ),
        "tok_chargeDeclinedInsufficientFunds" => (
            "requires_payment_method",
            Some(card_error(
                "card_declined",
                "insufficient_funds",
                "Your card has insufficient funds.",
            )),
        ),
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
            ("succeeded", None)
        }
        other => {
            let answer = error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such token: '{other}'"),
            );
            return record(fake, key.as_deref(), None, answer).await;
        }
    };
    let metadata: BTreeMap<&str, &str> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?, v.as_str())))
        .collect();
    let new = NewIntent {
        id: id("pi"),
        amount,
        currency: currency.to_lowercase(),
        source: token.clone(),
        status: outcome.0,
        last_error: outcome.1,
        description: form.get("description").cloned(),
        metadata: serde_json::to_string(&metadata)?,
    };
    let res = record(
        fake,
        key.as_deref(),
        Some(new),
        (StatusCode::OK, Value::Null),
    )
    .await?;
    if !half.is_zero() {
        tokio::time::sleep(half).await;
    }
    Ok(res)
}

struct NewIntent {
    id: String,
    amount: i64,
    currency: String,
    source: String,
    status: &'static str,
    last_error: Option<Value>,
    description: Option<String>,
    metadata: String,
}

/// Records the intent (if any: its answer is then the intent, or a 402 card error
/// carrying it), its charge, its event and the key's answer in one transaction.
async fn record(
    fake: &Fake,
    key: Option<&str>,
    intent: Option<NewIntent>,
    answer: (StatusCode, Value),
) -> anyhow::Result<Response> {
    let mut tx = fake.pool.begin().await?;
    let (status, body) = match intent {
        None => answer,
        Some(pi) => {
            sqlx::query("INSERT INTO payment_intents (id, created, amount, currency, source, status, last_error, description, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(&pi.id)
                .bind(now_secs())
                .bind(pi.amount)
                .bind(&pi.currency)
                .bind(&pi.source)
                .bind(pi.status)
                .bind(pi.last_error.as_ref().map(Value::to_string))
                .bind(&pi.description)
                .bind(&pi.metadata)
                .execute(&mut *tx)
                .await?;
            let created = load(fake, &mut *tx, &pi.id).await?.expect("just inserted");
            if matches!(pi.status, "succeeded" | "requires_payment_method") {
                let charge = insert_charge(
                    &mut tx,
                    &created,
                    pi.status == "succeeded",
                    pi.last_error.as_ref(),
                )
                .await?;
                sqlx::query("UPDATE payment_intents SET latest_charge = ? WHERE id = ?")
                    .bind(&charge)
                    .bind(&pi.id)
                    .execute(&mut *tx)
                    .await?;
            }
            let intent = load(fake, &mut *tx, &pi.id).await?.expect("just inserted");
            emit(&mut tx, event_of(pi.status), &intent).await?;
            match pi.last_error {
                Some(mut e) => {
                    e["payment_intent"] = intent;
                    (StatusCode::PAYMENT_REQUIRED, json!({ "error": e }))
                }
                None => (StatusCode::OK, intent),
            }
        }
    };
    if let Some(k) = key {
        sqlx::query("UPDATE idempotency SET state = 'done', status = ?, body = ? WHERE key = ?")
            .bind(i64::from(status.as_u16()))
            .bind(body.to_string())
            .bind(k)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    fake.deliver.notify_one();
    Ok(reply((status, body)))
}

pub(super) async fn retrieve(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(pi): Path<String>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    match load(&fake, &fake.pool, &pi).await {
        Ok(Some(v)) => reply((StatusCode::OK, v)),
        Ok(None) => no_such(&pi),
        Err(_) => internal(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct SearchQuery {
    query: String,
}

/// Only the one query the client makes: `metadata['order_id']:'…'`.
pub(super) async fn search(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Some(order) = q
        .query
        .strip_prefix("metadata['order_id']:'")
        .and_then(|r| r.strip_suffix('\''))
    else {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid"),
            "this fake searches metadata['order_id']:'…' only",
        ));
    };
    let rows = sqlx::query(
        "SELECT * FROM payment_intents WHERE json_extract(metadata, '$.order_id') = ? ORDER BY seq DESC",
    )
    .bind(order)
    .fetch_all(&fake.pool)
    .await;
    match rows {
        Ok(rows) => {
            let data: Vec<Value> = rows.iter().map(|r| intent_json(&fake, r)).collect();
            reply((
                StatusCode::OK,
                json!({"object": "search_result", "data": data, "has_more": false, "url": "/v1/payment_intents/search"}),
            ))
        }
        Err(_) => internal(),
    }
}

pub(super) async fn cancel(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(pi): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    with_faults(&fake, async {
        let reason = form.get("cancellation_reason").map_or("requested_by_customer", String::as_str);
        let from = ["requires_payment_method", "requires_action", "requires_confirmation"];
        match transition(&fake, &pi, &from, "canceled", None, Some(reason)).await {
            Ok(Some(v)) if v["status"] == "canceled" => reply((StatusCode::OK, v)),
            Ok(Some(v)) => {
                let message = format!(
                    "You cannot cancel this PaymentIntent because it has a status of {}.",
                    v["status"].as_str().unwrap_or_default()
                );
                reply((
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state", "message": message, "payment_intent": v}}),
                ))
            }
            Ok(None) => no_such(&pi),
            Err(_) => internal(),
        }
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct Outcome {
    #[serde(default)]
    outcome: Option<String>,
}

/// The buyer's 3-D Secure page: `?outcome=succeed` (the default) or `fail`.
pub(super) async fn authenticate(
    State(fake): State<Fake>,
    Path(pi): Path<String>,
    Query(q): Query<Outcome>,
) -> Response {
    let (status, err) = match q.outcome.as_deref().unwrap_or("succeed") {
        "succeed" => ("succeeded", None),
        "fail" => (
            "requires_payment_method",
            Some(
                json!({"type": "card_error", "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication."}),
            ),
        ),
        _ => {
            return reply(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid"),
                "outcome is succeed or fail",
            ))
        }
    };
    match transition(&fake, &pi, &["requires_action"], status, err, None).await {
        Ok(Some(v)) => reply((StatusCode::OK, v)),
        Ok(None) => no_such(&pi),
        Err(_) => internal(),
    }
}

/// Ends a `processing` intent: `outcome=succeeded` or `failed`.
pub(super) async fn settle(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(pi): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let (status, err) = match form.get("outcome").map(String::as_str) {
        Some("succeeded") => ("succeeded", None),
        Some("failed") => (
            "requires_payment_method",
            Some(card_error(
                "card_declined",
                "generic_decline",
                "The payment failed.",
            )),
        ),
        _ => {
            return reply(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("parameter_invalid"),
                "outcome is succeeded or failed",
            ))
        }
    };
    match transition(&fake, &pi, &["processing"], status, err, None).await {
        Ok(Some(v)) => reply((StatusCode::OK, v)),
        Ok(None) => no_such(&pi),
        Err(_) => internal(),
    }
}

pub(super) async fn add_endpoint(
    pool: &SqlitePool,
    url: &str,
    secret: &str,
) -> sqlx::Result<String> {
    let we = id("we");
    sqlx::query("INSERT INTO webhook_endpoints (id, url, secret) VALUES (?, ?, ?)")
        .bind(&we)
        .bind(url)
        .bind(secret)
        .execute(pool)
        .await?;
    Ok(we)
}

pub(super) async fn create_endpoint(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Some(url) = form.get("url") else {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "url is required",
        ));
    };
    let secret = id("whsec");
    match add_endpoint(&fake.pool, url, &secret).await {
        Ok(we) => reply((
            StatusCode::OK,
            json!({"id": we, "object": "webhook_endpoint", "url": url, "secret": secret,
                   "enabled_events": ["*"], "status": "enabled"}),
        )),
        Err(_) => internal(),
    }
}

/// Delivers queued events until `stop`: each to its endpoint, signed; a delivery
/// that is not answered 2xx is retried with backoff (100 ms doubling, at most 10 s).
pub(super) async fn deliver(fake: Fake, stop: tokio_util::sync::CancellationToken) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    loop {
        let next = match deliver_due(&fake, &http).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = ?e, "fake gateway: delivering webhooks failed");
                Some(Duration::from_millis(500))
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = fake.deliver.notified() => {}
            _ = tokio::time::sleep(next.unwrap_or(Duration::from_secs(3600))) => {}
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One round: every due delivery once. Returns when the next one is due.
async fn deliver_due(fake: &Fake, http: &reqwest::Client) -> anyhow::Result<Option<Duration>> {
    let faults = fake.faults();
    if faults.webhooks_hold {
        return Ok(None); // woken when the hold is lifted
    }
    let order = if faults.webhooks_reverse {
        "DESC"
    } else {
        "ASC"
    };
    let rows = sqlx::query(&format!(
        "SELECT d.seq, d.event, d.attempts, e.url, e.secret FROM deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint WHERE d.due <= ? ORDER BY d.seq {order}"
    ))
    .bind(now_ms())
    .fetch_all(&fake.pool)
    .await?;
    for row in rows {
        let (seq, event, attempts): (i64, String, i64) =
            (row.get("seq"), row.get("event"), row.get("attempts"));
        let (url, secret): (String, String) = (row.get("url"), row.get("secret"));
        let times = if faults.webhooks_duplicate { 2 } else { 1 };
        let mut delivered = false;
        for _ in 0..times {
            let sig = signature(&secret, now_secs(), &event);
            let ok = http
                .post(&url)
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", sig)
                .body(event.clone())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            delivered |= ok;
        }
        if delivered {
            sqlx::query("DELETE FROM deliveries WHERE seq = ?")
                .bind(seq)
                .execute(&fake.pool)
                .await?;
        } else {
            let wait = (100i64 << attempts.min(7)).min(10_000);
            sqlx::query("UPDATE deliveries SET attempts = attempts + 1, due = ? WHERE seq = ?")
                .bind(now_ms() + wait)
                .bind(seq)
                .execute(&fake.pool)
                .await?;
        }
    }
    let next: Option<i64> = sqlx::query_scalar("SELECT MIN(due) FROM deliveries")
        .fetch_one(&fake.pool)
        .await?;
    Ok(next.map(|due| Duration::from_millis((due - now_ms()).max(0) as u64)))
}

/// `GET /v1/test_helpers/webhooks`: how many deliveries are still queued.
pub(super) async fn queued(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    match sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM deliveries")
        .fetch_one(&fake.pool)
        .await
    {
        Ok(n) => reply((StatusCode::OK, json!({ "queued": n }))),
        Err(_) => internal(),
    }
}
