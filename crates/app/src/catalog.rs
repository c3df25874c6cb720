//! Venues and events: organizer writes, public reads, and the in-memory catalogue
//! cache that keeps the hold path off the database.
//!
//! An event's seats and tiers never change after creation, so its seat table is
//! loaded once and kept. Its sale settings (status, window) can change on any node,
//! so they are re-read when older than `catalog_refresh`.

use boxoffice_domain::best_available::PickRows;
use boxoffice_domain::{
    Event, EventDetails, EventId, EventStatus, Money, NewEvent, SeatId, TierId, Venue, VenueId,
    VenueSpec,
};
use boxoffice_ports::{EventRecord, EventSearch, LayoutSeat};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, OnceCell};

use crate::{App, AppError, Principal};

/// A change of an event's details: `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct DetailsChange {
    pub city: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

impl DetailsChange {
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.category.is_none() && self.description.is_none()
    }
}

/// An event's seats in layout order, and the lookups the hold path needs.
#[derive(Debug)]
pub struct SeatTable {
    pub layout: Vec<LayoutSeat>,
    pub index: HashMap<SeatId, u32>,
    /// The rows, nearest the stage first, for best-available choices.
    pub pick: PickRows,
}

impl SeatTable {
    fn new(layout: Vec<LayoutSeat>) -> Self {
        let index = layout
            .iter()
            .enumerate()
            .map(|(i, s)| (s.seat.id.clone(), i as u32))
            .collect();
        let pick = PickRows::new(layout.iter().map(|s| {
            (
                s.seat.section.as_str(),
                s.seat.row.as_str(),
                s.seat.x,
                s.seat.y,
            )
        }));
        Self {
            layout,
            index,
            pick,
        }
    }
}

/// An event as the cache holds it.
#[derive(Debug)]
pub struct CachedEvent {
    pub record: EventRecord,
    fetched_at: Instant,
    seats: Arc<OnceCell<Arc<SeatTable>>>,
    /// Serialises loading this event into the hold engine, so a burst of first
    /// requests reads the store once.
    pub(crate) engine_load: Arc<Mutex<()>>,
    /// Counts this node's rebuilds of the event in the hold engine. A hold or a
    /// checkout that the engine decided before a rebuild, and the store recorded
    /// after the rebuild read its snapshot, is missing from the rebuilt engine: the
    /// change of this count tells it to check (see `holds.rs`).
    pub(crate) engine_epoch: Arc<AtomicU64>,
}

impl CachedEvent {
    pub fn event(&self) -> &Event {
        &self.record.event
    }

    pub(crate) fn price_of(&self, tier: &TierId) -> Option<Money> {
        self.event().tier(tier).map(|t| t.price)
    }
}

/// This node's copies of the catalogue: events by id, and the public answers to
/// searches (cache-aside: a miss reads the store and keeps the answer). Both live
/// `catalog_refresh` at most, and any catalogue change made through this node
/// drops them at once; a change made on another node is seen here within
/// `catalog_refresh`.
#[derive(Debug)]
pub(crate) struct Catalog {
    events: RwLock<HashMap<EventId, Arc<CachedEvent>>>,
    /// Keyed by the whole search (filters, cursor, page size), public answers
    /// only: an answer with drafts depends on who asks.
    searches: moka::sync::Cache<String, Arc<Vec<EventRecord>>>,
}

/// Most distinct searches kept (each a page of at most 101 events).
const MAX_CACHED_SEARCHES: u64 = 10_000;

impl Catalog {
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        Self {
            events: RwLock::default(),
            searches: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED_SEARCHES)
                .time_to_live(ttl)
                .build(),
        }
    }
}

impl App {
    /// A venue of the caller's organization (an admin may name another).
    pub async fn create_venue(&self, who: &Principal, spec: VenueSpec) -> Result<Venue, AppError> {
        who.require_catalogue_writer()?;
        let org = who.org_for_new_venue(spec.org_id.clone())?;
        if self.store.org(&org).await?.is_none() {
            return Err(
                boxoffice_domain::ValidationError::new("org_id", "no such organization").into(),
            );
        }
        let (mut venue, seats) = spec.build(self.clock.now())?;
        venue.org_id = org;
        self.store.create_venue(&venue, &seats).await?;
        tracing::info!(venue = %venue.id, seats = seats.len(), "venue created");
        self.audit_action(
            who,
            "venue.created",
            venue.id.as_str(),
            None,
            serde_json::json!({"name": venue.name, "org_id": venue.org_id, "seats": seats.len()}),
        )
        .await;
        Ok(venue)
    }

    /// True for exactly one caller, across all nodes, per `what`.
    pub async fn claim_once(&self, what: &str) -> Result<bool, AppError> {
        Ok(self.store.claim_once(what).await?)
    }

    pub async fn venue(&self, id: &str) -> Result<Venue, AppError> {
        let id = VenueId::try_from(id).map_err(|_| AppError::NotFound)?;
        self.store.venue(&id).await?.ok_or(AppError::NotFound)
    }

    /// The venues `who` manages (or, for ops and admins, all).
    pub async fn venues(&self, who: &Principal) -> Result<Vec<Venue>, AppError> {
        if !who.may_list_venues() {
            return Err(AppError::Forbidden);
        }
        let mut all = self.store.list_venues().await?;
        all.retain(|v| who.may_see_venue_listed(v));
        Ok(all)
    }

    pub async fn create_event(
        &self,
        who: &Principal,
        new: NewEvent,
    ) -> Result<EventRecord, AppError> {
        who.require_catalogue_writer()?;
        let venue =
            self.store.venue(&new.venue_id).await?.ok_or_else(|| {
                boxoffice_domain::ValidationError::new("venue_id", "no such venue")
            })?;
        who.require_manage_venue(&venue)?;
        let seats = self.store.venue_seats(&venue.id).await?;
        let (event, event_seats) = new.build(&venue, &seats, self.clock.now())?;
        self.store.create_event(&event, &event_seats).await?;
        tracing::info!(event = %event.id, seats = event_seats.len(), "event created");
        self.audit_action(who, "event.created", event.id.as_str(), Some(&event.id),
            serde_json::json!({"name": event.name, "venue_id": event.venue_id, "status": event.status.as_str(), "seats": event_seats.len()})).await;
        Ok(EventRecord {
            event,
            seat_count: event_seats.len() as u32,
        })
    }

    pub async fn set_event_status(
        &self,
        who: &Principal,
        id: &str,
        to: EventStatus,
    ) -> Result<EventRecord, AppError> {
        who.require_catalogue_writer()?;
        if to == EventStatus::Cancelled {
            return self.cancel_event(who, id).await;
        }
        let id = EventId::try_from(id).map_err(|_| AppError::NotFound)?;
        let current = self.store.event(&id).await?.ok_or(AppError::NotFound)?;
        who.require_manage_event(&current.event)?;
        let from = current.event.status;
        if from == EventStatus::Cancelled {
            // Final; the store refuses it too (a cancellation racing this PATCH).
            return Err(AppError::Conflict {
                constraint: "event_cancelled",
            });
        }
        if !from.can_become(to) {
            return Err(AppError::InvalidTransition { from, to });
        }
        self.store
            .set_event_status(&id, to, self.clock.now())
            .await?;
        self.forget_cached_event(&id);
        tracing::info!(event = %id, from = from.as_str(), to = to.as_str(), "event status changed");
        self.audit_action(
            who,
            "event.status_changed",
            id.as_str(),
            Some(&id),
            serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
        )
        .await;
        self.store.event(&id).await?.ok_or(AppError::NotFound)
    }

    /// Drops this node's copy of the event and every cached search answer (the
    /// event may enter or leave any of them): the next use reads the store.
    pub(crate) fn forget_cached_event(&self, id: &EventId) {
        self.catalog.events.write().remove(id);
        self.catalog.searches.invalidate_all();
    }

    /// Sets or (with `None`) lifts the event's per-buyer cap. It binds holds recorded
    /// from now on; tickets a customer already has are kept even above a lower cap.
    pub async fn set_event_customer_limit(
        &self,
        who: &Principal,
        id: &str,
        cap: Option<u32>,
    ) -> Result<EventRecord, AppError> {
        who.require_catalogue_writer()?;
        let id = self.managed_event(who, id).await?;
        boxoffice_domain::check_max_tickets_per_customer(cap)?;
        self.store
            .set_event_customer_limit(&id, cap, self.clock.now())
            .await?;
        self.forget_cached_event(&id);
        tracing::info!(event = %id, ?cap, "event's per-customer cap changed");
        self.audit_action(
            who,
            "event.customer_limit_changed",
            id.as_str(),
            Some(&id),
            serde_json::json!({"max_tickets_per_customer": cap}),
        )
        .await;
        self.store.event(&id).await?.ok_or(AppError::NotFound)
    }

    /// Sets or (with `None`) removes the event's waiting room. Turning it on takes
    /// effect for holds at once (every node within `catalog_refresh`); the queue
    /// itself (joins, counters) is kept when the settings change.
    pub async fn set_event_waiting_room(
        &self,
        who: &Principal,
        id: &str,
        room: Option<boxoffice_domain::WaitingRoomSettings>,
    ) -> Result<EventRecord, AppError> {
        who.require_catalogue_writer()?;
        let id = self.managed_event(who, id).await?;
        if let Some(r) = &room {
            r.validate()?;
        }
        let room = room.map(|mut r| {
            r.pre_queue_opens_at = r
                .pre_queue_opens_at
                .map(boxoffice_domain::time::truncate_to_millis);
            r
        });
        self.store
            .set_event_waiting_room(&id, room.as_ref(), self.clock.now())
            .await?;
        self.forget_cached_event(&id);
        tracing::info!(event = %id, ?room, "event's waiting room changed");
        self.audit_action(
            who,
            "event.waiting_room_changed",
            id.as_str(),
            Some(&id),
            serde_json::json!({"waiting_room": room.is_some()}),
        )
        .await;
        self.store.event(&id).await?.ok_or(AppError::NotFound)
    }

    /// Changes the event's searchable details: each field given replaces the
    /// current one (`Some(None)` clears it), the others stay.
    pub async fn set_event_details(
        &self,
        who: &Principal,
        id: &str,
        change: DetailsChange,
    ) -> Result<EventRecord, AppError> {
        who.require_catalogue_writer()?;
        let id = EventId::try_from(id).map_err(|_| AppError::NotFound)?;
        let current = self.store.event(&id).await?.ok_or(AppError::NotFound)?;
        who.require_manage_event(&current.event)?;
        let old = current.event.details;
        let details = EventDetails {
            city: change.city.unwrap_or(old.city),
            category: change.category.unwrap_or(old.category),
            description: change.description.unwrap_or(old.description),
        }
        .validated()?;
        self.store
            .set_event_details(&id, &details, self.clock.now())
            .await?;
        self.audit_action(
            who,
            "event.details_changed",
            id.as_str(),
            Some(&id),
            serde_json::json!({"city": details.city, "category": details.category}),
        )
        .await;
        self.forget_cached_event(&id);
        self.store.event(&id).await?.ok_or(AppError::NotFound)
    }

    /// One page of events matching `q`, soonest first. Drafts only for those who
    /// may see them.
    pub async fn search_events(
        &self,
        who: Option<&Principal>,
        mut q: EventSearch,
    ) -> Result<Vec<EventRecord>, AppError> {
        q.include_drafts = crate::permissions::may_see_drafts(who);
        if q.include_drafts {
            let mut found = self.store.search_events(&q).await?;
            found.retain(|r| crate::permissions::may_see_event(who, &r.event));
            return Ok(found);
        }
        // Without drafts the answer is the same for everyone: shared.
        let key = format!("{q:?}");
        if let Some(hit) = self.catalog.searches.get(&key) {
            metrics::counter!("boxoffice_browse_cache_total", "result" => "hit").increment(1);
            return Ok(hit.as_ref().clone());
        }
        metrics::counter!("boxoffice_browse_cache_total", "result" => "miss").increment(1);
        let found = self.store.search_events(&q).await?;
        debug_assert!(found
            .iter()
            .all(|r| crate::permissions::may_see_event(who, &r.event)));
        self.catalog.searches.insert(key, Arc::new(found.clone()));
        Ok(found)
    }

    /// Events, soonest first. Drafts only for those who may see them.
    pub async fn events(&self, who: Option<&Principal>) -> Result<Vec<EventRecord>, AppError> {
        let drafts = crate::permissions::may_see_drafts(who);
        let mut all = self.store.list_events(drafts).await?;
        all.retain(|r| crate::permissions::may_see_event(who, &r.event));
        Ok(all)
    }

    /// The event `id` if `who` may change it (else 404 or 403, `permissions.rs`).
    pub(crate) async fn managed_event(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<EventId, AppError> {
        let ev = self.event(id).await?;
        who.require_manage_event(ev.event())?;
        Ok(ev.event().id.clone())
    }

    /// One event as `who` may know it: a draft exists only for those who may see
    /// drafts (`permissions.rs`); for anyone else it is not found.
    pub async fn visible_event(
        &self,
        who: Option<&Principal>,
        id: &str,
    ) -> Result<Arc<CachedEvent>, AppError> {
        let ev = self.event(id).await?;
        if !crate::permissions::may_see_event(who, ev.event()) {
            return Err(AppError::NotFound);
        }
        Ok(ev)
    }

    /// One event, through the cache (whoever asks: see [`App::visible_event`]).
    pub async fn event(&self, id: &str) -> Result<Arc<CachedEvent>, AppError> {
        let id = EventId::try_from(id).map_err(|_| AppError::NotFound)?;
        self.cached_event(&id).await
    }

    pub(crate) async fn cached_event(&self, id: &EventId) -> Result<Arc<CachedEvent>, AppError> {
        let old = self.catalog.events.read().get(id).cloned();
        if let Some(e) = &old {
            if e.fetched_at.elapsed() < self.settings.catalog_refresh {
                return Ok(e.clone());
            }
        }
        let record = self.store.event(id).await?.ok_or(AppError::NotFound)?;
        let fresh = Arc::new(CachedEvent {
            record,
            fetched_at: Instant::now(),
            seats: old
                .as_ref()
                .map_or_else(Default::default, |o| o.seats.clone()),
            engine_load: old
                .as_ref()
                .map_or_else(Default::default, |o| o.engine_load.clone()),
            engine_epoch: old
                .as_ref()
                .map_or_else(Default::default, |o| o.engine_epoch.clone()),
        });
        self.catalog
            .events
            .write()
            .insert(id.clone(), fresh.clone());
        Ok(fresh)
    }

    /// The event's seats in layout order, loaded once.
    pub async fn seat_table(&self, ev: &CachedEvent) -> Result<Arc<SeatTable>, AppError> {
        ev.seats
            .get_or_try_init(|| async {
                let layout = self.store.event_layout(&ev.event().id).await?;
                Ok::<_, AppError>(Arc::new(SeatTable::new(layout)))
            })
            .await
            .cloned()
    }
}
