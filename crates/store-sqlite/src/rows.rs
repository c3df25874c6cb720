//! Rows to domain values: every table's reading lives here once.

use boxoffice_domain::{
    CheckoutAnswer, Currency, Email, Event, EventId, EventStatus, GaTier, Hold, HoldId,
    HoldSelection, HoldStatus, Money, Order, OrderId, OrderItem, OrderStatus, OrgId, PriceTier,
    Role, Seat, SeatId, Ticket, TicketId, TierId, User, Venue, VenueId,
};
use boxoffice_ports::{EventRecord, Idempotent, StoreError};
use rusqlite::{Connection, OptionalExtension, Row};

use crate::db::{corrupt, dt, parse, OrStore};

/// `role` keeps its CHECK of migration 0001 (customer, admin): the roles of
/// migration 0070 (organizer, checkin, ops) are in `staff_role`, which wins.
pub(crate) const USER_COLUMNS: &str =
    "id, email, password_hash, role, created_at, staff_role, org_id";
pub(crate) const VENUE_COLUMNS: &str = "id, name, sections, seat_count, created_at, org_id";
pub(crate) const SEAT_COLUMNS: &str = "id, position, section, row_label, label, x, y";
pub(crate) const EVENT_COLUMNS: &str =
    "id, venue_id, name, starts_at, sale_starts_at, sale_ends_at, status, \
     hold_ttl_seconds, max_tickets_per_order, currency, seat_count, created_at, \
     max_tickets_per_customer, waiting_room, city, category, description, org_id, rotating_codes";
/// An event as read: a cancelled one (`cancelled_at`, migration 0040: the table's
/// CHECK on `status` predates it) reads as `cancelled`.
pub(crate) const EVENT_READ_COLUMNS: &str =
    "id, venue_id, name, starts_at, sale_starts_at, sale_ends_at, \
     CASE WHEN cancelled_at IS NULL THEN status ELSE 'cancelled' END AS status, \
     hold_ttl_seconds, max_tickets_per_order, currency, seat_count, created_at, \
     max_tickets_per_customer, waiting_room, city, category, description, org_id, rotating_codes";
pub(crate) const HOLD_COLUMNS: &str =
    "id, event_id, customer_id, status, ga_tier_id, quantity, amount, \
     currency, expires_at, created_at, sold_at";
pub(crate) const ORDER_COLUMNS: &str = "id, customer_id, event_id, hold_id, email, status, failure_code, amount, currency, payment_token, created_at, updated_at, phone";
/// What an order read selects: [`ORDER_COLUMNS`] and what a refund changed.
pub(crate) const ORDER_READ_COLUMNS: &str = "id, customer_id, event_id, hold_id, email, status, failure_code, amount, currency, payment_token, created_at, updated_at, phone, refunded_amount";
pub(crate) const IDEMPOTENT_COLUMNS: &str = "user_id, route, key, fingerprint, answer, order_id";

pub(crate) fn text(r: &Row, col: &str) -> Result<String, StoreError> {
    r.get(col).db()
}

pub(crate) fn id<T: TryFrom<String>>(r: &Row, col: &str) -> Result<T, StoreError> {
    parse(T::try_from(text(r, col)?), col)
}

pub(crate) fn opt_id<T: TryFrom<String>>(r: &Row, col: &str) -> Result<Option<T>, StoreError> {
    r.get::<_, Option<String>>(col)
        .db()?
        .map(|s| parse(T::try_from(s), col))
        .transpose()
}

pub(crate) fn int(r: &Row, col: &str) -> Result<i64, StoreError> {
    r.get(col).db()
}

pub(crate) fn time(r: &Row, col: &str) -> Result<time::OffsetDateTime, StoreError> {
    Ok(dt(int(r, col)?))
}

pub(crate) fn money(r: &Row) -> Result<Money, StoreError> {
    Ok(Money::new(
        int(r, "amount")?,
        parse(Currency::try_from(text(r, "currency")?), "currency")?,
    ))
}

fn json<T: serde::de::DeserializeOwned>(r: &Row, col: &str) -> Result<T, StoreError> {
    parse(serde_json::from_str(&text(r, col)?), col)
}

pub(crate) fn user(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: id(r, "id")?,
        email: parse(Email::parse(&text(r, "email")?), "users.email")?,
        password_hash: text(r, "password_hash")?,
        role: {
            let role = r
                .get::<_, Option<String>>("staff_role")
                .db()?
                .map_or_else(|| text(r, "role"), Ok)?;
            Role::parse(&role).ok_or_else(|| corrupt("users.role"))?
        },
        created_at: time(r, "created_at")?,
        org_id: r
            .get::<_, Option<String>>("org_id")
            .db()?
            .map(|o| parse(OrgId::try_from(o), "users.org_id"))
            .transpose()?,
    })
}

/// How a role is kept: the `role` column and the `staff_role` column.
pub(crate) fn role_columns(role: Role) -> (&'static str, Option<&'static str>) {
    match role {
        Role::Customer | Role::Admin => (role.as_str(), None),
        Role::Organizer | Role::Checkin | Role::Ops => ("customer", Some(role.as_str())),
    }
}

pub(crate) fn session(r: &Row) -> Result<boxoffice_ports::Session, StoreError> {
    Ok(boxoffice_ports::Session {
        id: text(r, "id")?,
        user_id: id(r, "user_id")?,
        generation: int(r, "generation")?,
        token_hash: text(r, "token_hash")?,
        created_at: time(r, "created_at")?,
        expires_at: time(r, "expires_at")?,
        revoked_at: r.get::<_, Option<i64>>("revoked_at").db()?.map(dt),
    })
}

pub(crate) fn venue(r: &Row) -> Result<Venue, StoreError> {
    Ok(Venue {
        id: id::<VenueId>(r, "id")?,
        name: text(r, "name")?,
        sections: json(r, "sections")?,
        seat_count: int(r, "seat_count")? as u32,
        created_at: time(r, "created_at")?,
        org_id: id(r, "org_id")?,
    })
}

pub(crate) fn seat(r: &Row) -> Result<Seat, StoreError> {
    Ok(Seat {
        id: id::<SeatId>(r, "id")?,
        position: int(r, "position")? as u32,
        section: text(r, "section")?,
        row: text(r, "row_label")?,
        label: text(r, "label")?,
        x: int(r, "x")? as i32,
        y: int(r, "y")? as i32,
    })
}

/// All rows of a query, each mapped.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        out.push(map(r)?);
    }
    Ok(out)
}

/// The first row of a query, mapped, if there is one.
pub(crate) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    rows.next().db()?.map(map).transpose()
}

/// One value of the first row (`None` without a row).
pub(crate) fn scalar<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql)
        .db()?
        .query_row(params, |r| r.get(0))
        .optional()
        .db()
}

pub(crate) fn event(conn: &Connection, r: &Row) -> Result<EventRecord, StoreError> {
    let event_id: EventId = id(r, "id")?;
    let tiers = all(
        conn,
        "SELECT id, name, amount, currency, sections FROM price_tiers WHERE event_id = ? ORDER BY position",
        [event_id.as_str()],
        |t| {
            Ok(PriceTier {
                id: id::<TierId>(t, "id")?,
                name: text(t, "name")?,
                price: money(t)?,
                sections: json(t, "sections")?,
            })
        },
    )?;
    let ga_tiers = all(
        conn,
        "SELECT id, name, amount, currency, capacity FROM ga_tiers WHERE event_id = ? ORDER BY position",
        [event_id.as_str()],
        |t| {
            Ok(GaTier {
                id: id::<TierId>(t, "id")?,
                name: text(t, "name")?,
                price: money(t)?,
                capacity: int(t, "capacity")? as u32,
            })
        },
    )?;
    let event = Event {
        id: event_id,
        venue_id: id(r, "venue_id")?,
        name: text(r, "name")?,
        starts_at: time(r, "starts_at")?,
        sale_starts_at: r.get::<_, Option<i64>>("sale_starts_at").db()?.map(dt),
        sale_ends_at: r.get::<_, Option<i64>>("sale_ends_at").db()?.map(dt),
        status: EventStatus::parse(&text(r, "status")?).ok_or_else(|| corrupt("events.status"))?,
        hold_ttl_seconds: int(r, "hold_ttl_seconds")? as u32,
        max_tickets_per_order: int(r, "max_tickets_per_order")? as u32,
        max_tickets_per_customer: r
            .get::<_, Option<i64>>("max_tickets_per_customer")
            .db()?
            .map(|c| c as u32),
        waiting_room: r
            .get::<_, Option<String>>("waiting_room")
            .db()?
            .map(|j| serde_json::from_str(&j).map_err(|_| corrupt("events.waiting_room")))
            .transpose()?,
        rotating_codes: r.get::<_, bool>("rotating_codes").db()?,
        currency: parse(Currency::try_from(text(r, "currency")?), "currency")?,
        tiers,
        ga_tiers,
        created_at: time(r, "created_at")?,
        details: boxoffice_domain::EventDetails {
            city: r.get("city").db()?,
            category: r.get("category").db()?,
            description: r.get("description").db()?,
        },
        org_id: id(r, "org_id")?,
    };
    Ok(EventRecord {
        event,
        seat_count: int(r, "seat_count")? as u32,
    })
}

/// The status as the domain knows it: a converted hold with `sold_at` is sold.
fn hold_status(r: &Row) -> Result<HoldStatus, StoreError> {
    match HoldStatus::parse(&text(r, "status")?) {
        Some(HoldStatus::Converted) if r.get::<_, Option<i64>>("sold_at").db()?.is_some() => {
            Ok(HoldStatus::Sold)
        }
        Some(s) => Ok(s),
        None => Err(corrupt("holds.status")),
    }
}

/// A hold row (`HOLD_COLUMNS`); a seated hold's seats come from `seats`.
pub(crate) fn hold(
    r: &Row,
    seats: impl FnOnce(&str) -> Result<Vec<SeatId>, StoreError>,
) -> Result<Hold, StoreError> {
    let hold_id = text(r, "id")?;
    let selection = match opt_id::<TierId>(r, "ga_tier_id")? {
        Some(tier_id) => HoldSelection::Ga {
            tier_id,
            quantity: int(r, "quantity")? as u32,
        },
        None => HoldSelection::Seats(seats(&hold_id)?),
    };
    Ok(Hold {
        id: parse(HoldId::try_from(hold_id), "holds.id")?,
        event_id: id(r, "event_id")?,
        customer_id: id(r, "customer_id")?,
        status: hold_status(r)?,
        selection,
        total: money(r)?,
        expires_at: time(r, "expires_at")?,
        created_at: time(r, "created_at")?,
    })
}

/// A hold's seats, in the order they were asked for.
pub(crate) fn hold_seats(conn: &Connection, hold: &str) -> Result<Vec<SeatId>, StoreError> {
    all(
        conn,
        "SELECT seat_id FROM hold_seats WHERE hold_id = ? ORDER BY position",
        [hold],
        |r| id(r, "seat_id"),
    )
}

pub(crate) fn idempotent(r: &Row) -> Result<Idempotent, StoreError> {
    Ok(Idempotent {
        user_id: id(r, "user_id")?,
        route: text(r, "route")?,
        key: text(r, "key")?,
        fingerprint: text(r, "fingerprint")?,
        answer: CheckoutAnswer::from_stored(
            &text(r, "answer")?,
            r.get::<_, Option<String>>("order_id").db()?.as_deref(),
        )
        .ok_or_else(|| corrupt("idempotency_keys.answer"))?,
    })
}

pub(crate) fn order_status(s: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(s).ok_or_else(|| corrupt("orders.status"))
}

/// An order row (`ORDER_READ_COLUMNS`) with its items and tickets.
pub(crate) fn order(conn: &Connection, r: &Row) -> Result<Order, StoreError> {
    let order_id = text(r, "id")?;
    let items = all(
        conn,
        "SELECT seat_id, tier_id, amount, currency FROM order_items WHERE order_id = ? ORDER BY position",
        [&order_id],
        |i| {
            Ok(OrderItem {
                seat_id: opt_id(i, "seat_id")?,
                tier_id: id(i, "tier_id")?,
                price: money(i)?,
            })
        },
    )?;
    let tickets = all(
        conn,
        "SELECT id, seat_id, tier_id, amount, currency, code FROM tickets WHERE order_id = ? ORDER BY position",
        [&order_id],
        |t| {
            Ok(Ticket {
                id: TicketId::parse(&text(t, "id")?).ok_or_else(|| corrupt("tickets.id"))?,
                seat_id: opt_id(t, "seat_id")?,
                tier_id: id(t, "tier_id")?,
                price: money(t)?,
                code: text(t, "code")?,
            })
        },
    )?;
    Ok(Order {
        id: OrderId::parse(&order_id).ok_or_else(|| corrupt("orders.id"))?,
        customer_id: id(r, "customer_id")?,
        event_id: id(r, "event_id")?,
        hold_id: id(r, "hold_id")?,
        email: text(r, "email")?,
        phone: r.get("phone").db()?,
        status: order_status(&text(r, "status")?)?,
        failure_code: r.get("failure_code").db()?,
        items,
        total: money(r)?,
        payment_token: text(r, "payment_token")?,
        tickets,
        refunded: Money::new(int(r, "refunded_amount")?, money(r)?.currency),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// An event's waiting room settings as the `waiting_room` column keeps them (JSON).
pub(crate) fn room_json(
    room: Option<&boxoffice_domain::WaitingRoomSettings>,
) -> Result<Option<String>, StoreError> {
    room.map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Unavailable(e.into()))
}
