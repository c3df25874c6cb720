//! The durable store on PostgreSQL: the distributed mode's source of truth, shared by
//! every API node.
//!
//! It is written for PostgreSQL, not ported to it: instants are `timestamptz`
//! (bound as `time::OffsetDateTime`), counts are `integer`, section lists `text[]`,
//! outbox payloads `jsonb`; a group commit sends each run of same-kind writes as one
//! statement over array parameters (`unnest`), with the steps of a write (lock,
//! check, update, insert, enqueue) chained in one statement by data-modifying CTEs
//! (`writes.rs`); the inventory an engine is rebuilt from is read in one
//! REPEATABLE READ snapshot (`orders.rs`).
//! Where SQLite's single writer serialised writers for free, this store takes row
//! locks (`FOR UPDATE`) on the orders it changes, GA counters move only by
//! conditional updates, and the job queue is claimed with `FOR UPDATE SKIP LOCKED`,
//! so any number of nodes share it. Rows become domain values in one place
//! (`rows.rs`). Its migrations (`migrations/`) are PostgreSQL's only.
//! It must never decide a sale on its own: it records what the engine decided, and
//! its constraints refuse what must never happen (a seat sold twice, GA past capacity).

mod catalogue;
mod orders;
mod queue;
mod rows;
mod writes;

use anyhow::Context;
use async_trait::async_trait;
use boxoffice_domain::{
    event::EventSeat, Email, Event, EventId, EventStatus, Hold, HoldId, Job, MessageId, Order,
    OrderId, Seat, User, UserId, Venue, VenueId,
};
use boxoffice_ports::{
    EventRecord, Idempotent, LayoutSeat, Store, StoreError, StoredInventory, Write, Written,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

/// An instant as the store keeps it: to the millisecond, the precision every store
/// keeps (and the hold engines compare), so what is read back equals what was
/// written.
pub(crate) fn ts(t: OffsetDateTime) -> OffsetDateTime {
    boxoffice_domain::time::truncate_to_millis(t)
}

pub(crate) fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

/// Maps a constraint violation to the constraint's name; anything else is an outage.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() || db.is_check_violation() {
            // PostgreSQL names the constraint: map it to the names the ports use.
            let constraint = match db.constraint().unwrap_or_default() {
                "users_email" => "users_email",
                "sold_seats_pkey" => "sold_seats",
                "ga_capacity" => "ga_capacity",
                // A hold's seats go in with it, in one statement, whichever
                // table PostgreSQL reaches first: a repeated hold id either way.
                "holds_pkey" | "hold_seats_pkey" => "holds_pkey",
                "tickets_seat" => "tickets_seat",
                "orders_live_hold" => "orders_live_hold",
                _ => "unknown",
            };
            return StoreError::Conflict { constraint };
        }
    }
    unavailable(e)
}

/// A deadlock with another transaction, or a serialization failure: trying again
/// may succeed.
pub(crate) fn transient(e: &StoreError) -> bool {
    let StoreError::Unavailable(e) = e else {
        return false;
    };
    matches!(
        e.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("40P01" | "40001"))
    )
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    unavailable(anyhow::anyhow!("corrupt row: {what}"))
}

impl PgStore {
    /// Connects to `url` (`postgres://…`). Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(url).context("BOXOFFICE_DATABASE_URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .context("connecting to PostgreSQL")?;
        Ok(Self { pool })
    }

    /// Applies pending migrations. Safe when several nodes start at once: sqlx takes
    /// a PostgreSQL advisory lock around the run.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("running PostgreSQL migrations")
    }

    /// Versions of the migrations this binary has that the database has not applied.
    pub async fn pending_migrations(&self) -> anyhow::Result<Vec<i64>> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .or_else(|e| match &e {
                    // No table yet: nothing applied.
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                        Ok(vec![])
                    }
                    _ => Err(e),
                })?;
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.create_user_impl(user).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.user_by_email_impl(email).await
    }

    async fn admin_exists(&self) -> Result<bool, StoreError> {
        self.admin_exists_impl().await
    }

    async fn set_password_hash(&self, user: &UserId, hash: &str) -> Result<bool, StoreError> {
        self.set_password_hash_impl(user, hash).await
    }

    async fn secret_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.secret_key_impl(candidate).await
    }

    async fn claim_once(&self, what: &str) -> Result<bool, StoreError> {
        self.claim_once_impl(what).await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.user_impl(id).await
    }

    async fn create_session(&self, session: &boxoffice_ports::Session) -> Result<(), StoreError> {
        self.create_session_impl(session).await
    }

    async fn session(&self, id: &str) -> Result<Option<boxoffice_ports::Session>, StoreError> {
        self.session_impl(id).await
    }

    async fn rotate_session(
        &self,
        id: &str,
        from_generation: i64,
        token_hash: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.rotate_session_impl(id, from_generation, token_hash, expires_at)
            .await
    }

    async fn revoke_session(&self, id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.revoke_sessions_impl(Some(id), None, now)
            .await
            .map(|_| ())
    }

    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.revoke_sessions_impl(None, Some(user), now).await
    }

    async fn create_venue(&self, venue: &Venue, seats: &[Seat]) -> Result<(), StoreError> {
        self.create_venue_impl(venue, seats).await
    }

    async fn venue(&self, id: &VenueId) -> Result<Option<Venue>, StoreError> {
        self.venue_impl(id).await
    }

    async fn venue_seats(&self, id: &VenueId) -> Result<Vec<Seat>, StoreError> {
        self.venue_seats_impl(id).await
    }

    async fn list_venues(&self) -> Result<Vec<Venue>, StoreError> {
        self.list_venues_impl().await
    }

    async fn create_event(&self, event: &Event, seats: &[EventSeat]) -> Result<(), StoreError> {
        self.create_event_impl(event, seats).await
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
        self.set_event_status_impl(id, status, now).await
    }

    async fn event_layout(&self, id: &EventId) -> Result<Vec<LayoutSeat>, StoreError> {
        self.event_layout_impl(id).await
    }

    async fn write(&self, batch: &[Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        self.write_impl(batch).await
    }

    async fn hold(&self, id: &HoldId) -> Result<Option<Hold>, StoreError> {
        self.hold_impl(id).await
    }

    async fn inventory(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<StoredInventory, StoreError> {
        self.inventory_impl(event, now).await
    }

    async fn idempotent(
        &self,
        user: &UserId,
        route: &str,
        key: &str,
    ) -> Result<Option<Idempotent>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        orders::idempotent_in(&mut conn, user, route, key).await
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.orders_where("id = $1", id.as_str()).await?.pop())
    }

    async fn orders_of(&self, customer: &UserId) -> Result<Vec<Order>, StoreError> {
        self.orders_where("customer_id = $1", customer.as_str())
            .await
    }

    async fn pending_orders(&self, idle_since: OffsetDateTime) -> Result<Vec<OrderId>, StoreError> {
        self.pending_orders_impl(idle_since).await
    }

    async fn settled_among(&self, ids: &[OrderId]) -> Result<Vec<OrderId>, StoreError> {
        self.settled_among_impl(ids).await
    }

    async fn sale_stats(&self, event: &EventId) -> Result<(u64, i64), StoreError> {
        self.sale_stats_impl(event).await
    }

    async fn unrelayed(&self, limit: usize) -> Result<Vec<(MessageId, Job)>, StoreError> {
        self.unrelayed_impl(limit).await
    }

    async fn email_was_sent(&self, message: &MessageId) -> Result<bool, StoreError> {
        self.email_was_sent_impl(message).await
    }
}

/// Fresh databases for tests: each test gets its own, so tests run in parallel.
pub mod testing {
    use sqlx::Connection;

    /// `BOXOFFICE_TEST_DATABASE_URL`, or the local server's `postgres` database.
    pub fn admin_url() -> String {
        std::env::var("BOXOFFICE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database() -> anyhow::Result<String> {
        let admin = admin_url();
        let name = format!(
            "boxoffice_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }
}
