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
