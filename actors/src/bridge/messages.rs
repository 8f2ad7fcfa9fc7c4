//! The Bridge's messages: calls to peers and what comes in from them, the
//! handlers the node registers, and the links' comings and goings.

use fnv::FnvHashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use super::connection::PeerConnection;
use super::outbound::Outbound;
use super::PeerError;
use crate::wire::peer::{
    Durable, ForwardedWrite, GossipExchange, HintedWrite, ListKeys, MemberInfo, MerkleLeaves,
    MerkleNodes, PeerRpc, ReapCheck, ReapDrop, RemoteError, ReplicaRead, ReplicaWrite, ScanRange,
    StoredObject,
};
use crate::NodeId;

/// A request from a peer, for the actor that serves requests of type `T`
/// (see [`PeerHandlers`]).
pub struct Incoming<T: PeerRpc> {
    /// The asking node.
    pub from: NodeId,
    /// The client request it serves.
    pub trace: u64,
    /// Time left, in milliseconds.
    pub timeout_ms: u64,
    /// What is asked.
    pub request: T,
}

impl<T: PeerRpc> Message for Incoming<T> {
    type Result = Result<T::Reply, RemoteError>;
}

/// Calls `node` with a request of type `T`; answers `T`'s reply.
pub struct CallPeer<T: PeerRpc> {
    /// The node to ask.
    pub node: NodeId,
    /// What to ask.
    pub request: T,
    /// The client request it serves.
    pub trace: u64,
    /// Deadline from now, in milliseconds.
    pub timeout_ms: u64,
}

impl<T: PeerRpc> Message for CallPeer<T> {
    type Result = Result<T::Reply, PeerError>;
}

/// Serves some incoming requests without a message to the actor that
/// owns their type (the replicator's `LocalReads`): a replica read of a
/// copy held in memory is answered on the spot, a replica write goes
/// straight to the store. It declines (`None`) whatever that actor must
/// see itself; the request then goes to the actor as before.
pub trait PeerDirect {
    /// The answer to a replica read of `request` from `from`.
    fn replica_read(
        &self,
        from: &NodeId,
        request: &ReplicaRead,
    ) -> Option<Result<StoredObject, RemoteError>>;

    /// A replica write of `request` from `from`, under way: it answers
    /// once the version is durable here.
    fn replica_write(
        &self,
        from: &NodeId,
        trace: u64,
        request: ReplicaWrite,
    ) -> Result<LocalBoxFuture<'static, Result<Durable, RemoteError>>, ReplicaWrite>;
}

/// Where the bridge delivers each type of incoming request: the actor that
/// owns it (the replicator serves replica reads and writes and forwarded
/// writes, repair serves scans and Merkle leaves, the failure detector
/// gossip).
#[derive(Clone)]
pub struct PeerHandlers {
    /// Replica reads.
    pub read: Recipient<Incoming<ReplicaRead>>,
    /// Replica reads and writes served without a message to their
    /// actor.
    pub direct: Rc<dyn PeerDirect>,
    /// Replica writes.
    pub write: Recipient<Incoming<ReplicaWrite>>,
    /// Sloppy-quorum writes held for another replica.
    pub hinted_write: Recipient<Incoming<HintedWrite>>,
    /// Client writes forwarded to a replica of the key.
    pub coordinate: Recipient<Incoming<ForwardedWrite>>,
    /// Range scans (handoff, anti-entropy).
    pub scan: Recipient<Incoming<ScanRange>>,
    /// Merkle leaves (anti-entropy, older peers).
    pub merkle_leaves: Recipient<Incoming<MerkleLeaves>>,
    /// Merkle tree nodes (anti-entropy).
    pub merkle_nodes: Recipient<Incoming<MerkleNodes>>,
    /// Gossip.
    pub gossip: Recipient<Incoming<GossipExchange>>,
    /// Key listing pages (the client `list` op).
    pub list_keys: Recipient<Incoming<ListKeys>>,
    /// Tombstone reaping: checks.
    pub reap_check: Recipient<Incoming<ReapCheck>>,
    /// Tombstone reaping: drops.
    pub reap_drop: Recipient<Incoming<ReapDrop>>,
}

/// Reachability news, for the failure detector.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub enum PeerEvent {
    /// Our outbound link to `member`, dialled at `addr`, completed its
    /// handshake.
    Reachable {
        /// Who answered.
        member: MemberInfo,
        /// The address dialled (a seed's, or the member's gossiped one).
        addr: SocketAddr,
    },
    /// Our outbound link to `node` is gone.
    Unreachable(NodeId),
    /// A dial to `addr` failed before we learned who is there (a seed that
    /// is not running).
    DialFailed(SocketAddr),
    /// `member` dialled us (we learn of it, not that we can reach it).
    Introduced(MemberInfo),
}

/// The links this node cannot use now, for the coordinators: their own
/// view of reachability, on top of gossip's. Sent to every watcher at
/// each change.
#[derive(Message, Clone, Debug, Default)]
#[rtype(result = "()")]
pub struct LinksChanged {
    /// Members whose link is down, or whose requests time out.
    pub unusable: Arc<FnvHashSet<NodeId>>,
    /// Members whose link completed its handshake and answers: proof that
    /// they run, whatever gossip last said.
    pub up: Arc<FnvHashSet<NodeId>>,
}

/// Makes sure a connection to `addr` exists (a seed, or a member from the
/// persisted membership).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dial {
    /// Peer address.
    pub addr: SocketAddr,
}

/// Gossip says `node` is alive again: if our link to it is down, dial now
/// instead of waiting out the backoff.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerBack {
    /// The member.
    pub node: NodeId,
}

/// A coordinator could not use these peers for a request (their links are
/// down or timing out): each link dials now if it is due, as a call to the
/// peer would make it. So a node whose links were all cut finds them again
/// at its clients' next requests, not only at its next gossip round or
/// backoff.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PokeLinks {
    /// The peers.
    pub nodes: Vec<NodeId>,
}

/// From a connection: handshake done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerUp {
    /// Who answered.
    pub member: MemberInfo,
    /// The address dialled.
    pub addr: SocketAddr,
    /// The connection actor.
    pub connection: Addr<PeerConnection>,
    /// Its sending side, which callers use directly while the link is up.
    pub outbound: Outbound,
}

/// From a connection: the link is lost or a dial failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerDown {
    /// Who it was (`None`: the link never got as far as the handshake).
    pub node: Option<NodeId>,
    /// The address dialled.
    pub addr: SocketAddr,
    /// The connection actor.
    pub connection: Addr<PeerConnection>,
}

/// From a connection: its requests time out (`degraded`), or it answers
/// again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerHealth {
    /// The peer.
    pub node: NodeId,
    /// Whether requests to it time out.
    pub degraded: bool,
}

/// From a session: a node dialled us.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerIntroduced {
    /// The dialler.
    pub member: MemberInfo,
}
