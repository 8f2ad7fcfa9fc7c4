//! `ringkv bench`: a load generator through the real client, for the
//! numbers in `benches/README.md`. It keeps `--concurrency` requests in
//! flight over `--connections` pipelined connections, mixes gets and puts
//! (`--read-ratio`) over a key space drawn uniformly or zipfian, and
//! reports HDR latency quantiles per operation, errors by kind, the
//! node processes' CPU per operation (when they are local) and a
//! per-second timeline; `--json` prints the report as JSON, `--plot` draws
//! the timeline as SVG.
//!
//! | module | job |
//! |---|---|
//! | `workload` | the operation mix, key distributions (YCSB zipfian), key names |
//! | `pace` | `--rate`: the open-loop schedule, and where a late request's latency starts |
//! | `stats` | HDR histograms per op, errors by kind, per-second intervals |
//! | `cpu` | `/proc/PID/stat` CPU samples, finding the node processes |
//! | `report` | the report (JSON shape) and its text form |
//! | `plot` | the SVG chart |
//!
//! Puts to the key space pass the latest context the bench holds for the
//! key (from its last put answer, or a later get answer), as a client
//! overwriting what it read would, so repeated puts replace each other;
//! two puts racing on one key still leave siblings (they are concurrent
//! writes), which the next get's context resolves; the report counts the
//! gets that saw siblings.

pub mod cpu;
pub mod pace;
pub mod plot;
pub mod report;
pub mod stats;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rand::SeedableRng as _;

use crate::client::{Client, Context, RequestOptions};
use cpu::NodeProcess;
use pace::Rate;
use report::{ConfigReport, PreloadReport, Report, Totals};
use stats::{Interval, OpKind, RunStats};
use workload::{key_name, KeyDist, KeyRef, Step, Workload, Zipfian};

/// Longest wait for a connection and its first `ping`, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Most requests in flight (`--concurrency`).
pub const CONCURRENCY_MAX: usize = 100_000;
/// Most connections (`--connections`).
pub const CONNECTIONS_MAX: usize = 4_096;
/// Largest value written (`--value-bytes`), in bytes; the node has its own,
/// lower, limit and answers `too_large` above it.
pub const VALUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest measured phase (`--duration-s`), in seconds.
pub const DURATION_S_MAX: u64 = 7 * 24 * 3600;
/// Requests measured when neither `--requests` nor `--duration-s` is given.
pub const REQUESTS_DEFAULT: u64 = 20_000;
/// The progress line and the timeline's interval, in milliseconds.
pub const TICK_MS: u64 = 1_000;
/// Shards of the per-key context cache (fewer lock collisions).
const CONTEXT_SHARDS: usize = 64;

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

/// The latest context the bench holds per key of the key space, with a
/// generation that counts the times it was replaced.
struct Contexts {
    shards: Vec<Mutex<HashMap<u64, (u64, Context)>>>,
}

impl Contexts {
    fn new() -> Contexts {
        Contexts {
            shards: (0..CONTEXT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, HashMap<u64, (u64, Context)>> {
        let shard = &self.shards[(key % CONTEXT_SHARDS as u64) as usize];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key's generation and context (generation 0: none yet).
    fn get(&self, key: u64) -> (u64, Option<Context>) {
        match self.shard(key).get(&key) {
            Some((generation, context)) => (*generation, Some(context.clone())),
            None => (0, None),
        }
    }

    /// A put's or delete's answer: the newest version this bench wrote,
    /// always kept.
    fn write_answered(&self, key: u64, context: Context) {
        let mut shard = self.shard(key);
        let generation = shard.get(&key).map_or(0, |(g, _)| *g);
        shard.insert(key, (generation + 1, context));
    }

    /// A get's answer, kept only if no write answered since the get was sent
    /// (`seen`: the generation then): an older read must not replace the
    /// context of a newer write, or the next put would make a sibling of it.
    fn get_answered(&self, key: u64, seen: u64, context: Context) {
        let mut shard = self.shard(key);
        let generation = shard.get(&key).map_or(0, |(g, _)| *g);
        if generation == seen {
            shard.insert(key, (generation + 1, context));
        }
    }
}

/// What every worker shares.
struct Shared {
    run: u64,
    plan: Plan,
    value: Vec<u8>,
    options: RequestOptions,
    contexts: Contexts,
    /// Requests claimed so far: the next one's number.
    issued: AtomicU64,
    fresh: AtomicU64,
    /// `--rate` requests sent after they were due because every worker
    /// was busy (`pace::latency_start`: not a worker's first).
    late: AtomicU64,
}

fn lock(stats: &Mutex<RunStats>) -> std::sync::MutexGuard<'_, RunStats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One worker: one request in flight at a time until the plan stops it.
async fn worker(
    shared: Arc<Shared>,
    client: Client,
    stats: Arc<Mutex<RunStats>>,
    seed: u64,
    started: Instant,
) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut first = true;
    loop {
        let i = shared.issued.fetch_add(1, Ordering::Relaxed);
        if matches!(shared.plan.stop, Stop::Requests(n) if i >= n) {
            break;
        }
        let t = match shared.plan.rate {
            None => {
                if matches!(shared.plan.stop, Stop::After(d) if started.elapsed() >= d) {
                    break;
                }
                Instant::now()
            }
            Some(rate) => {
                let due_in = rate.due(i);
                if matches!(shared.plan.stop, Stop::After(d) if due_in >= d) {
                    break;
                }
                let due = started + due_in;
                let claimed = Instant::now();
                if claimed < due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let (start, late) = pace::latency_start(due, claimed, Instant::now(), first);
                first = false;
                if late {
                    shared.late.fetch_add(1, Ordering::Relaxed);
                }
                start
            }
        };
        let step = shared
            .plan
            .workload
            .next(&mut rng, || shared.fresh.fetch_add(1, Ordering::Relaxed));
        match step {
            Step::Get(i) => {
                let key = key_name(shared.run, KeyRef::Space(i));
                let (seen, _) = shared.contexts.get(i);
                let result = client.get_with(key.as_bytes(), shared.options).await;
                let us = t.elapsed().as_micros() as u64;
                match result {
                    Ok(found) => {
                        {
                            let mut s = lock(&stats);
                            s.ok(OpKind::Get, us);
                            match found.values.len() {
                                0 => s.get_misses += 1,
                                1 => s.get_hits += 1,
                                _ => {
                                    s.get_hits += 1;
                                    s.get_siblings += 1;
                                }
                            }
                        }
                        if let Some(context) = found.context {
                            shared.contexts.get_answered(i, seen, context);
                        }
                    }
                    Err(e) => lock(&stats).error(&stats::error_kind(&e)),
                }
            }
            Step::Delete(i) => {
                let (_, context) = shared.contexts.get(i);
                let key = key_name(shared.run, KeyRef::Space(i));
                let result = client
                    .delete_with(key.as_bytes(), context.as_ref(), shared.options)
                    .await;
                let us = t.elapsed().as_micros() as u64;
                match result {
                    Ok(context) => {
                        lock(&stats).ok(OpKind::Delete, us);
                        shared.contexts.write_answered(i, context);
                    }
                    Err(e) => lock(&stats).error(&stats::error_kind(&e)),
                }
            }
            Step::Put(key_ref) => {
                let context = match key_ref {
                    KeyRef::Space(i) => shared.contexts.get(i).1,
                    KeyRef::Fresh(_) => None,
                };
                let key = key_name(shared.run, key_ref);
                let result = client
                    .put_with(
                        key.as_bytes(),
                        &shared.value,
                        context.as_ref(),
                        shared.options,
                    )
                    .await;
                let us = t.elapsed().as_micros() as u64;
                match result {
                    Ok(context) => {
                        lock(&stats).ok(OpKind::Put, us);
                        if let KeyRef::Space(i) = key_ref {
                            shared.contexts.write_answered(i, context);
                        }
                    }
                    Err(e) => lock(&stats).error(&stats::error_kind(&e)),
                }
            }
        }
    }
}

/// Collects intervals from the workers and prints the progress line.
struct Ticker {
    stats: Arc<Mutex<RunStats>>,
    intervals: Vec<Interval>,
    so_far: Histogram<u64>,
    errors_so_far: u64,
    last_ms: u64,
    progress: Progress,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    Off,
    /// Rewrite one line (a terminal).
    Line,
    /// One line per tick (`--progress` into a file or pipe).
    Lines,
}

impl Ticker {
    fn tick(&mut self, now_ms: u64) -> Result<(), String> {
        let (latency, errors) = lock(&self.stats).take_interval();
        self.so_far
            .add(&latency)
            .map_err(|e| format!("merging histograms: {e}"))?;
        self.errors_so_far += errors;
        let interval = Interval {
            start_ms: self.last_ms,
            end_ms: now_ms,
            latency,
            errors,
        };
        self.last_ms = now_ms;
        if self.progress != Progress::Off {
            if let Some(point) = stats::timeline(std::slice::from_ref(&interval)).first() {
                let line = format!(
                    "[{:>5.1} s] {:>9} ops/s  total {:>11}  errors {:>7}  p99 so far {}",
                    point.t_s,
                    report::thousands(point.ops_per_s.round() as u64),
                    report::thousands(self.so_far.len()),
                    report::thousands(self.errors_so_far),
                    report::latency(self.so_far.value_at_quantile(0.99)),
                );
                let mut err = std::io::stderr().lock();
                let _ = match self.progress {
                    Progress::Line => write!(err, "\r\x1b[2K{line}"),
                    _ => writeln!(err, "{line}"),
                };
                let _ = err.flush();
            }
        }
        self.intervals.push(interval);
        Ok(())
    }
}

/// Connects `connections` clients round-robin over `addrs`, authenticates
/// them if asked, and checks each answers `ping`.
async fn connect_all(args: &BenchArgs, connections: usize) -> Result<Vec<Client>, String> {
    let token = match &args.token_file {
        Some(path) => Some(
            crate::client::token_from_file(path, false)
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let limit = Duration::from_millis(CONNECT_TIMEOUT_MS);
    let mut clients = Vec::with_capacity(connections);
    for i in 0..connections {
        let addr = args.addrs[i % args.addrs.len()];
        let client = tokio::time::timeout(limit, Client::connect(addr))
            .await
            .map_err(|_| format!("cannot connect to {addr}: no answer within {limit:?}"))?
            .map_err(|e| {
                format!("cannot connect to {addr}: {e} (is a ringkv node listening there?)")
            })?
            .with_wait(Duration::from_secs(30));
        if let Some(token) = &token {
            client
                .auth(token)
                .await
                .map_err(|e| format!("auth with {addr}: {e}"))?;
        }
        tokio::time::timeout(limit, client.ping())
            .await
            .map_err(|_| format!("{addr} does not answer ping within {limit:?}"))?
            .map_err(|e| format!("{addr} does not answer ping: {e}"))?;
        clients.push(client);
    }
    Ok(clients)
}

/// The node processes to account for: given ones (checked to exist) or
/// the local ones listening on the addresses.
fn node_processes(args: &BenchArgs) -> Result<(String, Vec<NodeProcess>), String> {
    let mut pids = args.node_pids.clone();
    for path in &args.pid_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--pid-file {}: {e}", path.display()))?;
        pids.push(
            cpu::parse_pid_file(&text)
                .map_err(|e| format!("--pid-file {}: {e}", path.display()))?,
        );
    }
    if !pids.is_empty() {
        pids.sort_unstable();
        pids.dedup();
        for pid in &pids {
            cpu::read_ticks(*pid).map_err(|e| format!("--node-pids {pid}: {e}"))?;
        }
        let nodes = pids
            .into_iter()
            .map(|pid| NodeProcess { pid, addr: None })
            .collect();
        return Ok(("given".into(), nodes));
    }
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for addr in &args.addrs {
        for pid in cpu::discover(*addr) {
            // The bench itself never listens, but a test harness that
            // holds the port might: leave this process out.
            if pid != std::process::id() && !nodes.iter().any(|n| n.pid == pid) {
                nodes.push(NodeProcess {
                    pid,
                    addr: Some(*addr),
                });
            }
        }
    }
    let source = if nodes.is_empty() {
        "none"
    } else {
        "discovered"
    };
    Ok((source.into(), nodes))
}

/// Writes every key of the key space once (contexts kept for later puts).
async fn preload(shared: &Arc<Shared>, clients: &[Client], concurrency: usize) -> PreloadReport {
    let keys = shared.plan.workload.dist.keys();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency.min(keys as usize) {
        let (shared, next, errors) = (shared.clone(), next.clone(), errors.clone());
        let client = clients[w % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    break;
                }
                let key = key_name(shared.run, KeyRef::Space(i));
                match client
                    .put_with(key.as_bytes(), &shared.value, None, shared.options)
                    .await
                {
                    Ok(context) => shared.contexts.write_answered(i, context),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(key = %key, error = %e, "preload put failed");
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    PreloadReport {
        keys,
        errors: errors.load(Ordering::Relaxed),
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// Runs the benchmark (and draws `--plot`).
pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let plan = resolve(args)?;
    let (node_source, nodes) = node_processes(args)?;
    let clients = connect_all(args, plan.connections).await?;
    // A per-run key prefix: runs never touch each other's keys.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let shared = Arc::new(Shared {
        run,
        plan: plan.clone(),
        value: vec![b'v'; args.value_bytes],
        options: RequestOptions {
            r: args.r,
            w: args.w,
            ..RequestOptions::DEFAULT
        },
        contexts: Contexts::new(),
        issued: AtomicU64::new(0),
        fresh: AtomicU64::new(0),
        late: AtomicU64::new(0),
    });
    let preloaded = if plan.preload {
        Some(preload(&shared, &clients, args.concurrency).await)
    } else {
        None
    };

    let progress = if std::io::stderr().is_terminal() {
        Progress::Line
    } else if args.progress {
        Progress::Lines
    } else {
        Progress::Off
    };
    // One set of counts for every worker: they all run on this thread
    // (a current-thread runtime), so the lock is never contended, and a
    // tick takes one interval histogram, not one per worker (at 1,024 in
    // flight, merging theirs stalled the loop for tens of milliseconds
    // each second, and every request in flight then looked slow).
    let run_stats = Arc::new(Mutex::new(RunStats::new()?));
    let mut ticker = Ticker {
        stats: run_stats.clone(),
        intervals: Vec::new(),
        so_far: stats::new_histogram()?,
        errors_so_far: 0,
        last_ms: 0,
        progress,
    };

    let ticks_per_s = cpu::ticks_per_s();
    let nodes_before: Vec<_> = nodes.iter().map(|n| cpu::read_ticks(n.pid)).collect();
    let bench_before = cpu::own_ticks();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let client = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(worker(
            shared.clone(),
            client,
            run_stats.clone(),
            run ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            started,
        )));
    }
    let all_done = futures_util::future::join_all(tasks);
    tokio::pin!(all_done);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started) + Duration::from_millis(TICK_MS),
        Duration::from_millis(TICK_MS),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let joined = loop {
        tokio::select! {
            joined = &mut all_done => break joined,
            _ = tick.tick() => ticker.tick(started.elapsed().as_millis() as u64)?,
        }
    };
    let elapsed = started.elapsed();
    let nodes_after: Vec<_> = nodes.iter().map(|n| cpu::read_ticks(n.pid)).collect();
    let bench_after = cpu::own_ticks();
    ticker.tick(elapsed.as_millis() as u64)?;
    if progress == Progress::Line {
        eprintln!();
    }
    for j in joined {
        j.map_err(|e| format!("a worker failed: {e}"))?;
    }

    let total = lock(&run_stats).clone();
    let ok = total.ok_count();
    let errors = total.error_count();
    let requests = ok + errors;
    let mut latency_us = BTreeMap::new();
    let mut all = stats::new_histogram()?;
    for (kind, h) in &total.latency {
        all.add(h).map_err(|e| format!("merging histograms: {e}"))?;
        latency_us.insert(kind.name().to_owned(), stats::summarize(h));
    }
    latency_us.insert("all".to_owned(), stats::summarize(&all));
    let cpu = cpu::account(
        &node_source,
        &nodes,
        &nodes_before,
        &nodes_after,
        (bench_before, bench_after),
        requests,
        ticks_per_s,
    );
    let (distribution, zipf_theta) = match args.distribution {
        Distribution::Uniform => ("uniform", None),
        Distribution::Zipfian => ("zipfian", Some(args.zipf_theta)),
    };
    let report = Report {
        config: ConfigReport {
            addrs: args.addrs.iter().map(|a| a.to_string()).collect(),
            connections: plan.connections,
            concurrency: args.concurrency,
            rate: plan.rate.map(Rate::per_s),
            read_ratio: plan.workload.read_ratio,
            delete_ratio: plan.workload.delete_ratio,
            distribution: distribution.to_owned(),
            zipf_theta,
            keys: plan.workload.dist.keys(),
            fresh_puts: plan.workload.fresh_puts,
            value_bytes: args.value_bytes,
            requests: match plan.stop {
                Stop::Requests(n) => Some(n),
                Stop::After(_) => None,
            },
            duration_s: match plan.stop {
                Stop::Requests(_) => None,
                Stop::After(d) => Some(d.as_secs()),
            },
            preload: plan.preload,
            r: args.r,
            w: args.w,
        },
        preload: preloaded,
        totals: Totals {
            requests,
            ok,
            errors,
            elapsed_s: elapsed.as_secs_f64(),
            throughput_ops_per_s: ok as f64 / elapsed.as_secs_f64().max(1e-9),
            get_hits: total.get_hits,
            get_misses: total.get_misses,
            get_siblings: total.get_siblings,
            late_requests: plan.rate.map(|_| shared.late.load(Ordering::Relaxed)),
        },
        latency_us,
        errors: total.errors.clone(),
        cpu,
        timeline: stats::timeline(&ticker.intervals),
    };
    if let Some(path) = &args.plot {
        let title = format!(
            "ringkv bench: {:.0}% gets, {} over {} keys, {}, {} ops/s",
            report.config.read_ratio * 100.0,
            match zipf_theta {
                Some(theta) => format!("zipfian {theta}"),
                None => distribution.to_owned(),
            },
            report::thousands(report.config.keys),
            match plan.rate {
                Some(rate) => format!(
                    "open loop at {}/s",
                    report::thousands(rate.per_s().round() as u64)
                ),
                None => format!("{} in flight", args.concurrency),
            },
            report::thousands(report.totals.throughput_ops_per_s.round() as u64),
        );
        plot::draw(path, &title, &plot::plot_data(&report.timeline))?;
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
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
}
