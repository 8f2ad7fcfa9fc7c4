//! `MemoryEngine`: everything in a map, nothing on disk. Only for
//! `--storage memory` (explicitly chosen; data dies with the process) and for
//! simulations.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use super::engine::{Engine, KeyValues, StorageError, WriteOp};

/// An in-memory engine.
#[derive(Default)]
pub struct MemoryEngine {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Engine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .map
            .read()
            .map_err(|_| StorageError::Stopped)?
            .get(key)
            .cloned())
    }

    fn get_cached(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        Some(self.get(key))
    }

    fn write_batch(&self, ops: &[WriteOp]) -> Result<(), StorageError> {
        self.write_batch_owned(ops.to_vec())
    }

    fn write_batch_owned(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        let mut map = self.map.write().map_err(|_| StorageError::Stopped)?;
        for op in ops {
            match op {
                WriteOp::Put { key, value } => {
                    map.insert(key, value);
                }
                WriteOp::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyValues, StorageError> {
        let map = self.map.read().map_err(|_| StorageError::Stopped)?;
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(map
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
