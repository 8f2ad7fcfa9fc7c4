//! The node's incremental Merkle leaves: a fixed array of
//! [`TREE_LEAVES`] hashes over the token circle, kept by the writer as it
//! writes, so an anti-entropy exchange never rescans the store.
//!
//! # Leaves
//!
//! Leaf `i` covers the tokens whose top [`TREE_LEAF_BITS`] bits are `i`
//! (an equal slice of the circle, fixed whatever the ring looks like), and
//! its hash is the wrapping sum of the digests of every data entry stored
//! in the slice. A sum is order-independent and invertible: a write that
//! replaces `old` by `new` adds `digest(new) - digest(old)` to one leaf.
//! The digest is handed in ([`TreeDigest`]): the node's hashes an object
//! the way compaction will leave it (`repair::merkle::entry_digest`), so
//! the compaction filter's purge of an expired value, which rewrites the
//! bytes off the writer, changes no leaf.
//!
//! # Who updates them
//!
//! Only the writer thread changes stored data, so it is the only updater:
//! each read-modify-write notes its delta ([`TreeWriter::note`], one call
//! in `writer.rs`), and the group's deltas are added once its batch is
//! durable. A failed batch may have left part of itself in the engine, so
//! it starts a rebuild, as a reopened store does.
//!
//! # Rebuild at start-up
//!
//! The leaves are not persisted: at start (and after a failed batch) the
//! writer rebuilds them from a scan of the data namespace, one page of
//! [`REBUILD_PAGE_ENTRIES`] between its groups (never on the actor's
//! arbiter). A write to a key the scan has passed updates the leaves being
//! built; a write to a key it has not reached yet is seen when the scan
//! gets there. Until the rebuild ends the tree is not ready
//! ([`KeyTree::snapshot`] is `None`) and anti-entropy skips exchanges.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::{info, warn};

use xxhash_rust::xxh3::xxh3_64;

use super::engine::{Engine, StorageError};
use super::keys;

/// Bits of a token that name its leaf.
pub const TREE_LEAF_BITS: u32 = 18;
/// Leaves of the tree (262,144: about 4 keys a leaf at a million keys;
/// 2 MiB of hashes).
pub const TREE_LEAVES: usize = 1 << TREE_LEAF_BITS;
/// Entries the rebuild scans between two groups of writes.
pub const REBUILD_PAGE_ENTRIES: usize = 1024;

/// The digest of a key and the bytes stored under it, as the leaves sum
/// them: XXH3 of each, the value's rotated so that swapping the two does
/// not cancel. Peers compare sums of these, so every node of a cluster
/// must compute it alike: a change to it is a change of the peer protocol
/// (`wire::peer::PEER_PROTOCOL_VERSION`), as it was from FNV-1a to XXH3.
pub fn pair_digest(key: &[u8], value: &[u8]) -> u64 {
    xxh3_64(key) ^ xxh3_64(value).rotate_left(17)
}

/// The digest of one stored entry: (storage key, stored bytes) -> 64 bits.
#[derive(Clone)]
pub struct TreeDigest(pub Arc<DigestFn>);

/// The function inside a [`TreeDigest`].
pub type DigestFn = dyn Fn(&[u8], &[u8]) -> u64 + Send + Sync;

impl TreeDigest {
    /// The digest of one entry.
    pub fn of(&self, storage_key: &[u8], value: &[u8]) -> u64 {
        (self.0)(storage_key, value)
    }
}

impl std::fmt::Debug for TreeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TreeDigest")
    }
}

/// The digest of the raw bytes (for stores whose values the caller does
/// not interpret, such as unit tests).
pub fn raw_digest() -> TreeDigest {
    TreeDigest(Arc::new(pair_digest))
}

/// The leaf a token falls in.
pub fn leaf_of_token(token: u64) -> usize {
    (token >> (64 - TREE_LEAF_BITS)) as usize
}

/// The leaf of a storage key (token + user key); `None` if too short.
pub fn leaf_of_storage_key(storage_key: &[u8]) -> Option<usize> {
    let token: [u8; 8] = storage_key.get(..8)?.try_into().ok()?;
    Some(leaf_of_token(u64::from_be_bytes(token)))
}

/// A copy of the leaves, and the digest they were made with.
#[derive(Clone)]
pub struct TreeSnapshot {
    /// One hash per leaf.
    pub leaves: Vec<u64>,
    /// How entries are hashed (to hash part of a leaf the same way).
    pub digest: TreeDigest,
}

/// The leaves shared between the writer and whoever reads them.
pub struct KeyTree {
    leaves: RwLock<Option<Vec<u64>>>,
    digest: TreeDigest,
}

impl std::fmt::Debug for KeyTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTree")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl KeyTree {
    /// A tree that is not ready yet, hashing entries with `digest`.
    pub fn new(digest: TreeDigest) -> Self {
        Self {
            leaves: RwLock::new(None),
            digest,
        }
    }

    /// Whether the leaves are built.
    pub fn is_ready(&self) -> bool {
        self.read(|leaves| leaves.is_some())
    }

    /// A copy of the leaves; `None` while they are being rebuilt.
    pub fn snapshot(&self) -> Option<TreeSnapshot> {
        self.read(|leaves| leaves.clone())
            .map(|leaves| TreeSnapshot {
                leaves,
                digest: self.digest.clone(),
            })
    }

    /// The digest of one entry.
    pub fn digest(&self, storage_key: &[u8], value: &[u8]) -> u64 {
        self.digest.of(storage_key, value)
    }

    fn read<T>(&self, f: impl FnOnce(&Option<Vec<u64>>) -> T) -> T {
        match self.leaves.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Option<Vec<u64>>) -> T) -> T {
        match self.leaves.write() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Leaf deltas noted by one group of writes: (leaf, amount to add).
pub type TreeDeltas = Vec<(usize, u64)>;

/// A rebuild under way: the leaves so far and where the scan goes on.
struct Rebuild {
    leaves: Vec<u64>,
    /// The next engine key to scan (data namespace).
    cursor: Vec<u8>,
    entries: u64,
    started: Instant,
}

/// The writer's side of the tree.
pub struct TreeWriter {
    tree: Arc<KeyTree>,
    rebuild: Option<Rebuild>,
    /// Entries per rebuild page.
    page_entries: usize,
}

impl TreeWriter {
    /// The writer of `tree`; starts by rebuilding it.
    pub fn new(tree: Arc<KeyTree>) -> Self {
        let mut writer = Self {
            tree,
            rebuild: None,
            page_entries: REBUILD_PAGE_ENTRIES,
        };
        writer.restart("start-up");
        writer
    }

    /// Forgets the leaves and rebuilds them from the store (the store may
    /// hold what the leaves do not: at start, after a failed batch).
    pub fn restart(&mut self, why: &'static str) {
        self.tree.write(|leaves| *leaves = None);
        info!(
            reason = why,
            leaves = TREE_LEAVES,
            "merkle tree rebuild started; anti-entropy skips exchanges until it is done"
        );
        self.rebuild = Some(Rebuild {
            leaves: vec![0; TREE_LEAVES],
            cursor: vec![keys::DATA],
            entries: 0,
            started: Instant::now(),
        });
    }

    /// Whether a rebuild is under way.
    pub fn rebuilding(&self) -> bool {
        self.rebuild.is_some()
    }

    /// Notes that `engine_key` goes from `old` to `new` in the group being
    /// built (not applied until [`TreeWriter::commit`]). Keys outside the
    /// data namespace, and keys a rebuild has not scanned yet, note nothing.
    pub fn note(
        &self,
        engine_key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        deltas: &mut TreeDeltas,
    ) {
        let Some(storage_key) = keys::storage_key_of(engine_key) else {
            return;
        };
        if self
            .rebuild
            .as_ref()
            .is_some_and(|r| engine_key >= r.cursor.as_slice())
        {
            return;
        }
        let Some(leaf) = leaf_of_storage_key(storage_key) else {
            return;
        };
        let hash = |v: Option<&[u8]>| v.map_or(0, |v| self.tree.digest(storage_key, v));
        deltas.push((leaf, hash(new).wrapping_sub(hash(old))));
    }

    /// Adds a durable group's deltas.
    pub fn commit(&mut self, deltas: &TreeDeltas) {
        if deltas.is_empty() {
            return;
        }
        let add = |leaves: &mut Vec<u64>| {
            for &(leaf, delta) in deltas {
                if let Some(h) = leaves.get_mut(leaf) {
                    *h = h.wrapping_add(delta);
                }
            }
        };
        match self.rebuild.as_mut() {
            Some(rebuild) => add(&mut rebuild.leaves),
            None => self.tree.write(|leaves| {
                if let Some(leaves) = leaves.as_mut() {
                    add(leaves)
                }
            }),
        }
    }

    /// Scans one page of the rebuild; publishes the leaves when the scan
    /// is done. Does nothing when no rebuild is under way. `false` when the
    /// scan failed (logged; the next step tries again).
    pub fn rebuild_step(&mut self, engine: &dyn Engine) -> bool {
        let Some(rebuild) = self.rebuild.as_mut() else {
            return true;
        };
        let end = [keys::DATA + 1];
        let page = match engine.scan(&rebuild.cursor, Some(&end), self.page_entries) {
            Ok(page) => page,
            Err(e) => {
                warn!(error = %e, "merkle tree rebuild: a scan failed; retrying");
                return false;
            }
        };
        for (key, value) in &page {
            let Some(storage_key) = keys::storage_key_of(key) else {
                continue;
            };
            if let Some(leaf) = leaf_of_storage_key(storage_key) {
                let h = self.tree.digest(storage_key, value);
                rebuild.leaves[leaf] = rebuild.leaves[leaf].wrapping_add(h);
                rebuild.entries += 1;
            }
        }
        match page.last() {
            Some((last, _)) if page.len() == self.page_entries => {
                rebuild.cursor = last.clone();
                rebuild.cursor.push(0);
            }
            _ => {
                if let Some(done) = self.rebuild.take() {
                    info!(
                        entries = done.entries,
                        ms = done.started.elapsed().as_millis() as u64,
                        "merkle tree rebuilt; anti-entropy exchanges resume"
                    );
                    self.tree.write(|leaves| *leaves = Some(done.leaves));
                }
            }
        }
        true
    }

    /// Runs the whole rebuild now (a store in memory, in a simulation).
    pub fn rebuild_all(&mut self, engine: &dyn Engine) -> Result<(), StorageError> {
        while self.rebuild.is_some() {
            if !self.rebuild_step(engine) {
                // The scan failed (logged): surface its error rather than spin.
                let cursor = self.rebuild.as_ref().map(|r| r.cursor.clone());
                let cursor = cursor.unwrap_or_default();
                engine.scan(&cursor, Some(&[keys::DATA + 1]), self.page_entries)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::engine::WriteOp;
    use crate::storage::MemoryEngine;
    use proptest::prelude::*;

    fn engine_key(user: &[u8]) -> Vec<u8> {
        keys::data_key(&crate::ring::storage_key(user))
    }

    /// Pins the digest peers compare: a change is a new
    /// `PEER_PROTOCOL_VERSION`. XXH3-64 of the empty input is xxHash's own
    /// test vector; the second value was taken from this code at version 5.
    #[test]
    fn pair_digest_is_pinned() {
        let empty = 0x2D06_8005_38D3_94C2u64;
        assert_eq!(pair_digest(b"", b""), empty ^ empty.rotate_left(17));
        assert_eq!(pair_digest(b"key", b"value"), PINNED);
        assert_ne!(pair_digest(b"key", b"value"), pair_digest(b"value", b"key"));
    }

    const PINNED: u64 = 0x47A7_3A58_41B0_6A49;

    /// Leaves of the store rebuilt from scratch.
    fn rebuilt(engine: &dyn Engine) -> Vec<u64> {
        let tree = Arc::new(KeyTree::new(raw_digest()));
        let mut w = TreeWriter::new(tree.clone());
        w.rebuild_all(engine).unwrap();
        tree.snapshot().unwrap().leaves
    }

    /// Applies `ops` (key, value or delete) one batch each through a
    /// `TreeWriter`, as the writer does; stepping a rebuild between
    /// batches when `step_rebuild`.
    fn run(ops: &[(u16, Option<u8>)], step_rebuild: bool) -> (Vec<u64>, Vec<u64>) {
        let engine = MemoryEngine::default();
        let tree = Arc::new(KeyTree::new(raw_digest()));
        let mut w = TreeWriter::new(tree.clone());
        // Small pages, so writes land before, at and after the cursor.
        w.page_entries = 5;
        if !step_rebuild {
            w.rebuild_all(&engine).unwrap();
        }
        for (i, (k, v)) in ops.iter().enumerate() {
            let key = engine_key(&k.to_be_bytes());
            let old = engine.get(&key).unwrap();
            let new = v.map(|b| vec![b; 1 + *k as usize % 7]);
            let mut deltas = TreeDeltas::new();
            w.note(&key, old.as_deref(), new.as_deref(), &mut deltas);
            let op = match &new {
                Some(value) => WriteOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                None => WriteOp::Delete { key: key.clone() },
            };
            engine.write_batch(&[op]).unwrap();
            w.commit(&deltas);
            if step_rebuild && i % 3 == 0 {
                w.rebuild_step(&engine);
            }
        }
        w.rebuild_all(&engine).unwrap();
        (tree.snapshot().unwrap().leaves, rebuilt(&engine))
    }

    #[test]
    fn a_new_tree_is_not_ready_until_rebuilt() {
        let engine = MemoryEngine::default();
        engine
            .write_batch(&[WriteOp::Put {
                key: engine_key(b"a"),
                value: b"1".to_vec(),
            }])
            .unwrap();
        let tree = Arc::new(KeyTree::new(raw_digest()));
        let mut w = TreeWriter::new(tree.clone());
        assert!(tree.snapshot().is_none());
        w.rebuild_all(&engine).unwrap();
        let leaves = tree.snapshot().unwrap().leaves;
        assert_eq!(leaves.iter().filter(|h| **h != 0).count(), 1);
    }

    #[test]
    fn non_data_keys_change_no_leaf() {
        let tree = Arc::new(KeyTree::new(raw_digest()));
        let mut w = TreeWriter::new(tree);
        w.rebuild_all(&MemoryEngine::default()).unwrap();
        let mut deltas = TreeDeltas::new();
        w.note(b"\x02hint", None, Some(b"x"), &mut deltas);
        w.note(b"\x00layout", None, Some(b"x"), &mut deltas);
        assert!(deltas.is_empty());
    }

    #[test]
    fn overwrites_and_deletes_match_a_rebuild() {
        let ops = [
            (1, Some(1)),
            (2, Some(2)),
            (1, Some(3)),
            (2, None),
            (3, Some(1)),
            (1, None),
        ];
        let (kept, rebuilt) = run(&ops, false);
        assert_eq!(kept, rebuilt);
        assert!(kept.iter().any(|h| *h != 0), "key 3 is still stored");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Incremental leaves equal leaves rebuilt from scratch after any
        /// sequence of writes, overwrites and deletes, also when the writes
        /// race a rebuild that is under way.
        #[test]
        fn incremental_equals_rebuilt(
            ops in proptest::collection::vec((0u16..3000, proptest::option::of(any::<u8>())), 1..400),
            during_rebuild in any::<bool>(),
        ) {
            let (kept, rebuilt) = run(&ops, during_rebuild);
            prop_assert_eq!(kept, rebuilt);
        }
    }
}
