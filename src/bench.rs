//! `ringkv bench`: a load generator through the real client, for the
//! numbers in `benches/README.md`. It keeps `--concurrency` requests in
//! flight (spread over one pipelined connection per address), then prints
//! throughput and p50/p99/max latency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::client::{Client, RequestOptions};

/// Which operation to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    /// Puts of fresh keys (one per request, under a per-run prefix), so
    /// every put is a plain write: blind puts to the same keys would pile
    /// up siblings and measure something else.
    Put,
    /// Gets of keys written in a load phase first.
    Get,
}

/// Flags of `ringkv bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Client addresses to spread the load over, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    pub addrs: Vec<SocketAddr>,
    /// Operation to measure.
    #[arg(long, value_enum, default_value = "put")]
    pub op: BenchOp,
    /// Requests to send in the measured phase.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Distinct keys read by `--op get` (loaded first).
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Value size, in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Read quorum override.
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum override.
    #[arg(long)]
    pub w: Option<usize>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latency percentiles, in microseconds: p50, p99, max.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl BenchReport {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the benchmark.
pub async fn run(args: &BenchArgs) -> Result<BenchReport, String> {
    if args.addrs.is_empty() || args.concurrency == 0 || args.keys == 0 {
        return Err("--addrs, --concurrency and --keys must be non-empty / > 0".into());
    }
    let mut clients = Vec::new();
    for addr in &args.addrs {
        let c = Client::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        clients.push(c);
    }
    let value = vec![b'v'; args.value_bytes];
    // A per-run key prefix: runs never touch each other's keys.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let options = RequestOptions {
        r: args.r,
        w: args.w,
        ..RequestOptions::DEFAULT
    };
    if args.op == BenchOp::Get {
        let load = BenchArgs {
            op: BenchOp::Put,
            requests: args.keys,
            ..args.clone()
        };
        drive(run, &clients, &load, &value, options).await?;
    }
    drive(run, &clients, args, &value, options).await
}

async fn drive(
    run: u64,
    clients: &[Client],
    args: &BenchArgs,
    value: &[u8],
    options: RequestOptions,
) -> Result<BenchReport, String> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let client = clients[w % clients.len()].clone();
        let (next, value, args) = (next.clone(), value.to_vec(), args.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.requests {
                    break;
                }
                let key = match args.op {
                    BenchOp::Put => format!("bench:{run}:{i:012}"),
                    BenchOp::Get => format!("bench:{run}:{:012}", i % args.keys),
                };
                let t = Instant::now();
                let ok = match args.op {
                    BenchOp::Put => client
                        .put_with(key.as_bytes(), &value, None, options)
                        .await
                        .is_ok(),
                    BenchOp::Get => client.get_with(key.as_bytes(), options).await.is_ok(),
                };
                if ok {
                    latencies.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.map_err(|e| format!("worker failed: {e}"))?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(BenchReport {
        ok: all.len() as u64,
        errors,
        elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: all.last().copied().unwrap_or(0),
    })
}
