//! `streams` mode (issue 11): N browsers follow one event's live seat map
//! (`GET /v1/events/{id}/stream`) while buyers hold and release seats. Measured:
//! the server's memory per open stream (resident set growth from opening them, over
//! N), the bytes pushed per change event and per changed seat, how long a hold takes
//! to reach the streams (sampled on a few of them), and correctness: every stream,
//! patched by its changes, ends exactly on the final `GET /seats`, at its version.
//!
//! A stream that fell behind gets a fresh snapshot from the server (its channel is
//! bounded); such re-snapshots are counted, not failed: the map still ends right.

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::{create_sale, register, server, Target};

#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub targets: Vec<String>,
    pub admin_email: String,
    pub admin_password: String,
    /// Streams to open, spread over the targets.
    pub streams: usize,
    pub seats: usize,
    /// Holds made (each released `hold_for` after it is granted): twice as many changes.
    pub holds: usize,
    /// Holds a second.
    pub hold_rate: f64,
    /// How long each hold is kept before its release: longer than the server's
    /// push tick (250 ms), or a hold and its release cancel out in one push.
    pub hold_for: Duration,
    pub accounts: usize,
    pub server_pids: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamsReport {
    pub mode: &'static str,
    pub event_id: String,
    pub targets: Vec<String>,
    pub seats: usize,
    pub streams: usize,
    pub streams_failed: usize,
    pub open_seconds: f64,
    /// Resident set growth from opening the streams (snapshots received), per stream.
    pub server_rss_bytes_per_stream: Option<f64>,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_open_kib: Option<u64>,
    pub memory_note: Option<String>,
    pub holds: usize,
    pub holds_granted: usize,
    pub hold_seconds: f64,
    pub change_seconds: f64,
    /// `change` events one stream received, on average.
    pub change_events_per_stream: f64,
    /// Bytes on the wire per `change` event and per seat it changed.
    pub bytes_per_change_event: f64,
    pub bytes_per_seat_change: f64,
    /// Snapshot bytes (one per stream at open, more for streams that fell behind).
    pub snapshot_bytes: usize,
    pub resnapshots: usize,
    /// From a hold's answer to its seat shown held on a sampled stream.
    pub propagation_ms_p50: f64,
    pub propagation_ms_p99: f64,
    pub propagation_ms_max: f64,
    pub propagation_samples: u64,
    /// Streams whose map, at the final version, differed from `GET /seats`.
    pub streams_wrong: usize,
    pub streams_behind: usize,
    pub final_version: u64,
    pub passed: bool,
    pub failures: Vec<String>,
}

impl StreamsReport {
    pub fn markdown(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("not measured".to_owned(), |v| format!("{v:.0} bytes"));
        format!(
            "| streams | |\n|---|---|\n\
             | streams | {} open ({} failed) on a {}-seat event, in {:.1} s |\n\
             | server memory per stream | {} |\n\
             | changes | {} holds ({} granted), each released after {:.1} s, over {:.1} s |\n\
             | change events per stream | {:.1} |\n\
             | bytes per change event | {:.0} ({:.1} per changed seat) |\n\
             | snapshot bytes | {} ({} re-snapshots) |\n\
             | hold to stream | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} samples) |\n\
             | streams wrong / behind at the end | {} / {} (final version {}) |\n\
             | passed | {} {} |",
            self.streams - self.streams_failed,
            self.streams_failed,
            self.seats,
            self.open_seconds,
            opt(self.server_rss_bytes_per_stream),
            self.holds,
            self.holds_granted,
            self.hold_seconds,
            self.change_seconds,
            self.change_events_per_stream,
            self.bytes_per_change_event,
            self.bytes_per_seat_change,
            self.snapshot_bytes,
            self.resnapshots,
            self.propagation_ms_p50,
            self.propagation_ms_p99,
            self.propagation_ms_max,
            self.propagation_samples,
            self.streams_wrong,
            self.streams_behind,
            self.final_version,
            self.passed,
            self.failures.join("; "),
        )
    }
}

/// One parsed SSE event.
struct Sse {
    event: String,
    id: u64,
    data: String,
}

/// Takes the complete events out of `buf` (keep-alive comments dropped).
fn drain_events(buf: &mut String, out: &mut Vec<Sse>) {
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let (mut event, mut id, mut data) = (String::new(), 0, String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !event.is_empty() {
            out.push(Sse { event, id, data });
        }
    }
}

/// What one stream saw.
#[derive(Debug, Default)]
struct Seen {
    opened: bool,
    version: u64,
    status: Vec<u8>,
    change_events: usize,
    change_bytes: usize,
    seat_changes: usize,
    snapshot_bytes: usize,
    snapshots: usize,
    error: Option<String>,
}

/// Shared by the holder and the sampled streams: when each seat's hold was granted.
type GrantedAt = Mutex<HashMap<usize, Instant>>;

struct Follow {
    url: String,
    client: reqwest::Client,
    opened: Arc<AtomicUsize>,
    /// The version every stream must reach before it stops (`u64::MAX`: not yet known).
    until: watch::Receiver<u64>,
    granted: Option<Arc<GrantedAt>>,
    latencies: Arc<Mutex<Histogram<u64>>>,
}

async fn follow(f: Follow) -> Seen {
    let mut seen = Seen::default();
    let r = match f
        .client
        .get(&f.url)
        .header("accept-encoding", "identity")
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            seen.error = Some(format!("status {}", r.status()));
            f.opened.fetch_add(1, Ordering::Relaxed);
            return seen;
        }
        Err(e) => {
            seen.error = Some(e.to_string());
            f.opened.fetch_add(1, Ordering::Relaxed);
            return seen;
        }
    };
    let mut r = r;
    let (mut buf, mut events) = (String::new(), Vec::new());
    let mut until = f.until;
    loop {
        let target = *until.borrow();
        if seen.opened && seen.version >= target {
            return seen;
        }
        let chunk = tokio::select! {
            c = r.chunk() => c,
            _ = until.changed() => continue,
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Err(e) => {
                seen.error = Some(e.to_string());
                break;
            }
            Ok(None) => {
                seen.error = Some("closed by the server".into());
                break;
            }
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        drain_events(&mut buf, &mut events);
        for e in events.drain(..) {
            let size = e.data.len();
            let data: Value = match serde_json::from_str(&e.data) {
                Ok(v) => v,
                Err(err) => {
                    seen.error = Some(format!("bad JSON in {}: {err}", e.event));
                    return seen;
                }
            };
            match e.event.as_str() {
                "snapshot" => {
                    seen.status = data["status"]
                        .as_str()
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec();
                    seen.snapshot_bytes += size;
                    seen.snapshots += 1;
                    if !seen.opened {
                        seen.opened = true;
                        f.opened.fetch_add(1, Ordering::Relaxed);
                    }
                }
                "change" => {
                    seen.change_events += 1;
                    seen.change_bytes += size;
                    let now = Instant::now();
                    for c in data["changes"].as_array().into_iter().flatten() {
                        let (Some(ix), Some(s)) = (c[0].as_u64(), c[1].as_str()) else {
                            continue;
                        };
                        let ix = ix as usize;
                        if let (Some(slot), Some(&b)) =
                            (seen.status.get_mut(ix), s.as_bytes().first())
                        {
                            *slot = b;
                        }
                        seen.seat_changes += 1;
                        if let (Some(g), "H") = (&f.granted, s) {
                            if let Some(at) = g.lock().expect("granted").get(&ix) {
                                let ms = now.saturating_duration_since(*at).as_millis() as u64;
                                let _ = f.latencies.lock().expect("latencies").record(ms.max(1));
                            }
                        }
                    }
                }
                _ => {}
            }
            seen.version = e.id;
        }
    }
    if !seen.opened {
        f.opened.fetch_add(1, Ordering::Relaxed);
    }
    seen
}

/// The body of `GET /seats`: its version and status string.
async fn seat_map(t: &Target, event: &str) -> anyhow::Result<(u64, Vec<u8>)> {
    let v: Value = t
        .client
        .get(format!("{}/v1/events/{event}/seats", t.bases[0]))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        v["version"]
            .as_u64()
            .context("seat map without a version")?,
        v["status"].as_str().unwrap_or_default().as_bytes().to_vec(),
    ))
}

pub async fn run_streams(cfg: StreamsConfig) -> anyhow::Result<StreamsReport> {
    if cfg.streams == 0 || cfg.seats == 0 {
        bail!("--streams and --seats must be positive");
    }
    let t = Target::connect(&cfg.targets, &cfg.admin_email, &cfg.admin_password, 16).await?;
    let sale = create_sale(&t, cfg.seats, 0, 3600).await?;
    let tokens = register(&t, cfg.accounts.max(1)).await?;
    let watch_before = server::Watch::start(&cfg.server_pids, &cfg.targets);

    // Every stream on its own connection, as browsers hold them.
    let stream_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (until_tx, until_rx) = watch::channel(u64::MAX);
    let opened = Arc::new(AtomicUsize::new(0));
    let granted: Arc<GrantedAt> = Arc::default();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    // About 100 streams sample the hold-to-stream time.
    let sample_every = (cfg.streams / 100).max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..cfg.streams)
        .map(|i| {
            let f = Follow {
                url: format!(
                    "{}/v1/events/{}/stream",
                    t.bases[i % t.bases.len()],
                    sale.event
                ),
                client: stream_client.clone(),
                opened: opened.clone(),
                until: until_rx.clone(),
                granted: (i % sample_every == 0).then(|| granted.clone()),
                latencies: latencies.clone(),
            };
            tokio::spawn(follow(f))
        })
        .collect();
    while opened.load(Ordering::Relaxed) < cfg.streams {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_seconds = started.elapsed().as_secs_f64();
    // The resident set once every snapshot went out (and a moment for the
    // allocator to settle is not waited for: this is the cost while they run).
    let open_sample = watch_before.as_ref().ok().map(|w| w.finish_rss());

    // Holds, each released once granted, at the configured rate.
    let holds_granted = Arc::new(AtomicUsize::new(0));
    let change_started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / cfg.hold_rate.max(0.001));
    let mut tick = tokio::time::interval(gap);
    let mut holders = Vec::new();
    let mut rng = rand::thread_rng();
    for n in 0..cfg.holds {
        tick.tick().await;
        let seat = rng.gen_range(0..sale.seats.len());
        let (client, base) = (t.client.clone(), t.bases[n % t.bases.len()].clone());
        let (event, seat_id) = (sale.event.clone(), sale.seats[seat].clone());
        let token = tokens[n % tokens.len()].clone();
        let (granted, holds_granted) = (granted.clone(), holds_granted.clone());
        let hold_for = cfg.hold_for;
        holders.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/events/{event}/holds"))
                .bearer_auth(&token)
                .json(&json!({ "seats": [seat_id] }))
                .send()
                .await;
            let Ok(r) = r else { return };
            if r.status().as_u16() != 201 {
                return;
            }
            granted
                .lock()
                .expect("granted")
                .insert(seat, Instant::now());
            holds_granted.fetch_add(1, Ordering::Relaxed);
            let body: Value = r.json().await.unwrap_or_default();
            tokio::time::sleep(hold_for).await;
            if let Some(hold) = body["hold_id"].as_str() {
                let _ = client
                    .delete(format!("{base}/v1/holds/{hold}"))
                    .bearer_auth(&token)
                    .send()
                    .await;
            }
        }));
    }
    for h in holders {
        let _ = h.await;
    }
    let change_seconds = change_started.elapsed().as_secs_f64();
    // Every stream follows until it reaches the final version.
    let (final_version, final_status) = seat_map(&t, &sale.event).await?;
    let _ = until_tx.send(final_version);
    let mut seen = Vec::with_capacity(tasks.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(s)) => seen.push(s),
            Ok(Err(e)) => seen.push(Seen {
                error: Some(e.to_string()),
                ..Seen::default()
            }),
            Err(_) => seen.push(Seen {
                error: Some("did not reach the final version within 60 s".into()),
                ..Seen::default()
            }),
        }
    }

    let failed = seen.iter().filter(|s| !s.opened).count();
    let ok: Vec<&Seen> = seen.iter().filter(|s| s.opened).collect();
    let behind = ok.iter().filter(|s| s.version < final_version).count();
    let wrong = ok
        .iter()
        .filter(|s| s.version >= final_version && s.status != final_status)
        .count();
    let sum = |f: fn(&Seen) -> usize| ok.iter().map(|s| f(s)).sum::<usize>();
    let (events, bytes, seat_changes) = (
        sum(|s| s.change_events),
        sum(|s| s.change_bytes),
        sum(|s| s.seat_changes),
    );
    let resnapshots = sum(|s| s.snapshots.saturating_sub(1));
    let lat = latencies.lock().expect("latencies").clone();
    let (rss_per_stream, rss_before, rss_open, memory_note) = match (&watch_before, open_sample) {
        (Ok(w), Some(Ok(open))) => {
            let before = w.rss_before_kib();
            (
                Some((open.saturating_sub(before) * 1024) as f64 / ok.len().max(1) as f64),
                Some(before),
                Some(open),
                None,
            )
        }
        (Err(e), _) => (None, None, None, Some(e.clone())),
        (_, Some(Err(e))) => (None, None, None, Some(e)),
        _ => (None, None, None, None),
    };
    let mut failures = Vec::new();
    if failed > 0 {
        failures.push(format!("{failed} streams did not open"));
    }
    if wrong > 0 {
        failures.push(format!(
            "{wrong} streams ended on a map other than GET /seats"
        ));
    }
    if behind > 0 {
        failures.push(format!(
            "{behind} streams never reached version {final_version}"
        ));
    }
    if let Some(e) = seen.iter().find_map(|s| s.error.clone()) {
        if failed + behind > 0 {
            failures.push(format!("first stream error: {e}"));
        }
    }
    let granted_n = holds_granted.load(Ordering::Relaxed);
    if granted_n == 0 {
        failures.push("no hold was granted: nothing changed".into());
    }
    let q = |p: f64| lat.value_at_quantile(p) as f64;
    Ok(StreamsReport {
        mode: "streams",
        event_id: sale.event,
        targets: cfg.targets,
        seats: cfg.seats,
        streams: cfg.streams,
        streams_failed: failed,
        open_seconds,
        server_rss_bytes_per_stream: rss_per_stream,
        server_rss_before_kib: rss_before,
        server_rss_open_kib: rss_open,
        memory_note,
        holds: cfg.holds,
        holds_granted: granted_n,
        hold_seconds: cfg.hold_for.as_secs_f64(),
        change_seconds,
        change_events_per_stream: events as f64 / ok.len().max(1) as f64,
        bytes_per_change_event: bytes as f64 / events.max(1) as f64,
        bytes_per_seat_change: bytes as f64 / seat_changes.max(1) as f64,
        snapshot_bytes: sum(|s| s.snapshot_bytes),
        resnapshots,
        propagation_ms_p50: q(0.5),
        propagation_ms_p99: q(0.99),
        propagation_ms_max: lat.max() as f64,
        propagation_samples: lat.len(),
        streams_wrong: wrong,
        streams_behind: behind,
        final_version,
        passed: failures.is_empty(),
        failures,
    })
}
