//! Reaching one replica, local or remote, with one interface: the local one
//! through the Storage actor, the others through the Bridge. Also the merge
//! mutation every replica applies to an incoming version.

use actix::prelude::*;
use serde_bytes::ByteBuf;

use super::quorum::ReplicaFailure;
use crate::bridge::{Bridge, CallPeer, PeerCallError};
use crate::conflict_resolver::Object;
use crate::storage::{ApplyError, LocalApply, LocalRead, Mutation, Storage, StorageError};
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::{PeerReply, PeerRequest};
use crate::NodeId;

/// A replica's failure, with its kind for the quorum.
pub type ReplicaError = (ReplicaFailure, String);

/// Handles to every replica.
#[derive(Clone)]
pub struct Replicas {
    /// This node.
    pub own: NodeId,
    /// The local store.
    pub storage: Addr<Storage>,
    /// The way to every other node.
    pub bridge: Addr<Bridge>,
}

impl Replicas {
    /// Reads `node`'s stored bytes for `key`.
    pub async fn read(
        &self,
        node: &NodeId,
        key: &[u8],
        trace: u64,
        timeout_ms: u64,
    ) -> Result<Option<Vec<u8>>, ReplicaError> {
        if *node == self.own {
            let read = self.storage.send(LocalRead { key: key.to_vec() });
            return match read.await {
                Ok(Ok(bytes)) => Ok(bytes),
                Ok(Err(e)) => Err((ReplicaFailure::Failed, e.to_string())),
                Err(e) => Err((ReplicaFailure::Failed, e.to_string())),
            };
        }
        let body = PeerRequest::Read {
            key: ByteBuf::from(key.to_vec()),
        };
        match self.call(node, body, trace, timeout_ms).await? {
            PeerReply::Object(bytes) => Ok(bytes.map(ByteBuf::into_vec)),
            other => Err((
                ReplicaFailure::Failed,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Merges `object` (encoded) into `node`'s copy of `key`, durably.
    pub async fn write(
        &self,
        node: &NodeId,
        key: &[u8],
        object: &[u8],
        trace: u64,
        timeout_ms: u64,
    ) -> Result<(), ReplicaError> {
        if *node == self.own {
            return self
                .merge_locally(key.to_vec(), object.to_vec(), trace)
                .await
                .map(|_| ())
                .map_err(|e| (ReplicaFailure::Failed, e.message));
        }
        let body = PeerRequest::Write {
            key: ByteBuf::from(key.to_vec()),
            object: ByteBuf::from(object.to_vec()),
        };
        match self.call(node, body, trace, timeout_ms).await? {
            PeerReply::Stored => Ok(()),
            other => Err((
                ReplicaFailure::Failed,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Sloppy quorum: asks `node` to keep `object` for `owner` (hinted
    /// handoff).
    pub async fn write_hinted(
        &self,
        node: &NodeId,
        owner: &NodeId,
        key: &[u8],
        object: &[u8],
        trace: u64,
        timeout_ms: u64,
    ) -> Result<(), ReplicaError> {
        let body = PeerRequest::HintedWrite {
            key: ByteBuf::from(key.to_vec()),
            object: ByteBuf::from(object.to_vec()),
            owner: owner.clone(),
        };
        match self.call(node, body, trace, timeout_ms).await? {
            PeerReply::Stored => Ok(()),
            other => Err((
                ReplicaFailure::Failed,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Merges an incoming version into the local copy.
    pub async fn merge_locally(
        &self,
        key: Vec<u8>,
        object: Vec<u8>,
        trace: u64,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let apply = self.storage.send(LocalApply {
            key,
            mutation: merge_mutation(object),
            trace,
            minted: None,
        });
        flatten_apply(apply.await)
    }

    async fn call(
        &self,
        node: &NodeId,
        body: PeerRequest,
        trace: u64,
        timeout_ms: u64,
    ) -> Result<PeerReply, ReplicaError> {
        let call = self.bridge.send(CallPeer {
            node: node.clone(),
            body,
            trace,
            timeout_ms,
        });
        match call.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(PeerCallError::Timeout { timeout_ms })) => Err((
                ReplicaFailure::TimedOut,
                format!("no answer within {timeout_ms} ms"),
            )),
            Ok(Err(PeerCallError::Failed(f))) if f.code == "timeout" => {
                Err((ReplicaFailure::TimedOut, f.message))
            }
            Ok(Err(e)) => Err((ReplicaFailure::Failed, e.to_string())),
            Err(e) => Err((ReplicaFailure::Failed, e.to_string())),
        }
    }
}

/// The mutation a replica applies to an incoming version: the join of what
/// it has and what arrived (writes nothing when that changes nothing).
pub fn merge_mutation(incoming: Vec<u8>) -> Mutation {
    Box::new(move |current: Option<&[u8]>| {
        let arrived = Object::decode(&incoming)
            .map_err(|e| ClientError::new(ErrorCode::BadRequest, format!("replica write: {e}")))?;
        let Some(current) = current else {
            return Ok(Some(incoming));
        };
        let stored = Object::decode(current).map_err(|e| {
            ClientError::new(
                ErrorCode::Internal,
                format!("stored object does not decode: {e}"),
            )
        })?;
        let merged = stored.merge(&arrived);
        Ok((merged != stored).then(|| merged.encode()))
    })
}

/// Maps a Storage apply answer to a client error.
pub fn flatten_apply(
    result: Result<Result<Option<Vec<u8>>, ApplyError>, MailboxError>,
) -> Result<Option<Vec<u8>>, ClientError> {
    match result {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(ApplyError::Rejected(e))) => Err(e),
        Ok(Err(ApplyError::Storage(e @ StorageError::Overloaded { .. }))) => Err(ClientError::new(
            ErrorCode::Unavailable,
            format!("local storage: {e}; nothing was written"),
        )),
        Ok(Err(ApplyError::Storage(e))) => Err(ClientError::new(
            ErrorCode::Internal,
            format!("local storage: {e}"),
        )),
        Err(e) => Err(ClientError::new(
            ErrorCode::Internal,
            format!("storage actor unavailable: {e}"),
        )),
    }
}
