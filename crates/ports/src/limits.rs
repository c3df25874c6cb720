//! Rate limits (issue 12): how often one client may call the flash-crowd endpoints.
//! GCRA in both adapters: `governor` in process, the same algorithm in a Redis
//! script for the distributed mode, so the limit holds across nodes.

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

use crate::EngineError;

/// What a request is limited as; each class has its own quota and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitClass {
    /// Login, per client IP.
    Login,
    /// Login, per account (the email tried), whatever the IP: many addresses
    /// guessing one account's password are limited together.
    LoginAccount,
    /// Holds and checkout (and the waiting room's queue when it exists), per
    /// customer when authenticated, else per IP.
    Shop,
    /// Reading one's place in a waiting room's queue (`GET /v1/queue/{id}` and its
    /// stream opens), per queue id (a customer on an event).
    Poll,
}

impl LimitClass {
    pub const ALL: [LimitClass; 4] = [
        LimitClass::Login,
        LimitClass::LoginAccount,
        LimitClass::Shop,
        LimitClass::Poll,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitClass::Login => "login",
            LimitClass::LoginAccount => "login_account",
            LimitClass::Shop => "shop",
            LimitClass::Poll => "poll",
        }
    }
}

/// A GCRA quota: a sustained rate and a burst allowed on top of it, from rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// The time one request "costs": a minute over the rate.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug + 'static {
    /// Counts one request of `key` in `class`: `None` when it may go on, else how
    /// long until one would be allowed. A class without a quota is never limited.
    async fn check(&self, class: LimitClass, key: &str) -> Result<Option<Duration>, EngineError>;
}
