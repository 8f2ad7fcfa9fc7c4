//! The membership table: who is in the cluster, where, and whether this node
//! can reach them. Pure data, persisted by the actor.
//!
//! Until gossip lands, reachability comes from the state of this node's own
//! outbound peer connection: `alive` while its handshake holds, `down`
//! otherwise. Known members stay on the ring while down, so keys keep their
//! owners; coordinators skip the unreachable ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ring::{Ring, RingMember};
use crate::wire::client::MemberStatus;
use crate::wire::peer::MemberInfo;
use crate::NodeId;

/// A member's state as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Reachable.
    Alive,
    /// Not reachable now.
    Down,
}

impl MemberState {
    /// The protocol spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Down => "down",
        }
    }
}

/// Every known member, keyed by id.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    own: Option<NodeId>,
    members: BTreeMap<NodeId, (MemberInfo, MemberState)>,
}

impl Membership {
    /// A table holding this node (always alive) and `known` (down until reached).
    pub fn new(own: MemberInfo, known: Vec<MemberInfo>) -> Self {
        let mut table = Self {
            own: Some(own.id.clone()),
            members: BTreeMap::new(),
        };
        for member in known {
            if member.id != own.id {
                table
                    .members
                    .insert(member.id.clone(), (member, MemberState::Down));
            }
        }
        table
            .members
            .insert(own.id.clone(), (own, MemberState::Alive));
        table
    }

    /// Records `member` (its latest description) in `state`; returns whether
    /// anything a subscriber cares about changed.
    pub fn record(&mut self, member: MemberInfo, state: Option<MemberState>) -> bool {
        if Some(&member.id) == self.own.as_ref() {
            return false;
        }
        match self.members.get_mut(&member.id) {
            Some((info, current)) => {
                let new_state = state.unwrap_or(*current);
                let changed = *info != member || *current != new_state;
                *info = member;
                *current = new_state;
                changed
            }
            None => {
                let id = member.id.clone();
                self.members
                    .insert(id, (member, state.unwrap_or(MemberState::Down)));
                true
            }
        }
    }

    /// Marks `node` down; returns whether it was alive.
    pub fn mark_down(&mut self, node: &NodeId) -> bool {
        match self.members.get_mut(node) {
            Some((_, state)) if *state == MemberState::Alive && Some(node) != self.own.as_ref() => {
                *state = MemberState::Down;
                true
            }
            _ => false,
        }
    }

    /// Ids of the members this node can reach (itself included).
    pub fn reachable(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, (_, s))| *s == MemberState::Alive)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every member's description.
    pub fn infos(&self) -> Vec<MemberInfo> {
        self.members.values().map(|(i, _)| i.clone()).collect()
    }

    /// The ring of every known member.
    pub fn ring(&self, vnodes_per_weight: u32) -> Ring {
        let members: Vec<RingMember> = self
            .members
            .values()
            .map(|(m, _)| RingMember {
                id: m.id.clone(),
                dc: m.dc.clone(),
                rack: m.rack.clone(),
                weight: m.weight,
            })
            .collect();
        Ring::new(&members, vnodes_per_weight)
    }

    /// What `status` shows.
    pub fn status(&self, ring: &Ring) -> Vec<MemberStatus> {
        let shares: BTreeMap<NodeId, f64> = ring.ownership().into_iter().collect();
        self.members
            .values()
            .map(|(m, state)| MemberStatus {
                id: m.id.to_string(),
                addr: m.peer_addr.clone(),
                client_addr: m.client_addr.clone(),
                dc: m.dc.clone(),
                rack: m.rack.clone(),
                state: state.as_str().into(),
                ring_share: shares.get(&m.id).copied().unwrap_or(0.0),
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(id: &str) -> MemberInfo {
        MemberInfo {
            id: NodeId::new(id).unwrap(),
            peer_addr: format!("{id}:1"),
            client_addr: format!("{id}:2"),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        }
    }

    #[test]
    fn known_members_start_down_and_self_is_alive() {
        let m = Membership::new(info("a"), vec![info("b"), info("a")]);
        assert_eq!(m.reachable(), vec![NodeId::new("a").unwrap()]);
        assert_eq!(m.infos().len(), 2);
        assert_eq!(m.ring(8).members().len(), 2);
    }

    #[test]
    fn record_and_mark_down_report_changes() {
        let mut m = Membership::new(info("a"), vec![]);
        assert!(m.record(info("b"), Some(MemberState::Alive)));
        assert!(!m.record(info("b"), Some(MemberState::Alive)));
        assert!(!m.record(info("b"), None));
        assert!(m.mark_down(&NodeId::new("b").unwrap()));
        assert!(!m.mark_down(&NodeId::new("b").unwrap()));
        assert!(
            !m.mark_down(&NodeId::new("a").unwrap()),
            "self is never down"
        );
        assert!(!m.record(info("a"), Some(MemberState::Down)));
    }
}
