//! The durable store on SQLite, for the embedded mode: one file under the data
//! directory, WAL journal, every business write one transaction.
//!
//! SQLite has one writer at a time, so writes go through a pool of exactly one
//! connection (no `SQLITE_BUSY` storms, no upgrade deadlocks) while reads use their
//! own pool. It owns its migrations (`migrations/`), written for SQLite only.
//! It must never decide a sale on its own: it records what the engine decided, and
//! its constraints refuse what must never happen (a seat sold twice, GA past capacity).

mod orders;
mod queue;
mod writes;

use anyhow::Context;
use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Currency, Email, Event, EventId, EventStatus, GaTier, Hold, HoldId,
    HoldSelection, HoldStatus, Millis, Money, PriceTier, Role, Seat, SeatId, TierId, User, UserId,
    Venue, VenueId,
};
use boxoffice_domain::{MessageId, Order, OrderId};
use boxoffice_ports::{
    EventRecord, Idempotent, LayoutSeat, Store, StoreError, StoredInventory, Write, Written,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

/// Rows per multi-row INSERT: 8 columns × 1,000 stays well under SQLite's
/// 32,766 bound parameters.
const INSERT_CHUNK: usize = 1000;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// The in-process job queue fed by this store's commits (`queue.rs`).
    pub(crate) dispatch: std::sync::Arc<queue::Dispatcher>,
}

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    Millis::from_datetime(t).0
}

pub(crate) fn dt(ms: i64) -> OffsetDateTime {
    Millis(ms).to_datetime()
}

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

/// Maps a constraint violation to the constraint's name; anything else is an outage.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message();
        let named = [
            ("users.email", "users_email"),
            ("sold_seats.", "sold_seats"),
            ("ga_capacity", "ga_capacity"),
            ("holds.id", "holds_pkey"),
            ("tickets.event_id", "tickets_seat"),
            ("orders.hold_id", "orders_live_hold"),
        ];
        if db.is_unique_violation() || db.is_check_violation() {
            for (needle, name) in named {
                if msg.contains(needle) {
                    return StoreError::Conflict { constraint: name };
                }
            }
            return StoreError::Conflict {
                constraint: "unknown",
            };
        }
    }
    unavailable(e)
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    unavailable(anyhow::anyhow!("corrupt row: {what}"))
}

pub(crate) fn parse<T, E>(r: Result<T, E>, what: &str) -> Result<T, StoreError> {
    r.map_err(|_| corrupt(what))
}

impl SqliteStore {
    /// Opens (creating if needed) `boxoffice.db` in `dir`. Does not migrate.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let path = dir.join("boxoffice.db");
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across a process crash (what a kill -9 is);
            // only an OS crash can lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-32768");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            dispatch: Default::default(),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .context("running SQLite migrations")
    }

    /// Versions of the migrations this binary has that the database has not applied.
    pub async fn pending_migrations(&self) -> anyhow::Result<Vec<i64>> {
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.reader)
        .await?;
        let applied: Vec<i64> = if exists.is_some() {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.reader)
                .await?
        } else {
            vec![]
        };
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn load_event(&self, row: SqliteRow) -> Result<EventRecord, StoreError> {
        let id: String = row.get("id");
        let event_id = parse(EventId::try_from(id.clone()), "events.id")?;
        let tiers = sqlx::query(
            "SELECT id, name, amount, currency, sections FROM price_tiers WHERE event_id = ? ORDER BY position",
        )
        .bind(&id)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|r| {
            Ok(PriceTier {
                id: parse(TierId::try_from(r.get::<String, _>("id")), "price_tiers.id")?,
                name: r.get("name"),
                price: Money::new(
                    r.get("amount"),
                    parse(Currency::try_from(r.get::<String, _>("currency")), "currency")?,
                ),
                sections: parse(
                    serde_json::from_str(&r.get::<String, _>("sections")),
                    "price_tiers.sections",
                )?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let ga_tiers = sqlx::query(
            "SELECT id, name, amount, currency, capacity FROM ga_tiers WHERE event_id = ? ORDER BY position",
        )
        .bind(&id)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|r| {
            Ok(GaTier {
                id: parse(TierId::try_from(r.get::<String, _>("id")), "ga_tiers.id")?,
                name: r.get("name"),
                price: Money::new(
                    r.get("amount"),
                    parse(Currency::try_from(r.get::<String, _>("currency")), "currency")?,
                ),
                capacity: r.get::<i64, _>("capacity") as u32,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let event = Event {
            id: event_id,
            venue_id: parse(
                VenueId::try_from(row.get::<String, _>("venue_id")),
                "venue_id",
            )?,
            name: row.get("name"),
            starts_at: dt(row.get("starts_at")),
            sale_starts_at: row.get::<Option<i64>, _>("sale_starts_at").map(dt),
            sale_ends_at: row.get::<Option<i64>, _>("sale_ends_at").map(dt),
            status: EventStatus::parse(row.get("status"))
                .ok_or_else(|| corrupt("events.status"))?,
            hold_ttl_seconds: row.get::<i64, _>("hold_ttl_seconds") as u32,
            max_tickets_per_order: row.get::<i64, _>("max_tickets_per_order") as u32,
            currency: parse(
                Currency::try_from(row.get::<String, _>("currency")),
                "currency",
            )?,
            tiers,
            ga_tiers,
            created_at: dt(row.get("created_at")),
        };
        Ok(EventRecord {
            event,
            seat_count: row.get::<i64, _>("seat_count") as u32,
        })
    }

    async fn load_hold(&self, row: SqliteRow) -> Result<Hold, StoreError> {
        let id: String = row.get("id");
        let selection = match row.get::<Option<String>, _>("ga_tier_id") {
            Some(tier) => HoldSelection::Ga {
                tier_id: parse(TierId::try_from(tier), "holds.ga_tier_id")?,
                quantity: row.get::<i64, _>("quantity") as u32,
            },
            None => {
                let seats: Vec<String> = sqlx::query_scalar(
                    "SELECT seat_id FROM hold_seats WHERE hold_id = ? ORDER BY position",
                )
                .bind(&id)
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
                HoldSelection::Seats(
                    seats
                        .into_iter()
                        .map(|s| parse(SeatId::try_from(s), "hold_seats.seat_id"))
                        .collect::<Result<_, _>>()?,
                )
            }
        };
        Ok(Hold {
            id: parse(HoldId::try_from(id), "holds.id")?,
            event_id: parse(
                EventId::try_from(row.get::<String, _>("event_id")),
                "event_id",
            )?,
            customer_id: parse(
                UserId::try_from(row.get::<String, _>("customer_id")),
                "customer_id",
            )?,
            status: hold_status(&row)?,
            selection,
            total: Money::new(
                row.get("amount"),
                parse(
                    Currency::try_from(row.get::<String, _>("currency")),
                    "currency",
                )?,
            ),
            expires_at: dt(row.get("expires_at")),
            created_at: dt(row.get("created_at")),
        })
    }
}

fn user_from(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: parse(UserId::try_from(row.get::<String, _>("id")), "users.id")?,
        email: parse(Email::parse(row.get("email")), "users.email")?,
        password_hash: row.get("password_hash"),
        role: Role::parse(row.get("role")).ok_or_else(|| corrupt("users.role"))?,
        created_at: dt(row.get("created_at")),
    })
}

fn venue_from(row: &SqliteRow) -> Result<Venue, StoreError> {
    Ok(Venue {
        id: parse(VenueId::try_from(row.get::<String, _>("id")), "venues.id")?,
        name: row.get("name"),
        sections: parse(
            serde_json::from_str(&row.get::<String, _>("sections")),
            "sections",
        )?,
        seat_count: row.get::<i64, _>("seat_count") as u32,
        created_at: dt(row.get("created_at")),
    })
}

fn seat_from(row: &SqliteRow) -> Result<Seat, StoreError> {
    Ok(Seat {
        id: parse(SeatId::try_from(row.get::<String, _>("id")), "seats.id")?,
        position: row.get::<i64, _>("position") as u32,
        section: row.get("section"),
        row: row.get("row_label"),
        label: row.get("label"),
        x: row.get::<i64, _>("x") as i32,
        y: row.get::<i64, _>("y") as i32,
    })
}

const EVENT_COLUMNS: &str = "id, venue_id, name, starts_at, sale_starts_at, sale_ends_at, status, \
     hold_ttl_seconds, max_tickets_per_order, currency, seat_count, created_at";
const HOLD_COLUMNS: &str = "id, event_id, customer_id, status, ga_tier_id, quantity, amount, \
     currency, expires_at, created_at, sold_at";

/// The status as the domain knows it: a converted hold with `sold_at` is sold.
fn hold_status(row: &SqliteRow) -> Result<HoldStatus, StoreError> {
    match HoldStatus::parse(row.get("status")) {
        Some(HoldStatus::Converted) if row.get::<Option<i64>, _>("sold_at").is_some() => {
            Ok(HoldStatus::Sold)
        }
        Some(s) => Ok(s),
        None => Err(corrupt("holds.status")),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(ms(user.created_at))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        writes::count_commit();
        Ok(())
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT id, email, password_hash, role, created_at FROM users WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn admin_exists(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(user.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ('token_key', ?) ON CONFLICT (key) DO NOTHING")
            .bind(candidate)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        writes::count_commit();
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'token_key'")
            .fetch_one(&self.writer)
            .await
            .map_err(map_err)
    }

    async fn claim_once(&self, what: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(format!("once:{what}"))
                .bind(Vec::<u8>::new())
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
        writes::count_commit();
        Ok(done.rows_affected() == 1)
    }

    async fn create_venue(&self, venue: &Venue, seats: &[Seat]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO venues (id, name, sections, seat_count, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(venue.id.as_str())
            .bind(&venue.name)
            .bind(serde_json::to_string(&venue.sections).map_err(unavailable)?)
            .bind(i64::from(venue.seat_count))
            .bind(ms(venue.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        for chunk in seats.chunks(INSERT_CHUNK) {
            QueryBuilder::<Sqlite>::new(
                "INSERT INTO seats (id, venue_id, position, section, row_label, label, x, y) ",
            )
            .push_values(chunk, |mut b, s| {
                b.push_bind(s.id.as_str())
                    .push_bind(venue.id.as_str())
                    .push_bind(i64::from(s.position))
                    .push_bind(&s.section)
                    .push_bind(&s.row)
                    .push_bind(&s.label)
                    .push_bind(i64::from(s.x))
                    .push_bind(i64::from(s.y));
            })
            .build()
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        writes::count_commit();
        Ok(())
    }

    async fn venue(&self, id: &VenueId) -> Result<Option<Venue>, StoreError> {
        sqlx::query("SELECT id, name, sections, seat_count, created_at FROM venues WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(venue_from)
            .transpose()
    }

    async fn venue_seats(&self, id: &VenueId) -> Result<Vec<Seat>, StoreError> {
        sqlx::query(
            "SELECT id, position, section, row_label, label, x, y FROM seats WHERE venue_id = ? ORDER BY position",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?
        .iter()
        .map(seat_from)
        .collect()
    }

    async fn list_venues(&self) -> Result<Vec<Venue>, StoreError> {
        sqlx::query("SELECT id, name, sections, seat_count, created_at FROM venues ORDER BY id")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(venue_from)
            .collect()
    }

    async fn create_event(&self, event: &Event, seats: &[EventSeat]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query(&format!(
            "INSERT INTO events ({EVENT_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(event.id.as_str())
        .bind(event.venue_id.as_str())
        .bind(&event.name)
        .bind(ms(event.starts_at))
        .bind(event.sale_starts_at.map(ms))
        .bind(event.sale_ends_at.map(ms))
        .bind(event.status.as_str())
        .bind(i64::from(event.hold_ttl_seconds))
        .bind(i64::from(event.max_tickets_per_order))
        .bind(event.currency.as_str())
        .bind(seats.len() as i64)
        .bind(ms(event.created_at))
        .bind(ms(event.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        for (i, t) in event.tiers.iter().enumerate() {
            sqlx::query("INSERT INTO price_tiers (id, event_id, position, name, amount, currency, sections) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(t.id.as_str())
                .bind(event.id.as_str())
                .bind(i as i64)
                .bind(&t.name)
                .bind(t.price.amount)
                .bind(t.price.currency.as_str())
                .bind(serde_json::to_string(&t.sections).map_err(unavailable)?)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for (i, t) in event.ga_tiers.iter().enumerate() {
            sqlx::query("INSERT INTO ga_tiers (id, event_id, position, name, amount, currency, capacity) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(t.id.as_str())
                .bind(event.id.as_str())
                .bind(i as i64)
                .bind(&t.name)
                .bind(t.price.amount)
                .bind(t.price.currency.as_str())
                .bind(i64::from(t.capacity))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for (c, chunk) in seats.chunks(INSERT_CHUNK).enumerate() {
            QueryBuilder::<Sqlite>::new(
                "INSERT INTO event_seats (event_id, seat_index, seat_id, tier_id) ",
            )
            .push_values(chunk.iter().enumerate(), |mut b, (i, s)| {
                b.push_bind(event.id.as_str())
                    .push_bind((c * INSERT_CHUNK + i) as i64)
                    .push_bind(s.seat_id.as_str())
                    .push_bind(s.tier_id.as_str());
            })
            .build()
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        writes::count_commit();
        Ok(())
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        match row {
            Some(r) => Ok(Some(self.load_event(r).await?)),
            None => Ok(None),
        }
    }

    async fn list_events(&self, include_drafts: bool) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE ? OR status <> 'draft' ORDER BY starts_at, id"
        ))
        .bind(include_drafts)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.load_event(r).await?);
        }
        Ok(out)
    }

    async fn set_event_status(
        &self,
        id: &EventId,
        status: EventStatus,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE events SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(ms(now))
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        writes::count_commit();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn event_layout(&self, id: &EventId) -> Result<Vec<LayoutSeat>, StoreError> {
        sqlx::query(
            "SELECT s.id, s.position, s.section, s.row_label, s.label, s.x, s.y, es.tier_id \
             FROM event_seats es JOIN seats s ON s.id = es.seat_id \
             WHERE es.event_id = ? ORDER BY es.seat_index",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(LayoutSeat {
                seat: seat_from(r)?,
                tier_id: parse(TierId::try_from(r.get::<String, _>("tier_id")), "tier_id")?,
            })
        })
        .collect()
    }

    async fn write(&self, batch: &[Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_impl(batch).await
    }

    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        match row {
            Some(r) => Ok(Some(self.load_hold(r).await?)),
            None => Ok(None),
        }
    }

    async fn inventory(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<StoredInventory, StoreError> {
        // One read transaction, so holds and sales are seen at the same instant.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = ? AND status IN ('active', 'converted') AND sold_at IS NULL AND expires_at > ?"
        ))
        .bind(event.as_str())
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let seat_rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT hs.hold_id, hs.seat_id FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id \
             WHERE h.event_id = ? AND h.status IN ('active', 'converted') AND h.sold_at IS NULL AND h.expires_at > ? \
             ORDER BY hs.hold_id, hs.position",
        )
        .bind(event.as_str())
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut seats_of: HashMap<String, Vec<SeatId>> = HashMap::new();
        for (h, s) in seat_rows {
            seats_of
                .entry(h)
                .or_default()
                .push(parse(SeatId::try_from(s), "hold_seats.seat_id")?);
        }
        let mut live_holds = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.get("id");
            let selection = match row.get::<Option<String>, _>("ga_tier_id") {
                Some(t) => HoldSelection::Ga {
                    tier_id: parse(TierId::try_from(t), "ga_tier_id")?,
                    quantity: row.get::<i64, _>("quantity") as u32,
                },
                None => HoldSelection::Seats(seats_of.remove(&id).unwrap_or_default()),
            };
            live_holds.push(Hold {
                id: parse(HoldId::try_from(id), "holds.id")?,
                event_id: event.clone(),
                customer_id: parse(
                    UserId::try_from(row.get::<String, _>("customer_id")),
                    "customer_id",
                )?,
                status: HoldStatus::parse(row.get("status"))
                    .ok_or_else(|| corrupt("holds.status"))?,
                selection,
                total: Money::new(
                    row.get("amount"),
                    parse(
                        Currency::try_from(row.get::<String, _>("currency")),
                        "currency",
                    )?,
                ),
                expires_at: dt(row.get("expires_at")),
                created_at: dt(row.get("created_at")),
            });
        }
        let sold_seats =
            sqlx::query_scalar::<_, String>("SELECT seat_id FROM sold_seats WHERE event_id = ?")
                .bind(event.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .into_iter()
                .map(|s| parse(SeatId::try_from(s), "sold_seats.seat_id"))
                .collect::<Result<_, _>>()?;
        let ga_sold = sqlx::query_scalar::<_, i64>(
            "SELECT sold FROM ga_tiers WHERE event_id = ? ORDER BY position",
        )
        .bind(event.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|n| n as u32)
        .collect();
        tx.commit().await.map_err(map_err)?;
        Ok(StoredInventory {
            live_holds,
            sold_seats,
            ga_sold,
        })
    }

    async fn idempotent(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        self.idempotent_impl(user, route, key).await
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.order_impl(id).await
    }

    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError> {
        self.orders_of_impl(customer).await
    }

    async fn pending_orders(&self) -> Result<Vec<OrderId>, StoreError> {
        self.pending_orders_impl().await
    }

    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError> {
        self.sale_stats_impl(event).await
    }

    async fn unrelayed(
        &self,
        limit: usize,
    ) -> Result<Vec<(MessageId, boxoffice_domain::Job)>, StoreError> {
        self.unrelayed_impl(limit).await
    }

    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM emails_sent WHERE message_id = ?")
            .bind(message.as_str())
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }
}
