//! Startup and shutdown. `Application::build` binds the listener (port 0 in tests)
//! first, then opens the backends, migrates, seeds the demo and creates the first
//! admin last, and reports its address; `start` serves until `Running::stop` or a
//! signal. The order matters to a first start: a busy port must fail before anything
//! is created, and once the admin (whose generated password is shown once) exists
//! nothing is left that can fail before `main` prints it.
//! Shutdown is one cancellation token: the HTTP server drains (hyper graceful
//! shutdown), background tasks finish their current step, then the store closes.

use anyhow::Context;
use boxoffice_app::{App, AppSettings, Ports};
use boxoffice_domain::EventId;
use boxoffice_holds_memory::MemoryHoldEngine;
use boxoffice_holds_redis::RedisHoldEngine;
use boxoffice_http::HttpLimits;
use boxoffice_mail::{FileMailer, SmtpMailer};
use boxoffice_payments::{FakeStripe, FakeStripeConfig, StripeGateway, TEST_SECRET_KEY};
use boxoffice_ports::{Clock, HoldEngine, Mailer, PaymentGateway, Store, SystemClock};
use boxoffice_ports::{JobQueue, LimitClass, Quota, RateLimiter, WaitingRoom};
use boxoffice_store_postgres::PgStore;
use boxoffice_store_sqlite::SqliteStore;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backends::{Backends, EngineBackend, GatewayBackend, QueueBackend, StoreBackend};
use crate::Config;

/// Wraps the hold engine the config chose (tests only: see
/// [`Application::build_with_engine`]).
pub type EngineWrap = Box<dyn FnOnce(Arc<dyn HoldEngine>) -> Arc<dyn HoldEngine> + Send>;

/// What startup did that the operator should hear about, once.
#[derive(Debug, Clone, Default)]
pub struct StartupReport {
    /// The admin created on this start, and its password if it was generated.
    pub admin_created: Option<(String, Option<String>)>,
    pub demo_event: Option<EventId>,
}

#[derive(Debug)]
pub struct Application {
    config: Arc<Config>,
    listener: TcpListener,
    app: Arc<App>,
    store: StoreHandle,
    report: StartupReport,
    test_gateway: Option<FakeStripe>,
    limiter: Arc<dyn RateLimiter>,
    /// HTTPS on `listener`, when a certificate is configured.
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// `/metrics` alone, when it has a listener of its own.
    metrics_listener: Option<TcpListener>,
    cors_origins: Vec<axum::http::HeaderValue>,
}

/// A started application.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: CancellationToken,
    metrics_addr: Option<SocketAddr>,
    server: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    store: StoreHandle,
    test_gateway: Option<FakeStripe>,
}

/// The configured durable store, which is also the job queue (the store-as-queue).
#[derive(Debug, Clone)]
pub enum StoreHandle {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl StoreHandle {
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            StoreHandle::Sqlite(s) => Arc::new(s.clone()),
            StoreHandle::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub fn queue(&self) -> Arc<dyn JobQueue> {
        match self {
            StoreHandle::Sqlite(s) => Arc::new(s.clone()),
            StoreHandle::Postgres(s) => Arc::new(s.clone()),
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            StoreHandle::Sqlite(s) => s.migrate().await,
            StoreHandle::Postgres(s) => s.migrate().await,
        }
    }

    async fn pending_migrations(&self) -> anyhow::Result<Vec<i64>> {
        match self {
            StoreHandle::Sqlite(s) => s.pending_migrations().await,
            StoreHandle::Postgres(s) => s.pending_migrations().await,
        }
    }

    pub async fn close(&self) {
        match self {
            StoreHandle::Sqlite(s) => s.close().await,
            StoreHandle::Postgres(s) => s.close().await,
        }
    }
}

/// Binds the API's listener, saying what to do when the address is taken.
async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot serve on {addr}: the address is already in use (another boxoffice, or another \
             program, listens there). Nothing was created; choose another address with \
             --listen or BOXOFFICE_LISTEN."
        ),
        _ => anyhow::Error::new(e).context(format!("cannot serve on {addr}")),
    })
}

/// `BOXOFFICE_CORS_ORIGINS`: comma-separated origins, each `scheme://host[:port]`.
fn cors_origins(list: Option<&str>) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
    list.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && !o.ends_with('/')
                && o.split("://")
                    .nth(1)
                    .is_some_and(|h| !h.is_empty() && !h.contains('/'));
            anyhow::ensure!(
                ok && o != "*",
                "BOXOFFICE_CORS_ORIGINS: {o:?} is not an origin (scheme://host[:port], no path)"
            );
            axum::http::HeaderValue::from_str(o)
                .with_context(|| format!("BOXOFFICE_CORS_ORIGINS: {o:?}"))
        })
        .collect()
}

/// Opens the configured store and applies (or checks) migrations.
/// The server secret (signing tokens, sealing, the audit checkpoints' key): as
/// configured, else kept beside the SQLite database or in PostgreSQL.
async fn server_secret(
    configured: Option<Vec<u8>>,
    backend: &StoreBackend,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Vec<u8>> {
    Ok(match (configured, backend) {
        (Some(k), _) => k,
        (None, StoreBackend::Sqlite { dir }) => crate::secrets::from_file(&dir.join("secret.key"))?,
        (None, StoreBackend::Postgres { .. }) => {
            let candidate: [u8; 32] = rand::random();
            store
                .secret_key(&candidate)
                .await
                .context("reading the token key")?
        }
    })
}

/// `boxoffice audit verify`: walks the audit chain of the store `config` points
/// at; `Ok(Err(_))` names the first record that is not as it was appended.
pub async fn verify_audit(
    config: &Config,
) -> anyhow::Result<Result<boxoffice_app::ledger::Verified, boxoffice_app::ledger::Tampered>> {
    let backends = Backends::from_config(config)?;
    let configured = config
        .secret_key
        .as_ref()
        .map(|k| crate::secrets::configured(k.expose_secret()))
        .transpose()?;
    let store = open_store(config, false).await?;
    let dyn_store: Arc<dyn Store> = store.store();
    let secret = server_secret(configured, &backends.store, &dyn_store).await?;
    let key = boxoffice_app::ledger::CheckpointKey::new(&secret).public_hex();
    let out = boxoffice_app::ledger::verify_chain(&*dyn_store, Some(&key)).await;
    store.close().await;
    out.map_err(|e| anyhow::anyhow!("reading the audit chain: {e:?}"))
}

pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<StoreHandle> {
    let backends = Backends::from_config(config)?;
    let store = match &backends.store {
        StoreBackend::Sqlite { dir } => StoreHandle::Sqlite(SqliteStore::open(dir).await?),
        StoreBackend::Postgres { url } => {
            StoreHandle::Postgres(PgStore::connect(url, config.database_pool_size.max(2)).await?)
        }
    };
    if migrate {
        store.migrate().await?;
    } else {
        let pending = store.pending_migrations().await?;
        anyhow::ensure!(
            pending.is_empty(),
            "the database lacks migrations {pending:?}: run `boxoffice migrate` or set BOXOFFICE_AUTO_MIGRATE=true"
        );
    }
    Ok(store)
}

impl Application {
    pub async fn build(config: Arc<Config>) -> anyhow::Result<Self> {
        Self::build_full(config, Arc::new(SystemClock), None, None).await
    }

    /// For tests: the app on a clock they move by hand. The Redis engine, which
    /// otherwise decides expiry by Redis's own clock (`TIME`), then reads this one,
    /// so moving it moves expiry there too.
    pub async fn build_with_clock(
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::build_full(config, clock.clone(), Some(clock), None).await
    }

    /// For tests: as [`Self::build_with_clock`], with the hold engine wrapped (an
    /// engine that fails or pauses on cue, around the real one).
    pub async fn build_with_engine(
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        wrap: EngineWrap,
    ) -> anyhow::Result<Self> {
        Self::build_full(config, clock.clone(), Some(clock), Some(wrap)).await
    }

    async fn build_full(
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        test_clock: Option<Arc<dyn Clock>>,
        wrap: Option<EngineWrap>,
    ) -> anyhow::Result<Self> {
        let listener = bind(config.listen).await?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!(
                "set both BOXOFFICE_TLS_CERT and BOXOFFICE_TLS_KEY for HTTPS, or neither"
            ),
        };
        let cors_origins = cors_origins(config.cors_origins.as_deref())?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await.context("the metrics listener")?),
            None => None,
        };
        let backends = Backends::from_config(&config)?;
        backends.check_shared_gateway()?;
        // Before anything is created: a key too short to trust stops the start.
        let configured_key = config
            .secret_key
            .as_ref()
            .map(|k| crate::secrets::configured(k.expose_secret()))
            .transpose()?;
        let store = open_store(&config, config.auto_migrate).await?;
        let quotas = [
            (
                LimitClass::Shop,
                Quota {
                    per_minute: config.rate_limit_shop_per_minute,
                    burst: config.rate_limit_shop_burst,
                },
            ),
            (
                LimitClass::Login,
                Quota {
                    per_minute: config.rate_limit_login_per_minute,
                    burst: config.rate_limit_login_burst,
                },
            ),
            (
                LimitClass::Poll,
                Quota {
                    per_minute: config.rate_limit_poll_per_minute,
                    burst: config.rate_limit_poll_burst,
                },
            ),
            (
                LimitClass::LoginAccount,
                Quota {
                    per_minute: config.rate_limit_login_account_per_minute,
                    burst: config.rate_limit_login_account_burst,
                },
            ),
        ];
        // The rate limiter lives where the engine does: in process, or in Redis
        // (shared by every node, on the engine's clock).
        // So does the waiting room's queue.
        let (engine, limiter, room): (
            Arc<dyn HoldEngine>,
            Arc<dyn RateLimiter>,
            Arc<dyn WaitingRoom>,
        ) = match &backends.engine {
            EngineBackend::InProcess => (
                Arc::new(MemoryHoldEngine::new()),
                Arc::new(boxoffice_holds_memory::GovernorLimiter::new(
                    &quotas,
                    clock.clone(),
                )),
                Arc::new(boxoffice_holds_memory::MemoryWaitingRoom::new(
                    clock.clone(),
                )),
            ),
            EngineBackend::Redis { urls, prefix } => {
                let redis = RedisHoldEngine::connect(urls, prefix)
                    .await
                    .context("connecting to Redis")?;
                let redis = match test_clock {
                    Some(c) => redis.with_test_clock(c),
                    None => redis,
                };
                let limiter = Arc::new(redis.rate_limiter(&quotas));
                let room = Arc::new(redis.waiting_room());
                (Arc::new(redis), limiter, room)
            }
        };
        let engine = match wrap {
            Some(wrap) => wrap(engine),
            None => engine,
        };
        let dyn_store: Arc<dyn Store> = store.store();
        let token_key = server_secret(configured_key, &backends.store, &dyn_store).await?;
        // Stripe signs its webhooks with the endpoint's secret. The built-in gateway
        // is told below to send here, with this secret (generated unless set).
        let webhook_secret = match (&backends.gateway, &config.stripe_webhook_secret) {
            (_, Some(s)) => Some(s.expose_secret().to_owned()),
            (GatewayBackend::BuiltInTest { .. }, None) => Some(format!(
                "whsec_{}",
                rand::random::<[u8; 24]>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )),
            (GatewayBackend::Stripe { .. }, None) => None,
        };
        let settings = AppSettings {
            token_ttl: Duration::from_secs(config.access_token_ttl_seconds.max(1)),
            stripe_webhook_secret: webhook_secret.clone(),
            sweep_interval: Duration::from_millis(config.sweep_interval_ms.max(10)),
            catalog_refresh: Duration::from_millis(config.catalog_refresh_ms),
            hashing_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            payment_hold: Duration::from_secs(config.payment_hold_seconds.max(30)),
            gateway_timeout: Duration::from_millis(config.gateway_timeout_ms.max(100)),
            gateway_rate: config.gateway_rate_limit.max(1),
            payment_workers: config.payment_workers.max(1),
            breaker_threshold: config.gateway_breaker_threshold.max(1),
            job_lease: Duration::from_millis(config.job_lease_ms.max(1000)),
            reconcile_interval: Duration::from_millis(config.reconcile_interval_ms.max(10)),
            // Four passes: a pending order's own job has had its chance by then.
            reconcile_after: Duration::from_millis(config.reconcile_interval_ms.max(10))
                .saturating_mul(4)
                .max(Duration::from_millis(config.job_lease_ms.max(1000))),
            breaker_cooldown: Duration::from_millis(config.gateway_breaker_cooldown_ms),
            mail_from: config.mail_from.clone(),
            public_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen)),
            waitlist_offer: Duration::from_secs(config.waitlist_offer_seconds.max(1)),
            ..AppSettings::default()
        };
        let timeout = settings.gateway_timeout;
        let (gateway, test_gateway): (Arc<dyn PaymentGateway>, _) = match &backends.gateway {
            GatewayBackend::BuiltInTest {
                listen,
                latency,
                failure_rate,
            } => {
                let fake = FakeStripe::start(
                    &config.data_dir,
                    *listen,
                    FakeStripeConfig {
                        latency: *latency,
                        failure_rate: *failure_rate,
                    },
                )
                .await
                .context("starting the test payment gateway")?;
                let mut here = listener.local_addr()?;
                if here.ip().is_unspecified() {
                    here.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                fake.set_webhook_endpoint(
                    &format!("http://{here}/v1/payments/stripe/webhook"),
                    webhook_secret.as_deref().unwrap_or_default(),
                )
                .await
                .context("registering the webhook endpoint with the test payment gateway")?;
                let client = StripeGateway::new(&fake.url(), TEST_SECRET_KEY, timeout)?;
                (Arc::new(client), Some(fake))
            }
            GatewayBackend::Stripe { url } => {
                let key = config
                    .stripe_secret_key
                    .as_ref()
                    .map(|k| k.expose_secret().to_owned())
                    .unwrap_or_default();
                (Arc::new(StripeGateway::new(url, &key, timeout)?), None)
            }
        };
        let mailer: Arc<dyn Mailer> = match &config.smtp_url {
            Some(url) => {
                let ca = match &config.smtp_ca_file {
                    Some(f) => Some(std::fs::read(f).with_context(|| {
                        format!("BOXOFFICE_SMTP_CA_FILE: reading {}", f.display())
                    })?),
                    None => None,
                };
                Arc::new(SmtpMailer::new(
                    url.expose_secret(),
                    &config.mail_from,
                    ca.as_deref(),
                )?)
            }
            None => Arc::new(FileMailer::new(
                config.data_dir.join("mail"),
                &config.mail_from,
            )?),
        };
        let queue: Arc<dyn JobQueue> = match &backends.queue {
            QueueBackend::Store => store.queue(),
            QueueBackend::Nats { url, prefix } => Arc::new(
                boxoffice_queue_nats::NatsQueue::connect(url, prefix, settings.job_lease)
                    .await
                    .context("connecting to NATS JetStream")?,
            ),
        };
        let sms: Arc<dyn boxoffice_ports::SmsSender> = match config.sms {
            crate::config::SmsKind::Log => Arc::new(boxoffice_sms::LogSms),
            crate::config::SmsKind::Twilio => {
                let sender = match (
                    &config.twilio_messaging_service_sid,
                    &config.twilio_from,
                ) {
                    (Some(s), _) => boxoffice_sms::TwilioSender::MessagingService(s.clone()),
                    (None, Some(f)) => boxoffice_sms::TwilioSender::From(f.clone()),
                    (None, None) => anyhow::bail!(
                        "BOXOFFICE_SMS=twilio needs BOXOFFICE_TWILIO_FROM or BOXOFFICE_TWILIO_MESSAGING_SERVICE_SID"
                    ),
                };
                Arc::new(boxoffice_sms::TwilioSms::new(
                    &config.twilio_base_url,
                    config.twilio_account_sid.as_deref().unwrap_or_default(),
                    config
                        .twilio_auth_token
                        .clone()
                        .unwrap_or_else(|| secrecy::SecretString::from("")),
                    sender,
                    Duration::from_secs(10),
                )?)
            }
        };
        let ports = Ports {
            store: dyn_store,
            engine,
            clock,
            queue,
            gateway,
            mailer,
            sms,
            room,
        };
        let app = Arc::new(App::new(ports, token_key, settings));

        let mut report = StartupReport::default();
        if config.demo {
            report.demo_event = crate::demo::seed_if_empty(&app)
                .await
                .context("seeding the demo event")?;
        }
        // Last: see the module header.
        let password = config
            .admin_password
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        if let Some((_, generated)) = app
            .ensure_admin(&config.admin_email, password.as_deref())
            .await
            .context("creating the first admin")?
        {
            report.admin_created = Some((config.admin_email.clone(), generated));
        }
        Ok(Self {
            config,
            listener,
            app,
            store,
            report,
            test_gateway,
            limiter,
            tls,
            metrics_listener,
            cors_origins,
        })
    }

    /// Where `/metrics` is served alone, when it has a listener of its own.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn report(&self) -> &StartupReport {
        &self.report
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves in the background until stopped.
    pub fn start(self) -> Running {
        let addr = self.address();
        let shutdown = CancellationToken::new();
        let limits = HttpLimits {
            request_timeout: Duration::from_secs(self.config.request_timeout_seconds.max(1)),
            rate_limiter: Some(self.limiter.clone()),
            shutdown: shutdown.clone(),
            cors_origins: self.cors_origins.clone(),
            max_streams_per_ip: self.config.max_streams_per_ip,
            max_waits_per_customer: self.config.max_waits_per_customer,
            tls: self.tls.is_some(),
            public_metrics: self.metrics_listener.is_none(),
            ..HttpLimits::default()
        };
        // The charges listing is for test gateways only: the built-in one, or a shared
        // one reached with a Stripe test key.
        let test_mode = self.test_gateway.is_some()
            || self
                .config
                .stripe_secret_key
                .as_ref()
                .is_some_and(|k| k.expose_secret().starts_with("sk_test_"));
        let router = boxoffice_http::router(self.app.clone(), limits, test_mode);
        // The configured rate limits, visible in /metrics (once its recorder is in).
        for (class, per_minute, burst) in [
            (
                "shop",
                self.config.rate_limit_shop_per_minute,
                self.config.rate_limit_shop_burst,
            ),
            (
                "login",
                self.config.rate_limit_login_per_minute,
                self.config.rate_limit_login_burst,
            ),
            (
                "login_account",
                self.config.rate_limit_login_account_per_minute,
                self.config.rate_limit_login_account_burst,
            ),
            (
                "poll",
                self.config.rate_limit_poll_per_minute,
                self.config.rate_limit_poll_burst,
            ),
        ] {
            metrics::gauge!("boxoffice_rate_limit_per_minute", "class" => class)
                .set(f64::from(per_minute));
            metrics::gauge!("boxoffice_rate_limit_burst", "class" => class).set(f64::from(burst));
        }
        let mut background = self.app.spawn_workers(shutdown.clone());
        background.push(self.app.spawn_sweeper(shutdown.clone()));
        background.push(self.app.spawn_waitlist(shutdown.clone()));
        let serve_limits = crate::serve::ServeLimits {
            header_read_timeout: Duration::from_millis(self.config.header_read_timeout_ms.max(100)),
            max_connections: self.config.max_connections.max(1),
        };
        let metrics_addr = self.metrics_address();
        if let Some(listener) = self.metrics_listener {
            let shutdown = shutdown.clone();
            background.push(tokio::spawn(async move {
                let served = crate::serve::serve(
                    listener,
                    boxoffice_http::metrics_router(),
                    serve_limits,
                    None,
                    shutdown,
                )
                .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            }));
        }
        let server = tokio::spawn(crate::serve::serve(
            self.listener,
            router,
            serve_limits,
            self.tls.map(tokio_rustls::TlsAcceptor::from),
            shutdown.clone(),
        ));
        Running {
            addr,
            metrics_addr,
            app: self.app,
            shutdown,
            server,
            background,
            store: self.store,
            test_gateway: self.test_gateway,
        }
    }
}

impl Running {
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served alone, when `metrics_listen` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server stops on its own (a signal cancelled the token).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        self.stop().await
    }

    /// The built-in test gateway's address, when it runs.
    pub fn test_gateway_url(&self) -> Option<String> {
        self.test_gateway.as_ref().map(FakeStripe::url)
    }

    /// Stops serving, lets in-flight requests and jobs finish, stops the background
    /// tasks and the test gateway, closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let served = self.server.await.context("server task")?;
        for task in self.background {
            let _ = task.await;
        }
        if let Some(g) = self.test_gateway {
            g.stop().await;
        }
        self.store.close().await;
        served.context("serving")
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}
