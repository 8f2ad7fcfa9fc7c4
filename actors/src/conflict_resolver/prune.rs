//! Pruning: keeping a clock's size bounded by forgetting old entries.

use std::collections::BTreeSet;

use super::object::{Object, VersionLimits};
use crate::NodeId;

/// Milliseconds per second, for `vclock_prune_age_s`.
const MS_PER_S: u64 = 1_000;

impl Object {
    /// Bounds the clock: when it has more than `vclock_entries_max` entries,
    /// removes the entries with the oldest `updated_ms` among those older than
    /// `vclock_prune_age_s`, until it is at or under the maximum (or no
    /// candidate is left). An entry whose node has a current sibling is never
    /// removed, so every sibling's dot stays covered.
    ///
    /// What it costs: the clock forgets that it has seen the pruned node's
    /// writes. A replica (or client) still holding an old version by that node
    /// then merges it back as a *false sibling* — an ancestor shown as a
    /// concurrent version, which the client resolves with its next put. It
    /// never loses a write: forgetting makes a clock cover less, and merge only
    /// drops a sibling that a clock covers.
    ///
    /// Caveat: a node must not prune *its own* entry from its own stored copy.
    /// If it did, its next write to the key could hand out a counter it has
    /// handed out before, and replicas that remember the old dot would drop
    /// the new write. Nodes call [`Object::prune_keeping`] with their own id;
    /// `prune` is for copies that belong to no coordinator (tests, tools).
    pub fn prune(&mut self, now_ms: u64, limits: &VersionLimits) {
        self.prune_except(None, now_ms, limits);
    }

    /// [`Object::prune`], but never removes `own`'s entry: what a node calls
    /// on its stored copy, with its own id, so that its counter for the key
    /// never goes back.
    pub fn prune_keeping(&mut self, own: &NodeId, now_ms: u64, limits: &VersionLimits) {
        self.prune_except(Some(own), now_ms, limits);
    }

    fn prune_except(&mut self, own: Option<&NodeId>, now_ms: u64, limits: &VersionLimits) {
        let excess = self.clock.len().saturating_sub(limits.vclock_entries_max);
        if excess == 0 {
            return;
        }
        let age_ms_min = limits.vclock_prune_age_s.saturating_mul(MS_PER_S);
        let needed: BTreeSet<&NodeId> = self.siblings.iter().map(|s| &s.dot.node).collect();
        let mut candidates: Vec<(u64, NodeId)> = self
            .clock
            .iter()
            .filter(|(node, entry)| {
                !needed.contains(node)
                    && Some(*node) != own
                    && now_ms.saturating_sub(entry.updated_ms) > age_ms_min
            })
            .map(|(node, entry)| (entry.updated_ms, node.clone()))
            .collect();
        candidates.sort_unstable();
        for (_, node) in candidates.into_iter().take(excess) {
            self.clock.remove(&node);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_support::{dot, dots, node};
    use super::super::VersionVector;
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    /// Each `(node, now_ms)` writes in turn, replacing the previous value.
    fn chain(writes: &[(&str, u64)]) -> Object {
        writes
            .iter()
            .fold(Object::default(), |object, (via, now_ms)| {
                let value = Some(via.as_bytes().to_vec());
                let limits = VersionLimits::default();
                Object::update(
                    Some(&object),
                    object.context(),
                    value,
                    &node(via),
                    *now_ms,
                    &limits,
                )
                .unwrap()
            })
    }

    fn limits(entries_max: usize) -> VersionLimits {
        VersionLimits {
            vclock_entries_max: entries_max,
            ..VersionLimits::default()
        }
    }

    fn nodes(object: &Object) -> Vec<&str> {
        object
            .context()
            .iter()
            .map(|(node, _)| node.as_str())
            .collect()
    }

    #[test]
    fn prune_leaves_clocks_at_or_under_the_max_alone() {
        let mut object = chain(&[("a", 0), ("b", 1), ("c", 2)]);
        let before = object.clone();
        object.prune(10 * DAY_MS, &limits(3));
        assert_eq!(object, before);
    }

    #[test]
    fn prune_removes_the_oldest_old_entries_until_at_the_max() {
        let mut object = chain(&[("a", 3), ("b", 1), ("c", 2), ("d", 4), ("e", 5)]);
        object.prune(10 * DAY_MS, &limits(3));
        assert_eq!(nodes(&object), ["a", "d", "e"]);
    }

    #[test]
    fn prune_keeps_entries_younger_than_the_prune_age() {
        let now_ms = 10 * DAY_MS;
        let mut object = chain(&[
            ("a", 0),
            ("b", now_ms - 1),
            ("c", now_ms - 1),
            ("d", now_ms),
        ]);
        object.prune(now_ms, &limits(1));
        assert_eq!(nodes(&object), ["b", "c", "d"]);
    }

    #[test]
    fn prune_keeps_every_entry_a_sibling_needs() {
        let first = chain(&[("a", 0)]);
        let concurrent = chain(&[("b", 0), ("c", 0)]);
        let mut object = first.merge(&concurrent);
        object.prune(10 * DAY_MS, &limits(0));
        assert_eq!(nodes(&object), ["a", "c"]);
        assert_eq!(dots(&object), [dot("a", 1), dot("c", 1)]);
        assert!(Object::from_parts(object.clock.clone(), object.siblings.clone()).is_ok());
    }

    /// The documented cost: after pruning, an ancestor held by a stale replica
    /// comes back as a sibling (a false sibling); the newer write stays.
    #[test]
    fn pruning_can_cause_a_false_sibling_never_a_lost_write() {
        let old = chain(&[("a", 0)]);
        let stale_replica = old.clone();
        let mut current = chain(&[("a", 0), ("b", 1), ("c", 2)]);
        assert_eq!(
            current.merge(&stale_replica),
            current,
            "unpruned: the ancestor is recognised"
        );
        current.prune(10 * DAY_MS, &limits(2));
        assert_eq!(nodes(&current), ["b", "c"]);
        let merged = current.merge(&stale_replica);
        assert_eq!(merged.live_values(), [b"a".as_slice(), b"c"]);
        assert_eq!(dots(&merged), [dot("a", 1), dot("c", 1)]);
    }

    /// Why nodes prune with `prune_keeping`: a node that forgets its own entry
    /// hands out an old counter again.
    #[test]
    fn prune_keeping_own_entry_keeps_the_next_dot_fresh() {
        let stored_at_a = chain(&[("a", 0), ("b", 1)]);
        let blind = VersionVector::new();
        let write = |object: &Object| {
            let limits = VersionLimits::default();
            Object::update(Some(object), &blind, None, &node("a"), 10 * DAY_MS, &limits).unwrap()
        };
        let mut kept = stored_at_a.clone();
        kept.prune_keeping(&node("a"), 10 * DAY_MS, &limits(1));
        assert_eq!(nodes(&kept), ["a", "b"]);
        assert!(dots(&write(&kept)).contains(&dot("a", 2)));
        let mut forgotten = stored_at_a;
        forgotten.prune(10 * DAY_MS, &limits(1));
        assert!(
            dots(&write(&forgotten)).contains(&dot("a", 1)),
            "dot (a, 1) reused"
        );
    }
}
