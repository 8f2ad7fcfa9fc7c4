//! Who a request can ask: how this node sees each member (Dynamo §4.8.1),
//! what a quorum needs, and the refusals when too few can answer.

use super::fanout::{DcScope, Reach};
use super::quorum::{DcQuorum, Need};
use super::{placement, Replicator};
use crate::bridge::PokeLinks;
use crate::wire::client::{ClientError, Consistency, ErrorCode};
use crate::NodeId;

impl Replicator {
    /// How this node sees `node` for a request (Dynamo §4.8.1: its own
    /// view, on top of gossip's):
    /// - a member whose link from here is down or timing out is not asked;
    /// - a member gossip reports down is not asked either, unless its link
    ///   is up (a fresh handshake: it runs), when it is doubtful;
    /// - a suspect is doubtful: asked, and a stand-in too;
    /// - the rest, and this node, are usable.
    pub(super) fn reach(&self, node: &NodeId) -> Reach {
        if *node == self.own {
            Reach::Usable
        } else if self.links.unusable.contains(node) {
            Reach::Unusable
        } else if !self.reachable.contains(node) {
            if self.links.up.contains(node) {
                Reach::Doubtful
            } else {
                Reach::Unusable
            }
        } else if !self.healthy.contains(node) {
            Reach::Doubtful
        } else {
            Reach::Usable
        }
    }

    /// The primaries of a placement, each with how this node sees it.
    pub(super) fn classify(&self, primaries: &[NodeId]) -> Vec<(NodeId, Reach)> {
        primaries
            .iter()
            .map(|n| (n.clone(), self.reach(n)))
            .collect()
    }

    /// Stand-in candidates: the members of `beyond` this node sees as
    /// usable, in ring order.
    /// A request's per-DC scope and its stand-in candidates, or the refusal
    /// when too few of `primaries` (placed as `placement`) and stand-ins
    /// can give `needed` answers, `needed_primaries` of them from
    /// primaries: the per-DC shortfall first, as it names the data center
    /// at fault. The links of unusable primaries are poked either way.
    pub(super) fn quorum_or_refusal(
        &self,
        what: &str,
        placement: placement::Placement,
        primaries: &[(NodeId, Reach)],
        quorums: Vec<DcQuorum>,
        needed: usize,
        needed_primaries: usize,
    ) -> Result<(DcScope, Vec<NodeId>), ClientError> {
        let scope = self.scope(&placement.primaries, &placement.beyond, quorums);
        let spare = self.spare(placement.beyond);
        self.poke_unusable(primaries);
        let usable = primaries
            .iter()
            .filter(|(_, reach)| *reach != Reach::Unusable)
            .count();
        match self
            .refuse_dc_quorum(what, &scope, primaries, &spare)
            .or_else(|| self.refuse_quorum(what, usable, spare.len(), needed, needed_primaries))
        {
            Some(error) => Err(error),
            None => Ok((scope, spare)),
        }
    }

    fn spare(&self, beyond: Vec<NodeId>) -> Vec<NodeId> {
        beyond
            .into_iter()
            .filter(|n| self.reach(n) == Reach::Usable)
            .collect()
    }

    pub(super) fn unavailable(&self, live: usize, needed: usize, what: &str) -> ClientError {
        ClientError::new(
            ErrorCode::Unavailable,
            format!(
                "only {live} of the key's {} replicas are reachable and {what} needs {needed}",
                self.options.n
            ),
        )
    }

    /// The up-front refusal of a request that cannot reach its quorum:
    /// `usable` primaries and `spare` stand-ins for `needed` replies, of
    /// which `needed_primaries` from primaries.
    /// The primaries a request will not ask because their links are down
    /// or timing out: each link is poked to dial now if it is due (a call
    /// would have done it; the coordinator makes none), so a healed link is
    /// found at the next request rather than at the next backoff.
    fn poke_unusable(&self, primaries: &[(NodeId, Reach)]) {
        let nodes: Vec<NodeId> = primaries
            .iter()
            .filter(|(_, reach)| *reach == Reach::Unusable)
            .map(|(node, _)| node.clone())
            .collect();
        if !nodes.is_empty() {
            self.replicas.bridge.do_send(PokeLinks { nodes });
        }
    }

    fn refuse_quorum(
        &self,
        what: &str,
        usable: usize,
        spare: usize,
        needed: usize,
        needed_primaries: usize,
    ) -> Option<ClientError> {
        if usable < needed_primaries {
            let mut error = self.unavailable(usable, needed_primaries, what);
            error
                .message
                .push_str(" from the key's own replicas (pr/pw)");
            return Some(error);
        }
        if usable + spare < needed {
            let mut error = self.unavailable(usable, needed, what);
            error.message.push_str(&format!(
                " (and {spare} stand-in(s) are reachable past them)"
            ));
            return Some(error);
        }
        None
    }

    /// The counts a request waits for: its consistency level's, else
    /// `count` (its `r` / `w`, or the node's default) and `dc_quorums` (a
    /// forwarded write's).
    pub(super) fn need(
        &self,
        consistency: Option<Consistency>,
        count: usize,
        dc_quorums: Vec<DcQuorum>,
    ) -> Result<Need, ClientError> {
        match consistency {
            Some(level) => Need::for_level(
                level,
                self.options.n,
                &self.options.dc_replication,
                &self.options.dc,
            ),
            None => Ok(Need {
                needed: count,
                dcs: dc_quorums,
            }),
        }
    }

    /// The per-DC scope of a request over `primaries` and `beyond` (empty
    /// without per-DC replication).
    fn scope(&self, primaries: &[NodeId], beyond: &[NodeId], quorums: Vec<DcQuorum>) -> DcScope {
        if self.options.dc_replication.is_empty() {
            return DcScope::default();
        }
        let dc_of = primaries
            .iter()
            .chain(beyond)
            .filter_map(|n| {
                let dc = self
                    .write_ring
                    .dc_of(n)
                    .or_else(|| self.read_ring.dc_of(n))?;
                Some((n.clone(), dc.to_owned()))
            })
            .collect();
        DcScope { dc_of, quorums }
    }

    /// The up-front refusal of a request whose per-DC quorum cannot be
    /// reached with the replicas (and stand-ins) reachable in that DC.
    fn refuse_dc_quorum(
        &self,
        what: &str,
        scope: &DcScope,
        primaries: &[(NodeId, Reach)],
        spare: &[NodeId],
    ) -> Option<ClientError> {
        let (dc, reachable, needed) = scope.shortfall(primaries, spare)?;
        Some(ClientError::new(
            ErrorCode::Unavailable,
            format!(
                "only {reachable} of the key's replicas in {dc} are reachable (stand-ins \
                 included) and {what} needs {needed} there"
            ),
        ))
    }

    /// Why a write forwarded to this node is refused untouched (`None`: it
    /// is coordinated here): this node is not a replica of `key` (the ring
    /// changed on the way) or mints no new versions now.
    pub(super) fn forwarded_refusal_for(&self, key: &[u8]) -> Option<String> {
        let placement =
            placement::for_write(&self.read_ring, &self.write_ring, self.options.n, key);
        let replica = placement.primaries.contains(&self.own);
        (!replica || self.not_minting.is_some()).then(|| self.forwarded_refusal(replica))
    }

    /// The refusal text of a forwarded write this node cannot coordinate.
    pub(super) fn forwarded_refusal(&self, replica: bool) -> String {
        match &self.not_minting {
            Some(reason) if replica => format!("this replica mints no new versions now ({reason})"),
            _ => "forwarded write reached a node that is not a replica of the key (ring changing?)"
                .into(),
        }
    }
}
