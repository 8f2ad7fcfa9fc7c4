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

use actix::prelude::*;
use tracing::{info, warn};

use super::{refused, FailureDetector, MemberState};
use crate::repair::handoff::plan_transfers;
use crate::repair::{Direction, StreamTransfers};
use crate::wire::client::ClientError;

/// Where this node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifecycle {
    /// Entering the cluster; `streaming` while a pull is under way.
    Joining { since_ms: u64, streaming: bool },
    /// A full member.
    Serving,
    /// Handing off; `streaming` while a push is under way.
    Leaving { since_ms: u64, streaming: bool },
    /// Out of the cluster (the process may be stopped).
    Left,
}

/// Asks this node to leave the cluster: hand off its ranges, then go.
/// Answers at once; `status` shows `leaving`, then `left`.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Leave;

impl FailureDetector {
    /// Called every tick: starts the next step when its time has come.
    pub(super) fn advance_lifecycle(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        match self.lifecycle {
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
                    let now = act.clock.now_ms();
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
        let now = self.clock.now_ms();
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
