//! `cargo bench -p boxoffice-holds-redis`: both hold engines in process, hold and
//! release of 1–4 seats on a 50,000-seat event, from one task and contended across
//! eight. The Redis engine talks to BOXOFFICE_TEST_REDIS_URL (default local) and is
//! skipped when nothing answers there.

use boxoffice_domain::{EventId, HoldId, HoldItems, Millis};
use boxoffice_holds_memory::MemoryHoldEngine;
use boxoffice_holds_redis::RedisHoldEngine;
use boxoffice_ports::{HoldEngine, HoldRequest, InventorySnapshot};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEATS: usize = 50_000;
/// Now by this machine's clock: Redis decides expiry by its own (`TIME`), so a
/// deadline in 1970 would make every hold a refusal.
static NOW: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
});

async fn loaded<E: HoldEngine>(engine: &E) -> EventId {
    let event = EventId::new();
    engine
        .load_event(
            InventorySnapshot {
                event: event.clone(),
                seat_count: SEATS,
                ga_capacities: vec![],
                sold_seats: vec![],
                ga_sold: vec![],
                holds: vec![],
                base_version: 0,
                load_token: engine.prepare_load(&event).await.unwrap(),
            },
            Millis(*NOW),
        )
        .await
        .unwrap();
    event
}

/// One hold of 1–4 seats (varying with `n`) and its release.
async fn hold_and_release<E: HoldEngine>(engine: &E, event: &EventId, n: u32) {
    let start = (n.wrapping_mul(7919)) % (SEATS as u32 - 4);
    let seats = (0..1 + n % 4).map(|k| start + k).collect();
    let id = HoldId::new();
    let req = HoldRequest {
        event: event.clone(),
        hold: id.clone(),
        items: HoldItems::Seats(seats),
        expires_at: Millis(*NOW + 300_000),
        now: Millis(*NOW),
    };
    if engine.hold(req).await.unwrap().is_ok() {
        engine.release(event, &id, Millis(*NOW)).await.unwrap();
    }
}

fn bench_engine<E: HoldEngine>(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    engine: Arc<E>,
) {
    let event = rt.block_on(loaded(&*engine));
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    let counter = AtomicU32::new(0);
    g.bench_function("hold+release, one task", |b| {
        b.to_async(rt)
            .iter(|| hold_and_release(&*engine, &event, counter.fetch_add(1, Ordering::Relaxed)))
    });
    g.bench_function("hold+release, 8 tasks contending", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (engine, event) = (engine.clone(), event.clone());
            async move {
                let per_task = iters.div_ceil(8);
                let started = Instant::now();
                let tasks: Vec<_> = (0..8u32)
                    .map(|t| {
                        let (engine, event) = (engine.clone(), event.clone());
                        tokio::spawn(async move {
                            for i in 0..per_task as u32 {
                                // Tasks share a small window of seats: real contention.
                                hold_and_release(&*engine, &event, (i * 8 + t) % 64).await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                started
                    .elapsed()
                    .div_f64((per_task * 8) as f64 / iters as f64)
            }
        })
    });
    g.finish();
}

fn engines(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    bench_engine(
        c,
        "in-process engine",
        &rt,
        Arc::new(MemoryHoldEngine::new()),
    );
    let url = std::env::var("BOXOFFICE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(2),
            RedisHoldEngine::connect(&url, "bench:"),
        )
        .await
    }) {
        Ok(Ok(redis)) => bench_engine(c, "redis engine", &rt, Arc::new(redis)),
        _ => eprintln!("redis engine: skipped, nothing answers at {url}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = engines
}
criterion_main!(benches);
