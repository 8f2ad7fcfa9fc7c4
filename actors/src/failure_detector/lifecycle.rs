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
//! `forget` is the operator's way out for a member that is gone for good:
//! it becomes `left` with a status version nothing can outrun in its
//! generation, and the nodes that take over its ranges pull them from the
//! remaining replicas (every remaining one, since any of them may hold
//! writes the others missed).

use actix::prelude::*;
use tracing::{info, warn};

use super::{refused, FailureDetector, MemberState};
use crate::repair::handoff::{plan_transfers, Transfer};
use crate::repair::{Direction, StreamTransfers};
use crate::ring::Ring;
use crate::wire::client::ClientError;
use crate::NodeId;

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
}

/// Asks this node to leave the cluster: hand off its ranges, then go.
/// Answers at once; `status` shows `leaving`, then `left`.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Leave;

/// Admin: removes a dead member for good; its ranges are re-replicated
/// from the remaining replicas.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Forget {
    /// The member to remove.
    pub node: NodeId,
}

impl FailureDetector {
    /// Called every tick: starts the next step when its time has come.
    pub(super) fn advance_lifecycle(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.monotonic_ms();
        match self.lifecycle {
            Lifecycle::Joining {
                streaming: false, ..
            } if self.bootstrap.is_ready() && self.nobody_serves() => {
                let span = self.span.clone();
                let _span = span.enter();
                info!("no member serves yet (a cluster starting together): pulling this node's ranges from their other joining owners, then serving");
                let transfers = self.pulls_from_every_owner();
                self.start_transfers(Direction::Pull, transfers, ctx);
            }
            Lifecycle::Joining {
                since_ms,
                streaming: false,
            } if now >= since_ms + self.options.join_settle_ms => {
                // Plan only once we know the cluster: a joiner that has
                // heard from nobody would think it owns everything.
                let knows_others = self.view.peers.iter().any(|p| p.id != self.own.id);
                if knows_others {
                    self.start_stream(Direction::Pull, ctx);
                }
            }
            Lifecycle::Leaving {
                since_ms,
                streaming: false,
            } if now >= since_ms + self.options.join_settle_ms => {
                self.start_stream(Direction::Push, ctx);
            }
            _ => {}
        }
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
        let before = Ring::new(&others, self.options.vnodes_per_weight);
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

    fn start_stream(&mut self, direction: Direction, ctx: &mut Context<Self>) {
        let transfers: Vec<_> = plan_transfers(
            &self.view.read_ring,
            &self.view.write_ring,
            self.options.replicas,
        )
        .into_iter()
        .filter(|t| match direction {
            Direction::Pull => t.target == self.own.id,
            Direction::Push => t.source == self.own.id,
        })
        .collect();
        self.start_transfers(direction, transfers, ctx);
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
        self.set_streaming(true);
        let call = self.repair.send(StreamTransfers {
            transfers,
            direction,
            timeout_ms: self.options.stream_timeout_ms,
        });
        ctx.spawn(call.into_actor(self).map(move |result, act, _ctx| {
            let span = act.span.clone();
            let _span = span.enter();
            act.set_streaming(false);
            match result {
                Ok(Ok(stats)) => {
                    info!(
                        ?direction,
                        keys = stats.keys,
                        bytes = stats.bytes,
                        "handoff done"
                    );
                    let now = act.clock.monotonic_ms();
                    let (next_state, next_life) = match direction {
                        Direction::Pull => (MemberState::Alive, Lifecycle::Serving),
                        Direction::Push => (MemberState::Left, Lifecycle::Left),
                    };
                    act.lifecycle = next_life;
                    let changes = act.gossip.set_own_status(next_state, now);
                    act.apply(changes);
                    if next_life == Lifecycle::Left {
                        info!("left the cluster: this node holds no ranges now and may be stopped");
                    }
                }
                Ok(Err(e)) => {
                    warn!(?direction, error = %e, "handoff failed; retrying on a later tick")
                }
                Err(e) => warn!(?direction, error = %e, "repair actor unavailable; retrying"),
            }
        }));
    }

    fn set_streaming(&mut self, on: bool) {
        match &mut self.lifecycle {
            Lifecycle::Joining { streaming, .. } | Lifecycle::Leaving { streaming, .. } => {
                *streaming = on
            }
            _ => {}
        }
    }
}

impl Handler<Leave> for FailureDetector {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, _: Leave, _ctx: &mut Self::Context) -> Self::Result {
        match self.lifecycle {
            Lifecycle::Serving => {}
            Lifecycle::Joining { .. } => {
                return Err(refused(
                    "this node is still joining; it can leave once alive",
                ))
            }
            Lifecycle::Leaving { .. } => return Ok(()),
            Lifecycle::Left => return Ok(()),
        }
        let now = self.clock.monotonic_ms();
        self.lifecycle = Lifecycle::Leaving {
            since_ms: now,
            streaming: false,
        };
        let span = self.span.clone();
        let _span = span.enter();
        info!("leaving the cluster: handing off every range first");
        let changes = self.gossip.set_own_status(MemberState::Leaving, now);
        self.apply(changes);
        Ok(())
    }
}

impl Handler<Forget> for FailureDetector {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, msg: Forget, _ctx: &mut Self::Context) -> Self::Result {
        if msg.node == self.own.id {
            return Err(refused(
                "a node cannot forget itself; ask it to leave instead",
            ));
        }
        let now = self.clock.monotonic_ms();
        let changes = self.gossip.forget(&msg.node, now).map_err(refused)?;
        let span = self.span.clone();
        let _span = span.enter();
        info!(peer = %msg.node, "forgetting a dead member for good (admin forget)");
        self.apply(changes);
        Ok(())
    }
}
