//! The per-request path of one node, in process (issue #13): a real node
//! (every actor, started by `node::start` as `ringkv node` does) on
//! loopback ports, driven by the crate's `Client` on the same arbiter. Each
//! operation crosses the whole path: the client session's frame decode,
//! the replicator, the storage threads, the reply's encode.
//!
//! - `memory/put`, `memory/get`: `--storage memory`, N=1, one request in
//!   flight. No disk: the time is the CPU of the path (client and node on
//!   one thread, plus the storage writer's hop).
//! - `memory/put_32`, `memory/get_32`: the same with 32 requests in flight
//!   (time per operation; hops and syscalls shared by a batch).
//! - `lsm/put_32`: the LSM engine in a temporary directory, durable (each
//!   group commit fsynced), 32 in flight: what a durable put costs with
//!   group commit on this machine's disk.
//!
//! Values are 100 bytes; gets read 10,000 preloaded keys, puts write a
//! fresh key each.
//! `RINGKV_BENCH_ONLY=memory/put` (a substring) runs one case.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::stream::{self, StreamExt};
use ringkv::client::Client;
use ringkv::config::{NodeArgs, NodeConfig, StorageKind};
use ringkv::node::{self, NodeEnv, RunningNode};

/// The node binary's allocator (src/main.rs), so the path allocates as in
/// `ringkv node`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes per value.
const VALUE_BYTES: usize = 100;
/// Distinct keys written and read.
const KEYS: u64 = 10_000;
/// Requests in flight in the `_32` cases.
const IN_FLIGHT: usize = 32;

/// The key a get reads: one of the preloaded ones.
fn key(i: u64) -> Vec<u8> {
    format!("bench-{:010}", i % KEYS).into_bytes()
}

/// The key a put writes: a fresh one each time (as `ringkv bench --op put`
/// does), so every put is one version, not one more blind sibling.
fn fresh_key(i: u64) -> Vec<u8> {
    format!("bench-{:010}", KEYS + i).into_bytes()
}

/// A started node and a client connected to it.
struct Bench {
    system: actix_rt::SystemRunner,
    client: Client,
    _node: RunningNode,
    _dir: tempfile::TempDir,
}

fn start(storage: StorageKind) -> Bench {
    let dir = tempfile::tempdir().expect("a temporary data dir");
    // A free port each (the node refuses two listeners on port 0).
    let free_port = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().ok()
    };
    let config: NodeConfig = NodeArgs {
        id: Some("bench".into()),
        listen: free_port(),
        client_listen: free_port(),
        data_dir: Some(dir.path().join("node")),
        storage: Some(storage),
        n: Some(1),
        r: Some(1),
        w: Some(1),
        ..NodeArgs::default()
    }
    .validate()
    .expect("a valid bench configuration");
    let system = actix_rt::System::new();
    let (node, client) = system.block_on(async {
        let (parts, lock) = node::open_storage(&config).expect("the store opens");
        let node = node::start(&config, NodeEnv::of_process(parts), lock)
            .await
            .expect("the node starts");
        let client = Client::connect(node.client_addr)
            .await
            .expect("the client connects");
        (node, client)
    });
    Bench {
        system,
        client,
        _node: node,
        _dir: dir,
    }
}

impl Bench {
    /// Writes every key once.
    fn preload(&self) {
        let client = &self.client;
        self.system.block_on(async {
            stream::iter(0..KEYS)
                .map(|i| async move { client.put(&key(i), &[b'v'; VALUE_BYTES], None).await })
                .buffer_unordered(IN_FLIGHT)
                .for_each(|r| async move {
                    r.expect("a preload put");
                })
                .await;
        });
    }

    /// Runs `iters` operations (`get` or put), `in_flight` at once, from
    /// key `*next` on; the time they took.
    fn run(&self, iters: u64, in_flight: usize, get: bool, next: &mut u64) -> Duration {
        let client = &self.client;
        let first = *next;
        *next += iters;
        self.system.block_on(async move {
            let started = Instant::now();
            stream::iter(first..first + iters)
                .map(|i| async move {
                    if get {
                        client.get(&key(i)).await.map(|_| ())
                    } else {
                        client
                            .put(&fresh_key(i), &[b'v'; VALUE_BYTES], None)
                            .await
                            .map(|_| ())
                    }
                })
                .buffer_unordered(in_flight)
                .for_each(|r| async move {
                    r.expect("a bench request");
                })
                .await;
            started.elapsed()
        })
    }
}

fn selected(name: &str) -> bool {
    std::env::var("RINGKV_BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

fn request_path(c: &mut Criterion) {
    let cases: [(&str, StorageKind, bool, usize); 5] = [
        ("memory/put", StorageKind::Memory, false, 1),
        ("memory/get", StorageKind::Memory, true, 1),
        ("memory/put_32", StorageKind::Memory, false, IN_FLIGHT),
        ("memory/get_32", StorageKind::Memory, true, IN_FLIGHT),
        ("lsm/put_32", StorageKind::Lsm, false, IN_FLIGHT),
    ];
    let mut group = c.benchmark_group("request_path");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, storage, get, in_flight) in cases {
        if !selected(name) {
            continue;
        }
        let bench = start(storage);
        if get {
            bench.preload();
        }
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| bench.run(iters, in_flight, get, &mut next))
        });
    }
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
