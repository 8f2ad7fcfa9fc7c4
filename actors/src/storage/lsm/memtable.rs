//! The memtable: the newest writes, sorted in memory, with their size
//! accounted so the engine knows when to freeze and flush it.
//!
//! A memtable is written only by the group-commit leader while it is active;
//! once frozen it is read-only until its SSTable is installed. Each memtable
//! covers exactly one log segment, so the segment can be deleted once the
//! memtable's table is in the manifest.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::storage::WriteOp;

/// Per-entry bookkeeping bytes counted on top of key and value (the B-tree
/// node share and the `Option` tag), so many tiny entries still trip the limit.
const ENTRY_OVERHEAD_BYTES: usize = 32;

/// A value or a tombstone (`None`): what every layer of the LSM stores.
pub type Slot = Option<Vec<u8>>;

/// A sorted, size-accounted map of the newest writes.
#[derive(Debug)]
pub struct Memtable {
    /// The log segment holding these writes.
    segment: u64,
    entries: RwLock<BTreeMap<Vec<u8>, Slot>>,
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
        let mut added = 0usize;
        for op in ops {
            let (key, slot) = match op {
                WriteOp::Put { key, value } => (key, Some(value)),
                WriteOp::Delete { key } => (key, None),
            };
            let new_bytes = key.len() + slot.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD_BYTES;
            // Overwrites are counted again: cheap, and errs towards flushing early.
            added += new_bytes;
            entries.insert(key, slot);
        }
        self.size_bytes.fetch_add(added, Ordering::Relaxed);
        self.sequence_max.fetch_max(sequence, Ordering::Relaxed);
    }

    /// The slot for `key`: `Some(None)` is a tombstone, `None` means absent.
    pub fn get(&self, key: &[u8]) -> Option<Slot> {
        self.read().get(key).cloned()
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
        self.read()
            .range::<[u8], _>((lower, upper))
            .take(count)
            .map(|(key, slot)| (key.clone(), slot.clone()))
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
            .try_for_each(|(key, slot)| visit(key, slot))
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Vec<u8>, Slot>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Slot>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}
