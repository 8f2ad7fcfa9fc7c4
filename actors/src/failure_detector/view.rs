//! From gossip state to what the rest of the node uses: the read ring, the
//! write ring, who is reachable, and the `status` rows. Pure.
//!
//! - The **read ring** holds every member except `joining` and `left` ones:
//!   a joining node serves reads only once it has its data.
//! - The **write ring** holds every member except `leaving` and `left` ones:
//!   where data is going. Writes go to the union of a key's preference
//!   lists in both rings, so a joining node receives live writes while it
//!   streams, and a leaving node keeps them until it has handed off.
//! - **Reachable**: members not `down` and not `left`. Suspects are still
//!   tried (a request to a dead one fails fast or times out); only a
//!   corroborated `down` takes a node out of the coordinators' plans.
//! - Only members whose own gossip record reached us (`heard`) are on
//!   either ring: a handshake alone (a mistyped id, a joiner that died
//!   before its first gossip) never gives a node a range.

use std::collections::BTreeMap;

use fnv::FnvHashSet;

use super::gossip::{MemberState, MemberView};
use crate::ring::{Ring, RingMember};
use crate::wire::client::MemberStatus;
use crate::wire::peer::MemberInfo;
use crate::NodeId;

/// Everything subscribers need, derived from one membership snapshot.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// Owners for reads.
    pub read_ring: Ring,
    /// Owners for writes (future owners included).
    pub write_ring: Ring,
    /// Members worth sending requests to.
    pub reachable: FnvHashSet<NodeId>,
    /// Members nobody suspects: replicas outside this set get a sloppy
    /// quorum stand-in (they may still get the write too).
    pub healthy: FnvHashSet<NodeId>,
    /// Members to keep connections to.
    pub peers: Vec<MemberInfo>,
}

fn ring_of<'a>(members: impl Iterator<Item = &'a MemberView<'a>>, vnodes_per_weight: u32) -> Ring {
    let members: Vec<RingMember> = members
        .map(|m| RingMember {
            id: m.info.id.clone(),
            dc: m.info.dc.clone(),
            rack: m.info.rack.clone(),
            weight: m.info.weight,
        })
        .collect();
    Ring::new(&members, vnodes_per_weight)
}

/// Derives the view from the members as gossip reports them.
pub fn cluster_view(members: &[MemberView<'_>], vnodes_per_weight: u32) -> ClusterView {
    use MemberState::*;
    let placed = || members.iter().filter(|m| m.heard);
    let read_ring = ring_of(
        placed().filter(|m| !matches!(m.state, Joining | Left)),
        vnodes_per_weight,
    );
    let write_ring = ring_of(
        placed().filter(|m| !matches!(m.state, Leaving | Left)),
        vnodes_per_weight,
    );
    let reachable = members
        .iter()
        .filter(|m| !matches!(m.state, Down | Left))
        .map(|m| m.info.id.clone())
        .collect();
    let healthy = members
        .iter()
        .filter(|m| !matches!(m.state, Suspect | Down | Left))
        .map(|m| m.info.id.clone())
        .collect();
    let peers = members
        .iter()
        .filter(|m| m.state != Left)
        .map(|m| m.info.clone())
        .collect();
    ClusterView {
        read_ring,
        write_ring,
        reachable,
        healthy,
        peers,
    }
}

/// The `status` rows: state, heartbeat age and share of `ring` (the write
/// ring: where each member's data goes, joining members included).
pub fn status_rows(members: &[MemberView<'_>], ring: &Ring) -> Vec<MemberStatus> {
    let shares: BTreeMap<NodeId, f64> = ring.ownership().into_iter().collect();
    members
        .iter()
        .map(|m| MemberStatus {
            id: m.info.id.to_string(),
            addr: m.info.peer_addr.clone(),
            client_addr: m.info.client_addr.clone(),
            dc: m.info.dc.clone(),
            rack: m.info.rack.clone(),
            state: m.state.as_str().into(),
            ring_share: shares.get(&m.info.id).copied().unwrap_or(0.0),
            heartbeat_age_ms: m.heartbeat_age_ms,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(id: &str) -> MemberInfo {
        MemberInfo {
            id: NodeId::new(id).unwrap(),
            peer_addr: format!("127.0.0.1:{}", 7000 + id.len()),
            client_addr: String::new(),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        }
    }

    #[test]
    fn joining_writes_only_leaving_reads_only_down_unreachable() {
        let infos: Vec<_> = ["a", "b", "c", "d", "e"].iter().map(|i| info(i)).collect();
        let states = [
            MemberState::Alive,
            MemberState::Joining,
            MemberState::Leaving,
            MemberState::Down,
            MemberState::Left,
        ];
        let views: Vec<MemberView<'_>> = infos
            .iter()
            .zip(states)
            .map(|(info, state)| MemberView {
                info,
                state,
                heartbeat: 1,
                heartbeat_age_ms: 0,
                heard: true,
            })
            .collect();
        let v = cluster_view(&views, 8);
        let ids = |r: &Ring| {
            r.members()
                .iter()
                .map(|m| m.id.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&v.read_ring), vec!["a", "c", "d"]);
        assert_eq!(ids(&v.write_ring), vec!["a", "b", "d"]);
        let mut reachable: Vec<_> = v.reachable.iter().map(|n| n.to_string()).collect();
        reachable.sort();
        assert_eq!(reachable, vec!["a", "b", "c"]);
        assert_eq!(v.peers.len(), 4);
    }

    #[test]
    fn a_member_known_only_from_a_handshake_owns_no_range() {
        let infos: Vec<_> = ["a", "ghost"].iter().map(|i| info(i)).collect();
        let views: Vec<MemberView<'_>> = infos
            .iter()
            .map(|info| MemberView {
                info,
                state: MemberState::Alive,
                heartbeat: 0,
                heartbeat_age_ms: 0,
                heard: info.id.as_str() == "a",
            })
            .collect();
        let v = cluster_view(&views, 8);
        assert_eq!(v.read_ring.members().len(), 1);
        assert_eq!(v.write_ring.members().len(), 1);
        assert_eq!(v.peers.len(), 2, "still dialled, so that it can be heard");
    }
}
