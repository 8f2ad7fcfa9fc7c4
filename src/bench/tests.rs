//! Tests of the load generator's plan and workers (`bench/mod.rs`).

#![allow(clippy::unwrap_used)]

use super::worker::CONTEXT_SHARDS;
use super::workload::KeyDist;
use super::*;
use crate::client::Context;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(flags: &[&str]) -> Result<BenchArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied())).map(|c| c.bench)
}

fn plan(flags: &[&str]) -> Result<Plan, String> {
    resolve(&args(flags).map_err(|e| e.to_string())?)
}

#[test]
fn defaults_are_the_classic_put_run() {
    let p = plan(&[]).unwrap();
    assert_eq!(p.workload.read_ratio, 0.0);
    assert!(p.workload.fresh_puts && !p.preload);
    assert_eq!(p.stop, Stop::Requests(REQUESTS_DEFAULT));
    assert_eq!(p.connections, 3);
}

#[test]
fn op_shorthands() {
    let p = plan(&["--op", "get"]).unwrap();
    assert_eq!(p.workload.read_ratio, 1.0);
    assert!(p.preload && !p.workload.fresh_puts);
    let p = plan(&["--op", "put", "--preload"]).unwrap();
    assert!(p.workload.fresh_puts && p.preload);
    assert!(args(&["--op", "get", "--read-ratio", "0.5"]).is_err());
    assert!(args(&["--op", "put", "--fresh-puts"]).is_err());
}

#[test]
fn mixed_zipfian_duration_run() {
    let p = plan(&[
        "--read-ratio",
        "0.5",
        "--distribution",
        "zipfian",
        "--zipf-theta",
        "0.8",
        "--keys",
        "500",
        "--duration-s",
        "3",
        "--connections",
        "8",
    ])
    .unwrap();
    assert_eq!(p.workload.read_ratio, 0.5);
    assert_eq!(p.workload.delete_ratio, 0.0);
    assert!(!p.workload.fresh_puts);
    assert!(matches!(p.workload.dist, KeyDist::Zipfian(_)));
    assert_eq!(p.workload.dist.keys(), 500);
    assert_eq!(p.stop, Stop::After(Duration::from_secs(3)));
    assert_eq!(p.connections, 8);
    assert_eq!(p.rate, None);
    let p = plan(&["--rate", "1500", "--concurrency", "64"]).unwrap();
    assert_eq!(p.rate.map(Rate::per_s), Some(1500.0));
}

#[test]
fn bad_flags_are_refused_with_the_flag_named() {
    let refused = |flags: &[&str], name: &str| {
        let e = plan(flags).unwrap_err();
        assert!(e.contains(name), "{flags:?}: {e}");
    };
    refused(&["--read-ratio", "1.5"], "--read-ratio");
    refused(&["--read-ratio", "NaN"], "--read-ratio");
    refused(
        &["--read-ratio", "0.8", "--delete-ratio", "0.3"],
        "--delete-ratio",
    );
    refused(
        &["--read-ratio", "0.5", "--delete-ratio=-0.1"],
        "--delete-ratio",
    );
    assert!(args(&["--op", "put", "--delete-ratio", "0.1"]).is_err());
    refused(&["--concurrency", "0"], "--concurrency");
    refused(&["--connections", "0"], "--connections");
    refused(&["--keys", "0"], "--keys");
    refused(
        &["--distribution", "zipfian", "--zipf-theta", "1"],
        "--zipf-theta",
    );
    refused(&["--requests", "0"], "--requests");
    refused(&["--duration-s", "0"], "--duration-s");
    refused(&["--value-bytes", "1000000000"], "--value-bytes");
    refused(&["--rate", "0"], "--rate");
    refused(&["--rate", "NaN"], "--rate");
    assert!(args(&["--requests", "5", "--duration-s", "5"]).is_err());
    assert!(args(&["--distribution", "pareto"]).is_err());
}

#[test]
fn context_cache_keeps_the_newest_write() {
    let c = Contexts::new();
    assert_eq!(c.get(3), (0, None));
    c.write_answered(3, Context(vec![1]));
    c.write_answered(3 + CONTEXT_SHARDS as u64, Context(vec![2]));
    let (seen, _) = c.get(3);
    c.write_answered(3, Context(vec![3]));
    // A get sent before that put answered: its context is older.
    c.get_answered(3, seen, Context(vec![9]));
    assert_eq!(c.get(3).1, Some(Context(vec![3])));
    // A get sent after it: kept (it may cover siblings).
    let (seen, _) = c.get(3);
    c.get_answered(3, seen, Context(vec![4]));
    assert_eq!(c.get(3).1, Some(Context(vec![4])));
    assert_eq!(c.get(3 + CONTEXT_SHARDS as u64).1, Some(Context(vec![2])));
    // A first get of a key never written keeps its context.
    c.get_answered(5, 0, Context(vec![5]));
    assert_eq!(c.get(5), (1, Some(Context(vec![5]))));
}

#[test]
fn missing_pid_is_a_clear_error() {
    let a = args(&["--node-pids", "4000000000"]).unwrap();
    let e = node_processes(&a).unwrap_err();
    assert!(e.contains("--node-pids 4000000000"), "{e}");
}

#[tokio::test]
async fn unreachable_node_is_a_clear_error() {
    // A port that was free a moment ago: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = args(&["--addrs", &addr.to_string(), "--requests", "1"]).unwrap();
    let e = run(&a).await.unwrap_err();
    assert!(e.contains(&format!("cannot connect to {addr}")), "{e}");
}
