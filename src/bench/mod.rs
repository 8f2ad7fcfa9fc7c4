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
//! | `args` | the flags and the plan they resolve to (`resolve`) |
//! | `worker` | the workers (one request in flight each) and the per-key contexts they share |
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

mod args;
pub mod cpu;
pub mod pace;
pub mod plot;
pub mod report;
pub mod stats;
mod worker;
pub mod workload;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Client, RequestOptions};
use cpu::NodeProcess;
use pace::Rate;
use report::{ConfigReport, PreloadReport, Report, Totals};
use stats::{Interval, RunStats};
use workload::{key_name, KeyRef};

pub use args::{resolve, BenchArgs, BenchOp, Distribution, Plan, Stop};
use worker::{lock, worker, Contexts, Shared};

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
mod tests;
