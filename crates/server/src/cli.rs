//! The command line: the subcommands, and one flag per setting of [`Config`], each
//! naming its `BOXOFFICE_*` variable in `--help`. Flags are the last layer of the
//! configuration (defaults, file, environment, flags); this module only parses
//! them, `config.rs` merges and validates. The flags are global, so
//! `boxoffice serve --listen …` and `boxoffice --listen … serve` mean the same.
//!
//! Clap reads each variable too (that is what puts its name in `--help`); the value
//! it hands over is the one figment would have read, so nothing is read twice
//! differently. Secrets' values are never shown in `--help` (`hide_env_values`).

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{GatewayKind, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "High-traffic event ticketing: one binary, embedded (SQLite) or distributed (PostgreSQL, Redis, NATS).",
    after_help = "Settings come from defaults, then the TOML file (--config), then BOXOFFICE_* variables, then flags. \
                  `boxoffice config` prints the result."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A TOML file with the same keys as the flags (`data_dir = "…"`); unset:
    /// ./boxoffice.toml when it exists.
    #[arg(long, global = true, env = "BOXOFFICE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create another demo venue and event, on sale, and print its id.
    SeedDemo,
    /// Run the test payment gateway (a fake Stripe) alone, on --gateway-listen with
    /// its records in --data-dir, for several nodes to share.
    TestGateway,
    /// Print the effective configuration as TOML, secrets redacted.
    Config,
    /// TLS helpers.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Account maintenance on the store, whether or not a server runs on it.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain of the store the configuration points at: exit 0 with
    /// the record count when intact; otherwise name the first altered, removed or
    /// inserted record (by sequence number and id) and exit 1.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Write a self-signed certificate and key for trying HTTPS (`cert.pem`,
    /// `key.pem` in DIR, for localhost and 127.0.0.1); not for production.
    SelfSigned {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// More names the certificate is valid for (DNS names or IP addresses).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Give an account a new generated password and print it (the admin by
    /// default; with no admin at all, creates it).
    ResetPassword {
        /// The account's email; default: --admin-email.
        #[arg(long)]
        email: Option<String>,
    },
}

/// One optional flag per configuration key, named as the key (`data_dir` is
/// `--data-dir`). Only the flags given are serialized, so they override exactly
/// what they name.
#[derive(Debug, Default, Clone, Args, Serialize)]
pub struct Settings {
    /// Address:port to serve on (port 0: any free port).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_LISTEN",
        value_name = "ADDR",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Embedded mode's data directory (SQLite database, emails, test gateway records).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_DATA_DIR",
        value_name = "DIR",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The admin created on first start.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_ADMIN_EMAIL",
        value_name = "EMAIL",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_email: Option<String>,
    /// Its password on first start; unset: generated and printed once.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_ADMIN_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// Seed the demo event on an empty database.
    #[arg(long, global = true, env = "BOXOFFICE_DEMO", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Server")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<bool>,
    /// `serve` applies pending migrations (else refuses to start with any pending).
    #[arg(long, global = true, env = "BOXOFFICE_AUTO_MIGRATE", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Server")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_migrate: Option<bool>,
    /// Token signing key; unset: generated once and kept in the store.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_SECRET_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// Log filter (`info`, `boxoffice=debug,sqlx=warn`, …).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_LOG",
        value_name = "FILTER",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_LOG_FORMAT",
        value_enum,
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Longest a request may take (then 503 `timeout`).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_REQUEST_TIMEOUT_SECONDS",
        value_name = "S",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_seconds: Option<u64>,
    /// Longest a client may take to send a request's headers (then the
    /// connection is closed): a slow client cannot hold a connection forever.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_HEADER_READ_TIMEOUT_MS",
        value_name = "MS",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_ms: Option<u64>,
    /// Open connections this node serves at once; one more is answered 503
    /// `too_many_connections` and closed.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// PEM certificate chain: with --tls-key, the API speaks HTTPS.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TLS_CERT",
        value_name = "FILE",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TLS_KEY",
        value_name = "FILE",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Browser origins allowed to call the API (CORS), comma-separated; unset: none.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_CORS_ORIGINS",
        value_name = "ORIGINS",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<String>,
    /// Serve /metrics on this address:port only (then 404 on the API's listener).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_METRICS_LISTEN",
        value_name = "ADDR",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Event streams (SSE) one IP may hold open on a node; one more is 429.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_MAX_STREAMS_PER_IP",
        value_name = "N",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_streams_per_ip: Option<usize>,
    /// Order long-polls one customer may hold at once on a node; past it a poll
    /// answers at once.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_MAX_WAITS_PER_CUSTOMER",
        value_name = "N",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_waits_per_customer: Option<usize>,
    /// Lifetime of an access token (refresh tokens renew it): how long a revoked
    /// or demoted user may keep what they had.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_ACCESS_TOKEN_TTL_SECONDS",
        value_name = "S",
        help_heading = "Server"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl_seconds: Option<u64>,

    /// `postgres://…` selects PostgreSQL; unset: SQLite in the data directory.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Backends"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// PostgreSQL connections per node.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_DATABASE_POOL_SIZE",
        value_name = "N",
        help_heading = "Backends"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_size: Option<u32>,
    /// Redis hold engine (a comma-separated list: Redis Cluster); unset: in-process.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_REDIS_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Backends"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Namespace of every Redis key.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_REDIS_PREFIX",
        value_name = "PREFIX",
        help_heading = "Backends"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
    /// NATS JetStream job queue; unset: the store's own queue.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_NATS_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Backends"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// Names the NATS stream and subjects.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_NATS_PREFIX",
        value_name = "PREFIX",
        help_heading = "Backends"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_prefix: Option<String>,

    /// `test` (built-in fake Stripe, test cards only) or `stripe`.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY",
        value_enum,
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayKind>,
    /// Where the built-in test gateway listens (port 0: any free port).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_LISTEN",
        value_name = "ADDR",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_listen: Option<SocketAddr>,
    /// Test gateway: added latency per charge.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_LATENCY_MS",
        value_name = "MS",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_latency_ms: Option<u64>,
    /// Test gateway: share of transient failures, 0 to 1.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_FAILURE_RATE",
        value_name = "RATE",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_failure_rate: Option<f64>,
    /// With `--gateway stripe`: the API base.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_STRIPE_URL",
        value_name = "URL",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_url: Option<String>,
    /// With `--gateway stripe`: the secret key.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_STRIPE_SECRET_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_secret_key: Option<String>,
    /// The signing secret of Stripe's webhooks (`whsec_…`).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_webhook_secret: Option<String>,
    /// Holds and checkouts one client (customer, else IP) may make a minute, sustained (0: no limit).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_SHOP_PER_MINUTE",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_shop_per_minute: Option<u32>,
    /// Holds and checkouts one client may make at once on top of the rate, from rest.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_SHOP_BURST",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_shop_burst: Option<u32>,
    /// Logins one IP may make a minute, sustained (0: no limit).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_LOGIN_PER_MINUTE",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_login_per_minute: Option<u32>,
    /// Logins one IP may make at once on top of the rate, from rest.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_LOGIN_BURST",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_login_burst: Option<u32>,
    /// Logins to one account a minute, from any number of IPs (0: no limit).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_LOGIN_ACCOUNT_PER_MINUTE",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_login_account_per_minute: Option<u32>,
    /// Logins to one account at once on top of the rate, from rest.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_LOGIN_ACCOUNT_BURST",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_login_account_burst: Option<u32>,
    /// Reads of one's place in a waiting room's queue per queue id a minute (0: no limit).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_POLL_PER_MINUTE",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_poll_per_minute: Option<u32>,
    /// Queue reads one queue id may make at once on top of the rate, from rest.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RATE_LIMIT_POLL_BURST",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_poll_burst: Option<u32>,
    /// Gateway calls per second from this node.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_RATE_LIMIT",
        value_name = "N",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_rate_limit: Option<u32>,
    /// Longest one gateway call may take.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_TIMEOUT_MS",
        value_name = "MS",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_timeout_ms: Option<u64>,
    /// Consecutive gateway failures that open the circuit breaker.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_BREAKER_THRESHOLD",
        value_name = "N",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_breaker_threshold: Option<u32>,
    /// How long the breaker stays open before one probe call.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_GATEWAY_BREAKER_COOLDOWN_MS",
        value_name = "MS",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_breaker_cooldown_ms: Option<u64>,
    /// Payment calls in flight at once on this node.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_PAYMENT_WORKERS",
        value_name = "N",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_workers: Option<usize>,
    /// How long a checked-out hold keeps its seats while its payment runs.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_PAYMENT_HOLD_SECONDS",
        value_name = "S",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_hold_seconds: Option<u64>,

    /// How long a waitlist offer (a hold made for the next in line) lasts.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_WAITLIST_OFFER_SECONDS",
        value_name = "S",
        help_heading = "Payments"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist_offer_seconds: Option<u64>,

    /// `smtp://[user:pass@]host[:port]` for ticket emails; unset: .eml files in
    /// <data dir>/mail.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_SMTP_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Mail"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// A CA certificate (PEM) to trust for the SMTP relay, besides the system's roots.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_SMTP_CA_FILE",
        value_name = "FILE",
        help_heading = "Mail"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// Where buyers reach the web app (the ticket links in SMS); unset: http://<listen>.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_PUBLIC_URL",
        value_name = "URL",
        help_heading = "Mail"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `log` (SMS are logged, not sent) or `twilio`.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_SMS",
        value_enum,
        help_heading = "SMS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<crate::config::SmsKind>,
    /// Twilio's API base (https, or http on loopback for a local fake).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TWILIO_BASE_URL",
        value_name = "URL",
        help_heading = "SMS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_base_url: Option<String>,
    /// The Twilio account SID (`AC…`).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TWILIO_ACCOUNT_SID",
        value_name = "SID",
        help_heading = "SMS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_account_sid: Option<String>,
    /// The Twilio auth token.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TWILIO_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "SMS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_auth_token: Option<String>,
    /// The sender number (E.164) of SMS.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TWILIO_FROM",
        value_name = "NUMBER",
        help_heading = "SMS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_from: Option<String>,
    /// A messaging service (`MG…`) to send from instead of a number.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_TWILIO_MESSAGING_SERVICE_SID",
        value_name = "SID",
        help_heading = "SMS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_messaging_service_sid: Option<String>,
    /// The sender of ticket emails.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_MAIL_FROM",
        value_name = "ADDRESS",
        help_heading = "Mail"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,

    /// How often expired holds are recorded as such.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_SWEEP_INTERVAL_MS",
        value_name = "MS",
        help_heading = "Tuning"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep_interval_ms: Option<u64>,
    /// How long a node trusts its cached event status.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_CATALOG_REFRESH_MS",
        value_name = "MS",
        help_heading = "Tuning"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_refresh_ms: Option<u64>,
    /// How long a claimed job is leased (keep it above the gateway timeout).
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_JOB_LEASE_MS",
        value_name = "MS",
        help_heading = "Tuning"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_lease_ms: Option<u64>,
    /// How often the payment reconciler settles orders stuck waiting for the gateway.
    #[arg(
        long,
        global = true,
        env = "BOXOFFICE_RECONCILE_INTERVAL_MS",
        value_name = "MS",
        help_heading = "Tuning"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile_interval_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_is_a_flag_and_every_flag_a_setting() {
        let flags: std::collections::BTreeSet<String> = Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !matches!(*l, "config" | "help" | "version"))
            .map(|l| l.replace('-', "_"))
            .collect();
        let keys: std::collections::BTreeSet<String> = crate::config::Config::keys()
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(flags, keys);
    }

    #[test]
    fn flags_work_after_the_subcommand_and_name_their_variable() {
        let cli = Cli::try_parse_from([
            "boxoffice",
            "serve",
            "--listen",
            "127.0.0.1:9",
            "--demo",
            "no",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.settings.listen, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(cli.settings.demo, Some(false));
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("--data-dir") && help.contains("BOXOFFICE_DATA_DIR"));
    }
}
