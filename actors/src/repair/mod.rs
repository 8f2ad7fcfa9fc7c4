//! Repair: brings replicas back in line. Built so far: read repair — the
//! coordinator of a read hands over the merged version and the replicas
//! that answered stale, and Repair writes the merged version to each of
//! them (a merge on their side, so a replica that meanwhile took a newer
//! write loses nothing). Hinted handoff and Merkle anti-entropy join here.

pub mod handoff;
pub mod stream;

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use tracing::{debug, info, warn, Instrument};

use crate::failure_detector::MembershipChanged;
use crate::replicator::Replicas;
use crate::NodeId;

/// Read repair: write `object` to the `stale` replicas of `key`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadRepair {
    /// The key.
    pub key: Vec<u8>,
    /// The merged object, encoded.
    pub object: Vec<u8>,
    /// Replicas whose answer lacked part of it.
    pub stale: Vec<NodeId>,
    /// The client request whose read found them.
    pub trace: u64,
}

/// Which way a handoff moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node is the target: pull each range from its source.
    Pull,
    /// This node is the source: push each range to its target.
    Push,
}

/// Runs handoff transfers (join or leave), one after another, throttled.
#[derive(Message)]
#[rtype(result = "Result<stream::StreamStats, String>")]
pub struct StreamTransfers {
    /// What to move.
    pub transfers: Vec<handoff::Transfer>,
    /// Which end this node is.
    pub direction: Direction,
    /// Deadline of one streaming request, in milliseconds.
    pub timeout_ms: u64,
}

/// Limits of repair work; each named with its unit.
#[derive(Clone, Debug)]
pub struct RepairOptions {
    /// Read-repair writes in flight at once; repairs found beyond this are
    /// dropped (and logged) rather than queued without bound.
    pub read_repair_inflight_max: usize,
    /// Deadline of one repair write, in milliseconds.
    pub repair_timeout_ms: u64,
    /// Handoff streaming pace, in bytes per second (0: unthrottled).
    pub stream_bytes_per_s_max: u64,
}

/// The actor.
pub struct Repair {
    replicas: Replicas,
    options: RepairOptions,
    reachable: Arc<HashSet<NodeId>>,
    in_flight: usize,
    span: tracing::Span,
}

impl Repair {
    /// A repair actor writing through `replicas`.
    pub fn new(replicas: Replicas, options: RepairOptions) -> Self {
        let span = tracing::info_span!("repair", node = %replicas.own, actor = "repair");
        Self {
            replicas,
            options,
            reachable: Arc::new(HashSet::new()),
            in_flight: 0,
            span,
        }
    }
}

impl Actor for Repair {
    type Context = Context<Self>;
}

impl Handler<MembershipChanged> for Repair {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, _ctx: &mut Self::Context) {
        self.reachable = msg.reachable;
    }
}

impl Handler<ReadRepair> for Repair {
    type Result = ();

    fn handle(&mut self, msg: ReadRepair, ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        let trace = msg.trace;
        for node in msg.stale {
            if node != self.replicas.own && !self.reachable.contains(&node) {
                continue;
            }
            if self.in_flight >= self.options.read_repair_inflight_max {
                warn!(req = %format_args!("{trace:x}"), peer = %node,
                    limit = self.options.read_repair_inflight_max,
                    "read repair dropped: read_repair_inflight_max reached");
                continue;
            }
            self.in_flight += 1;
            info!(req = %format_args!("{trace:x}"), peer = %node, "read repair: writing the merged version");
            let replicas = self.replicas.clone();
            let (key, object, timeout_ms) = (
                msg.key.clone(),
                msg.object.clone(),
                self.options.repair_timeout_ms,
            );
            let work = async move {
                let result = replicas
                    .write(&node, &key, &object, trace, timeout_ms)
                    .await;
                (node, result)
            }
            .instrument(self.span.clone());
            ctx.spawn(work.into_actor(self).map(move |(node, result), act, _| {
                act.in_flight -= 1;
                let span = act.span.clone();
                let _span = span.enter();
                match result {
                    Ok(()) => debug!(req = %format_args!("{trace:x}"), peer = %node, "read repair done"),
                    Err((_, detail)) => warn!(req = %format_args!("{trace:x}"), peer = %node, %detail, "read repair failed"),
                }
            }));
        }
    }
}

impl Handler<StreamTransfers> for Repair {
    type Result = ResponseFuture<Result<stream::StreamStats, String>>;

    fn handle(&mut self, msg: StreamTransfers, _ctx: &mut Self::Context) -> Self::Result {
        let replicas = self.replicas.clone();
        let throttle = stream::Throttle {
            bytes_per_s_max: self.options.stream_bytes_per_s_max,
        };
        let span = self.span.clone();
        Box::pin(
            async move {
                let mut total = stream::StreamStats::default();
                for transfer in &msg.transfers {
                    let stats = match msg.direction {
                        Direction::Pull => stream::pull(&replicas, transfer, throttle, msg.timeout_ms, 0).await?,
                        Direction::Push => stream::push(&replicas, transfer, throttle, msg.timeout_ms, 0).await?,
                    };
                    debug!(source = %transfer.source, target = %transfer.target, keys = stats.keys, "range handed off");
                    total += stats;
                }
                Ok(total)
            }
            .instrument(span),
        )
    }
}
