//! The connections: one thread owns the only write connection and runs whatever it
//! is handed (a whole group-committed batch at a time, with no hand-off per
//! statement), and a few read-only connections serve reads from the blocking pool.
//!
//! rusqlite rather than an async driver: SQLite is a library call, not a server, so
//! an async driver only adds a thread hop per statement (the previous sqlx store
//! spent about half its CPU in those hops, docs/benchmarks.md).

use boxoffice_domain::Millis;
use boxoffice_ports::StoreError;
use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{oneshot, Semaphore};

/// Read connections open at once; more readers wait for one.
const READERS: usize = 4;

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    /// Feeds the writer thread; `None` once closed.
    writer: Mutex<Option<mpsc::Sender<Task>>>,
    readers: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

/// Page cache of the writer (KiB); readers keep SQLite's default, since every commit
/// of the writer empties a reader's cache at its next read.
const WRITER_CACHE_KIB: i64 = 2 * 1024;
const READER_CACHE_KIB: i64 = 2 * 1024;
/// Reads straight from the OS page cache through a mapping, not copies in SQLite's.
const MMAP_BYTES: i64 = 256 << 20;

fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // It answers with the size it took.
    conn.pragma_update_and_check(None, "mmap_size", MMAP_BYTES, |_| Ok(()))?;
    // WAL + NORMAL is durable across a process crash (what a kill -9 is); only an
    // OS crash can lose the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn closed() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the SQLite store is closed"))
}

impl Db {
    /// Opens (creating if needed) the database file and starts its writer thread.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "journal mode {mode}, not WAL"
        );
        configure(&conn, WRITER_CACHE_KIB)?;
        let (tx, rx) = mpsc::channel::<Task>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(task) = rx.recv() {
                    // A panicking task drops its answer (the caller sees the store
                    // unavailable) and rolls its transaction back; the writer lives on.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&mut conn)));
                }
            })?;
        Ok(Db {
            path: path.to_owned(),
            writer: Mutex::new(Some(tx)),
            readers: Mutex::new(Vec::new()),
            permits: Semaphore::new(READERS),
        })
    }

    /// Runs `f` on the writer connection, after whatever was handed over before.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let sender = self.writer.lock().clone().ok_or_else(closed)?;
        sender
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a read-only connection (a snapshot for as long as `f` holds a
    /// transaction open).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        let pooled = self.readers.lock().pop();
        let path = self.path.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let mut conn = match pooled {
                Some(c) => c,
                None => open_reader(&path).map_err(map_err)?,
            };
            let out = f(&mut conn);
            Ok::<_, StoreError>((conn, out))
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.into()))??;
        self.readers.lock().push(conn);
        out
    }

    /// Stops the writer after what it was handed, and closes the read connections.
    pub(crate) fn close(&self) {
        self.writer.lock().take();
        self.readers.lock().clear();
        self.permits.close();
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    configure(&conn, READER_CACHE_KIB)?;
    Ok(conn)
}

/// Maps a constraint violation to the constraint's name; anything else is an outage.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e {
        let named = [
            ("users.email", "users_email"),
            ("sold_seats.", "sold_seats"),
            ("ga_capacity", "ga_capacity"),
            ("holds.id", "holds_pkey"),
            ("tickets.event_id", "tickets_seat"),
            ("orders.hold_id", "orders_live_hold"),
            // The triggers of migration 0040 (RAISE: a trigger constraint).
            ("event_cancelled", "event_cancelled"),
            ("idempotency_keys.", "idempotency_keys"),
        ];
        let refused = matches!(
            f.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                | rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
                | rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER
        );
        if f.code == ErrorCode::ConstraintViolation && refused {
            let constraint = named
                .iter()
                .find(|(needle, _)| msg.contains(needle))
                .map_or("unknown", |(_, name)| name);
            return StoreError::Conflict { constraint };
        }
    }
    StoreError::Unavailable(e.into())
}

/// `?` on rusqlite results inside the store: constraint names kept, the rest an outage.
pub(crate) trait OrStore<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> OrStore<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map_err)
    }
}

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    Millis::from_datetime(t).0
}

pub(crate) fn dt(ms: i64) -> OffsetDateTime {
    Millis(ms).to_datetime()
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("corrupt row: {what}"))
}

/// A stored value that must parse as a domain type.
pub(crate) fn parse<T, E>(r: Result<T, E>, what: &str) -> Result<T, StoreError> {
    r.map_err(|_| corrupt(what))
}

/// Counts a committed write transaction (`boxoffice_store_commits_total`).
pub(crate) fn count_commit() {
    metrics::counter!("boxoffice_store_commits_total", "store" => "sqlite").increment(1);
}
