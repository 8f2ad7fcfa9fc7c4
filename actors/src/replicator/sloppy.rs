//! Sloppy quorum: when replicas of a key are unreachable, the next
//! reachable nodes clockwise past the preference list stand in for them,
//! each keeping a hint naming the replica it stands in for (the chapter's
//! "Handling temporary failures"). Pure.
//!
//! Only writes are sloppy. A new version is still minted by a reachable
//! replica of the key (dotted version vectors need the minting node to hold
//! every version it minted), and reads still ask the key's own replicas.

use crate::NodeId;

/// Pairs each unreachable replica in `preference` with a stand-in: the
/// first reachable node of `walk` (the ring's distinct nodes clockwise from
/// the key) that is not a replica and not already standing in. Returns
/// `(stand_in, owner)` pairs, in preference order; fewer than the
/// unreachable replicas when the ring has no more reachable nodes.
pub fn stand_ins(
    walk: &[NodeId],
    preference: &[NodeId],
    reachable: impl Fn(&NodeId) -> bool,
) -> Vec<(NodeId, NodeId)> {
    let mut candidates = walk
        .iter()
        .filter(|n| !preference.contains(n) && reachable(n));
    preference
        .iter()
        .filter(|owner| !reachable(owner))
        .map_while(|owner| candidates.next().map(|c| (c.clone(), owner.clone())))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::new(*n).unwrap()).collect()
    }

    #[test]
    fn each_unreachable_replica_gets_the_next_reachable_stand_in() {
        let walk = ids(&["a", "b", "c", "d", "e", "f"]);
        let preference = ids(&["a", "b", "c"]);
        let down = ids(&["b", "d"]);
        let pairs = stand_ins(&walk, &preference, |n| !down.contains(n));
        assert_eq!(
            pairs,
            vec![(ids(&["e"])[0].clone(), ids(&["b"])[0].clone())]
        );
    }

    #[test]
    fn nothing_when_all_are_reachable_and_fewer_when_the_ring_runs_out() {
        let walk = ids(&["a", "b", "c", "d"]);
        let preference = ids(&["a", "b", "c"]);
        assert!(stand_ins(&walk, &preference, |_| true).is_empty());
        let pairs = stand_ins(&walk, &preference, |n| {
            n.as_str() == "a" || n.as_str() == "d"
        });
        assert_eq!(pairs.len(), 1, "only d can stand in: {pairs:?}");
        assert_eq!(pairs[0].0.as_str(), "d");
        assert_eq!(pairs[0].1.as_str(), "b");
    }
}
