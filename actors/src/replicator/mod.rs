//! The Replicator: the coordinator of every client request this node takes,
//! and the replica side of every peer request.
//!
//! - `quorum`: counting answers toward R or W (pure);
//! - `write`: put/delete coordination (and forwarding to a replica);
//! - `read`: get coordination, early answer at R, read repair hand-off.
//!
//! The actor itself only keeps the ring and the reachable set (from the
//! FailureDetector's `MembershipChanged`), validates the request against
//! them, and spawns the coordination future.

mod quorum;
mod read;
pub mod sloppy;
mod write;

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use serde_bytes::ByteBuf;
use tokio::sync::oneshot;
use tracing::Instrument;

pub use quorum::{Effect, Ending, Tally, Verdict};
pub use read::GetAnswer;

use crate::bridge::Incoming;
use crate::clock::SharedClock;
use crate::conflict_resolver::{ConflictResolver, VersionLimits, VersionVector};
use crate::membership::MembershipChanged;
use crate::replicas::Replicas;
use crate::ring::Ring;
use crate::storage::LocalRead;
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::{
    Coordinated, Durable, ForwardedWrite, HintedWrite, RemoteError, ReplicaRead, ReplicaWrite,
    StoredObject,
};
use crate::NodeId;

/// Replication settings.
#[derive(Clone, Debug)]
pub struct ReplicationOptions {
    /// Replicas per key.
    pub n: usize,
    /// Default read quorum.
    pub r: usize,
    /// Default write quorum.
    pub w: usize,
    /// Default deadline of a client request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Sibling and clock limits.
    pub limits: VersionLimits,
    /// The name this node's writes are versioned under during this
    /// incarnation of its store ([`NodeId::version_actor`]).
    pub version_actor: NodeId,
}

/// What a placement is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Read,
    Write,
}

/// Read repair: write `object` to the `stale` replicas of `key`. Sent by a
/// read's coordinator once every replica answered (or the deadline
/// passed); handled by Repair.
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

/// Sloppy quorum: this node took a write for `owner`; deliver it later.
/// Sent by the replica side of a hinted write; handled by Repair.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordHint {
    /// The unreachable replica the write was meant for.
    pub owner: NodeId,
    /// The user key.
    pub key: Vec<u8>,
}

/// Coordinate a get.
#[derive(Message)]
#[rtype(result = "Result<GetAnswer, ClientError>")]
pub struct CoordinateGet {
    /// The key.
    pub key: Vec<u8>,
    /// Read quorum (default from config).
    pub r: Option<usize>,
    /// Deadline override, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client request id.
    pub trace: u64,
}

/// Coordinate a put (`value` set) or a delete (`value` `None`).
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, ClientError>")]
pub struct CoordinateWrite {
    /// The key.
    pub key: Vec<u8>,
    /// The value, or `None` to delete.
    pub value: Option<Vec<u8>>,
    /// The client's context.
    pub context: Option<Vec<u8>>,
    /// Write quorum (default from config).
    pub w: Option<usize>,
    /// Deadline override, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client request id.
    pub trace: u64,
}

/// The actor.
pub struct Replicator {
    own: NodeId,
    options: ReplicationOptions,
    /// Owners for reads.
    read_ring: Arc<Ring>,
    /// Owners for writes (joining nodes in, leaving nodes out).
    write_ring: Arc<Ring>,
    reachable: Arc<HashSet<NodeId>>,
    /// Members nobody suspects; the others get sloppy-quorum stand-ins.
    healthy: Arc<HashSet<NodeId>>,
    replicas: Replicas,
    resolver: Addr<ConflictResolver>,
    read_repair: Recipient<ReadRepair>,
    hints: Recipient<RecordHint>,
    clock: SharedClock,
    span: tracing::Span,
}

impl Replicator {
    /// A replicator; it learns the ring from its first `MembershipChanged`.
    /// Read repairs and hints go to the actor behind `read_repair` and
    /// `hints` (Repair, which sits above this one).
    pub fn new(
        options: ReplicationOptions,
        replicas: Replicas,
        resolver: Addr<ConflictResolver>,
        read_repair: Recipient<ReadRepair>,
        hints: Recipient<RecordHint>,
        clock: SharedClock,
    ) -> Self {
        let own = replicas.own.clone();
        let span = tracing::info_span!("replicator", node = %own, actor = "replicator");
        Self {
            replicas,
            own,
            options,
            read_ring: Arc::new(Ring::default()),
            write_ring: Arc::new(Ring::default()),
            reachable: Arc::new(HashSet::new()),
            healthy: Arc::new(HashSet::new()),
            resolver,
            read_repair,
            hints,
            clock,
            span,
        }
    }

    /// The replicas of `key` for `purpose` and the reachable ones among
    /// them, in order. Reads use the read ring; writes the union of both
    /// rings' lists, so data that is moving reaches its old and its new home.
    fn placement(&self, key: &[u8], purpose: Purpose) -> (Vec<NodeId>, Vec<NodeId>) {
        let mut preference = self.read_ring.preference_list(key, self.options.n);
        if purpose == Purpose::Write {
            for node in self.write_ring.preference_list(key, self.options.n) {
                if !preference.contains(&node) {
                    preference.push(node);
                }
            }
        }
        let live = preference
            .iter()
            .filter(|n| **n == self.own || self.reachable.contains(*n))
            .cloned()
            .collect();
        (preference, live)
    }

    /// Sloppy quorum: stand-ins for the key's unreachable replicas.
    fn stand_ins(&self, key: &[u8], preference: &[NodeId]) -> Vec<(NodeId, NodeId)> {
        let healthy = |n: &NodeId| *n == self.own || self.healthy.contains(n);
        // The common case, every replica healthy, needs no walk of the ring.
        if preference.iter().all(healthy) {
            return Vec::new();
        }
        let walk = self
            .write_ring
            .preference_list(key, self.write_ring.members().len());
        sloppy::stand_ins(&walk, preference, healthy)
    }

    fn unavailable(&self, live: usize, needed: usize, what: &str) -> ClientError {
        ClientError::new(
            ErrorCode::Unavailable,
            format!(
                "only {live} of the key's {} replicas are reachable and {what} needs {needed}",
                self.options.n
            ),
        )
    }

    /// Starts a write; `may_forward` is false for writes that were already
    /// forwarded to us (no second hop).
    fn start_write(
        &self,
        msg: CoordinateWrite,
        may_forward: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, ClientError>>>> {
        let w = msg.w.unwrap_or(self.options.w);
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let (preference, live) = self.placement(&msg.key, Purpose::Write);
        let hinted = self.stand_ins(&msg.key, &preference);
        if live.is_empty() || live.len() + hinted.len() < w {
            let error = self.unavailable(live.len(), w, "the write");
            return Box::pin(async move { Err(error) });
        }
        let span = tracing::info_span!(parent: &self.span, "write", req = %format_args!("{:x}", msg.trace));
        if !preference.contains(&self.own) {
            if !may_forward {
                let error = ClientError::new(ErrorCode::Unavailable, "forwarded write reached a node that is not a replica of the key (ring changing?)");
                return Box::pin(async move { Err(error) });
            }
            let Some(target) = live.first().cloned() else {
                let error = self.unavailable(0, w, "the write");
                return Box::pin(async move { Err(error) });
            };
            let forwarded = write::forwarded(msg.key, msg.value, msg.context, w);
            return Box::pin(
                write::forward(
                    self.replicas.clone(),
                    target,
                    forwarded,
                    msg.trace,
                    timeout_ms,
                )
                .instrument(span),
            );
        }
        let context = match msg
            .context
            .as_deref()
            .map(VersionVector::decode_context)
            .transpose()
        {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                let error = ClientError::new(
                    ErrorCode::BadRequest,
                    format!("field `context` is not a context this cluster issued: {e}"),
                );
                return Box::pin(async move { Err(error) });
            }
        };
        let plan = write::WritePlan {
            key: msg.key,
            value: msg.value,
            context,
            w,
            others: live.into_iter().filter(|n| *n != self.own).collect(),
            hinted,
            timeout_ms,
            trace: msg.trace,
            now_ms: self.clock.now_ms(),
            limits: self.options.limits.clone(),
            actor: self.options.version_actor.clone(),
        };
        Box::pin(write::coordinate(self.replicas.clone(), plan).instrument(span))
    }
}

impl Actor for Replicator {
    type Context = Context<Self>;
}

impl Handler<MembershipChanged> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, _ctx: &mut Self::Context) {
        self.healthy = msg.healthy;
        self.read_ring = msg.read_ring;
        self.write_ring = msg.write_ring;
        self.reachable = msg.reachable;
    }
}

impl Handler<CoordinateWrite> for Replicator {
    type Result = ResponseFuture<Result<Vec<u8>, ClientError>>;

    fn handle(&mut self, msg: CoordinateWrite, _ctx: &mut Self::Context) -> Self::Result {
        self.start_write(msg, true)
    }
}

impl Handler<CoordinateGet> for Replicator {
    type Result = ResponseFuture<Result<GetAnswer, ClientError>>;

    fn handle(&mut self, msg: CoordinateGet, ctx: &mut Self::Context) -> Self::Result {
        let r = msg.r.unwrap_or(self.options.r);
        let (_, live) = self.placement(&msg.key, Purpose::Read);
        if live.len() < r {
            let error = self.unavailable(live.len(), r, "the read");
            return Box::pin(async move { Err(error) });
        }
        let plan = read::ReadPlan {
            key: msg.key,
            r,
            replicas: live,
            timeout_ms: msg.timeout_ms.unwrap_or(self.options.request_timeout_ms),
            trace: msg.trace,
        };
        let (tx, rx) = oneshot::channel();
        let span =
            tracing::info_span!(parent: &self.span, "read", req = %format_args!("{:x}", msg.trace));
        let work = read::coordinate(
            self.replicas.clone(),
            self.resolver.clone(),
            self.read_repair.clone(),
            plan,
            tx,
        );
        ctx.spawn(work.instrument(span).into_actor(self));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::new(
                    ErrorCode::Internal,
                    "read coordination stopped",
                ))
            })
        })
    }
}

impl Handler<Incoming<ReplicaRead>> for Replicator {
    type Result = ResponseFuture<Result<StoredObject, RemoteError>>;

    fn handle(&mut self, msg: Incoming<ReplicaRead>, _ctx: &mut Self::Context) -> Self::Result {
        let span = self.replica_span(&msg.from, msg.trace);
        let read = self.replicas.storage.send(LocalRead {
            key: msg.request.key.into_vec(),
        });
        Box::pin(
            async move {
                let object = read
                    .await
                    .map_err(|e| internal(e.to_string()))?
                    .map_err(|e| internal(e.to_string()))?;
                Ok(StoredObject {
                    object: object.map(ByteBuf::from),
                })
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<ReplicaWrite>> for Replicator {
    type Result = ResponseFuture<Result<Durable, RemoteError>>;

    fn handle(&mut self, msg: Incoming<ReplicaWrite>, _ctx: &mut Self::Context) -> Self::Result {
        let span = self.replica_span(&msg.from, msg.trace);
        let replicas = self.replicas.clone();
        let (key, object) = (msg.request.key.into_vec(), msg.request.object.into_vec());
        Box::pin(
            async move {
                replicas
                    .merge_locally(key, object, msg.trace)
                    .await
                    .map(|_| Durable)
                    .map_err(|e| e.to_client().into())
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<HintedWrite>> for Replicator {
    type Result = ResponseFuture<Result<Durable, RemoteError>>;

    fn handle(&mut self, msg: Incoming<HintedWrite>, _ctx: &mut Self::Context) -> Self::Result {
        let span = self.replica_span(&msg.from, msg.trace);
        let (replicas, hints) = (self.replicas.clone(), self.hints.clone());
        let HintedWrite { key, object, owner } = msg.request;
        Box::pin(
            async move {
                let key = key.into_vec();
                replicas
                    .merge_locally(key.clone(), object.into_vec(), msg.trace)
                    .await
                    .map_err(|e| RemoteError::from(e.to_client()))?;
                // Durable here first; the hint only says who else must get it.
                hints.do_send(RecordHint { owner, key });
                Ok(Durable)
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<ForwardedWrite>> for Replicator {
    type Result = ResponseFuture<Result<Coordinated, RemoteError>>;

    fn handle(&mut self, msg: Incoming<ForwardedWrite>, _ctx: &mut Self::Context) -> Self::Result {
        let write = msg.request;
        let coordinate = CoordinateWrite {
            key: write.key.into_vec(),
            value: write.value.map(ByteBuf::into_vec),
            context: write.context.map(ByteBuf::into_vec),
            w: Some(write.w.clamp(1, self.options.n)),
            timeout_ms: Some(msg.timeout_ms),
            trace: msg.trace,
        };
        let fut = self.start_write(coordinate, false);
        Box::pin(async move {
            fut.await
                .map(|context| Coordinated {
                    context: ByteBuf::from(context),
                })
                .map_err(RemoteError::from)
        })
    }
}

impl Replicator {
    /// The span of one replica-side request from `from`.
    fn replica_span(&self, from: &NodeId, trace: u64) -> tracing::Span {
        tracing::info_span!(parent: &self.span, "replica", req = %format_args!("{trace:x}"), from = %from)
    }
}

fn internal(message: String) -> RemoteError {
    RemoteError::new(ErrorCode::Internal, message)
}
