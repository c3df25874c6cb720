//! The catalogue (venues, seats, events, tiers) on PostgreSQL. A venue with its
//! seats, or an event with its tiers and seat map, is one statement: the parent and
//! its children in data-modifying CTEs, the children as array parameters however
//! many there are.

use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Event, EventDetails, EventId, EventStatus, GaTier, PriceTier, Seat, Venue,
    VenueId, WaitingRoomSettings,
};
use boxoffice_ports::{CatalogueStore, EventRecord, EventSearch, LayoutSeat, StoreError};
use time::OffsetDateTime;

use crate::rows::{self, EventRow, GaTierRow, LayoutRow, PriceTierRow, SeatRow, VenueRow};
use crate::writes::count_commit;
use crate::{map_err, ts, unavailable, PgStore};

#[async_trait]
impl CatalogueStore for PgStore {
    async fn create_venue(&self, venue: &Venue, seats: &[Seat]) -> Result<(), StoreError> {
        let col = |f: fn(&Seat) -> &str| seats.iter().map(f).collect::<Vec<_>>();
        let num = |f: fn(&Seat) -> i32| seats.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "WITH v AS (INSERT INTO venues (id, name, sections, seat_count, created_at, org_id) \
                        VALUES ($1, $2, $3, $4, $5, $13)) \
             INSERT INTO seats (id, venue_id, position, section, row_label, label, x, y) \
             SELECT s.id, $1, s.position, s.section, s.row_label, s.label, s.x, s.y \
             FROM unnest($6::text[], $7::int[], $8::text[], $9::text[], $10::text[], $11::int[], $12::int[]) \
                  AS s(id, position, section, row_label, label, x, y)",
        )
        .bind(venue.id.as_str())
        .bind(&venue.name)
        .bind(&venue.sections)
        .bind(venue.seat_count as i32)
        .bind(ts(venue.created_at))
        .bind(col(|s| s.id.as_str()))
        .bind(num(|s| s.position as i32))
        .bind(col(|s| &s.section))
        .bind(col(|s| &s.row))
        .bind(col(|s| &s.label))
        .bind(num(|s| s.x))
        .bind(num(|s| s.y))
        .bind(venue.org_id.as_str())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn venue(&self, id: &VenueId) -> Result<Option<Venue>, StoreError> {
        Ok(self
            .venues_where("WHERE id = $1", Some(id.as_str()))
            .await?
            .pop())
    }

    async fn list_venues(&self) -> Result<Vec<Venue>, StoreError> {
        self.venues_where("WHERE $1::text IS NULL", None).await
    }

    async fn venue_seats(&self, id: &VenueId) -> Result<Vec<Seat>, StoreError> {
        let rows = sqlx::query_as::<_, SeatRow>(&format!(
            "SELECT {} FROM seats WHERE venue_id = $1 ORDER BY position",
            SeatRow::COLUMNS
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows::all(rows)
    }

    /// The event, its tiers, its GA tiers and its seat map in one statement.
    async fn create_event(&self, event: &Event, seats: &[EventSeat]) -> Result<(), StoreError> {
        let tiers = &event.tiers;
        let ga = &event.ga_tiers;
        let sections = tiers
            .iter()
            .map(|t| serde_json::to_string(&t.sections))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        sqlx::query(
            "WITH e AS ( \
                 INSERT INTO events (id, venue_id, name, starts_at, sale_starts_at, sale_ends_at, status, \
                     hold_ttl_seconds, max_tickets_per_order, currency, seat_count, created_at, updated_at, \
                     max_tickets_per_customer, waiting_room, city, category, description, org_id, rotating_codes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $25, $26, $27, $28, $29, $30, $31)), \
             t AS ( \
                 INSERT INTO price_tiers (id, event_id, position, name, amount, currency, sections) \
                 SELECT t.id, $1, t.n - 1, t.name, t.amount, t.currency, \
                        ARRAY(SELECT jsonb_array_elements_text(t.sections::jsonb)) \
                 FROM unnest($13::text[], $14::text[], $15::bigint[], $16::text[], $17::text[]) \
                      WITH ORDINALITY AS t(id, name, amount, currency, sections, n)), \
             g AS ( \
                 INSERT INTO ga_tiers (id, event_id, position, name, amount, currency, capacity) \
                 SELECT g.id, $1, g.n - 1, g.name, g.amount, g.currency, g.capacity \
                 FROM unnest($18::text[], $19::text[], $20::bigint[], $21::text[], $22::int[]) \
                      WITH ORDINALITY AS g(id, name, amount, currency, capacity, n)) \
             INSERT INTO event_seats (event_id, seat_index, seat_id, tier_id) \
             SELECT $1, s.n - 1, s.seat_id, s.tier_id \
             FROM unnest($23::text[], $24::text[]) WITH ORDINALITY AS s(seat_id, tier_id, n)",
        )
        .bind(event.id.as_str())
        .bind(event.venue_id.as_str())
        .bind(&event.name)
        .bind(ts(event.starts_at))
        .bind(event.sale_starts_at.map(ts))
        .bind(event.sale_ends_at.map(ts))
        .bind(event.status.as_str())
        .bind(event.hold_ttl_seconds as i32)
        .bind(event.max_tickets_per_order as i32)
        .bind(event.currency.as_str())
        .bind(seats.len() as i32)
        .bind(ts(event.created_at))
        .bind(tiers.iter().map(|t| t.id.as_str()).collect::<Vec<_>>())
        .bind(tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
        .bind(tiers.iter().map(|t| t.price.amount).collect::<Vec<_>>())
        .bind(tiers.iter().map(|t| t.price.currency.as_str()).collect::<Vec<_>>())
        .bind(sections)
        .bind(ga.iter().map(|t| t.id.as_str()).collect::<Vec<_>>())
        .bind(ga.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
        .bind(ga.iter().map(|t| t.price.amount).collect::<Vec<_>>())
        .bind(ga.iter().map(|t| t.price.currency.as_str()).collect::<Vec<_>>())
        .bind(ga.iter().map(|t| t.capacity as i32).collect::<Vec<_>>())
        .bind(seats.iter().map(|s| s.seat_id.as_str()).collect::<Vec<_>>())
        .bind(seats.iter().map(|s| s.tier_id.as_str()).collect::<Vec<_>>())
        .bind(event.max_tickets_per_customer.map(|c| c as i32))
        .bind(crate::rows::room_json(event.waiting_room.as_ref())?)
        .bind(&event.details.city)
        .bind(&event.details.category)
        .bind(&event.details.description)
        .bind(event.org_id.as_str())
        .bind(event.rotating_codes)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        Ok(())
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.events_where(Some(id), true).await?.pop())
    }

    async fn list_events(&self, include_drafts: bool) -> Result<Vec<EventRecord>, StoreError> {
        self.events_where(None, include_drafts).await
    }

    async fn set_event_status(
        &self,
        id: &EventId,
        status: EventStatus,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // A cancelled event's status is final (cancelling is `Write::CancelEvent`).
        let done = sqlx::query(
            "UPDATE events SET status = $1, updated_at = $2 WHERE id = $3 AND status <> 'cancelled'",
        )
        .bind(status.as_str())
        .bind(ts(now))
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        count_commit();
        if done.rows_affected() == 0 {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM events WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            return Err(match exists {
                Some(_) => StoreError::Conflict {
                    constraint: "event_cancelled",
                },
                None => StoreError::NotFound,
            });
        }
        Ok(())
    }

    async fn set_event_customer_limit(
        &self,
        id: &EventId,
        cap: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.update_event(
            sqlx::query(
                "UPDATE events SET max_tickets_per_customer = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(cap.map(|c| c as i32))
            .bind(ts(now))
            .bind(id.as_str()),
        )
        .await
    }

    async fn set_event_waiting_room(
        &self,
        id: &EventId,
        room: Option<&WaitingRoomSettings>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.update_event(
            sqlx::query("UPDATE events SET waiting_room = $1, updated_at = $2 WHERE id = $3")
                .bind(crate::rows::room_json(room)?)
                .bind(ts(now))
                .bind(id.as_str()),
        )
        .await
    }

    async fn set_event_details(
        &self,
        id: &EventId,
        details: &EventDetails,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.update_event(sqlx::query(
            "UPDATE events SET city = $1, category = $2, description = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&details.city)
        .bind(&details.category)
        .bind(&details.description)
        .bind(ts(now))
        .bind(id.as_str())
        )
        .await
    }

    /// The generated `search` tsvector (GIN-indexed) against `plainto_tsquery` of
    /// the words (all must match, stemmed as the index is); paged by (starts_at, id).
    async fn search_events(&self, q: &EventSearch) -> Result<Vec<EventRecord>, StoreError> {
        let words = q.words();
        if q.text.as_deref().is_some_and(|t| !t.trim().is_empty()) && words.is_empty() {
            return Ok(Vec::new());
        }
        let text = (!words.is_empty()).then(|| words.join(" "));
        let events = sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {} FROM events \
             WHERE ($1 OR status <> 'draft') \
               AND ($2::text IS NULL OR search @@ plainto_tsquery('english', $2)) \
               AND ($3::text IS NULL OR lower(city) = lower($3)) \
               AND ($4::text IS NULL OR lower(category) = lower($4)) \
               AND ($5::timestamptz IS NULL OR starts_at >= $5) \
               AND ($6::timestamptz IS NULL OR starts_at < $6) \
               AND ($7::timestamptz IS NULL OR (starts_at, id) > ($7, $8::text)) \
             ORDER BY starts_at, id LIMIT $9",
            EventRow::COLUMNS
        ))
        .bind(q.include_drafts)
        .bind(text)
        .bind(&q.city)
        .bind(&q.category)
        .bind(q.from.map(ts))
        .bind(q.to.map(ts))
        .bind(q.after.as_ref().map(|(at, _)| ts(*at)))
        .bind(q.after.as_ref().map(|(_, id)| id.as_str()))
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        self.with_children::<PriceTierRow, GaTierRow, _, PriceTier, GaTier, _>(
            events,
            |e| e.id.as_str(),
            |e, tiers, ga| e.into_record(tiers, ga),
        )
        .await
    }

    async fn event_layout(&self, id: &EventId) -> Result<Vec<LayoutSeat>, StoreError> {
        let rows = sqlx::query_as::<_, LayoutRow>(
            "SELECT s.id, s.position, s.section, s.row_label, s.label, s.x, s.y, es.tier_id \
             FROM event_seats es JOIN seats s ON s.id = es.seat_id \
             WHERE es.event_id = $1 ORDER BY es.seat_index",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows::all(rows)
    }
}

impl PgStore {
    async fn venues_where(&self, filter: &str, id: Option<&str>) -> Result<Vec<Venue>, StoreError> {
        let rows = sqlx::query_as::<_, VenueRow>(&format!(
            "SELECT {} FROM venues {filter} ORDER BY id",
            VenueRow::COLUMNS
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows::all(rows)
    }

    /// One event (`id`), or every event (drafts when asked), oldest first, with
    /// their tiers: three statements however many events.
    pub(crate) async fn events_where(
        &self,
        id: Option<&EventId>,
        include_drafts: bool,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let events = sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {} FROM events WHERE ($1::text IS NULL OR id = $1) AND ($2 OR status <> 'draft') \
             ORDER BY starts_at, id",
            EventRow::COLUMNS
        ))
        .bind(id.map(|i| i.as_str()))
        .bind(include_drafts)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        self.with_children::<PriceTierRow, GaTierRow, _, PriceTier, GaTier, _>(
            events,
            |e| e.id.as_str(),
            |e, tiers, ga| e.into_record(tiers, ga),
        )
        .await
    }
}

impl PgStore {
    /// Runs one of the event setters' `UPDATE events … WHERE id = …`: `NotFound` when
    /// no event has the id.
    async fn update_event(
        &self,
        update: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), StoreError> {
        let done = update.execute(&self.pool).await.map_err(map_err)?;
        count_commit();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
