//! Tests of the consistent-hash ring (`ring.rs`).
#![allow(clippy::unwrap_used)]

use super::*;
use std::collections::HashSet;

#[test]
fn replica_ranges_merge_arcs_with_the_same_replicas_and_cover_the_circle() {
    let ring = Ring::new(&[member("a", 1), member("b", 1), member("c", 2)], 16);
    let tokens = ring.tokens_per_member();
    assert_eq!(
        tokens.iter().map(|(_, c)| c).sum::<usize>(),
        ring.token_count()
    );
    assert_eq!(
        tokens[2].1,
        2 * tokens[0].1,
        "weight 2 holds twice the tokens"
    );
    let ranges = ring.replica_ranges(2);
    assert!(ranges.len() <= ring.ranges().len());
    // Neighbours differ (else they would have been merged), and every
    // key's replicas are its range's.
    for pair in ranges.windows(2) {
        assert_ne!(pair[0].1, pair[1].1);
        assert_eq!(pair[0].0.upto, pair[1].0.after, "no gap between ranges");
    }
    for i in 0..500u32 {
        let key = format!("k{i}");
        let token = Ring::key_token(key.as_bytes());
        let holding: Vec<_> = ranges.iter().filter(|r| r.0.contains(token)).collect();
        assert_eq!(holding.len(), 1, "exactly one range holds {key}");
        assert_eq!(holding[0].1, ring.preference_list(key.as_bytes(), 2));
    }
    // One member: one range, the whole circle.
    let alone = Ring::new(&[member("a", 1)], 8).replica_ranges(3);
    assert_eq!(alone.len(), 1);
    assert_eq!(alone[0].0.after, alone[0].0.upto);
}

fn two_dcs() -> Vec<RingMember> {
    let mut members = Vec::new();
    for i in 1..=3 {
        members.push(placed(&format!("a{i}"), 1, "dc1", &format!("r{}", i % 2)));
        members.push(placed(&format!("b{i}"), 1, "dc2", "r1"));
    }
    members.push(placed("c1", 1, "dc3", "r1"));
    members
}

#[test]
fn dc_replication_parses_and_refuses_clearly() {
    let d = DcReplication::parse("dc2:2, dc1:3", 8).unwrap();
    assert_eq!(
        (d.total(), d.in_dc("dc1"), d.in_dc("dc2"), d.in_dc("x")),
        (5, 3, 2, 0)
    );
    assert_eq!(d.to_string(), "dc1:3,dc2:2", "sorted by name");
    for (bad, says) in [
        ("dc1", "DC:COUNT"),
        ("dc1:0", "1..=8"),
        ("dc1:x", "integer"),
        ("dc1:2,dc1:1", "twice"),
        ("dc1:5,dc2:5", "adds up to 10"),
        ("", "no data center"),
        ("d c:1", "not a DC name"),
    ] {
        let e = DcReplication::parse(bad, 8).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn per_dc_lists_hold_the_first_members_of_each_dc_clockwise() {
    let dcs = DcReplication::parse("dc1:2,dc2:1", 8).unwrap();
    let members = two_dcs();
    let ring = Ring::new(&members, 32).with_dc_replication(&dcs);
    let dc = |id: &NodeId| ring.dc_of(id).unwrap().to_owned();
    for k in 0..500u32 {
        let token = Ring::key_token(&k.to_be_bytes());
        let list = ring.preference_list_at(token, 3);
        let in_dc = |d: &str| list.iter().filter(|id| dc(id) == d).count();
        assert_eq!(
            (in_dc("dc1"), in_dc("dc2"), in_dc("dc3")),
            (2, 1, 0),
            "{list:?}"
        );
        // dc1's two sit on both of its racks, dc2's one is the first
        // dc2 member clockwise, and the list is in clockwise order.
        let racks: HashSet<_> = list
            .iter()
            .filter(|id| dc(id) == "dc1")
            .map(|id| {
                ring.members()
                    .iter()
                    .find(|m| m.id == *id)
                    .unwrap()
                    .rack
                    .clone()
            })
            .collect();
        assert_eq!(racks.len(), 2, "{list:?}");
        let walk: Vec<NodeId> = ring
            .walk(ring.first_token_index(token))
            .map(|i| ring.members[i].id.clone())
            .collect();
        let first_dc2 = walk.iter().find(|id| dc(id) == "dc2").unwrap();
        assert!(list.contains(first_dc2));
        let positions: Vec<usize> = list
            .iter()
            .map(|id| walk.iter().position(|w| w == id).unwrap())
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
        // A longer walk holds the list, then each DC's own next members.
        let long = ring.preference_list_at(token, 9);
        assert!(list.iter().all(|id| long.contains(id)));
        let long_in = |d: &str| long.iter().filter(|id| dc(id) == d).count();
        assert_eq!((long_in("dc1"), long_in("dc2"), long_in("dc3")), (3, 3, 0));
    }
    // Fewer members in a DC than its count: all of them.
    let small = Ring::new(&members[..3], 32).with_dc_replication(&dcs);
    assert_eq!(small.preference_list(b"k", 3).len(), 3);
    let lone = DcReplication::parse("dc2:3", 8).unwrap();
    let ring = Ring::new(&members, 32).with_dc_replication(&lone);
    let list = ring.preference_list(b"k", 3);
    assert!(
        list.iter().all(|id| ring.dc_of(id) == Some("dc2")),
        "{list:?}"
    );
}

fn member(id: &str, weight: u32) -> RingMember {
    placed(id, weight, "dc1", "r1")
}

fn placed(id: &str, weight: u32, dc: &str, rack: &str) -> RingMember {
    RingMember {
        id: NodeId::new(id).unwrap(),
        dc: dc.into(),
        rack: rack.into(),
        weight,
    }
}

fn share(ring: &Ring, id: &str) -> f64 {
    ring.ownership()
        .into_iter()
        .find(|(m, _)| m.as_str() == id)
        .unwrap()
        .1
}

/// The one-packet denial of service: a member announcing weight
/// 2^32-1 asked for 128 x 4 billion tokens (about 68 GB).
#[test]
fn a_huge_weight_cannot_make_the_ring_unbounded() {
    let ring = Ring::new(&[member("n1", 1), member("evil", u32::MAX)], 128);
    // The weight is clamped to NODE_WEIGHT_MAX first.
    assert_eq!(ring.token_count(), 128 + 128 * NODE_WEIGHT_MAX as usize);
    let many: Vec<RingMember> = (0..64)
        .map(|i| member(&format!("n{i}"), NODE_WEIGHT_MAX))
        .collect();
    let counts = token_counts(&many, VNODES_PER_WEIGHT_MAX);
    assert!(counts.iter().sum::<usize>() <= RING_TOKENS_MAX);
    // Scaled by the same factor: equal members stay equal.
    assert!(counts.iter().all(|&c| c == counts[0] && c >= 1));
    let mixed = [member("a", 1), member("b", NODE_WEIGHT_MAX)];
    let counts = token_counts(&mixed, VNODES_PER_WEIGHT_MAX);
    assert!(
        counts.iter().sum::<usize>() <= RING_TOKENS_MAX,
        "{counts:?}"
    );
    assert!(counts[0] >= 1 && counts[1] > counts[0] * 900, "{counts:?}");
}

#[test]
fn three_equal_nodes_own_a_third_each() {
    let ring = Ring::new(&[member("n1", 1), member("n2", 1), member("n3", 1)], 128);
    assert_eq!(ring.token_count(), 384);
    let total: f64 = ring.ownership().iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    for id in ["n1", "n2", "n3"] {
        let s = share(&ring, id);
        assert!((s - 1.0 / 3.0).abs() <= 0.05, "{id} owns {s}");
    }
}

#[test]
fn doubling_a_weight_roughly_doubles_the_share() {
    let even = Ring::new(
        &[
            member("n1", 1),
            member("n2", 1),
            member("n3", 1),
            member("n4", 1),
        ],
        128,
    );
    let heavy = Ring::new(
        &[
            member("n1", 2),
            member("n2", 1),
            member("n3", 1),
            member("n4", 1),
        ],
        128,
    );
    let ratio = share(&heavy, "n1") / share(&even, "n1");
    // n1 goes from 1/4 to 2/5 of the ring: a ratio of 1.6 in theory.
    assert!((1.4..=1.8).contains(&ratio), "ratio {ratio}");
    assert!(share(&heavy, "n1") > 1.7 * share(&heavy, "n2"));
}

#[test]
fn preference_lists_hold_n_distinct_members() {
    let members: Vec<_> = (1..=5).map(|i| member(&format!("n{i}"), 1)).collect();
    let ring = Ring::new(&members, 32);
    for k in 0..2000u32 {
        let list = ring.preference_list(&k.to_be_bytes(), 3);
        assert_eq!(list.len(), 3);
        let distinct: HashSet<_> = list.iter().collect();
        assert_eq!(distinct.len(), 3, "{list:?}");
    }
    // Asking for more than there are gives every member once.
    assert_eq!(ring.preference_list(b"k", 9).len(), 5);
    assert!(Ring::new(&[], 8).preference_list(b"k", 3).is_empty());
}

/// The walk keeps its flags in one word up to 64 members and in a
/// vector beyond: both give each member once, in clockwise order of
/// first appearance (checked against a walk with a hash set).
#[test]
fn walks_give_each_member_once_below_and_above_64_members() {
    for count in [1usize, 3, 63, 64, 65, 100] {
        let members: Vec<_> = (0..count).map(|i| member(&format!("n{i}"), 1)).collect();
        let ring = Ring::new(&members, 4);
        for start in [0, 1, ring.token_count() / 2, ring.token_count() - 1] {
            let walked: Vec<usize> = ring.walk(start).collect();
            let mut seen = HashSet::new();
            let expected: Vec<usize> = (0..ring.token_count())
                .map(|i| ring.tokens[(start + i) % ring.token_count()].1)
                .filter(|m| seen.insert(*m))
                .collect();
            assert_eq!(walked, expected, "{count} members from token {start}");
            assert_eq!(walked.len(), count);
        }
    }
}

#[test]
fn holds_at_agrees_with_the_preference_list() {
    let uniform: Vec<_> = (1..=5).map(|i| member(&format!("n{i}"), i)).collect();
    let racks = vec![
        placed("n1", 1, "dc1", "a"),
        placed("n2", 2, "dc1", "a"),
        placed("n3", 1, "dc1", "b"),
        placed("n4", 1, "dc2", "c"),
    ];
    let per_dc =
        Ring::new(&racks, 16).with_dc_replication(&DcReplication::parse("dc1:2,dc2:1", 8).unwrap());
    for ring in [Ring::new(&uniform, 16), Ring::new(&racks, 16), per_dc] {
        for k in 0..300u32 {
            let token = Ring::key_token(&k.to_be_bytes());
            for n in 0..=6 {
                let list = ring.preference_list_at(token, n);
                for member in ring.members() {
                    assert_eq!(
                        ring.holds_at(token, n, &member.id),
                        list.contains(&member.id),
                        "{} in {list:?}",
                        member.id
                    );
                }
            }
        }
    }
}

#[test]
fn every_node_builds_the_same_ring_whatever_the_order() {
    let a = Ring::new(&[member("n1", 1), member("n2", 2), member("n3", 1)], 16);
    let b = Ring::new(&[member("n3", 1), member("n1", 1), member("n2", 2)], 16);
    for k in 0..200u32 {
        let key = k.to_le_bytes();
        assert_eq!(a.preference_list(&key, 2), b.preference_list(&key, 2));
    }
}

#[test]
fn replicas_spread_across_racks_first() {
    // Two nodes in rack a, one in rack b: every list of 2 spans both racks.
    let ring = Ring::new(
        &[
            placed("n1", 1, "dc1", "a"),
            placed("n2", 1, "dc1", "a"),
            placed("n3", 1, "dc1", "b"),
        ],
        32,
    );
    for k in 0..500u32 {
        let list = ring.preference_list(&k.to_be_bytes(), 2);
        assert!(list.iter().any(|id| id.as_str() == "n3"), "{list:?}");
    }
}

#[test]
fn arcs_cover_the_circle_and_agree_with_preference_lists() {
    let ring = Ring::new(&[member("n1", 1), member("n2", 1), member("n3", 1)], 8);
    let arcs = ring.ranges();
    assert_eq!(arcs.len(), 24);
    for k in 0..500u32 {
        let key = k.to_be_bytes();
        let token = Ring::key_token(&key);
        let holding: Vec<_> = arcs.iter().filter(|a| a.contains(token)).collect();
        assert_eq!(holding.len(), 1, "each token on exactly one arc");
        assert_eq!(
            ring.preference_list_at(holding[0].upto, 2),
            ring.preference_list(&key, 2)
        );
        assert_eq!(arcs[ring.range_index(token)], *holding[0]);
        // The arc's storage ranges hold the key's storage key.
        let sk = storage_key(&key);
        let inside = holding[0]
            .storage_ranges()
            .iter()
            .any(|(start, end)| sk >= *start && end.as_ref().is_none_or(|e| sk < *e));
        assert!(inside, "key {k} outside its arc's ranges");
    }
}

#[test]
fn storage_keys_sort_in_ring_order_and_round_trip() {
    let mut keys: Vec<Vec<u8>> = (0..100u32).map(|k| storage_key(&k.to_be_bytes())).collect();
    keys.sort();
    let tokens: Vec<Token> = keys
        .iter()
        .map(|k| Ring::key_token(user_key(k).unwrap()))
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(user_key(&storage_key(b"abc")), Some(&b"abc"[..]));
    assert_eq!(user_key(b"short"), None);
}

#[test]
fn adding_a_node_moves_only_its_share() {
    let three: Vec<_> = (1..=3).map(|i| member(&format!("n{i}"), 1)).collect();
    let mut four = three.clone();
    four.push(member("n4", 1));
    let (before, after) = (Ring::new(&three, 128), Ring::new(&four, 128));
    let keys = 20_000u32;
    let moved = (0..keys)
        .filter(|k| {
            let key = k.to_be_bytes();
            before.preference_list(&key, 1) != after.preference_list(&key, 1)
        })
        .count();
    let fraction = moved as f64 / keys as f64;
    assert!((0.18..=0.32).contains(&fraction), "moved {fraction}");
}
