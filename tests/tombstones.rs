//! Tombstone reaping on real processes (README "Deletes and tombstones"):
//! 10,000 deletes on 3 nodes are reaped everywhere, so `ringkv_tombstones`
//! and the data size go back to about zero; and a replica paused during the
//! deletes never brings a value back, while its copies are reaped once it
//! is back.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::Cluster;
use futures_util::stream::{self, StreamExt};
use prometheus_parse::{Scrape, Value};
use ringkv::client::{Client, RequestOptions};

/// The reaper's settings for these tests: a round every 200 ms, deletes
/// reaped once 5 s old (the least the default request timeout allows).
const REAP: [&str; 6] = [
    "--tombstone-reap-interval-ms",
    "200",
    "--tombstone-reap-age-ms-min",
    "5000",
    "--tombstone-reap-batch-keys",
    "1024",
];
/// Small memtables and log segments (deletes and overwrites do not grow a
/// memtable; the segment bound flushes it), so the data lands in tables and
/// compaction matters.
const STORE: [&str; 4] = [
    "--lsm-memtable-bytes-max",
    "262144",
    "--lsm-log-segment-bytes-max",
    "262144",
];
/// Longest wait for the cluster to converge and reap.
const CONVERGE_MAX: Duration = Duration::from_secs(120);
/// Requests in flight at once while loading.
const CONCURRENCY: usize = 64;
/// Bytes a stored tombstone of a `key(i)` takes at least, compacted.
const TOMBSTONE_BYTES_MIN: usize = 30;

fn scrape(addr: SocketAddr) -> Scrape {
    let (_, body) = common::http_get(addr, "/metrics");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(scrape: &Scrape, metric: &str) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric)
        .map_or(0.0, |s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => f64::NAN,
        })
}

/// What a node's metrics say about its store.
#[derive(Debug, Clone, Copy)]
struct Store {
    tombstones: f64,
    reaped: f64,
    data_bytes: f64,
}

fn store(addr: SocketAddr) -> Store {
    let s = scrape(addr);
    Store {
        tombstones: value(&s, "ringkv_tombstones"),
        reaped: value(&s, "ringkv_tombstones_reaped_total"),
        data_bytes: value(&s, "ringkv_storage_table_bytes")
            + value(&s, "ringkv_storage_memtable_bytes"),
    }
}

/// A 3-node cluster with the test reaper and a metrics port per node.
async fn cluster(extra: &[&str]) -> (Cluster, Vec<SocketAddr>) {
    let args: Vec<&str> = REAP.iter().chain(&STORE).chain(extra).copied().collect();
    let mut cluster = Cluster::plan(3, &args);
    let metrics = cluster.add_metrics_listeners();
    cluster.spawn_all();
    cluster.wait_all_alive().await;
    (cluster, metrics)
}

fn key(i: usize) -> Vec<u8> {
    format!("tomb-{i:05}").into_bytes()
}

/// Writes keys `0..count` (W=3, a 100-byte value), then deletes each with
/// the context its put answered (`w` acknowledgements).
async fn write_then_delete(client: &Client, count: usize, delete_w: usize) {
    let all = RequestOptions {
        w: Some(3),
        ..RequestOptions::DEFAULT
    };
    let contexts: Vec<_> = stream::iter(0..count)
        .map(|i| async move {
            let ctx = client.put_with(&key(i), &[b'v'; 100], None, all).await;
            (i, ctx.unwrap())
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let deleting = RequestOptions {
        w: Some(delete_w),
        ..RequestOptions::DEFAULT
    };
    stream::iter(contexts)
        .map(|(i, ctx)| async move {
            client
                .delete_with(&key(i), Some(&ctx), deleting)
                .await
                .unwrap();
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// The reaper's log lines of every node (for a failure's message).
fn reaper_log(cluster: &Cluster) -> String {
    let mut out = String::new();
    for node in &cluster.nodes {
        let log = std::fs::read_to_string(node.data_dir.with_extension("log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("tombstone reaper")) {
            out.push_str(&format!("{}: {line}\n", node.id));
        }
    }
    out
}

/// Polls every node's metrics until `done` holds for all of them; fails
/// with the last readings and the reapers' log after [`CONVERGE_MAX`].
async fn until_every_store(
    cluster: &Cluster,
    metrics: &[SocketAddr],
    what: &str,
    done: impl Fn(Store) -> bool,
) {
    let deadline = Instant::now() + CONVERGE_MAX;
    loop {
        let stores: Vec<Store> = metrics.iter().map(|a| store(*a)).collect();
        if stores.iter().all(|s| done(*s)) {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{what}: never reached: {stores:?}\n{}", reaper_log(cluster));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every key reads as absent at R=3 through every node.
async fn all_absent(cluster: &Cluster, count: usize) {
    let r3 = RequestOptions {
        r: Some(3),
        ..RequestOptions::DEFAULT
    };
    for node in &cluster.nodes {
        let client = node.client().await;
        let client = &client;
        let found: Vec<(usize, Vec<Vec<u8>>)> = stream::iter(0..count)
            .map(|i| async move { (i, client.get_with(&key(i), r3).await.unwrap().values) })
            .buffer_unordered(CONCURRENCY)
            .filter(|(_, values)| std::future::ready(!values.is_empty()))
            .collect()
            .await;
        assert!(
            found.is_empty(),
            "{} keys came back through {}, e.g. {:?}",
            found.len(),
            node.id,
            found.first()
        );
    }
}

#[tokio::test]
async fn ten_thousand_deletes_are_reaped_and_their_space_comes_back() {
    const KEYS: usize = 10_000;
    let (cluster, metrics) = cluster(&[]).await;
    let client = cluster.nodes[0].client().await;
    write_then_delete(&client, KEYS, 3).await;
    // Every node holds every key (N=3): the stores are full of tombstones.
    // A key's tombstone takes about 50 bytes once flushed and compacted
    // (its key, clock and dot); more while the memtable still counts the
    // 100-byte value it replaced. How much is compacted by now depends on
    // the timing (a node measured 490 kB, its peers 524 kB), so the bound
    // is what the tombstones alone take.
    let loaded: Vec<Store> = metrics.iter().map(|a| store(*a)).collect();
    for s in &loaded {
        assert!(
            s.data_bytes > (KEYS * TOMBSTONE_BYTES_MIN) as f64,
            "{loaded:?}"
        );
    }
    until_every_store(&cluster, &metrics, "every tombstone reaped", |s| {
        s.tombstones == 0.0 && s.reaped >= KEYS as f64
    })
    .await;
    // The reaper compacts once a pass removed much of the store: the
    // space comes back (the meta keys are what is left: under 5% of what
    // the keys took).
    let smallest = loaded.iter().map(|s| s.data_bytes).fold(f64::MAX, f64::min);
    until_every_store(&cluster, &metrics, "the data size back near zero", |s| {
        s.data_bytes < smallest * 0.05
    })
    .await;
    all_absent(&cluster, KEYS).await;
    // A key written again after its reap is a fresh value, and a put with
    // a context from before the delete keeps it (a sibling): no dot of
    // the reaped object was reused.
    let old = client.put(b"again", b"first", None).await.unwrap();
    client.delete(b"again", Some(&old)).await.unwrap();
    until_every_store(&cluster, &metrics, "the second delete reaped", |s| {
        s.tombstones == 0.0 && s.reaped >= (KEYS + 1) as f64
    })
    .await;
    client.put(b"again", b"second", None).await.unwrap();
    client.put(b"again", b"stale", Some(&old)).await.unwrap();
    let mut values = client
        .get_with(
            b"again",
            RequestOptions {
                r: Some(3),
                ..RequestOptions::DEFAULT
            },
        )
        .await
        .unwrap()
        .values;
    values.sort();
    assert_eq!(values, vec![b"second".to_vec(), b"stale".to_vec()]);
}

#[tokio::test]
async fn a_replica_paused_during_the_deletes_never_brings_a_value_back() {
    const KEYS: usize = 300;
    // Anti-entropy every second brings the paused replica the tombstones
    // once it is back.
    let (cluster, metrics) = cluster(&["--anti-entropy-interval-ms", "1000"]).await;
    let client = cluster.nodes[0].client().await;
    let all = RequestOptions {
        w: Some(3),
        ..RequestOptions::DEFAULT
    };
    let mut contexts = Vec::new();
    for i in 0..KEYS {
        contexts.push(client.put_with(&key(i), b"old", None, all).await.unwrap());
    }
    // n3 misses every delete, and stays away past the minimum age: had the
    // other two reaped without it, its "old" would come back.
    cluster.nodes[2].pause(true);
    let two = RequestOptions {
        w: Some(2),
        ..RequestOptions::DEFAULT
    };
    for (i, ctx) in contexts.iter().enumerate() {
        client.delete_with(&key(i), Some(ctx), two).await.unwrap();
    }
    let paused_at = Instant::now();
    // Past the minimum age on n1 and n2, with n3 still holding "old".
    while paused_at.elapsed() < Duration::from_millis(6_000) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n1 = store(metrics[0]);
        assert_eq!(n1.reaped, 0.0, "reaped while a replica was away: {n1:?}");
    }
    cluster.nodes[2].pause(false);
    cluster.wait_all_alive().await;
    until_every_store(&cluster, &metrics, "every tombstone reaped", |s| {
        s.tombstones == 0.0 && s.reaped >= KEYS as f64
    })
    .await;
    all_absent(&cluster, KEYS).await;
    // n3 by itself (R=1 through n3, the others paused) holds nothing.
    cluster.nodes[0].pause(true);
    cluster.nodes[1].pause(true);
    let c3 = cluster.nodes[2].client().await;
    for i in 0..KEYS {
        let found = c3
            .get_with(
                &key(i),
                RequestOptions {
                    r: Some(1),
                    ..RequestOptions::DEFAULT
                },
            )
            .await
            .unwrap();
        assert!(
            found.values.is_empty(),
            "n3 still answers {:?}",
            found.values
        );
    }
    cluster.nodes[0].pause(false);
    cluster.nodes[1].pause(false);
}
