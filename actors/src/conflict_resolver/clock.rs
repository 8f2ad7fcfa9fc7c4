//! Version vectors and dots: which writes a replica (or a client) has seen.
//!
//! A [`VersionVector`] maps each node that ever coordinated a write of the key
//! to the highest counter it handed out that this clock has seen. Because a
//! node hands out its counters one by one, the vector stands for a
//! downward-closed set of [`Dot`]s: `(n, 1) ..= (n, counter(n))` for every `n`.

use std::collections::BTreeMap;

use crate::NodeId;

/// One node's position in a version vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockEntry {
    /// The highest counter of this node that the clock has seen; every lower
    /// counter of the node is seen too.
    pub counter: u64,
    /// Wall time (ms since the Unix epoch) at which this entry last advanced,
    /// as reported by whoever advanced it. Only pruning reads it.
    pub updated_ms: u64,
}

/// The unique name of one write: the coordinator that accepted it and the
/// counter it handed out for this key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// The node that coordinated the write.
    pub node: NodeId,
    /// The coordinator's counter for this key at that write (starts at 1).
    pub counter: u64,
}

/// A version vector over node ids, kept as a vector sorted by node (one
/// entry per node) so that iteration, equality and encoding are canonical.
/// A clock names the few nodes that ever coordinated a write of its key,
/// and every put and get decodes, merges and encodes a few of them: a
/// sorted vector is the decoded entries themselves, where a `BTreeMap` was
/// one more allocation per clock and a tree walk per lookup.
///
/// Laws of [`VersionVector::merge`] (checked by proptest in `laws_tests`):
/// commutative, associative and idempotent (it is the entrywise maximum of
/// both `counter` and `updated_ms`), and the result descends from both inputs.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionVector {
    /// Sorted by node, distinct nodes; a node absent has counter 0.
    entries: Vec<(NodeId, ClockEntry)>,
}

impl std::fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl VersionVector {
    /// An empty clock: has seen nothing (the context of a blind write).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the clock has seen no write at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of nodes with an entry (what pruning bounds).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where `node`'s entry is (`Ok`), or would go (`Err`).
    fn find(&self, node: &NodeId) -> Result<usize, usize> {
        self.entries.binary_search_by(|(n, _)| n.cmp(node))
    }

    /// The highest counter of `node` this clock has seen (0 if none).
    pub fn counter(&self, node: &NodeId) -> u64 {
        self.entry(node).map_or(0, |entry| entry.counter)
    }

    /// The entry of `node`, if the clock has one.
    pub fn entry(&self, node: &NodeId) -> Option<&ClockEntry> {
        let at = self.find(node).ok()?;
        self.entries.get(at).map(|(_, entry)| entry)
    }

    /// The entries in node order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &ClockEntry)> {
        self.entries.iter().map(|(node, entry)| (node, entry))
    }

    /// True when the write named `dot` is among the writes this clock has seen.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.counter <= self.counter(&dot.node)
    }

    /// True when this clock has seen everything `other` has seen (counters
    /// entrywise `>=`; `updated_ms` is ignored). Every clock descends from
    /// itself and from the empty clock.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .entries
            .iter()
            .all(|(node, entry)| self.counter(node) >= entry.counter)
    }

    /// Joins `other` into `self`: per node, the larger counter and, separately,
    /// the larger `updated_ms`. Commutative, associative, idempotent.
    pub fn merge(&mut self, other: &VersionVector) {
        for (node, theirs) in &other.entries {
            // entry_mut looks up before inserting: most merges are
            // between clocks that share their nodes.
            let ours = self.entry_mut(node);
            ours.counter = ours.counter.max(theirs.counter);
            ours.updated_ms = ours.updated_ms.max(theirs.updated_ms);
        }
    }

    /// Records that `node` handed out `counter` at `now_ms`. Only ever moves
    /// the entry forward, so the clock keeps covering what it covered.
    pub(crate) fn advance(&mut self, node: &NodeId, counter: u64, now_ms: u64) {
        let entry = self.entry_mut(node);
        entry.counter = entry.counter.max(counter);
        entry.updated_ms = entry.updated_ms.max(now_ms);
    }

    /// `node`'s entry, made (counter 0) where it had none.
    fn entry_mut(&mut self, node: &NodeId) -> &mut ClockEntry {
        let at = self.find(node).unwrap_or_else(|at| {
            self.entries
                .insert(at, (node.clone(), ClockEntry::default()));
            at
        });
        &mut self.entries[at].1
    }

    /// Sets an entry as-is (tests build arbitrary clocks this way).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, node: NodeId, entry: ClockEntry) {
        *self.entry_mut(&node) = entry;
    }

    /// Builds a clock from entries sorted by distinct node (decoding checks
    /// that first), keeping them as they are. Entries that are not (only
    /// tests build such) are sorted, the last of a node's entries kept.
    pub(crate) fn from_sorted(mut entries: Vec<(NodeId, ClockEntry)>) -> Self {
        if !entries
            .windows(2)
            .all(|pair| matches!(pair, [a, b] if a.0 < b.0))
        {
            let map: BTreeMap<NodeId, ClockEntry> = entries.into_iter().collect();
            entries = map.into_iter().collect();
        }
        Self { entries }
    }

    /// Drops `node`'s entry (pruning): the clock forgets that node's writes.
    pub(crate) fn remove(&mut self, node: &NodeId) {
        if let Ok(at) = self.find(node) {
            self.entries.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    fn clock(entries: &[(&str, u64)]) -> VersionVector {
        let mut clock = VersionVector::new();
        for (id, counter) in entries {
            clock.advance(&node(id), *counter, 0);
        }
        clock
    }

    #[test]
    fn covers_is_downward_closed_per_node() {
        let c = clock(&[("a", 2)]);
        let dot = |id: &str, counter| Dot {
            node: node(id),
            counter,
        };
        assert!(c.covers(&dot("a", 1)));
        assert!(c.covers(&dot("a", 2)));
        assert!(!c.covers(&dot("a", 3)));
        assert!(!c.covers(&dot("b", 1)));
    }

    #[test]
    fn descends_compares_counters_entrywise() {
        let ancestor = clock(&[("s0", 1), ("s1", 1)]);
        let descendant = clock(&[("s0", 1), ("s1", 2)]);
        assert!(descendant.descends(&ancestor));
        assert!(!ancestor.descends(&descendant));
        let left = clock(&[("s0", 1), ("s1", 2)]);
        let right = clock(&[("s0", 2), ("s1", 1)]);
        assert!(!left.descends(&right) && !right.descends(&left));
        assert!(left.descends(&VersionVector::new()));
    }

    #[test]
    fn merge_takes_entrywise_max_of_counter_and_time() {
        let mut left = VersionVector::new();
        left.insert(
            node("a"),
            ClockEntry {
                counter: 3,
                updated_ms: 10,
            },
        );
        let mut right = VersionVector::new();
        right.insert(
            node("a"),
            ClockEntry {
                counter: 1,
                updated_ms: 20,
            },
        );
        right.insert(
            node("b"),
            ClockEntry {
                counter: 2,
                updated_ms: 5,
            },
        );
        left.merge(&right);
        assert_eq!(
            left.entry(&node("a")),
            Some(&ClockEntry {
                counter: 3,
                updated_ms: 20
            })
        );
        assert_eq!(left.counter(&node("b")), 2);
        assert_eq!(left.len(), 2);
    }
}
