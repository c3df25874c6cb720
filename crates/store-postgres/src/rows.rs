//! Rows as PostgreSQL returns them (`sqlx::FromRow`), each turned into its domain
//! type in one place. A value the domain refuses (an id of the wrong shape, an
//! unknown status, a negative count) is a corrupt row: an outage, never a panic.
//! The SELECT lists live next to their row type, so a column added to one is
//! added to the other.

use boxoffice_domain::{
    CheckoutAnswer, Currency, Email, EventId, EventStatus, GaTier, Hold, HoldId, HoldSelection,
    HoldStatus, Money, Order, OrderId, OrderItem, OrderStatus, PriceTier, Role, Seat, SeatId,
    Ticket, TicketId, TierId, User, UserId, Venue, VenueId,
};
use boxoffice_ports::{Idempotent, LayoutSeat, StoreError};
use time::OffsetDateTime;

use crate::corrupt;

fn id<T: TryFrom<String>>(s: String, what: &str) -> Result<T, StoreError> {
    T::try_from(s).map_err(|_| corrupt(what))
}

fn count(n: i32, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| corrupt(what))
}

fn money(amount: i64, currency: String) -> Result<Money, StoreError> {
    Ok(Money::new(amount, id::<Currency>(currency, "currency")?))
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: String,
    generation: i64,
    token_hash: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl SessionRow {
    pub(crate) const COLUMNS: &'static str =
        "id, user_id, generation, token_hash, created_at, expires_at, revoked_at";
}

impl TryFrom<SessionRow> for boxoffice_ports::Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(boxoffice_ports::Session {
            id: r.id,
            user_id: id(r.user_id, "sessions.user_id")?,
            generation: r.generation,
            token_hash: r.token_hash,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    password_hash: String,
    role: String,
    created_at: OffsetDateTime,
    org_id: Option<String>,
}

impl UserRow {
    pub(crate) const COLUMNS: &'static str = "id, email, password_hash, role, created_at, org_id";
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: id(r.id, "users.id")?,
            email: Email::parse(&r.email).map_err(|_| corrupt("users.email"))?,
            password_hash: r.password_hash,
            role: Role::parse(&r.role).ok_or_else(|| corrupt("users.role"))?,
            created_at: r.created_at,
            org_id: r.org_id.map(|o| id(o, "users.org_id")).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VenueRow {
    id: String,
    name: String,
    sections: Vec<String>,
    seat_count: i32,
    created_at: OffsetDateTime,
    org_id: String,
}

impl VenueRow {
    pub(crate) const COLUMNS: &'static str = "id, name, sections, seat_count, created_at, org_id";
}

impl TryFrom<VenueRow> for Venue {
    type Error = StoreError;
    fn try_from(r: VenueRow) -> Result<Self, StoreError> {
        Ok(Venue {
            id: id(r.id, "venues.id")?,
            name: r.name,
            sections: r.sections,
            seat_count: count(r.seat_count, "venues.seat_count")?,
            created_at: r.created_at,
            org_id: id(r.org_id, "venues.org_id")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SeatRow {
    id: String,
    position: i32,
    section: String,
    row_label: String,
    label: String,
    x: i32,
    y: i32,
}

impl SeatRow {
    pub(crate) const COLUMNS: &'static str = "id, position, section, row_label, label, x, y";
}

impl TryFrom<SeatRow> for Seat {
    type Error = StoreError;
    fn try_from(r: SeatRow) -> Result<Self, StoreError> {
        Ok(Seat {
            id: id(r.id, "seats.id")?,
            position: count(r.position, "seats.position")?,
            section: r.section,
            row: r.row_label,
            label: r.label,
            x: r.x,
            y: r.y,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LayoutRow {
    #[sqlx(flatten)]
    seat: SeatRow,
    tier_id: String,
}

impl TryFrom<LayoutRow> for LayoutSeat {
    type Error = StoreError;
    fn try_from(r: LayoutRow) -> Result<Self, StoreError> {
        Ok(LayoutSeat {
            seat: r.seat.try_into()?,
            tier_id: id(r.tier_id, "event_seats.tier_id")?,
        })
    }
}

/// An event without its tiers (they are rows of their own).
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub(crate) id: String,
    venue_id: String,
    name: String,
    starts_at: OffsetDateTime,
    sale_starts_at: Option<OffsetDateTime>,
    sale_ends_at: Option<OffsetDateTime>,
    status: String,
    hold_ttl_seconds: i32,
    max_tickets_per_order: i32,
    max_tickets_per_customer: Option<i32>,
    waiting_room: Option<String>,
    currency: String,
    seat_count: i32,
    created_at: OffsetDateTime,
    city: Option<String>,
    category: Option<String>,
    description: Option<String>,
    org_id: String,
    rotating_codes: bool,
}

impl EventRow {
    pub(crate) const COLUMNS: &'static str = "id, venue_id, name, starts_at, sale_starts_at, \
        sale_ends_at, status, hold_ttl_seconds, max_tickets_per_order, max_tickets_per_customer, \
        waiting_room, currency, seat_count, created_at, city, category, description, org_id, \
        rotating_codes";

    pub(crate) fn into_record(
        self,
        tiers: Vec<PriceTier>,
        ga_tiers: Vec<GaTier>,
    ) -> Result<boxoffice_ports::EventRecord, StoreError> {
        Ok(boxoffice_ports::EventRecord {
            event: boxoffice_domain::Event {
                id: id(self.id, "events.id")?,
                venue_id: id::<VenueId>(self.venue_id, "events.venue_id")?,
                name: self.name,
                starts_at: self.starts_at,
                sale_starts_at: self.sale_starts_at,
                sale_ends_at: self.sale_ends_at,
                status: EventStatus::parse(&self.status).ok_or_else(|| corrupt("events.status"))?,
                hold_ttl_seconds: count(self.hold_ttl_seconds, "events.hold_ttl_seconds")?,
                max_tickets_per_order: count(
                    self.max_tickets_per_order,
                    "events.max_tickets_per_order",
                )?,
                max_tickets_per_customer: self
                    .max_tickets_per_customer
                    .map(|c| count(c, "events.max_tickets_per_customer"))
                    .transpose()?,
                waiting_room: self
                    .waiting_room
                    .map(|j| serde_json::from_str(&j).map_err(|_| corrupt("events.waiting_room")))
                    .transpose()?,
                rotating_codes: self.rotating_codes,
                currency: id(self.currency, "events.currency")?,
                tiers,
                ga_tiers,
                created_at: self.created_at,
                details: boxoffice_domain::EventDetails {
                    city: self.city,
                    category: self.category,
                    description: self.description,
                },
                org_id: id(self.org_id, "events.org_id")?,
            },
            seat_count: count(self.seat_count, "events.seat_count")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PriceTierRow {
    event_id: String,
    id: String,
    name: String,
    amount: i64,
    currency: String,
    sections: Vec<String>,
}

impl PriceTierRow {
    pub(crate) const COLUMNS: &'static str = "event_id, id, name, amount, currency, sections";
}

impl TryFrom<PriceTierRow> for PriceTier {
    type Error = StoreError;
    fn try_from(r: PriceTierRow) -> Result<Self, StoreError> {
        Ok(PriceTier {
            id: id(r.id, "price_tiers.id")?,
            name: r.name,
            price: money(r.amount, r.currency)?,
            sections: r.sections,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GaTierRow {
    event_id: String,
    id: String,
    name: String,
    amount: i64,
    currency: String,
    capacity: i32,
}

impl GaTierRow {
    pub(crate) const COLUMNS: &'static str = "event_id, id, name, amount, currency, capacity";
}

impl TryFrom<GaTierRow> for GaTier {
    type Error = StoreError;
    fn try_from(r: GaTierRow) -> Result<Self, StoreError> {
        Ok(GaTier {
            id: id(r.id, "ga_tiers.id")?,
            name: r.name,
            price: money(r.amount, r.currency)?,
            capacity: count(r.capacity, "ga_tiers.capacity")?,
        })
    }
}

/// A hold with its seats, in their order, gathered by the same statement.
#[derive(sqlx::FromRow)]
pub(crate) struct HoldRow {
    id: String,
    event_id: String,
    customer_id: String,
    status: String,
    ga_tier_id: Option<String>,
    quantity: i32,
    amount: i64,
    currency: String,
    expires_at: OffsetDateTime,
    created_at: OffsetDateTime,
    sold_at: Option<OffsetDateTime>,
    seats: Vec<String>,
}

impl HoldRow {
    /// Select list over `holds h`.
    pub(crate) const COLUMNS: &'static str = "h.id, h.event_id, h.customer_id, h.status, \
        h.ga_tier_id, h.quantity, h.amount, h.currency, h.expires_at, h.created_at, h.sold_at, \
        ARRAY(SELECT s.seat_id FROM hold_seats s WHERE s.hold_id = h.id ORDER BY s.position) AS seats";
}

impl TryFrom<HoldRow> for Hold {
    type Error = StoreError;
    fn try_from(r: HoldRow) -> Result<Self, StoreError> {
        let selection = match r.ga_tier_id {
            Some(tier) => HoldSelection::Ga {
                tier_id: id(tier, "holds.ga_tier_id")?,
                quantity: count(r.quantity, "holds.quantity")?,
            },
            None => HoldSelection::Seats(
                r.seats
                    .into_iter()
                    .map(|s| id(s, "hold_seats.seat_id"))
                    .collect::<Result<_, _>>()?,
            ),
        };
        // A converted hold with `sold_at` is sold.
        let status = match HoldStatus::parse(&r.status) {
            Some(HoldStatus::Converted) if r.sold_at.is_some() => HoldStatus::Sold,
            Some(s) => s,
            None => return Err(corrupt("holds.status")),
        };
        Ok(Hold {
            id: id::<HoldId>(r.id, "holds.id")?,
            event_id: id::<EventId>(r.event_id, "holds.event_id")?,
            customer_id: id::<UserId>(r.customer_id, "holds.customer_id")?,
            status,
            selection,
            total: money(r.amount, r.currency)?,
            expires_at: r.expires_at,
            created_at: r.created_at,
        })
    }
}

/// An order without its items and tickets (rows of their own).
#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub(crate) id: String,
    customer_id: String,
    event_id: String,
    hold_id: String,
    email: String,
    phone: Option<String>,
    status: String,
    failure_code: Option<String>,
    amount: i64,
    currency: String,
    payment_token: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    refunded_amount: i64,
}

impl OrderRow {
    pub(crate) const COLUMNS: &'static str = "id, customer_id, event_id, hold_id, email, phone, \
        status, failure_code, amount, currency, payment_token, created_at, updated_at, refunded_amount";

    pub(crate) fn into_order(
        self,
        items: Vec<OrderItem>,
        tickets: Vec<Ticket>,
    ) -> Result<Order, StoreError> {
        Ok(Order {
            id: OrderId::parse(&self.id).ok_or_else(|| corrupt("orders.id"))?,
            customer_id: id(self.customer_id, "orders.customer_id")?,
            event_id: id(self.event_id, "orders.event_id")?,
            hold_id: id(self.hold_id, "orders.hold_id")?,
            email: self.email,
            phone: self.phone,
            status: order_status(&self.status)?,
            failure_code: self.failure_code,
            items,
            refunded: money(self.refunded_amount, self.currency.clone())?,
            total: money(self.amount, self.currency)?,
            payment_token: self.payment_token,
            tickets,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) fn order_status(s: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(s).ok_or_else(|| corrupt("orders.status"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderItemRow {
    order_id: String,
    seat_id: Option<String>,
    tier_id: String,
    amount: i64,
    currency: String,
}

impl OrderItemRow {
    pub(crate) const COLUMNS: &'static str = "order_id, seat_id, tier_id, amount, currency";
}

impl TryFrom<OrderItemRow> for OrderItem {
    type Error = StoreError;
    fn try_from(r: OrderItemRow) -> Result<Self, StoreError> {
        Ok(OrderItem {
            seat_id: r.seat_id.map(|s| id::<SeatId>(s, "seat_id")).transpose()?,
            tier_id: id::<TierId>(r.tier_id, "tier_id")?,
            price: money(r.amount, r.currency)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    order_id: String,
    id: String,
    seat_id: Option<String>,
    tier_id: String,
    amount: i64,
    currency: String,
    code: String,
}

impl TicketRow {
    pub(crate) const COLUMNS: &'static str =
        "order_id, id, seat_id, tier_id, amount, currency, code";
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;
    fn try_from(r: TicketRow) -> Result<Self, StoreError> {
        Ok(Ticket {
            id: TicketId::parse(&r.id).ok_or_else(|| corrupt("tickets.id"))?,
            seat_id: r.seat_id.map(|s| id::<SeatId>(s, "seat_id")).transpose()?,
            tier_id: id::<TierId>(r.tier_id, "tier_id")?,
            price: money(r.amount, r.currency)?,
            code: r.code,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotentRow {
    user_id: String,
    route: String,
    key: String,
    fingerprint: String,
    answer: String,
    order_id: Option<String>,
}

impl IdempotentRow {
    pub(crate) const COLUMNS: &'static str = "user_id, route, key, fingerprint, answer, order_id";
}

impl TryFrom<IdempotentRow> for Idempotent {
    type Error = StoreError;
    fn try_from(r: IdempotentRow) -> Result<Self, StoreError> {
        Ok(Idempotent {
            user_id: id(r.user_id, "idempotency_keys.user_id")?,
            route: r.route,
            key: r.key,
            fingerprint: r.fingerprint,
            answer: CheckoutAnswer::from_stored(&r.answer, r.order_id.as_deref())
                .ok_or_else(|| corrupt("idempotency_keys.answer"))?,
        })
    }
}

/// Converts every row, failing on the first corrupt one.
pub(crate) fn all<R, T: TryFrom<R, Error = StoreError>>(
    rows: Vec<R>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

/// Rows that belong to a parent row (tiers to their event, items and tickets to
/// their order), read for many parents at once, in their `position` order.
pub(crate) trait ChildRow:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin
{
    const TABLE: &'static str;
    const PARENT: &'static str;
    const COLUMNS: &'static str;
    fn parent(&self) -> &str;
}

macro_rules! child_row {
    ($row:ty, $table:literal, $parent:ident) => {
        impl ChildRow for $row {
            const TABLE: &'static str = $table;
            const PARENT: &'static str = stringify!($parent);
            const COLUMNS: &'static str = <$row>::COLUMNS;
            fn parent(&self) -> &str {
                &self.$parent
            }
        }
    };
}

child_row!(PriceTierRow, "price_tiers", event_id);
child_row!(GaTierRow, "ga_tiers", event_id);
child_row!(OrderItemRow, "order_items", order_id);
child_row!(TicketRow, "tickets", order_id);

impl crate::PgStore {
    /// The children of `parents` as domain values, by parent id, in their order:
    /// one statement however many parents. Planned anew each time (not a cached,
    /// generic plan): a generic plan made while a sale's tables were nearly empty
    /// scans the whole table by sequence, and stays in the connection's cache as the
    /// tables grow — 55,000 full scans of `tickets` and `order_items` in one
    /// 50,000-seat sale, where the index finds the few rows (docs/benchmarks.md).
    pub(crate) async fn children<R: ChildRow, T: TryFrom<R, Error = StoreError>>(
        conn: &mut sqlx::PgConnection,
        parents: &[&str],
    ) -> Result<std::collections::HashMap<String, Vec<T>>, StoreError> {
        let rows = sqlx::query_as::<_, R>(&format!(
            "SELECT {} FROM {} WHERE {p} = ANY($1) ORDER BY {p}, position",
            R::COLUMNS,
            R::TABLE,
            p = R::PARENT
        ))
        .bind(parents)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(crate::map_err)?;
        let mut out: std::collections::HashMap<String, Vec<T>> = Default::default();
        for r in rows {
            let key = r.parent().to_owned();
            out.entry(key).or_default().push(T::try_from(r)?);
        }
        Ok(out)
    }

    /// Parents with their two kinds of children (an event's tiers and GA tiers, an
    /// order's items and tickets), put together by `build`: two statements more
    /// however many parents, on one connection (each use of the pool costs sqlx a
    /// ping when the connection goes back: a round trip and a task).
    pub(crate) async fn with_children<A, B, P, TA, TB, Out>(
        &self,
        parents: Vec<P>,
        id: fn(&P) -> &str,
        build: impl Fn(P, Vec<TA>, Vec<TB>) -> Result<Out, StoreError>,
    ) -> Result<Vec<Out>, StoreError>
    where
        A: ChildRow,
        B: ChildRow,
        TA: TryFrom<A, Error = StoreError>,
        TB: TryFrom<B, Error = StoreError>,
    {
        if parents.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.pool.acquire().await.map_err(crate::map_err)?;
        Self::with_children_on::<A, B, P, TA, TB, Out>(&mut conn, parents, id, build).await
    }

    /// [`PgStore::with_children`] on a connection the caller holds.
    pub(crate) async fn with_children_on<A, B, P, TA, TB, Out>(
        conn: &mut sqlx::PgConnection,
        parents: Vec<P>,
        id: fn(&P) -> &str,
        build: impl Fn(P, Vec<TA>, Vec<TB>) -> Result<Out, StoreError>,
    ) -> Result<Vec<Out>, StoreError>
    where
        A: ChildRow,
        B: ChildRow,
        TA: TryFrom<A, Error = StoreError>,
        TB: TryFrom<B, Error = StoreError>,
    {
        if parents.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<&str> = parents.iter().map(id).collect();
        let mut a = Self::children::<A, TA>(conn, &ids).await?;
        let mut b = Self::children::<B, TB>(conn, &ids).await?;
        parents
            .into_iter()
            .map(|p| {
                let (x, y) = (
                    a.remove(id(&p)).unwrap_or_default(),
                    b.remove(id(&p)).unwrap_or_default(),
                );
                build(p, x, y)
            })
            .collect()
    }
}

/// An event's waiting room settings as the `waiting_room` column keeps them (JSON).
pub(crate) fn room_json(
    room: Option<&boxoffice_domain::WaitingRoomSettings>,
) -> Result<Option<String>, StoreError> {
    room.map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Unavailable(e.into()))
}
