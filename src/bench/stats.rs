//! What `ringkv bench` records: HDR latency histograms per operation kind,
//! errors by kind, and per-second intervals (the progress line, the
//! timeline in the report and the plot), with their pure summaries.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency a histogram holds, in microseconds; slower requests
/// are recorded as this (the client gives up after 30 s anyway).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits the histograms keep (0.1% relative error).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// The operation kinds measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A get.
    Get,
    /// A put.
    Put,
    /// A delete.
    Delete,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 3] = [OpKind::Get, OpKind::Put, OpKind::Delete];

    /// The kind's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Delete => "delete",
        }
    }
}

/// An empty latency histogram (1 µs ..= [`LATENCY_US_MAX`]).
pub fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .map_err(|e| format!("latency histogram: {e}"))
}

/// Latency quantiles of a set of requests, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Requests in the histogram.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Fastest.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// The quantiles of `h` (all zero when it is empty). Each quantile is the
/// highest value equivalent to the sample at that rank, so they are ordered
/// p50 <= p90 <= p99 <= p999 <= max.
pub fn summarize(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary {
            count: 0,
            mean_us: 0.0,
            min_us: 0,
            p50_us: 0,
            p90_us: 0,
            p99_us: 0,
            p999_us: 0,
            max_us: 0,
        };
    }
    Summary {
        count: h.len(),
        mean_us: h.mean(),
        min_us: h.min(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

/// The run's counts, shared by every worker; the ticker takes the
/// interval part each second.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Latency of successful requests per kind, whole run.
    pub latency: BTreeMap<OpKind, Histogram<u64>>,
    /// Failed requests by kind of error (`unavailable`, `timeout`,
    /// `connection`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Gets that found a value / found nothing.
    pub get_hits: u64,
    /// Gets of a key that holds nothing.
    pub get_misses: u64,
    /// Gets that found two or more siblings.
    pub get_siblings: u64,
    /// Latency of every successful request since the last tick.
    pub interval: Histogram<u64>,
    /// Failed requests since the last tick.
    pub interval_errors: u64,
}

impl RunStats {
    /// Empty counts.
    pub fn new() -> Result<RunStats, String> {
        let empty = new_histogram()?;
        Ok(RunStats {
            latency: OpKind::ALL
                .iter()
                .map(|k| (*k, Histogram::new_from(&empty)))
                .collect(),
            errors: BTreeMap::new(),
            get_hits: 0,
            get_misses: 0,
            get_siblings: 0,
            interval: empty,
            interval_errors: 0,
        })
    }

    /// A successful request of `kind` that took `us` microseconds.
    pub fn ok(&mut self, kind: OpKind, us: u64) {
        if let Some(h) = self.latency.get_mut(&kind) {
            h.saturating_record(us.max(1));
        }
        self.interval.saturating_record(us.max(1));
    }

    /// A failed request.
    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
        self.interval_errors += 1;
    }

    /// Takes what happened since the last call (the interval counts start
    /// again from zero).
    pub fn take_interval(&mut self) -> (Histogram<u64>, u64) {
        let fresh = Histogram::new_from(&self.interval);
        let latency = std::mem::replace(&mut self.interval, fresh);
        (latency, std::mem::take(&mut self.interval_errors))
    }

    /// Adds `other`'s whole-run counts to these.
    pub fn merge(&mut self, other: &RunStats) -> Result<(), String> {
        for (kind, h) in &other.latency {
            if let Some(mine) = self.latency.get_mut(kind) {
                mine.add(h)
                    .map_err(|e| format!("merging histograms: {e}"))?;
            }
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.get_hits += other.get_hits;
        self.get_misses += other.get_misses;
        self.get_siblings += other.get_siblings;
        Ok(())
    }

    /// Every failed request.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Every successful request.
    pub fn ok_count(&self) -> u64 {
        self.latency.values().map(|h| h.len()).sum()
    }
}

/// One tick's worth of requests.
#[derive(Clone, Debug)]
pub struct Interval {
    /// Start, in milliseconds since the measured phase started.
    pub start_ms: u64,
    /// End, likewise (a tick comes late on a busy machine, and the last
    /// interval is short).
    pub end_ms: u64,
    /// Latency of the requests that succeeded in it.
    pub latency: Histogram<u64>,
    /// Requests that failed in it.
    pub errors: u64,
}

/// One point of the timeline: a tick's throughput and latency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Start of the interval, in seconds since the measured phase started.
    pub start_s: f64,
    /// End of the interval, in seconds since the measured phase started.
    pub t_s: f64,
    /// Successful requests per second over the interval.
    pub ops_per_s: f64,
    /// Failed requests in the interval.
    pub errors: u64,
    /// Median latency in the interval (0 when nothing succeeded).
    pub p50_us: u64,
    /// 99th percentile in the interval.
    pub p99_us: u64,
}

/// The timeline of `intervals`: each one's rate over its own length (so a
/// late tick or the short last interval is not misread), and its
/// quantiles. Intervals of zero length (a run that ended at a tick) are
/// left out.
pub fn timeline(intervals: &[Interval]) -> Vec<Point> {
    intervals
        .iter()
        .filter(|i| i.end_ms > i.start_ms)
        .map(|i| {
            let s = summarize(&i.latency);
            Point {
                start_s: i.start_ms as f64 / 1000.0,
                t_s: i.end_ms as f64 / 1000.0,
                ops_per_s: i.latency.len() as f64 * 1000.0 / (i.end_ms - i.start_ms) as f64,
                errors: i.errors,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
            }
        })
        .collect()
}

/// The kind of a failed call, as the report counts it: the node's error
/// code, or what the client saw.
pub fn error_kind(e: &crate::client::Error) -> String {
    use crate::client::Error;
    match e {
        Error::Server { code, .. } => code.as_str().to_owned(),
        Error::Io(_) => "connection".to_owned(),
        Error::Closed => "connection_closed".to_owned(),
        Error::Protocol(_) => "protocol".to_owned(),
        Error::Tls(_) => "tls".to_owned(),
        Error::TimedOut(_) => "client_timeout".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram().unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn summary_quantiles_of_a_known_distribution() {
        // 1..=1000 µs, once each.
        let s = summarize(&histogram(1..=1000));
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert!((s.mean_us - 500.5).abs() < 0.5, "{}", s.mean_us);
    }

    #[test]
    fn summary_is_ordered_and_within_precision_for_wide_values() {
        let values: Vec<u64> = (0..10_000u64).map(|i| 50 + i * i % 7_000_000).collect();
        let s = summarize(&histogram(values.iter().copied()));
        assert!(s.min_us <= s.p50_us && s.p50_us <= s.p90_us);
        assert!(s.p90_us <= s.p99_us && s.p99_us <= s.p999_us && s.p999_us <= s.max_us);
        let true_max = *values.iter().max().unwrap();
        // Three significant digits: within 0.1% of the true value.
        assert!(s.max_us >= true_max && s.max_us <= true_max + true_max / 1000 + 1);
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = summarize(&new_histogram().unwrap());
        assert_eq!((s.count, s.p50_us, s.max_us), (0, 0, 0));
    }

    #[test]
    fn run_stats_count_merge_and_take_intervals() {
        let mut a = RunStats::new().unwrap();
        a.ok(OpKind::Get, 100);
        a.ok(OpKind::Put, 0); // recorded as 1 µs, not lost
        a.error("timeout");
        let (interval, errors) = a.take_interval();
        assert_eq!((interval.len(), errors), (2, 1));
        let (interval, errors) = a.take_interval();
        assert_eq!((interval.len(), errors), (0, 0));
        // Slower than the histogram's range: clamped, still counted.
        a.ok(OpKind::Put, LATENCY_US_MAX * 10);

        let mut total = RunStats::new().unwrap();
        let mut b = RunStats::new().unwrap();
        b.ok(OpKind::Get, 300);
        b.error("timeout");
        b.error("connection");
        total.merge(&a).unwrap();
        total.merge(&b).unwrap();
        assert_eq!(total.ok_count(), 4);
        assert_eq!(total.error_count(), 3);
        assert_eq!(total.errors["timeout"], 2);
        assert_eq!(total.latency[&OpKind::Get].len(), 2);
        assert!(total.latency[&OpKind::Put].max() >= LATENCY_US_MAX);
    }

    #[test]
    fn timeline_rates_use_each_interval_length() {
        let intervals = vec![
            Interval {
                start_ms: 0,
                end_ms: 1000,
                latency: histogram(vec![100; 500]),
                errors: 0,
            },
            // A late tick: 1,000 requests in 2 s is 500/s, not 1,000/s.
            Interval {
                start_ms: 1000,
                end_ms: 3000,
                latency: histogram((0..1000).map(|i| 100 + i)),
                errors: 2,
            },
            // The short last interval: 50 requests in 0.25 s.
            Interval {
                start_ms: 3000,
                end_ms: 3250,
                latency: histogram(vec![200; 50]),
                errors: 0,
            },
            // Ended exactly at a tick: nothing to plot.
            Interval {
                start_ms: 3250,
                end_ms: 3250,
                latency: new_histogram().unwrap(),
                errors: 0,
            },
        ];
        let points = timeline(&intervals);
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].ops_per_s, 500.0);
        assert_eq!(points[1].ops_per_s, 500.0);
        assert_eq!(points[1].errors, 2);
        assert_eq!(points[1].p50_us, 599);
        assert_eq!(points[2].ops_per_s, 200.0);
        assert_eq!(points[2].t_s, 3.25);
        assert_eq!((points[0].p50_us, points[0].p99_us), (100, 100));
    }
}
