//! A write group's writes before they go to the engine as one batch: in
//! order, with the last write of each key found by later jobs of the group
//! (they read it instead of the engine).

use std::hash::Hasher;

use fnv::FnvHashMap;

use super::engine::{Engine, StorageError, WriteOp};

/// A group's writes, in order, and where the last write of each key is.
/// Each write is held once: the index refers to it rather than keeping a
/// copy of its value, and is found by the key's hash rather than a copy of
/// its key. Two keys of one hash (64 bits make it all but impossible) are
/// told apart by a walk back through the group.
pub(super) struct GroupWrites {
    ops: Vec<WriteOp>,
    /// A key's hash: the index of the last write of a key with that hash.
    latest: FnvHashMap<u64, usize>,
    hash: fn(&[u8]) -> u64,
}

/// The hash a group finds a key's write by.
fn key_hash(key: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(key);
    hasher.finish()
}

fn op_key(op: &WriteOp) -> &[u8] {
    match op {
        WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
    }
}

impl GroupWrites {
    /// A group of up to about `jobs` writes.
    pub(super) fn with_capacity(jobs: usize) -> Self {
        Self::with_hash(jobs, key_hash)
    }

    fn with_hash(jobs: usize, hash: fn(&[u8]) -> u64) -> Self {
        Self {
            ops: Vec::with_capacity(jobs),
            latest: FnvHashMap::with_capacity_and_hasher(jobs, Default::default()),
            hash,
        }
    }

    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.latest.insert((self.hash)(&key), self.ops.len());
        self.ops.push(WriteOp::Put { key, value });
    }

    pub(super) fn delete(&mut self, key: Vec<u8>) {
        self.latest.insert((self.hash)(&key), self.ops.len());
        self.ops.push(WriteOp::Delete { key });
    }

    /// `key`'s last write in the group: `Some(None)` a delete, `None` not
    /// written in this group.
    pub(super) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let at = *self.latest.get(&(self.hash)(key))?;
        let op = if op_key(&self.ops[at]) == key {
            &self.ops[at]
        } else {
            // Another key of the same hash was written after it.
            self.ops.iter().rev().find(|op| op_key(op) == key)?
        };
        Some(match op {
            WriteOp::Put { value, .. } => Some(value.as_slice()),
            WriteOp::Delete { .. } => None,
        })
    }

    /// The value of `key` as the group sees it: written earlier in the
    /// group, or in `engine`.
    pub(super) fn read(
        &self,
        engine: &dyn Engine,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        match self.get(key) {
            Some(value) => Ok(value.map(<[u8]>::to_vec)),
            None => engine.get(key),
        }
    }

    /// The batch to write: `first` (when given), then the group's writes
    /// in order.
    pub(super) fn into_batch(self, first: Option<WriteOp>) -> Vec<WriteOp> {
        let mut ops = self.ops;
        if let Some(first) = first {
            ops.insert(0, first);
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(group: &mut GroupWrites) {
        group.put(b"a".to_vec(), b"1".to_vec());
        group.put(b"b".to_vec(), b"2".to_vec());
        group.delete(b"c".to_vec());
        group.put(b"a".to_vec(), b"3".to_vec());
        group.put(b"c".to_vec(), b"4".to_vec());
        group.delete(b"b".to_vec());
    }

    fn seen(group: &GroupWrites) -> Vec<Option<Option<&[u8]>>> {
        [&b"a"[..], b"b", b"c", b"d"]
            .iter()
            .map(|k| group.get(k))
            .collect()
    }

    #[test]
    fn the_last_write_of_each_key_is_found_even_when_every_key_shares_a_hash() {
        let want = vec![
            Some(Some(&b"3"[..])),
            Some(None),
            Some(Some(&b"4"[..])),
            None,
        ];
        let mut by_fnv = GroupWrites::with_capacity(4);
        writes(&mut by_fnv);
        assert_eq!(seen(&by_fnv), want);
        // Every key one hash: each lookup but the last key's walks back.
        let mut colliding = GroupWrites::with_hash(4, |_| 7);
        writes(&mut colliding);
        assert_eq!(seen(&colliding), want);
    }

    #[test]
    fn the_batch_keeps_the_group_order_after_its_first_write() {
        let mut group = GroupWrites::with_capacity(2);
        group.put(b"k".to_vec(), b"1".to_vec());
        group.delete(b"j".to_vec());
        let floor = WriteOp::Put {
            key: b"floor".to_vec(),
            value: vec![9],
        };
        let keys = |ops: Vec<WriteOp>| ops.iter().map(|op| op_key(op).to_vec()).collect::<Vec<_>>();
        assert_eq!(
            keys(group.into_batch(Some(floor))),
            [&b"floor"[..], b"k", b"j"]
        );
        let mut plain = GroupWrites::with_capacity(1);
        plain.put(b"k".to_vec(), b"1".to_vec());
        assert_eq!(keys(plain.into_batch(None)), [&b"k"[..]]);
    }
}
