//! The replica side of the Replicator: peers' reads, writes, hinted
//! writes and forwarded writes, each admitted only from a member that
//! shares the key with this node (issue 12).

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use serde_bytes::ByteBuf;
use tracing::{warn, Instrument};

use super::{placement, CoordinateWrite, DcQuorum, Held, Replicator};
use crate::bridge::Incoming;
use crate::replicas::Replicas;
use crate::ring::{Ring, DC_REPLICATION_DCS_MAX};
use crate::wire::client::ErrorCode;
use crate::wire::peer::{
    Coordinated, Durable, ForwardedWrite, HintedWrite, PeerRefusal, RemoteError, ReplicaRead,
    ReplicaWrite, StoredObject,
};
use crate::NodeId;

impl Handler<Incoming<ReplicaRead>> for Replicator {
    type Result = Response<Result<StoredObject, RemoteError>>;

    fn handle(&mut self, msg: Incoming<ReplicaRead>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_peer(&msg.from, "Read", &msg.request.key) {
            return Response::reply(Err(refused));
        }
        let stored = |object: Option<Vec<u8>>| StoredObject {
            object: object.map(ByteBuf::from),
        };
        // Held in memory: answered now, without a future and its task.
        if let Some(read) = self.replicas.read_in_memory(&msg.request.key) {
            return Response::reply(read.map(stored).map_err(|e| internal(e.to_string())));
        }
        let span = self.replica_span(&msg.from, msg.trace);
        let read = self.replicas.read_from_storage(&msg.request.key);
        Response::fut(
            async move {
                let object = read.await.map_err(|e| internal(e.to_string()))?;
                Ok(stored(object))
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<ReplicaWrite>> for Replicator {
    type Result = ResponseFuture<Result<Durable, RemoteError>>;

    fn handle(&mut self, msg: Incoming<ReplicaWrite>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_peer(&msg.from, "Write", &msg.request.key) {
            return Box::pin(async move { Err(refused) });
        }
        let span = self.replica_span(&msg.from, msg.trace);
        replica_write(self.replicas.clone(), msg.request, msg.trace, span)
    }
}

impl Handler<Incoming<HintedWrite>> for Replicator {
    type Result = ResponseFuture<Result<Durable, RemoteError>>;

    fn handle(&mut self, msg: Incoming<HintedWrite>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_peer(&msg.from, "HintedWrite", &msg.request.key) {
            return Box::pin(async move { Err(refused) });
        }
        let span = self.replica_span(&msg.from, msg.trace);
        let replicas = self.replicas.clone();
        let HintedWrite { key, object, owner } = msg.request;
        Box::pin(
            async move {
                // The object and its hint are durable together before the
                // answer counts toward W.
                replicas
                    .merge_locally(key.into_vec(), object.into_vec(), Some(owner), msg.trace)
                    .await
                    .map_err(|e| RemoteError::from(e.to_client()))?;
                Ok(Durable)
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<ForwardedWrite>> for Replicator {
    type Result = ResponseFuture<Result<Coordinated, RemoteError>>;

    fn handle(&mut self, msg: Incoming<ForwardedWrite>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_peer(&msg.from, "Coordinate", &msg.request.key) {
            return Box::pin(async move { Err(refused) });
        }
        let write = msg.request;
        let coordinate = CoordinateWrite {
            key: write.key.into_vec(),
            value: write.value.map(ByteBuf::into_vec),
            context: write.context.map(ByteBuf::into_vec),
            supersede_local: write.supersede_local,
            ttl_ms: write
                .ttl_ms
                .filter(|ttl| (1..=crate::wire::client::TTL_MS_MAX).contains(ttl)),
            w: Some(write.w.clamp(1, self.options.n)),
            pw: Some(write.pw.min(write.w)),
            consistency: None,
            dc_quorums: write
                .dc_quorums
                .into_iter()
                .take(DC_REPLICATION_DCS_MAX)
                .map(|(dc, needed)| DcQuorum {
                    dc,
                    needed: needed.clamp(1, self.options.n),
                })
                .collect(),
            timeout_ms: Some(msg.timeout_ms),
            trace: msg.trace,
            // The forwarder's client may use it; the request does not say.
            with_context: true,
        };
        if self.ready {
            if let Some(why) = self.forwarded_refusal_for(&coordinate.key) {
                // Nothing done here: the forwarder may try the next replica.
                return Box::pin(async move {
                    Err(RemoteError::untouched(ErrorCode::Unavailable, why))
                });
            }
        }
        let fut = if self.ready {
            self.start_write(coordinate, false)
        } else {
            let timeout_ms = coordinate.timeout_ms;
            self.hold(timeout_ms, |tx| Held::Write(coordinate, false, tx))
        };
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
    /// The range check of a peer's request about `key` (issue 12): the
    /// sender has a place on this node's rings (any member may coordinate
    /// a read and repair what it read, or hold a hint), and this node is a
    /// replica or stand-in candidate of the key in its own view
    /// ([`placement::shares`]). A refusal is logged and answered untouched,
    /// so a coordinator with another view tries elsewhere.
    pub(super) fn admit_peer(
        &self,
        from: &NodeId,
        request: &'static str,
        key: &[u8],
    ) -> Result<(), RemoteError> {
        let Some(refusal) = peer_refusal(
            (&self.read_ring, &self.write_ring),
            self.options.n,
            &self.own,
            from,
            key,
        ) else {
            return Ok(());
        };
        let _span = self.span.enter();
        warn!(peer = %from, request, reason = %refusal, "refusing a peer request");
        Err(refusal.into())
    }

    /// The span of one replica-side request from `from`.
    pub(super) fn replica_span(&self, from: &NodeId, trace: u64) -> tracing::Span {
        replica_span(&self.span, from, trace)
    }
}

/// Why `own` refuses `from`'s replica request for `key` under these
/// rings (`None`: it serves it): `from` is no member, or `own` does not
/// share the key (a primary or a stand-in candidate). The Replicator's
/// `admit_peer` and `LocalReads` ask the same.
pub(super) fn peer_refusal(
    (read, write): (&Ring, &Ring),
    n: usize,
    own: &NodeId,
    from: &NodeId,
    key: &[u8],
) -> Option<PeerRefusal> {
    if !placement::is_placed(read, write, from) {
        Some(PeerRefusal::NotAMember { peer: from.clone() })
    } else if !placement::shares(read, write, n, Ring::key_token(key), own) {
        Some(PeerRefusal::NotShared)
    } else {
        None
    }
}

/// Stores a replica write (the join of what this node holds and the
/// version that came); answers once it is durable.
pub(super) fn replica_write(
    replicas: Replicas,
    request: ReplicaWrite,
    trace: u64,
    span: tracing::Span,
) -> LocalBoxFuture<'static, Result<Durable, RemoteError>> {
    let (key, object) = (request.key.into_vec(), request.object.into_vec());
    Box::pin(
        async move {
            replicas
                .merge_locally(key, object, None, trace)
                .await
                .map(|_| Durable)
                .map_err(|e| e.to_client().into())
        }
        .instrument(span),
    )
}

/// The span of one replica-side request from `from`, under the
/// Replicator's `actor_span` (see `Replicator::request_span`).
pub(super) fn replica_span(actor_span: &tracing::Span, from: &NodeId, trace: u64) -> tracing::Span {
    let span = tracing::debug_span!(parent: actor_span, "replica", req = %format_args!("{trace:x}"), from = %from);
    if span.is_disabled() {
        actor_span.clone()
    } else {
        span
    }
}

pub(super) fn internal(message: String) -> RemoteError {
    RemoteError::new(ErrorCode::Internal, message)
}
