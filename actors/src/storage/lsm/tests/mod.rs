//! Engine-level tests: behaviour, durability (syncs, poisoning), the
//! `BTreeMap` model, crashes, corruption and the pinned table format.

#![allow(clippy::unwrap_used)]

mod basic;
mod corruption;
mod crash;
mod golden;
mod model;
mod space;
mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::vfs::fault::FaultVfs;
use super::{LsmEngine, LsmOptions};
use crate::storage::{Engine, StorageError, WriteOp};

/// Where every test keeps its store inside a [`FaultVfs`].
pub const DIR: &str = "/db";

/// Tiny limits so a few hundred bytes exercise flushes, several blocks per
/// table and compactions.
pub fn small_options() -> LsmOptions {
    LsmOptions {
        memtable_bytes_max: 2 << 10,
        immutable_memtables_max: 2,
        block_bytes: 256,
        block_cache_bytes: 16 << 10,
        tables_per_read_max: 4,
        compaction_tables_max: 2,
        // Small, so tests cover preallocated (zero-filled) segment tails.
        log_preallocate_bytes: 4 << 10,
        // As small as the memtable, so overwrites of a few keys (which
        // leave the memtable small) still rotate segments and flush.
        log_segment_bytes_max: 2 << 10,
        ..LsmOptions::default()
    }
}

/// Opens the store in [`DIR`] of `vfs`.
pub fn open(vfs: &FaultVfs, options: LsmOptions) -> Result<LsmEngine, StorageError> {
    LsmEngine::open(Arc::new(vfs.clone()), DIR, options)
}

/// A put.
pub fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

/// A delete.
pub fn delete(key: &[u8]) -> WriteOp {
    WriteOp::Delete { key: key.to_vec() }
}

/// Applies `ops` to the model.
pub fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, ops: &[WriteOp]) {
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                model.insert(key.clone(), value.clone());
            }
            WriteOp::Delete { key } => {
                model.remove(key);
            }
        }
    }
}

/// Asserts the engine holds exactly the model (full scan and every get).
pub fn assert_equals_model(engine: &LsmEngine, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let all = engine.scan(&[], None, usize::MAX).unwrap();
    let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all, expected);
    for (key, value) in model {
        assert_eq!(engine.get(key).unwrap().as_ref(), Some(value));
    }
}
