//! Storage engine benchmarks: ringkv's `LsmEngine` against fjall and sled in
//! the same run, db_bench style (16-byte keys, 100-byte values).
//!
//! Run: `cargo bench --bench engine` (results and machine in
//! `benches/README.md`). `RINGKV_BENCH_KEYS` sets the preloaded key count
//! (default 1,000,000). Before the criterion groups, the write and space
//! amplification of `LsmEngine` after random overwrites are printed, and after
//! them a paired, interleaved ringkv/fjall run of one durable writer
//! (`durable_puts_1_writers_paired`, see `durable_paired`).
//!
//! `RINGKV_BENCH_READ_COUNT=N` runs no criterion group: it makes `N` hot
//! random reads of a loaded ringkv store and exits, for a count of
//! instructions and cache misses per read under cachegrind, which a noisy
//! machine does not blur (`benches/read_misses.sh`; see `read_count`).

// The allocator the ringkv binary uses; all three engines share it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkGroup, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringkv_actors::storage::lsm::vfs::counting::CountingVfs;
use ringkv_actors::storage::lsm::{
    LsmEngine, LsmOptions, StdVfs, SyncPolicy, TABLE_FORMAT_VERSION,
};
use ringkv_actors::storage::Engine;

mod stores;

use stores::{Kind, Store, KINDS};

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
/// Block cache for the hot-cache runs: holds the whole data set.
const HOT_CACHE_BYTES: usize = 512 << 20;
/// Block cache for the cold-cache runs: almost nothing stays cached.
const COLD_CACHE_BYTES: usize = 1 << 20;
const SCAN_KEYS: usize = 1_000;

fn keys_loaded() -> u64 {
    std::env::var("RINGKV_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn key(n: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    let digits = format!("{n:016}");
    key.copy_from_slice(digits.as_bytes());
    key
}

fn missing_key(n: u64) -> [u8; KEY_BYTES] {
    let mut key = key(n);
    key[KEY_BYTES - 1] = b'x';
    key
}

fn value(rng: &mut SmallRng) -> Vec<u8> {
    (0..VALUE_BYTES).map(|_| rng.gen()).collect()
}

fn bench_root() -> PathBuf {
    let root = std::env::temp_dir().join("ringkv-bench-engine");
    std::fs::create_dir_all(&root).ok();
    root
}

/// A directory per engine holding `keys_loaded()` sequential keys, built once.
fn loaded_dir(kind: Kind) -> PathBuf {
    static DIRS: OnceLock<[PathBuf; 3]> = OnceLock::new();
    let dirs = DIRS.get_or_init(|| {
        KINDS.map(|kind| {
            let dir = bench_root().join(format!("loaded-{}", kind.name()));
            std::fs::remove_dir_all(&dir).ok();
            let store = kind.open(&dir, HOT_CACHE_BYTES, false);
            let mut rng = SmallRng::seed_from_u64(1);
            let started = Instant::now();
            for n in 0..keys_loaded() {
                store.put(&key(n), &value(&mut rng));
            }
            store.settle();
            eprintln!(
                "loaded {} keys into {} in {:?}",
                keys_loaded(),
                kind.name(),
                started.elapsed()
            );
            dir
        })
    });
    dirs[kind as usize].clone()
}

/// `RINGKV_BENCH_ONLY=fillseq,durable` runs only the groups whose names
/// contain one of the comma-separated words (criterion's own filter would
/// still pay for the preloads).
fn selected(group: &str) -> bool {
    match std::env::var("RINGKV_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|word| group.contains(word)),
        Err(_) => true,
    }
}

/// Lets the previous engine's background I/O drain so it does not slow the
/// next one (the machine has 2 cores and one disk).
fn settle_disk<T>(store: T) {
    drop(store);
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(2));
}

fn fresh_dir(name: &str, kind: Kind) -> PathBuf {
    let dir = bench_root().join(format!("{name}-{}", kind.name()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    // Whatever ran before (a preload, another process) must not slow the
    // group's first engine.
    settle_disk(());
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
}

fn fills(c: &mut Criterion) {
    for (name, random) in [("fillseq", false), ("fillrandom", true)] {
        if !selected(name) {
            continue;
        }
        let mut group = c.benchmark_group(name);
        configure(&mut group);
        for kind in KINDS {
            let store = kind.open(&fresh_dir(name, kind), HOT_CACHE_BYTES, false);
            let mut rng = SmallRng::seed_from_u64(2);
            let mut next = 0u64;
            group.bench_function(kind.name(), |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let n = if random {
                            rng.gen_range(0..keys_loaded())
                        } else {
                            next
                        };
                        next += 1;
                        store.put(&key(n), &value(&mut rng));
                    }
                    started.elapsed()
                })
            });
            settle_disk(store);
        }
        group.finish();
    }
}

fn reads(c: &mut Criterion) {
    // Preload every engine before any group measures, so the preload's
    // background I/O has drained (see `configure`) when the first one runs.
    if ["readrandom", "readmissing", "scan1000"]
        .iter()
        .any(|name| selected(name))
    {
        KINDS.iter().for_each(|kind| drop(loaded_dir(*kind)));
    }
    type Workload = fn(&dyn Store, &mut SmallRng);
    let workloads: [(&str, usize, Workload); 4] = [
        ("readrandom_hot", HOT_CACHE_BYTES, |store, rng| {
            black_box(
                store
                    .get(&key(rng.gen_range(0..keys_loaded())))
                    .expect("present"),
            );
        }),
        ("readrandom_cold", COLD_CACHE_BYTES, |store, rng| {
            black_box(
                store
                    .get(&key(rng.gen_range(0..keys_loaded())))
                    .expect("present"),
            );
        }),
        ("readmissing", HOT_CACHE_BYTES, |store, rng| {
            assert!(store
                .get(&missing_key(rng.gen_range(0..keys_loaded())))
                .is_none());
        }),
        ("scan1000", HOT_CACHE_BYTES, |store, rng| {
            let start = key(rng.gen_range(0..keys_loaded().saturating_sub(SCAN_KEYS as u64)));
            assert_eq!(store.scan(&start, SCAN_KEYS), SCAN_KEYS);
        }),
    ];
    for (name, cache_bytes, workload) in workloads {
        if !selected(name) {
            continue;
        }
        let mut group = c.benchmark_group(name);
        configure(&mut group);
        for kind in KINDS {
            let store = kind.open(&loaded_dir(kind), cache_bytes, false);
            let mut rng = SmallRng::seed_from_u64(3);
            group.bench_function(kind.name(), |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        workload(store.as_ref(), &mut rng);
                    }
                    started.elapsed()
                })
            });
            settle_disk(store);
        }
        group.finish();
    }
}

fn durable_puts(c: &mut Criterion) {
    for writers in [1u64, 64] {
        let name = format!("durable_puts_{writers}_writers");
        if !selected(&name) {
            continue;
        }
        let mut group = c.benchmark_group(&name);
        configure(&mut group);
        for kind in KINDS {
            let store: Arc<dyn Store> =
                Arc::from(kind.open(&fresh_dir(&name, kind), HOT_CACHE_BYTES, true));
            let next = AtomicU64::new(0);
            group.bench_function(kind.name(), |b| {
                b.iter_custom(|iters| {
                    let per_writer = iters.div_ceil(writers);
                    let started = Instant::now();
                    std::thread::scope(|scope| {
                        for writer in 0..writers {
                            let (store, next) = (&store, &next);
                            scope.spawn(move || {
                                let mut rng = SmallRng::seed_from_u64(writer);
                                for _ in 0..per_writer {
                                    let n = next.fetch_add(1, Ordering::Relaxed);
                                    store.put_durable(&key(n), &value(&mut rng));
                                }
                            });
                        }
                    });
                    // Scale to the `iters` criterion asked for.
                    started
                        .elapsed()
                        .mul_f64(iters as f64 / (per_writer * writers) as f64)
                })
            });
            settle_disk(store);
        }
        group.finish();
    }
}

/// Random overwrites of a key space 5 times its size; prints write
/// amplification (bytes written to files / user bytes) and space
/// amplification (table bytes / live data bytes).
fn amplification(_c: &mut Criterion) {
    if !selected("amplification") {
        return;
    }
    let keys = keys_loaded() / 5;
    let puts = keys * 5;
    let vfs = CountingVfs::new(StdVfs);
    let written = vfs.written_bytes();
    let options = LsmOptions {
        sync: SyncPolicy::Periodic {
            sync_interval_ms: 1_000,
        },
        ..LsmOptions::default()
    };
    let engine = LsmEngine::open(
        Arc::new(vfs),
        fresh_dir("amplification", Kind::Ringkv),
        options,
    )
    .expect("open");
    let mut rng = SmallRng::seed_from_u64(4);
    for n in 0..keys {
        Store::put(&engine, &key(n), &value(&mut rng));
    }
    for _ in 0..puts {
        Store::put(&engine, &key(rng.gen_range(0..keys)), &value(&mut rng));
    }
    Engine::flush(&engine).expect("flush");
    // The steady state: the merges due now have run (count bytes, not time).
    engine.compact_due().expect("compactions");
    let user_bytes = (keys + puts) * (KEY_BYTES + VALUE_BYTES) as u64;
    let live_bytes = keys * (KEY_BYTES + VALUE_BYTES) as u64;
    eprintln!(
        "amplification: {} keys, {} random overwrites: write amplification {:.2} ({} bytes written / {} user bytes), \
         space amplification {:.2} ({} table bytes in {} tables / {} live bytes)",
        keys,
        puts,
        written.load(Ordering::Relaxed) as f64 / user_bytes as f64,
        written.load(Ordering::Relaxed),
        user_bytes,
        engine.table_bytes() as f64 / live_bytes as f64,
        engine.table_bytes(),
        engine.table_count(),
        live_bytes,
    );
}

/// Rounds of the paired single-writer durable measurement.
const PAIRED_ROUNDS: usize = 8;
/// Each engine's slice of a round.
const PAIRED_SLICE: Duration = Duration::from_secs(2);

/// One durable writer, ringkv and fjall in alternating 2 s slices (the
/// order swapped every round), printed with the ratio of their totals and
/// the lowest and highest per-round ratio. A single writer's durable put is
/// one device flush for either engine, and this machine's virtual disk
/// drifts between latency levels every few tens of seconds; criterion's
/// `durable_puts_1_writers` runs each engine once for a few seconds, so
/// drift alone can swing its ratio by +-15%. Pairing the slices cancels it.
fn durable_paired(_c: &mut Criterion) {
    if !selected("durable_puts_1_writers_paired") {
        return;
    }
    settle_disk(());
    let kinds = [Kind::Ringkv, Kind::Fjall];
    let stores =
        kinds.map(|kind| kind.open(&fresh_dir("durable_paired", kind), HOT_CACHE_BYTES, true));
    let mut rng = SmallRng::seed_from_u64(5);
    let mut next = 0u64;
    let mut totals = [0f64; 2];
    let mut ratios = Vec::new();
    for round in 0..PAIRED_ROUNDS {
        let mut rates = [0f64; 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for engine in order {
            let started = Instant::now();
            let mut puts = 0u64;
            while started.elapsed() < PAIRED_SLICE {
                next += 1;
                stores[engine].put_durable(&key(next), &value(&mut rng));
                puts += 1;
            }
            rates[engine] = puts as f64 / started.elapsed().as_secs_f64();
            totals[engine] += rates[engine];
        }
        ratios.push(rates[0] / rates[1]);
        eprintln!(
            "durable_puts_1_writers_paired round {round}: ringkv {:.0}/s fjall {:.0}/s ratio {:.3}",
            rates[0],
            rates[1],
            rates[0] / rates[1]
        );
    }
    ratios.sort_by(f64::total_cmp);
    eprintln!(
        "durable_puts_1_writers_paired: ringkv {:.0}/s fjall {:.0}/s (means of {PAIRED_ROUNDS} rounds), \
         ratio {:.3} (per round: lowest {:.3}, median {:.3}, highest {:.3})",
        totals[0] / PAIRED_ROUNDS as f64,
        totals[1] / PAIRED_ROUNDS as f64,
        totals[0] / totals[1],
        ratios.first().copied().unwrap_or_default(),
        ratios.get(ratios.len() / 2).copied().unwrap_or_default(),
        ratios.last().copied().unwrap_or_default(),
    );
}

/// Hot reads of this many keys warm the block cache before a counted run:
/// with 1 M keys (about 28 k blocks) it leaves almost no block unread.
const READ_COUNT_WARM_GETS: u64 = 300_000;

/// `RINGKV_BENCH_READ_COUNT=N`: `N` random reads of present keys (the
/// readrandom_hot workload, same seed every run) from a ringkv store of
/// `keys_loaded()` keys in `ringkv-bench-engine/reads-ringkv-<keys>-v<table
/// format>`, after [`READ_COUNT_WARM_GETS`] reads that fill the block
/// cache. The store is built on the first run and kept (it is built
/// natively, so the counted runs under valgrind only open it); a build
/// writing another table format builds its own, so it counts reads of its
/// own tables. Two runs with different `N` differ
/// only by the extra reads: their difference per read is what a hot read
/// costs, setup and warm-up cancelled.
fn read_count(count: u64) {
    let dir = bench_root().join(format!(
        "reads-ringkv-{}-v{TABLE_FORMAT_VERSION}",
        keys_loaded()
    ));
    if !dir.join("MANIFEST").exists() {
        std::fs::remove_dir_all(&dir).ok();
        let store = Kind::Ringkv.open(&dir, HOT_CACHE_BYTES, false);
        let mut rng = SmallRng::seed_from_u64(1);
        for n in 0..keys_loaded() {
            store.put(&key(n), &value(&mut rng));
        }
        store.settle();
        drop(store);
        // Reopened once so a counted run finds it as it will stay.
        Kind::Ringkv.open(&dir, HOT_CACHE_BYTES, false).settle();
        eprintln!("built {} with {} keys", dir.display(), keys_loaded());
    }
    let store = Kind::Ringkv.open(&dir, HOT_CACHE_BYTES, false);
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..READ_COUNT_WARM_GETS + count {
        black_box(
            store
                .get(&key(rng.gen_range(0..keys_loaded())))
                .expect("present"),
        );
    }
}

criterion_group!(
    benches,
    amplification,
    fills,
    reads,
    durable_puts,
    durable_paired
);

fn main() {
    if let Some(count) = std::env::var("RINGKV_BENCH_READ_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        read_count(count);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
