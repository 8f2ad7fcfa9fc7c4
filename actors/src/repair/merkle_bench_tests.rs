//! The numbers of benches/README.md "Anti-entropy" (issue 15 item 5), as
//! `#[ignore]`d tests on two in-process stores: the real leaves
//! (`storage::tree`, fed as the writer feeds them), the real pair trees and
//! walk (`merkle`, `anti_entropy::walk` / `serve_nodes`); the network is
//! replaced by counting the MessagePack bytes of each request and answer,
//! and a pull by a scan of the peer's store merged into the local one.
//! The two stores share every key (a pair that replicates the whole ring).
//!
//! `AE_BENCH_KEYS=1000000 cargo test -p ringkv-actors --release merkle_bench -- --ignored --nocapture`

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use super::anti_entropy::{serve_nodes, walk, SyncStats};
use super::merkle::{coalesce, tree_digest, PairTree};
use crate::conflict_resolver::{Object, VersionLimits, VersionVector};
use crate::ring::storage_key;
use crate::storage::engine::{Engine, WriteOp};
use crate::storage::keys;
use crate::storage::tree::{KeyTree, TreeDeltas, TreeWriter};
use crate::storage::MemoryEngine;
use crate::wire::peer::{MerkleNodes, NodeHashes, ScanPage};
use crate::NodeId;

/// Bytes of each value.
const VALUE_BYTES: usize = 100;

/// One node's store and its leaves.
struct Node {
    engine: MemoryEngine,
    tree: Arc<KeyTree>,
    writer: TreeWriter,
}

impl Node {
    fn new() -> Self {
        let tree = Arc::new(KeyTree::new(tree_digest()));
        let mut writer = TreeWriter::new(tree.clone());
        let engine = MemoryEngine::default();
        writer.rebuild_all(&engine).unwrap();
        Self {
            engine,
            tree,
            writer,
        }
    }

    /// Writes `(engine key, object)` pairs as the storage writer does: one
    /// batch, the leaves noted from the old values, committed after.
    fn write(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) {
        let mut deltas = TreeDeltas::new();
        let mut ops = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let old = self.engine.get(&key).unwrap();
            self.writer
                .note(&key, old.as_deref(), Some(&value), &mut deltas);
            ops.push(WriteOp::Put { key, value });
        }
        self.engine.write_batch(&ops).unwrap();
        self.writer.commit(&deltas);
    }

    fn pair_tree(&self) -> PairTree {
        PairTree::from_leaves(self.tree.snapshot().unwrap().leaves)
    }
}

fn object(value: &[u8], now_ms: u64) -> Vec<u8> {
    let node = NodeId::new("bench").unwrap();
    Object::update(
        None,
        &VersionVector::new(),
        Some(value.to_vec()),
        &node,
        now_ms,
        &VersionLimits::default(),
    )
    .unwrap()
    .encode()
}

fn engine_key(i: u64) -> Vec<u8> {
    keys::data_key(&storage_key(format!("key-{i:010}").as_bytes()))
}

/// Two equal stores of `count` keys; returns them and the bytes of one
/// full copy (keys and objects).
fn equal_pair(count: u64) -> (Node, Node, u64) {
    let (mut a, mut b) = (Node::new(), Node::new());
    let value = vec![b'v'; VALUE_BYTES];
    let mut full = 0u64;
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = chunk
            .iter()
            .map(|&i| (engine_key(i), object(&value, 1)))
            .collect();
        full += entries
            .iter()
            .map(|(k, v)| (k.len() - 1 + v.len()) as u64)
            .sum::<u64>();
        a.write(entries.clone());
        b.write(entries);
    }
    (a, b, full)
}

/// What one direction of an exchange cost.
#[derive(Debug, Default)]
struct Cost {
    stats: SyncStats,
    /// MessagePack bytes of the walk's requests and answers.
    walk_bytes: u64,
    /// MessagePack bytes of the scan pages pulled.
    pull_bytes: u64,
    /// Keys pulled.
    keys: u64,
    elapsed: Duration,
}

/// `local` walks `remote`'s tree and pulls the differing leaves' keys.
async fn exchange(local: &mut Node, remote: &Node) -> Cost {
    let started = Instant::now();
    let mut cost = Cost::default();
    let ours = local.pair_tree();
    let theirs = remote.pair_tree();
    let me = NodeId::new("a").unwrap();
    let mut walk_bytes = 0u64;
    let differing = walk(&ours, &mut cost.stats, |level, indices| {
        let request = MerkleNodes {
            with: me.clone(),
            level,
            indices,
        };
        let answer: NodeHashes = serve_nodes(&theirs, level, &request.indices).unwrap();
        walk_bytes += (rmp_serde::to_vec(&request).unwrap().len()
            + rmp_serde::to_vec(&answer).unwrap().len()) as u64;
        async move { Ok(answer.hashes) }
    })
    .await
    .unwrap();
    cost.walk_bytes = walk_bytes;
    cost.stats.differing = differing.len();
    for range in coalesce(&differing) {
        for (start, end) in range.storage_ranges() {
            let (start, end) = keys::data_range(&start, end.as_deref());
            let entries = remote.engine.scan(&start, Some(&end), usize::MAX).unwrap();
            let page = ScanPage {
                entries: entries
                    .iter()
                    .map(|(k, v)| (ByteBuf::from(k[1..].to_vec()), ByteBuf::from(v.clone())))
                    .collect(),
                more: false,
                resume: None,
            };
            cost.pull_bytes += rmp_serde::to_vec(&page).unwrap().len() as u64;
            cost.keys += entries.len() as u64;
            // A merge: the remote's versions are newer or missing here.
            local.write(entries);
        }
    }
    cost.elapsed = started.elapsed();
    cost
}

fn keys_from_env(default: u64) -> u64 {
    std::env::var("AE_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
#[ignore = "a measurement (benches/README.md); 1 M keys take a while"]
async fn merkle_bench_divergence() {
    let count = keys_from_env(1_000_000);
    let (mut a, mut b, full) = equal_pair(count);
    // Diverge 0.1%: half of them overwritten on b, half written only on a.
    let diverged = count / 1000;
    let newer = vec![b'w'; VALUE_BYTES];
    let step = count / diverged;
    let (mut overwrite, mut missing) = (Vec::new(), Vec::new());
    for j in 0..diverged {
        let i = j * step;
        if j % 2 == 0 {
            overwrite.push((engine_key(i), object(&newer, 2)));
        } else {
            missing.push((engine_key(count + j), object(&newer, 2)));
        }
    }
    b.write(overwrite);
    a.write(missing);
    let started = Instant::now();
    let a_pulls = exchange(&mut a, &b).await;
    let b_pulls = exchange(&mut b, &a).await;
    let converged = started.elapsed();
    assert_eq!(a.pair_tree(), b.pair_tree(), "converged");
    let total = a_pulls.walk_bytes + a_pulls.pull_bytes + b_pulls.walk_bytes + b_pulls.pull_bytes;
    println!(
        "keys {count}, diverged {diverged}, full copy {full} B\n\
         a<-b: rounds {}, hashes {}, differing leaves {}, walk {} B, pulled {} keys {} B, {:?}\n\
         b<-a: rounds {}, hashes {}, differing leaves {}, walk {} B, pulled {} keys {} B, {:?}\n\
         exchanged {total} B = {:.3}% of a full copy; converged in {:?}",
        a_pulls.stats.rounds,
        a_pulls.stats.leaves,
        a_pulls.stats.differing,
        a_pulls.walk_bytes,
        a_pulls.keys,
        a_pulls.pull_bytes,
        a_pulls.elapsed,
        b_pulls.stats.rounds,
        b_pulls.stats.leaves,
        b_pulls.stats.differing,
        b_pulls.walk_bytes,
        b_pulls.keys,
        b_pulls.pull_bytes,
        b_pulls.elapsed,
        100.0 * total as f64 / full as f64,
        converged,
    );
    assert!(total * 50 <= full, "more than 2% of a full copy");
}

#[tokio::test]
#[ignore = "a measurement (benches/README.md)"]
async fn merkle_bench_in_sync_cost() {
    for count in [100_000u64, keys_from_env(1_000_000)] {
        let (mut a, b, _) = equal_pair(count);
        // The best of 10: the machine is shared.
        let mut best = Duration::MAX;
        let mut last = Cost::default();
        for _ in 0..10 {
            last = exchange(&mut a, &b).await;
            best = best.min(last.elapsed);
        }
        let rebuild = {
            let started = Instant::now();
            let mut writer = TreeWriter::new(Arc::new(KeyTree::new(tree_digest())));
            writer.rebuild_all(&a.engine).unwrap();
            started.elapsed()
        };
        println!(
            "keys {count}: in-sync exchange (both trees derived + walk) best {best:?}, \
             rounds {}, hashes {}, walk {} B, keys pulled {}; start-up rebuild {rebuild:?}",
            last.stats.rounds, last.stats.leaves, last.walk_bytes, last.keys
        );
        assert_eq!(last.keys, 0);
    }
}
