//! Holds: the sale's hot path.
//!
//! A hold is decided by the engine (atomic, in memory) and then recorded in the
//! store; if recording fails the engine hold is released again, so the store never
//! misses a hold a buyer was told about and the engine never keeps one the store
//! lacks. Releases go the other way (store first): a failure leaves seats held until
//! their deadline, never sold twice. An engine that lost an event is rebuilt from the
//! store before it serves that event again.
//!
//! A rebuild reads the store while other requests may be between the engine's
//! decision and the store's record: their holds are missing from the snapshot, and
//! the rebuilt engine would give their seats to someone else. So a hold is checked
//! again in the engine after it is recorded whenever a rebuild may have missed it:
//! always with an engine other nodes rebuild too (Redis), and with the in-process
//! engine when this node rebuilt the event since the hold was decided.

use boxoffice_domain::{
    inventory::{GaCounts, AVAILABLE},
    EventStatus, Hold, HoldId, HoldItems, HoldRejection, HoldSelection, HoldStatus, Millis, Money,
    SeatId, SeatIx, TierId, ValidationError,
};
use boxoffice_ports::{
    EngineError, HoldRequest, InventorySnapshot, ReleaseOutcome, SnapshotHold, StoreError, Write,
    Written,
};
use serde::Deserialize;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::catalog::CachedEvent;
use crate::engine_sync::Follow;
use crate::{App, AppError, Principal};

/// A hold request as a buyer sends it: seats, or a GA tier and a quantity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldAsk {
    #[serde(default)]
    pub seats: Option<Vec<String>>,
    #[serde(default)]
    pub tier_id: Option<String>,
    #[serde(default)]
    pub quantity: Option<i64>,
    #[serde(default)]
    pub best_available: Option<BestAvailableAsk>,
}

/// `{"best_available": {"quantity": n, "tier_id"?: "…"}}`: the best `n` seats the
/// event has (of that seated tier), chosen by the server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestAvailableAsk {
    pub quantity: i64,
    #[serde(default)]
    pub tier_id: Option<String>,
}

/// A hold made for a waitlist offer: its id (named by the entry's claim before it
/// is made) and how long it lasts (the offer's validity, not the event's hold TTL).
#[derive(Debug, Clone)]
pub(crate) struct OfferHold {
    pub(crate) id: HoldId,
    pub(crate) ttl_seconds: u32,
}

/// Tries at choosing best-available seats and holding them: a choice lost to a
/// faster buyer is made again from the fresh map, this many times at most.
const BEST_AVAILABLE_TRIES: u32 = 12;

/// A seat whose status the engine and the store see differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatDifference {
    pub seat_id: SeatId,
    /// `A`, `H` or `S`.
    pub engine: char,
    pub store: char,
}

/// What [`App::engine_audit`] found: nothing, when engine and store agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineAudit {
    pub seats: Vec<SeatDifference>,
    /// GA tiers whose remaining count differs: (tier, engine's, store's).
    pub ga: Vec<(TierId, u32, u32)>,
}

/// A hold and what it is now.
#[derive(Debug, Clone)]
pub struct HoldView {
    pub hold: Hold,
    pub status: HoldStatus,
}

/// The live seat map: statuses in layout order and GA remaining per tier.
#[derive(Debug, Clone)]
pub struct LiveSeatMap {
    pub version: u64,
    pub status: Vec<u8>,
    pub ga: Vec<(TierId, GaCounts)>,
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid(ValidationError::new(field, message))
}

impl App {
    pub async fn create_hold(
        &self,
        who: &Principal,
        event_id: &str,
        ask: HoldAsk,
    ) -> Result<HoldView, AppError> {
        let ev = self.visible_event(Some(who), event_id).await?;
        let now = self.clock.now();
        let event = ev.event();
        if !event.sale_open(now) {
            return Err(AppError::NotOnSale);
        }
        let max = event.max_tickets_per_order;
        let (selection, items, total) = match ask {
            HoldAsk {
                seats: None,
                tier_id: None,
                quantity: None,
                best_available: Some(best),
            } => return self.best_available_hold(who, &ev, best, None).await,
            HoldAsk {
                seats: Some(seats),
                tier_id: None,
                quantity: None,
                best_available: None,
            } => {
                if seats.is_empty() {
                    return Err(invalid("seats", "at least one seat"));
                }
                if seats.len() as u32 > max {
                    return Err(invalid("seats", format!("at most {max} seats per order")));
                }
                let table = self.seat_table(&ev).await?;
                let mut ids = Vec::with_capacity(seats.len());
                let mut ixs = Vec::with_capacity(seats.len());
                let mut seen = HashSet::new();
                let mut total = Money::zero(event.currency);
                for s in seats {
                    let unknown = || invalid("seats", format!("{s} is not a seat of this event"));
                    let id = SeatId::try_from(s.as_str()).map_err(|_| unknown())?;
                    let &ix = table.index.get(&id).ok_or_else(unknown)?;
                    if !seen.insert(ix) {
                        return Err(invalid("seats", format!("{s} is listed twice")));
                    }
                    let price = ev
                        .price_of(&table.layout[ix as usize].tier_id)
                        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("seat without tier")))?;
                    total = total
                        .plus(price)
                        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("total overflow")))?;
                    ids.push(id);
                    ixs.push(ix);
                }
                (HoldSelection::Seats(ids), HoldItems::Seats(ixs), total)
            }
            HoldAsk {
                seats: None,
                tier_id: Some(tier),
                quantity: Some(q),
                best_available: None,
            } => {
                let (ix, tier) = TierId::try_from(tier.as_str())
                    .ok()
                    .and_then(|t| event.ga_tier(&t))
                    .ok_or_else(|| {
                        invalid("tier_id", "not a general-admission tier of this event")
                    })?;
                if q <= 0 || q > i64::from(max) {
                    return Err(invalid("quantity", format!("must be between 1 and {max}")));
                }
                let q = q as u32;
                let total = tier
                    .price
                    .times(q)
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("total overflow")))?;
                (
                    HoldSelection::Ga {
                        tier_id: tier.id.clone(),
                        quantity: q,
                    },
                    HoldItems::Ga {
                        tier: ix as u16,
                        quantity: q,
                    },
                    total,
                )
            }
            _ => {
                return Err(invalid(
                    "seats",
                    "send either seats, tier_id with quantity, or best_available",
                ))
            }
        };
        self.place_hold(who, &ev, selection, items, total, None)
            .await
    }

    /// Best available: choose from the live map and hold the choice. The engine
    /// decides every hold atomically, so two buyers never get one seat; a choice
    /// lost to a faster buyer is made again from the fresh map, each try choosing
    /// at random among more of the good choices (1, 4, 16, … 256), so that a crowd
    /// asking at once spreads over the hall instead of colliding on the best block.
    pub(crate) async fn best_available_hold(
        &self,
        who: &Principal,
        ev: &Arc<CachedEvent>,
        ask: BestAvailableAsk,
        offer: Option<&OfferHold>,
    ) -> Result<HoldView, AppError> {
        let event = ev.event();
        let max = event.max_tickets_per_order;
        if ask.quantity <= 0 || ask.quantity > i64::from(max) {
            return Err(invalid(
                "best_available.quantity",
                format!("must be between 1 and {max}"),
            ));
        }
        let n = ask.quantity as usize;
        let tier = match &ask.tier_id {
            None => None,
            Some(t) => Some(
                TierId::try_from(t.as_str())
                    .ok()
                    .filter(|t| event.tier(t).is_some())
                    .ok_or_else(|| {
                        invalid("best_available.tier_id", "not a seated tier of this event")
                    })?,
            ),
        };
        let table = self.seat_table(ev).await?;
        let eligible = |ix: SeatIx| {
            tier.as_ref()
                .is_none_or(|t| &table.layout[ix as usize].tier_id == t)
        };
        let mut lost = Vec::new();
        for attempt in 0..BEST_AVAILABLE_TRIES {
            let map = self.live_seat_map(ev).await?;
            let window = 1usize << (2 * attempt).min(8);
            let (choices, level) = table.pick.candidates(&map.status, eligible, n, window);
            if choices.is_empty() {
                let remaining = (0..map.status.len() as SeatIx)
                    .filter(|&ix| map.status[ix as usize] == AVAILABLE && eligible(ix))
                    .count() as u32;
                return Err(AppError::SoldOut { remaining });
            }
            let pick = &choices[rand::Rng::gen_range(&mut rand::thread_rng(), 0..choices.len())];
            let mut ids = Vec::with_capacity(n);
            let mut total = Money::zero(event.currency);
            for &ix in pick {
                let seat = &table.layout[ix as usize];
                let price = ev
                    .price_of(&seat.tier_id)
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("seat without tier")))?;
                total = total
                    .plus(price)
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("total overflow")))?;
                ids.push(seat.seat.id.clone());
            }
            let selection = HoldSelection::Seats(ids);
            let items = HoldItems::Seats(pick.clone());
            match self
                .place_hold(who, ev, selection, items, total, offer)
                .await
            {
                Err(AppError::SeatsUnavailable(taken)) => {
                    metrics::counter!("boxoffice_best_available_retries_total").increment(1);
                    lost = taken;
                }
                other => {
                    if other.is_ok() {
                        metrics::counter!("boxoffice_best_available_total", "level" => level.as_str())
                            .increment(1);
                    }
                    return other;
                }
            }
        }
        // The crowd was faster every time: what the last try lost.
        Err(AppError::SeatsUnavailable(lost))
    }

    /// Holds a selection already checked against the event: the engine decides,
    /// the store records (see the module docs).
    pub(crate) async fn place_hold(
        &self,
        who: &Principal,
        ev: &Arc<CachedEvent>,
        selection: HoldSelection,
        items: HoldItems,
        total: Money,
        offer: Option<&OfferHold>,
    ) -> Result<HoldView, AppError> {
        let now = self.clock.now();
        let event = ev.event();
        let ttl = offer.map_or(event.hold_ttl_seconds, |o| o.ttl_seconds);

        let cap = event.max_tickets_per_customer;
        if let Some(limit) = cap {
            // Over the cap on its own: no need to ask the engine. (Whether it fits
            // with what the customer has is decided by the store, atomically.)
            if selection.ticket_count() > limit {
                return Err(AppError::CustomerLimitReached { limit });
            }
        }
        let hold = Hold {
            id: offer.map_or_else(HoldId::new, |o| o.id.clone()),
            event_id: event.id.clone(),
            customer_id: who.user_id.clone(),
            status: HoldStatus::Active,
            selection,
            total,
            expires_at: now + time::Duration::seconds(i64::from(ttl)),
            created_at: now,
        };
        // The audit record, queued in the hold's own transaction: who, from where,
        // and the tiers it spans (what analytics counts of it).
        let (tiers, seats) = match &hold.selection {
            HoldSelection::Seats(ids) => {
                let table = self.seat_table(ev).await?;
                let tiers = crate::ledger::tiers_json(
                    ids.iter()
                        .filter_map(|s| table.index.get(s))
                        .map(|&i| table.layout[i as usize].tier_id.as_str()),
                );
                (tiers, serde_json::json!(ids))
            }
            HoldSelection::Ga { tier_id, quantity } => (
                serde_json::json!({ tier_id.as_str(): quantity }),
                serde_json::Value::Null,
            ),
        };
        let record = self.audit_record(
            who,
            "hold.made",
            hold.id.as_str(),
            Some(&event.id),
            None,
            Some(serde_json::json!({
                "status": "active",
                "seats": seats,
                "tiers": tiers,
                "total": hold.total,
                "expires_at": hold.expires_at.unix_timestamp(),
            })),
        );
        let hold_write = self.audited(Write::Hold(hold.clone()), record);
        let req = HoldRequest {
            event: event.id.clone(),
            hold: hold.id.clone(),
            items,
            expires_at: Millis::from_datetime(hold.expires_at),
            now: Millis::from_datetime(now),
        };
        // Read before the engine decides: a rebuild after this may miss the hold.
        let epoch = ev.engine_epoch.load(Ordering::SeqCst);
        // The engine's decision, the record and, if the record fails, the
        // compensation run on their own task: a request dropped mid-way (a client
        // gone, a timeout) must not leave the engine holding seats the store never
        // heard of — even when the engine (Redis) decided and its answer was lost.
        let decided = self
            .detached_with_engine(ev, || {
                let (engine, writer) = (self.engine.clone(), self.writer.clone());
                let follower = self.follower.clone();
                let (req, hold_write) = (req.clone(), hold_write.clone());
                async move {
                    if let Err(rejection) = engine.hold(req.clone()).await? {
                        return Ok(Err(rejection));
                    }
                    let recorded = writer.write(hold_write).await;
                    if recorded.is_err() {
                        // Nobody was told about this hold: give the seats back.
                        follower
                            .follow(&req.event, &req.hold, Follow::Release)
                            .await;
                    }
                    Ok(Ok(recorded))
                }
            })
            .await?;
        match decided {
            Ok(Err(StoreError::Conflict {
                constraint: "customer_limit",
            })) => {
                metrics::counter!("boxoffice_holds_conflicted_total", "reason" => "customer_limit_reached").increment(1);
                // The cached cap may be older than the store's: say the one that refused
                // if this node knows it, else the store's current one.
                let limit = match cap {
                    Some(l) => l,
                    None => self
                        .store
                        .event(&event.id)
                        .await?
                        .and_then(|r| r.event.max_tickets_per_customer)
                        .unwrap_or(0),
                };
                return Err(AppError::CustomerLimitReached { limit });
            }
            Ok(Err(StoreError::Conflict {
                constraint: "event_cancelled",
            })) => {
                // Cancelled on another node since this node read the event: the
                // store refused it (and the engine hold was given back).
                self.forget_cached_event(&event.id);
                return Err(AppError::NotOnSale);
            }
            Ok(recorded) => {
                recorded?;
            }
            Err(HoldRejection::SeatsUnavailable(ixs)) => {
                metrics::counter!("boxoffice_holds_conflicted_total", "reason" => "seats_unavailable").increment(1);
                let table = self.seat_table(ev).await?;
                let taken = ixs
                    .into_iter()
                    .map(|i| table.layout[i as usize].seat.id.clone())
                    .collect();
                return Err(AppError::SeatsUnavailable(taken));
            }
            Err(HoldRejection::SoldOut { remaining }) => {
                metrics::counter!("boxoffice_holds_conflicted_total", "reason" => "sold_out")
                    .increment(1);
                return Err(AppError::SoldOut { remaining });
            }
            Err(e) => return Err(AppError::Internal(anyhow::anyhow!("engine refused: {e:?}"))),
        }
        if self.engine.volatile() || ev.engine_epoch.load(Ordering::SeqCst) != epoch {
            self.confirm_engine_kept(ev, &hold, &req).await?;
        }
        metrics::counter!("boxoffice_holds_created_total").increment(1);
        Ok(HoldView {
            status: HoldStatus::Active,
            hold,
        })
    }

    /// The engine may have lost the hold between granting it and the store recording
    /// it (Redis wiped, or either engine evicted the event, and rebuilt from a store
    /// that did not have it yet).
    /// Acknowledge only what both have now: grant it again if it is gone (the store
    /// has it, so a rebuild includes it), or, if its seats went to someone else in
    /// that instant, take it back from the store and refuse.
    async fn confirm_engine_kept(
        &self,
        ev: &CachedEvent,
        hold: &Hold,
        req: &HoldRequest,
    ) -> Result<(), AppError> {
        let now = Millis::from_datetime(self.clock.now());
        let kept = self
            .with_engine(ev, || {
                self.engine
                    .extend(&req.event, &req.hold, req.expires_at, now)
            })
            .await?;
        if kept {
            return Ok(());
        }
        metrics::counter!("boxoffice_holds_regranted_total").increment(1);
        let again = HoldRequest { now, ..req.clone() };
        match self
            .with_engine(ev, || self.engine.hold(again.clone()))
            .await?
        {
            Ok(()) | Err(HoldRejection::DuplicateHold) => Ok(()),
            Err(rejection) => {
                self.writer
                    .release(&hold.id, self.clock.now(), None)
                    .await?;
                tracing::warn!(hold = %hold.id, ?rejection, "hold lost by the engine and taken meanwhile");
                match rejection {
                    HoldRejection::SoldOut { remaining } => Err(AppError::SoldOut { remaining }),
                    HoldRejection::SeatsUnavailable(ixs) => {
                        let table = self.seat_table(ev).await?;
                        Err(AppError::SeatsUnavailable(
                            ixs.iter()
                                .map(|&i| table.layout[i as usize].seat.id.clone())
                                .collect(),
                        ))
                    }
                    other => Err(AppError::Internal(anyhow::anyhow!(
                        "re-grant refused: {other:?}"
                    ))),
                }
            }
        }
    }

    pub(crate) async fn owned_hold_record(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Hold, AppError> {
        let id = HoldId::try_from(id).map_err(|_| AppError::NotFound)?;
        match self.store.hold(&id).await? {
            Some(h) if who.may_see(&h.customer_id) => Ok(h),
            // Someone else's hold does not exist, as far as this caller can tell.
            _ => Err(AppError::NotFound),
        }
    }

    pub async fn hold(&self, who: &Principal, id: &str) -> Result<HoldView, AppError> {
        let hold = self.owned_hold_record(who, id).await?;
        Ok(HoldView {
            status: hold.status_at(self.clock.now()),
            hold,
        })
    }

    /// Releases a hold; its seats are available at once. Releasing twice is fine.
    pub async fn release_hold(&self, who: &Principal, id: &str) -> Result<(), AppError> {
        let hold = self.owned_hold_record(who, id).await?;
        let now = self.clock.now();
        // Store, then engine, on a task of its own: a dropped request must not leave
        // the seats held in the engine after the store released them.
        let (follower, writer) = (self.follower.clone(), self.writer.clone());
        let (eid, hid) = (hold.event_id.clone(), hold.id.clone());
        let record = self.audit_record(
            who,
            "hold.released",
            hold.id.as_str(),
            Some(&hold.event_id),
            Some(serde_json::json!({"status": "active"})),
            Some(serde_json::json!({"status": "released"})),
        );
        let released = self
            .detached
            .spawn(async move {
                let out = writer.release(&hid, now, Some(record)).await?;
                // Already released: a retry, perhaps of a release whose engine call
                // failed; the engine follows the store either way (it is idempotent).
                if matches!(
                    out,
                    ReleaseOutcome::Released | ReleaseOutcome::AlreadyReleased
                ) {
                    follower.follow(&eid, &hid, Follow::Release).await;
                }
                Ok::<_, AppError>(out)
            })
            .await
            .map_err(|e| AppError::Internal(e.into()))??;
        match released {
            ReleaseOutcome::Released => {
                metrics::counter!("boxoffice_holds_released_total").increment(1);
                self.nudge_waitlist();
                Ok(())
            }
            ReleaseOutcome::AlreadyReleased => Ok(()),
            ReleaseOutcome::Expired => Err(AppError::HoldExpired),
            ReleaseOutcome::Converted => Err(AppError::HoldConverted),
            ReleaseOutcome::NotFound => Err(AppError::NotFound),
        }
    }

    /// The live seat map of an event already looked up.
    pub async fn live_seat_map(&self, ev: &CachedEvent) -> Result<LiveSeatMap, AppError> {
        if ev.event().status == EventStatus::Draft {
            return self.draft_seat_map(ev).await;
        }
        let now = Millis::from_datetime(self.clock.now());
        let id = &ev.event().id;
        let map = self
            .with_engine(ev, || self.engine.seat_map(id, now))
            .await?;
        let ga = ev
            .event()
            .ga_tiers
            .iter()
            .zip(map.ga)
            .map(|(t, c)| (t.id.clone(), c))
            .collect();
        Ok(LiveSeatMap {
            version: map.version,
            status: map.status,
            ga,
        })
    }

    /// The version the live seat map has now, without reading the map: enough to
    /// answer a conditional request, or to tell that an encoded copy is still current.
    pub async fn seat_map_version(
        &self,
        who: Option<&Principal>,
        event_id: &str,
    ) -> Result<(Arc<CachedEvent>, u64), AppError> {
        let ev = self.visible_event(who, event_id).await?;
        let version = self.live_seat_map_version(&ev).await?;
        Ok((ev, version))
    }

    /// The version [`App::live_seat_map`] would report now, for an event already
    /// looked up (a draft's never moves: 0).
    pub async fn live_seat_map_version(&self, ev: &CachedEvent) -> Result<u64, AppError> {
        if ev.event().status == EventStatus::Draft {
            return Ok(0);
        }
        let now = Millis::from_datetime(self.clock.now());
        let id = &ev.event().id;
        self.with_engine(ev, || self.engine.seat_map_version(id, now))
            .await
    }

    /// A draft's seat map, from its layout alone: a draft never had a hold (it
    /// can only go on sale, never come back), so everything is available, and
    /// reading it must not load the event into the hold engine (drafts would
    /// otherwise take engine memory for anyone who reads them).
    async fn draft_seat_map(&self, ev: &CachedEvent) -> Result<LiveSeatMap, AppError> {
        let table = self.seat_table(ev).await?;
        Ok(LiveSeatMap {
            version: 0,
            status: vec![boxoffice_domain::inventory::AVAILABLE; table.layout.len()],
            ga: ev
                .event()
                .ga_tiers
                .iter()
                .map(|t| {
                    (
                        t.id.clone(),
                        GaCounts {
                            capacity: t.capacity,
                            held: 0,
                            sold: 0,
                        },
                    )
                })
                .collect(),
        })
    }

    /// Runs an engine call; if the engine does not have the event, loads it from the
    /// store and runs the call again. An engine that keeps losing the event (Redis
    /// being flushed over and over) gets three tries, then the call fails as unavailable.
    pub(crate) async fn with_engine<T, F, Fut>(
        &self,
        ev: &CachedEvent,
        call: F,
    ) -> Result<T, AppError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        for _ in 0..3 {
            match call().await {
                Err(EngineError::EventNotLoaded(_)) => self.load_into_engine(ev).await?,
                other => return Ok(other?),
            }
        }
        Err(AppError::Unavailable(anyhow::anyhow!(
            "the hold engine lost event {} three times in a row",
            ev.event().id
        )))
    }

    /// Runs `work` (engine calls, then store writes) on a detached task, which
    /// finishes whatever happens to the request that started it; if the engine does
    /// not have the event, loads it from the store and runs `work` again.
    pub(crate) async fn detached_with_engine<T, F, Fut>(
        &self,
        ev: &CachedEvent,
        work: F,
    ) -> Result<T, AppError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
        T: Send + 'static,
    {
        for _ in 0..3 {
            match self.detached.spawn(work()).await {
                Ok(Err(EngineError::EventNotLoaded(_))) => self.load_into_engine(ev).await?,
                Ok(other) => return Ok(other?),
                Err(e) => return Err(AppError::Internal(e.into())),
            }
        }
        Err(AppError::Unavailable(anyhow::anyhow!(
            "the hold engine lost event {} three times in a row",
            ev.event().id
        )))
    }

    /// Rebuilds the engine's state of one event from the store.
    pub async fn load_into_engine(&self, ev: &CachedEvent) -> Result<(), AppError> {
        let _one_at_a_time = ev.engine_load.lock().await;
        // Loaded by the caller we waited for: a crowd that found the event missing
        // does not read the store once each.
        let now = Millis::from_datetime(self.clock.now());
        if self
            .engine
            .seat_map_version(&ev.event().id, now)
            .await
            .is_ok()
        {
            return Ok(());
        }
        for attempt in 0..8u32 {
            match self.load_once(ev).await {
                // The engine lost state, or the store committed a change the engine
                // could not follow, while we read the store: read it again, backing
                // off a little (a burst of follow-ups, after a restart, passes).
                Err(AppError::Unavailable(e))
                    if e.downcast_ref::<EngineError>()
                        .is_some_and(|e| matches!(e, EngineError::StaleSnapshot(_))) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(2 << attempt)).await;
                    continue;
                }
                other => return other,
            }
        }
        Err(AppError::Unavailable(anyhow::anyhow!(
            "the hold engine kept losing event {}",
            ev.event().id
        )))
    }

    /// The engine state of an event as the store has it at `now`.
    async fn snapshot(
        &self,
        ev: &CachedEvent,
        load_token: Option<String>,
        now: time::OffsetDateTime,
    ) -> Result<InventorySnapshot, AppError> {
        let event = ev.event();
        let table = self.seat_table(ev).await?;
        let stored = self.store.inventory(&event.id, now).await?;
        let seat_ix = |id: &SeatId| table.index.get(id).copied();
        let ga_ix = |id: &TierId| event.ga_tier(id).map(|(i, _)| i as u16);
        let holds = stored
            .live_holds
            .iter()
            .filter_map(|h| {
                let items = match &h.selection {
                    HoldSelection::Seats(s) => {
                        HoldItems::Seats(s.iter().map(seat_ix).collect::<Option<_>>()?)
                    }
                    HoldSelection::Ga { tier_id, quantity } => HoldItems::Ga {
                        tier: ga_ix(tier_id)?,
                        quantity: *quantity,
                    },
                };
                Some(SnapshotHold {
                    id: h.id.clone(),
                    items,
                    expires_at: Millis::from_datetime(h.expires_at),
                })
            })
            .collect::<Vec<_>>();
        let now_ms = Millis::from_datetime(now);
        Ok(InventorySnapshot {
            event: event.id.clone(),
            seat_count: table.layout.len(),
            ga_capacities: event.ga_tiers.iter().map(|t| t.capacity).collect(),
            sold_seats: stored.sold_seats.iter().filter_map(seat_ix).collect(),
            ga_sold: stored.ga_sold,
            // Microseconds since the epoch: above any version an earlier process
            // served, unless it changed the event more than a million times a second.
            base_version: (now_ms.0.max(0) as u64) * 1000,
            holds,
            load_token,
        })
    }

    /// Where the hold engine and the store disagree about an event, seat by seat and
    /// GA tier by tier (empty lists: they agree). Meant for a quiet moment (the end
    /// of a sale, a test): it first lets detached writes finish, but a sale still
    /// running between its two reads shows as a difference.
    pub async fn engine_audit(
        &self,
        who: &Principal,
        event_id: &str,
    ) -> Result<EngineAudit, AppError> {
        let ev = self.event(event_id).await?;
        who.require_operator_view(ev.event())?;
        self.settle().await;
        let now = self.clock.now();
        let now_ms = Millis::from_datetime(now);
        let id = ev.event().id.clone();
        let engine = self
            .with_engine(&ev, || self.engine.seat_map(&id, now_ms))
            .await?;
        let store = self.snapshot(&ev, None, now).await?.to_inventory(now_ms);
        let table = self.seat_table(&ev).await?;
        let seats = engine
            .status
            .iter()
            .zip(store.status())
            .enumerate()
            .filter(|(_, (e, s))| e != s)
            .map(|(i, (&e, &s))| SeatDifference {
                seat_id: table.layout[i].seat.id.clone(),
                engine: e as char,
                store: s as char,
            })
            .collect();
        let ga = ev
            .event()
            .ga_tiers
            .iter()
            .zip(engine.ga.iter().zip(store.ga()))
            .filter(|(_, (e, s))| e.remaining() != s.remaining())
            .map(|(t, (e, s))| (t.id.clone(), e.remaining(), s.remaining()))
            .collect();
        Ok(EngineAudit { seats, ga })
    }

    async fn load_once(&self, ev: &CachedEvent) -> Result<(), AppError> {
        let event = ev.event();
        // Before the snapshot is read: whatever the engine decided before this and
        // the store records after the read is missing from the rebuild, and checks.
        ev.engine_epoch.fetch_add(1, Ordering::SeqCst);
        // Before the snapshot is read: a loss after this point makes the load refuse it.
        let load_token = self.engine.prepare_load(&event.id).await?;
        let now = self.clock.now();
        let snapshot = self.snapshot(ev, load_token, now).await?;
        let now_ms = Millis::from_datetime(now);
        tracing::info!(event = %event.id, holds = snapshot.holds.len(), sold = snapshot.sold_seats.len(), "loading event into the hold engine");
        self.engine
            .load_event(snapshot, now_ms)
            .await
            .map_err(|e| match e {
                e @ EngineError::StaleSnapshot(_) => AppError::Unavailable(e.into()),
                e => e.into(),
            })?;
        metrics::counter!("boxoffice_engine_rebuilds_total").increment(1);
        Ok(())
    }

    /// Expires due holds in the engine and records expiries in the store.
    pub async fn sweep_once(&self) -> Result<u64, AppError> {
        let now = self.clock.now();
        let expired = self.engine.expire_due(Millis::from_datetime(now)).await?;
        metrics::counter!("boxoffice_holds_expired_total").increment(expired.len() as u64);
        match self.writer.write(Write::ExpireHolds { now }).await? {
            Written::Expired(n) => Ok(n),
            w => Err(AppError::Internal(anyhow::anyhow!("expiry answered {w:?}"))),
        }
    }

    /// Runs the sweeper until `shutdown` is cancelled.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.settings.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = app.sweep_once().await {
                            tracing::warn!(error = ?e, "sweep failed");
                        }
                    }
                }
            }
        })
    }
}
