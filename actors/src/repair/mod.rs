//! Repair: brings replicas back in line. Built so far: read repair — the
//! coordinator of a read hands over the merged version and the replicas
//! that answered stale, and Repair writes the merged version to each of
//! them (a merge on their side, so a replica that meanwhile took a newer
//! write loses nothing). Hinted handoff, Merkle anti-entropy and tombstone
//! reaping (`reap`) join here.

pub mod admin;
pub mod anti_entropy;
pub mod handoff;
pub mod hints;
pub mod merkle;
pub mod rate;
pub mod reap;
pub mod stream;

#[cfg(test)]
mod merkle_bench_tests;

use fnv::{FnvHashMap, FnvHashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tracing::{debug, info, warn, Instrument};

use serde_bytes::ByteBuf;

use crate::bridge::PeerError;
use crate::bridge::{Incoming, LinksChanged};
use crate::membership::MembershipChanged;
use crate::replicas::{ReplicaError, Replicas};
use crate::replicator::{placement, ReadRepair};
use crate::ring::{user_key, Ring};
use crate::storage::{CompactStore, HintCountsQuery, LocalScan, StorageError};
use crate::wire::client::ErrorCode;
use crate::wire::peer::{
    LeafHashes, MerkleLeaves, MerkleNodes, NodeHashes, PeerRefusal, ReapCheck, ReapDrop,
    ReapDropped, ReapHeld, RemoteError, ScanPage, ScanRange, REAP_KEYS_PER_REQUEST_MAX,
};
use crate::NodeId;

/// Most entries one scan page may hold, whatever a peer asks for.
pub const SCAN_PAGE_ENTRIES_MAX: usize = 1024;
/// Most bytes of keys and objects one scan page holds, whatever a peer
/// asks for: a page is one peer frame (8 MiB by default), and one object
/// (at most `object_bytes_max`) always fits beside this.
pub const SCAN_PAGE_BYTES_MAX: u64 = 2 << 20;
/// Most store pages one peer scan request reads when none of their keys
/// is shared with the asking peer; the answer then says where to resume.
pub const SCAN_SKIPPED_PAGES_MAX: usize = 16;

/// Which way a handoff moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node is the target: pull each range from its source.
    Pull,
    /// This node is the source: push each range to its target.
    Push,
}

/// Runs handoff transfers (join or leave), one after another, throttled.
#[derive(Message)]
#[rtype(result = "Result<stream::StreamStats, RepairError>")]
pub struct StreamTransfers {
    /// What to move.
    pub transfers: Vec<handoff::Transfer>,
    /// Which end this node is.
    pub direction: Direction,
    /// Deadline of one streaming request, in milliseconds.
    pub timeout_ms: u64,
}

/// Why a repair step (a handoff transfer, an anti-entropy exchange, a
/// served tree) failed. Callers log it and retry on a later tick.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Asking a peer for a page of a range failed.
    #[error("scan of {peer} failed: {source}")]
    PeerScan {
        /// The peer asked.
        peer: NodeId,
        /// Why.
        source: PeerError,
    },
    /// Writing an object to a peer failed.
    #[error("write to {peer} failed: {source}")]
    PeerWrite {
        /// The peer written to.
        peer: NodeId,
        /// Why.
        source: ReplicaError,
    },
    /// Asking a peer for its Merkle leaves failed.
    #[error("tree request to {peer} failed: {source}")]
    PeerTree {
        /// The peer asked.
        peer: NodeId,
        /// Why.
        source: PeerError,
    },
    /// The local store could not be scanned.
    #[error("local scan failed: {0}")]
    LocalScan(#[source] StorageError),
    /// An object could not be merged into the local store.
    #[error("local merge failed: {0}")]
    LocalMerge(#[source] ReplicaError),
    /// The Storage actor is gone (the node is stopping).
    #[error("storage unavailable: {0}")]
    StorageGone(#[source] MailboxError),
    /// This node's Merkle leaves are being rebuilt (at start, or after a
    /// failed write): no exchange until they are ready.
    #[error("the merkle tree is being rebuilt; no exchange until it is ready")]
    TreeNotReady,
    /// A peer answered a tree request with the wrong number of hashes.
    #[error("a tree reply held {got} hashes for {asked} nodes")]
    BadTreeReply {
        /// Nodes asked about.
        asked: usize,
        /// Hashes received.
        got: usize,
    },
    /// A key without the namespace byte every stored key carries (corrupt
    /// data locally, or a broken peer).
    #[error("a {0} key is too short to carry its namespace")]
    ShortKey(&'static str),
}

/// Default of [`RepairOptions::read_repair_inflight_max`], in writes.
pub const READ_REPAIR_INFLIGHT_MAX_DEFAULT: usize = 1024;
/// Default of [`RepairOptions::stream_bytes_per_s_max`], in bytes per second.
pub const STREAM_BYTES_PER_S_MAX_DEFAULT: u64 = 64 << 20;
/// Default of [`RepairOptions::hint_delivery_bytes_per_s_max`], in bytes
/// per second.
pub const HINT_DELIVERY_BYTES_PER_S_MAX_DEFAULT: u64 = 16 << 20;
/// Default of [`RepairOptions::anti_entropy_interval_ms`], in milliseconds.
pub const ANTI_ENTROPY_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default of [`RepairOptions::anti_entropy_bytes_per_s_max`], in bytes
/// per second.
pub const ANTI_ENTROPY_BYTES_PER_S_MAX_DEFAULT: u64 = 16 << 20;
/// How long a pair tree built for a peer's walk is reused for the walk's
/// deeper levels, in milliseconds (a walk is a handful of round trips).
pub const PAIR_TREE_REUSE_MS: u64 = 30_000;
/// Shortest deadline of one streaming request (a handoff or anti-entropy
/// page), in milliseconds: a page is up to 1 MiB of objects to read and
/// merge, more than a client request's deadline may allow.
pub const STREAM_TIMEOUT_MS_MIN: u64 = 5000;

/// The deadline of one streaming request, in milliseconds, for a node
/// whose client requests get `request_timeout_ms`.
pub fn stream_timeout_ms(request_timeout_ms: u64) -> u64 {
    request_timeout_ms.max(STREAM_TIMEOUT_MS_MIN)
}

/// Limits of repair work; each named with its unit.
#[derive(Clone, Debug)]
pub struct RepairOptions {
    /// Read-repair writes in flight at once; repairs found beyond this are
    /// dropped (and logged) rather than queued without bound.
    pub read_repair_inflight_max: usize,
    /// Deadline of one repair write, in milliseconds.
    pub repair_timeout_ms: u64,
    /// Handoff streaming pace, in bytes per second (0: unthrottled).
    pub stream_bytes_per_s_max: u64,
    /// How often waiting hints are retried, in milliseconds.
    pub hint_retry_ms: u64,
    /// Hint delivery pace, in bytes of objects per second (0: unthrottled).
    pub hint_delivery_bytes_per_s_max: u64,
    /// Time between anti-entropy exchanges (one peer each), in
    /// milliseconds; 0 turns anti-entropy off.
    pub anti_entropy_interval_ms: u64,
    /// Anti-entropy's pace: bytes of objects an exchange pulls per second
    /// (0: unthrottled).
    pub anti_entropy_bytes_per_s_max: u64,
    /// Replicas per key (to know which keys a pair of nodes shares).
    pub replicas_per_key: usize,
    /// The tombstone reaper's settings.
    pub reap: reap::ReapOptions,
}

/// Where the tombstone reaper is in its pass over the local store.
#[derive(Debug, Default)]
struct ReapPass {
    /// A round is under way.
    running: bool,
    /// Where the next round scans from.
    cursor: Vec<u8>,
    /// Entries and tombstones seen in this pass, and keys reaped in it.
    scanned: u64,
    tombstones: u64,
    reaped: u64,
    /// A compaction asked for by the reaper is under way.
    compacting: bool,
}

/// The actor.
pub struct Repair {
    replicas: Replicas,
    options: RepairOptions,
    reachable: Arc<FnvHashSet<NodeId>>,
    in_flight: usize,
    /// Owners whose hints are being delivered now.
    delivering: FnvHashSet<NodeId>,
    /// The ring reads use (anti-entropy compares what two nodes share in it).
    read_ring: Arc<crate::ring::Ring>,
    /// The ring writes use (where a hint goes when its owner left).
    write_ring: Arc<crate::ring::Ring>,
    /// Members nobody suspects: anti-entropy partners.
    healthy: Arc<FnvHashSet<NodeId>>,
    /// Members whose link from here is down or timing out (the Bridge's
    /// view): no hint delivery or exchange is tried with them meanwhile.
    unusable_links: Arc<FnvHashSet<NodeId>>,
    /// Round-robin position over partners.
    next_partner: usize,
    /// An exchange is under way.
    syncing: bool,
    /// Per-peer rate limits on scans and Merkle trees.
    limits: rate::PeerLimits,
    /// The origin of the limits' clock (tokio's, so simulated time counts).
    epoch: tokio::time::Instant,
    /// Per peer: the pair tree its walk is served from, and when it was
    /// built (ms on `epoch`'s clock). Built at a walk's first request.
    served_trees: Arc<Mutex<ServedTrees>>,
    /// Bumped at every change of either ring's members (a reap round
    /// abandons its drop when it moved).
    ring_epoch: Arc<AtomicU64>,
    /// The tombstone reaper's pass.
    reap_pass: ReapPass,
    /// Objects removed here by reaps since the reaper's last compaction.
    reap_removed: Arc<AtomicU64>,
    /// Wall time for the reaper's minimum age (the node's clock seam, so
    /// a simulation's time counts).
    clock: crate::clock::SharedClock,
    span: tracing::Span,
}

/// Pair trees being walked by peers: when each was built (ms) and the tree.
type ServedTrees = FnvHashMap<NodeId, (u64, Arc<merkle::PairTree>)>;

/// Shortest deadline of one anti-entropy exchange, in milliseconds, so a
/// short `repair_timeout_ms` still leaves a tree exchange time to finish.
const SYNC_TIMEOUT_MS_MIN: u64 = 5_000;

/// What one anti-entropy exchange needs, taken from the actor when it
/// starts (the scheduled round and `admin repair` share it).
#[derive(Clone)]
pub(crate) struct SyncParams {
    replicas: Replicas,
    ring: Arc<Ring>,
    n: usize,
    throttle: stream::Throttle,
    timeout_ms: u64,
}

impl SyncParams {
    /// An exchange with `peer`: this node pulls what differs.
    pub(crate) async fn with(&self, peer: &NodeId) -> Result<anti_entropy::SyncStats, RepairError> {
        anti_entropy::sync_with(
            &self.replicas,
            &self.ring,
            self.n,
            peer,
            self.throttle,
            self.timeout_ms,
        )
        .await
    }
}

impl Repair {
    /// The parameters of an exchange started now.
    pub(crate) fn sync_params(&self) -> SyncParams {
        SyncParams {
            replicas: self.replicas.clone(),
            ring: self.read_ring.clone(),
            n: self.options.replicas_per_key,
            throttle: stream::Throttle {
                bytes_per_s_max: self.options.anti_entropy_bytes_per_s_max,
            },
            timeout_ms: self.options.repair_timeout_ms.max(SYNC_TIMEOUT_MS_MIN),
        }
    }
}

impl Repair {
    /// A repair actor writing through `replicas`.
    pub fn new(replicas: Replicas, options: RepairOptions) -> Self {
        let span = tracing::info_span!("repair", node = %replicas.own, actor = "repair");
        Self {
            delivering: FnvHashSet::default(),
            read_ring: Arc::default(),
            write_ring: Arc::default(),
            healthy: Arc::default(),
            unusable_links: Arc::default(),
            next_partner: 0,
            syncing: false,
            limits: rate::PeerLimits::default(),
            epoch: tokio::time::Instant::now(),
            served_trees: Arc::default(),
            ring_epoch: Arc::default(),
            reap_pass: ReapPass::default(),
            reap_removed: Arc::default(),
            clock: std::rc::Rc::new(crate::clock::SystemClock::new()),
            replicas,
            options,
            reachable: Arc::new(FnvHashSet::default()),
            in_flight: 0,
            span,
        }
    }
}

impl Repair {
    /// Reads wall time from `clock` (the system clock by default).
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl Actor for Repair {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = std::time::Duration::from_millis(self.options.hint_retry_ms.max(1));
        ctx.run_interval(every, |act, ctx| act.deliver_hints(ctx));
        if self.options.anti_entropy_interval_ms > 0 {
            let every = std::time::Duration::from_millis(self.options.anti_entropy_interval_ms);
            ctx.run_interval(every, |act, ctx| act.anti_entropy(ctx));
        }
        if self.options.reap.interval_ms > 0 {
            let every = std::time::Duration::from_millis(self.options.reap.interval_ms);
            ctx.run_interval(every, |act, ctx| act.reap_round(ctx));
        }
    }
}

impl Repair {
    /// One tombstone reaper round (see `reap`): only when every member is
    /// reachable, since each must answer.
    fn reap_round(&mut self, ctx: &mut Context<Self>) {
        if self.reap_pass.running {
            return;
        }
        let members = reap::members_of(&self.read_ring, &self.write_ring);
        if !members.contains(&self.replicas.own) {
            return;
        }
        if let Some(away) = members.iter().find(|m| {
            **m != self.replicas.own
                && (!self.reachable.contains(*m) || self.unusable_links.contains(*m))
        }) {
            let span = self.span.clone();
            let _span = span.enter();
            debug!(peer = %away, "tombstone reaper: a member is away; no round");
            return;
        }
        self.reap_pass.running = true;
        let now_ms = self.clock.now_ms();
        let round = reap::Round {
            replicas: self.replicas.clone(),
            read_ring: self.read_ring.clone(),
            write_ring: self.write_ring.clone(),
            n: self.options.replicas_per_key,
            members,
            epoch: self.ring_epoch.clone(),
            epoch_at_start: self.ring_epoch.load(Ordering::Acquire),
            timeout_ms: self.options.repair_timeout_ms.max(SYNC_TIMEOUT_MS_MIN),
            now_ms,
            options: self.options.reap,
            removed: self.reap_removed.clone(),
        };
        let from = self.reap_pass.cursor.clone();
        let work = reap::round(round, from).instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.reap_pass.running = false;
            let span = act.span.clone();
            let _span = span.enter();
            let stats = match result {
                Ok(stats) => stats,
                Err(e) => {
                    info!(error = %e, "tombstone reaper: round stopped; retrying next round");
                    return;
                }
            };
            let pass = &mut act.reap_pass;
            pass.scanned += stats.scanned;
            pass.tombstones += stats.tombstones;
            pass.reaped += stats.reaped;
            if stats.reaped > 0 || stats.kept > 0 {
                info!(reaped = stats.reaped, kept = stats.kept, first_reason = ?stats.first_keep,
                    "tombstone reaper: round done");
            }
            match stats.next {
                Some(next) => pass.cursor = next,
                None => act.end_reap_pass(ctx),
            }
        }));
    }

    /// A pass over the store is over: recount `ringkv_tombstones`, and
    /// compact when reaps removed a large share of the store.
    fn end_reap_pass(&mut self, ctx: &mut Context<Self>) {
        let pass = std::mem::take(&mut self.reap_pass);
        let compacting = pass.compacting;
        self.reap_pass.compacting = compacting;
        self.replicas
            .metrics
            .tombstones_counted(pass.tombstones.saturating_sub(pass.reaped));
        let removed = self.reap_removed.load(Ordering::Relaxed);
        let entries = pass.scanned.saturating_add(removed);
        if compacting || removed == 0 || removed * 100 < entries * reap::REAP_COMPACT_PERCENT {
            return;
        }
        self.reap_pass.compacting = true;
        self.reap_removed.fetch_sub(removed, Ordering::Relaxed);
        info!(
            removed,
            entries = pass.scanned,
            "tombstone reaper: compacting the store to free reaped tombstones' space"
        );
        let compact = self.replicas.storage.send(CompactStore);
        ctx.spawn(compact.into_actor(self).map(|result, act, _| {
            act.reap_pass.compacting = false;
            let span = act.span.clone();
            let _span = span.enter();
            match result {
                Ok(Ok(())) => info!("tombstone reaper: compaction done"),
                Ok(Err(e)) => warn!(error = %e, "tombstone reaper: compaction failed"),
                Err(e) => warn!(error = %e, "tombstone reaper: storage unavailable for compaction"),
            }
        }));
    }
}

impl Repair {
    /// One Merkle exchange with the next healthy partner, round robin.
    fn anti_entropy(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        let mut partners: Vec<NodeId> = self
            .read_ring
            .members()
            .iter()
            .map(|m| m.id.clone())
            .filter(|id| {
                *id != self.replicas.own
                    && self.healthy.contains(id)
                    && !self.unusable_links.contains(id)
            })
            .collect();
        partners.sort();
        if partners.is_empty() {
            return;
        }
        let peer = partners[self.next_partner % partners.len()].clone();
        self.next_partner = self.next_partner.wrapping_add(1);
        self.syncing = true;
        let sync = self.sync_params();
        let work = async move {
            let result = sync.with(&peer).await;
            (peer, result)
        }
        .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|(peer, result), act, _| {
            act.syncing = false;
            let span = act.span.clone();
            let _span = span.enter();
            match result {
                Ok(stats) if stats.differing > 0 => info!(
                    peer = %peer, nodes = stats.leaves, rounds = stats.rounds,
                    differing = stats.differing, keys = stats.pulled.keys,
                    repaired = stats.pulled.changed, bytes = stats.pulled.bytes,
                    "anti-entropy: replicas differed; pulled the differing slices"
                ),
                Ok(stats) => debug!(peer = %peer, rounds = stats.rounds, "anti-entropy: in sync"),
                Err(RepairError::TreeNotReady) => debug!(peer = %peer,
                    "anti-entropy exchange skipped: this node's merkle tree is being rebuilt"),
                Err(e) => debug!(peer = %peer, error = %e, "anti-entropy exchange failed"),
            }
        }));
    }

    /// Hinted handoff: for each owner this node holds hints for, deliver
    /// them to it if it is back, or to each key's current owners if it
    /// left the cluster (a forgotten or departed member never comes back
    /// for them).
    fn deliver_hints(&mut self, ctx: &mut Context<Self>) {
        let counts = self.replicas.storage.send(HintCountsQuery);
        ctx.spawn(counts.into_actor(self).map(|counts, act, ctx| {
            let Ok(counts) = counts else { return };
            for (owner, _, _) in counts {
                act.deliver_to(owner, ctx);
            }
        }));
    }

    fn deliver_to(&mut self, owner: NodeId, ctx: &mut Context<Self>) {
        if self.delivering.contains(&owner) {
            return;
        }
        let member = |ring: &crate::ring::Ring| ring.members().iter().any(|m| m.id == owner);
        let destination = if !member(&self.read_ring) && !member(&self.write_ring) {
            hints::Destination::CurrentOwners
        } else if self.reachable.contains(&owner) && !self.unusable_links.contains(&owner) {
            hints::Destination::Owner
        } else {
            return; // away: its hints wait
        };
        self.delivering.insert(owner.clone());
        let (replicas, write_ring) = (self.replicas.clone(), self.write_ring.clone());
        let (reachable, unusable) = (self.reachable.clone(), self.unusable_links.clone());
        let n = self.options.replicas_per_key;
        let own = self.replicas.own.clone();
        let owners_of = move |key: &[u8]| -> Vec<NodeId> {
            write_ring
                .preference_list(key, n)
                .into_iter()
                .filter(|m| *m != own && reachable.contains(m) && !unusable.contains(m))
                .collect()
        };
        let throttle = stream::Throttle {
            bytes_per_s_max: self.options.hint_delivery_bytes_per_s_max,
        };
        let timeout_ms = self.options.repair_timeout_ms;
        let target = owner.clone();
        let work = async move {
            hints::deliver(
                &replicas,
                &target,
                destination,
                owners_of,
                throttle,
                timeout_ms,
            )
            .await
        }
        .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.delivering.remove(&owner);
            let span = act.span.clone();
            let _span = span.enter();
            let (done, failure) = match result {
                Ok(done) => (done, None),
                Err((done, why)) => (done, Some(why)),
            };
            act.replicas.metrics.hints_delivered(done.hints);
            if done.hints > 0 {
                info!(peer = %owner, delivered = done.hints, bytes = done.bytes,
                    "hinted handoff: delivered writes held for another replica");
            }
            if let Some(why) = failure {
                debug!(peer = %owner, error = %why, "hint delivery stopped; retrying later");
            }
        }));
    }
}

impl Handler<MembershipChanged> for Repair {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        self.reachable = msg.reachable;
        self.healthy = msg.healthy;
        if self.read_ring.members() != msg.read_ring.members()
            || self.write_ring.members() != msg.write_ring.members()
        {
            self.ring_epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.read_ring = msg.read_ring;
        self.write_ring = msg.write_ring;
        let (read, write) = (self.read_ring.clone(), self.write_ring.clone());
        self.limits
            .retain(|id| placement::is_placed(&read, &write, id));
        // Trees built on the old rings compare the wrong ranges.
        lock(&self.served_trees).clear();
        self.deliver_hints(ctx);
    }
}

impl Handler<LinksChanged> for Repair {
    type Result = ();

    fn handle(&mut self, msg: LinksChanged, ctx: &mut Self::Context) {
        let was = std::mem::replace(&mut self.unusable_links, msg.unusable);
        // A link that came back may have hints waiting for it.
        if was.iter().any(|n| !self.unusable_links.contains(n)) {
            self.deliver_hints(ctx);
        }
    }
}

impl Handler<ReadRepair> for Repair {
    type Result = ();

    fn handle(&mut self, msg: ReadRepair, ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        let trace = msg.trace;
        for node in msg.stale {
            if node != self.replicas.own && !self.reachable.contains(&node) {
                continue;
            }
            if self.in_flight >= self.options.read_repair_inflight_max {
                warn!(req = %format_args!("{trace:x}"), peer = %node,
                    limit = self.options.read_repair_inflight_max,
                    "read repair dropped: read_repair_inflight_max reached");
                continue;
            }
            self.in_flight += 1;
            info!(req = %format_args!("{trace:x}"), peer = %node, "read repair: writing the merged version");
            let replicas = self.replicas.clone();
            let (key, object, timeout_ms) = (
                msg.key.clone(),
                msg.object.clone(),
                self.options.repair_timeout_ms,
            );
            let work = async move {
                let result = replicas.write(&node, key, object, trace, timeout_ms).await;
                (node, result)
            }
            .instrument(self.span.clone());
            ctx.spawn(work.into_actor(self).map(move |(node, result), act, _| {
                act.in_flight -= 1;
                let span = act.span.clone();
                let _span = span.enter();
                match result {
                    Ok(()) => {
                        act.replicas.metrics.read_repair();
                        debug!(req = %format_args!("{trace:x}"), peer = %node, "read repair done")
                    }
                    Err(error) => warn!(req = %format_args!("{trace:x}"), peer = %node, %error, "read repair failed"),
                }
            }));
        }
    }
}

impl Handler<StreamTransfers> for Repair {
    type Result = ResponseFuture<Result<stream::StreamStats, RepairError>>;

    fn handle(&mut self, msg: StreamTransfers, _ctx: &mut Self::Context) -> Self::Result {
        let replicas = self.replicas.clone();
        let throttle = stream::Throttle {
            bytes_per_s_max: self.options.stream_bytes_per_s_max,
        };
        let span = self.span.clone();
        Box::pin(
            async move {
                let mut total = stream::StreamStats::default();
                for transfer in &msg.transfers {
                    let stats = match msg.direction {
                        Direction::Pull => stream::pull(&replicas, transfer, throttle, msg.timeout_ms, 0).await?,
                        Direction::Push => stream::push(&replicas, transfer, throttle, msg.timeout_ms, 0).await?,
                    };
                    debug!(source = %transfer.source, target = %transfer.target, keys = stats.keys, "range handed off");
                    total += stats;
                }
                Ok(total)
            }
            .instrument(span),
        )
    }
}

impl Repair {
    /// The checks of a peer's scan or Merkle request (issue 12): the sender
    /// has a place on our rings, and is within its rate limit. Refusals are
    /// logged and answered untouched.
    fn admit(&mut self, from: &NodeId, request: rate::Costly) -> Result<(), RemoteError> {
        let refusal = if !placement::is_placed(&self.read_ring, &self.write_ring, from) {
            PeerRefusal::NotAMember { peer: from.clone() }
        } else {
            let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            if self.limits.allow(from, request, now_ms) {
                return Ok(());
            }
            PeerRefusal::RateLimited {
                peer: from.clone(),
                request: match request {
                    rate::Costly::Scan => "Scan",
                    rate::Costly::MerkleTree => "MerkleLeaves",
                },
                per_s_max: request.per_s_max(),
            }
        };
        let span = self.span.clone();
        let _span = span.enter();
        warn!(peer = %from, reason = %refusal, "refusing a peer request");
        Err(refusal.into())
    }
}

impl Handler<Incoming<ScanRange>> for Repair {
    type Result = ResponseFuture<Result<ScanPage, RemoteError>>;

    /// Serves a page of a range scan (a peer's handoff or anti-entropy
    /// pull): only keys the asking peer shares in this node's view (a
    /// replica or stand-in candidate of their range), so no member can
    /// copy the store; pages of keys it does not share are skipped, at
    /// most `SCAN_SKIPPED_PAGES_MAX` per request.
    fn handle(&mut self, msg: Incoming<ScanRange>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit(&msg.from, rate::Costly::Scan) {
            return Box::pin(async move { Err(refused) });
        }
        let ScanRange {
            start,
            end,
            limit,
            bytes_max,
        } = msg.request;
        let storage = self.replicas.storage.clone();
        let (read_ring, write_ring) = (self.read_ring.clone(), self.write_ring.clone());
        let (n, from) = (self.options.replicas_per_key, msg.from);
        let shared = move |key: &[u8]| {
            user_key(key).is_some_and(|user| {
                placement::shares(&read_ring, &write_ring, n, Ring::key_token(user), &from)
            })
        };
        let (end, limit) = (
            end.map(ByteBuf::into_vec),
            (limit as usize).clamp(1, SCAN_PAGE_ENTRIES_MAX),
        );
        let bytes_max = bytes_max.min(SCAN_PAGE_BYTES_MAX) as usize;
        Box::pin(async move {
            let mut cursor = start.into_vec();
            for _ in 0..SCAN_SKIPPED_PAGES_MAX {
                let page = storage
                    .send(LocalScan {
                        start: cursor.clone(),
                        end: end.clone(),
                        limit,
                        bytes_max,
                    })
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
                let more = page.more;
                let last = page.entries.last().map(|(key, _)| stream::successor(key));
                let entries: Vec<(ByteBuf, ByteBuf)> = page
                    .entries
                    .into_iter()
                    .filter(|(key, _)| shared(key))
                    .map(|(k, v)| (ByteBuf::from(k), ByteBuf::from(v)))
                    .collect();
                let skipped_tail = entries.last().map(|(k, _)| stream::successor(k)) != last;
                let resume = (more && skipped_tail).then(|| last.clone()).flatten();
                match last {
                    Some(next) if entries.is_empty() && more => cursor = next,
                    _ => {
                        return Ok(ScanPage {
                            entries,
                            more,
                            resume: resume.map(ByteBuf::from),
                        })
                    }
                }
            }
            // Nothing shared in SCAN_SKIPPED_PAGES_MAX pages: say where to go on.
            Ok(ScanPage {
                entries: Vec::new(),
                more: true,
                resume: Some(ByteBuf::from(cursor)),
            })
        })
    }
}

/// The served trees, even if a panicking holder poisoned the lock.
fn lock(trees: &Mutex<ServedTrees>) -> std::sync::MutexGuard<'_, ServedTrees> {
    match trees.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Handler<Incoming<MerkleNodes>> for Repair {
    type Result = ResponseFuture<Result<NodeHashes, RemoteError>>;

    /// Serves children of nodes of this node's tree over the keys it shares
    /// with the asking peer (a step of the peer's walk). A walk's first
    /// request (level 0) builds the pair tree and counts against the
    /// peer's Merkle-tree rate limit; its deeper requests are answered from
    /// that tree (for `PAIR_TREE_REUSE_MS`) and count as scan pages.
    fn handle(&mut self, msg: Incoming<MerkleNodes>, _ctx: &mut Self::Context) -> Self::Result {
        let MerkleNodes {
            with,
            level,
            indices,
        } = msg.request;
        let span = self.span.clone();
        if with != msg.from {
            let refusal = PeerRefusal::NotThePair {
                peer: msg.from.clone(),
                with,
            };
            let _span = span.enter();
            warn!(peer = %msg.from, reason = %refusal, "refusing a peer request");
            return Box::pin(async move { Err(refusal.into()) });
        }
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let cached = (level > 0)
            .then(|| lock(&self.served_trees).get(&with).cloned())
            .flatten()
            .filter(|(built, _)| now_ms.saturating_sub(*built) < PAIR_TREE_REUSE_MS)
            .map(|(_, tree)| tree);
        let cost = if cached.is_some() {
            rate::Costly::Scan
        } else {
            rate::Costly::MerkleTree
        };
        if let Err(refused) = self.admit(&msg.from, cost) {
            return Box::pin(async move { Err(refused) });
        }
        let (replicas, ring, n) = (
            self.replicas.clone(),
            self.read_ring.clone(),
            self.options.replicas_per_key,
        );
        let served_trees = self.served_trees.clone();
        Box::pin(
            async move {
                let tree = match cached {
                    Some(tree) => tree,
                    None => {
                        let own = replicas.own.clone();
                        let built = anti_entropy::pair_tree(&replicas, &ring, n, &own, &with)
                            .await
                            .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
                        let Some(built) = built else {
                            return Err(RemoteError::new(
                                ErrorCode::Unavailable,
                                RepairError::TreeNotReady.to_string(),
                            ));
                        };
                        let tree = Arc::new(built);
                        lock(&served_trees).insert(with.clone(), (now_ms, tree.clone()));
                        tree
                    }
                };
                let served = anti_entropy::serve_nodes(&tree, level, &indices).map_err(|why| {
                    warn!(peer = %with, reason = %why, "refusing a malformed MerkleNodes request");
                    RemoteError::new(ErrorCode::BadRequest, why)
                })?;
                replicas
                    .metrics
                    .anti_entropy_bytes(false, anti_entropy::leaf_hash_bytes(served.hashes.len()));
                Ok(served)
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<MerkleLeaves>> for Repair {
    type Result = ResponseFuture<Result<LeafHashes, RemoteError>>;

    /// Serves this node's Merkle leaves over the keys it shares with the
    /// asking peer (the other half of an anti-entropy exchange); only the
    /// asking peer's own pair, within its rate limit.
    fn handle(&mut self, msg: Incoming<MerkleLeaves>, _ctx: &mut Self::Context) -> Self::Result {
        let MerkleLeaves { with, leaves } = msg.request;
        if with != msg.from {
            let refusal = PeerRefusal::NotThePair {
                peer: msg.from.clone(),
                with,
            };
            let span = self.span.clone();
            let _span = span.enter();
            warn!(peer = %msg.from, reason = %refusal, "refusing a peer request");
            return Box::pin(async move { Err(refusal.into()) });
        }
        if let Err(refused) = self.admit(&msg.from, rate::Costly::MerkleTree) {
            return Box::pin(async move { Err(refused) });
        }
        let (replicas, ring, n) = (
            self.replicas.clone(),
            self.read_ring.clone(),
            self.options.replicas_per_key,
        );
        Box::pin(
            async move {
                let served = anti_entropy::serve_tree(&replicas, &ring, n, &with, leaves)
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
                replicas
                    .metrics
                    .anti_entropy_bytes(false, anti_entropy::leaf_hash_bytes(served.hashes.len()));
                Ok(served)
            }
            .instrument(self.span.clone()),
        )
    }
}

impl Repair {
    /// A reap request's checks: the sender has a place on our rings, and
    /// asks about at most `REAP_KEYS_PER_REQUEST_MAX` keys.
    fn admit_reap(&self, from: &NodeId, keys: usize) -> Result<(), RemoteError> {
        if !placement::is_placed(&self.read_ring, &self.write_ring, from) {
            let refusal = PeerRefusal::NotAMember { peer: from.clone() };
            let span = self.span.clone();
            let _span = span.enter();
            warn!(peer = %from, reason = %refusal, "refusing a peer request");
            return Err(refusal.into());
        }
        if keys > REAP_KEYS_PER_REQUEST_MAX {
            return Err(RemoteError::new(
                ErrorCode::BadRequest,
                format!("{keys} keys in one reap request (REAP_KEYS_PER_REQUEST_MAX {REAP_KEYS_PER_REQUEST_MAX})"),
            ));
        }
        Ok(())
    }
}

impl Handler<Incoming<ReapCheck>> for Repair {
    type Result = ResponseFuture<Result<ReapHeld, RemoteError>>;

    /// Answers a reaper's check: what this node holds for each key.
    fn handle(&mut self, msg: Incoming<ReapCheck>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_reap(&msg.from, msg.request.keys.len()) {
            return Box::pin(async move { Err(refused) });
        }
        let replicas = self.replicas.clone();
        let keys: Vec<Vec<u8>> = msg
            .request
            .keys
            .into_iter()
            .map(ByteBuf::into_vec)
            .collect();
        Box::pin(
            async move {
                let keys = reap::held_locally(&replicas, &keys)
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e))?;
                Ok(ReapHeld { keys })
            }
            .instrument(self.span.clone()),
        )
    }
}

impl Handler<Incoming<ReapDrop>> for Repair {
    type Result = ResponseFuture<Result<ReapDropped, RemoteError>>;

    /// Serves a reaper's drop: each compare-and-delete, durably.
    fn handle(&mut self, msg: Incoming<ReapDrop>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_reap(&msg.from, msg.request.tombstones.len()) {
            return Box::pin(async move { Err(refused) });
        }
        let mut tombstones = Vec::with_capacity(msg.request.tombstones.len());
        for (key, object) in msg.request.tombstones {
            match crate::conflict_resolver::Object::decode(&object) {
                Ok(object) if crate::replicas::is_tombstone(&object) => {
                    tombstones.push((key.into_vec(), object))
                }
                _ => {
                    return Box::pin(async move {
                        Err(RemoteError::new(
                            ErrorCode::BadRequest,
                            "a reap drop carries something that is not a tombstone",
                        ))
                    })
                }
            }
        }
        let (replicas, removed, from) =
            (self.replicas.clone(), self.reap_removed.clone(), msg.from);
        let shadow_ms = self.options.reap.age_ms_min;
        Box::pin(
            async move {
                let count = reap::drop_locally(&replicas, tombstones, shadow_ms, &removed)
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e))?;
                if count > 0 {
                    debug!(peer = %from, removed = count, "tombstone reaper: removed tombstones a member reaped");
                }
                Ok(ReapDropped { removed: count })
            }
            .instrument(self.span.clone()),
        )
    }
}
