//! Latency and outcome recording: one `Stats` per worker task, merged into one
//! HdrHistogram per step when the run ends.
//!
//! A worker owns its `Stats` outright, so recording takes no lock and touches no
//! memory another task writes. Workers log raw samples (4 bytes each) rather than
//! keeping a histogram each: a histogram with 3 significant digits over 1 µs..120 s
//! is ~150 KB, which at 1,000 connections and five steps would be ~700 MB on the
//! machine being measured; a whole 50,000-seat sale logs a few hundred thousand
//! samples. The merged histograms keep the 3 significant digits the report has always
//! had.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Latencies are clamped into this range (µs), as the histograms' bounds.
const LOWEST_MICROS: u64 = 1;
const HIGHEST_MICROS: u64 = 120_000_000;

/// One step's figures, merged over every worker.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    pub count: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    /// Answers by class: `2xx`, `304`, `409`, `410`, `429`, `5xx`, `other`, `io`.
    pub status: BTreeMap<String, u64>,
}

/// What one worker saw of one step.
#[derive(Debug, Default)]
struct StepLog {
    /// Latencies in µs, clamped to the histogram bounds (which fit in a u32).
    micros: Vec<u32>,
    status: BTreeMap<&'static str, u64>,
    errors: u64,
}

/// One worker's recorders, by step name.
#[derive(Debug, Default)]
pub(crate) struct Stats(BTreeMap<&'static str, StepLog>);

pub(crate) fn class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        304 => "304",
        409 => "409",
        410 => "410",
        429 => "429",
        500..=599 => "5xx",
        _ => "other",
    }
}

impl Stats {
    /// Records one answer (`None`: it never came: connection error or timeout), its
    /// latency counted from `from` (the send, or in open loop the scheduled time).
    pub(crate) fn record(&mut self, step: &'static str, from: Instant, status: Option<u16>) {
        self.record_latency(step, from.elapsed(), status);
    }

    pub(crate) fn record_latency(
        &mut self,
        step: &'static str,
        latency: Duration,
        status: Option<u16>,
    ) {
        let micros = latency
            .as_micros()
            .clamp(u128::from(LOWEST_MICROS), u128::from(HIGHEST_MICROS))
            as u32;
        let log = self.0.entry(step).or_default();
        log.micros.push(micros);
        let c = status.map_or("io", class);
        *log.status.entry(c).or_default() += 1;
        if matches!(c, "5xx" | "other" | "io") {
            log.errors += 1;
        }
    }

    /// Merges every worker's recorders into one report line per step (by name).
    pub(crate) fn merge(workers: impl IntoIterator<Item = Stats>, elapsed: Duration) -> Vec<Step> {
        struct Merged {
            hist: Histogram<u64>,
            status: BTreeMap<String, u64>,
            errors: u64,
        }
        let mut all: BTreeMap<&'static str, Merged> = BTreeMap::new();
        for w in workers {
            for (name, log) in w.0 {
                let m = all.entry(name).or_insert_with(|| Merged {
                    hist: Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, 3)
                        .expect("constant bounds are valid"),
                    status: BTreeMap::new(),
                    errors: 0,
                });
                for v in log.micros {
                    // Within the bounds by construction (clamped when logged).
                    m.hist.saturating_record(u64::from(v));
                }
                for (c, n) in log.status {
                    *m.status.entry(c.to_owned()).or_default() += n;
                }
                m.errors += log.errors;
            }
        }
        let ms = |v: u64| v as f64 / 1000.0;
        all.into_iter()
            .map(|(name, m)| Step {
                step: name.to_owned(),
                count: m.hist.len(),
                per_second: m.hist.len() as f64 / elapsed.as_secs_f64().max(1e-9),
                p50_ms: ms(m.hist.value_at_quantile(0.5)),
                p90_ms: ms(m.hist.value_at_quantile(0.9)),
                p99_ms: ms(m.hist.value_at_quantile(0.99)),
                p999_ms: ms(m.hist.value_at_quantile(0.999)),
                max_ms: ms(m.hist.max()),
                errors: m.errors,
                status: m.status,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_recorders_merge_into_one_line_per_step() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for ms in 1..=90 {
            a.record_latency("hold", Duration::from_millis(ms), Some(201));
        }
        for ms in 91..=100 {
            b.record_latency("hold", Duration::from_millis(ms), Some(409));
        }
        b.record_latency("hold", Duration::from_secs(500), None); // clamped to 120 s
        b.record_latency("release", Duration::from_millis(3), Some(204));

        let steps = Stats::merge([a, b], Duration::from_secs(2));
        assert_eq!(
            steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
            ["hold", "release"]
        );
        let hold = &steps[0];
        assert_eq!(hold.count, 101);
        assert_eq!(hold.per_second, 50.5);
        assert_eq!(hold.status["2xx"], 90);
        assert_eq!(hold.status["409"], 10);
        assert_eq!(hold.status["io"], 1);
        assert_eq!(hold.errors, 1, "only the lost answer is an error");
        // Both workers' samples are in the quantiles: the median is worker a's 51st
        // sample, p99 is worker b's, the max is the clamped one.
        assert!((hold.p50_ms - 51.0).abs() < 0.1, "{}", hold.p50_ms);
        assert!((hold.p99_ms - 100.0).abs() < 0.1, "{}", hold.p99_ms);
        assert!((hold.max_ms - 120_000.0).abs() < 120.0, "{}", hold.max_ms);
        assert_eq!(steps[1].count, 1);
        assert_eq!(steps[1].status["2xx"], 1);
    }
}
