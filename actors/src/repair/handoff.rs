//! Planning data movement when the ring changes (a join or a leave): pure.
//!
//! For every token range, the replicas a key gains (in the new ring, not in
//! the old) receive its data from the replicas it loses (in the old ring,
//! not in the new): a joining node takes over exactly the slot of the node
//! it pushes out of the preference list, so it streams from that node. This
//! keeps quorum intersection: every write acknowledged by W of the old
//! replicas is, after the move, on W of the new ones — streaming from an
//! arbitrary old replica would not guarantee that (it may be the one that
//! missed the write). It also moves the minimum: each gained replica is
//! filled once, from one source.

use crate::ring::{Ring, Token, TokenRange};
use crate::NodeId;

/// Keys on `range` must be copied from `source` to `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The token range.
    pub range: TokenRange,
    /// Holds the data now and leaves the preference list.
    pub source: NodeId,
    /// Enters the preference list.
    pub target: NodeId,
}

/// Every transfer that takes `n`-way replication from ring `before` to ring
/// `after`. Adjacent ranges with the same source and target are merged.
pub fn plan_transfers(before: &Ring, after: &Ring, n: usize) -> Vec<Transfer> {
    let mut transfers: Vec<Transfer> = Vec::new();
    for range in common_ranges(before, after) {
        let upto = range.upto;
        let old = before.preference_list_at(upto, n);
        let new = after.preference_list_at(upto, n);
        let gained = new.iter().filter(|m| !old.contains(m));
        let mut lost = old.iter().filter(|m| !new.contains(m)).peekable();
        for target in gained {
            // With fewer members than N before, nothing is lost: fill the
            // gained replica from the first old replica.
            let source = match lost.next().or_else(|| old.first()) {
                Some(s) => s.clone(),
                None => continue,
            };
            push_merged(
                &mut transfers,
                Transfer {
                    range,
                    source,
                    target: target.clone(),
                },
            );
        }
    }
    transfers
}

/// The pushes `me` owes when its read ring goes from `before` to `after`:
/// for every range `me` replicated in `before` and does not in `after`,
/// one transfer to each replica the range gains. Adjacent ranges with the
/// same target are merged.
///
/// This is the old owner's half of a move, and the safety net under the
/// new owner's pull: an owner keeps taking writes until it hears that the
/// range moved, and a write whose new owner it could not reach (a joining
/// node behind a partition, with no stand-in left to hold a hint) exists
/// only on the old owners. Without the push nobody would ever copy it to
/// the new ones (seed 8861 of the cluster simulation lost three
/// acknowledged writes that way). A push of what the new owner already
/// holds merges to no change.
pub fn pushes_for_lost_ranges(before: &Ring, after: &Ring, n: usize, me: &NodeId) -> Vec<Transfer> {
    let mut by_target: Vec<Vec<Transfer>> = Vec::new();
    for range in common_ranges(before, after) {
        let upto = range.upto;
        let old = before.preference_list_at(upto, n);
        if !old.contains(me) {
            continue;
        }
        let new = after.preference_list_at(upto, n);
        if new.contains(me) {
            continue;
        }
        for target in new.iter().filter(|m| !old.contains(m)) {
            let next = Transfer {
                range,
                source: me.clone(),
                target: target.clone(),
            };
            match by_target.iter_mut().find(|t| t[0].target == *target) {
                Some(list) => push_merged(list, next),
                None => by_target.push(vec![next]),
            }
        }
    }
    by_target.into_iter().flatten().collect()
}

/// The ranges both rings' tokens cut the circle into, in token order (the
/// first wraps around from the last token); empty when both are empty.
fn common_ranges(before: &Ring, after: &Ring) -> Vec<TokenRange> {
    let mut bounds: Vec<Token> = before
        .ranges()
        .iter()
        .chain(after.ranges().iter())
        .map(|r| r.upto)
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let Some(&last) = bounds.last() else {
        return Vec::new();
    };
    let mut previous = last;
    bounds
        .into_iter()
        .map(|upto| {
            let range = TokenRange {
                after: previous,
                upto,
            };
            previous = upto;
            range
        })
        .collect()
}

fn push_merged(transfers: &mut Vec<Transfer>, next: Transfer) {
    if let Some(last) = transfers.last_mut() {
        if last.source == next.source
            && last.target == next.target
            && last.range.upto == next.range.after
        {
            last.range.upto = next.range.upto;
            return;
        }
    }
    transfers.push(next);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::RingMember;

    fn ring(ids: &[&str]) -> Ring {
        let members: Vec<_> = ids
            .iter()
            .map(|id| RingMember {
                id: NodeId::new(*id).unwrap(),
                dc: "dc1".into(),
                rack: "r1".into(),
                weight: 1,
            })
            .collect();
        Ring::new(&members, 64)
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// Replays the plan on a sample of keys: after the transfers, each key's
    /// new replicas each hold data from an old replica.
    fn check_plan(before: &Ring, after: &Ring, n: usize) -> Vec<Transfer> {
        let plan = plan_transfers(before, after, n);
        for k in 0..3000u32 {
            let key = k.to_be_bytes();
            let token = Ring::key_token(&key);
            let old = before.preference_list(&key, n);
            let new = after.preference_list(&key, n);
            for target in new.iter().filter(|m| !old.contains(m)) {
                let t = plan
                    .iter()
                    .find(|t| t.target == *target && t.range.contains(token))
                    .unwrap_or_else(|| panic!("key {k}: nothing fills {target}"));
                assert!(old.contains(&t.source));
                let someone_leaves = old.iter().any(|m| !new.contains(m));
                if someone_leaves {
                    assert!(
                        !new.contains(&t.source),
                        "source must be the replica that leaves"
                    );
                }
            }
            // No transfer targets a node that was already a replica.
            for t in plan.iter().filter(|t| t.range.contains(token)) {
                assert!(!old.contains(&t.target));
            }
        }
        plan
    }

    #[test]
    fn a_join_streams_into_the_new_node_from_the_replicas_it_replaces() {
        let plan = check_plan(
            &ring(&["n1", "n2", "n3", "n4"]),
            &ring(&["n1", "n2", "n3", "n4", "n5"]),
            3,
        );
        assert!(plan.iter().all(|t| t.target == id("n5")));
        assert!(!plan.is_empty());
    }

    #[test]
    fn a_leave_streams_out_of_the_leaving_node() {
        let plan = check_plan(
            &ring(&["n1", "n2", "n3", "n4", "n5"]),
            &ring(&["n1", "n2", "n3", "n5"]),
            3,
        );
        assert!(plan.iter().all(|t| t.source == id("n4")));
    }

    #[test]
    fn growing_past_n_fills_from_existing_replicas() {
        // 3 nodes at N=3 hold everything; the 4th takes 3/4 of the keys.
        let plan = check_plan(
            &ring(&["n1", "n2", "n3"]),
            &ring(&["n1", "n2", "n3", "n4"]),
            3,
        );
        assert!(plan.iter().all(|t| t.target == id("n4")));
        // Growing from 1 node at N=3: every new node fills from n1.
        let plan = check_plan(&ring(&["n1"]), &ring(&["n1", "n2"]), 3);
        assert!(plan
            .iter()
            .all(|t| t.source == id("n1") && t.target == id("n2")));
    }

    /// Seed 8861's shape: two nodes served while three were joining behind
    /// a partition; when the three serve, each old owner pushes every key
    /// it no longer replicates to each of the key's new replicas.
    #[test]
    fn an_owner_that_loses_a_range_pushes_it_to_each_new_replica() {
        let before = ring(&["n2", "n3"]);
        let after = ring(&["n1", "n2", "n3", "n4", "n5"]);
        let me = id("n2");
        let pushes = pushes_for_lost_ranges(&before, &after, 3, &me);
        assert!(!pushes.is_empty());
        assert!(pushes.iter().all(|t| t.source == me));
        for k in 0..3000u32 {
            let key = k.to_be_bytes();
            let token = Ring::key_token(&key);
            let old = before.preference_list(&key, 3);
            let new = after.preference_list(&key, 3);
            for target in &new {
                let covered = pushes
                    .iter()
                    .any(|t| t.target == *target && t.range.contains(token));
                let owed = old.contains(&me) && !new.contains(&me) && !old.contains(target);
                assert_eq!(covered, owed, "key {k} to {target}");
            }
        }
        // An ordinary join: only the joiner receives, and only from the
        // owner it displaced.
        let pushes = pushes_for_lost_ranges(
            &ring(&["n1", "n2", "n3", "n4"]),
            &ring(&["n1", "n2", "n3", "n4", "n5"]),
            3,
            &me,
        );
        assert!(pushes.iter().all(|t| t.target == id("n5")));
        let r = ring(&["n1", "n2", "n3"]);
        assert!(pushes_for_lost_ranges(&r, &r, 3, &me).is_empty());
    }

    #[test]
    fn an_unchanged_ring_moves_nothing() {
        let r = ring(&["n1", "n2", "n3"]);
        assert!(plan_transfers(&r, &r, 2).is_empty());
    }
}
