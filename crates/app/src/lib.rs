//! Use cases: identity, catalogue and holds, orchestrating the ports.
//!
//! This layer owns the order of side effects (engine first, then store; compensate
//! on failure) and authorisation. It must never know HTTP: errors are [`AppError`]
//! and the HTTP crate maps them, in one place, to status codes.

pub mod catalog;
pub mod error;
pub mod holds;
pub mod identity;

use boxoffice_ports::{Clock, HoldEngine, Store};
use std::sync::Arc;
use std::time::Duration;

pub use catalog::{CachedEvent, SeatTable};
pub use error::AppError;
pub use holds::{HoldAsk, HoldView, LiveSeatMap};
pub use identity::{Principal, Tokens};

/// Tunables of the use cases, from the server's config.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// How long a bearer token stays valid.
    pub token_ttl: Duration,
    /// How long an event's sale settings (status, window) are trusted before they are
    /// read again; other nodes' changes become visible within this.
    pub catalog_refresh: Duration,
    /// How often the sweeper records expired holds.
    pub sweep_interval: Duration,
    /// How many password hashes may run at once (they are CPU-bound).
    pub hashing_concurrency: usize,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(24 * 3600),
            catalog_refresh: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(1),
            hashing_concurrency: 2,
        }
    }
}

/// The application: ports plus settings. Cheap to share (`Arc<App>`).
#[derive(Debug)]
pub struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<dyn HoldEngine>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tokens: Tokens,
    pub(crate) catalog: catalog::Catalog,
    pub(crate) settings: AppSettings,
    pub(crate) hashing: tokio::sync::Semaphore,
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<dyn HoldEngine>,
        clock: Arc<dyn Clock>,
        token_key: Vec<u8>,
        settings: AppSettings,
    ) -> Self {
        Self {
            tokens: Tokens::new(token_key, settings.token_ttl),
            catalog: catalog::Catalog::default(),
            hashing: tokio::sync::Semaphore::new(settings.hashing_concurrency.max(1)),
            store,
            engine,
            clock,
            settings,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether the store and the hold engine answer.
    pub async fn ready(&self) -> Result<(), AppError> {
        self.store.ping().await?;
        self.engine.ping().await?;
        Ok(())
    }
}
