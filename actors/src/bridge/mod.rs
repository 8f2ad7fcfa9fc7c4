//! The Bridge: node-to-node TCP.
//!
//! - [`Bridge`] owns the peer listener and one [`PeerConnection`] per peer
//!   address; other actors reach peers only through [`CallPeer`];
//! - [`PeerConnection`] (connection.rs) is the outbound link this node sends
//!   its requests on, with ids, deadlines and reconnect-with-backoff;
//! - [`PeerSession`] (session.rs) serves one inbound link: handshake check,
//!   then each request handed, as an [`Incoming`] of its type, to the actor
//!   that owns that type ([`PeerHandlers`]).
//!
//! Calls are typed: [`CallPeer<T>`] answers `T`'s reply type or a
//! [`PeerError`]; the reply's type is checked in one place
//! (`PeerRpc::reply_from`), never by callers.
//!
//! Each pair of nodes thus has two TCP connections, one per direction of
//! requests; a response always travels on the connection its request came on.

mod connection;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;

use actix::prelude::*;
use tracing::{info, warn};

pub use connection::{PeerCall, PeerConnection, Shutdown};
pub use session::PeerSession;

use crate::membership::MembershipChanged;
use crate::net::{accept_stream, BoxConnection, Listener, SharedNet};
use crate::wire::client::ErrorCode;
use crate::wire::peer::{
    ForwardedWrite, GossipExchange, HintedWrite, MemberInfo, MerkleLeaves, PeerRpc, RemoteError,
    ReplicaRead, ReplicaWrite, ScanRange,
};
use crate::NodeId;

/// Limits of the bridge; each named with its unit.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// Largest peer frame body, in bytes.
    pub max_frame_bytes: usize,
    /// Time allowed for TCP connect and for the handshake, in milliseconds.
    pub connect_timeout_ms: u64,
    /// First redial delay after a lost link, in milliseconds (doubles).
    pub reconnect_backoff_min_ms: u64,
    /// Cap on the redial delay, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// Requests one peer may have in flight here before the rest are refused.
    pub peer_inflight_max: usize,
    /// Mailbox capacity of each connection actor, in messages.
    pub peer_mailbox_max: usize,
    /// Response bytes queued for one inbound peer's socket. A peer that
    /// lets more pile up (it sends requests but does not read the answers)
    /// has its session closed; it redials like after any lost link. One
    /// response is always accepted into an empty queue, however large.
    pub peer_write_queue_bytes_max: usize,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        Self {
            max_frame_bytes: crate::wire::MAX_FRAME_BYTES_DEFAULT + 64 * 1024,
            connect_timeout_ms: 1000,
            reconnect_backoff_min_ms: 100,
            reconnect_backoff_max_ms: 5000,
            peer_inflight_max: 4096,
            peer_mailbox_max: 4096,
            peer_write_queue_bytes_max: 64 << 20,
        }
    }
}

/// Why a peer call failed: the typed error of every call through the
/// bridge. [`PeerError::is_timeout`] tells the quorum logic whether the
/// peer may still act on the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No live connection to that node: the request was not sent.
    #[error("peer unreachable")]
    Unreachable,
    /// The link dropped while the request was pending.
    #[error("peer disconnected")]
    Disconnected,
    /// No answer before the deadline.
    #[error("peer did not answer within {timeout_ms} ms")]
    Timeout {
        /// The deadline that passed.
        timeout_ms: u64,
    },
    /// The peer answered with the reply of another request type (a bug on
    /// one side; the link itself is fine).
    #[error("peer answered a {asked} request with a {got} reply")]
    UnexpectedReply {
        /// The request sent.
        asked: &'static str,
        /// The reply's request type.
        got: &'static str,
    },
    /// The peer served the request and it failed there.
    #[error("peer failed: {0}")]
    Remote(RemoteError),
    /// The request does not fit one peer frame (`max_frame_bytes` of the
    /// peer protocol); it was not sent.
    #[error("request of {bytes} bytes is over the peer frame limit of {limit} bytes")]
    TooLarge {
        /// The encoded request's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An actor on this node is gone (shutting down).
    #[error("bridge unavailable: {0}")]
    Local(String),
}

impl PeerError {
    /// Whether the peer may still act on the request (it timed out here
    /// or there), as opposed to a failure that ruled the request out.
    pub fn is_timeout(&self) -> bool {
        match self {
            PeerError::Timeout { .. } => true,
            PeerError::Remote(e) => e.code == ErrorCode::Timeout,
            _ => false,
        }
    }

    /// The client error code this failure maps to when a client's request
    /// depended on it alone (a forwarded write).
    pub fn client_code(&self) -> ErrorCode {
        match self {
            PeerError::Unreachable => ErrorCode::Unavailable,
            PeerError::Remote(e) => e.code,
            PeerError::TooLarge { .. } => ErrorCode::TooLarge,
            PeerError::UnexpectedReply { .. } | PeerError::Local(_) => ErrorCode::Internal,
            PeerError::Disconnected | PeerError::Timeout { .. } => ErrorCode::Timeout,
        }
    }
}

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

/// Where the bridge delivers each type of incoming request: the actor that
/// owns it (the replicator serves replica reads and writes and forwarded
/// writes, repair serves scans and Merkle leaves, the failure detector
/// gossip).
#[derive(Clone)]
pub struct PeerHandlers {
    /// Replica reads.
    pub read: Recipient<Incoming<ReplicaRead>>,
    /// Replica writes.
    pub write: Recipient<Incoming<ReplicaWrite>>,
    /// Sloppy-quorum writes held for another replica.
    pub hinted_write: Recipient<Incoming<HintedWrite>>,
    /// Client writes forwarded to a replica of the key.
    pub coordinate: Recipient<Incoming<ForwardedWrite>>,
    /// Range scans (handoff, anti-entropy).
    pub scan: Recipient<Incoming<ScanRange>>,
    /// Merkle leaves (anti-entropy).
    pub merkle_leaves: Recipient<Incoming<MerkleLeaves>>,
    /// Gossip.
    pub gossip: Recipient<Incoming<GossipExchange>>,
}

/// Reachability news, for the failure detector.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub enum PeerEvent {
    /// Our outbound link to `member` completed its handshake.
    Reachable(MemberInfo),
    /// Our outbound link to `node` is gone.
    Unreachable(NodeId),
    /// `member` dialled us (we learn of it, not that we can reach it).
    Introduced(MemberInfo),
}

/// Makes sure a connection to `addr` exists.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dial {
    /// Peer address.
    pub addr: SocketAddr,
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
}

/// From a connection: link lost.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerDown {
    /// Who it was.
    pub node: NodeId,
    /// The address dialled.
    pub addr: SocketAddr,
}

/// From a session: a node dialled us.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerIntroduced {
    /// The dialler.
    pub member: MemberInfo,
}

/// The Bridge actor.
pub struct Bridge {
    own: MemberInfo,
    cluster: String,
    net: SharedNet,
    options: BridgeOptions,
    listener: Option<Box<dyn Listener>>,
    handlers: PeerHandlers,
    events: Recipient<PeerEvent>,
    by_addr: HashMap<SocketAddr, Addr<PeerConnection>>,
    by_node: HashMap<NodeId, Addr<PeerConnection>>,
    span: tracing::Span,
}

impl Bridge {
    /// A bridge serving `listener`; incoming requests go to `handlers`,
    /// reachability news to `events`.
    pub fn new(
        own: MemberInfo,
        cluster: String,
        net: SharedNet,
        options: BridgeOptions,
        listener: Box<dyn Listener>,
        handlers: PeerHandlers,
        events: Recipient<PeerEvent>,
    ) -> Self {
        let span = tracing::info_span!("bridge", node = %own.id, actor = "bridge");
        Self {
            own,
            cluster,
            net,
            options,
            listener: Some(listener),
            handlers,
            events,
            by_addr: HashMap::new(),
            by_node: HashMap::new(),
            span,
        }
    }

    fn dial(&mut self, addr: SocketAddr, ctx: &mut Context<Self>) {
        if self.by_addr.contains_key(&addr) || self.own.peer_addr == addr.to_string() {
            return;
        }
        let conn = PeerConnection::new(
            addr,
            self.own.clone(),
            self.cluster.clone(),
            self.net.clone(),
            ctx.address(),
            self.options.clone(),
        )
        .start();
        self.by_addr.insert(addr, conn);
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(listener) = self.listener.take() {
            ctx.add_stream(accept_stream(listener));
        }
    }
}

impl StreamHandler<std::io::Result<(BoxConnection, SocketAddr)>> for Bridge {
    fn handle(
        &mut self,
        item: std::io::Result<(BoxConnection, SocketAddr)>,
        ctx: &mut Self::Context,
    ) {
        match item {
            Ok((conn, remote)) => {
                PeerSession::new(
                    conn,
                    self.own.clone(),
                    self.cluster.clone(),
                    self.handlers.clone(),
                    ctx.address(),
                    self.options.clone(),
                    remote,
                )
                .start();
            }
            Err(e) => {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(error = %e, "peer accept failed");
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        warn!("peer listener closed");
    }
}

impl Handler<Dial> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: Dial, ctx: &mut Self::Context) {
        self.dial(msg.addr, ctx);
    }
}

impl Handler<PeerUp> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerUp, _ctx: &mut Self::Context) {
        if let Some(existing) = self.by_node.get(&msg.member.id) {
            if *existing != msg.connection {
                // The same node under a second address: keep the first link.
                let span = self.span.clone();
                let _span = span.enter();
                info!(peer = %msg.member.id, addr = %msg.addr, "duplicate link to peer; closing it");
                msg.connection.do_send(Shutdown);
                self.by_addr.remove(&msg.addr);
                return;
            }
        }
        self.by_node.insert(msg.member.id.clone(), msg.connection);
        self.events.do_send(PeerEvent::Reachable(msg.member));
    }
}

impl Handler<PeerDown> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerDown, _ctx: &mut Self::Context) {
        self.events.do_send(PeerEvent::Unreachable(msg.node));
    }
}

impl Handler<PeerIntroduced> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerIntroduced, ctx: &mut Self::Context) {
        if !self.by_node.contains_key(&msg.member.id) {
            if let Ok(addr) = msg.member.peer_addr.parse() {
                self.dial(addr, ctx);
            }
        }
        self.events.do_send(PeerEvent::Introduced(msg.member));
    }
}

impl<T: PeerRpc> Handler<CallPeer<T>> for Bridge {
    type Result = ResponseFuture<Result<T::Reply, PeerError>>;

    fn handle(&mut self, msg: CallPeer<T>, _ctx: &mut Self::Context) -> Self::Result {
        let Some(conn) = self.by_node.get(&msg.node).cloned() else {
            return Box::pin(async { Err(PeerError::Unreachable) });
        };
        let call = conn.send(PeerCall {
            body: msg.request.into_request(),
            trace: msg.trace,
            timeout_ms: msg.timeout_ms,
        });
        Box::pin(async move {
            let reply = call.await.unwrap_or(Err(PeerError::Unreachable))?;
            T::reply_from(reply).map_err(|other| PeerError::UnexpectedReply {
                asked: T::NAME,
                got: other.name(),
            })
        })
    }
}

impl Handler<MembershipChanged> for Bridge {
    type Result = ();

    /// Keeps a connection to every member gossip knows of.
    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        for peer in msg.peers.iter() {
            if peer.id == self.own.id || self.by_node.contains_key(&peer.id) {
                continue;
            }
            if let Ok(addr) = peer.peer_addr.parse() {
                self.dial(addr, ctx);
            }
        }
    }
}
