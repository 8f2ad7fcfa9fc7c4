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
mod rounds;
mod serve;
pub mod stream;

#[cfg(test)]
mod merkle_bench_tests;

use fnv::{FnvHashMap, FnvHashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tracing::{debug, info, warn, Instrument};

use crate::bridge::LinksChanged;
use crate::bridge::PeerError;
use crate::membership::MembershipChanged;
use crate::replicas::{ReplicaError, Replicas};
use crate::replicator::{placement, ReadRepair};
use crate::ring::Ring;
use crate::storage::StorageError;
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

/// The served trees, even if a panicking holder poisoned the lock.
fn lock(trees: &Mutex<ServedTrees>) -> std::sync::MutexGuard<'_, ServedTrees> {
    match trees.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

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
