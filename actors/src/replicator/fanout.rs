//! Fan-out with sloppy quorum, pure: which replicas a request asks, and
//! which stand-ins it asks for the ones that cannot answer. The read and
//! the write coordinators are built on it; their futures only carry out
//! its [`Ask`]s and feed back the answers (raft-rs style: events in,
//! actions out, no I/O here).
//!
//! A request starts with the key's primaries, each classified by the
//! coordinator's view of it ([`Reach`]): usable ones are asked, doubtful
//! ones (suspected by gossip) are asked *and* get a stand-in at once,
//! unusable ones only get a stand-in. Stand-ins are taken in ring order
//! from `spare`, the usable nodes clockwise past the preference list (the
//! chapter's "the next healthy node"). Depending on the [`SloppyPolicy`],
//! a replica that fails, or a primary still silent when the stand-in
//! timer fires, gets a stand-in too. Every stand-in is asked on behalf of
//! one primary (`Ask::stand_in_for`), which a write turns into a hint.
//!
//! A read may ask only as many primaries as its quorum needs
//! ([`Asking::Needed`], Cassandra's way): the usable ones first, in the
//! order given (the coordinator puts itself first), the others held in
//! reserve. A reserve primary is asked in place of one that fails, and in
//! place of one still silent when the read's retry timer (or the stand-in
//! timer) fires: a speculative retry, whatever the sloppy policy.
//! Stand-ins come only once the reserve is spent. A write always asks
//! every primary.
//!
//! With a [`DcScope`] (per-DC replication), a primary's stand-in is the
//! first spare node *in the primary's data center*, and the tally also
//! counts successes per data center for the DC-aware consistency levels.
//!
//! Invariants (checked by the tests below and the property test in
//! `coordinator_property_tests.rs`): a node is asked at most once per request;
//! every stand-in stands in for a primary; [`Fanout::verdict`] is
//! `Reached` only with `needed` successes, `needed_primaries` of them from
//! primaries.

use std::collections::VecDeque;

use super::quorum::{DcQuorum, Role, Tally, Verdict};
use crate::replicas::ReplicaError;
use crate::NodeId;

/// How the coordinator sees one primary when the request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Ask it.
    Usable,
    /// Ask it, and ask a stand-in for it at once (gossip suspects it).
    Doubtful,
    /// Do not ask it; ask a stand-in for it.
    Unusable,
}

/// When stand-ins are asked beyond the ones for primaries known missing
/// at the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SloppyPolicy {
    /// A replica whose answer is a failure gets a stand-in at once.
    pub replace_failed: bool,
    /// When the stand-in timer fires, every primary still silent gets one.
    pub replace_silent: bool,
}

/// Which primaries a request asks when it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Asking {
    /// Every primary that may answer (writes; reads with `read_asks =
    /// all`, which read-repairs every replica a read reaches).
    #[default]
    Every,
    /// Only as many as the quorum needs, the others in reserve (reads by
    /// default). Per-DC quorums always ask every primary.
    Needed,
}

/// Ask `node` (on behalf of `stand_in_for`, when it is a stand-in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The replica to ask.
    pub node: NodeId,
    /// The primary it stands in for (`None`: it is a primary).
    pub stand_in_for: Option<NodeId>,
}

/// The data centers a request spans, when replication is per DC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DcScope {
    /// The data center of each primary and stand-in candidate (empty: one
    /// replication factor over the whole ring; stand-ins from anywhere).
    pub dc_of: Vec<(NodeId, String)>,
    /// Successes needed per data center (the consistency level's).
    pub quorums: Vec<DcQuorum>,
}

impl DcScope {
    /// The data center of `node` (`None`: unknown, or no per-DC scope).
    pub fn dc(&self, node: &NodeId) -> Option<&str> {
        self.dc_of
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, dc)| dc.as_str())
    }

    /// The first data center whose quorum the request cannot reach even
    /// if every primary it will ask there and every stand-in candidate of
    /// that DC answers: `(dc, reachable, needed)`. Checked before anything
    /// is sent, so `each_quorum` with a DC down answers `unavailable` at
    /// once.
    pub fn shortfall(
        &self,
        primaries: &[(NodeId, Reach)],
        spare: &[NodeId],
    ) -> Option<(String, usize, usize)> {
        self.quorums.iter().find_map(|q| {
            let in_dc = |n: &NodeId| self.dc(n) == Some(q.dc.as_str());
            let usable = primaries
                .iter()
                .filter(|(n, reach)| *reach != Reach::Unusable && in_dc(n))
                .count();
            // A stand-in only covers an unusable primary of its DC.
            let unusable = primaries
                .iter()
                .filter(|(n, reach)| *reach == Reach::Unusable && in_dc(n))
                .count();
            let stand_ins = spare.iter().filter(|n| in_dc(n)).count().min(unusable);
            (usable + stand_ins < q.needed).then(|| (q.dc.clone(), usable + stand_ins, q.needed))
        })
    }
}

#[derive(Clone, Debug)]
struct Target {
    node: NodeId,
    role: Role,
    /// The data center it counts for (a stand-in: its primary's).
    dc: Option<String>,
    /// The primary a stand-in stands in for.
    stand_in_for: Option<NodeId>,
    /// Answered (either way).
    answered: bool,
    /// A stand-in was asked for it.
    covered: bool,
}

/// One request's fan-out.
#[derive(Clone, Debug)]
pub struct Fanout {
    tally: Tally,
    targets: Vec<Target>,
    /// Primaries not asked (unusable), still to be covered if possible.
    uncovered: Vec<NodeId>,
    spare: VecDeque<NodeId>,
    /// Primaries that may answer but were not asked yet
    /// ([`Asking::Needed`]), in the order to ask them.
    reserve: VecDeque<NodeId>,
    policy: SloppyPolicy,
    scope: DcScope,
}

impl Fanout {
    /// Starts a request needing `needed` successes (`needed_primaries` of
    /// them from primaries) over `primaries`, with `spare` stand-in
    /// candidates in ring order. `already_asked` primaries (the local
    /// replica, whose write the coordinator started itself) count as asked
    /// without an [`Ask`]. Returns the fan-out and what to ask now.
    pub fn start(
        needed: usize,
        needed_primaries: usize,
        primaries: &[(NodeId, Reach)],
        already_asked: &[NodeId],
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, Vec<Ask>) {
        Self::start_in(
            DcScope::default(),
            needed,
            needed_primaries,
            primaries,
            already_asked,
            spare,
            policy,
        )
    }

    /// [`Fanout::start`] within `scope`: stand-ins from each primary's own
    /// data center, and `scope.quorums` needed on top of `needed`.
    pub fn start_in(
        scope: DcScope,
        needed: usize,
        needed_primaries: usize,
        primaries: &[(NodeId, Reach)],
        already_asked: &[NodeId],
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, Vec<Ask>) {
        let mut fanout = Self::empty(scope, needed, needed_primaries, primaries, spare, policy);
        let mut asks = Vec::new();
        for (node, reach) in primaries {
            if *reach == Reach::Unusable {
                fanout.uncovered.push(node.clone());
                continue;
            }
            fanout.target_primary(node);
            if !already_asked.contains(node) {
                asks.push(Ask {
                    node: node.clone(),
                    stand_in_for: None,
                });
            }
        }
        let uncovered = std::mem::take(&mut fanout.uncovered);
        for owner in uncovered {
            fanout.cover(&owner, &mut asks);
        }
        for (node, reach) in primaries {
            if *reach == Reach::Doubtful {
                fanout.cover(node, &mut asks);
            }
        }
        (fanout, asks)
    }

    /// A read's fan-out ([`Asking::Needed`]): asks `max(needed,
    /// needed_primaries)` primaries, usable ones before doubtful ones and
    /// otherwise in the order of `primaries`; the rest wait in reserve.
    /// Stand-ins are asked at the start only for the primaries missing
    /// from that count. With per-DC quorums it is [`Fanout::start_in`].
    pub fn start_needed_in(
        scope: DcScope,
        needed: usize,
        needed_primaries: usize,
        primaries: &[(NodeId, Reach)],
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, Vec<Ask>) {
        if !scope.quorums.is_empty() {
            return Self::start_in(
                scope,
                needed,
                needed_primaries,
                primaries,
                &[],
                spare,
                policy,
            );
        }
        let mut fanout = Self::empty(scope, needed, needed_primaries, primaries, spare, policy);
        let want = needed.max(needed_primaries);
        let mut asks = Vec::new();
        let in_order = [Reach::Usable, Reach::Doubtful]
            .into_iter()
            .flat_map(|wanted| primaries.iter().filter(move |(_, r)| *r == wanted));
        for (node, reach) in in_order {
            if fanout.primaries_asked() >= want {
                fanout.reserve.push_back(node.clone());
                continue;
            }
            fanout.target_primary(node);
            asks.push(Ask {
                node: node.clone(),
                stand_in_for: None,
            });
            if *reach == Reach::Doubtful {
                fanout.cover(node, &mut asks);
            }
        }
        // Too few primaries may answer: stand-ins for as many unusable
        // ones as are missing.
        let missing = want.saturating_sub(fanout.primaries_asked());
        let unusable: Vec<NodeId> = primaries
            .iter()
            .filter(|(_, r)| *r == Reach::Unusable)
            .map(|(n, _)| n.clone())
            .take(missing)
            .collect();
        for owner in unusable {
            fanout.cover(&owner, &mut asks);
        }
        (fanout, asks)
    }

    fn empty(
        scope: DcScope,
        needed: usize,
        needed_primaries: usize,
        primaries: &[(NodeId, Reach)],
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> Self {
        Fanout {
            tally: Tally::new(needed, needed_primaries).with_dc_quorums(&scope.quorums),
            targets: Vec::with_capacity(primaries.len()),
            uncovered: Vec::new(),
            spare: spare
                .into_iter()
                .filter(|n| !primaries.iter().any(|(p, _)| p == n))
                .collect(),
            reserve: VecDeque::new(),
            policy,
            scope,
        }
    }

    /// Primaries asked so far (their stand-ins not counted).
    fn primaries_asked(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.role == Role::Primary)
            .count()
    }

    /// Counts `node` as an asked primary.
    fn target_primary(&mut self, node: &NodeId) {
        let dc = self.scope.dc(node).map(str::to_owned);
        self.tally.asked_in(Role::Primary, dc.as_deref());
        self.targets.push(Target {
            node: node.clone(),
            role: Role::Primary,
            dc,
            stand_in_for: None,
            answered: false,
            covered: false,
        });
    }

    /// Asks the next reserve primary, if any; whether it did.
    fn ask_reserve(&mut self, asks: &mut Vec<Ask>) -> bool {
        let Some(node) = self.reserve.pop_front() else {
            return false;
        };
        self.target_primary(&node);
        asks.push(Ask {
            node,
            stand_in_for: None,
        });
        true
    }

    /// Asks a stand-in for `owner` if a spare node is left; records
    /// `owner` as uncovered otherwise.
    fn cover(&mut self, owner: &NodeId, asks: &mut Vec<Ask>) {
        if let Some(target) = self.targets.iter_mut().find(|t| t.node == *owner) {
            target.covered = true;
        }
        let dc = self.scope.dc(owner).map(str::to_owned);
        // Per DC, a primary's stand-in comes from its own data center.
        let next = match &dc {
            Some(dc) => self
                .spare
                .iter()
                .position(|n| self.scope.dc(n) == Some(dc.as_str())),
            None => (!self.spare.is_empty()).then_some(0),
        };
        let Some(stand_in) = next.and_then(|i| self.spare.remove(i)) else {
            if !self.uncovered.contains(owner) {
                self.uncovered.push(owner.clone());
            }
            return;
        };
        self.tally.asked_in(Role::StandIn, dc.as_deref());
        self.targets.push(Target {
            node: stand_in.clone(),
            role: Role::StandIn,
            dc,
            stand_in_for: Some(owner.clone()),
            answered: false,
            covered: false,
        });
        asks.push(Ask {
            node: stand_in,
            stand_in_for: Some(owner.clone()),
        });
    }

    /// Records `node`'s answer; returns the stand-ins to ask now.
    pub fn on_result(&mut self, node: &NodeId, result: Result<(), ReplicaError>) -> Vec<Ask> {
        let mut asks = Vec::new();
        let Some(target) = self
            .targets
            .iter_mut()
            .find(|t| t.node == *node && !t.answered)
        else {
            return asks;
        };
        target.answered = true;
        let (role, owner, dc) = (target.role, target.stand_in_for.clone(), target.dc.clone());
        match result {
            Ok(()) => self.tally.success_in(role, dc.as_deref()),
            Err(error) => {
                self.tally
                    .failure_in(node.clone(), role, dc.as_deref(), error);
                if self.ask_reserve(&mut asks) {
                    // A primary that was held back answers in its place.
                } else if self.policy.replace_failed {
                    // A failed stand-in is replaced for the primary it
                    // stood in for; a failed primary gets its first one.
                    let owner = owner.unwrap_or_else(|| node.clone());
                    let already = role == Role::Primary
                        && self.targets.iter().any(|t| t.node == owner && t.covered);
                    if !already {
                        self.cover(&owner, &mut asks);
                    }
                }
            }
        }
        asks
    }

    /// The stand-in timer fired: every primary that has not answered and
    /// has no stand-in gets a reserve primary asked in its place while the
    /// reserve lasts, then (with `replace_silent`) a stand-in.
    pub fn on_stand_in_timer(&mut self) -> Vec<Ask> {
        let mut asks = Vec::new();
        for owner in self.silent_primaries() {
            if self.ask_reserve(&mut asks) {
                self.mark_covered(&owner);
            } else if self.policy.replace_silent {
                self.cover(&owner, &mut asks);
            }
        }
        asks
    }

    /// The read's retry timer fired (before the stand-in timer): every
    /// primary that has not answered and has no stand-in gets a reserve
    /// primary asked in its place while the reserve lasts; no stand-ins.
    pub fn on_retry_timer(&mut self) -> Vec<Ask> {
        let mut asks = Vec::new();
        for owner in self.silent_primaries() {
            if !self.ask_reserve(&mut asks) {
                break;
            }
            self.mark_covered(&owner);
        }
        asks
    }

    fn silent_primaries(&self) -> Vec<NodeId> {
        self.targets
            .iter()
            .filter(|t| t.role == Role::Primary && !t.answered && !t.covered)
            .map(|t| t.node.clone())
            .collect()
    }

    fn mark_covered(&mut self, owner: &NodeId) {
        if let Some(target) = self.targets.iter_mut().find(|t| t.node == *owner) {
            target.covered = true;
        }
    }

    /// Whether primaries wait in reserve (the stand-in timer is worth
    /// setting even without `replace_silent`).
    pub fn has_reserve(&self) -> bool {
        !self.reserve.is_empty()
    }

    /// Where the quorum stands. `Impossible` only once no stand-in is left
    /// that could still make it.
    pub fn verdict(&self) -> Verdict {
        self.tally.verdict()
    }

    /// Every replica asked has answered.
    pub fn all_answered(&self) -> bool {
        self.tally.outstanding() == 0
    }

    /// The counts, for the error message.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The role of `node` in this request (`None`: not asked).
    pub fn role_of(&self, node: &NodeId) -> Option<Role> {
        self.targets
            .iter()
            .find(|t| t.node == *node)
            .map(|t| t.role)
    }

    /// Primaries that got no stand-in because the ring ran out.
    pub fn uncovered(&self) -> &[NodeId] {
        &self.uncovered
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
