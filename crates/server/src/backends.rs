//! Backend selection: decided once, from the typed config, before anything starts.
//! A URL this build cannot serve is a startup error, never a silent fallback.

use anyhow::bail;
use secrecy::ExposeSecret;
use std::path::PathBuf;

use crate::config::GatewayKind;
use crate::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite { dir: PathBuf },
    Postgres { url: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineBackend {
    InProcess,
    /// One URL: a single node; several: the nodes of a cluster.
    Redis {
        urls: String,
        prefix: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    /// The store's own jobs table.
    Store,
    Nats {
        url: String,
        prefix: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayBackend {
    /// Start the fake Stripe in this process.
    BuiltInTest {
        listen: std::net::SocketAddr,
        latency: std::time::Duration,
        failure_rate: f64,
    },
    Stripe {
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backends {
    pub store: StoreBackend,
    pub engine: EngineBackend,
    pub queue: QueueBackend,
    pub gateway: GatewayBackend,
}

impl Backends {
    pub fn from_config(c: &Config) -> anyhow::Result<Self> {
        let store = match c.database_url.as_ref().map(|u| u.expose_secret().to_owned()) {
            None => StoreBackend::Sqlite {
                dir: c.data_dir.clone(),
            },
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StoreBackend::Postgres { url }
            }
            Some(_) => bail!("BOXOFFICE_DATABASE_URL must be a postgres:// URL (unset: SQLite in BOXOFFICE_DATA_DIR)"),
        };
        let engine = match c.redis_url.as_ref().map(|u| u.expose_secret().to_owned()) {
            None => EngineBackend::InProcess,
            Some(urls) => {
                for u in urls.split(',').map(str::trim) {
                    if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                        bail!("BOXOFFICE_REDIS_URL: {u:?} is not a redis:// URL");
                    }
                }
                EngineBackend::Redis {
                    urls,
                    prefix: c.redis_prefix.clone(),
                }
            }
        };
        let queue = match c.nats_url.as_ref().map(|u| u.expose_secret().to_owned()) {
            None => QueueBackend::Store,
            Some(url) if url.starts_with("nats://") || url.starts_with("tls://") => {
                QueueBackend::Nats {
                    url,
                    prefix: c.nats_prefix.clone(),
                }
            }
            Some(_) => bail!("BOXOFFICE_NATS_URL must be a nats:// URL"),
        };
        let gateway = match c.gateway {
            GatewayKind::Test => {
                if !(0.0..=1.0).contains(&c.gateway_failure_rate) {
                    bail!("BOXOFFICE_GATEWAY_FAILURE_RATE must be between 0 and 1");
                }
                GatewayBackend::BuiltInTest {
                    listen: c.gateway_listen,
                    latency: std::time::Duration::from_millis(c.gateway_latency_ms),
                    failure_rate: c.gateway_failure_rate,
                }
            }
            GatewayKind::Stripe => {
                if c.stripe_secret_key.is_none() {
                    bail!("BOXOFFICE_GATEWAY=stripe needs BOXOFFICE_STRIPE_SECRET_KEY");
                }
                if !(c.stripe_url.starts_with("https://") || c.stripe_url.starts_with("http://")) {
                    bail!("BOXOFFICE_STRIPE_URL must be an http(s) URL");
                }
                // The secret key goes in every request's Authorization header: over
                // plain HTTP anyone on the path reads it. Loopback only (a test
                // gateway on this machine, as the test suite runs one).
                if c.stripe_url.starts_with("http://") && !is_loopback_url(&c.stripe_url) {
                    bail!(
                        "BOXOFFICE_STRIPE_URL must be https:// (the Stripe secret key would \
                         travel in clear over plain http://); plain http:// is allowed to a \
                         loopback address only (a test gateway on this machine)"
                    );
                }
                GatewayBackend::Stripe {
                    url: c.stripe_url.clone(),
                }
            }
        };
        Ok(Self {
            store,
            engine,
            queue,
            gateway,
        })
    }

    /// A node that serves on a shared store must share its payment gateway too.
    pub fn check_shared_gateway(&self) -> anyhow::Result<()> {
        if matches!(self.store, StoreBackend::Postgres { .. })
            && matches!(self.gateway, GatewayBackend::BuiltInTest { .. })
        {
            // Each node's built-in gateway would keep its own charge list: a charge
            // replayed on another node would be a second charge in another ledger.
            bail!(
                "BOXOFFICE_DATABASE_URL (a store shared by several nodes) needs a payment gateway \
             they share, and the built-in test gateway is private to this node: run \
             `boxoffice test-gateway` once and give every node BOXOFFICE_GATEWAY=stripe \
             BOXOFFICE_STRIPE_URL=<its URL> BOXOFFICE_STRIPE_SECRET_KEY=sk_test_boxoffice \
             (or point them at Stripe)"
            );
        }
        Ok(())
    }
}

/// `http://localhost…`, `http://127.x.x.x…`, `http://[::1]…`.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo would hide the host (`http://127.0.0.1@evil.example`).
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn default_is_embedded() {
        let b = Backends::from_config(&Config::defaults()).unwrap();
        assert_eq!(b.engine, EngineBackend::InProcess);
        assert!(matches!(b.store, StoreBackend::Sqlite { .. }));
    }

    #[test]
    fn stripe_needs_a_key() {
        let mut c = Config::defaults();
        c.gateway = GatewayKind::Stripe;
        assert!(Backends::from_config(&c).is_err());
        c.stripe_secret_key = Some(SecretString::from("sk_test_x"));
        assert!(Backends::from_config(&c).is_ok());
    }

    #[test]
    fn a_stripe_key_goes_over_https_or_to_loopback_only() {
        let mut c = Config::defaults();
        c.gateway = GatewayKind::Stripe;
        c.stripe_secret_key = Some(SecretString::from("sk_live_x"));
        for url in [
            "https://api.stripe.com",
            "http://127.0.0.1:4242",
            "http://localhost:1/v1",
            "http://[::1]:9",
        ] {
            c.stripe_url = url.into();
            assert!(Backends::from_config(&c).is_ok(), "{url}");
        }
        for url in [
            "http://api.stripe.com",
            "http://10.0.0.1:80",
            "http://127.0.0.1@evil.example",
            "http://127.0.0.1.evil.example",
        ] {
            c.stripe_url = url.into();
            let e = Backends::from_config(&c).unwrap_err().to_string();
            assert!(e.contains("https://"), "{url}: {e}");
        }
    }

    #[test]
    fn bad_urls_fail_loudly() {
        let mut c = Config::defaults();
        c.database_url = Some(SecretString::from("mysql://x"));
        assert!(Backends::from_config(&c).is_err());
        let mut c = Config::defaults();
        c.redis_url = Some(SecretString::from("redis://a:1,http://b:2"));
        assert!(Backends::from_config(&c).is_err());
    }

    #[test]
    fn a_shared_store_refuses_a_private_test_gateway() {
        let mut c = Config::defaults();
        c.database_url = Some(SecretString::from("postgres://u@h/db"));
        let b = Backends::from_config(&c).expect("migrate and admin commands still work");
        let e = b.check_shared_gateway().unwrap_err().to_string();
        assert!(e.contains("boxoffice test-gateway"), "{e}");
        c.gateway = GatewayKind::Stripe;
        c.stripe_secret_key = Some(SecretString::from("sk_test_boxoffice"));
        let b = Backends::from_config(&c).unwrap();
        assert!(b.check_shared_gateway().is_ok());
        assert!(Backends::from_config(&Config::defaults())
            .unwrap()
            .check_shared_gateway()
            .is_ok());
    }

    #[test]
    fn urls_select_the_distributed_backends() {
        let mut c = Config::defaults();
        c.database_url = Some(SecretString::from("postgres://u@h/db"));
        c.redis_url = Some(SecretString::from("redis://a:1,redis://b:2"));
        let b = Backends::from_config(&c).unwrap();
        assert!(matches!(b.store, StoreBackend::Postgres { .. }));
        assert!(matches!(b.engine, EngineBackend::Redis { ref urls, .. } if urls.contains(',')));
    }
}
