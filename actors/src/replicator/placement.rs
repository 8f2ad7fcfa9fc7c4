//! Where a key's requests go, pure: its primaries (the preference list)
//! and the stand-in candidates past them, from the rings the failure
//! detector published.
//!
//! - Reads use the read ring's preference list. Where it holds fewer than
//!   N members (a cluster starting together, whose nodes are all still
//!   joining, or a young one), the key's joining owners from the write
//!   ring fill the empty places: they have received every write since
//!   they were announced, and nobody else has the range. With `m` serving
//!   owners and `N - m` joining ones, a read of R still meets every write
//!   of W that the serving owners acknowledged when `R + W > N`: at most
//!   `N - m` of its R replies come from joining owners, and
//!   `(R - (N - m)) + W > m`.
//! - Writes use the union of the read and the write ring's lists, so data
//!   that is moving (a join or a leave under way) reaches its old and its
//!   new home.
//! - Stand-in candidates are the next distinct members clockwise in the
//!   write ring past the primaries (the chapter's sloppy quorum: "the
//!   next healthy node"); at most [`STAND_IN_CANDIDATES_PER_REPLICA`] per
//!   replica, so the walk stays short on a large ring.

use crate::ring::{Ring, Token};
use crate::NodeId;

/// Stand-in candidates computed per replica of a key: one for each
/// primary, and one more for each in case the first fails too.
pub const STAND_IN_CANDIDATES_PER_REPLICA: usize = 2;

/// A key's primaries and the candidates to stand in for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The key's replicas, in preference order.
    pub primaries: Vec<NodeId>,
    /// Members past the primaries, clockwise: stand-in candidates.
    pub beyond: Vec<NodeId>,
}

/// The placement of `key`'s reads.
pub fn for_read(read_ring: &Ring, write_ring: &Ring, n: usize, key: &[u8]) -> Placement {
    let token = Ring::key_token(key);
    let primaries = read_primaries_at(read_ring, write_ring, n, token);
    Placement {
        beyond: beyond(write_ring, key, &primaries, n),
        primaries,
    }
}

/// The read primaries of every key hashing to `token` (see [`for_read`]).
pub fn read_primaries_at(
    read_ring: &Ring,
    write_ring: &Ring,
    n: usize,
    token: Token,
) -> Vec<NodeId> {
    let mut primaries = read_ring.preference_list_at(token, n);
    if primaries.len() < n {
        for node in write_ring.preference_list_at(token, n) {
            if primaries.len() == n {
                break;
            }
            if !primaries.contains(&node) {
                primaries.push(node);
            }
        }
    }
    primaries
}

/// Whether `node` is the only read primary of `token`:
/// `read_primaries_at(..) == [node]`, without building the list when N = 1
/// and neither ring places by data center (a one-node GET answered in
/// place asks it for every request).
pub fn sole_read_primary_at(
    read_ring: &Ring,
    write_ring: &Ring,
    n: usize,
    token: Token,
    node: &NodeId,
) -> bool {
    if n == 1 && read_ring.dc_replication().is_empty() && write_ring.dc_replication().is_empty() {
        // The one primary: the read ring's first at the token, or the
        // write ring's while the read ring has no member.
        let ring = if read_ring.members().is_empty() {
            write_ring
        } else {
            read_ring
        };
        return ring.holds_at(token, 1, node);
    }
    matches!(read_primaries_at(read_ring, write_ring, n, token).as_slice(), [only] if only == node)
}

/// The placement of `key`'s writes.
pub fn for_write(read_ring: &Ring, write_ring: &Ring, n: usize, key: &[u8]) -> Placement {
    // One ring for both (the membership view shares it when no member is
    // joining or leaving) whose lists are prefixes of longer ones: one walk
    // gives the primaries and, after them, the stand-in candidates. The
    // same lists as below, without two more walks and key hashes.
    if std::ptr::eq(read_ring, write_ring) && write_ring.lists_are_prefixes() {
        let token = Ring::key_token(key);
        let primaries_len = n.min(write_ring.members().len());
        let walk = primaries_len + n * STAND_IN_CANDIDATES_PER_REPLICA;
        let mut primaries = write_ring.preference_list_at(token, walk);
        let beyond = primaries.split_off(primaries_len.min(primaries.len()));
        return Placement { primaries, beyond };
    }
    let mut primaries = read_ring.preference_list(key, n);
    for node in write_ring.preference_list(key, n) {
        if !primaries.contains(&node) {
            primaries.push(node);
        }
    }
    Placement {
        beyond: beyond(write_ring, key, &primaries, n),
        primaries,
    }
}

/// Whether `node` has a place on either ring: a member whose own gossip
/// reached this node and that has not left. Only such members may ask
/// this node to read, write or scan anything.
pub fn is_placed(read_ring: &Ring, write_ring: &Ring, node: &NodeId) -> bool {
    let on = |ring: &Ring| ring.members().binary_search_by(|m| m.id.cmp(node)).is_ok();
    on(read_ring) || on(write_ring)
}

/// Whether `node` shares `token`'s keys in this node's view: it is one of
/// their write placement's primaries (both rings, so a range that is
/// moving counts for its old and its new home) or stand-in candidates.
/// The stand-in slack also covers views that differ for a gossip round.
pub fn shares(read_ring: &Ring, write_ring: &Ring, n: usize, token: Token, node: &NodeId) -> bool {
    // The common case, a primary, without building the lists.
    if read_ring.holds_at(token, n, node) || write_ring.holds_at(token, n, node) {
        return true;
    }
    let mut primaries = read_ring.preference_list_at(token, n);
    for member in write_ring.preference_list_at(token, n) {
        if !primaries.contains(&member) {
            primaries.push(member);
        }
    }
    if primaries.contains(node) {
        return true;
    }
    let walk = primaries.len() + n * STAND_IN_CANDIDATES_PER_REPLICA;
    write_ring.preference_list_at(token, walk).contains(node)
}

fn beyond(write_ring: &Ring, key: &[u8], primaries: &[NodeId], n: usize) -> Vec<NodeId> {
    let walk = primaries.len() + n * STAND_IN_CANDIDATES_PER_REPLICA;
    write_ring
        .preference_list(key, walk)
        .into_iter()
        .filter(|m| !primaries.contains(m))
        .collect()
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
        Ring::new(&members, 32)
    }

    #[test]
    fn a_node_shares_the_keys_it_replicates_or_stands_in_for() {
        let ids = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"];
        let ring = ring(&ids);
        let key = b"some key";
        let token = Ring::key_token(key);
        let placement = for_write(&ring, &ring, 1, key);
        let window: Vec<NodeId> = placement
            .primaries
            .iter()
            .chain(&placement.beyond)
            .cloned()
            .collect();
        // N = 1: the primary and two stand-in candidates.
        assert_eq!(window.len(), 3);
        for id in ids {
            let node = NodeId::new(id).unwrap();
            assert_eq!(
                shares(&ring, &ring, 1, token, &node),
                window.contains(&node),
                "{id}"
            );
            assert!(is_placed(&ring, &ring, &node));
        }
        let stranger = NodeId::new("x").unwrap();
        assert!(!shares(&ring, &ring, 1, token, &stranger));
        assert!(!is_placed(&ring, &ring, &stranger));
        // A joining node (write ring only) is placed and shares its future keys.
        let joined = self::ring(&["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "x"]);
        assert!(is_placed(&ring, &joined, &stranger));
    }

    #[test]
    fn the_sole_read_primary_is_what_the_list_says() {
        let racks: Vec<RingMember> = (0..4)
            .map(|i| RingMember {
                id: NodeId::new(format!("n{i}")).unwrap(),
                dc: "dc1".into(),
                rack: format!("r{}", i % 2),
                weight: 1 + i,
            })
            .collect();
        let dcs = crate::ring::DcReplication::parse("dc1:1", 8).unwrap();
        let rings = [
            ring(&[]),
            ring(&["n0"]),
            ring(&["n0", "n1", "n2"]),
            ring(&["n1", "n2", "n3"]),
            Ring::new(&racks, 8),
            ring(&["n0", "n1"]).with_dc_replication(&dcs),
        ];
        let nodes: Vec<NodeId> = ["n0", "n1", "n2", "n3", "x"]
            .iter()
            .map(|id| NodeId::new(*id).unwrap())
            .collect();
        let mut sole = 0;
        for read in &rings {
            for write in &rings {
                for n in 1..=3 {
                    for k in 0..64u32 {
                        let token = Ring::key_token(&k.to_be_bytes());
                        let list = read_primaries_at(read, write, n, token);
                        for node in &nodes {
                            let want = list.as_slice() == std::slice::from_ref(node);
                            sole += usize::from(want);
                            assert_eq!(
                                sole_read_primary_at(read, write, n, token, node),
                                want,
                                "n {n}, key {k}, node {node}, list {list:?}"
                            );
                        }
                    }
                }
            }
        }
        assert!(sole > 1000, "the cases hold sole primaries too: {sole}");
    }

    #[test]
    fn per_dc_stand_in_candidates_are_each_dc_s_next_members() {
        // Four nodes in each of two DCs, one replica per DC: each DC's
        // primary gets that DC's next two members as candidates.
        let members: Vec<RingMember> = (0..8)
            .map(|i| RingMember {
                id: NodeId::new(format!("n{i}")).unwrap(),
                dc: if i < 4 { "dc1" } else { "dc2" }.into(),
                rack: "r1".into(),
                weight: 1,
            })
            .collect();
        let dcs = crate::ring::DcReplication::parse("dc1:1,dc2:1", 8).unwrap();
        let ring = Ring::new(&members, 32).with_dc_replication(&dcs);
        for k in 0..200u32 {
            let key = k.to_be_bytes();
            let p = for_write(&ring, &ring, 2, &key);
            let in_dc = |list: &[NodeId], dc: &str| {
                list.iter().filter(|n| ring.dc_of(n) == Some(dc)).count()
            };
            assert_eq!(
                (in_dc(&p.primaries, "dc1"), in_dc(&p.primaries, "dc2")),
                (1, 1)
            );
            assert_eq!((in_dc(&p.beyond, "dc1"), in_dc(&p.beyond, "dc2")), (2, 2));
            for node in &p.beyond {
                assert!(shares(&ring, &ring, 2, Ring::key_token(&key), node));
            }
        }
    }

    /// One ring for reads and writes takes the single-walk path; a copy
    /// of it (another object) the general one: both place every key alike.
    #[test]
    fn one_shared_ring_places_writes_as_two_equal_rings_do() {
        let mut racks = ring(&["a", "b", "c", "d", "e"]).members().to_vec();
        racks[1].rack = "r2".into();
        for shared in [
            ring(&["a"]),
            ring(&["a", "b", "c"]),
            ring(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]),
            Ring::new(&racks, 32),
        ] {
            let copy = shared.clone();
            assert!(shared.places_as(&copy));
            for n in 1..=4 {
                for k in 0..200u32 {
                    let key = k.to_be_bytes();
                    let one = for_write(&shared, &shared, n, &key);
                    let two = for_write(&shared, &copy, n, &key);
                    assert_eq!(
                        (&one.primaries, &one.beyond),
                        (&two.primaries, &two.beyond),
                        "n {n}, key {k}"
                    );
                }
            }
        }
        assert!(!ring(&["a", "b"]).places_as(&ring(&["a", "c"])));
    }

    #[test]
    fn stand_in_candidates_follow_the_primaries_clockwise() {
        let all = ring(&["a", "b", "c", "d", "e", "f"]);
        for k in 0..200u32 {
            let key = k.to_be_bytes();
            let p = for_read(&all, &all, 3, &key);
            let walk = all.preference_list(&key, 6);
            assert_eq!(p.primaries, walk[..3]);
            assert_eq!(p.beyond, walk[3..], "the rest of the ring, in order");
        }
    }

    #[test]
    fn joining_owners_serve_reads_where_no_serving_owner_exists() {
        let empty = Ring::default();
        let joining = ring(&["a", "b", "c"]);
        for k in 0..50u32 {
            let key = k.to_be_bytes();
            let p = for_read(&empty, &joining, 3, &key);
            assert_eq!(p.primaries, joining.preference_list(&key, 3));
        }
        // One serving owner: it comes first, joining ones fill the rest.
        let serving = ring(&["a"]);
        let all = ring(&["a", "b", "c", "d"]);
        for k in 0..50u32 {
            let key = k.to_be_bytes();
            let p = for_read(&serving, &all, 3, &key);
            assert_eq!(p.primaries.len(), 3);
            assert_eq!(p.primaries[0].as_str(), "a");
            for node in &p.primaries[1..] {
                assert!(all.preference_list(&key, 3).contains(node));
            }
        }
        // A full read ring is used as it is.
        let p = for_read(&all, &ring(&["a", "b", "c", "d", "e"]), 3, b"k");
        assert_eq!(p.primaries, all.preference_list(b"k", 3));
    }

    #[test]
    fn writes_reach_the_old_and_the_new_home_of_moving_data() {
        let before = ring(&["a", "b", "c"]);
        let after = ring(&["a", "b", "c", "d"]);
        let mut grew = 0;
        for k in 0..200u32 {
            let key = k.to_be_bytes();
            let p = for_write(&before, &after, 3, &key);
            for node in before
                .preference_list(&key, 3)
                .iter()
                .chain(after.preference_list(&key, 3).iter())
            {
                assert!(p.primaries.contains(node));
            }
            grew += usize::from(p.primaries.len() == 4);
            assert!(p.beyond.iter().all(|n| !p.primaries.contains(n)));
        }
        assert!(grew > 0, "some keys move to d");
    }
}
