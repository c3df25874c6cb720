//! Backend selection: decided once, from the typed config, before anything starts.
//! A URL this build cannot serve is a startup error, never a silent fallback.

use anyhow::bail;
use secrecy::ExposeSecret;
use std::path::PathBuf;

use crate::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite { dir: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineBackend {
    InProcess,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backends {
    pub store: StoreBackend,
    pub engine: EngineBackend,
}

impl Backends {
    pub fn from_config(c: &Config) -> anyhow::Result<Self> {
        let store = match c.database_url.as_ref().map(|u| u.expose_secret().to_owned()) {
            None => StoreBackend::Sqlite {
                dir: c.data_dir.clone(),
            },
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                bail!("BOXOFFICE_DATABASE_URL: the PostgreSQL store is not in this build yet; unset it to use SQLite")
            }
            Some(_) => bail!("BOXOFFICE_DATABASE_URL must be a postgres:// URL (unset: SQLite in BOXOFFICE_DATA_DIR)"),
        };
        if c.redis_url.is_some() {
            bail!("BOXOFFICE_REDIS_URL: the Redis hold engine is not in this build yet; unset it to use the in-process engine");
        }
        if c.nats_url.is_some() {
            bail!("BOXOFFICE_NATS_URL: the NATS queue is not in this build yet; unset it to use the in-process queue");
        }
        Ok(Self {
            store,
            engine: EngineBackend::InProcess,
        })
    }
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
    fn bad_urls_fail_loudly() {
        let mut c = Config::defaults();
        c.database_url = Some(SecretString::from("mysql://x"));
        assert!(Backends::from_config(&c).is_err());
    }
}
