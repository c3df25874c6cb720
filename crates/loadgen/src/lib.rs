//! The flash-sale load generator, as a library (the binary is a thin shim), so the
//! final audit can be tested against a crafted inconsistent state.
//!
//! It talks to running servers over HTTP only, as buyers would: setup (venue,
//! event, buyer accounts) happens before timing starts; then the chosen mode runs on
//! one worker task per connection, each timing its steps into its own recorders
//! (merged into one HdrHistogram per step at the end, so measuring takes no shared
//! lock). Closed loop by default (a connection sends its next request when the last
//! is answered); with a rate, open loop (see `schedule`). Around the timed part it
//! reads the server's CPU and memory from /proc and its store-commit counter from
//! `/metrics`. A `sale` ends with an audit read back from the server: tickets sold =
//! seats shown sold, no seat on two tickets, every accepted checkout paid or failed,
//! and the test gateway's charges equal the paid orders. Any audit failure makes the
//! binary exit non-zero.

mod prom;
pub mod queue;
mod schedule;
mod server;
mod stats;
pub mod streams;

pub use prom::{sum_series, STORE_COMMITS};
pub use queue::{run_queue, QueueConfig, QueueReport};
pub use schedule::OpenLoop;
pub use server::{listener_pids, ServerProcess, ServerResources};
pub use stats::Step;
pub use streams::{run_streams, StreamsConfig, StreamsReport};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use schedule::Schedule;
use serde::Serialize;
use serde_json::{json, Value};
use stats::Stats;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The whole journey: seat map, hold, checkout, order to its final status.
    Sale,
    /// Hold and release as fast as possible: the engine through HTTP.
    Holds,
    /// Seat-map reads.
    Seatmap,
    /// Joins to an event's waiting room, then its admissions (`queue.rs`).
    Queue,
    /// Open live seat-map streams followed through holds and releases (`streams.rs`).
    Streams,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub targets: Vec<String>,
    pub admin_email: String,
    pub admin_password: String,
    pub seats: usize,
    /// General-admission capacity of the event's one GA tier.
    pub ga_capacity: usize,
    pub buyers: usize,
    pub connections: usize,
    /// `holds` and `seatmap` run this long; a `sale` stops buying after it.
    pub duration: Duration,
    /// Buyers arrive evenly over this long (zero: all at once). Closed loop only.
    pub ramp: Duration,
    /// Open loop: this many arrivals per second (a hold and its release, a seat-map
    /// read, or a buyer), whatever the answers, at most one in flight per
    /// connection. `None`: closed loop.
    pub rate: Option<f64>,
    /// Buyer accounts to register (buyers share them).
    pub accounts: usize,
    /// Share of buyers paying with a declined card, and of buyers who abandon.
    pub decline_share: f64,
    pub abandon_share: f64,
    /// Share of buyers who ask for general admission first (the others ask for
    /// seats first); each takes the other kind when theirs is gone.
    pub ga_share: f64,
    /// Other picks a buyer tries after a 409.
    pub retries: usize,
    /// Hold TTL of the event.
    pub hold_ttl_seconds: u32,
    /// Server processes to measure; empty: those listening on local targets' ports.
    pub server_pids: Vec<u32>,
    /// `sale` behind the event's waiting room, admitting this many a minute: each
    /// buyer has an account of its own, joins the queue, waits to be admitted, and
    /// shops with its admission token.
    pub waiting_room: Option<u32>,
}

/// The sale behind a waiting room: what the room let through, against the hold
/// endpoint's load.
#[derive(Debug, Clone, Serialize)]
pub struct RoomLoad {
    pub admission_per_minute: u32,
    /// Buyers admitted during the run, and the busiest 10 s of admissions (a minute's rate).
    pub admitted: u64,
    pub admitted_per_minute_peak: f64,
    /// Hold requests: the busiest 10 s (a minute's rate), and per admitted buyer.
    pub hold_attempts_per_minute_peak: f64,
    pub hold_attempts_per_admitted: f64,
    /// Buyers waiting in the queue at once, at most.
    pub queued_peak: u64,
}

/// Counts per second of the run (for the waiting room's peaks).
#[derive(Debug)]
struct PerSecond(Vec<std::sync::atomic::AtomicU64>);

impl PerSecond {
    fn new(seconds: usize) -> Self {
        Self((0..seconds).map(|_| Default::default()).collect())
    }
    fn add(&self, start: Instant) {
        let i = (start.elapsed().as_secs() as usize).min(self.0.len() - 1);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }
    fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
    /// The busiest `window` seconds, as a rate a minute.
    fn peak_per_minute(&self, window: usize) -> f64 {
        let v: Vec<u64> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        v.windows(window.min(v.len()).max(1))
            .map(|w| w.iter().sum::<u64>())
            .max()
            .unwrap_or(0) as f64
            * 60.0
            / window as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub event_id: String,
    /// The final order documents of the sale (kept for a second audit; not written).
    #[serde(skip)]
    pub orders: Vec<Value>,
    pub targets: Vec<String>,
    pub seats: usize,
    pub ga_capacity: usize,
    pub buyers: usize,
    pub connections: usize,
    /// Open-loop arrivals (`--rate`); `None` in closed loop.
    pub open_loop: Option<OpenLoop>,
    /// Length of the timed part.
    pub elapsed_seconds: f64,
    /// Tickets (seated and GA) on orders that ended paid.
    pub tickets_sold: u64,
    pub paid_orders: u64,
    /// Every seat and every GA place ended up on a paid order.
    pub sold_out: bool,
    /// See [`SaleClocks::all_checked_out_seconds`].
    pub all_checked_out_seconds: Option<f64>,
    /// See [`SaleClocks::all_paid_seconds`].
    pub all_paid_seconds: Option<f64>,
    /// See [`SaleClocks::last_checkout_seconds`].
    pub last_checkout_seconds: Option<f64>,
    /// See [`SaleClocks::last_paid_seconds`].
    pub last_paid_seconds: Option<f64>,
    /// Tickets sold over `all_paid_seconds` if the sale sold out, else over the
    /// whole timed part.
    pub tickets_per_second: f64,
    pub audit_passed: bool,
    pub audit_failures: Vec<String>,
    /// Compressed size of one full seat map (gzip), bytes.
    pub seatmap_gzip_bytes: Option<usize>,
    /// The server's CPU and memory over the timed part; `None` if it could not be
    /// read (`server_note` says why).
    pub server: Option<ServerResources>,
    /// Why the server (or some of its nodes) was not measured.
    pub server_note: Option<String>,
    /// CPU seconds this generator used during the timed part (it shares the machine).
    pub generator_cpu_seconds: Option<f64>,
    /// `sale` behind a waiting room: its admissions against the hold load.
    pub room: Option<RoomLoad>,
    /// Store commits during the timed part: the rise of `boxoffice_store_commits_total`
    /// (every series, every target); `None` if a target does not export it.
    pub store_commits: Option<u64>,
    /// `store_commits` over `paid_orders` (sales only).
    pub store_commits_per_paid_order: Option<f64>,
    /// Why `store_commits` is `None`.
    pub store_commits_note: Option<String>,
    pub steps: Vec<Step>,
}

/// When a sale sold out, by two clocks, both from the start of the timed part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaleClocks {
    /// Every seat and every GA place is on an order that ended paid.
    pub sold_out: bool,
    /// When the last checkout was accepted (its 202 received) among the orders that
    /// ended paid: from then on every seat and GA place was in a checked-out order
    /// that was never undone. An order whose payment failed gave its places back, so
    /// its acceptance does not count, and an abandoned hold was never checked out.
    /// `None` unless the sale sold out.
    pub all_checked_out_seconds: Option<f64>,
    /// When the last of those orders was seen `paid` (its buyer's answer received).
    /// `None` unless the sale sold out.
    pub all_paid_seconds: Option<f64>,
    /// The same two instants over whatever sold, sold out or not: the last checkout
    /// accepted and the last payment seen among the orders that ended paid.
    pub last_checkout_seconds: Option<f64>,
    pub last_paid_seconds: Option<f64>,
}

/// A server under test and the setup made on it.
#[derive(Debug)]
pub struct Target {
    pub client: reqwest::Client,
    pub bases: Vec<String>,
    pub admin: String,
}

impl Target {
    pub async fn connect(
        targets: &[String],
        email: &str,
        password: &str,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections.max(1))
            .timeout(Duration::from_secs(60))
            .build()?;
        let bases: Vec<String> = targets
            .iter()
            .map(|t| t.trim_end_matches('/').to_owned())
            .collect();
        let login = client
            .post(format!("{}/v1/auth/login", bases[0]))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .context("reaching the first target")?;
        if !login.status().is_success() {
            bail!("admin login failed: {}", login.status());
        }
        let admin = login.json::<Value>().await?["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            client,
            bases,
            admin,
        })
    }

    fn base(&self, i: usize) -> &str {
        &self.bases[i % self.bases.len()]
    }

    async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base(0)))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }
}

/// The event the run sells: seat ids in layout order, grouped by section and row.
#[derive(Debug)]
pub struct Sale {
    pub event: String,
    pub seats: Vec<String>,
    /// For each section (best first), its rows, each a range of layout indexes.
    pub rows: Vec<Vec<std::ops::Range<usize>>>,
    pub ga_tier: Option<String>,
}

const SEATS_PER_ROW: usize = 50;
const ROWS_PER_SECTION: usize = 50;

/// A stadium of `seats` seats: sections of 50 rows of 50, priced best to worst.
pub async fn create_sale(
    t: &Target,
    seats: usize,
    ga_capacity: usize,
    ttl: u32,
) -> anyhow::Result<Sale> {
    let rows_total = seats.div_ceil(SEATS_PER_ROW).max(1);
    let sections = rows_total.div_ceil(ROWS_PER_SECTION);
    let mut specs = Vec::new();
    let mut left = seats;
    for s in 0..sections {
        let mut rows = Vec::new();
        for r in 0..ROWS_PER_SECTION {
            if left == 0 {
                break;
            }
            let n = left.min(SEATS_PER_ROW);
            left -= n;
            rows.push(json!({"label": (r + 1).to_string(), "seats": (1..=n).map(|i| i.to_string()).collect::<Vec<_>>()}));
        }
        specs.push(json!({"name": format!("S{:02}", s + 1), "rows": rows}));
    }
    let venue = t
        .admin_post(
            "/v1/venues",
            json!({"name": "Load stadium", "sections": specs}),
        )
        .await?;
    let names: Vec<String> = (0..sections).map(|s| format!("S{:02}", s + 1)).collect();
    let cut = names.len().div_ceil(4);
    let mut tiers = vec![
        json!({"name": "Best", "price": {"amount": 9000, "currency": "EUR"}, "sections": names[..cut]}),
    ];
    if cut < names.len() {
        tiers.push(json!({"name": "Rest", "price": {"amount": 4000, "currency": "EUR"}, "sections": names[cut..]}));
    }
    let ga: Vec<Value> = if ga_capacity > 0 {
        vec![
            json!({"name": "Floor", "price": {"amount": 3000, "currency": "EUR"}, "capacity": ga_capacity}),
        ]
    } else {
        vec![]
    };
    let ev = t
        .admin_post(
            "/v1/events",
            json!({"venue_id": venue["id"], "name": "Flash sale", "starts_at": "2031-06-01T19:00:00Z",
                   "hold_ttl_seconds": ttl, "max_tickets_per_order": 4, "tiers": tiers, "ga_tiers": ga}),
        )
        .await?;
    let event = ev["id"].as_str().unwrap_or_default().to_owned();
    let r = t
        .client
        .patch(format!("{}/v1/events/{event}", t.base(0)))
        .bearer_auth(&t.admin)
        .json(&json!({"status": "on_sale"}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("putting the event on sale: {}", r.status());
    }
    let layout: Value = t
        .client
        .get(format!("{}/v1/events/{event}/layout", t.base(0)))
        .send()
        .await?
        .json()
        .await?;
    let mut seat_ids = Vec::new();
    let mut rows: Vec<Vec<std::ops::Range<usize>>> = vec![Vec::new(); sections];
    let mut last: Option<(String, String)> = None;
    for (i, s) in layout["seats"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        seat_ids.push(s["id"].as_str().unwrap_or_default().to_owned());
        let key = (
            s["section"].as_str().unwrap_or_default().to_owned(),
            s["row"].as_str().unwrap_or_default().to_owned(),
        );
        let sec: usize = key.0[1..].parse::<usize>().unwrap_or(1) - 1;
        if last.as_ref() != Some(&key) {
            rows[sec].push(i..i + 1);
            last = Some(key);
        } else if let Some(r) = rows[sec].last_mut() {
            r.end = i + 1;
        }
    }
    Ok(Sale {
        event,
        seats: seat_ids,
        rows,
        ga_tier: ev["ga_tiers"][0]["id"].as_str().map(str::to_owned),
    })
}

async fn register(t: &Target, n: usize) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let run: u64 = rand::random();
    // A few at a time: each is an argon2 hash on the server, and thousands at once
    // would outlast the server's request timeout.
    let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| {
            let client = t.client.clone();
            let url = format!("{}/v1/auth/register", t.base(i));
            async move {
                let r = client
                    .post(url)
                    .json(&json!({"email": format!("load-{run:x}-{i}@example.com"), "password": "load-test-password"}))
                    .send()
                    .await?;
                let status = r.status();
                let v: Value = r.json().await.unwrap_or_default();
                match v["token"].as_str() {
                    Some(tok) if status.is_success() => Ok(tok.to_owned()),
                    _ => bail!("registering a buyer failed: {status} {v}"),
                }
            }
        })
        .buffered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// One accepted checkout, once its order reached a final status.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// The order document as its buyer last saw it.
    order: Value,
    /// When the checkout's 202 came back, from the start of the timed part.
    accepted_at: Duration,
    /// When the buyer saw the order's final status.
    final_at: Duration,
}

/// What one worker's buyers produced, for the clocks and the audit.
#[derive(Debug, Default)]
struct Outcomes {
    finished: Vec<Finished>,
    /// Checkouts answered 202.
    accepted: usize,
}

/// A connection's cached copy of the seat map (as a browser would keep one).
struct SeatCache {
    etag: Option<String>,
    status: Vec<u8>,
    /// Places left in the GA tier, as last seen.
    ga_remaining: u32,
}

/// Reads the seat map into the cache (a conditional GET once it has one); the
/// latency counts from `from`.
async fn seat_map(
    t: &Target,
    node: usize,
    sale: &Sale,
    cache: &mut SeatCache,
    stats: &mut Stats,
    from: Instant,
) -> anyhow::Result<()> {
    let mut req = t
        .client
        .get(format!("{}/v1/events/{}/seats", t.base(node), sale.event));
    if let Some(e) = &cache.etag {
        req = req.header("if-none-match", e);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let etag = r
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status == 200 {
                let v: Value = r.json().await?;
                cache.status = v["status"].as_str().unwrap_or_default().as_bytes().to_vec();
                cache.ga_remaining = v["ga"]
                    .as_array()
                    .and_then(|ga| {
                        ga.iter()
                            .find(|g| g["tier_id"].as_str() == sale.ga_tier.as_deref())
                    })
                    .and_then(|g| g["remaining"].as_u64())
                    .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32);
                cache.etag = etag;
            }
            stats.record("seatmap", from, Some(status));
            Ok(())
        }
        Err(e) => {
            stats.record("seatmap", from, None);
            Err(e.into())
        }
    }
}

/// 1–4 adjacent available seats, preferring the best sections.
fn pick(sale: &Sale, status: &[u8], rng: &mut impl Rng, want: usize) -> Option<Vec<usize>> {
    let sections = sale.rows.len();
    for _ in 0..16 {
        // Hot spots: the best sections draw most buyers (weight 1/(rank+1)²).
        let weights: Vec<f64> = (0..sections)
            .map(|s| 1.0 / ((s + 1) * (s + 1)) as f64)
            .collect();
        let total: f64 = weights.iter().sum();
        let mut x = rng.gen::<f64>() * total;
        let mut sec = 0;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                sec = i;
                break;
            }
            x -= w;
        }
        let rows = &sale.rows[sec];
        if rows.is_empty() {
            continue;
        }
        let row = rows[rng.gen_range(0..rows.len())].clone();
        let free: Vec<usize> = row
            .clone()
            .filter(|&i| status.get(i) == Some(&b'A'))
            .collect();
        for w in free.windows(want) {
            if w[want - 1] - w[0] == want - 1 {
                return Some(w.to_vec());
            }
        }
    }
    // Anywhere at all.
    let free: Vec<usize> = (0..status.len()).filter(|&i| status[i] == b'A').collect();
    if free.is_empty() {
        return None;
    }
    let start = rng.gen_range(0..free.len());
    Some(free[start..(start + want).min(free.len())].to_vec())
}

/// What a buyer asks to hold: seats by layout index, or a number of GA places.
enum Ask {
    Seats(Vec<usize>),
    Ga(u32),
}

/// The buyer's choice on the cached map: its preferred kind if any is left, else
/// the other; `None` when the map shows nothing left.
fn choose(
    sale: &Sale,
    cache: &SeatCache,
    rng: &mut impl Rng,
    want: usize,
    ga_first: bool,
) -> Option<Ask> {
    let ga = (sale.ga_tier.is_some() && cache.ga_remaining > 0)
        .then(|| Ask::Ga(cache.ga_remaining.min(want as u32)));
    if ga_first && ga.is_some() {
        return ga;
    }
    pick(sale, &cache.status, rng, want).map(Ask::Seats).or(ga)
}

/// Sends one request and records its answer, the latency counted from `from`.
async fn call(
    stats: &mut Stats,
    step: &'static str,
    req: reqwest::RequestBuilder,
    from: Instant,
) -> Option<(u16, Value)> {
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.json::<Value>().await.unwrap_or_default();
            stats.record(step, from, Some(status));
            Some((status, body))
        }
        Err(_) => {
            stats.record(step, from, None);
            None
        }
    }
}

/// Everything the workers share, read-only but for the buyer counter.
struct Shared {
    t: Arc<Target>,
    cfg: Config,
    sale: Arc<Sale>,
    tokens: Arc<Vec<String>>,
    start: Instant,
    /// Closed-loop sale: the next buyer to serve.
    next_buyer: AtomicUsize,
    /// Open loop: the arrivals.
    schedule: Option<Schedule>,
    /// Behind a waiting room: admissions and hold requests per second, and the
    /// buyers in the queue now and at most.
    admitted: PerSecond,
    hold_attempts: PerSecond,
    queued: AtomicUsize,
    queued_peak: AtomicUsize,
}

/// A buyer's wait for its order's final status, on a task of its own.
type FinalWait = tokio::task::JoinHandle<(Stats, Option<Finished>)>;

/// Buyer `i`'s journey: seat map, hold (retrying other picks on 409), then abandon
/// or check out and (on a task of its own, pushed to `waits`) wait for the order's
/// final status. The first request's latency
/// counts from `arrived` (its scheduled time in open loop).
async fn buyer(
    s: &Arc<Shared>,
    i: usize,
    arrived: Instant,
    cache: &mut SeatCache,
    stats: &mut Stats,
    outcomes: &mut Outcomes,
    waits: &mut Vec<FinalWait>,
) {
    let (t, cfg, sale) = (&*s.t, &s.cfg, &*s.sale);
    let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
    let node = i;
    let token = &s.tokens[i % s.tokens.len()];
    let want = 1 + rng.gen_range(0..4usize);
    let ga_first = rng.gen::<f64>() < cfg.ga_share;
    let admission = match cfg.waiting_room {
        Some(_) => match enter_room(s, node, token, stats).await {
            Some(a) => Some(a),
            None => return,
        },
        None => None,
    };
    let mut hold: Option<String> = None;
    let mut from = arrived;
    for _ in 0..=cfg.retries {
        if seat_map(t, node, sale, cache, stats, from).await.is_err() {
            return;
        }
        let Some(ask) = choose(sale, cache, &mut rng, want, ga_first) else {
            return; // sold out
        };
        let body = match &ask {
            Ask::Seats(seats) => {
                let ids: Vec<&String> = seats.iter().map(|&s| &sale.seats[s]).collect();
                json!({ "seats": ids })
            }
            Ask::Ga(n) => json!({ "tier_id": sale.ga_tier, "quantity": n }),
        };
        let mut req = t
            .client
            .post(format!("{}/v1/events/{}/holds", t.base(node), sale.event))
            .bearer_auth(token)
            .json(&body);
        if let Some(a) = &admission {
            req = req.header("Boxoffice-Admission", a);
        }
        s.hold_attempts.add(s.start);
        match call(stats, "hold", req, Instant::now()).await {
            Some((201, body)) => {
                hold = body["hold_id"].as_str().map(str::to_owned);
                break;
            }
            Some((409, body)) => {
                // Someone was faster: mark what we wanted as taken and look again.
                match ask {
                    Ask::Seats(seats) => {
                        for s in seats {
                            if let Some(c) = cache.status.get_mut(s) {
                                *c = b'H';
                            }
                        }
                    }
                    Ask::Ga(_) => {
                        cache.ga_remaining = body["error"]["remaining"]
                            .as_u64()
                            .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32);
                    }
                }
                cache.etag = None;
            }
            _ => return,
        }
        from = Instant::now();
    }
    let Some(hold) = hold else { return };
    let roll: f64 = rng.gen();
    if roll < cfg.abandon_share {
        let req = t
            .client
            .delete(format!("{}/v1/holds/{hold}", t.base(node)))
            .bearer_auth(token);
        call(stats, "release", req, Instant::now()).await;
        return;
    }
    let card = if roll < cfg.abandon_share + cfg.decline_share {
        "tok_chargeDeclined"
    } else {
        "tok_visa"
    };
    let mut req = t
        .client
        .post(format!("{}/v1/holds/{hold}/checkout", t.base(node)))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("load-{hold}"))
        .json(&json!({"email": "buyer@example.com", "payment": {"token": card}}));
    if let Some(a) = &admission {
        // Checking out with the token ends the room session: the next one comes in.
        req = req.header("Boxoffice-Admission", a);
    }
    let Some((202, body)) = call(stats, "checkout", req, Instant::now()).await else {
        return;
    };
    let accepted_at = s.start.elapsed();
    let order = body["order_id"].as_str().unwrap_or_default().to_owned();
    outcomes.accepted += 1;
    // The buyer now waits for the payment on a connection of its own, as a browser
    // would: the sale's arrivals are not held up by the payments behind them.
    let (s, token) = (s.clone(), token.clone());
    waits.push(tokio::spawn(async move {
        let mut stats = Stats::default();
        let finished = wait_final(&s, node, &token, &order, accepted_at, &mut stats).await;
        (stats, finished)
    }));
}

/// Joins the event's waiting room and waits to be let in, polling the queue view as
/// the web app does (at the pace of its wait estimate, within 0.25 to 2 s). The
/// admission token; `None` if the room refused or the wait outlasted the run.
async fn enter_room(s: &Shared, node: usize, token: &str, stats: &mut Stats) -> Option<String> {
    let t = &*s.t;
    let joined = Instant::now();
    let queue_id = match queue::join(t, t.base(node), &s.sale.event, token, 0).await {
        Ok(q) => q,
        Err(_) => {
            stats.record("queue_join", joined, None);
            return None;
        }
    };
    stats.record("queue_join", joined, Some(201));
    let now = s.queued.fetch_add(1, Ordering::Relaxed) + 1;
    s.queued_peak.fetch_max(now, Ordering::Relaxed);
    let admitted = loop {
        if s.start.elapsed() >= s.cfg.duration {
            break None;
        }
        let v = t
            .client
            .get(format!("{}/v1/queue/{queue_id}", t.base(node)))
            .bearer_auth(token)
            .send()
            .await;
        let v: Value = match v {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            _ => Value::Null,
        };
        match v["state"].as_str() {
            Some("admitted") => break v["admission_token"].as_str().map(str::to_owned),
            Some("expired") => break None,
            _ => {}
        }
        let wait = v["estimated_wait_seconds"].as_f64().unwrap_or(1.0);
        tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.25, 2.0))).await;
    };
    s.queued.fetch_sub(1, Ordering::Relaxed);
    stats.record(
        "admitted",
        joined,
        Some(if admitted.is_some() { 200 } else { 0 }),
    );
    if admitted.is_some() {
        s.admitted.add(s.start);
    }
    admitted
}

/// Long-polls an order until its final status.
async fn wait_final(
    s: &Shared,
    node: usize,
    token: &str,
    order: &str,
    accepted_at: Duration,
    stats: &mut Stats,
) -> Option<Finished> {
    let t = &*s.t;
    for _ in 0..20 {
        let req = t
            .client
            .get(format!("{}/v1/orders/{order}?wait=30", t.base(node)))
            .bearer_auth(token);
        let Some((200, o)) = call(stats, "order_final", req, Instant::now()).await else {
            // Refused or failed (a node at its connection limit, restarting): a
            // browser would try again shortly, not at once.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if o["status"] != "pending_payment" {
            return Some(Finished {
                order: o,
                accepted_at,
                final_at: s.start.elapsed(),
            });
        }
    }
    None
}

/// `holds` mode: hold one random seat, then release it. The hold's latency counts
/// from `from`; the release's from its own send.
async fn hold_and_release(
    s: &Shared,
    w: usize,
    rng: &mut impl Rng,
    from: Instant,
    stats: &mut Stats,
) {
    let (t, sale) = (&*s.t, &*s.sale);
    let seat = rng.gen_range(0..sale.seats.len());
    let token = &s.tokens[w % s.tokens.len()];
    let req = t
        .client
        .post(format!("{}/v1/events/{}/holds", t.base(w), sale.event))
        .bearer_auth(token)
        .json(&json!({ "seats": [sale.seats[seat]] }));
    if let Some((201, body)) = call(stats, "hold", req, from).await {
        let hold = body["hold_id"].as_str().unwrap_or_default();
        let req = t
            .client
            .delete(format!("{}/v1/holds/{hold}", t.base(w)))
            .bearer_auth(token);
        call(stats, "release", req, Instant::now()).await;
    }
}

/// `seatmap` mode: one full read of the seat map (body included).
async fn read_seat_map(s: &Shared, w: usize, from: Instant, stats: &mut Stats) {
    let r =
        s.t.client
            .get(format!("{}/v1/events/{}/seats", s.t.base(w), s.sale.event))
            .send()
            .await;
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            stats.record("seatmap", from, Some(status));
        }
        Err(_) => stats.record("seatmap", from, None),
    }
}

/// What one worker (one connection) measured; merged with the others at the end.
#[derive(Debug, Default)]
struct WorkerOut {
    stats: Stats,
    /// The buyers' waits for their orders (each its own task).
    waits: Vec<Stats>,
    outcomes: Outcomes,
    /// Open loop: arrivals this worker sent, and how many of them late.
    sent: u64,
    late: u64,
}

/// One connection's loop, until the mode's work or time is over.
async fn worker(w: usize, s: Arc<Shared>) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut cache = SeatCache {
        etag: None,
        status: vec![b'A'; s.sale.seats.len()],
        ga_remaining: 0,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64 ^ 0x5eed);
    let mut waits = Vec::new();
    loop {
        // The next piece of work (a buyer's index in a sale) and the instant its
        // first request's latency counts from.
        let (unit, from) = if let Some(plan) = &s.schedule {
            let Some(a) = plan.next().await else { break };
            out.sent += 1;
            out.late += u64::from(a.late);
            (a.index as usize, a.due)
        } else {
            if s.start.elapsed() >= s.cfg.duration {
                break;
            }
            let mut unit = 0;
            if s.cfg.mode == Mode::Sale {
                unit = s.next_buyer.fetch_add(1, Ordering::Relaxed);
                if unit >= s.cfg.buyers {
                    break;
                }
                if !s.cfg.ramp.is_zero() {
                    let at = s.cfg.ramp.mul_f64(unit as f64 / s.cfg.buyers as f64);
                    if let Some(wait) = at.checked_sub(s.start.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            (unit, Instant::now())
        };
        match s.cfg.mode {
            Mode::Sale => {
                buyer(
                    &s,
                    unit,
                    from,
                    &mut cache,
                    &mut out.stats,
                    &mut out.outcomes,
                    &mut waits,
                )
                .await
            }
            Mode::Holds => hold_and_release(&s, w, &mut rng, from, &mut out.stats).await,
            Mode::Seatmap => read_seat_map(&s, w, from, &mut out.stats).await,
            // Run by `queue::run_queue` and `streams::run_streams`, never by these workers.
            Mode::Queue | Mode::Streams => break,
        }
    }
    for wait in waits {
        if let Ok((stats, finished)) = wait.await {
            out.waits.push(stats);
            out.outcomes.finished.extend(finished);
        }
    }
    out
}

/// The store-commit counter summed over every target; `Err`: why it is unknown.
async fn store_commits(t: &Target) -> Result<f64, String> {
    let mut total = 0.0;
    for base in &t.bases {
        let url = format!("{base}/metrics");
        let text = async {
            t.client
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        }
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
        total += prom::sum_series(&text, STORE_COMMITS)
            .ok_or_else(|| format!("{url} has no {STORE_COMMITS}"))?;
    }
    Ok(total)
}

/// The two clocks of a sale from its finished checkouts (see [`SaleClocks`]):
/// `seats` is every seat of the event, `ga` its GA tier and capacity.
pub(crate) fn sale_clocks(
    finished: &[Finished],
    seats: &[String],
    ga: Option<(&str, usize)>,
) -> SaleClocks {
    let paid: Vec<&Finished> = finished
        .iter()
        .filter(|f| f.order["status"] == "paid")
        .collect();
    let mut seated = BTreeSet::new();
    let mut ga_places = 0;
    for f in &paid {
        for item in f.order["items"].as_array().into_iter().flatten() {
            match item["seat_id"].as_str() {
                Some(seat) => {
                    seated.insert(seat);
                }
                None if ga.is_some_and(|(tier, _)| item["tier_id"] == tier) => ga_places += 1,
                None => {}
            }
        }
    }
    let sold_out = seats.iter().all(|s| seated.contains(s.as_str()))
        && ga.is_none_or(|(_, capacity)| ga_places >= capacity);
    let last =
        |at: fn(&Finished) -> Duration| paid.iter().map(|f| at(f)).max().map(|d| d.as_secs_f64());
    let (checked_out, paid_at) = (last(|f| f.accepted_at), last(|f| f.final_at));
    SaleClocks {
        sold_out,
        all_checked_out_seconds: checked_out.filter(|_| sold_out),
        all_paid_seconds: paid_at.filter(|_| sold_out),
        last_checkout_seconds: checked_out,
        last_paid_seconds: paid_at,
    }
}

/// Runs the configured mode and returns its report (the audit included for sales).
pub async fn run(cfg: Config) -> anyhow::Result<Report> {
    if matches!(cfg.mode, Mode::Queue | Mode::Streams) {
        bail!("the queue and streams modes run with run_queue and run_streams");
    }
    let t = Arc::new(
        Target::connect(
            &cfg.targets,
            &cfg.admin_email,
            &cfg.admin_password,
            cfg.connections,
        )
        .await?,
    );
    let sale = Arc::new(create_sale(&t, cfg.seats, cfg.ga_capacity, cfg.hold_ttl_seconds).await?);
    // Behind a waiting room each buyer is a customer of its own (a customer has one
    // place in the queue), so one account each.
    let accounts = match cfg.waiting_room {
        Some(per_minute) => {
            queue::patch(
                &t,
                &sale.event,
                json!({"waiting_room": {"enabled": true, "admission_per_minute": per_minute,
                                        "session_seconds": 600}}),
            )
            .await?;
            cfg.buyers.max(1)
        }
        None => cfg.accounts.clamp(1, cfg.buyers.max(1)),
    };
    let tokens = Arc::new(register(&t, accounts).await?);
    let gzip_bytes = seatmap_gzip_bytes(&t, &sale.event).await.ok();

    // Readings just before the timed part (none of them timed).
    let watch = server::Watch::start(&cfg.server_pids, &cfg.targets);
    let me = std::process::id();
    let me_before = server::sample(me).ok();
    let commits_before = store_commits(&t).await;

    let start = Instant::now();
    let schedule = cfg.rate.map(|rate| {
        let buyers = (cfg.mode == Mode::Sale).then_some(cfg.buyers as u64);
        Schedule::new(start, rate, cfg.duration, buyers)
    });
    let shared = Arc::new(Shared {
        t: t.clone(),
        cfg: cfg.clone(),
        sale: sale.clone(),
        tokens,
        start,
        next_buyer: AtomicUsize::new(0),
        schedule,
        admitted: PerSecond::new(cfg.duration.as_secs() as usize + 600),
        hold_attempts: PerSecond::new(cfg.duration.as_secs() as usize + 600),
        queued: AtomicUsize::new(0),
        queued_peak: AtomicUsize::new(0),
    });
    let workers: Vec<_> = (0..cfg.connections.max(1))
        .map(|w| tokio::spawn(worker(w, shared.clone())))
        .collect();
    let mut done = Vec::with_capacity(workers.len());
    for w in workers {
        done.push(w.await.context("a load worker panicked")?);
    }
    let elapsed = start.elapsed();

    let commits_after = store_commits(&t).await;
    let generator_cpu_seconds = me_before.and_then(|b| {
        let a = server::sample(me).ok()?;
        Some(a.cpu_seconds_since(&b))
    });
    let (server, server_note) = match watch {
        Ok(w) => w.finish(elapsed),
        Err(note) => (None, Some(note)),
    };
    let open_loop = shared.schedule.as_ref().map(|plan| {
        let sent: u64 = done.iter().map(|w| w.sent).sum();
        OpenLoop {
            rate_per_second: cfg.rate.unwrap_or_default(),
            max_in_flight: cfg.connections.max(1),
            scheduled: plan.planned(),
            sent,
            late: done.iter().map(|w| w.late).sum(),
            dropped: plan.planned().saturating_sub(sent),
        }
    });
    let mut outcomes = Outcomes::default();
    let mut stats = Vec::with_capacity(done.len());
    for w in done {
        stats.push(w.stats);
        stats.extend(w.waits);
        outcomes.accepted += w.outcomes.accepted;
        outcomes.finished.extend(w.outcomes.finished);
    }
    let (store_commits, store_commits_note) = match (commits_before, commits_after) {
        (Ok(b), Ok(a)) if a >= b => (Some((a - b).round() as u64), None),
        (Ok(_), Ok(_)) => (
            None,
            Some(format!(
                "{STORE_COMMITS} went down during the run (a server restarted?)"
            )),
        ),
        (Err(e), _) | (_, Err(e)) => (None, Some(e)),
    };

    let mut report = Report {
        mode: cfg.mode,
        event_id: sale.event.clone(),
        orders: vec![],
        targets: cfg.targets.clone(),
        seats: cfg.seats,
        ga_capacity: cfg.ga_capacity,
        buyers: cfg.buyers,
        connections: cfg.connections,
        open_loop,
        elapsed_seconds: elapsed.as_secs_f64(),
        tickets_sold: 0,
        paid_orders: 0,
        sold_out: false,
        all_checked_out_seconds: None,
        all_paid_seconds: None,
        last_checkout_seconds: None,
        last_paid_seconds: None,
        tickets_per_second: 0.0,
        audit_passed: true,
        audit_failures: vec![],
        seatmap_gzip_bytes: gzip_bytes,
        server,
        server_note,
        generator_cpu_seconds,
        room: cfg.waiting_room.map(|per_minute| {
            let admitted = shared.admitted.total();
            RoomLoad {
                admission_per_minute: per_minute,
                admitted,
                admitted_per_minute_peak: shared.admitted.peak_per_minute(10),
                hold_attempts_per_minute_peak: shared.hold_attempts.peak_per_minute(10),
                hold_attempts_per_admitted: shared.hold_attempts.total() as f64
                    / admitted.max(1) as f64,
                queued_peak: shared.queued_peak.load(Ordering::Relaxed) as u64,
            }
        }),
        store_commits,
        store_commits_per_paid_order: None,
        store_commits_note,
        steps: Stats::merge(stats, elapsed),
    };
    if cfg.mode == Mode::Sale {
        let orders: Vec<Value> = outcomes.finished.iter().map(|f| f.order.clone()).collect();
        let failures = audit(&t, &sale.event, &orders, outcomes.accepted).await?;
        let paid: Vec<&Value> = orders.iter().filter(|o| o["status"] == "paid").collect();
        let tickets: u64 = paid
            .iter()
            .map(|o| o["tickets"].as_array().map_or(0, |a| a.len() as u64))
            .sum();
        let ga = sale.ga_tier.as_deref().map(|tier| (tier, cfg.ga_capacity));
        let clocks = sale_clocks(&outcomes.finished, &sale.seats, ga);
        report.tickets_sold = tickets;
        report.paid_orders = paid.len() as u64;
        report.sold_out = clocks.sold_out;
        report.all_checked_out_seconds = clocks.all_checked_out_seconds;
        report.all_paid_seconds = clocks.all_paid_seconds;
        report.last_checkout_seconds = clocks.last_checkout_seconds;
        report.last_paid_seconds = clocks.last_paid_seconds;
        report.tickets_per_second = tickets as f64
            / clocks
                .all_paid_seconds
                .unwrap_or(elapsed.as_secs_f64())
                .max(1e-9);
        report.store_commits_per_paid_order = report
            .store_commits
            .filter(|_| !paid.is_empty())
            .map(|c| c as f64 / paid.len() as f64);
        report.audit_passed = failures.is_empty();
        report.audit_failures = failures;
        report.orders = orders;
    }
    Ok(report)
}

async fn seatmap_gzip_bytes(t: &Target, event: &str) -> anyhow::Result<usize> {
    // A client without automatic decompression, to see what goes over the wire.
    let raw = reqwest::Client::builder().no_gzip().build()?;
    let r = raw
        .get(format!("{}/v1/events/{event}/seats", t.base(0)))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    Ok(r.bytes().await?.len())
}

/// Reads the sale back from the server and lists every inconsistency found.
pub async fn audit(
    t: &Target,
    event: &str,
    orders: &[Value],
    accepted: usize,
) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let map: Value = t
        .client
        .get(format!("{}/v1/events/{event}/seats", t.base(0)))
        .send()
        .await?
        .json()
        .await?;
    let shown_sold = map["status"]
        .as_str()
        .unwrap_or_default()
        .bytes()
        .filter(|&c| c == b'S')
        .count();
    let mut seat_tickets: BTreeMap<String, usize> = BTreeMap::new();
    let mut paid = BTreeSet::new();
    // Re-read each order: the audit trusts the server's state now, not what buyers saw.
    for o in orders {
        let id = o["id"].as_str().unwrap_or_default();
        let now: Value = t
            .client
            .get(format!("{}/v1/orders/{id}", t.base(0)))
            .bearer_auth(&t.admin)
            .send()
            .await?
            .json()
            .await?;
        match now["status"].as_str() {
            Some("paid") => {
                paid.insert(id.to_owned());
                let tickets = now["tickets"].as_array().cloned().unwrap_or_default();
                if tickets.len() != now["items"].as_array().map_or(0, Vec::len) {
                    failures.push(format!(
                        "paid order {id} has {} tickets for its items",
                        tickets.len()
                    ));
                }
                for tk in tickets {
                    if let Some(seat) = tk["seat_id"].as_str() {
                        *seat_tickets.entry(seat.to_owned()).or_default() += 1;
                    }
                }
            }
            Some("failed") => {}
            other => failures.push(format!("order {id} ended {other:?}, not paid or failed")),
        }
    }
    if orders.len() != accepted {
        failures.push(format!(
            "{accepted} checkouts accepted, {} reached a final status",
            orders.len()
        ));
    }
    for (seat, n) in &seat_tickets {
        if *n > 1 {
            failures.push(format!("seat {seat} is on {n} tickets"));
        }
    }
    if seat_tickets.len() != shown_sold {
        failures.push(format!(
            "{} seats on tickets, {shown_sold} shown sold",
            seat_tickets.len()
        ));
    }
    let charges = t
        .client
        .get(format!("{}/v1/admin/test-gateway/charges", t.base(0)))
        .bearer_auth(&t.admin)
        .send()
        .await?;
    if charges.status().is_success() {
        let charges: Value = charges.json().await?;
        let known: BTreeSet<&str> = orders.iter().filter_map(|o| o["id"].as_str()).collect();
        let mut charged: BTreeMap<String, usize> = BTreeMap::new();
        for c in charges["charges"].as_array().cloned().unwrap_or_default() {
            let order = c["order_id"].as_str().unwrap_or_default();
            if known.contains(order) && c["outcome"] == "succeeded" && c["refunded"] != true {
                *charged.entry(order.to_owned()).or_default() += 1;
            }
        }
        for (o, n) in &charged {
            if *n > 1 {
                failures.push(format!("order {o} charged {n} times"));
            }
        }
        let charged: BTreeSet<String> = charged.into_keys().collect();
        if charged != paid {
            failures.push(format!(
                "charges and paid orders differ: {} charged, {} paid",
                charged.len(),
                paid.len()
            ));
        }
    } else {
        failures.push(format!(
            "the test gateway's charges are not readable: {}",
            charges.status()
        ));
    }
    Ok(failures)
}

impl Report {
    /// The report for humans and docs: a few summary lines, then a table of steps.
    /// Every field of the JSON report is here, save the targets and event id.
    pub fn markdown(&self) -> String {
        let secs = |s: Option<f64>| s.map_or("—".to_owned(), |s| format!("{s:.1} s"));
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mode = serde_json::to_value(self.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        // The first line alone sums the run up (scripts/loadgen-smoke shows only it).
        let mut s = format!(
            "mode `{mode}` · {} seats + {} GA",
            self.seats, self.ga_capacity
        );
        if self.mode == Mode::Sale {
            s.push_str(&format!(" · {} buyers", self.buyers));
        }
        s.push_str(&format!(
            " · {} connections · {:.1} s",
            self.connections, self.elapsed_seconds
        ));
        if self.mode == Mode::Sale {
            s.push_str(&format!(
                " · tickets sold {} on {} paid orders · {} · all checked out {} · all paid {} · last checkout {} · last paid {} · {:.0} tickets/s · audit {}",
                self.tickets_sold,
                self.paid_orders,
                if self.sold_out { "sold out" } else { "not sold out" },
                secs(self.all_checked_out_seconds),
                secs(self.all_paid_seconds),
                secs(self.last_checkout_seconds),
                secs(self.last_paid_seconds),
                self.tickets_per_second,
                if self.audit_passed { "passed" } else { "FAILED" },
            ));
        }
        s.push_str("\n\n");
        if let Some(r) = &self.room {
            s.push_str(&format!(
                "waiting room: {} admitted, at most {:.0} a minute over 10 s ({} configured) · hold requests at most {:.0} a minute over 10 s, {:.2} per admitted buyer · at most {} queued at once\n\n",
                r.admitted,
                r.admitted_per_minute_peak,
                r.admission_per_minute,
                r.hold_attempts_per_minute_peak,
                r.hold_attempts_per_admitted,
                r.queued_peak,
            ));
        }
        match &self.open_loop {
            Some(o) => s.push_str(&format!(
                "open loop: {} arrivals/s · {} scheduled · {} sent ({} late) · {} dropped · at most {} in flight",
                o.rate_per_second, o.scheduled, o.sent, o.late, o.dropped, o.max_in_flight
            )),
            None => s.push_str("closed loop"),
        }
        s.push_str(&format!(
            " · seat map gzip {}\n\n",
            self.seatmap_gzip_bytes
                .map_or("—".to_owned(), |b| format!("{b} B"))
        ));
        match &self.server {
            Some(r) => {
                s.push_str(&format!(
                    "server: {:.2} CPU s ({:.2} cores) · found by {}",
                    r.cpu_seconds, r.cpu_cores, r.found_by
                ));
                for p in &r.processes {
                    s.push_str(&format!(
                        " · pid {}: {:.2} CPU s, peak RSS (VmHWM, since start) {:.1} MiB, RSS {:.1} → {:.1} MiB",
                        p.pid,
                        p.cpu_seconds,
                        mib(p.peak_rss_kib),
                        mib(p.rss_before_kib),
                        mib(p.rss_after_kib)
                    ));
                }
            }
            None => s.push_str("server: not measured"),
        }
        if let Some(n) = &self.server_note {
            s.push_str(&format!(" ({n})"));
        }
        s.push_str(&format!(
            " · generator: {} CPU s\n\n",
            self.generator_cpu_seconds
                .map_or("—".to_owned(), |c| format!("{c:.2}"))
        ));
        match self.store_commits {
            Some(c) => s.push_str(&format!(
                "store commits: {c} ({} per paid order)\n\n",
                self.store_commits_per_paid_order
                    .map_or("—".to_owned(), |p| format!("{p:.2}"))
            )),
            None => s.push_str(&format!(
                "store commits: unknown ({})\n\n",
                self.store_commits_note
                    .as_deref()
                    .unwrap_or("no reason given")
            )),
        }
        s.push_str("| step | count | per s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | 2xx | 304 | 409 | 410 | 429 | 5xx | errors |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for st in &self.steps {
            let c = |k: &str| st.status.get(k).copied().unwrap_or(0);
            s.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |\n",
                st.step, st.count, st.per_second, st.p50_ms, st.p90_ms, st.p99_ms, st.p999_ms, st.max_ms,
                c("2xx"), c("304"), c("409"), c("410"), c("429"), c("5xx"), st.errors
            ));
        }
        for f in &self.audit_failures {
            s.push_str(&format!("\naudit failure: {f}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: &str, seats: &[&str], ga: usize) -> Value {
        let mut items: Vec<Value> = seats
            .iter()
            .map(|s| json!({"seat_id": s, "tier_id": "tier_best"}))
            .collect();
        items.extend((0..ga).map(|_| json!({"tier_id": "tier_floor"})));
        json!({"status": status, "items": items})
    }

    fn finished(status: &str, seats: &[&str], ga: usize, accepted: u64, fin: u64) -> Finished {
        Finished {
            order: order(status, seats, ga),
            accepted_at: Duration::from_millis(accepted),
            final_at: Duration::from_millis(fin),
        }
    }

    #[test]
    fn a_sale_sells_out_when_paid_orders_cover_every_seat_and_ga_place() {
        let seats: Vec<String> = ["s1", "s2", "s3"].map(str::to_owned).to_vec();
        let ga = Some(("tier_floor", 2));
        let mut f = vec![
            finished("paid", &["s1", "s2"], 0, 1000, 4000),
            // Declined: its seat went back and was sold again later. Its acceptance
            // (and its final status) are not the sell-out.
            finished("failed", &["s3"], 0, 1500, 9000),
            finished("paid", &["s3"], 1, 2500, 3000),
            finished("paid", &[], 1, 2000, 6000),
        ];
        let c = sale_clocks(&f, &seats, ga);
        assert_eq!(
            c,
            SaleClocks {
                sold_out: true,
                all_checked_out_seconds: Some(2.5),
                all_paid_seconds: Some(6.0),
                last_checkout_seconds: Some(2.5),
                last_paid_seconds: Some(6.0),
            }
        );

        // A GA place short: not sold out, no clocks.
        f.pop();
        f.push(finished("failed", &[], 1, 2000, 6000));
        let c = sale_clocks(&f, &seats, ga);
        assert_eq!(
            (c.sold_out, c.all_checked_out_seconds, c.all_paid_seconds),
            (false, None, None)
        );
        // What did sell still has its two clocks (the failed GA order not among them).
        assert_eq!(
            (c.last_checkout_seconds, c.last_paid_seconds),
            (Some(2.5), Some(4.0))
        );

        // A seat only on a failed order: not sold out either.
        let f = vec![
            finished("paid", &["s1", "s2"], 2, 1000, 2000),
            finished("failed", &["s3"], 0, 1500, 2500),
        ];
        assert!(!sale_clocks(&f, &seats, ga).sold_out);
        // Without a GA tier, seats alone decide.
        let f = vec![finished("paid", &["s1", "s2", "s3"], 0, 700, 800)];
        assert_eq!(
            sale_clocks(&f, &seats, None).all_checked_out_seconds,
            Some(0.7)
        );
    }

    fn sample_report() -> Report {
        Report {
            mode: Mode::Sale,
            event_id: "evt_1".into(),
            orders: vec![],
            targets: vec!["http://127.0.0.1:18555".into()],
            seats: 2000,
            ga_capacity: 100,
            buyers: 1000,
            connections: 100,
            open_loop: Some(OpenLoop {
                rate_per_second: 500.0,
                max_in_flight: 100,
                scheduled: 1000,
                sent: 990,
                late: 37,
                dropped: 10,
            }),
            elapsed_seconds: 12.34,
            tickets_sold: 2100,
            paid_orders: 840,
            sold_out: true,
            all_checked_out_seconds: Some(8.06),
            all_paid_seconds: Some(9.04),
            last_checkout_seconds: Some(8.06),
            last_paid_seconds: Some(9.04),
            tickets_per_second: 232.3,
            audit_passed: true,
            audit_failures: vec![],
            seatmap_gzip_bytes: Some(187),
            server: Some(ServerResources {
                found_by: "listening on port 18555".into(),
                cpu_seconds: 10.25,
                cpu_cores: 0.83,
                processes: vec![ServerProcess {
                    pid: 4242,
                    cpu_seconds: 10.25,
                    peak_rss_kib: 153_600,
                    rss_before_kib: 81_920,
                    rss_after_kib: 143_360,
                }],
            }),
            server_note: None,
            generator_cpu_seconds: Some(4.5),
            room: None,
            store_commits: Some(12_345),
            store_commits_per_paid_order: Some(14.7),
            store_commits_note: None,
            steps: vec![],
        }
    }

    #[test]
    fn the_markdown_carries_the_new_fields() {
        let md = sample_report().markdown();
        for want in [
            "mode `sale` · 2000 seats + 100 GA · 1000 buyers · 100 connections · 12.3 s · tickets sold 2100 on 840 paid orders · sold out · all checked out 8.1 s · all paid 9.0 s · last checkout 8.1 s · last paid 9.0 s · 232 tickets/s · audit passed\n",
            "open loop: 500 arrivals/s · 1000 scheduled · 990 sent (37 late) · 10 dropped · at most 100 in flight · seat map gzip 187 B",
            "server: 10.25 CPU s (0.83 cores) · found by listening on port 18555",
            "pid 4242: 10.25 CPU s, peak RSS (VmHWM, since start) 150.0 MiB, RSS 80.0 → 140.0 MiB",
            "generator: 4.50 CPU s",
            "store commits: 12345 (14.70 per paid order)",
        ] {
            assert!(md.contains(want), "missing {want:?} in\n{md}");
        }
        let json = serde_json::to_value(sample_report()).expect("serializes");
        for key in [
            "open_loop",
            "sold_out",
            "all_checked_out_seconds",
            "all_paid_seconds",
            "last_checkout_seconds",
            "last_paid_seconds",
            "paid_orders",
            "server",
            "server_note",
            "generator_cpu_seconds",
            "store_commits",
            "store_commits_per_paid_order",
            "store_commits_note",
        ] {
            assert!(json.get(key).is_some(), "{key} in the JSON report");
        }
        assert_eq!(json["server"]["processes"][0]["peak_rss_kib"], 153_600);
        assert_eq!(json["open_loop"]["dropped"], 10);
    }

    #[test]
    fn the_markdown_says_what_was_not_measured_and_why() {
        let mut r = sample_report();
        r.open_loop = None;
        r.sold_out = false;
        r.all_checked_out_seconds = None;
        r.all_paid_seconds = None;
        r.last_checkout_seconds = None;
        r.last_paid_seconds = None;
        r.server = None;
        r.server_note = Some("http://10.0.0.5:1 is not on this machine; pass --server-pid".into());
        r.store_commits = None;
        r.store_commits_per_paid_order = None;
        r.store_commits_note = Some("http://x/metrics has no boxoffice_store_commits_total".into());
        let md = r.markdown();
        for want in [
            "closed loop · seat map gzip 187 B",
            "not sold out · all checked out — · all paid — · last checkout — · last paid —",
            "server: not measured (http://10.0.0.5:1 is not on this machine; pass --server-pid)",
            "store commits: unknown (http://x/metrics has no boxoffice_store_commits_total)",
        ] {
            assert!(md.contains(want), "missing {want:?} in\n{md}");
        }
    }
}
