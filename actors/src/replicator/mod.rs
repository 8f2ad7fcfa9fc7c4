//! The Replicator: the coordinator of every client request this node takes,
//! and the replica side of every peer request.
//!
//! - `placement`: a key's primaries and stand-in candidates (pure);
//! - `quorum`: counting answers toward R or W, by role (pure);
//! - `fanout`: whom to ask, and stand-ins for who cannot answer (pure);
//! - `coordinator`: the read and write state machines (pure);
//! - `write`: carries out a write (mint locally, send, count; or forward
//!   to a replica);
//! - `read`: carries out a read (ask, answer at R, read repair hand-off).
//!
//! The actor itself only keeps the rings and the reachable and healthy
//! sets (from the FailureDetector's `MembershipChanged`), classifies the
//! key's primaries by them, and spawns the coordination future.

mod coordinator;
mod fanout;
pub mod placement;
mod quorum;
mod read;
mod write;

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use serde_bytes::ByteBuf;
use tokio::sync::oneshot;
use tracing::Instrument;

pub use coordinator::{FinishedRead, ReadCoordinator, ReadStep, WriteCoordinator, WriteStep};
pub use fanout::{Ask, Fanout, Reach, SloppyPolicy};
pub use quorum::{Effect, Ending, Role, Tally, Verdict};
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

/// What a request's placement is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Read,
    Write,
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

    /// How this node sees `node` for a request: itself and members
    /// nobody suspects are usable; a suspect is `doubtful` for writes (it
    /// is asked, and a stand-in too) and usable for reads; a member gossip
    /// reports down (or left) is not asked.
    fn reach(&self, node: &NodeId, purpose: Purpose) -> Reach {
        if *node == self.own || self.healthy.contains(node) {
            Reach::Usable
        } else if !self.reachable.contains(node) {
            Reach::Unusable
        } else if purpose == Purpose::Write {
            Reach::Doubtful
        } else {
            Reach::Usable
        }
    }

    /// The primaries of a placement, each with how this node sees it.
    fn classify(&self, primaries: &[NodeId], purpose: Purpose) -> Vec<(NodeId, Reach)> {
        primaries
            .iter()
            .map(|n| (n.clone(), self.reach(n, purpose)))
            .collect()
    }

    /// Stand-in candidates: the healthy members of `beyond`, in ring order.
    fn spare(&self, beyond: Vec<NodeId>) -> Vec<NodeId> {
        beyond
            .into_iter()
            .filter(|n| *n == self.own || self.healthy.contains(n))
            .collect()
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
        let placement =
            placement::for_write(&self.read_ring, &self.write_ring, self.options.n, &msg.key);
        let primaries = self.classify(&placement.primaries, Purpose::Write);
        let span = tracing::info_span!(parent: &self.span, "write", req = %format_args!("{:x}", msg.trace));
        if !placement.primaries.contains(&self.own) {
            if !may_forward {
                let error = ClientError::new(ErrorCode::Unavailable, "forwarded write reached a node that is not a replica of the key (ring changing?)");
                return Box::pin(async move { Err(error) });
            }
            let target = primaries
                .iter()
                .find(|(_, reach)| *reach != Reach::Unusable)
                .map(|(n, _)| n.clone());
            let Some(target) = target else {
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
            pw: 0,
            primaries,
            spare: self.spare(placement.beyond),
            policy: SloppyPolicy::default(),
            stand_in_after_ms: timeout_ms,
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
        let placement =
            placement::for_read(&self.read_ring, &self.write_ring, self.options.n, &msg.key);
        let primaries = self.classify(&placement.primaries, Purpose::Read);
        let live = primaries
            .iter()
            .filter(|(_, reach)| *reach != Reach::Unusable)
            .count();
        if live < r {
            let error = self.unavailable(live, r, "the read");
            return Box::pin(async move { Err(error) });
        }
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let plan = read::ReadPlan {
            key: msg.key,
            r,
            pr: 0,
            primaries,
            spare: Vec::new(),
            policy: SloppyPolicy::default(),
            stand_in_after_ms: timeout_ms,
            timeout_ms,
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
