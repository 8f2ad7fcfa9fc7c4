//! The report of a `ringkv bench` run: one serializable value (`--json`
//! prints it as is) and its text form (the default output on stdout).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::cpu::CpuReport;
use super::stats::{Point, Summary};

/// The run's settings, as resolved from the flags.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigReport {
    /// Client addresses.
    pub addrs: Vec<String>,
    /// Connections opened (spread over the addresses).
    pub connections: usize,
    /// Requests in flight (with `rate`: the most in flight).
    pub concurrency: usize,
    /// The open-loop rate, requests per second (`None`: closed loop).
    pub rate: Option<f64>,
    /// Share of gets.
    pub read_ratio: f64,
    /// Share of deletes.
    pub delete_ratio: f64,
    /// `uniform` or `zipfian`.
    pub distribution: String,
    /// The zipfian constant (zipfian only).
    pub zipf_theta: Option<f64>,
    /// Size of the key space.
    pub keys: u64,
    /// Puts write a new key each.
    pub fresh_puts: bool,
    /// Bytes per value written.
    pub value_bytes: usize,
    /// Requests measured (requests mode).
    pub requests: Option<u64>,
    /// Length of the measured phase (duration mode).
    pub duration_s: Option<u64>,
    /// Every key was written once before measuring.
    pub preload: bool,
    /// Read quorum sent with each get (`None`: the node's default).
    pub r: Option<usize>,
    /// Write quorum sent with each put.
    pub w: Option<usize>,
}

/// The preload phase (not measured).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreloadReport {
    /// Keys written.
    pub keys: u64,
    /// Puts that failed.
    pub errors: u64,
    /// Wall time.
    pub elapsed_s: f64,
}

/// Counts over the measured phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    /// Requests completed (ok + errors).
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput_ops_per_s: f64,
    /// Gets that found a value.
    pub get_hits: u64,
    /// Gets that found nothing.
    pub get_misses: u64,
    /// Gets that found two or more siblings.
    pub get_siblings: u64,
    /// With a rate: requests sent after they were due because every
    /// worker was busy (their latency counts from when they were due).
    pub late_requests: Option<u64>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Settings.
    pub config: ConfigReport,
    /// The preload, if any.
    pub preload: Option<PreloadReport>,
    /// Counts.
    pub totals: Totals,
    /// Latency of successful requests per kind (`get`, `put`) and of all
    /// of them (`all`), in microseconds.
    pub latency_us: BTreeMap<String, Summary>,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// CPU per operation.
    pub cpu: CpuReport,
    /// Throughput and latency per interval (about a second each).
    pub timeline: Vec<Point>,
}

/// `12,345` for 12345.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in µs, as `850 µs` or `3.21 ms`.
pub fn latency(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

/// The text form.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let c = &r.config;
    let mode = match (c.requests, c.duration_s) {
        (_, Some(s)) => format!("{s} s"),
        (Some(n), None) => format!("{} requests", thousands(n)),
        (None, None) => String::new(),
    };
    let dist = match c.zipf_theta {
        Some(theta) => format!("zipfian (theta {theta})"),
        None => c.distribution.clone(),
    };
    let puts = if c.fresh_puts {
        "fresh keys"
    } else {
        "the same keys"
    };
    let load = match c.rate {
        Some(rate) => format!(
            "open loop at {} requests/s, at most {} in flight",
            thousands(rate.round() as u64),
            c.concurrency
        ),
        None => format!("{} in flight", c.concurrency),
    };
    let _ = writeln!(
        out,
        "ringkv bench: {mode}, {load} over {} connections to {}",
        c.connections,
        c.addrs.join(",")
    );
    let deletes = if c.delete_ratio > 0.0 {
        format!(", {:.0}% deletes", c.delete_ratio * 100.0)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  workload: {:.0}% gets of {} keys ({dist}){deletes}, puts of {} B values to {puts}",
        c.read_ratio * 100.0,
        thousands(c.keys),
        c.value_bytes,
    );
    if let Some(p) = &r.preload {
        let _ = writeln!(
            out,
            "  preload: {} keys in {:.2} s, {} errors",
            thousands(p.keys),
            p.elapsed_s,
            p.errors
        );
    }
    let t = &r.totals;
    let _ = writeln!(
        out,
        "  {} requests in {:.2} s: {} ok, {} errors = {} ops/s",
        thousands(t.requests),
        t.elapsed_s,
        thousands(t.ok),
        thousands(t.errors),
        thousands(t.throughput_ops_per_s.round() as u64)
    );
    if let Some(late) = t.late_requests.filter(|&late| late > 0) {
        let _ = writeln!(
            out,
            "  {} requests sent late: every one of the {} workers was busy when they were due \
             (the rate was not kept; their latency counts from when they were due)",
            thousands(late),
            c.concurrency
        );
    }
    if t.get_hits + t.get_misses > 0 {
        let _ = writeln!(
            out,
            "  gets: {} hits, {} misses, {} with siblings",
            thousands(t.get_hits),
            thousands(t.get_misses),
            thousands(t.get_siblings)
        );
    }
    let _ = writeln!(
        out,
        "  {:<5} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "op", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    for (op, s) in &r.latency_us {
        if s.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<5} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            op,
            thousands(s.count),
            latency(s.mean_us.round() as u64),
            latency(s.p50_us),
            latency(s.p90_us),
            latency(s.p99_us),
            latency(s.p999_us),
            latency(s.max_us)
        );
    }
    if !r.errors.is_empty() {
        let kinds: Vec<String> = r.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "  errors: {}", kinds.join(", "));
    }
    let cpu = &r.cpu;
    match cpu.node_cpu_us_per_op {
        Some(per_op) => {
            let nodes: Vec<String> = cpu
                .nodes
                .iter()
                .map(|n| format!("pid {} {:.1}", n.pid, n.cpu_us_per_op.unwrap_or_default()))
                .collect();
            let _ = writeln!(
                out,
                "  node CPU: {per_op:.1} µs per op over {} nodes ({}; {})",
                cpu.nodes.len(),
                cpu.node_source,
                nodes.join(", ")
            );
        }
        None if cpu.nodes.is_empty() => {
            let _ = writeln!(
                out,
                "  node CPU: not measured (no local process found listening on the addresses; --node-pids)"
            );
        }
        None => {
            let why: Vec<String> = cpu.nodes.iter().filter_map(|n| n.error.clone()).collect();
            let _ = writeln!(out, "  node CPU: not measured ({})", why.join("; "));
        }
    }
    if let Some(per_op) = cpu.bench_cpu_us_per_op {
        let _ = writeln!(out, "  bench CPU: {per_op:.1} µs per op");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Report {
        let summary = Summary {
            count: 10,
            mean_us: 150.0,
            min_us: 90,
            p50_us: 120,
            p90_us: 200,
            p99_us: 1500,
            p999_us: 1500,
            max_us: 1500,
        };
        Report {
            config: ConfigReport {
                addrs: vec!["127.0.0.1:7001".into()],
                connections: 1,
                concurrency: 4,
                rate: Some(2_000.0),
                read_ratio: 0.5,
                delete_ratio: 0.0,
                distribution: "zipfian".into(),
                zipf_theta: Some(0.99),
                keys: 1000,
                fresh_puts: false,
                value_bytes: 100,
                requests: Some(20),
                duration_s: None,
                preload: true,
                r: None,
                w: Some(2),
            },
            preload: Some(PreloadReport {
                keys: 1000,
                errors: 0,
                elapsed_s: 0.5,
            }),
            totals: Totals {
                requests: 20,
                ok: 19,
                errors: 1,
                elapsed_s: 0.01,
                throughput_ops_per_s: 1900.0,
                get_hits: 9,
                get_misses: 0,
                get_siblings: 0,
                late_requests: Some(3),
            },
            latency_us: BTreeMap::from([
                ("get".to_owned(), summary.clone()),
                (
                    "put".to_owned(),
                    Summary {
                        count: 9,
                        ..summary.clone()
                    },
                ),
                (
                    "all".to_owned(),
                    Summary {
                        count: 19,
                        ..summary
                    },
                ),
            ]),
            errors: BTreeMap::from([("timeout".to_owned(), 1)]),
            cpu: CpuReport {
                node_source: "given".into(),
                ticks_per_s: 100,
                node_cpu_us_per_op: Some(500.0),
                node_cpu_us: Some(10_000),
                nodes: vec![super::super::cpu::NodeCpu {
                    pid: 7,
                    addr: None,
                    cpu_us: Some(10_000),
                    cpu_us_per_op: Some(500.0),
                    error: None,
                }],
                bench_cpu_us: Some(0),
                bench_cpu_us_per_op: Some(0.0),
            },
            timeline: vec![],
        }
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        for key in [
            "config",
            "preload",
            "totals",
            "latency_us",
            "errors",
            "cpu",
            "timeline",
        ] {
            assert!(v.get(key).is_some(), "no {key}: {v}");
        }
        assert_eq!(v["config"]["distribution"], "zipfian");
        assert_eq!(v["config"]["duration_s"], serde_json::Value::Null);
        assert_eq!(v["totals"]["requests"], 20);
        assert_eq!(v["totals"]["late_requests"], 3);
        assert_eq!(v["config"]["rate"], 2_000.0);
        assert_eq!(v["latency_us"]["get"]["p999_us"], 1500);
        assert_eq!(v["latency_us"]["all"]["count"], 19);
        assert_eq!(v["errors"]["timeout"], 1);
        assert_eq!(v["cpu"]["node_cpu_us_per_op"], 500.0);
        assert_eq!(v["cpu"]["nodes"][0]["pid"], 7);
    }

    #[test]
    fn text_names_every_figure() {
        let text = render_text(&sample());
        for want in [
            "20 requests",
            "1,900 ops/s",
            "p99.9",
            "1.50 ms",
            "120 µs",
            "timeout 1",
            "node CPU: 500.0 µs per op",
            "preload: 1,000 keys",
            "open loop at 2,000 requests/s, at most 4 in flight",
            "3 requests sent late",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(latency(999), "999 µs");
        assert_eq!(latency(12_345), "12.35 ms");
    }
}
