//! The durable store on SQLite, for the embedded mode: one file under the data
//! directory, WAL journal, every business write one transaction.
//!
//! SQLite has one writer at a time, so one thread owns the only write connection
//! and runs each group-committed batch whole (`db.rs`, `writes.rs`) while reads use
//! their own read-only connections. It owns its migrations (`migrations/`), written
//! for SQLite only. It must never decide a sale on its own: it records what the
//! engine decided, and its constraints refuse what must never happen (a seat sold
//! twice, GA past capacity).

mod access;
mod catalogue;
mod checkin;
mod db;
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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use db::{count_commit, Db, OrStore};

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
    pub(crate) async fn transaction<T: Send + 'static>(
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

/// The capabilities live one a module: `identity.rs`, `catalogue.rs`, `sales.rs`
/// (whose writes are `writes.rs`) and `outbox.rs`.
#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .read(|conn| rows::scalar::<i64>(conn, "SELECT 1", []).map(drop))
            .await
    }
}
