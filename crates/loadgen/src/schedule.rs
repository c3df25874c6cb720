//! The open-loop arrival schedule (`--rate N`): arrival `i` is due at
//! `start + i / N`, whatever the server answers.
//!
//! There is no dispatcher task: each idle worker (one per connection, so the
//! connection count caps what is in flight) claims the next arrival nobody has
//! claimed and sleeps until it is due. An idle worker therefore always holds the
//! next arrival before its time; an arrival claimed after its time found every
//! connection busy. It is still sent, at once, and counted `late`; its latency is
//! counted from when it was due, not from when it went out, so a slow server shows up
//! in the percentiles instead of silently lowering the offered rate (no coordinated
//! omission). Arrivals still unsent when the run's duration is over are `dropped`.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How far past due a claim may be and still count as on time: tokio's timers have
/// millisecond resolution, so a sleeping worker routinely wakes up to ~1 ms after
/// the instant it asked for, which is not the connection cap.
pub(crate) const LATE_AFTER: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub(crate) struct Schedule {
    start: Instant,
    rate: f64,
    deadline: Instant,
    /// Arrivals planned: those due before the deadline, and in a sale at most one per
    /// buyer.
    planned: u64,
    next: AtomicU64,
}

/// One claimed arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    pub index: u64,
    pub due: Instant,
    /// Claimed more than `LATE_AFTER` after it was due: every connection was busy.
    pub late: bool,
}

/// The open-loop part of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OpenLoop {
    /// Offered arrivals per second (`--rate`).
    pub rate_per_second: f64,
    /// The in-flight cap: one arrival per connection at a time.
    pub max_in_flight: usize,
    /// Arrivals due during the run (in a sale, at most one per buyer).
    pub scheduled: u64,
    /// Arrivals sent (on time or late).
    pub sent: u64,
    /// Arrivals sent more than 1 ms after they were due because every connection
    /// was busy; their latency counts from when they were due.
    pub late: u64,
    /// Arrivals never sent: still waiting for a connection when the duration ended.
    pub dropped: u64,
}

impl Schedule {
    /// `rate` must be positive and finite (the command line checks it).
    pub(crate) fn new(start: Instant, rate: f64, duration: Duration, limit: Option<u64>) -> Self {
        // Due before the deadline: i / rate < duration (the epsilon keeps a product
        // like 1000 × 0.05 from rounding up to one arrival too many).
        let due_in_time = (rate * duration.as_secs_f64() - 1e-9).ceil().max(0.0) as u64;
        Self {
            start,
            rate,
            deadline: start + duration,
            planned: limit.map_or(due_in_time, |l| l.min(due_in_time)),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn planned(&self) -> u64 {
        self.planned
    }

    fn due(&self, index: u64) -> Instant {
        // In whole nanoseconds, so that arrival times do not drift with float error.
        self.start + Duration::from_nanos((index as f64 * 1e9 / self.rate).round() as u64)
    }

    /// Claims the next arrival for a connection that became free at `now`; `None`
    /// once every planned arrival is claimed or the deadline has passed (what is
    /// unclaimed then is dropped).
    pub(crate) fn claim(&self, now: Instant) -> Option<Arrival> {
        if now >= self.deadline {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if index >= self.planned {
            return None;
        }
        let due = self.due(index);
        Some(Arrival {
            index,
            due,
            late: now.saturating_duration_since(due) > LATE_AFTER,
        })
    }

    /// Claims the next arrival and waits until it is due.
    pub(crate) async fn next(&self) -> Option<Arrival> {
        let a = self.claim(Instant::now())?;
        tokio::time::sleep_until(a.due.into()).await;
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_due_at_fixed_intervals_and_late_ones_are_flagged() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        // 1,000/s for 50 ms: arrivals due at 0, 1, ..., 49 ms.
        let s = Schedule::new(start, 1000.0, ms(50), None);
        assert_eq!(s.planned(), 50);

        // Two idle connections claim ahead: the first two arrivals, on time.
        let a = s.claim(start).expect("planned");
        let b = s.claim(start).expect("planned");
        assert_eq!((a.index, a.due, a.late), (0, start, false));
        assert_eq!((b.index, b.due, b.late), (1, start + ms(1), false));

        // A connection free only at 10 ms takes arrival 2 (due at 2 ms): late, and
        // its due time, not the claim time, is what latency counts from.
        let c = s.claim(start + ms(10)).expect("planned");
        assert_eq!((c.index, c.due, c.late), (2, start + ms(2), true));
        // Within the timer slack it is not late.
        let d = s.claim(start + ms(3) + LATE_AFTER).expect("planned");
        assert_eq!((d.index, d.late), (3, false));

        // After the deadline nothing more goes out, even though arrivals are left.
        assert_eq!(s.claim(start + ms(50)), None);
        assert_eq!(s.claim(start + ms(49)).map(|a| a.index), Some(4));
    }

    #[test]
    fn a_sale_plans_at_most_one_arrival_per_buyer() {
        let start = Instant::now();
        let s = Schedule::new(start, 100.0, Duration::from_secs(60), Some(3));
        assert_eq!(s.planned(), 3);
        for i in 0..3 {
            assert_eq!(s.claim(start).map(|a| a.index), Some(i));
        }
        assert_eq!(s.claim(start), None);
        // A fractional count rounds up: 2.5/s for 1 s has arrivals at 0, 0.4, 0.8 s.
        let s = Schedule::new(start, 2.5, Duration::from_secs(1), None);
        assert_eq!(s.planned(), 3);
    }
}
