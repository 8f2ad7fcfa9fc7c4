//! The Bridge: node-to-node TCP.
//!
//! - [`Bridge`] owns the peer listener and one [`PeerConnection`] per peer
//!   address; other actors reach peers only through [`CallPeer`];
//! - [`PeerConnection`] (connection.rs) is the outbound link this node sends
//!   its requests on, with ids, deadlines and reconnect-with-backoff;
//! - [`PeerSession`] (session.rs) serves one inbound link: handshake check,
//!   then each request handed to the node's [`IncomingPeerRequest`] handler.
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

use crate::net::{BoxConnection, Listener, SharedNet};
use crate::wire::peer::{MemberInfo, PeerFailure, PeerReply, PeerRequest};
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

/// Why a peer call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerCallError {
    /// No live connection to that node.
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
    /// The peer answered with a failure.
    #[error("peer failed: {}: {}", .0.code, .0.message)]
    Failed(PeerFailure),
}

/// A request from a peer, for the node's request handler.
#[derive(Message)]
#[rtype(result = "Result<PeerReply, PeerFailure>")]
pub struct IncomingPeerRequest {
    /// The asking node.
    pub from: NodeId,
    /// The client request it serves.
    pub trace: u64,
    /// Time left, in milliseconds.
    pub timeout_ms: u64,
    /// What is asked.
    pub body: PeerRequest,
}

/// Calls `node` with `body`.
#[derive(Message)]
#[rtype(result = "Result<PeerReply, PeerCallError>")]
pub struct CallPeer {
    /// The node to ask.
    pub node: NodeId,
    /// What to ask.
    pub body: PeerRequest,
    /// The client request it serves.
    pub trace: u64,
    /// Deadline from now, in milliseconds.
    pub timeout_ms: u64,
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
    handler: Recipient<IncomingPeerRequest>,
    gossip: Recipient<IncomingPeerRequest>,
    events: Recipient<PeerEvent>,
    by_addr: HashMap<SocketAddr, Addr<PeerConnection>>,
    by_node: HashMap<NodeId, Addr<PeerConnection>>,
    span: tracing::Span,
}

impl Bridge {
    /// A bridge serving `listener`; incoming data requests go to `handler`,
    /// gossip to `gossip`, reachability news to `events`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        own: MemberInfo,
        cluster: String,
        net: SharedNet,
        options: BridgeOptions,
        listener: Box<dyn Listener>,
        handler: Recipient<IncomingPeerRequest>,
        gossip: Recipient<IncomingPeerRequest>,
        events: Recipient<PeerEvent>,
    ) -> Self {
        let span = tracing::info_span!("bridge", node = %own.id, actor = "bridge");
        Self {
            own,
            cluster,
            net,
            options,
            listener: Some(listener),
            handler,
            gossip,
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
            ctx.add_stream(crate::client_api::accept_stream(listener));
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
                    self.handler.clone(),
                    self.gossip.clone(),
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

impl Handler<CallPeer> for Bridge {
    type Result = ResponseFuture<Result<PeerReply, PeerCallError>>;

    fn handle(&mut self, msg: CallPeer, _ctx: &mut Self::Context) -> Self::Result {
        let Some(conn) = self.by_node.get(&msg.node).cloned() else {
            return Box::pin(async { Err(PeerCallError::Unreachable) });
        };
        let call = conn.send(PeerCall {
            body: msg.body,
            trace: msg.trace,
            timeout_ms: msg.timeout_ms,
        });
        Box::pin(async move { call.await.unwrap_or(Err(PeerCallError::Unreachable)) })
    }
}

impl Handler<crate::failure_detector::MembershipChanged> for Bridge {
    type Result = ();

    /// Keeps a connection to every member gossip knows of.
    fn handle(&mut self, msg: crate::failure_detector::MembershipChanged, ctx: &mut Self::Context) {
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
