//! The memtable: the newest writes, sorted in memory, with the memory they
//! hold accounted so the engine knows when to freeze and flush it.
//!
//! A memtable is written only by the group-commit leader while it is active;
//! once frozen it is read-only until its SSTable is installed. Each memtable
//! covers exactly one log segment, so the segment can be deleted once the
//! memtable's table is in the manifest.

use std::borrow::Borrow;
use std::cmp::Ordering as KeyOrdering;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::sstable::filter::{bits_of, key_hash, HashedKey};
use super::sstable::heads::head;
use crate::storage::WriteOp;

/// Per-entry bookkeeping bytes counted on top of key and value (the B-tree
/// node share and the `Option` tag), so many tiny entries still trip the limit.
const ENTRY_OVERHEAD_BYTES: usize = 32;

/// A value or a tombstone (`None`): what every layer of the LSM stores.
pub type Slot = Option<Vec<u8>>;

/// A key as the memtable compares it: its head (`sstable::heads::head`,
/// the same poor man's normalized key the tables' searches use) first,
/// then its bytes. That is the bytes' own order: two keys whose heads
/// differ compare as their heads (the proof is in `sstable/heads.rs`);
/// equal heads fall back to the bytes. A lookup in the B-tree compares the probe with
/// about 30 keys; the head sits inline in the node, so most comparisons
/// end without following the key's pointer to its heap bytes (a cache
/// miss each). Storage keys start with the 8-byte ring token of the user
/// key, so heads nearly always differ. In a scratch benchmark a lookup
/// among 10,000 keys took 105-112 ns instead of 170-184 ns, among 200,000
/// 593-647 ns instead of 1.0-1.16 µs.
trait KeyView {
    fn head(&self) -> u64;
    fn bytes(&self) -> &[u8];
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.head() == other.head() && self.bytes() == other.bytes()
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<KeyOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> KeyOrdering {
        self.head()
            .cmp(&other.head())
            .then_with(|| self.bytes().cmp(other.bytes()))
    }
}

/// A stored key with its head.
#[derive(Debug)]
struct MemKey {
    head: u64,
    bytes: Vec<u8>,
}

impl MemKey {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            head: head(&bytes),
            bytes,
        }
    }
}

impl KeyView for MemKey {
    fn head(&self) -> u64 {
        self.head
    }
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyView) == (other as &dyn KeyView)
    }
}

impl Eq for MemKey {}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<KeyOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> KeyOrdering {
        (self as &dyn KeyView).cmp(other as &dyn KeyView)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for MemKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// A key looked up or bounding a range, not copied.
struct Probe<'a> {
    head: u64,
    bytes: &'a [u8],
}

impl<'a> Probe<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            head: head(bytes),
            bytes,
        }
    }
}

impl KeyView for Probe<'_> {
    fn head(&self) -> u64 {
        self.head
    }
    fn bytes(&self) -> &[u8] {
        self.bytes
    }
}

/// A range bound on a probe, as the B-tree's `range` takes it.
fn view<'a>(bound: &'a Bound<Probe<'a>>) -> Bound<&'a (dyn KeyView + 'a)> {
    match bound {
        Bound::Included(probe) => Bound::Included(probe),
        Bound::Excluded(probe) => Bound::Excluded(probe),
        Bound::Unbounded => Bound::Unbounded,
    }
}

type Entries = BTreeMap<MemKey, Slot>;

/// Bits of a memtable's key filter: 2 Mi (256 KiB). A full memtable of
/// the default 32 MiB holds about 170,000 entries of 200 bytes, 12 bits
/// each (about 1% false positives); one of many small entries fills it
/// more and lets more lookups through to the B-tree, never fewer.
const KEY_FILTER_BITS: usize = 1 << 21;

/// 64-byte blocks of the filter.
const KEY_FILTER_BLOCKS: usize = KEY_FILTER_BITS / 512;

/// Bits set per key, all in one 64-byte block of the filter.
const KEY_FILTER_PROBES: u8 = 6;

/// One cache line of the filter.
#[repr(align(64))]
#[derive(Default)]
struct FilterBlock([AtomicU64; 8]);

/// A blocked bloom filter over the memtable's keys (Putze, Sanders and
/// Singler, "Cache-, Hash- and Space-Efficient Bloom Filters"): a key's
/// bits all sit in one cache line, placed as the tables' filters place
/// them (`sstable::filter::bits_of`, from the same hash). Most lookups of a memtable miss (a
/// put reads its key before writing it, on the coordinator and on each
/// replica, and a fresh key is in no memtable; a get of a key written
/// long ago is in a table), and a miss in the B-tree walks five or six
/// nodes, a cache miss each: the filter answers most of them from one.
/// Bits are only ever set, under the memtable's write lock, and read
/// under its read lock.
struct KeyFilter {
    blocks: Box<[FilterBlock]>,
}

impl KeyFilter {
    fn new() -> Self {
        Self {
            blocks: (0..KEY_FILTER_BLOCKS)
                .map(|_| FilterBlock::default())
                .collect(),
        }
    }

    fn insert(&self, key: &[u8]) {
        let (block, masks) = bits_of(key_hash(key), KEY_FILTER_BLOCKS, KEY_FILTER_PROBES);
        let words = &self.blocks[block].0;
        for (word, mask) in masks {
            words[word].fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// `false`: the key was never inserted.
    fn may_hold(&self, key: HashedKey<'_>) -> bool {
        let (block, mut masks) = bits_of(key.hash, KEY_FILTER_BLOCKS, KEY_FILTER_PROBES);
        let words = &self.blocks[block].0;
        masks.all(|(word, mask)| words[word].load(Ordering::Relaxed) & mask != 0)
    }
}

impl std::fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFilter")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// A sorted, size-accounted map of the newest writes.
#[derive(Debug)]
pub struct Memtable {
    /// The log segment holding these writes.
    segment: u64,
    entries: RwLock<Entries>,
    /// Every key in `entries`, for lookups that miss.
    filter: KeyFilter,
    size_bytes: AtomicUsize,
    /// Highest batch sequence number applied.
    sequence_max: AtomicU64,
}

impl Memtable {
    /// An empty memtable whose writes are logged in `segment`.
    pub fn new(segment: u64) -> Self {
        Self {
            segment,
            entries: RwLock::new(BTreeMap::new()),
            filter: KeyFilter::new(),
            size_bytes: AtomicUsize::new(0),
            sequence_max: AtomicU64::new(0),
        }
    }

    /// The log segment this memtable covers.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Approximate memory held, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes.load(Ordering::Relaxed)
    }

    /// Highest sequence number applied (0 when empty).
    pub fn sequence_max(&self) -> u64 {
        self.sequence_max.load(Ordering::Relaxed)
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Applies one batch, in order.
    pub fn apply(&self, sequence: u64, ops: Vec<WriteOp>) {
        let mut entries = self.write();
        // What the entries hold, not what was written: an overwrite
        // replaces the old value in place (the B-tree keeps the old key),
        // so it counts the new value and gives back the old one. The log
        // that grows with every write has its own bound
        // (`LsmOptions::log_segment_bytes_max`).
        let (mut grown, mut shrunk) = (0usize, 0usize);
        for op in ops {
            let (key, slot) = match op {
                WriteOp::Put { key, value } => (key, Some(value)),
                WriteOp::Delete { key } => (key, None),
            };
            let (key_bytes, value_bytes) = (key.len(), slot.as_ref().map_or(0, Vec::len));
            self.filter.insert(&key);
            match entries.insert(MemKey::new(key), slot) {
                None => grown += key_bytes + value_bytes + ENTRY_OVERHEAD_BYTES,
                Some(old) => {
                    grown += value_bytes;
                    shrunk += old.map_or(0, |value| value.len());
                }
            }
        }
        // Only the writer changes the size, under the entries' write lock;
        // `shrunk` was counted in it before, so this cannot underflow.
        let size = self.size_bytes.load(Ordering::Relaxed) + grown;
        self.size_bytes
            .store(size.saturating_sub(shrunk), Ordering::Relaxed);
        self.sequence_max.fetch_max(sequence, Ordering::Relaxed);
    }

    /// The slot for `key`: `Some(None)` is a tombstone, `None` means absent.
    pub fn get(&self, key: HashedKey<'_>) -> Option<Slot> {
        let entries = self.read();
        if !self.filter.may_hold(key) {
            return None;
        }
        entries.get(&Probe::new(key.key) as &dyn KeyView).cloned()
    }

    /// Up to `count` entries with `key > after` (or `key >= start` when
    /// `after` is `None`) and `key < end`, in order.
    pub fn chunk(
        &self,
        start: &[u8],
        after: Option<&[u8]>,
        end: Option<&[u8]>,
        count: usize,
    ) -> Vec<(Vec<u8>, Slot)> {
        let lower = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(start),
        };
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        if let (
            Bound::Excluded(upper_key),
            Bound::Excluded(lower_key) | Bound::Included(lower_key),
        ) = (upper, lower)
        {
            if upper_key <= lower_key {
                return Vec::new();
            }
        }
        let (lower, upper) = (lower.map(Probe::new), upper.map(Probe::new));
        self.read()
            .range::<dyn KeyView, _>((view(&lower), view(&upper)))
            .take(count)
            .map(|(key, slot)| (key.bytes.clone(), slot.clone()))
            .collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Calls `visit` on every entry in order, stopping at the first error
    /// (for a flush; the memtable is frozen by then).
    pub fn try_for_each<E>(
        &self,
        mut visit: impl FnMut(&[u8], &Slot) -> Result<(), E>,
    ) -> Result<(), E> {
        self.read()
            .iter()
            .try_for_each(|(key, slot)| visit(&key.bytes, slot))
    }

    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::{HashedKey, KeyFilter, MemKey, Memtable, ENTRY_OVERHEAD_BYTES};
    use crate::storage::WriteOp;

    /// Short keys, few distinct bytes: shared heads, prefixes of each
    /// other, zeros like the padding.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        crate::storage::lsm::sstable::heads::tests::byte_string()
    }

    /// Every key put in the filter passes it; most others do not.
    #[test]
    fn the_key_filter_keeps_every_key_and_turns_most_others_away() {
        let filter = KeyFilter::new();
        let key = |i: u64| {
            let mut key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec();
            key.extend_from_slice(format!("user-key-{i}").as_bytes());
            key
        };
        for i in 0..200_000 {
            filter.insert(&key(i));
        }
        assert!((0..200_000).all(|i| filter.may_hold(HashedKey::new(&key(i)))));
        let passed = (200_000..300_000)
            .filter(|i| filter.may_hold(HashedKey::new(&key(*i))))
            .count();
        // 200,000 keys is about the most a full default memtable holds.
        assert!(passed < 5_000, "{passed} of 100,000 absent keys passed");
    }

    proptest! {
        /// The memtable's key order is the bytes' order.
        #[test]
        fn keys_compare_as_their_bytes(a in key(), b in key()) {
            prop_assert_eq!(MemKey::new(a.clone()).cmp(&MemKey::new(b.clone())), a.cmp(&b));
        }

        /// Lookups, chunks and the flush's walk see what a plain sorted
        /// map of the same writes holds, and the size counts what it
        /// holds: an overwrite, in its batch or a later one, replaces the
        /// old value's bytes instead of adding to them.
        #[test]
        fn the_memtable_reads_like_a_sorted_map(
            writes in proptest::collection::vec((key(), proptest::option::of(key())), 0..60),
            batch in 1usize..4,
            probes in proptest::collection::vec(key(), 0..20),
            count in 0usize..10,
        ) {
            let table = Memtable::new(1);
            let mut model = std::collections::BTreeMap::new();
            for (sequence, chunk) in (1..).zip(writes.chunks(batch)) {
                let ops = chunk
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => WriteOp::Put { key: k.clone(), value: v.clone() },
                        None => WriteOp::Delete { key: k.clone() },
                    })
                    .collect();
                table.apply(sequence, ops);
                for (k, v) in chunk {
                    model.insert(k.clone(), v.clone());
                }
            }
            let held: usize = model
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD_BYTES)
                .sum();
            prop_assert_eq!(table.size_bytes(), held);
            for probe in &probes {
                prop_assert_eq!(table.get(HashedKey::new(probe)), model.get(probe).cloned());
                let from: Vec<_> = model
                    .range(probe.clone()..)
                    .take(count)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(table.chunk(probe, None, None, count), from);
                let after: Vec<_> = model
                    .range((std::ops::Bound::Excluded(probe.clone()), std::ops::Bound::Unbounded))
                    .take(count)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(table.chunk(&[], Some(probe), None, count), after);
                let below: Vec<_> = model
                    .range(..probe.clone())
                    .take(count)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(table.chunk(&[], None, Some(probe), count), below);
            }
            let mut walked = Vec::new();
            table
                .try_for_each(|k, v| {
                    walked.push((k.to_vec(), v.clone()));
                    Ok::<(), ()>(())
                })
                .unwrap();
            let all: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(walked, all);
        }
    }
}
