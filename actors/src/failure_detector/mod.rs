//! The FailureDetector: gossip membership and failure detection (the pure
//! rules are in [`gossip`]), the rings derived from it ([`view`]), and the
//! node's own life cycle: joining (stream the ranges it will own, then
//! serve), serving, leaving (hand its ranges to their new owners, then go).
//!
//! Every `gossip_interval_ms` it bumps its heartbeat and sends its list to
//! `gossip_fanout` random peers through the Bridge, each of which answers
//! with its own list (push-pull); lists from peers arrive as
//! `Incoming<GossipExchange>` and are answered the same way. Every state
//! change is logged once (INFO, naming who reported it) and sent as a
//! [`MembershipChanged`] to the Replicator, Repair and the Bridge. The membership is persisted in the
//! data dir, so a restarted node knows the cluster before anyone answers.
//!
//! Every timer and age here (suspicion, heartbeat ages in `status`,
//! `join_settle_ms`, `bootstrap_wait_ms`) reads the clock's monotonic
//! reading, so stepping the wall clock neither hides a dead member nor
//! makes live ones flap; wall time only gives the gossip generation.

pub mod bootstrap;
pub mod gossip;
mod lifecycle;
mod status;
pub mod view;

use fnv::FnvHashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

pub use gossip::{
    Gossip, GossipMessage, GossipOptions, MemberState, MemberView, PersistedMember, StateChange,
    Tick,
};
pub use lifecycle::{Forget, Leave};
pub use status::StatusQuery;

/// Default longest start-up wait for the seeds, in milliseconds: long
/// enough for nodes started together to bind their listeners, short enough
/// for a node whose seeds are gone to start alone.
pub const BOOTSTRAP_WAIT_MS_DEFAULT: u64 = 2000;
/// Default time a joining or leaving node announces itself before it
/// streams, in gossip rounds (about the rounds news takes to reach every
/// node of a small cluster).
pub const JOIN_SETTLE_GOSSIP_ROUNDS_DEFAULT: u64 = 3;

use crate::bridge::{Bridge, CallPeer, Incoming, PeerBack, PeerEvent};
use crate::clock::SharedClock;
use crate::membership::MembershipChanged;
use crate::repair::StreamTransfers;
use crate::storage::{MintState, StorageHealth};
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::{GossipExchange, GossipReply, MemberInfo, RemoteError};
use crate::NodeId;

/// Adds a subscriber; it gets the current state at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MembershipChanged>);

/// Settings of the failure detector; each limit named with its unit.
#[derive(Clone, Debug)]
pub struct FailureDetectorOptions {
    /// Virtual nodes per unit of weight.
    pub vnodes_per_weight: u32,
    /// Replicas per key (for planning handoff).
    pub replicas: usize,
    /// Replicas per data center (`--dc-replication`; empty: `replicas`
    /// over the whole ring): the rings it publishes place by it.
    pub dc_replication: crate::ring::DcReplication,
    /// Where the membership is kept across restarts (`None`: not kept).
    pub members_file: Option<PathBuf>,
    /// Extra keys for `status` (N, R, W, ...).
    pub status_extra: Vec<(String, rmpv::Value)>,
    /// Gossip timing and limits.
    pub gossip: GossipOptions,
    /// Start as a joining node (a new node entering a running cluster).
    pub join: bool,
    /// How long a joining or leaving node announces itself before it
    /// streams, in milliseconds of the monotonic clock, so every coordinator already sends it (or
    /// still sends it) the live writes for the ranges that move.
    pub join_settle_ms: u64,
    /// Deadline of one streaming request, in milliseconds.
    pub stream_timeout_ms: u64,
    /// The seed addresses this node starts from.
    pub seeds: Vec<SocketAddr>,
    /// Longest wait for the seeds at start-up before coordinating with
    /// what the node knows, in milliseconds of the monotonic clock.
    pub bootstrap_wait_ms: u64,
}

/// The actor.
pub struct FailureDetector {
    own: MemberInfo,
    gossip: Gossip,
    options: FailureDetectorOptions,
    view: MembershipChanged,
    subscribers: Vec<Recipient<MembershipChanged>>,
    bridge: Addr<Bridge>,
    repair: Recipient<StreamTransfers>,
    clock: SharedClock,
    rng: SmallRng,
    lifecycle: lifecycle::Lifecycle,
    /// Ranges this node stopped replicating, still to be pushed to their
    /// new replicas (`lifecycle::LostRanges`).
    lost: lifecycle::LostRanges,
    bootstrap: bootstrap::Bootstrap,
    /// The store's minting state (version actor; why it stopped, if so).
    mint: Option<MintState>,
    /// The seed address each member was reached at (for the bootstrap).
    seed_of: FnvHashMap<NodeId, SocketAddr>,
    /// Writes the membership to the data dir off the arbiter.
    persister: Option<crate::persist::Persister>,
    span: tracing::Span,
}

impl FailureDetector {
    /// A detector for `own`, knowing the persisted `known` members.
    pub fn new(
        own: MemberInfo,
        known: Vec<PersistedMember>,
        options: FailureDetectorOptions,
        bridge: Addr<Bridge>,
        repair: Recipient<StreamTransfers>,
        clock: SharedClock,
    ) -> Self {
        // Wall time only for the generation (it must grow across
        // restarts); every timer below runs on the monotonic clock.
        let now = clock.monotonic_ms();
        let knows_cluster = known.iter().any(|m| m.info.id != own.id);
        let mut gossip = Gossip::new(
            own.clone(),
            known,
            clock.now_ms(),
            now,
            options.gossip.clone(),
        );
        let lifecycle = if options.join {
            gossip.set_own_status(MemberState::Joining, now);
            lifecycle::Lifecycle::Joining {
                since_ms: now,
                streaming: false,
            }
        } else {
            lifecycle::Lifecycle::Serving
        };
        let seed = crate::ring::hash_bytes(own.id.as_str().as_bytes()) ^ gossip.generation();
        let bootstrap = bootstrap::Bootstrap::new(
            &options.seeds,
            knows_cluster,
            now,
            options.bootstrap_wait_ms,
        );
        let span =
            tracing::info_span!("failure_detector", node = %own.id, actor = "failure_detector");
        let persister = options.members_file.clone().and_then(|path| {
            crate::persist::Persister::start(path, span.clone())
                .map_err(|e| warn!(error = %e, "cannot start the membership writer; membership will not be kept"))
                .ok()
        });
        let mut detector = Self {
            view: MembershipChanged::default(),
            own,
            gossip,
            options,
            subscribers: Vec::new(),
            bridge,
            repair,
            clock,
            rng: SmallRng::seed_from_u64(seed),
            lifecycle,
            lost: lifecycle::LostRanges::default(),
            bootstrap,
            mint: None,
            seed_of: FnvHashMap::default(),
            persister,
            span,
        };
        detector.refresh_view();
        detector
    }

    /// Reads the persisted membership (empty when there is none).
    pub fn load_members(path: &std::path::Path) -> Result<Vec<PersistedMember>, String> {
        match std::fs::read(path) {
            Ok(bytes) => rmp_serde::from_slice(&bytes)
                .map_err(|e| format!("{} is not a member list: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    fn persist(&self) {
        let Some(persister) = &self.persister else {
            return;
        };
        match rmp_serde::to_vec_named(&self.gossip.snapshot()) {
            Ok(bytes) => persister.save(bytes),
            Err(e) => warn!(error = %e, "could not encode the member list"),
        }
    }

    fn refresh_view(&mut self) {
        let now = self.clock.monotonic_ms();
        let members = self.gossip.members(now);
        let view = view::cluster_view(&members, self.options.vnodes_per_weight);
        let dcs = &self.options.dc_replication;
        let read_ring = Arc::new(view.read_ring.with_dc_replication(dcs));
        let write_ring = view.write_ring.with_dc_replication(dcs);
        // No member joining or leaving (nearly always): one ring for both,
        // which lets a write's placement walk it once
        // (`replicator::placement::for_write`).
        let write_ring = if write_ring.places_as(&read_ring) {
            Arc::clone(&read_ring)
        } else {
            Arc::new(write_ring)
        };
        self.view = MembershipChanged {
            read_ring,
            write_ring,
            reachable: Arc::new(view.reachable),
            healthy: Arc::new(view.healthy),
            peers: Arc::new(view.peers),
            ready: self.bootstrap.is_ready(),
        };
    }

    /// Sends the current view to every subscriber.
    fn publish(&self) {
        for s in &self.subscribers {
            s.do_send(self.view.clone());
        }
    }

    /// Logs and publishes state changes.
    fn apply(&mut self, changes: Vec<StateChange>) {
        if changes.is_empty() {
            // No state changed, but a member may have moved (a restart on
            // another address, quick enough never to be suspected): the
            // bridge must hear of its new address.
            let now = self.clock.monotonic_ms();
            let moved = self.gossip.members(now).iter().any(|m| {
                m.info.id != self.own.id
                    && self
                        .view
                        .peers
                        .iter()
                        .any(|p| p.id == m.info.id && p != m.info)
            });
            if moved {
                self.refresh_view();
                self.persist();
                self.publish();
            }
            return;
        }
        let span = self.span.clone();
        let _span = span.enter();
        for c in &changes {
            info!(
                peer = %c.node,
                from = c.from.map_or("unknown", MemberState::as_str),
                to = c.to.as_str(),
                reported_by = %c.reported_by,
                "member state changed"
            );
            let was_unseen = matches!(c.from, Some(MemberState::Suspect | MemberState::Down));
            let seen = !matches!(c.to, MemberState::Suspect | MemberState::Down);
            if was_unseen && seen {
                // Alive again: the bridge redials now instead of waiting
                // out its backoff.
                self.bridge.do_send(PeerBack {
                    node: c.node.clone(),
                });
            }
        }
        let before = self.view.read_ring.clone();
        self.refresh_view();
        self.persist();
        self.publish();
        self.rereplicate_forgotten(&changes, &before);
        self.note_lost_ranges(&before);
    }

    /// A push-pull gossip exchange of `encoded` (our list) with `target`;
    /// the answer is merged like any list, and counts for the bootstrap
    /// when `target` was reached at a seed address.
    fn gossip_with(&mut self, target: NodeId, encoded: ByteBuf, ctx: &mut Context<Self>) {
        let call = self.bridge.send(CallPeer {
            node: target.clone(),
            request: GossipExchange { message: encoded },
            trace: 0,
            timeout_ms: self.options.gossip.gossip_interval_ms.max(1),
        });
        // A lost message is the protocol's normal case; the next round
        // sends the list again.
        ctx.spawn(call.into_actor(self).map(move |reply, act, ctx| {
            let Ok(Ok(reply)) = reply else { return };
            let span = act.span.clone();
            let _span = span.enter();
            // An undecodable answer is logged where it is found.
            if act.merge_gossip(&target, &reply.message).is_ok() {
                if let Some(addr) = act.seed_of.remove(&target) {
                    let ready = act.bootstrap.heard(addr);
                    act.on_bootstrap(ready, ctx);
                }
            }
        }));
    }

    /// Publishes readiness once the bootstrap ends.
    fn on_bootstrap(&mut self, ended: Option<bootstrap::Ready>, ctx: &mut Context<Self>) {
        let Some(ended) = ended else { return };
        match ended {
            bootstrap::Ready::Complete => {
                info!(
                    members = self.view.peers.len(),
                    "ready: every seed answered"
                )
            }
            bootstrap::Ready::TimedOut(silent) => warn!(
                ?silent,
                bootstrap_wait_ms = self.options.bootstrap_wait_ms,
                "ready without hearing from every seed (bootstrap_wait_ms passed)"
            ),
        }
        self.refresh_view();
        self.publish();
        self.advance_lifecycle(ctx);
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.monotonic_ms();
        let Tick {
            targets,
            message,
            changes,
        } = self.gossip.tick(now, &mut self.rng);
        self.apply(changes);
        let ended = self.bootstrap.tick(now);
        self.on_bootstrap(ended, ctx);
        self.push_lost_ranges(ctx);
        let Some(encoded) = encode_gossip(&message) else {
            return;
        };
        for target in targets {
            self.gossip_with(target.id, encoded.clone(), ctx);
        }
        self.advance_lifecycle(ctx);
    }
}

impl Actor for FailureDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        info!(
            members = self.view.peers.len(),
            ring_tokens = self.view.read_ring.token_count(),
            generation = self.gossip.generation(),
            joining = self.options.join,
            "failure detector started"
        );
        // Recorded at once, not only at the first state change: a first
        // node that starts alive has none, and this start's generation is
        // on disk before anyone can hear of it.
        self.persist();
        let every = Duration::from_millis(self.options.gossip.gossip_interval_ms.max(1));
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Subscribe> for FailureDetector {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        msg.0.do_send(self.view.clone());
        self.subscribers.push(msg.0);
    }
}

impl Handler<PeerEvent> for FailureDetector {
    type Result = ();

    fn handle(&mut self, event: PeerEvent, ctx: &mut Self::Context) {
        let now = self.clock.monotonic_ms();
        let span = self.span.clone();
        let _span = span.enter();
        match event {
            // A handshake tells us who a peer is and where; whether it is
            // alive is gossip's call (heartbeats, corroborated suspicion).
            // A new link exchanges lists at once rather than at the next
            // round, so a starting cluster forms its ring in one round trip.
            PeerEvent::Reachable { member, addr } => {
                let id = member.id.clone();
                let changes = self.gossip.introduce(member, now);
                self.apply(changes);
                if self.options.seeds.contains(&addr) {
                    self.seed_of.insert(id.clone(), addr);
                }
                if let Some(encoded) = encode_gossip(&self.gossip.message(now)) {
                    self.gossip_with(id, encoded, ctx);
                }
            }
            PeerEvent::Introduced(member) => {
                let changes = self.gossip.introduce(member, now);
                self.apply(changes);
            }
            PeerEvent::DialFailed(addr) => {
                // A seed still starting refuses too: only an answer (or
                // bootstrap_wait_ms) settles it.
                if !self.bootstrap.is_ready() {
                    debug!(%addr, "seed refused the connection; waiting for it");
                }
            }
            PeerEvent::Unreachable(node) => {
                debug!(peer = %node, "connection to peer lost; gossip decides its state");
            }
        }
    }
}

impl FailureDetector {
    /// Merges an encoded member list from `from` (pushed to us, or the
    /// answer to our push) and publishes what changed.
    fn merge_gossip(&mut self, from: &NodeId, encoded: &[u8]) -> Result<(), RemoteError> {
        let message: GossipMessage = rmp_serde::from_slice(encoded).map_err(|e| {
            debug!(peer = %from, error = %e, "undecodable gossip");
            RemoteError::new(ErrorCode::BadRequest, format!("undecodable gossip: {e}"))
        })?;
        let changes = self
            .gossip
            .receive(from, message, self.clock.monotonic_ms());
        self.apply(changes);
        Ok(())
    }
}

impl Handler<Incoming<GossipExchange>> for FailureDetector {
    type Result = Result<GossipReply, RemoteError>;

    fn handle(&mut self, msg: Incoming<GossipExchange>, _ctx: &mut Self::Context) -> Self::Result {
        let span = self.span.clone();
        let _span = span.enter();
        self.merge_gossip(&msg.from, &msg.request.message)?;
        let reply = self.gossip.message(self.clock.monotonic_ms());
        let message = rmp_serde::to_vec_named(&reply).map_err(|e| {
            RemoteError::new(ErrorCode::Internal, format!("cannot encode gossip: {e}"))
        })?;
        Ok(GossipReply {
            message: ByteBuf::from(message),
        })
    }
}

impl Handler<StorageHealth> for FailureDetector {
    type Result = ();

    fn handle(&mut self, msg: StorageHealth, _ctx: &mut Self::Context) {
        self.mint = Some(msg.0);
    }
}

/// Our member list for the wire (`None`, logged, if it cannot be encoded).
fn encode_gossip(message: &GossipMessage) -> Option<ByteBuf> {
    rmp_serde::to_vec_named(message)
        .map(ByteBuf::from)
        .map_err(|e| warn!(error = %e, "could not encode gossip"))
        .ok()
}

/// Maps a refused life-cycle step to a client error.
fn refused(message: impl Into<String>) -> ClientError {
    ClientError::new(ErrorCode::BadRequest, message)
}
