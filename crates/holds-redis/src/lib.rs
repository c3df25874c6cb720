//! The Redis hold engine, for the distributed mode: every API node shares one
//! Redis (or Redis Cluster), which decides every hold atomically in Lua
//! (`engine.lua`, which mirrors the domain's `EventInventory` and is held to it by
//! the same conformance suite and property test as the in-process engine).
//!
//! All keys of one event share a hash tag (`{<event id>}`), so an event lives on one
//! cluster slot and every script touches one node. Scripts are called by SHA and
//! loaded again by the client when Redis answers NOSCRIPT (after a restart).
//! Redis may lose acknowledged writes (restart, failover): a lost event reads as not
//! loaded and the app rebuilds it from the store, which is the truth.
//!
//! Time: every script reads Redis's own clock (`TIME`) and decides expiry by it, so
//! all nodes share one clock; the `now` a node passes in (what its clock says) never
//! expires anything here, and a node whose clock runs ahead cannot expire everyone's
//! holds. Deadlines are the absolute instants the app records in the store. Tests
//! that move time by hand give the engine their clock: read out as Redis's
//! ([`RedisHoldEngine::with_test_clock`]), or Redis's own shifted to match it
//! ([`RedisHoldEngine::with_shifted_clock`]).

use async_trait::async_trait;
use boxoffice_domain::inventory::GaCounts;
use boxoffice_domain::{EventId, HoldId, HoldItems, HoldRejection, Millis};
use boxoffice_ports::{
    Clock, EngineError, HoldEngine, HoldRequest, InventorySnapshot, SeatMap, SystemClock,
};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Script, Value};
use std::fmt;
use std::sync::Arc;

const SCRIPT: &str = include_str!("engine.lua");

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

pub struct RedisHoldEngine {
    conn: Conn,
    prefix: String,
    script: Script,
    /// Tests only (see [`TestTime`]). `None` in production, where Redis's clock
    /// alone decides.
    test_clock: Option<(Arc<dyn Clock>, TestTime)>,
}

/// How a test's clock drives the scripts' clock.
#[derive(Debug, Clone, Copy)]
enum TestTime {
    /// The scripts read the test's clock, exactly (moved and frozen with it).
    Exact,
    /// Redis's own clock (`TIME`), shifted so it reads the test's to a round trip.
    Shifted,
}

impl fmt::Debug for RedisHoldEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisHoldEngine")
            .field("mode", &mode)
            .field("prefix", &self.prefix)
            .field("test_clock", &self.test_clock)
            .finish()
    }
}

fn down(e: impl Into<anyhow::Error>) -> EngineError {
    EngineError::Unavailable(e.into())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn texts(v: Value) -> Result<Vec<String>, EngineError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| text(i).ok_or_else(|| down(anyhow::anyhow!("unexpected reply {i:?}"))))
            .collect(),
        other => text(&other)
            .map(|t| vec![t])
            .ok_or_else(|| down(anyhow::anyhow!("unexpected reply {other:?}"))),
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, EngineError> {
    s.parse()
        .map_err(|_| down(anyhow::anyhow!("not a number: {s}")))
}

/// `S|<expires>|1,2,3` or `G|<expires>|<tier>|<qty>`, as the script stores holds.
fn encode(items: &HoldItems, expires: Millis) -> String {
    match items {
        HoldItems::Seats(s) => format!(
            "S|{}|{}",
            expires.0,
            s.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        ),
        HoldItems::Ga { tier, quantity } => format!("G|{}|{tier}|{quantity}", expires.0),
    }
}

fn decode(enc: &str) -> Result<HoldItems, EngineError> {
    let parts: Vec<&str> = enc.split('|').collect();
    match parts.as_slice() {
        ["S", _, seats] => Ok(HoldItems::Seats(
            seats.split(',').map(num).collect::<Result<_, _>>()?,
        )),
        ["G", _, tier, qty] => Ok(HoldItems::Ga {
            tier: num(tier)?,
            quantity: num(qty)?,
        }),
        _ => Err(down(anyhow::anyhow!("bad hold encoding {enc}"))),
    }
}

impl RedisHoldEngine {
    /// `urls`: one `redis://host:port` for a single node, or a comma-separated list of
    /// cluster nodes. `prefix` namespaces every key (tests use one each).
    pub async fn connect(urls: &str, prefix: &str) -> anyhow::Result<Self> {
        let nodes: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let conn = match nodes.as_slice() {
            [] => anyhow::bail!("BOXOFFICE_REDIS_URL is empty"),
            [one] => Conn::Single(redis::Client::open(*one)?.get_connection_manager().await?),
            many => Conn::Cluster(
                redis::cluster::ClusterClient::new(many.to_vec())?
                    .get_async_connection()
                    .await?,
            ),
        };
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            script: Script::new(SCRIPT),
            test_clock: None,
        })
    }

    /// For tests that move time by hand (an app on a manual clock): the scripts read
    /// `clock` instead of Redis's `TIME`, exactly, so a deadline a millisecond away is
    /// a millisecond away. Expiry is still decided inside the scripts, by that one
    /// clock; what a caller passes as `now` still decides nothing. Never for
    /// production.
    pub fn with_test_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.test_clock = Some((clock, TestTime::Exact));
        self
    }

    /// For the conformance suite: the scripts read Redis's own `TIME`, as in
    /// production, shifted on every call by how far `clock` is from this machine's,
    /// so it reads what `clock` reads to within a round trip (the suite's instants
    /// must be far enough apart for that). Never for production.
    pub fn with_shifted_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.test_clock = Some((clock, TestTime::Shifted));
        self
    }

    /// The scripts' clock argument: `+0` (Redis's `TIME`) in production.
    fn clock_arg(&self) -> String {
        let ms = |t| Millis::from_datetime(t).0;
        match &self.test_clock {
            None => "+0".to_owned(),
            Some((c, TestTime::Exact)) => format!("={}", ms(c.now())),
            Some((c, TestTime::Shifted)) => format!("+{}", ms(c.now()) - ms(SystemClock.now())),
        }
    }

    fn keys(&self, ev: &EventId) -> [String; 6] {
        let tag = format!("{}{{{}}}", self.prefix, ev);
        ["meta", "status", "ga", "holds", "deadlines", "loading"].map(|k| format!("{tag}:{k}"))
    }

    fn events_key(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Runs the script: `op` and its arguments (ARGV[3..]); ARGV[2] is the clock
    /// (see [`Self::clock_arg`]).
    async fn run(
        &self,
        ev: &EventId,
        op: &str,
        args: Vec<String>,
    ) -> Result<Vec<String>, EngineError> {
        let mut inv = self.script.prepare_invoke();
        for k in self.keys(ev) {
            inv.key(k);
        }
        inv.arg(op).arg(self.clock_arg());
        for a in args {
            inv.arg(a);
        }
        let v: Value = match self.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
        .map_err(down)?;
        let out = texts(v)?;
        if out.first().map(String::as_str) == Some("not_loaded") {
            return Err(EngineError::EventNotLoaded(ev.clone()));
        }
        Ok(out)
    }

    /// `release` or `confirm`: ends a live hold and returns its items (`None`: it
    /// was not live).
    async fn end_hold(
        &self,
        op: &str,
        event: &EventId,
        hold: &HoldId,
    ) -> Result<Option<HoldItems>, EngineError> {
        match self
            .run(event, op, vec![hold.to_string()])
            .await?
            .as_slice()
        {
            [ok, enc] if ok == "ok" => Ok(Some(decode(enc)?)),
            _ => Ok(None),
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, EngineError> {
        match self.conn.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
        .map_err(down)
    }
}

#[async_trait]
impl HoldEngine for RedisHoldEngine {
    async fn prepare_load(&self, event: &EventId) -> Result<Option<String>, EngineError> {
        let token = format!("{}-{}", std::process::id(), HoldId::new());
        self.run(event, "prepare", vec![token.clone()]).await?;
        Ok(Some(token))
    }

    async fn load_event(
        &self,
        snapshot: InventorySnapshot,
        _now: Millis,
    ) -> Result<(), EngineError> {
        // Every hold of the snapshot goes in, whatever the loader's clock says: the
        // script expires those past due by Redis's clock, the one that decides.
        let inv = snapshot.to_inventory(Millis(i64::MIN));
        let mut args = vec![
            snapshot.load_token.clone().unwrap_or_default(),
            inv.version().to_string(),
            inv.seat_count().to_string(),
            String::from_utf8_lossy(inv.status()).into_owned(),
            inv.ga().len().to_string(),
        ];
        for g in inv.ga() {
            args.extend([
                g.capacity.to_string(),
                g.held.to_string(),
                g.sold.to_string(),
            ]);
        }
        for (id, items, expires) in inv.holds() {
            args.extend([
                id.to_string(),
                encode(items, expires),
                expires.0.to_string(),
            ]);
        }
        let out = self.run(&snapshot.event, "load", args).await?;
        if out.first().map(String::as_str) == Some("stale") {
            return Err(EngineError::StaleSnapshot(snapshot.event));
        }
        // The sweeper's index of loaded events (another slot: not part of the script).
        self.cmd::<i64>(
            redis::cmd("SADD")
                .arg(self.events_key())
                .arg(snapshot.event.as_str()),
        )
        .await?;
        Ok(())
    }

    async fn hold(&self, req: HoldRequest) -> Result<Result<(), HoldRejection>, EngineError> {
        let mut args = vec![req.hold.to_string(), req.expires_at.0.to_string()];
        match &req.items {
            HoldItems::Seats(s) => {
                args.push("S".into());
                args.extend(s.iter().map(u32::to_string));
            }
            HoldItems::Ga { tier, quantity } => {
                args.extend(["G".into(), tier.to_string(), quantity.to_string()]);
            }
        }
        let out = self.run(&req.event, "hold", args).await?;
        Ok(match out.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("taken") => Err(HoldRejection::SeatsUnavailable(
                out[1..].iter().map(|s| num(s)).collect::<Result<_, _>>()?,
            )),
            Some("sold_out") => Err(HoldRejection::SoldOut {
                remaining: num(out.get(1).map_or("0", String::as_str))?,
            }),
            Some("duplicate") => Err(HoldRejection::DuplicateHold),
            _ => Err(HoldRejection::InvalidItems("refused by the engine")),
        })
    }

    async fn release(
        &self,
        event: &EventId,
        hold: &HoldId,
        _now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        self.end_hold("release", event, hold).await
    }

    async fn confirm(
        &self,
        event: &EventId,
        hold: &HoldId,
        _now: Millis,
    ) -> Result<Option<HoldItems>, EngineError> {
        self.end_hold("confirm", event, hold).await
    }

    async fn extend(
        &self,
        event: &EventId,
        hold: &HoldId,
        expires_at: Millis,
        _now: Millis,
    ) -> Result<bool, EngineError> {
        let out = self
            .run(
                event,
                "extend",
                vec![hold.to_string(), expires_at.0.to_string()],
            )
            .await?;
        Ok(out.first().map(String::as_str) == Some("ok"))
    }

    async fn seat_map(&self, event: &EventId, _now: Millis) -> Result<SeatMap, EngineError> {
        let out = self.run(event, "map", vec![]).await?;
        let [_, version, status, ga @ ..] = out.as_slice() else {
            return Err(down(anyhow::anyhow!("short seat map reply")));
        };
        let ga = ga
            .chunks(3)
            .map(|c| {
                Ok(GaCounts {
                    capacity: num(&c[0])?,
                    held: num(&c[1])?,
                    sold: num(&c[2])?,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(SeatMap {
            version: num(version)?,
            status: status.clone().into_bytes(),
            ga,
        })
    }

    async fn seat_map_version(&self, event: &EventId, _now: Millis) -> Result<u64, EngineError> {
        let out = self.run(event, "version", vec![]).await?;
        match out.as_slice() {
            [ok, version] if ok == "ok" => num(version),
            _ => Err(down(anyhow::anyhow!("unexpected version reply {out:?}"))),
        }
    }

    async fn evict(&self, event: &EventId) -> Result<(), EngineError> {
        let mut del = redis::cmd("DEL");
        for k in self.keys(event) {
            del.arg(k);
        }
        self.cmd::<i64>(&del).await?;
        self.cmd::<i64>(
            redis::cmd("SREM")
                .arg(self.events_key())
                .arg(event.as_str()),
        )
        .await?;
        Ok(())
    }

    async fn expire_due(&self, _now: Millis) -> Result<Vec<(EventId, HoldId)>, EngineError> {
        let events: Vec<String> = self
            .cmd(redis::cmd("SMEMBERS").arg(self.events_key()))
            .await?;
        let mut out = Vec::new();
        for e in events {
            let Ok(ev) = EventId::try_from(e) else {
                continue;
            };
            match self.run(&ev, "expire", vec![]).await {
                Ok(ids) => out.extend(
                    ids.into_iter()
                        .skip(1)
                        .filter_map(|h| HoldId::try_from(h).ok())
                        .map(|h| (ev.clone(), h)),
                ),
                // Lost since it was loaded: nothing to expire until it is rebuilt.
                Err(EngineError::EventNotLoaded(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.cmd::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    fn volatile(&self) -> bool {
        true
    }
}

/// The distributed rate limiter: GCRA in a Redis script (`limit.lua`), one key per
/// (class, client), so every node counts against the same allowance. Shares the
/// engine's connection, prefix and (in tests) clock.
pub struct RedisRateLimiter {
    engine: RedisHoldEngine,
    script: Script,
    quotas: std::collections::HashMap<boxoffice_ports::LimitClass, boxoffice_ports::Quota>,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.engine.prefix)
            .field("quotas", &self.quotas)
            .finish()
    }
}

impl RedisHoldEngine {
    /// A rate limiter on this engine's Redis (a class left out, or with a rate of
    /// zero, is not limited).
    pub fn rate_limiter(
        &self,
        quotas: &[(boxoffice_ports::LimitClass, boxoffice_ports::Quota)],
    ) -> RedisRateLimiter {
        RedisRateLimiter {
            engine: RedisHoldEngine {
                conn: self.conn.clone(),
                prefix: self.prefix.clone(),
                script: self.script.clone(),
                test_clock: self.test_clock.clone(),
            },
            script: Script::new(include_str!("limit.lua")),
            quotas: quotas
                .iter()
                .filter(|(_, q)| q.per_minute > 0)
                .copied()
                .collect(),
        }
    }
}

#[async_trait]
impl boxoffice_ports::RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        class: boxoffice_ports::LimitClass,
        key: &str,
    ) -> Result<Option<std::time::Duration>, EngineError> {
        let Some(q) = self.quotas.get(&class) else {
            return Ok(None);
        };
        let interval = q.emission_interval().as_micros() as u64;
        let tolerance = interval * u64::from(q.burst.max(1) - 1);
        let mut inv = self.script.prepare_invoke();
        inv.key(format!(
            "{}rl:{}:{}",
            self.engine.prefix,
            class.as_str(),
            key
        ))
        .arg(self.engine.clock_arg())
        .arg(interval)
        .arg(tolerance);
        let wait: i64 = match self.engine.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
        .map_err(down)?;
        Ok((wait >= 0).then(|| std::time::Duration::from_micros(wait as u64)))
    }
}

/// The distributed waiting room (`room.lua`): one event's counters, joins and
/// sessions under the event's hash tag (one cluster slot), decided in one script per
/// call, on Redis's clock (a test's, when the engine has one). Shares the engine's
/// connection, prefix and clock.
pub struct RedisWaitingRoom {
    engine: RedisHoldEngine,
    script: Script,
}

impl fmt::Debug for RedisWaitingRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWaitingRoom")
            .field("prefix", &self.engine.prefix)
            .finish()
    }
}

impl RedisHoldEngine {
    /// The waiting room on this engine's Redis.
    pub fn waiting_room(&self) -> RedisWaitingRoom {
        RedisWaitingRoom {
            engine: RedisHoldEngine {
                conn: self.conn.clone(),
                prefix: self.prefix.clone(),
                script: self.script.clone(),
                test_clock: self.test_clock.clone(),
            },
            script: Script::new(include_str!("room.lua")),
        }
    }
}

/// A customer as the joins hash keys them: their id's 16 ulid bytes.
fn customer_field(c: &boxoffice_domain::UserId) -> Vec<u8> {
    let s = c.as_str();
    let ulid = s.rsplit('_').next().unwrap_or(s);
    match ulid::Ulid::from_string(&ulid.to_uppercase()) {
        Ok(u) => u.to_bytes().to_vec(),
        Err(_) => s.as_bytes().to_vec(),
    }
}

fn room_args(p: &boxoffice_ports::RoomParams) -> Vec<Vec<u8>> {
    [
        p.admission_interval_ms.to_string(),
        p.max_active.unwrap_or(0).to_string(),
        p.session_ms.to_string(),
        if p.started { "1" } else { "0" }.to_owned(),
        p.seed.to_string(),
    ]
    .map(String::into_bytes)
    .into()
}

fn room_state(out: &[String]) -> Result<boxoffice_ports::RoomState, EngineError> {
    let [joined, drawn, plen, seed, served, next, now, ..] = out else {
        return Err(down(anyhow::anyhow!("unexpected room reply {out:?}")));
    };
    Ok(boxoffice_ports::RoomState {
        joined: num(joined)?,
        draw: (drawn == "1")
            .then(|| -> Result<_, EngineError> {
                Ok(boxoffice_ports::Draw {
                    pre_queue_len: num(plen)?,
                    seed: num(seed)?,
                })
            })
            .transpose()?,
        served: num(served)?,
        next_admission_ms: num(next)?,
        now_ms: num(now)?,
    })
}

impl RedisWaitingRoom {
    async fn run(
        &self,
        ev: &EventId,
        op: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<Vec<String>, EngineError> {
        let tag = format!("{}{{{}}}", self.engine.prefix, ev);
        let mut inv = self.script.prepare_invoke();
        for k in ["room", "room:joins", "room:sessions"] {
            inv.key(format!("{tag}:{k}"));
        }
        inv.arg(op).arg(self.engine.clock_arg());
        for a in args {
            inv.arg(a);
        }
        let v: Value = match self.engine.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
        .map_err(down)?;
        texts(v)
    }
}

#[async_trait]
impl boxoffice_ports::WaitingRoom for RedisWaitingRoom {
    async fn join(
        &self,
        event: &EventId,
        customer: &boxoffice_domain::UserId,
        params: &boxoffice_ports::RoomParams,
    ) -> Result<boxoffice_ports::Joined, EngineError> {
        let mut args = room_args(params);
        args.push(customer_field(customer));
        let out = self.run(event, "join", args).await?;
        let (number, new) = match out.as_slice() {
            [.., number, new] if out.len() == 9 => (num(number)?, new == "1"),
            _ => return Err(down(anyhow::anyhow!("unexpected join reply {out:?}"))),
        };
        Ok(boxoffice_ports::Joined {
            number,
            new,
            state: room_state(&out)?,
        })
    }

    async fn state(
        &self,
        event: &EventId,
        params: &boxoffice_ports::RoomParams,
    ) -> Result<boxoffice_ports::RoomState, EngineError> {
        room_state(&self.run(event, "state", room_args(params)).await?)
    }

    async fn session(&self, event: &EventId, rank: u64) -> Result<Option<i64>, EngineError> {
        let out = self
            .run(event, "session", vec![rank.to_string().into_bytes()])
            .await?;
        out.first().map(|s| num(s)).transpose()
    }

    async fn leave(&self, event: &EventId, rank: u64) -> Result<bool, EngineError> {
        let out = self
            .run(event, "leave", vec![rank.to_string().into_bytes()])
            .await?;
        Ok(out.first().is_some_and(|s| s == "1"))
    }
}
