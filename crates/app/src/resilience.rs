//! Protection around the payment gateway: a global rate limit on calls (gateways
//! cap requests per second; the queue absorbs the burst), a timeout per call,
//! exponential backoff between retries, and a circuit breaker that stops calling a
//! gateway that keeps failing, so workers wait instead of hammering it.
//!
//! The breaker is ours (thirty lines): the crates that offer one wrap the call in
//! their own future types and retry policies, which would hide the idempotency key
//! handling that matters here.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct GatewayGuard {
    limiter: DefaultDirectRateLimiter,
    breaker: Mutex<Breaker>,
    threshold: u32,
    cooldown: Duration,
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl GatewayGuard {
    pub fn new(calls_per_second: u32, threshold: u32, cooldown: Duration) -> Self {
        let rate = NonZeroU32::new(calls_per_second.max(1)).expect("at least one");
        Self {
            // A burst of at most one second's worth, then the steady rate.
            limiter: RateLimiter::direct(Quota::per_second(rate)),
            breaker: Mutex::new(Breaker::default()),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Waits for the rate limit.
    pub async fn pace(&self) {
        self.limiter.until_ready().await;
    }

    /// May a call go out now? `Err(when)` while the breaker is open. After the
    /// cooldown one probe call goes out; its result closes or reopens the breaker.
    pub fn allow(&self) -> Result<(), Instant> {
        let mut b = self.breaker.lock();
        let now = Instant::now();
        match b.open_until {
            None => Ok(()),
            Some(t) if now < t => Err(t),
            Some(_) if b.probing => Err(now + self.cooldown / 4),
            Some(_) => {
                b.probing = true;
                Ok(())
            }
        }
    }

    pub fn success(&self) {
        let mut b = self.breaker.lock();
        *b = Breaker::default();
        metrics::gauge!("boxoffice_gateway_circuit_open").set(0.0);
    }

    pub fn failure(&self) {
        let mut b = self.breaker.lock();
        b.consecutive_failures += 1;
        if b.probing || b.consecutive_failures >= self.threshold {
            b.open_until = Some(Instant::now() + self.cooldown);
            b.probing = false;
            metrics::gauge!("boxoffice_gateway_circuit_open").set(1.0);
        }
    }

    pub fn is_open(&self) -> bool {
        self.breaker
            .lock()
            .open_until
            .is_some_and(|t| Instant::now() < t)
    }
}

/// 250 ms, doubling per attempt, at most 30 s, with up to 20% jitter so that many
/// retries do not arrive together.
pub fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.saturating_sub(1).min(7));
    let base = base.min(Duration::from_secs(30));
    base + base.mul_f64(rand::thread_rng().gen_range(0.0..0.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_probes_once() {
        let g = GatewayGuard::new(100, 3, Duration::from_millis(20));
        for _ in 0..2 {
            g.failure();
            assert!(g.allow().is_ok());
        }
        g.failure();
        assert!(g.allow().is_err(), "open after 3 failures");
        std::thread::sleep(Duration::from_millis(25));
        assert!(g.allow().is_ok(), "one probe after the cooldown");
        assert!(g.allow().is_err(), "only one");
        g.failure();
        assert!(g.allow().is_err(), "a failed probe reopens it");
        std::thread::sleep(Duration::from_millis(25));
        assert!(g.allow().is_ok());
        g.success();
        assert!(g.allow().is_ok() && g.allow().is_ok(), "closed again");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) < Duration::from_millis(301));
        assert!(backoff(3) >= Duration::from_millis(1000));
        assert!(backoff(40) <= Duration::from_secs(36));
    }
}
