//! The catalogue (venues, seats, events, tiers, layouts) on SQLite.

use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Event, EventDetails, EventId, EventStatus, Seat, Venue, VenueId,
    WaitingRoomSettings,
};
use boxoffice_ports::{CatalogueStore, EventRecord, EventSearch, LayoutSeat, StoreError};
use rusqlite::params;
use time::OffsetDateTime;

use crate::db::{ms, parse, OrStore};
use crate::rows::{self, EVENT_COLUMNS, EVENT_READ_COLUMNS, SEAT_COLUMNS, VENUE_COLUMNS};
use crate::SqliteStore;

#[async_trait]
impl CatalogueStore for SqliteStore {
    async fn create_venue(&self, venue: &Venue, seats: &[Seat]) -> Result<(), StoreError> {
        let (venue, seats) = (venue.clone(), seats.to_vec());
        let sections = serde_json::to_string(&venue.sections)
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO venues ({VENUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute(params![
                venue.id.as_str(),
                venue.name,
                sections,
                venue.seat_count,
                ms(venue.created_at),
                venue.org_id.as_str()
            ])
            .db()?;
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO seats (venue_id, {SEAT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ))
                .db()?;
            for s in &seats {
                insert
                    .execute(params![
                        venue.id.as_str(),
                        s.id.as_str(),
                        s.position,
                        s.section,
                        s.row,
                        s.label,
                        s.x,
                        s.y
                    ])
                    .db()?;
            }
            Ok(())
        })
        .await
    }

    async fn venue(&self, id: &VenueId) -> Result<Option<Venue>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {VENUE_COLUMNS} FROM venues WHERE id = ?"),
                    [id],
                    rows::venue,
                )
            })
            .await
    }

    async fn venue_seats(&self, id: &VenueId) -> Result<Vec<Seat>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!(
                        "SELECT {SEAT_COLUMNS} FROM seats WHERE venue_id = ? ORDER BY position"
                    ),
                    [id],
                    rows::seat,
                )
            })
            .await
    }

    async fn list_venues(&self) -> Result<Vec<Venue>, StoreError> {
        self.db
            .read(|conn| {
                rows::all(
                    conn,
                    &format!("SELECT {VENUE_COLUMNS} FROM venues ORDER BY id"),
                    [],
                    rows::venue,
                )
            })
            .await
    }

    async fn create_event(&self, event: &Event, seats: &[EventSeat]) -> Result<(), StoreError> {
        let (event, seats) = (event.clone(), seats.to_vec());
        let room = crate::rows::room_json(event.waiting_room.as_ref())?;
        let sections = event
            .tiers
            .iter()
            .map(|t| serde_json::to_string(&t.sections))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO events ({EVENT_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute(params![
                event.id.as_str(),
                event.venue_id.as_str(),
                event.name,
                ms(event.starts_at),
                event.sale_starts_at.map(ms),
                event.sale_ends_at.map(ms),
                event.status.as_str(),
                event.hold_ttl_seconds,
                event.max_tickets_per_order,
                event.currency.as_str(),
                seats.len(),
                ms(event.created_at),
                event.max_tickets_per_customer,
                room,
                event.details.city,
                event.details.category,
                event.details.description,
                event.org_id.as_str(),
                event.rotating_codes,
                ms(event.created_at)
            ])
            .db()?;
            let mut tier = tx
                .prepare_cached("INSERT INTO price_tiers (id, event_id, position, name, amount, currency, sections) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .db()?;
            for (i, (t, sections)) in event.tiers.iter().zip(&sections).enumerate() {
                tier.execute(params![
                    t.id.as_str(),
                    event.id.as_str(),
                    i,
                    t.name,
                    t.price.amount,
                    t.price.currency.as_str(),
                    sections
                ])
                .db()?;
            }
            let mut ga = tx
                .prepare_cached("INSERT INTO ga_tiers (id, event_id, position, name, amount, currency, capacity) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .db()?;
            for (i, t) in event.ga_tiers.iter().enumerate() {
                ga.execute(params![
                    t.id.as_str(),
                    event.id.as_str(),
                    i,
                    t.name,
                    t.price.amount,
                    t.price.currency.as_str(),
                    t.capacity
                ])
                .db()?;
            }
            let mut seat = tx
                .prepare_cached("INSERT INTO event_seats (event_id, seat_index, seat_id, tier_id) VALUES (?, ?, ?, ?)")
                .db()?;
            for (i, s) in seats.iter().enumerate() {
                seat.execute(params![
                    event.id.as_str(),
                    i,
                    s.seat_id.as_str(),
                    s.tier_id.as_str()
                ])
                .db()?;
            }
            Ok(())
        })
        .await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {EVENT_READ_COLUMNS} FROM events WHERE id = ?"),
                    [id],
                    |r| rows::event(conn, r),
                )
            })
            .await
    }

    async fn list_events(&self, include_drafts: bool) -> Result<Vec<EventRecord>, StoreError> {
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!("SELECT {EVENT_READ_COLUMNS} FROM events WHERE ? OR status <> 'draft' ORDER BY starts_at, id"),
                    [include_drafts],
                    |r| rows::event(conn, r),
                )
            })
            .await
    }

    async fn set_event_status(
        &self,
        id: &EventId,
        status: EventStatus,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.transaction(move |tx| {
            // A cancelled event's status is final (cancelling is `Write::CancelEvent`).
            let n = tx
                .prepare_cached(
                    "UPDATE events SET status = ?, updated_at = ? WHERE id = ? AND cancelled_at IS NULL",
                )
                .db()?
                .execute(params![status.as_str(), ms(now), id])
                .db()?;
            if n == 0 {
                let exists = rows::scalar::<i64>(tx, "SELECT 1 FROM events WHERE id = ?", [&id])?;
                return Err(match exists {
                    Some(_) => StoreError::Conflict {
                        constraint: "event_cancelled",
                    },
                    None => StoreError::NotFound,
                });
            }
            Ok(())
        })
        .await
    }

    async fn set_event_customer_limit(
        &self,
        id: &EventId,
        cap: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE events SET max_tickets_per_customer = ?, updated_at = ? WHERE id = ?",
                )
                .db()?
                .execute(params![cap, ms(now), id])
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn set_event_waiting_room(
        &self,
        id: &EventId,
        room: Option<&WaitingRoomSettings>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        let room = crate::rows::room_json(room)?;
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached("UPDATE events SET waiting_room = ?, updated_at = ? WHERE id = ?")
                .db()?
                .execute(params![room, ms(now), id])
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn set_event_details(
        &self,
        id: &EventId,
        details: &EventDetails,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (id, d) = (id.as_str().to_owned(), details.clone());
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE events SET city = ?, category = ?, description = ?, updated_at = ? WHERE id = ?",
                )
                .db()?
                .execute(params![d.city, d.category, d.description, ms(now), id])
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    /// FTS5 (`events_fts`, Porter-stemmed) for the words, each quoted so that
    /// nothing a buyer types is read as FTS5 syntax; the rest plain comparisons on
    /// `events`, paged by (starts_at, id).
    async fn search_events(&self, q: &EventSearch) -> Result<Vec<EventRecord>, StoreError> {
        let words = q.words();
        let fts = (!words.is_empty()).then(|| {
            words
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let (city, category) = (q.city.clone(), q.category.clone());
        let (from, to) = (q.from.map(ms), q.to.map(ms));
        let (after_at, after_id) = match &q.after {
            Some((at, id)) => (Some(ms(*at)), Some(id.as_str().to_owned())),
            None => (None, None),
        };
        let (drafts, limit) = (q.include_drafts, i64::from(q.limit));
        // A text query with no word in it (only punctuation) matches nothing.
        if q.text.as_deref().is_some_and(|t| !t.trim().is_empty()) && fts.is_none() {
            return Ok(Vec::new());
        }
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    &format!(
                        "SELECT {EVENT_READ_COLUMNS} FROM events \
                         WHERE (?1 OR status <> 'draft') \
                           AND (?2 IS NULL OR id IN (SELECT event_id FROM events_fts WHERE events_fts MATCH ?2)) \
                           AND (?3 IS NULL OR lower(city) = lower(?3)) \
                           AND (?4 IS NULL OR lower(category) = lower(?4)) \
                           AND (?5 IS NULL OR starts_at >= ?5) \
                           AND (?6 IS NULL OR starts_at < ?6) \
                           AND (?7 IS NULL OR starts_at > ?7 OR (starts_at = ?7 AND id > ?8)) \
                         ORDER BY starts_at, id LIMIT ?9"
                    ),
                    params![drafts, fts, city, category, from, to, after_at, after_id, limit],
                    |r| rows::event(conn, r),
                )
            })
            .await
    }

    async fn event_layout(&self, id: &EventId) -> Result<Vec<LayoutSeat>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::all(
                    conn,
                    "SELECT s.id, s.position, s.section, s.row_label, s.label, s.x, s.y, es.tier_id \
                     FROM event_seats es JOIN seats s ON s.id = es.seat_id \
                     WHERE es.event_id = ? ORDER BY es.seat_index",
                    [id],
                    |r| {
                        Ok(LayoutSeat {
                            seat: rows::seat(r)?,
                            tier_id: parse(
                                boxoffice_domain::TierId::try_from(r.get::<_, String>("tier_id").db()?),
                                "tier_id",
                            )?,
                        })
                    },
                )
            })
            .await
    }
}
