//! The Replicator: the coordinator of every client request this node takes,
//! and the replica side of every peer request.
//!
//! - `placement`: a key's primaries and stand-in candidates (pure);
//! - `quorum`: counting answers toward R or W, by role (pure);
//! - `fanout`: whom to ask, and stand-ins for who cannot answer (pure);
//! - `coordinator`: the read and write state machines (pure);
//! - `write`: carries out a write (mint locally, send, count; or forward
//!   to a replica);
//! - `read`: carries out a read (ask, answer at R, read repair hand-off);
//! - `timer`: every request's retry, stand-in and deadline timers, on one
//!   tokio timer per Replicator;
//! - `list_walk`: the key listing's cursor and page walk (pure);
//! - `list`: carries out a listing page, and serves peers' span requests;
//! - `expiry`: the storage engine's compaction filter for expired values;
//! - `peer`: the replica side, peers' requests admitted by range.
//!
//! The actor itself only keeps the rings and the reachable and healthy
//! sets (from the FailureDetector's `MembershipChanged`), classifies the
//! key's primaries by them, and spawns the coordination future.

mod coordinator;
pub mod expiry;
mod fanout;
mod held;
pub mod list;
pub mod list_walk;
mod local_read;
mod peer;
pub mod placement;
mod quorum;
mod reach;
mod read;
mod start;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test_support;
mod timer;
mod write;

use fnv::FnvHashSet;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

pub use coordinator::{FinishedRead, ReadCoordinator, ReadStep, WriteCoordinator, WriteStep};
pub use fanout::{Ask, Asking, DcScope, Fanout, Reach, SloppyPolicy};
use held::Held;
pub use list::{CoordinateList, ListPage};
pub use local_read::{LocalRead, LocalReads};
use peer::{peer_refusal, replica_span, replica_write};
pub use quorum::{DcQuorum, Effect, Ending, Need, Role, Tally, Verdict};
pub use read::GetAnswer;
use timer::TimerHub;

use crate::bridge::LinksChanged;
use crate::clock::SharedClock;
use crate::conflict_resolver::{ContextKey, Reconcile, VersionLimits};
use crate::membership::MembershipChanged;
use crate::replicas::Replicas;
use crate::ring::{DcReplication, Ring};
use crate::storage::StorageHealth;
use crate::wire::client::{ClientError, Consistency};
use crate::NodeId;

/// Default replicas per key (N).
pub const N_DEFAULT: usize = 3;
/// Default read and write quorums (R, W), when N allows them.
pub const QUORUM_DEFAULT: usize = 2;
/// Default deadline of a client request, in milliseconds.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 2000;
/// Default silence before a replica gets a stand-in, in milliseconds: far
/// above a healthy replica's answer (about a millisecond on a LAN, a few
/// under load), far below the request deadline.
pub const STAND_IN_AFTER_MS_DEFAULT: u64 = 250;
/// Default silence before a read asks a replica it held in reserve in
/// place of a silent one, in milliseconds: a few times a healthy replica's
/// answer under load (p99 about 2-5 ms on one machine at 32-128 requests
/// in flight), so a paused or hung replica costs a read this long rather
/// than `STAND_IN_AFTER_MS_DEFAULT`, and a healthy cluster seldom sends
/// the extra read.
pub const READ_RETRY_AFTER_MS_DEFAULT: u64 = 20;

/// Replication settings.
#[derive(Clone, Debug)]
pub struct ReplicationOptions {
    /// Replicas per key.
    pub n: usize,
    /// Default read quorum.
    pub r: usize,
    /// Default write quorum.
    pub w: usize,
    /// Default deadline of a client request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Sibling and clock limits.
    pub limits: VersionLimits,
    /// Largest encoded object a write may leave, in bytes (it must fit a
    /// response frame with room to spare).
    pub object_bytes_max: usize,
    /// A primary that has not answered a request within this long gets a
    /// stand-in (sloppy quorum), in milliseconds; a read asks a primary it
    /// held in reserve in its place first (`read_retry_after_ms`).
    pub stand_in_after_ms: u64,
    /// Which primaries a read asks: only as many as R needs (this node
    /// first; the others when one fails or stays silent), or every one.
    pub read_asks: Asking,
    /// Silence after which a read asks a primary it held in reserve in
    /// place of a silent one, in milliseconds (at most `stand_in_after_ms`).
    pub read_retry_after_ms: u64,
    /// Seals the contexts this node hands out and checks the ones clients
    /// send back (the same key on every member).
    pub contexts: ContextKey,
    /// This node's data center (what `local_*` consistency levels count).
    pub dc: String,
    /// Replicas per data center (empty: N over the whole ring).
    pub dc_replication: DcReplication,
}

/// Requests a node holds while it is still bootstrapping (they wait for
/// readiness within their own deadline); more are refused at once.
pub const BOOTSTRAP_HELD_REQUESTS_MAX: usize = 4096;

/// When this node asks stand-ins: for every primary that fails, and for
/// every one still silent after `stand_in_after_ms`.
const SLOPPY: SloppyPolicy = SloppyPolicy {
    replace_failed: true,
    replace_silent: true,
};

/// Read repair: write `object` to the `stale` replicas of `key`. Sent by a
/// read's coordinator once every replica answered (or the deadline
/// passed); handled by Repair.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadRepair {
    /// The key.
    pub key: Vec<u8>,
    /// The merged object, encoded.
    pub object: Vec<u8>,
    /// Replicas whose answer lacked part of it.
    pub stale: Vec<NodeId>,
    /// The client request whose read found them.
    pub trace: u64,
}

/// Coordinate a get.
#[derive(Message)]
#[rtype(result = "Result<GetAnswer, ClientError>")]
pub struct CoordinateGet {
    /// The key.
    pub key: Vec<u8>,
    /// Read quorum (default from config).
    pub r: Option<usize>,
    /// Of the R replies, how many must come from the key's primaries.
    pub pr: Option<usize>,
    /// A consistency level instead of `r` (never both).
    pub consistency: Option<Consistency>,
    /// Deadline override, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client request id.
    pub trace: u64,
    /// Answer only the last writer's value, not every sibling (the RESP
    /// front end's `resp_siblings = lww`).
    pub last_writer_wins: bool,
    /// Answer the context (sealed to the key). A RESP GET has no use for
    /// it and skips sealing it.
    pub with_context: bool,
}

/// Coordinate a put (`value` set) or a delete (`value` `None`).
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, ClientError>")]
pub struct CoordinateWrite {
    /// The key.
    pub key: Vec<u8>,
    /// The value, or `None` to delete.
    pub value: Option<Vec<u8>>,
    /// The client's context.
    pub context: Option<Vec<u8>>,
    /// Also supersede what the coordinating replica holds for the key: its
    /// stored clock joins `context` inside the storage writer's
    /// read-modify-write (no extra read). The RESP front end's SET and DEL;
    /// see `write::WritePlan::supersede_local`.
    pub supersede_local: bool,
    /// The value expires this long after the minting replica accepted the
    /// write, in milliseconds (`None`: never; ignored for a delete).
    pub ttl_ms: Option<u64>,
    /// Write quorum (default from config).
    pub w: Option<usize>,
    /// Of the W acknowledgements, how many must come from primaries.
    pub pw: Option<usize>,
    /// A consistency level instead of `w` (never both).
    pub consistency: Option<Consistency>,
    /// Acknowledgements needed per data center on top of `w` (a forwarded
    /// write's, resolved by the forwarder; empty from clients).
    pub dc_quorums: Vec<DcQuorum>,
    /// Deadline override, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client request id.
    pub trace: u64,
    /// Seal and answer the new version's context (`false`: the caller
    /// does not use it, as the RESP front end's SET and DEL; the answer
    /// is then empty).
    pub with_context: bool,
}

/// The actor.
pub struct Replicator {
    own: NodeId,
    options: ReplicationOptions,
    /// Owners for reads.
    read_ring: Arc<Ring>,
    /// Owners for writes (joining nodes in, leaving nodes out).
    write_ring: Arc<Ring>,
    reachable: Arc<FnvHashSet<NodeId>>,
    /// Members nobody suspects; the others get sloppy-quorum stand-ins.
    healthy: Arc<FnvHashSet<NodeId>>,
    /// This node's own view of its links (the Bridge's): members whose
    /// link is down or whose requests time out are not asked (stand-ins
    /// are); members whose link is up run, whatever gossip says.
    links: LinksChanged,
    /// The node knows its cluster (bootstrap done); until then requests
    /// wait in `held`.
    ready: bool,
    /// Why the local store mints no new versions now (`None`: it does);
    /// writes then go to another replica of the key.
    not_minting: Option<String>,
    held: Vec<Held>,
    replicas: Replicas,
    read_helpers: Arc<read::ReadHelpers>,
    clock: SharedClock,
    /// Every request's timers, on one tokio timer (`timer.rs`).
    timers: TimerHub,
    /// The reads sessions answer without asking (`local_read.rs`): told
    /// the rings whenever they change, once this node is ready.
    local_reads: Rc<LocalReads>,
    span: tracing::Span,
}

impl Replicator {
    /// A replicator; it learns the ring from its first `MembershipChanged`.
    /// Read repairs go to the actor behind `read_repair` (Repair, which
    /// sits above this one).
    pub fn new(
        options: ReplicationOptions,
        replicas: Replicas,
        resolver: Recipient<Reconcile>,
        read_repair: Recipient<ReadRepair>,
        clock: SharedClock,
    ) -> Self {
        let own = replicas.own.clone();
        let span = tracing::info_span!("replicator", node = %own, actor = "replicator");
        let local_reads = Rc::new(LocalReads::new(
            replicas.clone(),
            options.clone(),
            clock.clone(),
            span.clone(),
        ));
        Self {
            replicas,
            own,
            options,
            read_ring: Arc::new(Ring::default()),
            write_ring: Arc::new(Ring::default()),
            reachable: Arc::new(FnvHashSet::default()),
            healthy: Arc::new(FnvHashSet::default()),
            links: LinksChanged::default(),
            ready: false,
            not_minting: None,
            held: Vec::new(),
            read_helpers: Arc::new(read::ReadHelpers {
                resolver,
                read_repair,
            }),
            clock,
            timers: TimerHub::default(),
            local_reads,
            span,
        }
    }

    /// The reads this node's sessions may answer without a message to
    /// this actor (see `local_read.rs`); take it before starting the actor.
    pub fn local_reads(&self) -> Rc<LocalReads> {
        Rc::clone(&self.local_reads)
    }
}

/// A boxed answer to a coordination request.
type Reply<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ClientError>>>>;

impl Actor for Replicator {
    type Context = Context<Self>;
}

impl Handler<MembershipChanged> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, ctx: &mut Self::Context) {
        self.healthy = msg.healthy;
        self.read_ring = msg.read_ring;
        self.write_ring = msg.write_ring;
        self.reachable = msg.reachable;
        if msg.ready && !self.ready {
            self.ready = true;
            self.release_held(ctx);
        }
        if self.ready {
            self.local_reads
                .publish(self.read_ring.clone(), self.write_ring.clone());
        }
    }
}

impl Handler<StorageHealth> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: StorageHealth, _ctx: &mut Self::Context) {
        self.not_minting = msg.0.stopped;
    }
}

impl Handler<LinksChanged> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: LinksChanged, _ctx: &mut Self::Context) {
        self.links = msg;
    }
}

impl Handler<CoordinateWrite> for Replicator {
    type Result = ResponseFuture<Result<Vec<u8>, ClientError>>;

    fn handle(&mut self, msg: CoordinateWrite, _ctx: &mut Self::Context) -> Self::Result {
        self.replicas
            .metrics
            .mailbox_handled(crate::metrics::Mailbox::Replicator);
        if !self.ready {
            let timeout_ms = msg.timeout_ms;
            return self.hold(timeout_ms, |tx| Held::Write(msg, true, tx));
        }
        self.start_write(msg, true)
    }
}

impl Handler<CoordinateGet> for Replicator {
    type Result = Response<Result<GetAnswer, ClientError>>;

    fn handle(&mut self, msg: CoordinateGet, ctx: &mut Self::Context) -> Self::Result {
        self.replicas
            .metrics
            .mailbox_handled(crate::metrics::Mailbox::Replicator);
        if !self.ready {
            let timeout_ms = msg.timeout_ms;
            return Response::fut(self.hold(timeout_ms, |tx| Held::Get(msg, tx)));
        }
        let plan = match self.plan_get(msg) {
            Ok(plan) => plan,
            Err(error) => return Response::reply(Err(error)),
        };
        // Only this node's copy, held in memory: answered now, without a
        // coordination (`read::answer_in_place`).
        if let Some(answer) = read::answer_in_place(&self.replicas, &plan) {
            return Response::reply(answer);
        }
        Response::fut(self.spawn_read(plan, ctx))
    }
}

impl Handler<CoordinateList> for Replicator {
    type Result = ResponseFuture<Result<ListPage, ClientError>>;

    fn handle(&mut self, msg: CoordinateList, _ctx: &mut Self::Context) -> Self::Result {
        self.start_list(msg)
    }
}

impl Replicator {
    /// The span a request's future runs in: `span`, the request's own
    /// (with `req`), when `RUST_LOG` enables DEBUG for the replicator;
    /// otherwise the actor's span, made once. A span per request had its
    /// fields formatted to text at creation by the log layer, entered and
    /// left on every poll: about 5% of a RESP get's CPU in a profile. The
    /// request's lines at info and above carry `req` themselves.
    fn request_span(&self, span: tracing::Span) -> tracing::Span {
        if span.is_disabled() {
            self.span.clone()
        } else {
            span
        }
    }
}
