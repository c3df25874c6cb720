//! The in-process rate limiter: `governor`'s keyed GCRA, one limiter per class,
//! on the app's clock (so tests move it by hand).

use async_trait::async_trait;
use boxoffice_ports::{Clock, EngineError, LimitClass, Quota, RateLimiter};
use governor::state::keyed::DefaultKeyedStateStore;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The app's clock as governor's: time since the limiter was made.
#[derive(Debug, Clone)]
struct AppClock {
    clock: Arc<dyn Clock>,
    start: OffsetDateTime,
}

impl governor::clock::Clock for AppClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        Duration::try_from(self.clock.now() - self.start).unwrap_or(Duration::ZERO)
    }
}

type Keyed = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    AppClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// Keys idle for a full burst are dropped every this many checks (governor keeps
/// one small state per key until then).
const PRUNE_EVERY: u64 = 16_384;

pub struct GovernorLimiter {
    classes: HashMap<LimitClass, (Keyed, AtomicU64)>,
    clock: AppClock,
}

impl std::fmt::Debug for GovernorLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernorLimiter")
            .field("classes", &self.classes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GovernorLimiter {
    /// A limiter with these quotas (a class left out is not limited).
    pub fn new(quotas: &[(LimitClass, Quota)], clock: Arc<dyn Clock>) -> Self {
        let clock = AppClock {
            start: clock.now(),
            clock,
        };
        let classes = quotas
            .iter()
            .filter_map(|&(class, q)| {
                let per_minute = NonZeroU32::new(q.per_minute)?;
                let burst = NonZeroU32::new(q.burst.max(1))?;
                let quota = governor::Quota::per_minute(per_minute).allow_burst(burst);
                let limiter = Keyed::new(quota, DefaultKeyedStateStore::default(), clock.clone());
                Some((class, (limiter, AtomicU64::new(0))))
            })
            .collect();
        Self { classes, clock }
    }
}

#[async_trait]
impl RateLimiter for GovernorLimiter {
    async fn check(&self, class: LimitClass, key: &str) -> Result<Option<Duration>, EngineError> {
        let Some((limiter, checks)) = self.classes.get(&class) else {
            return Ok(None);
        };
        if checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        Ok(match limiter.check_key(&key.to_owned()) {
            Ok(()) => None,
            Err(not_until) => {
                Some(not_until.wait_time_from(governor::clock::Clock::now(&self.clock)))
            }
        })
    }
}
