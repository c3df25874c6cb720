//! Use cases: identity, catalogue and holds, orchestrating the ports.
//!
//! This layer owns the order of side effects (engine first, then store; compensate
//! on failure) and authorisation. It must never know HTTP: errors are [`AppError`]
//! and answers are business outcomes (a checkout's is a `CheckoutAnswer`, kept as
//! such for its replays); the HTTP crate says, in one place, how each is sent.

pub mod access;
pub mod artefacts;
pub mod cancellation;
pub mod catalog;
pub mod checkin;
pub mod checkout;
mod engine_sync;
pub mod error;
mod group_commit;
pub mod holds;
pub mod identity;
pub mod ledger;
mod order_watch;
pub mod payments;
pub mod permissions;
pub mod refunds;
pub mod resilience;
mod sealing;
pub mod waiting_room;
pub mod waitlist;
pub mod workers;

use boxoffice_ports::{
    Clock, HoldEngine, JobQueue, Mailer, PaymentGateway, SmsSender, Store, WaitingRoom,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use catalog::{CachedEvent, DetailsChange, SeatTable};
pub use checkout::{CheckoutAsk, PaymentAsk};
pub use error::AppError;
pub use holds::{EngineAudit, HoldAsk, HoldView, LiveSeatMap, SeatDifference};
pub use identity::{IssuedTokens, Principal, Tokens};
pub use payments::{Attempt, Reconciled};
pub use refunds::{RefundAsk, RefundAttempt};
pub use waiting_room::{Challenge, JoinAsk, QueueState, QueueView};
pub use waitlist::{WaitlistAsk, WaitlistView};

/// The adapters the use cases run on, chosen by the server.
#[derive(Debug, Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn HoldEngine>,
    pub clock: Arc<dyn Clock>,
    pub queue: Arc<dyn JobQueue>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub mailer: Arc<dyn Mailer>,
    /// SMS with the ticket links (log-only, or Twilio).
    pub sms: Arc<dyn SmsSender>,
    /// The virtual waiting room's queue (in process, or Redis).
    pub room: Arc<dyn WaitingRoom>,
}

/// Tunables of the use cases, from the server's config.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Lifetime of an access token: how long a revoked or demoted user may keep
    /// what they had.
    pub token_ttl: Duration,
    /// How long a refresh token lasts unused (each use renews it).
    pub refresh_ttl: Duration,
    /// How long an event's sale settings (status, window) are trusted before they are
    /// read again; other nodes' changes become visible within this.
    pub catalog_refresh: Duration,
    /// How often the sweeper records expired holds.
    pub sweep_interval: Duration,
    /// How many password hashes may run at once (they are CPU-bound).
    pub hashing_concurrency: usize,
    /// How long a checked-out hold keeps its seats while its payment runs. Past it
    /// the order fails (`payment_unavailable`) and the seats go back on sale.
    pub payment_hold: Duration,
    /// Longest a single gateway call may take.
    pub gateway_timeout: Duration,
    /// Gateway calls per second, across all payment workers of this node.
    pub gateway_rate: u32,
    /// Payment workers (gateway calls in flight at once) on this node.
    pub payment_workers: usize,
    /// Consecutive gateway failures that open the circuit breaker, and how long it
    /// stays open.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// How long a claimed job is leased before another worker may take it.
    pub job_lease: Duration,
    /// How often the payment reconciler looks for unsettled orders.
    pub reconcile_interval: Duration,
    /// How long a `pending_payment` order must have been left alone before the
    /// reconciler settles it (younger ones are their payment job's).
    pub reconcile_after: Duration,
    /// How often idle workers look for jobs written by other processes.
    pub job_poll: Duration,
    /// Attempts before a non-payment job is dead-lettered.
    pub max_job_attempts: u32,
    /// The From of ticket emails.
    pub mail_from: String,
    /// Where buyers reach the web app (no trailing slash): the SMS's ticket links.
    pub public_url: String,
    /// The signing secret of Stripe webhooks (`whsec_…`); none: webhooks are not
    /// taken (not found) and the reconciler alone settles waiting payments.
    pub stripe_webhook_secret: Option<String>,
    /// How often a long-poll re-reads its order when announcements reach every node
    /// (a safety net: an announcement is what normally wakes it).
    pub order_safety_poll: Duration,
    /// How long a waitlist offer (the hold made for the next in line) lasts.
    pub waitlist_offer: Duration,
    /// How often the audit chain's head is signed (if it moved).
    pub audit_checkpoint_interval: Duration,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            catalog_refresh: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(1),
            hashing_concurrency: 2,
            payment_hold: Duration::from_secs(900),
            gateway_timeout: Duration::from_secs(10),
            gateway_rate: 100,
            payment_workers: 32,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            job_lease: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(30),
            reconcile_after: Duration::from_secs(120),
            job_poll: Duration::from_millis(200),
            max_job_attempts: 10,
            mail_from: "tickets@boxoffice.localhost".into(),
            public_url: "http://127.0.0.1:8080".into(),
            stripe_webhook_secret: None,
            order_safety_poll: Duration::from_secs(2),
            waitlist_offer: Duration::from_secs(15 * 60),
            audit_checkpoint_interval: Duration::from_secs(60),
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
    /// Seals what the store keeps but must not read (payment tokens).
    pub(crate) sealer: sealing::Sealer,
    pub(crate) catalog: catalog::Catalog,
    pub(crate) settings: AppSettings,
    pub(crate) hashing: tokio::sync::Semaphore,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) gateway: Arc<dyn PaymentGateway>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) sms: Arc<dyn SmsSender>,
    pub(crate) guard: resilience::GatewayGuard,
    /// Moves whenever this node committed jobs: idle workers wait for it.
    pub(crate) jobs_ready: watch::Sender<u64>,
    /// Long-polls waiting for their order to reach a final status.
    pub(crate) orders: order_watch::OrderWatch,
    /// Every state transition goes through it (group commit).
    pub(crate) writer: group_commit::Writer,
    /// Next actions of payments this node saw waiting on their buyer (3-D Secure).
    pub(crate) next_actions: parking_lot::Mutex<
        std::collections::HashMap<boxoffice_domain::OrderId, boxoffice_ports::NextAction>,
    >,
    /// Work that must finish whatever happens to the request that started it (a
    /// write and its compensation); [`App::settle`] waits for it.
    pub(crate) detached: tokio_util::task::TaskTracker,
    /// Brings the engine to what the store committed (and repairs it when it fails
    /// right after a commit).
    pub(crate) follower: engine_sync::Follower,
    pub(crate) room: Arc<dyn WaitingRoom>,
    /// Signs queue ids, challenges and admission tokens.
    pub(crate) room_keys: waiting_room::RoomKeys,
    /// Wakes this node's waitlist pass (seats were freed here).
    pub(crate) waitlist_nudge: tokio::sync::Notify,
    /// Signs the audit chain's checkpoints.
    pub(crate) checkpoint_key: ledger::CheckpointKey,
    /// The ticket signing keys, read from the store on first use (`checkin.rs`).
    pub(crate) ticket_keys: parking_lot::RwLock<Option<Arc<checkin::KeyRing>>>,
}

impl App {
    pub fn new(ports: Ports, token_key: Vec<u8>, settings: AppSettings) -> Self {
        let jobs_ready = watch::channel(0).0;
        Self {
            sealer: sealing::Sealer::new(&token_key),
            checkpoint_key: ledger::CheckpointKey::new(&token_key),
            room_keys: waiting_room::RoomKeys::new(&token_key),
            room: ports.room,
            waitlist_nudge: tokio::sync::Notify::new(),
            ticket_keys: Default::default(),
            tokens: Tokens::new(token_key, settings.token_ttl),
            catalog: catalog::Catalog::new(settings.catalog_refresh),
            hashing: tokio::sync::Semaphore::new(settings.hashing_concurrency.max(1)),
            guard: resilience::GatewayGuard::new(
                settings.gateway_rate,
                settings.breaker_threshold,
                settings.breaker_cooldown,
            ),
            orders: Default::default(),
            next_actions: Default::default(),
            detached: tokio_util::task::TaskTracker::new(),
            writer: group_commit::Writer::spawn(
                ports.store.clone(),
                ports.queue.clone(),
                ports.clock.clone(),
                jobs_ready.clone(),
            ),
            jobs_ready,
            follower: engine_sync::Follower {
                engine: ports.engine.clone(),
                store: ports.store.clone(),
                clock: ports.clock.clone(),
                repairs: tokio_util::task::TaskTracker::new(),
            },
            store: ports.store,
            engine: ports.engine,
            clock: ports.clock,
            queue: ports.queue,
            gateway: ports.gateway,
            mailer: ports.mailer,
            sms: ports.sms,
            settings,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Waits until the detached work started so far (writes whose requests may have
    /// gone, and their compensations) has finished, and the engine repairs it left:
    /// for shutdown, audits and tests.
    pub async fn settle(&self) {
        self.detached.close();
        self.detached.wait().await;
        self.detached.reopen();
        let repairs = &self.follower.repairs;
        repairs.close();
        repairs.wait().await;
        repairs.reopen();
    }

    /// Whether the payment gateway's circuit breaker is open (calls wait).
    pub fn gateway_circuit_open(&self) -> bool {
        self.guard.is_open()
    }

    /// Whether the store and the hold engine answer.
    pub async fn ready(&self) -> Result<(), AppError> {
        self.store.ping().await?;
        self.engine.ping().await?;
        Ok(())
    }
}
