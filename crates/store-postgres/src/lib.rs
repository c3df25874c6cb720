//! The durable store on PostgreSQL: the distributed mode's source of truth, shared by
//! every API node.
//!
//! It is written for PostgreSQL, not ported to it: instants are `timestamptz`
//! (bound as `time::OffsetDateTime`), counts are `integer`, section lists `text[]`,
//! outbox payloads `jsonb`; a group commit sends each run of same-kind writes as one
//! statement over array parameters (`unnest`), with the steps of a write (lock,
//! check, update, insert, enqueue) chained in one statement by data-modifying CTEs
//! (`writes.rs`); the inventory an engine is rebuilt from is read in one
//! REPEATABLE READ snapshot (`sales.rs`).
//! Where SQLite's single writer serialised writers for free, this store takes row
//! locks (`FOR UPDATE`) on the orders it changes, GA counters move only by
//! conditional updates, and the job queue is claimed with `FOR UPDATE SKIP LOCKED`,
//! so any number of nodes share it. Rows become domain values in one place
//! (`rows.rs`). Its migrations (`migrations/`) are PostgreSQL's only.
//! It must never decide a sale on its own: it records what the engine decided, and
//! its constraints refuse what must never happen (a seat sold twice, GA past capacity).

mod access;
mod catalogue;
mod checkin;
mod identity;
mod outbox;
mod queue;
mod rows;
mod sales;
mod waitlist;
mod writes;

use anyhow::Context;
use async_trait::async_trait;
use boxoffice_ports::{Store, StoreError};
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
                // The triggers of migration 0040.
                "event_cancelled" => "event_cancelled",
                // One key, two requests at once for different orders.
                "idempotency_keys_pkey" => "idempotency_keys",
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
            // sqlx pings a connection when it goes back to the pool; a second ping
            // when it is taken out would add a round trip to every statement.
            .test_before_acquire(false)
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

    /// The statements prepared on one of the pool's connections that PostgreSQL
    /// now runs with a generic plan (for tests and diagnosis: run it on a pool of
    /// one connection to see that connection's cache).
    pub async fn generic_plans(&self) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT statement FROM pg_prepared_statements WHERE generic_plans > 0",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The capabilities live one a module: `identity.rs`, `catalogue.rs`, `sales.rs`
/// (whose writes are `writes.rs`) and `outbox.rs`.
#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
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
