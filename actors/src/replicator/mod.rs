//! The Replicator: the coordinator of every client request this node takes,
//! and the replica side of every peer request.
//!
//! - `quorum`: counting answers toward R or W (pure);
//! - `replicas`: one interface to the local replica and the remote ones;
//! - `write`: put/delete coordination (and forwarding to a replica);
//! - `read`: get coordination, early answer at R, read repair hand-off.
//!
//! The actor itself only keeps the ring and the reachable set (from the
//! FailureDetector's `MembershipChanged`), validates the request against
//! them, and spawns the coordination future.

mod quorum;
mod read;
mod replicas;
pub mod sloppy;
mod write;

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use serde_bytes::ByteBuf;
use tokio::sync::oneshot;
use tracing::Instrument;

pub use quorum::{Effect, Ending, ReplicaFailure, Tally, Verdict};
pub use read::GetAnswer;
pub use replicas::Replicas;

use crate::bridge::{Bridge, IncomingPeerRequest};
use crate::conflict_resolver::{ConflictResolver, VersionLimits, VersionVector};
use crate::failure_detector::MembershipChanged;
use crate::net::SharedClock;
use crate::repair::{RecordHint, Repair};
use crate::ring::Ring;
use crate::storage::{LocalRead, LocalScan, Storage};
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::{PeerFailure, PeerReply, PeerRequest};
use crate::NodeId;

/// Most entries one scan page may hold, whatever a peer asks for: a page is
/// one peer frame, and objects can be large.
pub const SCAN_PAGE_ENTRIES_MAX: usize = 1024;

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
    repair: Addr<Repair>,
    clock: SharedClock,
    span: tracing::Span,
}

impl Replicator {
    /// A replicator; it learns the ring from its first `MembershipChanged`.
    pub fn new(
        own: NodeId,
        options: ReplicationOptions,
        storage: Addr<Storage>,
        bridge: Addr<Bridge>,
        resolver: Addr<ConflictResolver>,
        repair: Addr<Repair>,
        clock: SharedClock,
    ) -> Self {
        let span = tracing::info_span!("replicator", node = %own, actor = "replicator");
        Self {
            replicas: Replicas {
                own: own.clone(),
                storage,
                bridge,
            },
            own,
            options,
            read_ring: Arc::new(Ring::default()),
            write_ring: Arc::new(Ring::default()),
            reachable: Arc::new(HashSet::new()),
            healthy: Arc::new(HashSet::new()),
            resolver,
            repair,
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
            self.repair.clone(),
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

impl Handler<IncomingPeerRequest> for Replicator {
    type Result = ResponseFuture<Result<PeerReply, PeerFailure>>;

    fn handle(&mut self, msg: IncomingPeerRequest, _ctx: &mut Self::Context) -> Self::Result {
        let trace = msg.trace;
        let span = tracing::info_span!(parent: &self.span, "replica", req = %format_args!("{trace:x}"), from = %msg.from);
        match msg.body {
            PeerRequest::Read { key } => {
                let read = self.replicas.storage.send(LocalRead {
                    key: key.into_vec(),
                });
                Box::pin(
                    async move {
                        match read.await {
                            Ok(Ok(bytes)) => Ok(PeerReply::Object(bytes.map(ByteBuf::from))),
                            Ok(Err(e)) => Err(failure(ErrorCode::Internal, e.to_string())),
                            Err(e) => Err(failure(ErrorCode::Internal, e.to_string())),
                        }
                    }
                    .instrument(span),
                )
            }
            PeerRequest::Write { key, object } => {
                let replicas = self.replicas.clone();
                Box::pin(
                    async move {
                        replicas
                            .merge_locally(key.into_vec(), object.into_vec(), trace)
                            .await
                            .map(|_| PeerReply::Stored)
                            .map_err(|e| failure(e.code, e.message))
                    }
                    .instrument(span),
                )
            }
            PeerRequest::HintedWrite { key, object, owner } => {
                let (replicas, repair) = (self.replicas.clone(), self.repair.clone());
                Box::pin(
                    async move {
                        let key = key.into_vec();
                        replicas
                            .merge_locally(key.clone(), object.into_vec(), trace)
                            .await
                            .map_err(|e| failure(e.code, e.message))?;
                        // Durable here first; the hint only says who else
                        // must get it.
                        repair.do_send(RecordHint { owner, key });
                        Ok(PeerReply::Stored)
                    }
                    .instrument(span),
                )
            }
            PeerRequest::MerkleLeaves { with, leaves } => {
                let (replicas, ring, n) = (
                    self.replicas.clone(),
                    self.read_ring.clone(),
                    self.options.n,
                );
                Box::pin(
                    async move {
                        crate::repair::anti_entropy::serve_tree(&replicas, &ring, n, &with, leaves)
                            .await
                            .map_err(|e| failure(ErrorCode::Internal, e))
                    }
                    .instrument(span),
                )
            }
            PeerRequest::Scan { start, end, limit } => {
                let scan = self.replicas.storage.send(LocalScan {
                    start: start.into_vec(),
                    end: end.map(ByteBuf::into_vec),
                    limit: (limit as usize).min(SCAN_PAGE_ENTRIES_MAX),
                });
                Box::pin(
                    async move {
                        match scan.await {
                            Ok(Ok(entries)) => Ok(PeerReply::Page {
                                entries: entries
                                    .into_iter()
                                    .map(|(k, v)| (ByteBuf::from(k), ByteBuf::from(v)))
                                    .collect(),
                            }),
                            Ok(Err(e)) => Err(failure(ErrorCode::Internal, e.to_string())),
                            Err(e) => Err(failure(ErrorCode::Internal, e.to_string())),
                        }
                    }
                    .instrument(span),
                )
            }
            PeerRequest::Gossip { .. } => {
                let error = failure(
                    ErrorCode::BadRequest,
                    "gossip is for the failure detector".into(),
                );
                Box::pin(async move { Err(error) })
            }
            PeerRequest::Coordinate(write) => {
                let msg = CoordinateWrite {
                    key: write.key.into_vec(),
                    value: write.value.map(ByteBuf::into_vec),
                    context: write.context.map(ByteBuf::into_vec),
                    w: Some(write.w.clamp(1, self.options.n)),
                    timeout_ms: Some(msg.timeout_ms),
                    trace,
                };
                let fut = self.start_write(msg, false);
                Box::pin(async move {
                    fut.await
                        .map(|context| PeerReply::Coordinated {
                            context: ByteBuf::from(context),
                        })
                        .map_err(|e| failure(e.code, e.message))
                })
            }
        }
    }
}

fn failure(code: ErrorCode, message: String) -> PeerFailure {
    PeerFailure {
        code: code.as_str().into(),
        message,
    }
}
