//! Which actor serves each peer request ([`PeerSession::to_handler`]),
//! and the call that hands it over and wraps the answer for the wire.

use actix::prelude::*;
use futures_util::FutureExt;

use super::super::Incoming;
use super::PeerSession;
use crate::net::LocalBoxFuture;
use crate::wire::client::ErrorCode;
use crate::wire::peer::{PeerReply, PeerRequest, PeerRpc, Probe, Probed, RemoteError};
use crate::NodeId;

impl PeerSession {
    /// Hands a request to the actor that serves its type.
    pub(super) fn to_handler(
        &self,
        from: NodeId,
        trace: u64,
        timeout_ms: u64,
        body: PeerRequest,
    ) -> LocalBoxFuture<'static, Result<PeerReply, RemoteError>> {
        let handlers = &self.handlers;
        match body {
            PeerRequest::Read(r) => serve(&handlers.read, from, trace, timeout_ms, r),
            PeerRequest::Write(r) => serve(&handlers.write, from, trace, timeout_ms, r),
            PeerRequest::HintedWrite(r) => {
                serve(&handlers.hinted_write, from, trace, timeout_ms, r)
            }
            PeerRequest::Coordinate(r) => serve(&handlers.coordinate, from, trace, timeout_ms, r),
            PeerRequest::Scan(r) => serve(&handlers.scan, from, trace, timeout_ms, r),
            PeerRequest::MerkleLeaves(r) => {
                serve(&handlers.merkle_leaves, from, trace, timeout_ms, r)
            }
            PeerRequest::MerkleNodes(r) => {
                serve(&handlers.merkle_nodes, from, trace, timeout_ms, r)
            }
            PeerRequest::Gossip(r) => serve(&handlers.gossip, from, trace, timeout_ms, r),
            PeerRequest::ListKeys(r) => serve(&handlers.list_keys, from, trace, timeout_ms, r),
            PeerRequest::ReapCheck(r) => serve(&handlers.reap_check, from, trace, timeout_ms, r),
            PeerRequest::ReapDrop(r) => serve(&handlers.reap_drop, from, trace, timeout_ms, r),
            PeerRequest::Probe(Probe) => Box::pin(async { Ok(Probe::reply_into(Probed)) }),
        }
    }
}

/// Hands `request` to the actor serving its type (the session answers
/// `Timeout` for it at its deadline) and wraps the answer for the wire.
fn serve<T: PeerRpc>(
    to: &Recipient<Incoming<T>>,
    from: NodeId,
    trace: u64,
    timeout_ms: u64,
    request: T,
) -> LocalBoxFuture<'static, Result<PeerReply, RemoteError>> {
    let call = to.send(Incoming {
        from,
        trace,
        timeout_ms,
        request,
    });
    Box::pin(call.map(|answer| match answer {
        Ok(result) => result.map(T::reply_into),
        Err(e) => Err(RemoteError::new(
            ErrorCode::Internal,
            format!("local handler unavailable: {e}"),
        )),
    }))
}
