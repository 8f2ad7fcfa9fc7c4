//! The hint book: which keys this node holds for which unreachable replica
//! (sloppy quorum's stand-in duty). Pure and bounded; the Repair actor
//! persists it and delivers the hints when their owner is reachable again.
//!
//! A hint is only a pointer: the stand-in merged the object into its own
//! store when it took the write, so delivering a hint means reading the
//! current local version and writing it to the owner (a merge there). A
//! hint lost in a crash costs a late repair (read repair finds the gap), not
//! the write: its data is still on the stand-in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Default for the most hints a node keeps.
pub const HINTS_MAX_DEFAULT: usize = 100_000;

/// Keys held for each owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintBook {
    by_owner: BTreeMap<NodeId, BTreeSet<serde_bytes::ByteBuf>>,
    count: usize,
}

impl HintBook {
    /// Records that `key` is held for `owner`; false (and nothing recorded)
    /// when the book already holds `hints_max` hints.
    pub fn add(&mut self, owner: NodeId, key: Vec<u8>, hints_max: usize) -> bool {
        let set = self.by_owner.entry(owner).or_default();
        let key = serde_bytes::ByteBuf::from(key);
        if set.contains(&key) {
            return true;
        }
        if self.count >= hints_max {
            return false;
        }
        set.insert(key);
        self.count += 1;
        true
    }

    /// The keys held for `owner`.
    pub fn keys_for(&self, owner: &NodeId) -> Vec<Vec<u8>> {
        self.by_owner
            .get(owner)
            .map(|s| s.iter().map(|k| k.to_vec()).collect())
            .unwrap_or_default()
    }

    /// Forgets delivered hints.
    pub fn remove(&mut self, owner: &NodeId, keys: &[Vec<u8>]) {
        if let Some(set) = self.by_owner.get_mut(owner) {
            for key in keys {
                if set.remove(&serde_bytes::ByteBuf::from(key.clone())) {
                    self.count -= 1;
                }
            }
            if set.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }

    /// Owners with hints waiting.
    pub fn owners(&self) -> Vec<NodeId> {
        self.by_owner.keys().cloned().collect()
    }

    /// Hints held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no hint is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn bounded_deduplicated_and_removable() {
        let mut book = HintBook::default();
        assert!(book.add(id("a"), b"k1".to_vec(), 2));
        assert!(
            book.add(id("a"), b"k1".to_vec(), 2),
            "a repeat is not a new hint"
        );
        assert!(book.add(id("b"), b"k2".to_vec(), 2));
        assert!(!book.add(id("b"), b"k3".to_vec(), 2), "over hints_max");
        assert_eq!(book.len(), 2);
        assert_eq!(book.keys_for(&id("a")), vec![b"k1".to_vec()]);
        book.remove(&id("a"), &[b"k1".to_vec()]);
        assert_eq!(book.owners(), vec![id("b")]);
        let bytes = rmp_serde::to_vec_named(&book).unwrap();
        assert_eq!(rmp_serde::from_slice::<HintBook>(&bytes).unwrap(), book);
    }
}
