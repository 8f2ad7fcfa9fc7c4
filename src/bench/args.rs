//! `ringkv bench`'s flags and the plan they resolve to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::pace::Rate;
use super::workload::{self, KeyDist, Workload, Zipfian};
use super::{CONCURRENCY_MAX, CONNECTIONS_MAX, DURATION_S_MAX, REQUESTS_DEFAULT, VALUE_BYTES_MAX};

/// A shorthand for the classic single-operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    /// Puts only, each of a fresh key (`--read-ratio 0 --fresh-puts`):
    /// every put is a plain write of a new key.
    Put,
    /// Gets only, of keys written first (`--read-ratio 1 --preload`).
    Get,
}

/// How keys are drawn from the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// YCSB's zipfian: key i with probability proportional to
    /// 1/(i+1)^theta (`--zipf-theta`); key 0 is the hottest.
    Zipfian,
}

/// Flags of `ringkv bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Client addresses of the nodes to load, comma-separated; connections
    /// are spread over them round-robin.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    pub addrs: Vec<SocketAddr>,
    /// Shorthand: `put` = `--read-ratio 0 --fresh-puts`, `get` =
    /// `--read-ratio 1 --preload`. Without `--op` and `--read-ratio`,
    /// `--op put`.
    #[arg(long, value_enum, conflicts_with_all = ["read_ratio", "delete_ratio", "fresh_puts"])]
    pub op: Option<BenchOp>,
    /// Share of requests that are gets, 0.0..=1.0; the rest are puts.
    #[arg(long, value_name = "RATIO")]
    pub read_ratio: Option<f64>,
    /// Share of requests that are deletes (with the bench's latest context
    /// for the key), 0.0..=1.0; --read-ratio plus this is at most 1.
    #[arg(long, default_value_t = 0.0, value_name = "RATIO")]
    pub delete_ratio: f64,
    /// Puts write a new key each (never read back) instead of a key of the
    /// key space.
    #[arg(long)]
    pub fresh_puts: bool,
    /// Size of the key space that gets and puts draw from.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub keys: u64,
    /// How keys are drawn from the key space.
    #[arg(long, value_enum, default_value = "uniform")]
    pub distribution: Distribution,
    /// Skew of `--distribution zipfian`, in (0, 1): YCSB's zipfian constant.
    #[arg(long, default_value_t = 0.99, value_name = "THETA")]
    pub zipf_theta: f64,
    /// Size of each value written, in bytes.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_bytes: usize,
    /// Requests to measure (default 20000 unless --duration-s).
    #[arg(long, conflicts_with = "duration_s", value_name = "N")]
    pub requests: Option<u64>,
    /// Measure for this many seconds instead of a number of requests.
    #[arg(long, value_name = "S")]
    pub duration_s: Option<u64>,
    /// Requests in flight at once; with --rate, the most in flight (a
    /// request due while every one is busy waits, and its latency counts
    /// from when it was due).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub concurrency: usize,
    /// Open loop: send this many requests per second, evenly spaced (in
    /// 1 ms bursts), whether or not earlier ones were answered, and count
    /// each request's latency from when it was due (no coordinated
    /// omission). Without it, each of --concurrency workers sends its next
    /// request when its last one is answered.
    #[arg(long, value_name = "REQUESTS_PER_S")]
    pub rate: Option<f64>,
    /// Connections to open, spread over --addrs (default: one per address).
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Write every key of the key space once before measuring, so gets
    /// find a value (not measured; reported apart).
    #[arg(long)]
    pub preload: bool,
    /// Read quorum sent with each get (default: the node's).
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum sent with each put (default: the node's).
    #[arg(long)]
    pub w: Option<usize>,
    /// Send `auth` on every connection with the client token from this
    /// file (its first line), for nodes started with --client-token-file.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Print the report as JSON on stdout (config, totals, latency
    /// quantiles per op, errors by kind, CPU per op, timeline).
    #[arg(long)]
    pub json: bool,
    /// Print the live progress line on stderr every second even when
    /// stderr is not a terminal (it is shown on a terminal anyway).
    #[arg(long)]
    pub progress: bool,
    /// Draw throughput and p50/p99 latency per second into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The node processes whose CPU to report, comma-separated (default:
    /// the local processes listening on --addrs, found through /proc).
    #[arg(long, value_delimiter = ',', value_name = "PID,...")]
    pub node_pids: Vec<u32>,
    /// A file holding a node's process id (repeatable); adds to
    /// --node-pids.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Vec<PathBuf>,
}

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many requests.
    Requests(u64),
    /// After this long (requests in flight then still complete).
    After(Duration),
}

/// The run `BenchArgs` describe, checked.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Operation mix and keys.
    pub workload: Workload,
    /// End of the measured phase.
    pub stop: Stop,
    /// Write the key space first.
    pub preload: bool,
    /// Connections to open.
    pub connections: usize,
    /// The open-loop rate (`None`: closed loop).
    pub rate: Option<Rate>,
}

/// Checks the flags and resolves the shorthands.
pub fn resolve(args: &BenchArgs) -> Result<Plan, String> {
    if args.addrs.is_empty() {
        return Err("--addrs: give at least one node address".into());
    }
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        return Err(format!(
            "--concurrency must be in 1..={CONCURRENCY_MAX}, got {}",
            args.concurrency
        ));
    }
    let connections = args.connections.unwrap_or(args.addrs.len());
    if connections == 0 || connections > CONNECTIONS_MAX {
        return Err(format!(
            "--connections must be in 1..={CONNECTIONS_MAX}, got {connections}"
        ));
    }
    if args.value_bytes > VALUE_BYTES_MAX {
        return Err(format!(
            "--value-bytes must be at most {VALUE_BYTES_MAX}, got {}",
            args.value_bytes
        ));
    }
    let (read_ratio, fresh_puts, preload) = match (args.op, args.read_ratio) {
        (Some(BenchOp::Get), _) => (1.0, false, true),
        (Some(BenchOp::Put), _) | (None, None) => (0.0, true, args.preload),
        (None, Some(ratio)) => (ratio, args.fresh_puts, args.preload),
    };
    if !(0.0..=1.0).contains(&read_ratio) {
        return Err(format!(
            "--read-ratio must be in 0.0..=1.0, got {read_ratio}"
        ));
    }
    let delete_ratio = args.delete_ratio;
    if !(0.0..=1.0).contains(&delete_ratio) || read_ratio + delete_ratio > 1.0 {
        return Err(format!(
            "--delete-ratio must be in 0.0..=1.0 and at most 1 - --read-ratio, got {delete_ratio}"
        ));
    }
    let dist = match args.distribution {
        Distribution::Uniform => {
            if args.keys == 0 || args.keys > workload::KEYS_MAX {
                return Err(format!(
                    "--keys must be in 1..={}, got {}",
                    workload::KEYS_MAX,
                    args.keys
                ));
            }
            KeyDist::Uniform { keys: args.keys }
        }
        Distribution::Zipfian => KeyDist::Zipfian(Zipfian::new(args.keys, args.zipf_theta)?),
    };
    let stop = match (args.requests, args.duration_s) {
        (_, Some(s)) if s == 0 || s > DURATION_S_MAX => {
            return Err(format!(
                "--duration-s must be in 1..={DURATION_S_MAX}, got {s}"
            ))
        }
        (_, Some(s)) => Stop::After(Duration::from_secs(s)),
        (Some(0), None) => return Err("--requests must be at least 1".into()),
        (Some(n), None) => Stop::Requests(n),
        (None, None) => Stop::Requests(REQUESTS_DEFAULT),
    };
    Ok(Plan {
        workload: Workload {
            read_ratio,
            delete_ratio,
            dist,
            fresh_puts,
        },
        stop,
        preload,
        connections,
        rate: args.rate.map(Rate::new).transpose()?,
    })
}
