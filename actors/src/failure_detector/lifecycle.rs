//! The node's own life cycle: joining -> serving -> leaving -> left.
//!
//! A joining node announces itself (`joining` in gossip, so coordinators
//! start sending it writes for the ranges it will own), waits
//! `join_settle_ms` for that news to spread, pulls each range it gains from
//! the replica it replaces (see `repair::handoff`), and only then becomes
//! `alive`, which puts it in the read ring. A leaving node does the mirror
//! image: `leaving`, settle, push each range it holds to the replica that
//! takes its place, then `left`. A failed transfer is retried on a later
//! tick; the node never declares itself ready with a range missing.
//!
//! A cluster whose nodes start together has no serving member to stream
//! from. A joining node that, once bootstrapped, has heard from other
//! members and finds none of them serving (all `joining`) does not wait
//! `join_settle_ms`: it pulls each range it owns from every other
//! reachable owner of it in the write ring (any of them may hold writes
//! made before this node was announced: a fourth node joining a cluster
//! that is itself still joining), then serves. For nodes that really
//! started together those are scans of empty stores. Until a range has a
//! serving owner, reads use its joining owners (`replicator::placement`),
//! so nothing is unreadable meanwhile.
//!
//! An owner that stops replicating a range (its read ring changed: a
//! joiner took its place) pushes the range to each new replica
//! ([`LostRanges`]): it may have taken writes the new owner missed, after
//! the new owner's pull or while a partition kept the two apart. A failed
//! push is retried on a later tick, while its target stays in the ring.
//!
//! `forget` is the operator's way out for a member that is gone for good:
//! it becomes `left` with a status version nothing can outrun in its
//! generation, and the nodes that take over its ranges pull them from the
//! remaining replicas (every remaining one, since any of them may hold
//! writes the others missed).

use actix::prelude::*;
use tracing::{info, warn};

use super::{FailureDetector, MemberState};
use crate::repair::handoff::{plan_transfers, pushes_for_lost_ranges, Transfer};
use crate::repair::{Direction, StreamTransfers};
use crate::ring::Ring;

mod lost_ranges;
mod requests;
pub(super) use lost_ranges::LostRanges;
pub use requests::{Forget, Leave};

/// Where this node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifecycle {
    /// Entering the cluster since `since_ms` (monotonic clock);
    /// `streaming` while a pull is under way.
    Joining { since_ms: u64, streaming: bool },
    /// A full member.
    Serving,
    /// Handing off since `since_ms` (monotonic clock); `streaming` while a
    /// push is under way.
    Leaving { since_ms: u64, streaming: bool },
    /// Out of the cluster (the process may be stopped).
    Left,
}

impl Lifecycle {
    /// The `status` spelling.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Joining {
                streaming: false, ..
            } => "joining",
            Lifecycle::Joining {
                streaming: true, ..
            } => "joining: streaming",
            Lifecycle::Serving => "serving",
            Lifecycle::Leaving {
                streaming: false, ..
            } => "leaving",
            Lifecycle::Leaving {
                streaming: true, ..
            } => "leaving: streaming",
            Lifecycle::Left => "left",
        }
    }

    /// Called every tick: the transfer to start now, if its time has come.
    /// A returned step is under way from then on (`streaming`) until
    /// [`Lifecycle::on_transfers_done`]; no second one starts meanwhile.
    pub(super) fn tick(
        &mut self,
        now_ms: u64,
        settle_ms: u64,
        cluster: &impl ClusterFacts,
    ) -> Option<LifecycleStep> {
        let step = match *self {
            Lifecycle::Joining {
                streaming: false, ..
            } if cluster.bootstrapped() && cluster.nobody_serves() => {
                LifecycleStep::PullFromEveryOwner
            }
            // Plan only once we know the cluster: a joiner that has heard
            // from nobody would think it owns everything.
            Lifecycle::Joining {
                since_ms,
                streaming: false,
            } if now_ms >= since_ms.saturating_add(settle_ms) && cluster.knows_others() => {
                LifecycleStep::PullReplaced
            }
            Lifecycle::Leaving {
                since_ms,
                streaming: false,
            } if now_ms >= since_ms.saturating_add(settle_ms) => LifecycleStep::Push,
            _ => return None,
        };
        self.set_streaming(true);
        Some(step)
    }

    /// A transfer this machine started has ended. On success the node
    /// moves on and the returned status is what it gossips about itself
    /// now; on failure it stays where it is and the next tick retries.
    pub(super) fn on_transfers_done(
        &mut self,
        direction: Direction,
        ok: bool,
    ) -> Option<MemberState> {
        self.set_streaming(false);
        if !ok {
            return None;
        }
        match (*self, direction) {
            (Lifecycle::Joining { .. }, Direction::Pull) => {
                *self = Lifecycle::Serving;
                Some(MemberState::Alive)
            }
            (Lifecycle::Leaving { .. }, Direction::Push) => {
                *self = Lifecycle::Left;
                Some(MemberState::Left)
            }
            _ => None,
        }
    }

    /// The operator asked the node to leave. `Ok(Some(status))`: leaving
    /// starts now and the node gossips `status`; `Ok(None)`: it is already
    /// leaving or gone; `Err`: it cannot leave yet.
    pub(super) fn on_leave(&mut self, now_ms: u64) -> Result<Option<MemberState>, &'static str> {
        match *self {
            Lifecycle::Serving => {
                *self = Lifecycle::Leaving {
                    since_ms: now_ms,
                    streaming: false,
                };
                Ok(Some(MemberState::Leaving))
            }
            Lifecycle::Joining { .. } => Err("this node is still joining; it can leave once alive"),
            Lifecycle::Leaving { .. } | Lifecycle::Left => Ok(None),
        }
    }

    fn set_streaming(&mut self, on: bool) {
        match self {
            Lifecycle::Joining { streaming, .. } | Lifecycle::Leaving { streaming, .. } => {
                *streaming = on
            }
            _ => {}
        }
    }
}

/// What the life cycle needs to know about the cluster, asked only when
/// the answer matters (computing `nobody_serves` walks the membership).
pub(super) trait ClusterFacts {
    /// The node has heard from its seeds (or has none to hear from).
    fn bootstrapped(&self) -> bool;
    /// Other members are known first-hand and none of them serves yet.
    fn nobody_serves(&self) -> bool;
    /// Some other member is known at all.
    fn knows_others(&self) -> bool;
}

/// A transfer the life cycle wants started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LifecycleStep {
    /// Nobody serves yet (a cluster starting together): pull each range
    /// this node owns from every other reachable owner of it.
    PullFromEveryOwner,
    /// Pull each range this node gains from the replica it replaces.
    PullReplaced,
    /// Push each range this node holds to the replica taking its place.
    Push,
}

impl FailureDetector {
    /// After the read ring changed from `before`: the ranges this node no
    /// longer replicates join the pushes it owes.
    pub(super) fn note_lost_ranges(&mut self, before: &Ring) {
        if self.lifecycle == Lifecycle::Left {
            return;
        }
        let owed = pushes_for_lost_ranges(
            before,
            &self.view.read_ring,
            self.options.replicas,
            &self.own.id,
        );
        if owed.is_empty() {
            return;
        }
        let added = self.lost.add(owed);
        if added > 0 {
            let span = self.span.clone();
            let _span = span.enter();
            info!(
                ranges = added,
                "this node stopped replicating some ranges: pushing them to their new replicas"
            );
        }
    }

    /// Called every tick: starts the next push of a lost range, if one is
    /// owed and none is under way.
    pub(super) fn push_lost_ranges(&mut self, ctx: &mut Context<Self>) {
        let write_ring = self.view.write_ring.clone();
        let read_ring = self.view.read_ring.clone();
        let healthy = self.view.healthy.clone();
        let Some(batch) = self.lost.next_batch(
            |node| crate::replicator::placement::is_placed(&read_ring, &write_ring, node),
            |node| healthy.contains(node),
        ) else {
            return;
        };
        let call = self.repair.send(StreamTransfers {
            transfers: batch.clone(),
            direction: Direction::Push,
            timeout_ms: self.options.stream_timeout_ms,
        });
        ctx.spawn(call.into_actor(self).map(move |result, act, _ctx| {
            let span = act.span.clone();
            let _span = span.enter();
            let target = &batch[0].target;
            let ok = matches!(result, Ok(Ok(_)));
            match &result {
                Ok(Ok(stats)) => info!(
                    peer = %target,
                    ranges = batch.len(),
                    keys = stats.keys,
                    bytes = stats.bytes,
                    "pushed ranges this node no longer replicates"
                ),
                Ok(Err(e)) => warn!(peer = %target, error = %e,
                    "push of ranges this node no longer replicates failed; retrying on a later tick"),
                Err(e) => warn!(error = %e, "repair actor unavailable; retrying"),
            }
            act.lost.finish(&batch, ok);
        }));
    }

    /// Called every tick: carries out the life cycle's next step, if any.
    pub(super) fn advance_lifecycle(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.monotonic_ms();
        let mut life = self.lifecycle;
        let step = life.tick(now, self.options.join_settle_ms, &*self);
        self.lifecycle = life;
        let transfers = match step {
            None => return,
            Some(LifecycleStep::PullFromEveryOwner) => {
                let span = self.span.clone();
                let _span = span.enter();
                info!("no member serves yet (a cluster starting together): pulling this node's ranges from their other joining owners, then serving");
                self.pulls_from_every_owner()
            }
            Some(LifecycleStep::PullReplaced) => self.planned_transfers(Direction::Pull),
            Some(LifecycleStep::Push) => self.planned_transfers(Direction::Push),
        };
        let direction = match step {
            Some(LifecycleStep::Push) => Direction::Push,
            _ => Direction::Pull,
        };
        self.start_transfers(direction, transfers, ctx);
    }
}

impl ClusterFacts for FailureDetector {
    fn bootstrapped(&self) -> bool {
        self.bootstrap.is_ready()
    }

    fn knows_others(&self) -> bool {
        self.view.peers.iter().any(|p| p.id != self.own.id)
    }

    /// Whether other members are known first-hand and none of them serves
    /// (each is still joining): nobody holds data this node lacks.
    fn nobody_serves(&self) -> bool {
        let others: Vec<MemberState> = self
            .gossip
            .snapshot()
            .into_iter()
            .filter(|m| m.info.id != self.own.id && m.record.generation > 0)
            .map(|m| m.record.status)
            .filter(|s| *s != MemberState::Left)
            .collect();
        !others.is_empty() && others.iter().all(|s| *s == MemberState::Joining)
    }
}

impl FailureDetector {
    /// After a `forget` reached this node: pulls the ranges it gains from
    /// the forgotten member from every remaining replica of each.
    pub(super) fn rereplicate_forgotten(&mut self, changes: &[super::StateChange], before: &Ring) {
        let n = self.options.replicas;
        for change in changes {
            let gone = &change.node;
            if change.to != MemberState::Left
                || *gone == self.own.id
                || !self.gossip.is_forgotten(gone)
            {
                continue;
            }
            let mut pulls = Vec::new();
            for t in plan_transfers(before, &self.view.read_ring, n) {
                if t.target != self.own.id || t.source != *gone {
                    continue;
                }
                for source in before.preference_list_at(t.range.upto, n) {
                    if source != *gone && source != self.own.id {
                        pulls.push(Transfer {
                            range: t.range,
                            source,
                            target: self.own.id.clone(),
                        });
                    }
                }
            }
            let span = self.span.clone();
            let _span = span.enter();
            info!(peer = %gone, pulls = pulls.len(), "member forgotten: re-replicating the ranges this node takes over");
            if pulls.is_empty() {
                continue;
            }
            let gone = gone.clone();
            let call = self.repair.send(StreamTransfers {
                transfers: pulls,
                direction: Direction::Pull,
                timeout_ms: self.options.stream_timeout_ms,
            });
            actix::spawn(async move {
                match call.await {
                    Ok(Ok(stats)) => info!(peer = %gone, keys = stats.keys, bytes = stats.bytes,
                        "re-replication after forget done"),
                    Ok(Err(e)) => warn!(peer = %gone, error = %e,
                        "re-replication after forget failed; anti-entropy will finish it"),
                    Err(e) => warn!(peer = %gone, error = %e, "repair actor unavailable"),
                }
            });
        }
    }

    /// With no serving member: each range this node owns in the write
    /// ring, from every other owner it can reach.
    fn pulls_from_every_owner(&self) -> Vec<Transfer> {
        let n = self.options.replicas;
        let write_ring = &self.view.write_ring;
        let others: Vec<crate::ring::RingMember> = write_ring
            .members()
            .iter()
            .filter(|m| m.id != self.own.id)
            .cloned()
            .collect();
        let before = Ring::new(&others, self.options.vnodes_per_weight)
            .with_dc_replication(write_ring.dc_replication());
        let mut pulls = Vec::new();
        for t in plan_transfers(&before, write_ring, n) {
            if t.target != self.own.id {
                continue;
            }
            for source in write_ring.preference_list_at(t.range.upto, n) {
                if source != self.own.id && self.view.reachable.contains(&source) {
                    pulls.push(Transfer {
                        range: t.range,
                        source,
                        target: self.own.id.clone(),
                    });
                }
            }
        }
        pulls
    }

    /// The ranges this node pulls (joining) or pushes (leaving): the
    /// difference between the read ring and the write ring.
    fn planned_transfers(&self, direction: Direction) -> Vec<Transfer> {
        plan_transfers(
            &self.view.read_ring,
            &self.view.write_ring,
            self.options.replicas,
        )
        .into_iter()
        .filter(|t| match direction {
            Direction::Pull => t.target == self.own.id,
            Direction::Push => t.source == self.own.id,
        })
        .collect()
    }

    fn start_transfers(
        &mut self,
        direction: Direction,
        transfers: Vec<Transfer>,
        ctx: &mut Context<Self>,
    ) {
        let span = self.span.clone();
        let _span = span.enter();
        info!(?direction, ranges = transfers.len(), "handoff starting");
        let call = self.repair.send(StreamTransfers {
            transfers,
            direction,
            timeout_ms: self.options.stream_timeout_ms,
        });
        ctx.spawn(call.into_actor(self).map(move |result, act, _ctx| {
            let span = act.span.clone();
            let _span = span.enter();
            let ok = matches!(result, Ok(Ok(_)));
            match &result {
                Ok(Ok(stats)) => info!(
                    ?direction,
                    keys = stats.keys,
                    bytes = stats.bytes,
                    "handoff done"
                ),
                Ok(Err(e)) => {
                    warn!(?direction, error = %e, "handoff failed; retrying on a later tick")
                }
                Err(e) => warn!(?direction, error = %e, "repair actor unavailable; retrying"),
            }
            if let Some(status) = act.lifecycle.on_transfers_done(direction, ok) {
                let now = act.clock.monotonic_ms();
                let changes = act.gossip.set_own_status(status, now);
                act.apply(changes);
                if act.lifecycle == Lifecycle::Left {
                    info!("left the cluster: this node holds no ranges now and may be stopped");
                }
            }
        }));
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
