//! `queue` mode (issue 12): a crowd joins an event's waiting room, then the sale
//! starts and the room lets people in. Measured: joins a second (each solving the
//! proof of work when the room asks for one), the server's memory per queued user
//! (its resident set, and Redis's `used_memory` when `--redis-url` is given),
//! the admission rate achieved against the configured one, and fairness: the
//! pre-queue's draw is a permutation, and admission follows the drawn order.
//!
//! A million customers cannot be registered in any useful time (each registration
//! hashes a password with argon2), so with `--secret-key` (the server's
//! `BOXOFFICE_SECRET_KEY`) the generator signs its customers' access tokens itself,
//! as the server would; without it, it registers accounts.
//!
//! The room's serving counter is read from any waiting user's view (rank minus
//! position), so following the admission rate costs one request a second.

use anyhow::{bail, Context};
use boxoffice_app::{Principal, Tokens};
use boxoffice_domain::{Role, UserId};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{create_sale, register, server, Target};

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub targets: Vec<String>,
    pub admin_email: String,
    pub admin_password: String,
    pub joins: usize,
    pub connections: usize,
    pub admission_per_minute: u32,
    pub max_active_shoppers: Option<u32>,
    pub session_seconds: u32,
    pub challenge_difficulty: u8,
    /// How long to follow admissions after the sale starts.
    pub duration: Duration,
    /// The server's token key: sign customers' tokens here (else register them).
    pub secret_key: Option<String>,
    /// `redis://host:port` of the room's Redis, to read its memory.
    pub redis_url: Option<String>,
    /// Queued users whose place is checked for fairness (every n/sample-th join).
    pub fairness_sample: usize,
    pub server_pids: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    pub mode: &'static str,
    pub event_id: String,
    pub targets: Vec<String>,
    pub joins: usize,
    pub joins_failed: usize,
    pub connections: usize,
    pub challenge_difficulty: u8,
    pub join_seconds: f64,
    pub joins_per_second: f64,
    pub join_latency_ms_p50: f64,
    pub join_latency_ms_p99: f64,
    pub join_latency_ms_max: f64,
    /// Growth of the server's resident set over the joins, per join (bytes).
    pub server_rss_bytes_per_join: Option<f64>,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    /// Growth of Redis's `used_memory` over the joins, per join (bytes).
    pub redis_bytes_per_join: Option<f64>,
    pub memory_note: Option<String>,
    pub admission_per_minute_configured: u32,
    pub max_active_shoppers: Option<u32>,
    /// Admissions a minute measured over the admission phase.
    pub admission_per_minute_achieved: Option<f64>,
    pub admitted_during_phase: u64,
    pub admission_seconds: f64,
    /// The sampled places were distinct and within 1..=joins.
    pub draw_is_permutation: bool,
    pub sampled: usize,
    /// Sampled users whose state disagreed with the serving counter (admitted
    /// ahead of a better rank, or waiting behind a worse one).
    pub fairness_violations: usize,
    pub passed: bool,
    pub failures: Vec<String>,
}

impl QueueReport {
    pub fn markdown(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| {
            v.map_or("not measured".to_owned(), |v| format!("{v:.1} {unit}"))
        };
        format!(
            "| queue | |\n|---|---|\n\
             | joins | {} ({} failed), {} connections, proof of work {} bits |\n\
             | joins a second | {:.0} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms) |\n\
             | server memory per queued user | {} |\n\
             | Redis memory per queued user | {} |\n\
             | admission rate | {} a minute achieved, {} configured (capacity {}) over {:.0} s |\n\
             | draw is a permutation | {} ({} sampled) |\n\
             | fairness violations | {} |\n\
             | passed | {} {} |",
            self.joins,
            self.joins_failed,
            self.connections,
            self.challenge_difficulty,
            self.joins_per_second,
            self.join_latency_ms_p50,
            self.join_latency_ms_p99,
            self.join_latency_ms_max,
            opt(self.server_rss_bytes_per_join, "bytes"),
            opt(self.redis_bytes_per_join, "bytes"),
            self.admission_per_minute_achieved
                .map_or("not measured".into(), |v| format!("{v:.1}")),
            self.admission_per_minute_configured,
            self.max_active_shoppers
                .map_or("none".into(), |c| c.to_string()),
            self.admission_seconds,
            self.draw_is_permutation,
            self.sampled,
            self.fairness_violations,
            self.passed,
            self.failures.join("; "),
        )
    }
}

/// Redis's `used_memory` (bytes), by its inline protocol.
async fn redis_used_memory(url: &str) -> anyhow::Result<u64> {
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to Redis at {addr}"))?;
    s.write_all(b"INFO memory\r\n").await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
        {
            return Ok(v);
        }
    }
    bail!("no used_memory in Redis's INFO")
}

pub(crate) async fn patch(t: &Target, event: &str, body: Value) -> anyhow::Result<()> {
    let r = t
        .client
        .patch(format!("{}/v1/events/{event}", t.bases[0]))
        .bearer_auth(&t.admin)
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("PATCH event {body}: {}", r.status());
    }
    Ok(())
}

/// One join: a challenge solved when the room asks for one. Returns the queue id.
pub(crate) async fn join(
    t: &Target,
    base: &str,
    event: &str,
    token: &str,
    difficulty: u8,
) -> Result<String, String> {
    let mut body = json!({});
    if difficulty > 0 {
        let c: Value = t
            .client
            .get(format!("{base}/v1/events/{event}/queue/challenge"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let challenge = c["challenge"].as_str().unwrap_or_default().to_owned();
        let ch = challenge.clone();
        let nonce = tokio::task::spawn_blocking(move || {
            boxoffice_app::waiting_room::solve_pow(&ch, difficulty)
        })
        .await
        .map_err(|e| e.to_string())?;
        body = json!({"challenge": challenge, "nonce": nonce});
    }
    let r = t
        .client
        .post(format!("{base}/v1/events/{event}/queue"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if status.as_u16() != 201 {
        return Err(format!("{status} {v}"));
    }
    v["queue_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no queue_id in {v}"))
}

async fn view(t: &Target, queue_id: &str) -> anyhow::Result<Value> {
    let r = t
        .client
        .get(format!("{}/v1/queue/{queue_id}", t.bases[0]))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("GET queue: {}", r.status());
    }
    Ok(r.json().await?)
}

/// The serving counter as `v` shows it: exact for a waiting user, a lower bound
/// (its rank) for an admitted one.
fn served_from(v: &Value) -> Option<u64> {
    let rank = v["rank"].as_u64()?;
    match v["state"].as_str()? {
        "waiting" => Some(rank - v["position"].as_u64()?),
        _ => Some(rank),
    }
}

pub async fn run_queue(cfg: QueueConfig) -> anyhow::Result<QueueReport> {
    let t = Arc::new(
        Target::connect(
            &cfg.targets,
            &cfg.admin_email,
            &cfg.admin_password,
            cfg.connections,
        )
        .await?,
    );
    let sale = create_sale(&t, 100, 0, 300).await?;
    let event = sale.event.clone();
    // Paused with the pre-queue open: everyone joins before the start, so the whole
    // crowd is drawn by lot.
    patch(&t, &event, json!({"status": "paused"})).await?;
    patch(
        &t,
        &event,
        json!({"waiting_room": {
            "enabled": true,
            "admission_per_minute": cfg.admission_per_minute,
            "max_active_shoppers": cfg.max_active_shoppers,
            "session_seconds": cfg.session_seconds,
            "pre_queue_opens_at": "2000-01-01T00:00:00Z",
            "challenge_difficulty": cfg.challenge_difficulty,
        }}),
    )
    .await?;

    let n = cfg.joins.max(1);
    let tokens: Arc<Vec<String>> = Arc::new(match &cfg.secret_key {
        Some(key) => {
            let tokens = Tokens::new(key.as_bytes().to_vec(), Duration::from_secs(24 * 3600));
            let now = time::OffsetDateTime::now_utc();
            (0..n)
                .map(|_| {
                    let who = Principal {
                        user_id: UserId::new(),
                        role: Role::Customer,
                        org: None,
                        origin: Default::default(),
                    };
                    tokens.issue(&who, None, now)
                })
                .collect()
        }
        None => register(&t, n).await?,
    });

    let watch = server::Watch::start(&cfg.server_pids, &cfg.targets);
    let redis_before = match &cfg.redis_url {
        Some(u) => Some(redis_used_memory(u).await),
        None => None,
    };
    let stride = (n / cfg.fairness_sample.max(1)).max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..cfg.connections.max(1))
        .map(|w| {
            let (t, tokens, next, event) = (t.clone(), tokens.clone(), next.clone(), event.clone());
            let difficulty = cfg.challenge_difficulty;
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3).expect("histogram");
                let mut sampled = Vec::new();
                let mut failed = Vec::new();
                let base = t.bases[w % t.bases.len()].clone();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tokens.len() {
                        break;
                    }
                    let t0 = Instant::now();
                    match join(&t, &base, &event, &tokens[i], difficulty).await {
                        Ok(q) => {
                            let _ = hist.record(t0.elapsed().as_micros() as u64);
                            if i % stride == 0 {
                                sampled.push(q);
                            }
                        }
                        Err(e) => failed.push(e),
                    }
                }
                (hist, sampled, failed)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut sample = Vec::new();
    let mut failed = Vec::new();
    for w in workers {
        let (h, s, f) = w.await.context("a join worker panicked")?;
        hist.add(h).ok();
        sample.extend(s);
        failed.extend(f);
    }
    let join_elapsed = start.elapsed();
    let redis_after = match &cfg.redis_url {
        Some(u) => Some(redis_used_memory(u).await),
        None => None,
    };
    let (server, mut memory_note) = match watch {
        Ok(w) => w.finish(join_elapsed),
        Err(note) => (None, Some(note)),
    };
    let joined = n - failed.len();
    let rss = server.as_ref().map(|s| {
        let before: u64 = s.processes.iter().map(|p| p.rss_before_kib).sum();
        let after: u64 = s.processes.iter().map(|p| p.rss_after_kib).sum();
        (before, after)
    });
    let redis_bytes_per_join = match (redis_before, redis_after) {
        (Some(Ok(b)), Some(Ok(a))) => Some((a as f64 - b as f64) / joined.max(1) as f64),
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            memory_note = Some(format!("Redis memory not read: {e}"));
            None
        }
        _ => None,
    };

    // The start: the draw, then admissions at the room's pace.
    patch(&t, &event, json!({"status": "on_sale"})).await?;
    let mut failures = Vec::new();
    if !failed.is_empty() {
        failures.push(format!(
            "{} joins failed, first: {}",
            failed.len(),
            failed[0]
        ));
    }
    let mut ranks = HashSet::new();
    let mut views = Vec::new();
    for q in &sample {
        let v = view(&t, q).await?;
        if let Some(r) = v["rank"].as_u64() {
            ranks.insert(r);
        }
        views.push(v);
    }
    let draw_is_permutation =
        ranks.len() == sample.len() && ranks.iter().all(|r| (1..=joined as u64).contains(r));
    if !draw_is_permutation {
        failures.push("the sampled places are not distinct places within 1..=joins".into());
    }
    // Follow the serving counter through the sampled user with the worst rank.
    let worst = sample
        .iter()
        .zip(&views)
        .max_by_key(|(_, v)| v["rank"].as_u64().unwrap_or(0))
        .map(|(q, _)| q.clone());
    let phase_start = Instant::now();
    let mut first: Option<(Instant, u64)> = None;
    let mut last: Option<(Instant, u64)> = None;
    if let Some(q) = &worst {
        while phase_start.elapsed() < cfg.duration {
            let v = view(&t, q).await?;
            let at = Instant::now();
            if v["state"] != "waiting" {
                break;
            }
            if let Some(s) = served_from(&v) {
                first.get_or_insert((at, s));
                last = Some((at, s));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let (achieved, admitted, secs) = match (first, last) {
        (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => {
            let secs = (t1 - t0).as_secs_f64();
            (Some((s1 - s0) as f64 * 60.0 / secs), s1 - s0, secs)
        }
        _ => (None, 0, 0.0),
    };
    // Fairness: read in turn, the sampled users' states must follow their ranks:
    // the serving counter only grows, so a user found waiting may not have a better
    // rank than one found admitted (or expired: admitted, then over) before them.
    let mut worst_admitted = 0;
    let mut fairness_violations = 0;
    for q in &sample {
        let v = view(&t, q).await?;
        let rank = v["rank"].as_u64().unwrap_or(0);
        match v["state"].as_str() {
            Some("waiting") if rank < worst_admitted => fairness_violations += 1,
            Some("waiting") => {}
            _ => worst_admitted = worst_admitted.max(rank),
        }
    }
    if fairness_violations > 0 {
        failures.push(format!(
            "{fairness_violations} sampled users waited behind a worse rank already admitted"
        ));
    }
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    Ok(QueueReport {
        mode: "queue",
        event_id: event,
        targets: cfg.targets.clone(),
        joins: n,
        joins_failed: failed.len(),
        connections: cfg.connections,
        challenge_difficulty: cfg.challenge_difficulty,
        join_seconds: join_elapsed.as_secs_f64(),
        joins_per_second: joined as f64 / join_elapsed.as_secs_f64().max(1e-9),
        join_latency_ms_p50: q(0.5),
        join_latency_ms_p99: q(0.99),
        join_latency_ms_max: hist.max() as f64 / 1000.0,
        server_rss_bytes_per_join: rss
            .map(|(b, a)| (a as f64 - b as f64) * 1024.0 / joined.max(1) as f64),
        server_rss_before_kib: rss.map(|r| r.0),
        server_rss_after_kib: rss.map(|r| r.1),
        redis_bytes_per_join,
        memory_note,
        admission_per_minute_configured: cfg.admission_per_minute,
        max_active_shoppers: cfg.max_active_shoppers,
        admission_per_minute_achieved: achieved,
        admitted_during_phase: admitted,
        admission_seconds: secs,
        draw_is_permutation,
        sampled: sample.len(),
        fairness_violations,
        passed: failures.is_empty(),
        failures,
    })
}
