//! Reading one counter out of the servers' `GET /metrics` (Prometheus text format),
//! to count the store commits a run caused.

/// The servers' count of store commits (a transaction committed, whatever its kind).
pub const STORE_COMMITS: &str = "boxoffice_store_commits_total";

/// The sum of every series of metric `name` in a Prometheus text exposition (all
/// label sets), or `None` if no series of that name is there. Comments (`# HELP`,
/// `# TYPE`, anything after `#`), other metrics (including ones whose names merely
/// start with `name`) and lines whose value does not parse are skipped.
pub fn sum_series(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            match after_labels(labels) {
                Some(r) => r,
                None => continue,
            }
        } else if rest.starts_with(|c: char| c.is_ascii_whitespace()) {
            rest
        } else {
            continue; // a longer name: `name_created`, `name2`, ...
        };
        // The value, then an optional timestamp.
        let Some(Ok(v)) = rest.split_ascii_whitespace().next().map(str::parse::<f64>) else {
            continue;
        };
        *sum.get_or_insert(0.0) += v;
    }
    sum
}

/// What follows the closing `}` of a label set whose `{` was just consumed: label
/// values are quoted strings, in which `}` and escaped quotes may appear.
fn after_labels(s: &str) -> Option<&str> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(&s[i + 1..]),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP boxoffice_store_commits_total Store transactions committed.
# TYPE boxoffice_store_commits_total counter
boxoffice_store_commits_total{kind="hold_batch"} 120
boxoffice_store_commits_total{kind="checkout",node="a b"} 30.5
boxoffice_store_commits_total{kind="odd } \"quoted\" {",store="sqlite"} 4 1712345678000
# boxoffice_store_commits_total{kind="commented out"} 1000
boxoffice_store_commits_total_created{kind="hold_batch"} 1.7e9
boxoffice_store_commits_totals 9999
boxoffice_holds_created_total 77
  boxoffice_store_commits_total{kind="indented"}   5
boxoffice_store_commits_total{kind="broken"} not-a-number
"#;

    #[test]
    fn every_labelled_series_of_the_counter_is_summed_and_nothing_else() {
        assert_eq!(
            sum_series(SAMPLE, STORE_COMMITS),
            Some(120.0 + 30.5 + 4.0 + 5.0)
        );
        assert_eq!(
            sum_series(SAMPLE, "boxoffice_holds_created_total"),
            Some(77.0)
        );
    }

    #[test]
    fn an_unlabelled_counter_counts_too() {
        let text =
            "# TYPE boxoffice_store_commits_total counter\nboxoffice_store_commits_total 42\n";
        assert_eq!(sum_series(text, STORE_COMMITS), Some(42.0));
    }

    #[test]
    fn a_missing_counter_is_none_not_zero() {
        let text = "# HELP boxoffice_store_commits_total only the help line\n\
                    boxoffice_store_commits_total_created 3\n\
                    http_requests_total{route=\"/\"} 3\n";
        assert_eq!(sum_series(text, STORE_COMMITS), None);
        assert_eq!(sum_series("", STORE_COMMITS), None);
    }
}
