//! The durable store on SQLite, for the embedded mode: one file under the data
//! directory, WAL journal, every business write one transaction.
//!
//! SQLite has one writer at a time, so one thread owns the only write connection
//! and runs each group-committed batch whole (`db.rs`, `writes.rs`) while reads use
//! their own read-only connections. It owns its migrations (`migrations/`), written
//! for SQLite only. It must never decide a sale on its own: it records what the
//! engine decided, and its constraints refuse what must never happen (a seat sold
//! twice, GA past capacity).

mod db;
mod orders;
mod queue;
mod rows;
mod writes;

use anyhow::Context;
use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Email, Event, EventId, EventStatus, Hold, HoldId, MessageId, Order, OrderId,
    Seat, SeatId, User, UserId, Venue, VenueId,
};
use boxoffice_ports::{
    EventRecord, Idempotent, LayoutSeat, Session, Store, StoreError, StoredInventory, Write,
    Written,
};
use rusqlite::params;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

use db::{count_commit, ms, parse, Db, OrStore};
use rows::{EVENT_COLUMNS, HOLD_COLUMNS, SEAT_COLUMNS, USER_COLUMNS, VENUE_COLUMNS};

/// The schema, applied by sqlx's migrator (whose `_sqlx_migrations` table existing
/// data directories already carry).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) db: Arc<Db>,
    path: PathBuf,
    /// The in-process job queue fed by this store's commits (`queue.rs`).
    pub(crate) dispatch: Arc<queue::Dispatcher>,
}

impl SqliteStore {
    /// Opens (creating if needed) `boxoffice.db` in `dir`. Does not migrate.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let path = dir.join("boxoffice.db");
        let db = Db::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            db: Arc::new(db),
            path,
            dispatch: Default::default(),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions};
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.path)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true)
            .connect()
            .await
            .with_context(|| format!("opening {} to migrate", self.path.display()))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .context("running SQLite migrations")?;
        sqlx::Connection::close(conn).await?;
        Ok(())
    }

    /// Versions of the migrations this binary has that the database has not applied.
    pub async fn pending_migrations(&self) -> anyhow::Result<Vec<i64>> {
        let applied = self
            .db
            .read(|conn| {
                let exists = rows::scalar::<String>(
                    conn,
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                    [],
                )?;
                if exists.is_none() {
                    return Ok(vec![]);
                }
                rows::all(
                    conn,
                    "SELECT version FROM _sqlx_migrations WHERE success",
                    [],
                    |r| r.get::<_, i64>(0).db(),
                )
            })
            .await?;
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    pub async fn close(&self) {
        self.db.close();
    }

    /// Runs `f` in one write transaction of its own (the catalogue and identity
    /// writes, which are not group-committed).
    async fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.db
            .write(|conn| {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .db()?;
                let out = f(&tx)?;
                tx.commit().db()?;
                count_commit();
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .read(|conn| rows::scalar::<i64>(conn, "SELECT 1", []).map(drop))
            .await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute(params![
                user.id.as_str(),
                user.email.as_str(),
                user.password_hash,
                user.role.as_str(),
                ms(user.created_at)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"),
                    [email],
                    rows::user,
                )
            })
            .await
    }

    async fn admin_exists(&self) -> Result<bool, StoreError> {
        self.db
            .read(|conn| {
                rows::scalar::<i64>(conn, "SELECT COUNT(*) FROM users WHERE role = 'admin'", [])
                    .map(|n| n.unwrap_or(0) > 0)
            })
            .await
    }

    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError> {
        let (user, hash) = (user.as_str().to_owned(), hash.to_owned());
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached("UPDATE users SET password_hash = ? WHERE id = ?")
                .db()?
                .execute([hash, user])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let candidate = candidate.to_vec();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "INSERT INTO settings (key, value) VALUES ('token_key', ?) ON CONFLICT (key) DO NOTHING",
            )
            .db()?
            .execute([candidate])
            .db()?;
            rows::scalar::<Vec<u8>>(tx, "SELECT value FROM settings WHERE key = 'token_key'", [])?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"),
                    [id],
                    rows::user,
                )
            })
            .await
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session.clone();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "INSERT INTO sessions (id, user_id, generation, token_hash, created_at, expires_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .db()?
            .execute(params![
                s.id,
                s.user_id.as_str(),
                s.generation,
                s.token_hash,
                ms(s.created_at),
                ms(s.expires_at),
                s.revoked_at.map(ms)
            ])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let id = id.to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    "SELECT id, user_id, generation, token_hash, created_at, expires_at, revoked_at \
                     FROM sessions WHERE id = ?",
                    [id],
                    rows::session,
                )
            })
            .await
    }

    async fn rotate_session(
        &self,
        id: &str,
        from_generation: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (id, hash) = (id.to_owned(), token_hash.to_owned());
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE sessions SET generation = generation + 1, token_hash = ?, expires_at = ? \
                     WHERE id = ? AND generation = ? AND revoked_at IS NULL",
                )
                .db()?
                .execute(params![hash, ms(expires_at), id, from_generation])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke_session(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.transaction(move |tx| {
            tx.prepare_cached(
                "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            )
            .db()?
            .execute(params![ms(now), id])
            .db()?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let user = user.as_str().to_owned();
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                )
                .db()?
                .execute(params![ms(now), user])
                .db()?;
            Ok(n as u64)
        })
        .await
    }

    async fn claim_once(&self, what: &str) -> Result<bool, StoreError> {
        let key = format!("once:{what}");
        self.transaction(move |tx| {
            let n = tx
                .prepare_cached(
                    "INSERT INTO settings (key, value) VALUES (?, x'') ON CONFLICT DO NOTHING",
                )
                .db()?
                .execute([key])
                .db()?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_venue(&self, venue: &Venue, seats: &[Seat]) -> Result<(), StoreError> {
        let (venue, seats) = (venue.clone(), seats.to_vec());
        let sections = serde_json::to_string(&venue.sections)
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO venues ({VENUE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            ))
            .db()?
            .execute(params![
                venue.id.as_str(),
                venue.name,
                sections,
                venue.seat_count,
                ms(venue.created_at)
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
        let sections = event
            .tiers
            .iter()
            .map(|t| serde_json::to_string(&t.sections))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        self.transaction(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO events ({EVENT_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"),
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
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE ? OR status <> 'draft' ORDER BY starts_at, id"),
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
            let n = tx
                .prepare_cached("UPDATE events SET status = ?, updated_at = ? WHERE id = ?")
                .db()?
                .execute(params![status.as_str(), ms(now), id])
                .db()?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
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

    async fn write(&self, batch: &[Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_impl(batch).await
    }

    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .read(move |conn| {
                rows::first(
                    conn,
                    &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = ?"),
                    [id],
                    |r| rows::hold(r, |h| rows::hold_seats(conn, h)),
                )
            })
            .await
    }

    async fn inventory(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<StoredInventory, StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                // One read transaction, so holds and sales are seen at the same instant.
                let tx = conn.transaction().db()?;
                let mut seats_of: HashMap<String, Vec<SeatId>> = HashMap::new();
                for (hold, seat) in rows::all(
                    &tx,
                    "SELECT hs.hold_id, hs.seat_id FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id \
                     WHERE h.event_id = ? AND h.status IN ('active', 'converted') AND h.sold_at IS NULL AND h.expires_at > ? \
                     ORDER BY hs.hold_id, hs.position",
                    params![event, ms(now)],
                    |r| Ok((r.get::<_, String>(0).db()?, r.get::<_, String>(1).db()?)),
                )? {
                    seats_of
                        .entry(hold)
                        .or_default()
                        .push(parse(SeatId::try_from(seat), "hold_seats.seat_id")?);
                }
                let live_holds = rows::all(
                    &tx,
                    &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = ? AND status IN ('active', 'converted') AND sold_at IS NULL AND expires_at > ?"),
                    params![event, ms(now)],
                    |r| {
                        rows::hold(r, |h| Ok(seats_of.get(h).cloned().unwrap_or_default()))
                    },
                )?;
                let sold_seats = rows::all(
                    &tx,
                    "SELECT seat_id FROM sold_seats WHERE event_id = ?",
                    [&event],
                    |r| parse(SeatId::try_from(r.get::<_, String>(0).db()?), "sold_seats.seat_id"),
                )?;
                let ga_sold = rows::all(
                    &tx,
                    "SELECT sold FROM ga_tiers WHERE event_id = ? ORDER BY position",
                    [&event],
                    |r| Ok(r.get::<_, i64>(0).db()? as u32),
                )?;
                Ok(StoredInventory {
                    live_holds,
                    sold_seats,
                    ga_sold,
                })
            })
            .await
    }

    async fn idempotent(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        let (user, route, key) = (user.clone(), route.to_owned(), key.to_owned());
        self.db
            .read(move |conn| orders::idempotent_in(conn, &user, &route, &key))
            .await
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let id = id.clone();
        self.db.read(move |conn| orders::order(conn, &id)).await
    }

    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError> {
        let customer = customer.clone();
        self.db
            .read(move |conn| orders::orders_of(conn, &customer))
            .await
    }

    async fn pending_orders(&self, idle_since: OffsetDateTime) -> Result<Vec<OrderId>, StoreError> {
        self.db
            .read(move |conn| orders::pending(conn, idle_since))
            .await
    }

    async fn settled_among(&self, ids: &[OrderId]) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|o| o.as_str().to_owned()).collect();
        self.db
            .read(move |conn| orders::settled_among(conn, &ids))
            .await
    }

    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError> {
        let event = event.as_str().to_owned();
        self.db
            .read(move |conn| {
                Ok(rows::first(
                    conn,
                    "SELECT tickets, revenue FROM event_sales WHERE event_id = ?",
                    [event],
                    |r| Ok((r.get::<_, i64>(0).db()? as u64, r.get::<_, i64>(1).db()?)),
                )?
                .unwrap_or((0, 0)))
            })
            .await
    }

    async fn unrelayed(
        &self,
        limit: usize,
    ) -> Result<Vec<(MessageId, boxoffice_domain::Job)>, StoreError> {
        self.db
            .read(move |conn| orders::unrelayed(conn, limit))
            .await
    }

    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        let message = message.as_str().to_owned();
        self.db
            .read(move |conn| {
                Ok(rows::scalar::<i64>(
                    conn,
                    "SELECT COUNT(*) FROM emails_sent WHERE message_id = ?",
                    [message],
                )?
                .unwrap_or(0)
                    > 0)
            })
            .await
    }
}
