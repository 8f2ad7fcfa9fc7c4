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
pub mod list;
pub mod list_walk;
mod local_read;
mod peer;
pub mod placement;
mod quorum;
mod read;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test_support;
mod timer;
mod write;

use fnv::FnvHashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::Instrument;

pub use coordinator::{FinishedRead, ReadCoordinator, ReadStep, WriteCoordinator, WriteStep};
pub use fanout::{Ask, Asking, DcScope, Fanout, Reach, SloppyPolicy};
pub use list::{CoordinateList, ListPage};
pub use local_read::{LocalRead, LocalReads};
use peer::{peer_refusal, replica_span, replica_write};
pub use quorum::{DcQuorum, Effect, Ending, Need, Role, Tally, Verdict};
pub use read::GetAnswer;
use timer::TimerHub;

use crate::bridge::{LinksChanged, PokeLinks};
use crate::clock::SharedClock;
use crate::conflict_resolver::{ContextKey, Reconcile, VersionLimits};
use crate::membership::MembershipChanged;
use crate::replicas::Replicas;
use crate::ring::{DcReplication, Ring};
use crate::storage::StorageHealth;
use crate::wire::client::{ClientError, Consistency, ErrorCode};
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

    /// How this node sees `node` for a request (Dynamo §4.8.1: its own
    /// view, on top of gossip's):
    /// - a member whose link from here is down or timing out is not asked;
    /// - a member gossip reports down is not asked either, unless its link
    ///   is up (a fresh handshake: it runs), when it is doubtful;
    /// - a suspect is doubtful: asked, and a stand-in too;
    /// - the rest, and this node, are usable.
    fn reach(&self, node: &NodeId) -> Reach {
        if *node == self.own {
            Reach::Usable
        } else if self.links.unusable.contains(node) {
            Reach::Unusable
        } else if !self.reachable.contains(node) {
            if self.links.up.contains(node) {
                Reach::Doubtful
            } else {
                Reach::Unusable
            }
        } else if !self.healthy.contains(node) {
            Reach::Doubtful
        } else {
            Reach::Usable
        }
    }

    /// The primaries of a placement, each with how this node sees it.
    fn classify(&self, primaries: &[NodeId]) -> Vec<(NodeId, Reach)> {
        primaries
            .iter()
            .map(|n| (n.clone(), self.reach(n)))
            .collect()
    }

    /// Stand-in candidates: the members of `beyond` this node sees as
    /// usable, in ring order.
    fn spare(&self, beyond: Vec<NodeId>) -> Vec<NodeId> {
        beyond
            .into_iter()
            .filter(|n| self.reach(n) == Reach::Usable)
            .collect()
    }

    fn unavailable(&self, live: usize, needed: usize, what: &str) -> ClientError {
        ClientError::new(
            ErrorCode::Unavailable,
            format!(
                "only {live} of the key's {} replicas are reachable and {what} needs {needed}",
                self.options.n
            ),
        )
    }

    /// The up-front refusal of a request that cannot reach its quorum:
    /// `usable` primaries and `spare` stand-ins for `needed` replies, of
    /// which `needed_primaries` from primaries.
    /// The primaries a request will not ask because their links are down
    /// or timing out: each link is poked to dial now if it is due (a call
    /// would have done it; the coordinator makes none), so a healed link is
    /// found at the next request rather than at the next backoff.
    fn poke_unusable(&self, primaries: &[(NodeId, Reach)]) {
        let nodes: Vec<NodeId> = primaries
            .iter()
            .filter(|(_, reach)| *reach == Reach::Unusable)
            .map(|(node, _)| node.clone())
            .collect();
        if !nodes.is_empty() {
            self.replicas.bridge.do_send(PokeLinks { nodes });
        }
    }

    fn refuse_quorum(
        &self,
        what: &str,
        usable: usize,
        spare: usize,
        needed: usize,
        needed_primaries: usize,
    ) -> Option<ClientError> {
        if usable < needed_primaries {
            let mut error = self.unavailable(usable, needed_primaries, what);
            error
                .message
                .push_str(" from the key's own replicas (pr/pw)");
            return Some(error);
        }
        if usable + spare < needed {
            let mut error = self.unavailable(usable, needed, what);
            error.message.push_str(&format!(
                " (and {spare} stand-in(s) are reachable past them)"
            ));
            return Some(error);
        }
        None
    }

    /// The counts a request waits for: its consistency level's, else
    /// `count` (its `r` / `w`, or the node's default) and `dc_quorums` (a
    /// forwarded write's).
    fn need(
        &self,
        consistency: Option<Consistency>,
        count: usize,
        dc_quorums: Vec<DcQuorum>,
    ) -> Result<Need, ClientError> {
        match consistency {
            Some(level) => Need::for_level(
                level,
                self.options.n,
                &self.options.dc_replication,
                &self.options.dc,
            ),
            None => Ok(Need {
                needed: count,
                dcs: dc_quorums,
            }),
        }
    }

    /// The per-DC scope of a request over `primaries` and `beyond` (empty
    /// without per-DC replication).
    fn scope(&self, primaries: &[NodeId], beyond: &[NodeId], quorums: Vec<DcQuorum>) -> DcScope {
        if self.options.dc_replication.is_empty() {
            return DcScope::default();
        }
        let dc_of = primaries
            .iter()
            .chain(beyond)
            .filter_map(|n| {
                let dc = self
                    .write_ring
                    .dc_of(n)
                    .or_else(|| self.read_ring.dc_of(n))?;
                Some((n.clone(), dc.to_owned()))
            })
            .collect();
        DcScope { dc_of, quorums }
    }

    /// The up-front refusal of a request whose per-DC quorum cannot be
    /// reached with the replicas (and stand-ins) reachable in that DC.
    fn refuse_dc_quorum(
        &self,
        what: &str,
        scope: &DcScope,
        primaries: &[(NodeId, Reach)],
        spare: &[NodeId],
    ) -> Option<ClientError> {
        let (dc, reachable, needed) = scope.shortfall(primaries, spare)?;
        Some(ClientError::new(
            ErrorCode::Unavailable,
            format!(
                "only {reachable} of the key's replicas in {dc} are reachable (stand-ins \
                 included) and {what} needs {needed} there"
            ),
        ))
    }

    /// Why a write forwarded to this node is refused untouched (`None`: it
    /// is coordinated here): this node is not a replica of `key` (the ring
    /// changed on the way) or mints no new versions now.
    fn forwarded_refusal_for(&self, key: &[u8]) -> Option<String> {
        let placement =
            placement::for_write(&self.read_ring, &self.write_ring, self.options.n, key);
        let replica = placement.primaries.contains(&self.own);
        (!replica || self.not_minting.is_some()).then(|| self.forwarded_refusal(replica))
    }

    /// The refusal text of a forwarded write this node cannot coordinate.
    fn forwarded_refusal(&self, replica: bool) -> String {
        match &self.not_minting {
            Some(reason) if replica => format!("this replica mints no new versions now ({reason})"),
            _ => "forwarded write reached a node that is not a replica of the key (ring changing?)"
                .into(),
        }
    }

    /// Starts a write; `may_forward` is false for writes that were already
    /// forwarded to us (no second hop).
    fn start_write(&self, msg: CoordinateWrite, may_forward: bool) -> Reply<Vec<u8>> {
        let need = match self.need(
            msg.consistency,
            msg.w.unwrap_or(self.options.w),
            msg.dc_quorums.clone(),
        ) {
            Ok(need) => need,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let w = need.needed;
        let pw = msg.pw.unwrap_or(0);
        if pw > w {
            let error = ClientError::new(
                ErrorCode::BadRequest,
                format!("field `pw` ({pw}) must not exceed `w` ({w})"),
            );
            return Box::pin(async move { Err(error) });
        }
        // A context some member sealed for this very key, or nothing: it is
        // checked here, before the write is forwarded or anything minted.
        let context = match msg
            .context
            .as_deref()
            .map(|bytes| self.options.contexts.open(&msg.key, bytes))
            .transpose()
        {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                let error = ClientError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "field `context` is not a context this cluster issued for this key: {e}"
                    ),
                );
                return Box::pin(async move { Err(error) });
            }
        };
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let placement =
            placement::for_write(&self.read_ring, &self.write_ring, self.options.n, &msg.key);
        let primaries = self.classify(&placement.primaries);
        let span = self.request_span(
            tracing::debug_span!(parent: &self.span, "write", req = %format_args!("{:x}", msg.trace)),
        );
        let replica = placement.primaries.contains(&self.own);
        if !replica || self.not_minting.is_some() {
            if !may_forward {
                let why = self.forwarded_refusal(replica);
                let error = ClientError::new(ErrorCode::Unavailable, why);
                return Box::pin(async move { Err(error) });
            }
            // New versions are minted by a replica of the key that can
            // mint: hand the write to the other replicas this node can
            // reach, best first; one that cannot mint now refuses and the
            // next is tried (this node's own data center first).
            let others = || primaries.iter().filter(|(n, _)| *n != self.own);
            let mut targets: Vec<NodeId> = others()
                .filter(|(_, reach)| *reach == Reach::Usable)
                .chain(others().filter(|(_, reach)| *reach == Reach::Doubtful))
                .map(|(n, _)| n.clone())
                .collect();
            targets.sort_by_key(|n| self.write_ring.dc_of(n) != Some(self.options.dc.as_str()));
            if targets.is_empty() {
                let error = self.unavailable(0, w, "the write");
                return Box::pin(async move { Err(error) });
            }
            let mut forwarded = write::forwarded(msg.key, msg.value, msg.context, w, pw);
            forwarded.supersede_local = msg.supersede_local;
            forwarded.ttl_ms = msg.ttl_ms;
            forwarded.dc_quorums = need.dcs.into_iter().map(|q| (q.dc, q.needed)).collect();
            return Box::pin(
                write::forward(
                    self.replicas.clone(),
                    targets,
                    forwarded,
                    msg.trace,
                    timeout_ms,
                )
                .instrument(span),
            );
        }
        let scope = self.scope(&placement.primaries, &placement.beyond, need.dcs);
        let spare = self.spare(placement.beyond);
        self.poke_unusable(&primaries);
        let usable = primaries
            .iter()
            .filter(|(_, reach)| *reach != Reach::Unusable)
            .count();
        // The per-DC shortfall first: it names the data center at fault.
        if let Some(error) = self
            .refuse_dc_quorum("the write", &scope, &primaries, &spare)
            .or_else(|| self.refuse_quorum("the write", usable, spare.len(), w, pw))
        {
            return Box::pin(async move { Err(error) });
        }
        let now_ms = self.clock.now_ms();
        let plan = write::WritePlan {
            key: msg.key,
            timers: self.timers.clone(),
            value: msg.value,
            context,
            supersede_local: msg.supersede_local,
            w,
            pw,
            primaries,
            spare,
            scope,
            policy: SLOPPY,
            stand_in_after_ms: self.options.stand_in_after_ms,
            timeout_ms,
            trace: msg.trace,
            now_ms,
            expires_ms: msg.ttl_ms.map(|ttl| now_ms.saturating_add(ttl)),
            limits: self.options.limits.clone(),
            object_bytes_max: self.options.object_bytes_max,
            contexts: self.options.contexts.clone(),
            with_context: msg.with_context,
        };
        Box::pin(write::coordinate(self.replicas.clone(), plan).instrument(span))
    }

    /// Starts a read: its answer comes through the returned future as soon
    /// as it is known; the read goes on in the actor's context for read
    /// repair.
    fn start_get(&self, msg: CoordinateGet, ctx: &mut Context<Self>) -> Reply<GetAnswer> {
        match self.plan_get(msg) {
            Ok(plan) => self.spawn_read(plan, ctx),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    /// A read's plan, or why it cannot be made.
    fn plan_get(&self, msg: CoordinateGet) -> Result<read::ReadPlan, ClientError> {
        let need = self.need(msg.consistency, msg.r.unwrap_or(self.options.r), Vec::new())?;
        let r = need.needed;
        let pr = msg.pr.unwrap_or(0);
        if pr > r {
            return Err(ClientError::new(
                ErrorCode::BadRequest,
                format!("field `pr` ({pr}) must not exceed `r` ({r})"),
            ));
        }
        let placement =
            placement::for_read(&self.read_ring, &self.write_ring, self.options.n, &msg.key);
        let mut primaries = self.classify(&placement.primaries);
        // This node's own copy first: asking only R replicas, the local
        // read is one of them.
        primaries.sort_by_key(|(node, _)| *node != self.own);
        let scope = self.scope(&placement.primaries, &placement.beyond, need.dcs);
        let spare = self.spare(placement.beyond);
        self.poke_unusable(&primaries);
        let usable = primaries
            .iter()
            .filter(|(_, reach)| *reach != Reach::Unusable)
            .count();
        // The per-DC shortfall first: it names the data center at fault.
        if let Some(error) = self
            .refuse_dc_quorum("the read", &scope, &primaries, &spare)
            .or_else(|| self.refuse_quorum("the read", usable, spare.len(), r, pr))
        {
            return Err(error);
        }
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        Ok(read::ReadPlan {
            key: msg.key,
            timers: self.timers.clone(),
            r,
            pr,
            primaries,
            asking: self.options.read_asks,
            spare,
            scope,
            policy: SLOPPY,
            retry_after_ms: self.options.read_retry_after_ms,
            stand_in_after_ms: self.options.stand_in_after_ms,
            timeout_ms,
            trace: msg.trace,
            contexts: self.options.contexts.clone(),
            last_writer_wins: msg.last_writer_wins,
            with_context: msg.with_context,
            now_ms: self.clock.now_ms(),
        })
    }

    /// Runs a read's coordination in the actor's context; its answer
    /// comes through the returned future.
    fn spawn_read(&self, plan: read::ReadPlan, ctx: &mut Context<Self>) -> Reply<GetAnswer> {
        let (tx, rx) = oneshot::channel();
        let span = self.request_span(
            tracing::debug_span!(parent: &self.span, "read", req = %format_args!("{:x}", plan.trace)),
        );
        let work = read::coordinate(self.replicas.clone(), self.read_helpers.clone(), plan, tx);
        ctx.spawn(work.instrument(span).into_actor(self));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::new(
                    ErrorCode::Internal,
                    "read coordination stopped",
                ))
            })
        })
    }

    /// Holds a request until the node is ready, within its deadline.
    fn hold<T: 'static>(
        &mut self,
        timeout_ms: Option<u64>,
        held: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Held,
    ) -> Reply<T> {
        if self.held.len() >= BOOTSTRAP_HELD_REQUESTS_MAX {
            let error = ClientError::new(
                ErrorCode::Unavailable,
                format!(
                    "this node is still starting (waiting for its seeds) and holds \
                     {BOOTSTRAP_HELD_REQUESTS_MAX} requests already"
                ),
            );
            return Box::pin(async move { Err(error) });
        }
        let (tx, rx) = oneshot::channel();
        self.held.push(held(tx));
        let wait = Duration::from_millis(timeout_ms.unwrap_or(self.options.request_timeout_ms));
        Box::pin(async move {
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ClientError::new(
                    ErrorCode::Internal,
                    "request dropped while the node was starting",
                )),
                Err(_) => Err(ClientError::new(
                    ErrorCode::Unavailable,
                    "this node is still starting: it has not heard from its seeds yet \
                     (see `status`: ready, waiting_for_seeds); nothing was written",
                )),
            }
        })
    }

    /// The node became ready: runs the requests it held.
    fn release_held(&mut self, ctx: &mut Context<Self>) {
        for held in std::mem::take(&mut self.held) {
            match held {
                Held::Get(msg, tx) if !tx.is_closed() => {
                    let work = self.start_get(msg, ctx);
                    ctx.spawn(
                        async move {
                            let _ = tx.send(work.await);
                        }
                        .into_actor(self),
                    );
                }
                Held::Write(msg, may_forward, tx) if !tx.is_closed() => {
                    let work = self.start_write(msg, may_forward);
                    ctx.spawn(
                        async move {
                            let _ = tx.send(work.await);
                        }
                        .into_actor(self),
                    );
                }
                // Its client gave up already.
                _ => {}
            }
        }
    }
}

/// A boxed answer to a coordination request.
type Reply<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ClientError>>>>;

/// A request held while the node bootstraps.
enum Held {
    Get(
        CoordinateGet,
        oneshot::Sender<Result<GetAnswer, ClientError>>,
    ),
    Write(
        CoordinateWrite,
        bool,
        oneshot::Sender<Result<Vec<u8>, ClientError>>,
    ),
}

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
