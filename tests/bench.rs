//! `ringkv bench` as a user runs it: the binary against real 1- and 3-node
//! clusters, a short mixed zipfian run with `--json` and `--plot`, and the
//! report checked (every request counted, quantiles ordered, node CPU
//! measured for the given or discovered node processes, an SVG drawn).

mod common;

use std::process::Command;

use common::Cluster;
use serde_json::Value;

/// Requests per run: enough for the nodes to spend a few clock ticks of
/// CPU (the /proc figures count 10 ms ticks).
const REQUESTS: u64 = 3_000;

/// Runs `ringkv bench` with `flags` and parses its JSON report.
fn bench_json(cluster: &Cluster, flags: &[&str]) -> Value {
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.client.to_string()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["bench", "--addrs", &addrs.join(","), "--json"])
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The checks every run's report must pass; `deletes`: the run mixed some in.
fn check_report(report: &Value, plot: &std::path::Path, deletes: bool) {
    let totals = &report["totals"];
    assert_eq!(u(&totals["requests"]), REQUESTS, "{report:#}");
    assert_eq!(u(&totals["ok"]) + u(&totals["errors"]), REQUESTS);
    assert_eq!(u(&totals["errors"]), 0, "errors: {}", report["errors"]);
    assert!(totals["throughput_ops_per_s"].as_f64().unwrap() > 0.0);
    let lat = &report["latency_us"];
    // A 50/50 mix of 3,000 requests has both kinds.
    assert_eq!(
        u(&lat["get"]["count"]) + u(&lat["put"]["count"]) + u(&lat["delete"]["count"]),
        u(&lat["all"]["count"])
    );
    assert_eq!(u(&lat["all"]["count"]), REQUESTS);
    let ops: &[&str] = if deletes {
        &["get", "put", "delete", "all"]
    } else {
        assert_eq!(u(&lat["delete"]["count"]), 0);
        &["get", "put", "all"]
    };
    for op in ops {
        let s = &lat[op];
        assert!(u(&s["count"]) > 0, "no {op}s: {report:#}");
        let q: Vec<u64> = ["min_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"]
            .iter()
            .map(|k| u(&s[*k]))
            .collect();
        assert!(q[0] > 0, "{op}: {s}");
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "{op} quantiles: {s}");
    }
    // Preloaded: every get found its key (unless deleted).
    if !deletes {
        assert_eq!(u(&totals["get_misses"]), 0);
    }
    assert_eq!(u(&report["preload"]["errors"]), 0);
    assert!(!report["timeline"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(plot).unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..80]);
}

fn node_cpu(report: &Value) -> f64 {
    report["cpu"]["node_cpu_us_per_op"]
        .as_f64()
        .unwrap_or_else(|| panic!("no node CPU: {:#}", report["cpu"]))
}

#[tokio::test]
async fn bench_one_node_mixed_zipfian_json_and_plot() {
    let cluster = Cluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("one.svg");
    let pid = cluster.nodes[0].child.as_ref().unwrap().id();
    let requests = REQUESTS.to_string();
    let flags = [
        "--requests",
        &requests,
        "--read-ratio",
        "0.5",
        "--distribution",
        "zipfian",
        "--keys",
        "500",
        "--preload",
        "--concurrency",
        "8",
        "--plot",
        plot.to_str().unwrap(),
    ];
    // Pids given.
    let given = bench_json(
        &cluster,
        &[&flags[..], &["--node-pids", &pid.to_string()]].concat(),
    );
    check_report(&given, &plot, false);
    assert_eq!(given["cpu"]["node_source"], "given");
    assert_eq!(u(&given["cpu"]["nodes"][0]["pid"]), u64::from(pid));
    assert!(node_cpu(&given) > 0.0);
    assert_eq!(given["config"]["distribution"], "zipfian");

    // No pids: the node is found listening on its client address.
    std::fs::remove_file(&plot).unwrap();
    let found = bench_json(&cluster, &flags);
    check_report(&found, &plot, false);
    assert_eq!(found["cpu"]["node_source"], "discovered");
    let nodes = found["cpu"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{:#}", found["cpu"]);
    assert_eq!(u(&nodes[0]["pid"]), u64::from(pid));
    assert_eq!(nodes[0]["addr"], cluster.nodes[0].client.to_string());
    assert!(node_cpu(&found) > 0.0);
}

#[tokio::test]
async fn bench_three_nodes_sums_cpu_over_nodes() {
    let cluster = Cluster::start(3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("three.svg");
    let pids: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.child.as_ref().unwrap().id().to_string())
        .collect();
    let requests = REQUESTS.to_string();
    let report = bench_json(
        &cluster,
        &[
            "--requests",
            &requests,
            "--read-ratio",
            "0.5",
            "--delete-ratio",
            "0.1",
            "--distribution",
            "zipfian",
            "--keys",
            "500",
            "--preload",
            "--concurrency",
            "16",
            "--connections",
            "6",
            "--w",
            "2",
            "--r",
            "2",
            "--node-pids",
            &pids.join(","),
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    check_report(&report, &plot, true);
    let cpu = &report["cpu"];
    let nodes = cpu["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{cpu:#}");
    let sum: u64 = nodes.iter().map(|n| u(&n["cpu_us"])).sum();
    assert_eq!(u(&cpu["node_cpu_us"]), sum);
    assert!(node_cpu(&report) > 0.0);
    // Every put is replicated to the two other nodes: each one works.
    assert!(nodes.iter().all(|n| u(&n["cpu_us"]) > 0), "{cpu:#}");
    assert_eq!(u(&report["config"]["connections"]), 6);
}

#[tokio::test]
async fn bench_reports_an_unreachable_node_clearly() {
    let addr = common::free_addr();
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["bench", "--addrs", &addr.to_string(), "--requests", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
}

#[tokio::test]
async fn bench_open_loop_keeps_its_rate_and_counts_late_requests_from_when_they_were_due() {
    let cluster = Cluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    // A rate the node keeps: the run cannot end before its last request
    // is due (599 / 2000 s after the start), so it is never faster than
    // the rate.
    let paced = bench_json(
        &cluster,
        &["--rate", "2000", "--requests", "600", "--concurrency", "16"],
    );
    assert_eq!(paced["config"]["rate"].as_f64(), Some(2000.0));
    assert_eq!(u(&paced["totals"]["ok"]), 600, "{paced:#}");
    let elapsed = paced["totals"]["elapsed_s"].as_f64().unwrap();
    assert!(
        elapsed >= 599.0 / 2000.0,
        "600 requests at 2000/s in {elapsed} s"
    );
    assert!(paced["totals"]["late_requests"].is_u64(), "{paced:#}");

    // A rate no node keeps with one request in flight: request i is due
    // i µs after the start, so every one after the first is due before
    // the one ahead of it is answered. Each is late, and its latency
    // counts from when it was due: the last one waited for nearly the
    // whole run.
    let swamped = bench_json(
        &cluster,
        &[
            "--rate",
            "1000000",
            "--requests",
            "300",
            "--concurrency",
            "1",
        ],
    );
    assert!(u(&swamped["totals"]["late_requests"]) >= 299, "{swamped:#}");
    let run_us = swamped["totals"]["elapsed_s"].as_f64().unwrap() * 1e6;
    let max_us = u(&swamped["latency_us"]["all"]["max_us"]) as f64;
    assert!(
        max_us * 2.0 >= run_us,
        "max {max_us} µs in a run of {run_us} µs"
    );
    // Closed loop: no rate, no late count.
    let closed = bench_json(&cluster, &["--requests", "100", "--concurrency", "4"]);
    assert!(closed["config"]["rate"].is_null() && closed["totals"]["late_requests"].is_null());
}
