//! The live seat map as served: its JSON body built once per (event, version), and
//! its gzip and brotli encodings made once, on first demand, off the async threads;
//! every request until the version moves shares the same bytes.
//!
//! It owns the bounded cache of encoded maps (one entry per event, at most
//! [`CAPACITY`] events, the least recently asked for leaves first) and the
//! `Accept-Encoding` negotiation of the seat-map route. It must never serve a body
//! under another version's ETag, compress on an async worker thread, or hold a lock
//! across an `.await` — except a slot's build lock, a tokio mutex held on purpose so
//! that one request fetches and encodes a new version while the others wait for it.

use axum::http::header::ACCEPT_ENCODING;
use axum::http::{HeaderMap, HeaderValue};
use boxoffice_app::LiveSeatMap;
use boxoffice_domain::EventId;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

use crate::views;

/// Events whose encoded map is kept. A sale is a handful of hot events; this bounds
/// memory (each entry is ~50 KB of JSON plus its encodings at 50,000 seats).
pub const CAPACITY: usize = 256;

// Compression levels, from measuring a mid-sale 50,000-seat map (on the shared
// 2-core machine, so times are loose): gzip 3 is ~7.5 KB in ~1 ms, where 6 saves
// 5–7% for 5× the time; brotli 5 is ~7.3 KB in a few ms, where 4 and below are
// larger than gzip 3 and 9 saves 6–9% for 6× the time (10–11: 20–60×).
// Each version is compressed once per coding, on a blocking thread, but under a
// sale's churn that is often: fast levels keep a new version's wait short.
const GZIP_LEVEL: u32 = 3;
const BROTLI_QUALITY: i32 = 5;
/// Brotli window: 2^18 bytes, as long as a map of some 260,000 seats.
const BROTLI_LGWIN: i32 = 18;

/// A content coding this route can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
}

impl Coding {
    /// The `Content-Encoding` value; `None` for identity (which is never sent).
    pub fn header(self) -> Option<HeaderValue> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some(HeaderValue::from_static("gzip")),
            Coding::Br => Some(HeaderValue::from_static("br")),
        }
    }

    /// The coding to answer with, from the request's `Accept-Encoding` (RFC 9110
    /// §12.5.3): the highest q-value among br, gzip and identity, preferring them in
    /// that order on a tie; `*` stands for any coding not listed, and identity not
    /// listed comes last. Without the header, or when the client refuses all three,
    /// identity (a client refusing identity still gets a readable answer, not a 406).
    pub fn negotiate(headers: &HeaderMap) -> Coding {
        let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
        for value in headers.get_all(ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let mut q = Some(1.0_f32);
                for p in parts {
                    if let Some((k, v)) = p.split_once('=') {
                        if k.trim().eq_ignore_ascii_case("q") {
                            q = v.trim().parse().ok().filter(|q| (0.0..=1.0).contains(q));
                        }
                    }
                }
                // An unreadable q-value makes the item void, not a preference.
                let Some(q) = q else { continue };
                let slot = if name.eq_ignore_ascii_case("br") {
                    &mut br
                } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if name.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if name == "*" {
                    &mut star
                } else {
                    continue;
                };
                *slot = Some(q);
            }
        }
        let br = br.or(star).unwrap_or(0.0);
        let gzip = gzip.or(star).unwrap_or(0.0);
        // Identity not named (nor `*`) is the fallback, below any coding the client
        // does name: `br;q=0.5` means "br, please", not "rather identity".
        let identity = identity.or(star).unwrap_or(f32::MIN_POSITIVE);
        [
            (Coding::Br, br),
            (Coding::Gzip, gzip),
            (Coding::Identity, identity),
        ]
        .into_iter()
        .filter(|&(_, q)| q > 0.0)
        // max_by keeps the last of equals: iterate in reverse preference order.
        .rev()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(Coding::Identity, |(c, _)| c)
    }
}

/// The weak ETag of a seat-map version (one value for every coding of it: they are
/// the same JSON).
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// One version of one event's map, as served.
#[derive(Debug)]
pub struct Encoded {
    pub version: u64,
    pub etag: String,
    json: Bytes,
    gzip: OnceCell<Bytes>,
    br: OnceCell<Bytes>,
}

impl Encoded {
    pub fn new(map: &LiveSeatMap) -> Self {
        Self {
            version: map.version,
            etag: etag(map.version),
            json: Bytes::from(views::seats(map)),
            gzip: OnceCell::new(),
            br: OnceCell::new(),
        }
    }

    /// Any other JSON body served the same way (an event's layout: megabytes that
    /// never change, compressed once rather than on every request).
    pub fn from_json(etag: String, json: Bytes) -> Self {
        Self {
            version: 0,
            etag,
            json,
            gzip: OnceCell::new(),
            br: OnceCell::new(),
        }
    }

    /// The body in `coding`, and the coding it really is in: compressed once per
    /// version on a blocking thread (concurrent askers wait for that one), or the
    /// JSON itself if compressing failed.
    pub async fn body(&self, coding: Coding) -> (Coding, Bytes) {
        let (cell, compress): (_, Compress) = match coding {
            Coding::Identity => return (Coding::Identity, self.json.clone()),
            Coding::Gzip => (&self.gzip, gzip_encode),
            Coding::Br => (&self.br, brotli_encode),
        };
        let made = cell
            .get_or_try_init(|| {
                let json = self.json.clone();
                async move {
                    match tokio::task::spawn_blocking(move || compress(&json)).await {
                        Ok(Ok(v)) => Ok(Bytes::from(v)),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await;
        match made {
            Ok(b) => (coding, b.clone()),
            Err(error) => {
                tracing::warn!(%error, ?coding, "seat map not compressed; sent as is");
                (Coding::Identity, self.json.clone())
            }
        }
    }
}

type Compress = fn(&[u8]) -> std::io::Result<Vec<u8>>;

pub fn gzip_encode(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(data)?;
    enc.finish()
}

pub fn brotli_encode(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::backward_references::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: BROTLI_LGWIN,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 4);
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
    Ok(out)
}

#[derive(Debug)]
struct Slot {
    current: RwLock<Option<Arc<Encoded>>>,
    /// Held by the one request that fetches and encodes a newer version.
    build: Mutex<()>,
    /// The cache's tick when this event was last asked for (for eviction).
    used: AtomicU64,
}

impl Slot {
    /// The encoded map if it is at least `version`. Versions only grow (a rebuilt
    /// engine restarts above anything served), so a newer map is a state that existed
    /// after the caller read `version`: as fresh as what it asked for.
    fn at_least(&self, version: u64) -> Option<Arc<Encoded>> {
        self.current
            .read()
            .as_ref()
            .filter(|e| e.version >= version)
            .cloned()
    }
}

/// Encoded seat maps by event: see the module docs.
#[derive(Debug)]
pub struct SeatMapCache {
    slots: RwLock<HashMap<EventId, Arc<Slot>>>,
    tick: AtomicU64,
    capacity: usize,
}

impl Default for SeatMapCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl SeatMapCache {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: RwLock::default(),
            tick: AtomicU64::new(0),
            capacity: capacity.max(1),
        }
    }

    /// The encoded map of `event` at `version` or newer. If the cache has none, one
    /// caller runs `fetch` and encodes its map while concurrent callers wait, then
    /// they all share it.
    pub async fn get<F, Fut, E>(
        &self,
        event: &EventId,
        version: u64,
        fetch: F,
    ) -> Result<Arc<Encoded>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LiveSeatMap, E>>,
    {
        let slot = self.slot(event);
        if let Some(hit) = slot.at_least(version) {
            return Ok(hit);
        }
        let _building = slot.build.lock().await;
        // Whoever held the lock before may have built it meanwhile.
        if let Some(hit) = slot.at_least(version) {
            return Ok(hit);
        }
        // JSON of a 50,000-seat map is tens of microseconds: done here. The
        // compressions, the slow part, are made on demand by `Encoded::body`.
        let map = fetch().await?;
        let encoded = Arc::new(Encoded::new(&map));
        let mut current = slot.current.write();
        // Never replace a newer map by an older one.
        if current.as_ref().is_none_or(|c| c.version < encoded.version) {
            *current = Some(encoded.clone());
        }
        Ok(encoded)
    }

    /// The event's slot, made if needed; the least recently used goes when full.
    fn slot(&self, event: &EventId) -> Arc<Slot> {
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.slots.read().get(event) {
            slot.used.store(tick, Ordering::Relaxed);
            return slot.clone();
        }
        let mut slots = self.slots.write();
        if let Some(slot) = slots.get(event) {
            return slot.clone();
        }
        if slots.len() >= self.capacity {
            // O(capacity), only when a new event arrives at a full cache.
            let oldest = slots
                .iter()
                .min_by_key(|(_, s)| s.used.load(Ordering::Relaxed))
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let slot = Arc::new(Slot {
            current: RwLock::new(None),
            build: Mutex::new(()),
            used: AtomicU64::new(tick),
        });
        slots.insert(event.clone(), slot.clone());
        slot
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_domain::inventory::GaCounts;
    use std::io::Read;
    use std::sync::atomic::AtomicUsize;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn negotiation() {
        assert_eq!(Coding::negotiate(&HeaderMap::new()), Coding::Identity);
        for (header, want) in [
            ("", Coding::Identity),
            ("gzip", Coding::Gzip),
            ("br", Coding::Br),
            ("gzip, deflate, br", Coding::Br),
            ("gzip, deflate, br, zstd", Coding::Br),
            ("br;q=0.5, gzip", Coding::Gzip),
            ("BR;Q=0.9, GZIP;q=0.8", Coding::Br),
            ("x-gzip", Coding::Gzip),
            ("identity", Coding::Identity),
            ("identity, gzip;q=0.5", Coding::Identity),
            ("deflate", Coding::Identity),
            ("*", Coding::Br),
            ("*;q=0.5, br;q=0", Coding::Gzip),
            ("br;q=0, gzip;q=0", Coding::Identity),
            ("br;q=0.1", Coding::Br),
            ("br;q=0.1, identity;q=0.2", Coding::Identity),
            ("br;q=0, gzip;q=0, identity;q=0", Coding::Identity),
            ("br;q=bogus, gzip;q=0.1", Coding::Gzip),
            ("br;q=2, gzip;q=0.1", Coding::Gzip),
            (" gzip ; q=0.3 , br ; q=0.2 ", Coding::Gzip),
        ] {
            assert_eq!(Coding::negotiate(&accept(header)), want, "{header:?}");
        }
        // Several header lines count as one list.
        let mut h = accept("gzip;q=0.4");
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("br;q=0.6"));
        assert_eq!(Coding::negotiate(&h), Coding::Br);
    }

    /// A deterministic xorshift, so the maps below (and their sizes) never vary.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    const SEATS: usize = 50_000;

    fn map(status: Vec<u8>) -> LiveSeatMap {
        LiveSeatMap {
            version: 1_723_456_789_012_000,
            status,
            ga: vec![(
                boxoffice_domain::TierId::new(),
                GaCounts {
                    capacity: 5_000,
                    held: 120,
                    sold: 2_000,
                },
            )],
        }
    }

    /// Mid-sale as buyers make it: groups of 1–6 adjacent seats, each group held or
    /// sold, at random places, until a third of the seats are taken.
    fn mid_sale_in_runs(rng: &mut Rng) -> Vec<u8> {
        let mut s = vec![b'A'; SEATS];
        let mut taken = 0;
        while taken < SEATS / 3 {
            let start = rng.below(SEATS as u64) as usize;
            let len = 1 + rng.below(6) as usize;
            let st = if rng.below(3) == 0 { b'H' } else { b'S' };
            for seat in s.iter_mut().skip(start).take(len) {
                if *seat == b'A' {
                    *seat = st;
                    taken += 1;
                }
            }
        }
        s
    }

    /// Mid-sale with no structure at all: each seat independently taken with
    /// probability 1/3 (held or sold alike), the worst case for compression.
    fn mid_sale_random(rng: &mut Rng) -> Vec<u8> {
        (0..SEATS)
            .map(|_| match rng.below(6) {
                0 => b'H',
                1 => b'S',
                _ => b'A',
            })
            .collect()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unbrotli(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(b, 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Compressed sizes of a 50,000-seat map, measured when this was written
    /// (gzip level 3 / brotli quality 5), and bounds that fail on a regression.
    /// The requirement is < 32 KB mid-sale:
    ///
    /// | map (50,000 seats, one GA tier)            | JSON   | gzip   | br     |
    /// |--------------------------------------------|--------|--------|--------|
    /// | empty                                      | 50,110 |    189 |    102 |
    /// | mid-sale: a third taken, groups of 1–6     | 50,110 |  7,615 |  7,365 |
    /// | mid-sale: a third taken, seat by seat      | 50,110 | 11,546 | 11,220 |
    #[tokio::test]
    async fn a_mid_sale_map_compresses_under_32_kb() {
        let mut rng = Rng(0x5eed_cafe_f00d_0001);
        let cases = [
            ("empty", vec![b'A'; SEATS], 512, 512),
            ("runs", mid_sale_in_runs(&mut rng), 32 * 1024, 32 * 1024),
            ("random", mid_sale_random(&mut rng), 32 * 1024, 32 * 1024),
        ];
        for (name, status, gzip_bound, br_bound) in cases {
            let enc = Encoded::new(&map(status));
            let json = enc.body(Coding::Identity).await.1;
            let (c, gz) = enc.body(Coding::Gzip).await;
            assert_eq!(c, Coding::Gzip);
            let (c, br) = enc.body(Coding::Br).await;
            assert_eq!(c, Coding::Br);
            eprintln!(
                "{name}: json {} gzip {} br {}",
                json.len(),
                gz.len(),
                br.len()
            );
            assert_eq!(gunzip(&gz), json, "{name}: gzip round trip");
            assert_eq!(unbrotli(&br), json, "{name}: brotli round trip");
            assert!(gz.len() < gzip_bound, "{name}: gzip {} bytes", gz.len());
            assert!(br.len() < br_bound, "{name}: br {} bytes", br.len());
        }
    }

    #[tokio::test]
    async fn an_encoding_is_made_once_and_shared() {
        let enc = Encoded::new(&map(vec![b'A'; 100]));
        let (_, a) = enc.body(Coding::Br).await;
        let (_, b) = enc.body(Coding::Br).await;
        // The same allocation, not an equal copy.
        assert_eq!(a.as_ptr(), b.as_ptr());
        let (_, j1) = enc.body(Coding::Identity).await;
        let (_, j2) = enc.body(Coding::Identity).await;
        assert_eq!(j1.as_ptr(), j2.as_ptr());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_askers_of_a_new_version_fetch_it_once() {
        let cache = Arc::new(SeatMapCache::default());
        let event = EventId::new();
        let fetches = Arc::new(AtomicUsize::new(0));
        let ask = |version: u64| {
            let (cache, event, fetches) = (cache.clone(), event.clone(), fetches.clone());
            tokio::spawn(async move {
                cache
                    .get(&event, version, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok::<_, ()>(LiveSeatMap {
                            version,
                            status: vec![b'A'; 10],
                            ga: vec![],
                        })
                    })
                    .await
                    .unwrap()
            })
        };
        let all: Vec<_> = (0..50).map(|_| ask(5)).collect();
        let mut first = None;
        for t in all {
            let e = t.await.unwrap();
            assert_eq!(e.version, 5);
            let p = Arc::as_ptr(&e);
            assert_eq!(*first.get_or_insert(p), p, "one shared encoding");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // Same version again (or an older one): served from the cache.
        assert_eq!(ask(5).await.unwrap().version, 5);
        assert_eq!(ask(4).await.unwrap().version, 5);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A newer version is fetched, once.
        assert_eq!(ask(6).await.unwrap().version, 6);
        assert_eq!(ask(6).await.unwrap().version, 6);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let cache = SeatMapCache::default();
        let event = EventId::new();
        let r = cache
            .get(&event, 1, || async { Err::<LiveSeatMap, _>("engine down") })
            .await;
        assert_eq!(r.unwrap_err(), "engine down");
        let ok = cache
            .get(&event, 1, || async { Ok::<_, &str>(map(vec![b'A'; 3])) })
            .await
            .unwrap();
        assert!(ok.version >= 1);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_keeps_the_busy_events() {
        let cache = SeatMapCache::with_capacity(3);
        let fetch = || async { Ok::<_, ()>(map(vec![b'A'; 3])) };
        let hot = EventId::new();
        cache.get(&hot, 1, fetch).await.unwrap();
        for _ in 0..10 {
            cache.get(&EventId::new(), 1, fetch).await.unwrap();
            // The hot event is asked for between every newcomer: it stays.
            let fetched = AtomicUsize::new(0);
            cache
                .get(&hot, 1, || async {
                    fetched.fetch_add(1, Ordering::SeqCst);
                    fetch().await
                })
                .await
                .unwrap();
            assert_eq!(fetched.load(Ordering::SeqCst), 0);
            assert!(cache.len() <= 3);
        }
    }
}
