//! One typed configuration, read once: defaults, then an optional TOML file
//! (`BOXOFFICE_CONFIG`, or `./boxoffice.toml` if present), then `BOXOFFICE_*`
//! environment variables. An unknown key in either is an error, not a silent
//! default (a misspelled `BOXOFFICE_DATABSE_URL` must not start an embedded node).
//! Secrets are `SecretString`s: their `Debug` is redacted.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Which payment gateway to call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// The built-in fake Stripe (test tokens only; charges nobody).
    #[default]
    Test,
    /// Stripe's API at `stripe_url` (a shared test gateway, or Stripe itself).
    Stripe,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to serve on; port 0 picks a free one (tests).
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Embedded mode's data directory (SQLite database).
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// The admin created on first start.
    #[serde(default = "defaults::admin_email")]
    pub admin_email: String,
    /// Unset: generated and printed once.
    #[serde(default)]
    pub admin_password: Option<SecretString>,
    /// `postgres://…` selects PostgreSQL; unset: SQLite in `data_dir`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Redis (a comma-separated list: cluster); unset: the in-process engine.
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    /// Names the NATS stream and subjects (several deployments, or tests, share a NATS).
    #[serde(default = "defaults::nats_prefix")]
    pub nats_prefix: String,
    /// Namespace of every Redis key (several deployments, or tests, share a Redis).
    #[serde(default = "defaults::redis_prefix")]
    pub redis_prefix: String,
    /// PostgreSQL connections per node.
    #[serde(default = "defaults::database_pool_size")]
    pub database_pool_size: u32,
    /// NATS JetStream; unset: the in-process queue.
    #[serde(default)]
    pub nats_url: Option<SecretString>,
    /// Seed the demo event on an empty database.
    #[serde(default = "defaults::yes")]
    pub demo: bool,
    /// `serve` applies pending migrations at start.
    #[serde(default = "defaults::yes")]
    pub auto_migrate: bool,
    /// Token signing key; unset: generated once and kept in the store.
    #[serde(default)]
    pub secret_key: Option<SecretString>,
    /// Log filter (`info`, `boxoffice=debug,sqlx=warn`, …).
    #[serde(default = "defaults::log")]
    pub log: String,
    #[serde(default)]
    pub log_format: LogFormat,
    /// How often the sweeper records expired holds.
    #[serde(default = "defaults::sweep_interval_ms")]
    pub sweep_interval_ms: u64,
    /// How long a request may take before it is answered 503 `timeout`.
    #[serde(default = "defaults::request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// How long sale settings (event status) are cached per node.
    #[serde(default = "defaults::catalog_refresh_ms")]
    pub catalog_refresh_ms: u64,
    /// `test` (the built-in fake Stripe) or `stripe`.
    #[serde(default)]
    pub gateway: GatewayKind,
    /// Where the built-in test gateway listens (port 0: any free port).
    #[serde(default = "defaults::gateway_listen")]
    pub gateway_listen: SocketAddr,
    /// The built-in test gateway's added latency per charge.
    #[serde(default)]
    pub gateway_latency_ms: u64,
    /// The built-in test gateway's share of transient failures (0.0 to 1.0).
    #[serde(default)]
    pub gateway_failure_rate: f64,
    /// With `gateway = stripe`: the API base and the secret key.
    #[serde(default = "defaults::stripe_url")]
    pub stripe_url: String,
    #[serde(default)]
    pub stripe_secret_key: Option<SecretString>,
    /// Gateway calls per second from this node.
    #[serde(default = "defaults::gateway_rate_limit")]
    pub gateway_rate_limit: u32,
    #[serde(default = "defaults::gateway_timeout_ms")]
    pub gateway_timeout_ms: u64,
    /// Consecutive gateway failures that open the circuit breaker, and how long it
    /// stays open before one probe call.
    #[serde(default = "defaults::gateway_breaker_threshold")]
    pub gateway_breaker_threshold: u32,
    #[serde(default = "defaults::gateway_breaker_cooldown_ms")]
    pub gateway_breaker_cooldown_ms: u64,
    /// Payment calls in flight at once on this node.
    #[serde(default = "defaults::payment_workers")]
    pub payment_workers: usize,
    /// How long a claimed job is leased; a dead node's jobs return after it. Keep it
    /// above the gateway timeout.
    #[serde(default = "defaults::job_lease_ms")]
    pub job_lease_ms: u64,
    /// How long a checked-out hold keeps its seats while its payment runs.
    #[serde(default = "defaults::payment_hold_seconds")]
    pub payment_hold_seconds: u64,
    /// `smtp://[user:pass@]host[:port]`; unset: emails are written as .eml files
    /// to `<data_dir>/mail`.
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    #[serde(default = "defaults::mail_from")]
    pub mail_from: String,
}

mod defaults {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("./data")
    }
    pub fn admin_email() -> String {
        "admin@localhost".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn log() -> String {
        "info,sqlx=warn".into()
    }
    pub fn sweep_interval_ms() -> u64 {
        1000
    }
    pub fn request_timeout_seconds() -> u64 {
        40
    }
    pub fn catalog_refresh_ms() -> u64 {
        1000
    }
    pub fn nats_prefix() -> String {
        "boxoffice".into()
    }
    pub fn redis_prefix() -> String {
        "boxoffice:".into()
    }
    pub fn database_pool_size() -> u32 {
        16
    }
    pub fn gateway_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
    pub fn stripe_url() -> String {
        "https://api.stripe.com".into()
    }
    pub fn gateway_rate_limit() -> u32 {
        100
    }
    pub fn gateway_timeout_ms() -> u64 {
        10_000
    }
    pub fn gateway_breaker_threshold() -> u32 {
        5
    }
    pub fn gateway_breaker_cooldown_ms() -> u64 {
        5_000
    }
    pub fn payment_workers() -> usize {
        32
    }
    pub fn job_lease_ms() -> u64 {
        30_000
    }
    pub fn payment_hold_seconds() -> u64 {
        900
    }
    pub fn mail_from() -> String {
        "boxoffice <tickets@boxoffice.localhost>".into()
    }
}

/// Settings that are strings, whatever they look like.
const STRING_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "admin_email",
    "admin_password",
    "database_url",
    "redis_url",
    "nats_url",
    "secret_key",
    "log",
    "log_format",
    "redis_prefix",
    "nats_prefix",
    "gateway",
    "gateway_listen",
    "stripe_url",
    "stripe_secret_key",
    "smtp_url",
    "mail_from",
];

impl Config {
    /// Reads the file (if any) and the environment.
    pub fn load() -> anyhow::Result<Self> {
        let file = std::env::var_os("BOXOFFICE_CONFIG")
            .map(PathBuf::from)
            .or_else(|| {
                let p = PathBuf::from("boxoffice.toml");
                p.exists().then_some(p)
            });
        let mut fig = Figment::new();
        if let Some(f) = &file {
            anyhow::ensure!(f.exists(), "config file {} does not exist", f.display());
            fig = fig.merge(Toml::file(f));
        }
        // BOXOFFICE_TEST_* configure the test suite, not a server.
        fig = fig.merge(
            Env::prefixed("BOXOFFICE_")
                .ignore(&["config"])
                .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("test_"))
                .lowercase(true),
        );
        // Figment reads `007` as the number 7; string settings (passwords!) are
        // taken from the environment exactly as written.
        for key in STRING_KEYS {
            if let Ok(raw) = std::env::var(format!("BOXOFFICE_{}", key.to_uppercase())) {
                fig = fig.merge(Serialized::default(key, raw));
            }
        }
        Self::from_figment(fig)
    }

    pub fn from_figment(fig: Figment) -> anyhow::Result<Self> {
        fig.extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }

    /// Defaults only (what tests start from).
    pub fn defaults() -> Self {
        Self::from_figment(Figment::new()).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_need_nothing_installed() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.database_url.is_none() && c.redis_url.is_none() && c.nats_url.is_none());
        assert!(c.demo && c.auto_migrate);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let fig = Figment::new().merge(Serialized::default("databse_url", "postgres://x"));
        assert!(Config::from_figment(fig).is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn secrets_are_redacted_and_digit_passwords_stay_strings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BOXOFFICE_ADMIN_PASSWORD", "00012345678");
            jail.set_env("BOXOFFICE_DEMO", "false");
            jail.set_env("BOXOFFICE_TEST_DATABASE_URL", "ignored");
            let c = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(
                c.admin_password.as_ref().unwrap().expose_secret(),
                "00012345678"
            );
            assert!(!c.demo);
            assert!(!format!("{c:?}").contains("12345678"));
            Ok(())
        });
    }
}
