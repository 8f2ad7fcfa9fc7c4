//! Reaching one replica, local or remote, with one interface: the local one
//! through the Storage actor, the others through the Bridge. Also the merge
//! mutation every replica applies to an incoming version.
//!
//! Shared by the replicator (coordination) and repair (read repair,
//! handoff, hints, anti-entropy), so it sits below both.

use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use futures_util::future::{Either, FutureExt};
use serde_bytes::ByteBuf;

use crate::bridge::{Bridge, CallPeer, LinkDirectory, PeerError};
use crate::conflict_resolver::Object;
use crate::metrics::{Mailbox, Metrics};
use crate::storage::{
    ApplyError, LocalApply, LocalRead, MemoryReads, MintAs, MintPermit, Mutation, Storage,
    StorageError, WriterQueue,
};
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::{HintedWrite, PeerRpc, ReplicaRead, ReplicaWrite};
use crate::NodeId;

/// Why one replica could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// A remote replica: the call failed (see [`PeerError`]).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The local store failed or is overloaded.
    #[error("local storage: {message}")]
    Storage {
        /// Whether the store refused for load (nothing was written) rather
        /// than failed.
        overloaded: bool,
        /// What happened.
        message: String,
    },
    /// The versioning rules refused the write (a bad object, too many
    /// siblings): the same answer on every replica.
    #[error("{0}")]
    Refused(ClientError),
    /// The local store mints no new version now (a local write failed; see
    /// `storage::writer`): another replica must coordinate the write.
    #[error("this node mints no new versions now: {reason}")]
    CannotMint {
        /// Why.
        reason: String,
    },
}

impl ReplicaError {
    /// Whether the replica may still act on the request (it did not answer
    /// in time), as opposed to a failure that ruled it out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ReplicaError::Peer(e) if e.is_timeout())
    }

    /// The client-facing form, for a request that depended on this replica
    /// alone.
    pub fn to_client(&self) -> ClientError {
        match self {
            ReplicaError::Peer(e) => ClientError::new(e.client_code(), e.to_string()),
            ReplicaError::Storage {
                overloaded: true,
                message,
            } => ClientError::new(
                ErrorCode::Unavailable,
                format!("local storage: {message}; nothing was written"),
            ),
            ReplicaError::Storage { message, .. } => {
                ClientError::new(ErrorCode::Internal, format!("local storage: {message}"))
            }
            ReplicaError::Refused(e) => e.clone(),
            ReplicaError::CannotMint { reason } => ClientError::new(
                ErrorCode::Unavailable,
                format!("this node mints no new versions now ({reason}); nothing was written"),
            ),
        }
    }
}

impl From<ApplyError> for ReplicaError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Rejected(e) => ReplicaError::Refused(e),
            ApplyError::Storage(e) => e.into(),
            ApplyError::CannotMint { reason } => ReplicaError::CannotMint { reason },
            // A stand-in that holds too many hints for the owner: the
            // coordinator asks another one.
            e @ ApplyError::HintsFull { .. } => ReplicaError::Storage {
                overloaded: true,
                message: e.to_string(),
            },
        }
    }
}

impl From<StorageError> for ReplicaError {
    fn from(e: StorageError) -> Self {
        ReplicaError::Storage {
            overloaded: matches!(e, StorageError::Overloaded { .. }),
            message: e.to_string(),
        }
    }
}

impl From<MailboxError> for ReplicaError {
    fn from(e: MailboxError) -> Self {
        ReplicaError::Storage {
            overloaded: false,
            message: format!("storage actor unavailable: {e}"),
        }
    }
}

/// Handles to every replica, shared: each request's coordination holds a
/// clone, which is one reference count. (Cloning the handles themselves
/// allocated twice: an actix `Addr` clone allocates a sender task.)
#[derive(Clone)]
pub struct Replicas(Arc<ReplicaHandles>);

impl std::ops::Deref for Replicas {
    type Target = ReplicaHandles;

    fn deref(&self) -> &ReplicaHandles {
        &self.0
    }
}

impl From<ReplicaHandles> for Replicas {
    fn from(handles: ReplicaHandles) -> Self {
        Self(Arc::new(handles))
    }
}

/// What [`Replicas`] holds.
#[derive(Clone)]
pub struct ReplicaHandles {
    /// This node.
    pub own: NodeId,
    /// The local store.
    pub storage: Addr<Storage>,
    /// Its reads from memory, made here (`Storage::memory_reads`).
    pub memory: MemoryReads,
    /// Its writer's queue, which this node's writes go to directly
    /// (`Storage::writer_queue`); `None`: through the Storage actor.
    pub writer: Option<WriterQueue>,
    /// The way to every other node.
    pub bridge: Addr<Bridge>,
    /// The Bridge's links, called directly (`Bridge::with_directory`).
    pub links: LinkDirectory,
    /// Replica requests, the storage mailbox, tombstones.
    pub metrics: Metrics,
}

impl Replicas {
    /// Calls `node` with a typed request; the reply or the call's failure.
    pub async fn call<T: PeerRpc>(
        &self,
        node: &NodeId,
        request: T,
        trace: u64,
        timeout_ms: u64,
    ) -> Result<T::Reply, PeerError> {
        let request = match self.links.call(node, request, trace, timeout_ms) {
            Ok(call) => return call.await,
            Err(request) => request,
        };
        let call = self.bridge.send(CallPeer {
            node: node.clone(),
            request,
            trace,
            timeout_ms,
        });
        call.await
            .unwrap_or_else(|e| Err(PeerError::Local(e.to_string())))
    }

    /// Reads `node`'s stored bytes for `key`.
    pub async fn read(
        &self,
        node: &NodeId,
        key: &[u8],
        trace: u64,
        timeout_ms: u64,
    ) -> Result<Option<Vec<u8>>, ReplicaError> {
        if *node == self.own {
            return self.read_local(key).await;
        }
        let request = ReplicaRead {
            key: ByteBuf::from(key.to_vec()),
        };
        let reply = self.counted(node, self.call(node, request, trace, timeout_ms).await)?;
        Ok(reply.object.map(ByteBuf::into_vec))
    }

    /// This node's stored bytes for `key` when the engine holds them in
    /// memory ([`MemoryReads`]); `None`: they need a read through Storage.
    pub fn read_in_memory(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, ReplicaError>> {
        self.memory
            .get(key)
            .map(|answer| answer.map_err(ReplicaError::from))
    }

    /// Reads this node's stored bytes for `key` through Storage (a reader
    /// thread), for a key [`Replicas::read_in_memory`] did not answer.
    pub fn read_from_storage(
        &self,
        key: &[u8],
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, ReplicaError>> {
        self.metrics.mailbox_sent(Mailbox::Storage);
        let read = self.storage.send(LocalRead { key: key.to_vec() });
        async move { Ok(read.await??) }
    }

    /// Reads this node's stored bytes for `key`: in place when the engine
    /// holds them in memory ([`MemoryReads`]), else through Storage.
    pub fn read_local(
        &self,
        key: &[u8],
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, ReplicaError>> {
        match self.read_in_memory(key) {
            Some(answer) => Either::Left(std::future::ready(answer)),
            None => Either::Right(self.read_from_storage(key)),
        }
    }

    /// Hands `apply` to this node's writer: straight to its queue when
    /// it runs on a thread of its own, else through the Storage actor.
    pub fn apply_local(
        &self,
        apply: LocalApply,
    ) -> impl std::future::Future<Output = Result<Result<Option<Vec<u8>>, ApplyError>, MailboxError>>
    {
        match &self.writer {
            Some(queue) => Either::Left(queue.apply(apply).map(Ok)),
            None => {
                self.metrics.mailbox_sent(Mailbox::Storage);
                Either::Right(self.storage.send(apply))
            }
        }
    }

    /// Leave to mint a new version of `key` here, on this thread, from
    /// the stored object ([`WriterQueue::mint_here`]): the store holds the
    /// key in memory and no minting job of it is pending. `None`: the
    /// writer mints it.
    pub fn mint_here(&self, key: &[u8]) -> Option<MintPermit<'_>> {
        let queue = self.writer.as_ref()?;
        queue.mint_here(key, || self.memory.get(key)?.ok())
    }

    /// Merges `object` (encoded) into `node`'s copy of `key`, durably.
    /// Takes the bytes it sends or stores (each replica's copy is made once,
    /// by the caller).
    pub async fn write(
        &self,
        node: &NodeId,
        key: Vec<u8>,
        object: Vec<u8>,
        trace: u64,
        timeout_ms: u64,
    ) -> Result<(), ReplicaError> {
        if *node == self.own {
            return self
                .merge_locally(key, object, None, trace)
                .await
                .map(|_| ());
        }
        let request = ReplicaWrite {
            key: ByteBuf::from(key),
            object: ByteBuf::from(object),
        };
        let reply = self.call(node, request, trace, timeout_ms).await;
        self.counted(node, reply)?;
        Ok(())
    }

    /// Counts a replica request's outcome for `ringkv_replica_requests_total`.
    fn counted<T>(&self, node: &NodeId, reply: Result<T, PeerError>) -> Result<T, PeerError> {
        let timeout = matches!(&reply, Err(e) if e.is_timeout());
        self.metrics
            .replica_request(node.as_str(), reply.is_ok(), timeout);
        reply
    }

    /// Sloppy quorum: asks `node` to keep `object` for `owner` (hinted
    /// handoff).
    pub async fn write_hinted(
        &self,
        node: &NodeId,
        owner: &NodeId,
        key: Vec<u8>,
        object: Vec<u8>,
        trace: u64,
        timeout_ms: u64,
    ) -> Result<(), ReplicaError> {
        let request = HintedWrite {
            key: ByteBuf::from(key),
            object: ByteBuf::from(object),
            owner: owner.clone(),
        };
        let reply = self.call(node, request, trace, timeout_ms).await;
        self.counted(node, reply)?;
        Ok(())
    }

    /// Merges an incoming version into the local copy (with a durable
    /// hint for `hint_for`, in the same batch, when this node stands in for
    /// it); answers the stored value when it changed (`None`: nothing
    /// changed, or the writer did not store it: a version a reaped key's
    /// shadow covers). Tombstones it made or replaced are counted once the
    /// change is durable.
    pub async fn merge_locally(
        &self,
        key: Vec<u8>,
        object: Vec<u8>,
        hint_for: Option<NodeId>,
        trace: u64,
    ) -> Result<Option<Vec<u8>>, ReplicaError> {
        let change = Arc::new(TombstoneChange::new());
        let apply = self.apply_local(LocalApply {
            key,
            bytes: object.len(),
            mutation: merge_mutation(object, change.clone()),
            trace,
            minted: None,
            handed_out: false,
            hint_for,
        });
        let stored = apply.await??;
        match (stored, change.get()) {
            (Some(stored), Some(&(was, is))) => {
                self.metrics.tombstone_transition(was, is);
                Ok(Some(stored))
            }
            _ => Ok(None),
        }
    }
}

/// What a mutation changed, told to its caller once the writer ran it:
/// whether the stored object was and is a tombstone (unset: it changed
/// nothing). The caller counts it in `ringkv_tombstones` once the change
/// is durable.
pub type TombstoneChange = OnceLock<(bool, bool)>;

/// The mutation a replica applies to an incoming version: the join of what
/// it has and what arrived (writes nothing when that changes nothing).
/// What it changed goes to `change`.
pub fn merge_mutation(incoming: Vec<u8>, change: Arc<TombstoneChange>) -> Mutation {
    Box::new(move |current: Option<&[u8]>, _minting_as: &MintAs| {
        let arrived = Object::decode(&incoming)
            .map_err(|e| ClientError::new(ErrorCode::BadRequest, format!("replica write: {e}")))?;
        let Some(current) = current else {
            let _ = change.set((false, is_tombstone(&arrived)));
            return Ok(Some(incoming));
        };
        let stored = Object::decode(current).map_err(|e| {
            ClientError::new(
                ErrorCode::Internal,
                format!("stored object does not decode: {e}"),
            )
        })?;
        let merged = stored.merge(&arrived);
        if merged == stored {
            return Ok(None);
        }
        let _ = change.set((is_tombstone(&stored), is_tombstone(&merged)));
        Ok(Some(merged.encode()))
    })
}

/// The mutation that stores `minted`, a new version the coordinator made
/// from `minted_from` (the stored bytes it read) and handed out: the
/// version as it is when the store still holds `minted_from`, else joined
/// with what the store holds by then (a replica write that landed
/// meanwhile). `change` gets what it changed; `made` is what the
/// coordinator's mutation changed, from `minted_from`.
pub fn store_minted(
    minted_from: Option<Vec<u8>>,
    minted: Vec<u8>,
    made: (bool, bool),
    change: Arc<TombstoneChange>,
) -> Mutation {
    Box::new(move |current: Option<&[u8]>, minting_as: &MintAs| {
        if current == minted_from.as_deref() {
            let _ = change.set(made);
            return Ok(Some(minted));
        }
        merge_mutation(minted, change)(current, minting_as)
    })
}

/// Whether `object` is a tombstone: it has versions, and every one is a
/// delete.
pub fn is_tombstone(object: &Object) -> bool {
    !object.siblings().is_empty() && object.siblings().iter().all(|s| s.value.is_none())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conflict_resolver::{VersionLimits, VersionVector};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// Runs `merge_mutation(incoming)` over `stored`; what it would store
    /// and what it told its caller.
    fn merge(
        stored: Option<&Object>,
        incoming: &Object,
    ) -> (Option<Vec<u8>>, Option<(bool, bool)>) {
        let change = Arc::new(TombstoneChange::new());
        let mint = MintAs {
            actor: id("n1"),
            counter_floor: 0,
        };
        let current = stored.map(Object::encode);
        let new =
            merge_mutation(incoming.encode(), change.clone())(current.as_deref(), &mint).unwrap();
        (new, change.get().copied())
    }

    #[test]
    fn the_merge_tells_what_it_changed_and_nothing_when_it_changed_nothing() {
        let limits = VersionLimits::default();
        let value = Object::update(
            None,
            &VersionVector::new(),
            Some(b"v".to_vec()),
            &id("a"),
            1,
            &limits,
        )
        .unwrap();
        let tombstone =
            Object::update(Some(&value), value.context(), None, &id("a"), 2, &limits).unwrap();
        // A new key: stored as it came.
        assert_eq!(merge(None, &value).1, Some((false, false)));
        assert_eq!(merge(None, &tombstone).1, Some((false, true)));
        // The delete reaches the value: a tombstone now.
        let (new, change) = merge(Some(&value), &tombstone);
        assert!(new.is_some());
        assert_eq!(change, Some((false, true)));
        // Something already known: nothing written, nothing told.
        assert_eq!(merge(Some(&tombstone), &value), (None, None));
        assert_eq!(merge(Some(&value), &value), (None, None));
    }
}
