//! One typed configuration, read once: defaults, then an optional TOML file
//! (`BOXOFFICE_CONFIG`, or `./boxoffice.toml` if present), then `BOXOFFICE_*`
//! environment variables, then command-line flags (`cli.rs`). An unknown key in the
//! file or the environment is an error, not a silent default (a misspelled
//! `BOXOFFICE_DATABSE_URL` must not start an embedded node).
//! Secrets are `SecretString`s: their `Debug` is redacted, and so is their
//! serialization (`boxoffice config` prints it).

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::Settings;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Which payment gateway to call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// The built-in fake Stripe (test tokens only; charges nobody).
    #[default]
    Test,
    /// Stripe's API at `stripe_url` (a shared test gateway, or Stripe itself).
    Stripe,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(default, serialize_with = "redacted")]
    pub admin_password: Option<SecretString>,
    /// `postgres://…` selects PostgreSQL; unset: SQLite in `data_dir`.
    #[serde(default, serialize_with = "redacted_url")]
    pub database_url: Option<SecretString>,
    /// Redis (a comma-separated list: cluster); unset: the in-process engine.
    #[serde(default, serialize_with = "redacted_url")]
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
    #[serde(default, serialize_with = "redacted_url")]
    pub nats_url: Option<SecretString>,
    /// Seed the demo event on an empty database.
    #[serde(default = "defaults::yes")]
    pub demo: bool,
    /// `serve` applies pending migrations at start.
    #[serde(default = "defaults::yes")]
    pub auto_migrate: bool,
    /// Token signing key; unset: generated once and kept in the store.
    #[serde(default, serialize_with = "redacted")]
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
    /// Longest a client may take to send a request's headers; then its
    /// connection is closed.
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Open connections served at once; one more is answered 503 and closed.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// PEM certificate chain and private key: with both, the API speaks HTTPS
    /// (rustls) and sends HSTS. `boxoffice tls self-signed --out DIR` makes a pair.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Browser origins allowed to call the API (CORS), comma-separated
    /// (`https://shop.example.com`); unset: none.
    #[serde(default)]
    pub cors_origins: Option<String>,
    /// Serve `GET /metrics` on this address (plain HTTP, for the scraper's network)
    /// instead of the API's listener, where it is then 404.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Event streams (SSE) one IP may hold open on a node; one more is 429.
    #[serde(default = "defaults::max_streams_per_ip")]
    pub max_streams_per_ip: usize,
    /// Order long-polls one customer may hold at once on a node; past it a poll
    /// answers at once.
    #[serde(default = "defaults::max_waits_per_customer")]
    pub max_waits_per_customer: usize,
    /// Lifetime of an access token; refresh tokens renew it.
    #[serde(default = "defaults::access_token_ttl_seconds")]
    pub access_token_ttl_seconds: u64,
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
    #[serde(default, serialize_with = "redacted")]
    pub stripe_secret_key: Option<SecretString>,
    /// The signing secret of Stripe's webhooks to `POST /v1/payments/stripe/webhook`
    /// (`whsec_…`). With the built-in test gateway: generated unless set, and the
    /// gateway is told to send there. Unset with `stripe`: no webhooks (the
    /// reconciler alone settles payments that wait).
    #[serde(default, serialize_with = "redacted")]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Holds and checkouts one client (customer, else IP) may make a minute, sustained (0: no limit).
    #[serde(default = "defaults::rate_limit_shop_per_minute")]
    pub rate_limit_shop_per_minute: u32,
    /// Holds and checkouts one client may make at once on top of the rate, from rest.
    #[serde(default = "defaults::rate_limit_shop_burst")]
    pub rate_limit_shop_burst: u32,
    /// Logins one IP may make a minute, sustained (0: no limit).
    #[serde(default = "defaults::rate_limit_login_per_minute")]
    pub rate_limit_login_per_minute: u32,
    /// Logins one IP may make at once on top of the rate, from rest.
    #[serde(default = "defaults::rate_limit_login_burst")]
    pub rate_limit_login_burst: u32,
    /// Reads of one's place in a waiting room's queue (polls and stream opens) per
    /// queue id a minute, sustained (0: no limit).
    #[serde(default = "defaults::rate_limit_poll_per_minute")]
    pub rate_limit_poll_per_minute: u32,
    /// Queue reads one queue id may make at once on top of the rate, from rest.
    #[serde(default = "defaults::rate_limit_poll_burst")]
    pub rate_limit_poll_burst: u32,
    /// Logins to one account a minute, sustained, from any number of IPs (0: no
    /// limit). Its owner is then refused too until the quota refills: the price
    /// of stopping a distributed guess.
    #[serde(default = "defaults::rate_limit_login_account_per_minute")]
    pub rate_limit_login_account_per_minute: u32,
    /// Logins to one account at once on top of the rate, from rest.
    #[serde(default = "defaults::rate_limit_login_account_burst")]
    pub rate_limit_login_account_burst: u32,
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
    /// How often the payment reconciler settles orders stuck waiting for the
    /// gateway (`payment_unknown`, or `pending_payment` left alone for four passes).
    #[serde(default = "defaults::reconcile_interval_ms")]
    pub reconcile_interval_ms: u64,
    /// How long a checked-out hold keeps its seats while its payment runs.
    #[serde(default = "defaults::payment_hold_seconds")]
    pub payment_hold_seconds: u64,
    /// How long a waitlist offer (the hold made for the next in line) lasts.
    #[serde(default = "defaults::waitlist_offer_seconds")]
    pub waitlist_offer_seconds: u64,
    /// `smtp://[user:pass@]host[:port]`; unset: emails are written as .eml files
    /// to `<data_dir>/mail`.
    #[serde(default, serialize_with = "redacted_url")]
    pub smtp_url: Option<SecretString>,
    /// A CA certificate (PEM) the SMTP relay's certificate may chain to, besides
    /// the system's roots: a private relay's CA, or a test's self-signed one.
    #[serde(default)]
    pub smtp_ca_file: Option<PathBuf>,
    #[serde(default = "defaults::mail_from")]
    pub mail_from: String,
    /// Where buyers reach the web app (the ticket links in SMS); unset:
    /// `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// `log` (the default: SMS are logged, not sent) or `twilio`.
    #[serde(default)]
    pub sms: SmsKind,
    /// Twilio's API base (a local fake's in tests).
    #[serde(default = "defaults::twilio_base_url")]
    pub twilio_base_url: String,
    #[serde(default)]
    pub twilio_account_sid: Option<String>,
    #[serde(default, serialize_with = "redacted")]
    pub twilio_auth_token: Option<SecretString>,
    /// The sender: a number of the account (E.164) …
    #[serde(default)]
    pub twilio_from: Option<String>,
    /// … or a messaging service (`MG…`), used when set.
    #[serde(default)]
    pub twilio_messaging_service_sid: Option<String>,
}

/// Which SMS sender (see `boxoffice-sms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SmsKind {
    /// Logged, not sent.
    #[default]
    Log,
    /// Twilio's Messages API at `twilio_base_url`.
    Twilio,
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
    pub fn header_read_timeout_ms() -> u64 {
        10_000
    }
    pub fn max_streams_per_ip() -> usize {
        32
    }
    pub fn max_waits_per_customer() -> usize {
        8
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn access_token_ttl_seconds() -> u64 {
        900
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
    pub fn rate_limit_shop_per_minute() -> u32 {
        30_000
    }
    pub fn rate_limit_shop_burst() -> u32 {
        1_000
    }
    pub fn rate_limit_login_per_minute() -> u32 {
        600
    }
    pub fn rate_limit_login_burst() -> u32 {
        100
    }
    pub fn rate_limit_poll_per_minute() -> u32 {
        120
    }
    pub fn rate_limit_poll_burst() -> u32 {
        30
    }
    pub fn rate_limit_login_account_per_minute() -> u32 {
        10
    }
    pub fn rate_limit_login_account_burst() -> u32 {
        10
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
    pub fn reconcile_interval_ms() -> u64 {
        30_000
    }
    pub fn payment_hold_seconds() -> u64 {
        900
    }
    pub fn waitlist_offer_seconds() -> u64 {
        900
    }
    pub fn twilio_base_url() -> String {
        "https://api.twilio.com".into()
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
    "stripe_webhook_secret",
    "smtp_url",
    "smtp_ca_file",
    "mail_from",
    "public_url",
    "sms",
    "twilio_base_url",
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_from",
    "twilio_messaging_service_sid",
];

impl Config {
    /// Reads the file (if any) and the environment.
    pub fn load() -> anyhow::Result<Self> {
        let file = std::env::var_os("BOXOFFICE_CONFIG").map(PathBuf::from);
        Self::load_with(file, &Settings::default())
    }

    /// Reads the file (`file`, else `./boxoffice.toml` if present) and the
    /// environment, then applies the flags given.
    pub fn load_with(file: Option<PathBuf>, flags: &Settings) -> anyhow::Result<Self> {
        let file = file.or_else(|| {
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
        fig = fig.merge(Serialized::defaults(flags));
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

    /// Every key, as the file and the flags name it.
    pub fn keys() -> &'static [&'static str] {
        field_names::of::<Config>()
    }

    /// The configuration as a TOML file would say it, secrets redacted; unset
    /// settings as comments.
    pub fn to_redacted_toml(&self) -> String {
        let value = serde_json::to_value(self).expect("the config serializes");
        let mut out = String::new();
        for (key, v) in value.as_object().expect("a struct serializes to an object") {
            // A JSON scalar is a TOML scalar (strings, numbers, booleans).
            match v {
                serde_json::Value::Null => out.push_str(&format!("# {key} (unset)\n")),
                v => out.push_str(&format!("{key} = {v}\n")),
            }
        }
        out
    }
}

const REDACTED: &str = "<redacted>";

fn redacted<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some(REDACTED),
        None => s.serialize_none(),
    }
}

/// URLs keep everything but their passwords (a list keeps its commas).
fn redacted_url<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match v {
        Some(urls) => s.serialize_some(
            &urls
                .expose_secret()
                .split(',')
                .map(redact_password)
                .collect::<Vec<_>>()
                .join(","),
        ),
        None => s.serialize_none(),
    }
}

/// `scheme://user:password@host…` → `scheme://user:<redacted>@host…`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let password = if userinfo.contains(':') {
                format!(":{REDACTED}")
            } else {
                String::new()
            };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The field names of a `Deserialize` struct, from what its derived impl hands to
/// the deserializer: one list, so the flags can be checked against it.
mod field_names {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    struct Names(&'static [&'static str]);

    #[derive(Debug)]
    struct Found(&'static [&'static str]);

    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names found")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Found(&[])
        }
    }

    impl<'de> Deserializer<'de> for Names {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(self.0))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    pub fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        match T::deserialize(Names(&[])) {
            Err(Found(fields)) => fields,
            Ok(_) => unreachable!("Names never yields a value"),
        }
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
    fn the_effective_configuration_hides_secrets_but_not_where_they_point() {
        let mut c = Config::defaults();
        c.admin_password = Some("hunter2-admin".into());
        c.database_url = Some("postgres://app:hunter2-db@db.local:5432/box?sslmode=require".into());
        c.redis_url = Some("redis://:hunter2-r@a:1,redis://b:2".into());
        let toml = c.to_redacted_toml();
        assert!(!toml.contains("hunter2"), "{toml}");
        assert!(toml.contains("admin_password = \"<redacted>\""), "{toml}");
        assert!(
            toml.contains(
                "database_url = \"postgres://app:<redacted>@db.local:5432/box?sslmode=require\""
            ),
            "{toml}"
        );
        assert!(
            toml.contains("redis_url = \"redis://:<redacted>@a:1,redis://b:2\""),
            "{toml}"
        );
        assert!(toml.contains("listen = \"127.0.0.1:8080\""), "{toml}");
        assert!(toml.contains("# nats_url (unset)"), "{toml}");
        // What it prints is a config file that reads back as the same settings.
        let back = Config::from_figment(
            Figment::new().merge(Toml::string(&toml.replace("<redacted>", "x"))),
        )
        .unwrap();
        assert_eq!(back.listen, c.listen);
        assert_eq!(Config::keys().len(), toml.lines().count());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn flags_override_the_environment_which_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "box.toml",
                "listen = \"127.0.0.1:1\"\ndemo = false\nlog = \"warn\"",
            )?;
            jail.set_env("BOXOFFICE_LOG", "debug");
            jail.set_env("BOXOFFICE_SWEEP_INTERVAL_MS", "7");
            let flags = Settings {
                sweep_interval_ms: Some(9),
                ..Settings::default()
            };
            let c =
                Config::load_with(Some("box.toml".into()), &flags).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:1");
            assert!(!c.demo);
            assert_eq!(c.log, "debug");
            assert_eq!(c.sweep_interval_ms, 9);
            Ok(())
        });
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
