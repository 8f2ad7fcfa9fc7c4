//! The Bridge: node-to-node TCP.
//!
//! - [`Bridge`] owns the peer listener and one [`PeerConnection`] per peer
//!   address; other actors reach peers only through [`CallPeer`];
//! - [`PeerConnection`] (connection.rs) is the outbound link this node sends
//!   its requests on, with ids, deadlines and reconnect-with-backoff; its
//!   sending side (outbound.rs) is shared with callers, who seal and queue
//!   their requests on an up link themselves, and kept with the connection
//!   in the [`LinkDirectory`] (directory.rs) the Bridge publishes; the
//!   deadlines of requests sent and served share one timer per link
//!   (deadlines.rs);
//! - [`PeerSession`] (session.rs) serves one inbound link: handshake check,
//!   then each request handed, as an [`Incoming`] of its type, to the actor
//!   that owns that type ([`PeerHandlers`]);
//! - [`handshake`] and [`seal`] are the peer authentication, pure: the
//!   mutual challenge-response over the cluster secret, and the MAC that
//!   binds every later frame to its session, direction and place.
//!
//! Without a cluster secret the node is in protected mode: the bridge
//! accepts connections from loopback addresses only ([`AcceptPolicy`]),
//! and the handshake runs with a public key (`handshake::PeerKey`).
//!
//! Calls are typed: [`CallPeer<T>`] answers `T`'s reply type or a
//! [`PeerError`]; the reply's type is checked in one place
//! (`PeerRpc::reply_from`), never by callers.
//!
//! Each pair of nodes thus has two TCP connections, one per direction of
//! requests; a response always travels on the connection its request came on.

mod connection;
mod deadlines;
mod directory;
mod error;
pub mod handshake;
mod messages;
mod options;
mod outbound;
pub mod seal;
mod session;
#[cfg(test)]
mod session_tests;

use fnv::{FnvHashMap, FnvHashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tracing::{debug, info, warn};

pub use connection::{PeerCall, PeerConnection, RedialNow, Shutdown};
use directory::call_on;
pub use directory::LinkDirectory;
pub use error::PeerError;
pub use messages::{
    CallPeer, Dial, Incoming, LinksChanged, PeerBack, PeerDirect, PeerDown, PeerEvent,
    PeerHandlers, PeerHealth, PeerIntroduced, PeerUp, PokeLinks,
};
pub use options::{
    peer_max_frame_bytes, BridgeOptions, NonceRng, PeerAuth, RECONNECT_BACKOFF_MAX_MS_DEFAULT,
};
use outbound::Outbound;
pub use session::PeerSession;

use crate::membership::MembershipChanged;
use crate::net::{accept_stream, AcceptPolicy, BoxConnection, Listener, SharedNet};
use crate::wire::peer::{MemberInfo, PeerRpc};
use crate::NodeId;

/// Draws a fresh handshake nonce.
fn fresh_nonce(rng: &NonceRng) -> handshake::Nonce {
    let mut nonce = [0u8; handshake::NONCE_BYTES];
    rng.borrow_mut().fill_bytes(&mut nonce);
    nonce
}

/// The state of our outbound link to one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    /// Dialling (requests wait for it).
    Connecting,
    /// Handshake done, requests answered.
    Up,
    /// Up, but a request timed out and nothing answered since.
    Degraded,
    /// Lost; redialling with backoff.
    Down,
}

/// Our link to one member.
struct Link {
    /// The address the connection dials.
    addr: SocketAddr,
    /// The member's current address as gossip reports it: when it moves
    /// (a restart on another port), a link that is not up is replaced.
    wanted: SocketAddr,
    connection: Addr<PeerConnection>,
    /// The connection's sending side, once it was up (callers send
    /// through it while it is up; see [`LinkDirectory`]).
    outbound: Option<Outbound>,
    state: LinkState,
}

/// The Bridge actor.
pub struct Bridge {
    own: MemberInfo,
    /// Who this node is in handshakes, and what it proves.
    credentials: Rc<handshake::Credentials>,
    nonces: NonceRng,
    accept: AcceptPolicy,
    net: SharedNet,
    options: BridgeOptions,
    listener: Option<Box<dyn Listener>>,
    handlers: PeerHandlers,
    events: Recipient<PeerEvent>,
    /// Links to members whose id we know.
    links: FnvHashMap<NodeId, Link>,
    /// Dials to addresses whose node we do not know yet (seeds), and
    /// whether their last attempt failed.
    seeds: FnvHashMap<SocketAddr, (Addr<PeerConnection>, bool)>,
    /// Who hears about [`LinksChanged`].
    watchers: Vec<Recipient<LinksChanged>>,
    /// What they heard last.
    published: LinksChanged,
    /// Every link's connection, for callers that skip this mailbox.
    directory: LinkDirectory,
    span: tracing::Span,
}

impl Bridge {
    /// A bridge serving `listener`; incoming requests go to `handlers`,
    /// reachability news to `events`, link health to `watchers`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        own: MemberInfo,
        cluster: String,
        auth: PeerAuth,
        net: SharedNet,
        options: BridgeOptions,
        listener: Box<dyn Listener>,
        handlers: PeerHandlers,
        events: Recipient<PeerEvent>,
        watchers: Vec<Recipient<LinksChanged>>,
    ) -> Self {
        let span = tracing::info_span!("bridge", node = %own.id, actor = "bridge");
        let credentials = Rc::new(handshake::Credentials {
            own: own.clone(),
            cluster,
            key: auth.key,
        });
        Self {
            own,
            credentials,
            nonces: auth.nonces,
            accept: auth.accept,
            net,
            options,
            listener: Some(listener),
            handlers,
            events,
            links: FnvHashMap::default(),
            seeds: FnvHashMap::default(),
            watchers,
            directory: LinkDirectory::default(),
            published: LinksChanged::default(),
            span,
        }
    }

    /// Keeps `directory` up to date with this Bridge's links (they start
    /// in a directory of its own).
    pub fn with_directory(mut self, directory: LinkDirectory) -> Self {
        self.directory = directory;
        self
    }

    fn connect(&self, addr: SocketAddr, ctx: &mut Context<Self>) -> Addr<PeerConnection> {
        PeerConnection::new(
            addr,
            Outbound::new(self.options.max_frame_bytes),
            self.credentials.clone(),
            self.nonces.clone(),
            self.net.clone(),
            ctx.address(),
            self.options.clone(),
        )
        .start()
    }

    fn is_own(&self, addr: SocketAddr) -> bool {
        self.own.peer_addr == addr.to_string()
    }

    /// Makes sure `member` has a link to its current address.
    fn follow(&mut self, member: &MemberInfo, ctx: &mut Context<Self>) {
        if member.id == self.own.id {
            return;
        }
        let Ok(addr) = member.peer_addr.parse::<SocketAddr>() else {
            return;
        };
        if let Some(link) = self.links.get_mut(&member.id) {
            link.wanted = addr;
            let live = matches!(link.state, LinkState::Up | LinkState::Degraded);
            if link.addr == addr || live {
                // Same address, or a live link (which wins over the news
                // until it drops).
                return;
            }
            let _span = self.span.enter();
            info!(peer = %member.id, from = %link.addr, to = %addr, "peer moved; dialling its new address");
            link.connection.do_send(Shutdown);
            self.links.remove(&member.id);
        }
        // A seed dial to that address becomes this member's link.
        let (connection, state) = match self.seeds.remove(&addr) {
            Some((connection, true)) => (connection, LinkState::Down),
            Some((connection, false)) => (connection, LinkState::Connecting),
            None => (self.connect(addr, ctx), LinkState::Connecting),
        };
        self.links.insert(
            member.id.clone(),
            Link {
                addr,
                wanted: addr,
                connection,
                outbound: None,
                state,
            },
        );
        self.publish();
    }

    /// News says `node` runs (gossip heard it, or it dialled us): a down
    /// link to it is redialled now, and usable again meanwhile (requests
    /// wait for the dial rather than failing).
    fn redial(&mut self, node: &NodeId) {
        if let Some(link) = self.links.get_mut(node) {
            if link.state == LinkState::Down {
                link.connection.do_send(RedialNow);
                link.state = LinkState::Connecting;
                self.publish();
            }
        }
    }

    /// Tells the watchers which links cannot be used and which are up,
    /// if that changed.
    fn publish(&mut self) {
        self.directory.set(&self.links);
        let having = |states: &[LinkState]| -> FnvHashSet<NodeId> {
            self.links
                .iter()
                .filter(|(_, l)| states.contains(&l.state))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let unusable = having(&[LinkState::Down, LinkState::Degraded]);
        let up = having(&[LinkState::Up]);
        if unusable == *self.published.unusable && up == *self.published.up {
            return;
        }
        self.published = LinksChanged {
            unusable: Arc::new(unusable),
            up: Arc::new(up),
        };
        for w in &self.watchers {
            w.do_send(self.published.clone());
        }
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
            Ok((_conn, remote)) if !self.accept.admits(remote) => {
                let _span = self.span.enter();
                warn!(%remote, "refusing peer connection from a non-loopback address: \
                    protected mode (this node has no --cluster-secret-file)");
            }
            Ok((conn, remote)) => {
                PeerSession::new(
                    conn,
                    self.credentials.clone(),
                    self.nonces.clone(),
                    self.handlers.clone(),
                    ctx.address(),
                    self.options.clone(),
                    remote,
                )
                .start();
            }
            Err(e) => {
                let _span = self.span.enter();
                warn!(error = %e, "peer accept failed");
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        let _span = self.span.enter();
        warn!("peer listener closed");
    }
}

impl Handler<Dial> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: Dial, ctx: &mut Self::Context) {
        let known = self.links.values().any(|l| l.addr == msg.addr);
        if known || self.seeds.contains_key(&msg.addr) || self.is_own(msg.addr) {
            return;
        }
        let connection = self.connect(msg.addr, ctx);
        self.seeds.insert(msg.addr, (connection, false));
    }
}

impl Handler<PeerUp> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerUp, _ctx: &mut Self::Context) {
        if self.seeds.get(&msg.addr).map(|s| &s.0) == Some(&msg.connection) {
            self.seeds.remove(&msg.addr);
        }
        let id = msg.member.id.clone();
        if let Some(existing) = self.links.get(&id) {
            if existing.connection != msg.connection {
                let live = matches!(existing.state, LinkState::Up | LinkState::Degraded);
                let _span = self.span.enter();
                if live {
                    // The same node under a second address: keep the live link.
                    info!(peer = %id, addr = %msg.addr, "duplicate link to peer; closing it");
                    msg.connection.do_send(Shutdown);
                    return;
                }
                debug!(peer = %id, addr = %msg.addr, "a newer link to the peer replaces a dead one");
                existing.connection.do_send(Shutdown);
            }
        }
        let wanted = self.links.get(&id).map_or(msg.addr, |l| l.wanted);
        self.links.insert(
            id,
            Link {
                addr: msg.addr,
                wanted,
                connection: msg.connection,
                outbound: Some(msg.outbound),
                state: LinkState::Up,
            },
        );
        self.publish();
        self.events.do_send(PeerEvent::Reachable {
            member: msg.member,
            addr: msg.addr,
        });
    }
}

impl Handler<PeerDown> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerDown, ctx: &mut Self::Context) {
        let owner = self
            .links
            .iter()
            .find(|(_, l)| l.connection == msg.connection)
            .map(|(id, _)| id.clone());
        let Some(id) = owner else {
            if let Some(seed) = self.seeds.get_mut(&msg.addr) {
                if seed.0 == msg.connection {
                    seed.1 = true;
                    self.events.do_send(PeerEvent::DialFailed(msg.addr));
                }
            }
            return;
        };
        let mut moved = None;
        if let Some(link) = self.links.get_mut(&id) {
            let was_live = matches!(link.state, LinkState::Up | LinkState::Degraded);
            link.state = LinkState::Down;
            if link.wanted != link.addr {
                moved = Some(MemberInfo {
                    id: id.clone(),
                    peer_addr: link.wanted.to_string(),
                    ..self.own.clone()
                });
            }
            if was_live || msg.node.is_some() {
                self.events.do_send(PeerEvent::Unreachable(id.clone()));
            }
        }
        self.publish();
        if let Some(member) = moved {
            // It moved while we held a live link to its old address.
            self.follow(&member, ctx);
        }
    }
}

impl Handler<PeerHealth> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerHealth, _ctx: &mut Self::Context) {
        if let Some(link) = self.links.get_mut(&msg.node) {
            if matches!(link.state, LinkState::Up | LinkState::Degraded) {
                link.state = if msg.degraded {
                    LinkState::Degraded
                } else {
                    LinkState::Up
                };
            }
        }
        self.publish();
    }
}

impl Handler<PeerIntroduced> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerIntroduced, ctx: &mut Self::Context) {
        // It can reach us, so it runs: try our way to it now, at the
        // address it gives (it may have moved).
        self.follow(&msg.member, ctx);
        self.redial(&msg.member.id);
        self.events.do_send(PeerEvent::Introduced(msg.member));
    }
}

impl Handler<PokeLinks> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PokeLinks, _ctx: &mut Self::Context) {
        for node in &msg.nodes {
            if let Some(link) = self.links.get(node) {
                link.connection.do_send(connection::Poke);
            }
        }
    }
}

impl Handler<PeerBack> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: PeerBack, _ctx: &mut Self::Context) {
        self.redial(&msg.node);
    }
}

impl<T: PeerRpc> Handler<CallPeer<T>> for Bridge {
    type Result = ResponseFuture<Result<T::Reply, PeerError>>;

    fn handle(&mut self, msg: CallPeer<T>, _ctx: &mut Self::Context) -> Self::Result {
        let Some(link) = self.links.get(&msg.node) else {
            return Box::pin(async { Err(PeerError::Unreachable) });
        };
        Box::pin(call_on(
            &link.connection,
            link.outbound.as_ref(),
            msg.request,
            msg.trace,
            msg.timeout_ms,
        ))
    }
}

impl Handler<MembershipChanged> for Bridge {
    type Result = ();

    /// Keeps a link to every member gossip knows of, at its current address.
    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        for peer in msg.peers.iter() {
            self.follow(peer, ctx);
        }
    }
}
