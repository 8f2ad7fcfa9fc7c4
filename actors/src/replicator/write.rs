//! Coordinating a write (put or delete).
//!
//! A new version is minted by a replica of the key: it holds every version
//! it minted before, which is what makes its dot fresh (dotted version
//! vectors; see `conflict_resolver`). So the coordinator, when it is in the
//! key's preference list, applies the update to its own copy (one atomic
//! read-modify-write on the storage thread). The storage thread hands the
//! new object back as soon as it is made, and the coordinator sends it to
//! the other reachable replicas, which merge it into theirs, while its own
//! copy is still being fsynced. It answers once W copies (its own included)
//! are durable. A crash between the two leaves the version elsewhere but
//! not here; the store then gets a new incarnation at restart, so the dot
//! is never reused (`data_dir::store_incarnation` in the `ringkv` crate). A node
//! outside the preference list forwards the write to the first reachable
//! replica.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_bytes::ByteBuf;
use tracing::{debug, warn};

use super::coordinator::{WriteCoordinator, WriteStep};
use super::fanout::{Ask, DcScope, Reach, SloppyPolicy};
use super::timer::{TimerHub, Timers};
use crate::bridge::PeerError;
use crate::conflict_resolver::{ContextKey, Object, VersionError, VersionLimits, VersionVector};
use crate::replicas::{store_minted, ReplicaError, Replicas, TombstoneChange};
use crate::storage::{AppliedLater, LocalApply, MintAs, MintPermit};
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::ForwardedWrite;
use crate::NodeId;

/// A replica's answer to a write: who, and whether its copy is durable.
type Acknowledgement = (NodeId, Result<(), ReplicaError>);

/// The replica writes of one request still running.
type Pending = FuturesUnordered<LocalBoxFuture<'static, Acknowledgement>>;

/// A write to coordinate.
pub struct WritePlan {
    /// The key.
    pub key: Vec<u8>,
    /// Keeps the write's timers (the Replicator's).
    pub timers: TimerHub,
    /// The value; `None` writes a tombstone.
    pub value: Option<Vec<u8>>,
    /// The client's context (empty: concurrent with everything).
    pub context: VersionVector,
    /// The context also takes in the clock this replica stores for the key,
    /// read inside the storage writer's read-modify-write: the write
    /// replaces every version this replica has seen (the RESP front end's
    /// SET and DEL), and only versions it has not seen stay siblings.
    pub supersede_local: bool,
    /// Durable copies to wait for.
    pub w: usize,
    /// Of those, copies on primaries.
    pub pw: usize,
    /// The key's primaries (this node among them), as this node sees them.
    pub primaries: Vec<(NodeId, Reach)>,
    /// Stand-in candidates, in ring order.
    pub spare: Vec<NodeId>,
    /// Per-DC stand-ins and quorums (empty: none).
    pub scope: DcScope,
    /// When stand-ins are asked.
    pub policy: SloppyPolicy,
    /// Time after which silent primaries get stand-ins, in milliseconds.
    pub stand_in_after_ms: u64,
    /// Deadline for the whole write, in milliseconds.
    pub timeout_ms: u64,
    /// The client request.
    pub trace: u64,
    /// Wall time of the write, for the version's timestamps.
    pub now_ms: u64,
    /// Wall time from which the value reads as absent (`ttl_ms`).
    pub expires_ms: Option<u64>,
    /// Sibling and clock limits.
    pub limits: VersionLimits,
    /// Largest encoded object the write may leave, in bytes.
    pub object_bytes_max: usize,
    /// Seals the new version's context to the key.
    pub contexts: ContextKey,
    /// Seal and answer the new context (`false`: answer an empty one).
    pub with_context: bool,
}

/// Runs a write with this node as coordinator; answers the new context.
/// Replica writes still running when it answers finish in the background.
pub async fn coordinate(replicas: Replicas, plan: WritePlan) -> Result<Vec<u8>, ClientError> {
    let WritePlan {
        key,
        timers,
        value,
        context,
        supersede_local,
        w,
        pw,
        primaries,
        spare,
        scope,
        policy,
        stand_in_after_ms,
        timeout_ms,
        trace,
        now_ms,
        expires_ms,
        limits,
        object_bytes_max,
        contexts,
        with_context,
    } = plan;
    let own = replicas.own.clone();
    let no_stand_ins = spare.is_empty();
    let (mut coordinator, mut step) =
        WriteCoordinator::start_in(scope, w, pw, &primaries, Some(&own), spare, policy);
    // Nobody else to send the new version to, now or later (N = 1, or
    // every other primary unusable with no stand-in left: then the quorum
    // rests on this copy alone): the write waits for its own copy only.
    let alone = step.asks.is_empty() && no_stand_ins;
    if let Some(Err(refused)) = step.answer.take() {
        // Not enough replicas to ask: refused before anything is minted.
        return Err(refused);
    }
    let now = tokio::time::Instant::now();
    let deadline = now + Duration::from_millis(timeout_ms);
    let mut timers = Timers::new(
        timers,
        [
            policy
                .replace_silent
                .then(|| now + Duration::from_millis(stand_in_after_ms)),
            Some(deadline),
        ],
    );
    let bytes = value.as_ref().map_or(0, Vec::len);
    // Minted under the store's version actor (the writer thread's: a new
    // one after a failed local write), not the bare node id: a node must
    // never hand out a counter that replicas remember for another write.
    // The new version's clock and its tombstone change, handed over with
    // its bytes: the client's context is made from the clock without
    // decoding the object again, and the change is counted once durable.
    let minted: Arc<MintedVersion> = Arc::new(OnceLock::new());
    let minted_in = minted.clone();
    let mutation: crate::storage::Mutation =
        Box::new(move |current: Option<&[u8]>, mint: &MintAs| {
            let actor = &mint.actor;
            let local = current.map(Object::decode).transpose().map_err(|e| {
                ClientError::new(
                    ErrorCode::Internal,
                    format!("stored object does not decode: {e}"),
                )
            })?;
            let context = superseding(context, local.as_ref(), supersede_local);
            let mut next = Object::update_above(
                local.as_ref(),
                &context,
                value,
                expires_ms,
                actor,
                mint.counter_floor,
                now_ms,
                &limits,
            )
            .map_err(refusal)?;
            // Pruning must never drop the coordinator's own entry: its next dot
            // for this key would then reuse a counter that replicas remember.
            next.prune_keeping(actor, now_ms, &limits);
            let encoded = next.encode();
            if encoded.len() > object_bytes_max {
                return Err(too_large(encoded.len(), object_bytes_max));
            }
            let change = (
                local.as_ref().is_some_and(crate::replicas::is_tombstone),
                crate::replicas::is_tombstone(&next),
            );
            let _ = minted_in.set((next.context().clone(), change));
            Ok(Some(encoded))
        });
    // The local write is durable only after its group's fsync; the new
    // version is known before that. It goes to the other replicas at once,
    // so their writes overlap the local one, and the local copy counts as
    // one more acknowledgement once durable. (A crash before the local
    // fsync leaves a version elsewhere that this store lacks: that restart
    // is unclean, so the store gets a new incarnation and never reuses the
    // dot; see `data_dir::store_incarnation`.)
    // When the store holds the key in memory and no minting job of it is
    // pending, the version is minted here, on this thread, and the replica
    // writes leave without waiting for the writer thread (two wake-ups
    // off the put's path); the writer then stores it (`storage::writer`,
    // "Minting on the event loop"). A write with nobody to send its
    // version to gains nothing from that and leaves it to the writer.
    let minted_here = {
        let here = if alone {
            None
        } else {
            replicas.mint_here(&key)
        };
        match here {
            Some(permit) => Ok(mint_with(permit, mutation, &key, (trace, bytes), &minted)),
            None => Err(mutation),
        }
    };
    let (local, object_bytes) = match minted_here {
        Ok(minted_here) => minted_here?,
        Err(mutation) => {
            mint_in_writer(
                &replicas,
                &key,
                mutation,
                (trace, bytes),
                alone,
                deadline,
                timeout_ms,
                &minted,
            )
            .await?
        }
    };
    replicas
        .metrics
        .version_minted(matches!(local, LocalWrite::MintedHere(..)));
    // Set by the mutation before its bytes were sent.
    let Some((clock, _)) = minted.get() else {
        return Err(ClientError::new(
            ErrorCode::Internal,
            "the write minted a version without its clock",
        ));
    };
    let new_context = if with_context {
        contexts.seal(&key, clock)
    } else {
        Vec::new()
    };

    let metrics = replicas.metrics.clone();
    let local: Option<LocalBoxFuture<'static, Acknowledgement>> = match local {
        // A write with nobody to send its version to has its local answer
        // already: the coordinator takes it here, and the write answers
        // without a set of pending replica writes to poll.
        LocalWrite::Answered(result) => {
            let ack = local_acknowledgement(result, minted.get().map(|m| m.1), &metrics);
            let mut next = coordinator.on_ack(&own, ack);
            next.asks.append(&mut step.asks);
            step = next;
            if step.finished && step.asks.is_empty() {
                if let Some(answer) = step.answer.take() {
                    return answer.map(|()| new_context);
                }
            }
            None
        }
        LocalWrite::Writing(apply) => {
            let local_own = own.clone();
            Some(Box::pin(async move {
                let applied = apply.await;
                let change = minted.get().map(|m| m.1);
                (local_own, local_acknowledgement(applied, change, &metrics))
            }))
        }
        LocalWrite::MintedHere(apply, change) => {
            let local_own = own.clone();
            Some(Box::pin(async move {
                let applied = Ok(apply.await);
                let change = change.get().copied();
                (local_own, local_acknowledgement(applied, change, &metrics))
            }))
        }
    };
    let mut pending: Pending = FuturesUnordered::new();
    pending.extend(local);
    let send = Sender {
        replicas,
        key,
        object: object_bytes,
        trace,
        deadline,
    };
    loop {
        for ask in std::mem::take(&mut step.asks) {
            pending.push(send.replica_write(ask));
        }
        if let Some(answer) = step.answer.take() {
            if !step.finished {
                // The remaining replica writes were sent already; they
                // finish (and failed ones get stand-ins) in the background.
                actix::spawn(async move {
                    let mut step = WriteStep::default();
                    while !step.finished {
                        for ask in std::mem::take(&mut step.asks) {
                            pending.push(send.replica_write(ask));
                        }
                        step = next_step(&mut coordinator, &mut pending, &mut timers, timeout_ms)
                            .await;
                    }
                });
            }
            return answer.map(|()| new_context);
        }
        step = next_step(&mut coordinator, &mut pending, &mut timers, timeout_ms).await;
    }
}

/// What the local write answers: whether its copy became durable.
type LocalAnswer = Result<Result<Option<Vec<u8>>, crate::storage::ApplyError>, actix::MailboxError>;

/// The coordinator's own copy as an acknowledgement: durable or failed;
/// a durable one counts what it changed (from tombstone, to tombstone).
fn local_acknowledgement(
    applied: LocalAnswer,
    change: Option<(bool, bool)>,
    metrics: &crate::metrics::Metrics,
) -> Result<(), ReplicaError> {
    match applied {
        Ok(Ok(_)) => {
            if let Some((was, is)) = change {
                metrics.tombstone_transition(was, is);
            }
            Ok(())
        }
        Ok(Err(e)) => Err(ReplicaError::from(e)),
        Err(e) => Err(ReplicaError::from(e)),
    }
}

/// The coordinator's own copy of a write, as the replica writes leave.
enum LocalWrite {
    /// The writer minted the version; its answer is still to come.
    Writing(LocalBoxFuture<'static, LocalAnswer>),
    /// The writer minted the version and has answered already (a write
    /// with nobody to send it to waits for that).
    Answered(LocalAnswer),
    /// Minted here; the writer stores it, and says in `TombstoneChange`
    /// what that changed.
    MintedHere(AppliedLater, Arc<TombstoneChange>),
}

/// Where a write's mutation leaves the clock of its new version and what
/// it changed (from tombstone, to tombstone), once it ran.
type MintedVersion = OnceLock<(VersionVector, (bool, bool))>;

/// Mints a write's new version here, on this thread, with `permit`, and
/// queues the job that stores it; the local write and the version's bytes.
fn mint_with(
    mut permit: MintPermit<'_>,
    mutation: crate::storage::Mutation,
    key: &[u8],
    (trace, bytes): (u64, usize),
    minted: &MintedVersion,
) -> Result<(LocalWrite, Vec<u8>), ClientError> {
    let minted_from = permit.stored.take();
    let made = match mutation(minted_from.as_deref(), &permit.minting_as)? {
        Some(made) => made,
        None => {
            return Err(ClientError::new(
                ErrorCode::Internal,
                "the write minted no new version",
            ))
        }
    };
    let change = Arc::new(TombstoneChange::new());
    let transition = minted.get().map_or((false, false), |m| m.1);
    // Refused by the writer's queue: nothing is handed out (no later mint
    // of the key here would see this version).
    let apply = permit
        .queue(LocalApply {
            key: key.to_vec(),
            mutation: store_minted(minted_from, made.clone(), transition, change.clone()),
            trace,
            bytes,
            minted: None,
            handed_out: true,
            hint_for: None,
        })
        .map_err(|e| ReplicaError::from(e).to_client())?;
    Ok((LocalWrite::MintedHere(apply, change), made))
}

/// Hands a write's `mutation` to the writer thread, which mints the new
/// version and hands it back before its batch is durable; the local write
/// and the version's bytes (none for a write with nobody to send it to,
/// which waits for its own copy instead).
#[allow(clippy::too_many_arguments)]
async fn mint_in_writer(
    replicas: &Replicas,
    key: &[u8],
    mutation: crate::storage::Mutation,
    (trace, bytes): (u64, usize),
    alone: bool,
    deadline: tokio::time::Instant,
    timeout_ms: u64,
    minted: &MintedVersion,
) -> Result<(LocalWrite, Vec<u8>), ClientError> {
    // A write with nobody to send its version to does not wait for it: it
    // drops the receiving end, so the writer skips the hand-off (which
    // would wake this thread once more for nothing). The job still asks
    // for one: that is what makes it a minting job to the writer (refused
    // while minting is stopped, counted when its batch fails).
    let (minted_tx, minted_rx) = tokio::sync::oneshot::channel();
    let minted_rx = (!alone).then_some(minted_rx);
    let mut apply: LocalBoxFuture<'static, LocalAnswer> =
        Box::pin(replicas.apply_local(LocalApply {
            key: key.to_vec(),
            mutation,
            trace,
            bytes,
            minted: Some(minted_tx),
            handed_out: false,
            hint_for: None,
        }));
    let local_timeout = || {
        ClientError::new(
            ErrorCode::Timeout,
            format!("local write did not finish within {timeout_ms} ms"),
        )
    };
    match minted_rx {
        Some(minted_rx) => match tokio::time::timeout_at(deadline, minted_rx).await {
            Ok(Ok(bytes)) => Ok((LocalWrite::Writing(apply), bytes)),
            // Nothing was minted: the apply's own answer says why.
            Ok(Err(_)) => {
                let result = tokio::time::timeout_at(deadline, &mut apply)
                    .await
                    .map_err(|_| local_timeout())?;
                Err(refusal_of(result))
            }
            Err(_) => Err(local_timeout()),
        },
        None => {
            let result = tokio::time::timeout_at(deadline, &mut apply)
                .await
                .map_err(|_| local_timeout())?;
            if minted.get().is_none() {
                return Err(refusal_of(result));
            }
            Ok((LocalWrite::Answered(result), Vec::new()))
        }
    }
}

/// Why a local write that minted nothing failed: refused (its mutation's
/// error, or `CannotMint` in the moment before the Replicator heard that
/// this store stopped minting: `unavailable`), or the store's error.
fn refusal_of(
    result: Result<Result<Option<Vec<u8>>, crate::storage::ApplyError>, actix::MailboxError>,
) -> ClientError {
    let refused = match result {
        Ok(Ok(_)) => {
            return ClientError::new(ErrorCode::Internal, "the write minted no new version")
        }
        Ok(Err(e)) => ReplicaError::from(e),
        Err(e) => ReplicaError::from(e),
    };
    refused.to_client()
}

/// Sends the new version of one key to replicas.
struct Sender {
    replicas: Replicas,
    key: Vec<u8>,
    object: Vec<u8>,
    trace: u64,
    deadline: tokio::time::Instant,
}

impl Sender {
    /// One replica write (a hinted one for a stand-in), logged if it fails.
    fn replica_write(&self, ask: Ask) -> LocalBoxFuture<'static, Acknowledgement> {
        let (replicas, key, object) =
            (self.replicas.clone(), self.key.clone(), self.object.clone());
        let (trace, deadline) = (self.trace, self.deadline);
        Box::pin(async move {
            let budget = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_millis()
                .max(1) as u64;
            let node = ask.node;
            let result = match &ask.stand_in_for {
                None => replicas.write(&node, key, object, trace, budget).await,
                Some(owner) => {
                    replicas
                        .write_hinted(&node, owner, key, object, trace, budget)
                        .await
                }
            };
            if let Err(error) = &result {
                debug!(req = %format_args!("{trace:x}"), peer = %node, %error, "replica write failed");
            }
            (node, result)
        })
    }
}

/// Waits for the next event (an acknowledgement, the stand-in timer, the
/// deadline) and feeds it to the coordinator.
async fn next_step(
    coordinator: &mut WriteCoordinator,
    pending: &mut Pending,
    timers: &mut WriteTimers,
    timeout_ms: u64,
) -> WriteStep {
    // Biased: an answer already there is taken before a timer that fired
    // in the same poll, and the order never depends on tokio's random
    // branch choice (so a simulation seed replays exactly).
    tokio::select! {
        biased;
        Some((node, result)) = pending.next() => coordinator.on_ack(&node, result),
        due = timers.next() => match due {
            STAND_IN => {
                timers.unset(STAND_IN);
                coordinator.on_stand_in_timer()
            }
            _ => coordinator.on_deadline(timeout_ms),
        },
    }
}

/// A write's timers, by index: the stand-in timer (unset once fired, or
/// never set) and the deadline.
type WriteTimers = Timers<2>;
const STAND_IN: usize = 0;

/// The refusal of a write that would leave an object over
/// `object_bytes_max`.
fn too_large(bytes: usize, limit: usize) -> ClientError {
    warn!(bytes, limit, "write refused: the object would be too large");
    ClientError::new(
        ErrorCode::TooLarge,
        format!(
            "the write would leave an object of {bytes} bytes, over the limit of {limit} bytes \
             (object_bytes_max); get the key and write back with its context to resolve its siblings"
        ),
    )
}

fn refusal(e: VersionError) -> ClientError {
    match e {
        VersionError::TooManySiblings { limit, got } => {
            warn!(limit, got, "write refused: too many siblings");
            ClientError::new(
                ErrorCode::TooLarge,
                format!(
                    "the write would leave {got} siblings, over the limit of {limit} (siblings_max); \
                     get the key and write back with its context to resolve them"
                ),
            )
        }
        other => ClientError::new(ErrorCode::BadRequest, other.to_string()),
    }
}

/// Hands a write to the first of `targets` (replicas of the key, in
/// order of preference) that coordinates it. A target that refuses before
/// doing anything (it cannot mint now, or is no longer a replica) or that
/// cannot be reached is skipped for the next; any other failure is the
/// write's, as the target reported it. All tries share `timeout_ms`.
pub async fn forward(
    replicas: Replicas,
    targets: Vec<NodeId>,
    write: ForwardedWrite,
    trace: u64,
    timeout_ms: u64,
) -> Result<Vec<u8>, ClientError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut skipped = Vec::new();
    for target in targets {
        let left_ms = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_millis();
        let left_ms = u64::try_from(left_ms).unwrap_or(u64::MAX);
        if left_ms == 0 {
            break;
        }
        match replicas.call(&target, write.clone(), trace, left_ms).await {
            Ok(coordinated) => return Ok(coordinated.context.into_vec()),
            Err(PeerError::Remote(e)) if e.untouched => {
                debug!(req = %format_args!("{trace:x}"), %target, reason = %e.message, "forwarded write refused; trying the next replica");
                skipped.push(format!("{target}: {}", e.message));
            }
            Err(PeerError::Unreachable) => skipped.push(format!("{target}: unreachable")),
            Err(PeerError::Remote(e)) => {
                return Err(ClientError::new(
                    e.code,
                    format!("via {target}: {}", e.message),
                ))
            }
            Err(e) => {
                return Err(ClientError::new(
                    e.client_code(),
                    format!("via {target}: {e}"),
                ))
            }
        }
    }
    Err(ClientError::new(
        ErrorCode::Unavailable,
        format!(
            "no replica of the key took the write; nothing was written ({})",
            if skipped.is_empty() {
                "out of time".to_string()
            } else {
                skipped.join("; ")
            }
        ),
    ))
}

/// The context a write is minted with: the client's, joined with the
/// clock of the local copy when the write supersedes what this replica
/// holds (`supersede_local`).
fn superseding(
    mut context: VersionVector,
    local: Option<&Object>,
    supersede_local: bool,
) -> VersionVector {
    if let (true, Some(local)) = (supersede_local, local) {
        context.merge(local.context());
    }
    context
}

/// Builds the peer form of a write (`supersede_local` off).
pub fn forwarded(
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    context: Option<Vec<u8>>,
    w: usize,
    pw: usize,
) -> ForwardedWrite {
    ForwardedWrite {
        key: ByteBuf::from(key),
        value: value.map(ByteBuf::from),
        context: context.map(ByteBuf::from),
        supersede_local: false,
        ttl_ms: None,
        w,
        pw,
        dc_quorums: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::{node, replicas};
    use super::*;
    use crate::conflict_resolver::ContextKey;

    /// Primaries by name, each with its reachability.
    type Primaries<'a> = &'a [(&'a str, Reach)];

    fn plan(
        key: &[u8],
        value: &[u8],
        context: VersionVector,
        primaries: &[(&str, Reach)],
        object_bytes_max: usize,
    ) -> WritePlan {
        WritePlan {
            key: key.to_vec(),
            timers: TimerHub::default(),
            value: Some(value.to_vec()),
            context,
            supersede_local: false,
            w: 1,
            pw: 0,
            primaries: primaries.iter().map(|(n, r)| (node(n), *r)).collect(),
            spare: Vec::new(),
            scope: DcScope::default(),
            policy: SloppyPolicy {
                replace_failed: true,
                replace_silent: true,
            },
            stand_in_after_ms: 250,
            timeout_ms: 2_000,
            trace: 1,
            now_ms: 1_000,
            expires_ms: None,
            limits: VersionLimits::default(),
            object_bytes_max,
            contexts: ContextKey::from_cluster_name("write-tests"),
            with_context: true,
        }
    }

    /// A write whose version has nowhere else to go (N = 1, or the other
    /// primary unusable with no stand-in) does not ask for the minted
    /// version and waits for its own copy only; one with a replica to
    /// send to (n2, whose link never answers, W = 1) waits for the minted
    /// version first. Both answer the same: a context that supersedes the
    /// write, and the same refusal of an object over `object_bytes_max`.
    #[actix_rt::test]
    async fn a_write_answers_alike_with_and_without_replicas_to_send_to() {
        let replicas = replicas();
        let contexts = ContextKey::from_cluster_name("write-tests");
        let n1 = node("n1").version_actor(1);
        let cases: [(&[u8], Primaries); 3] = [
            (b"alone", &[("n1", Reach::Usable)]),
            (
                b"other-unusable",
                &[("n1", Reach::Usable), ("n2", Reach::Unusable)],
            ),
            (b"sent", &[("n1", Reach::Usable), ("n2", Reach::Usable)]),
        ];
        for (key, primaries) in cases {
            let stored = || {
                let bytes = replicas.read_in_memory(key).unwrap().unwrap().unwrap();
                Object::decode(&bytes).unwrap()
            };
            let write = |value: &[u8], context, max| {
                coordinate(replicas.clone(), plan(key, value, context, primaries, max))
            };
            let first = write(b"a", VersionVector::new(), 1 << 20).await.unwrap();
            let clock = contexts.open(key, &first).unwrap();
            assert_eq!(clock.counter(&n1), 1, "{key:?}");
            let second = write(b"b", clock, 1 << 20).await.unwrap();
            assert_eq!(stored().live_values(), vec![&b"b"[..]], "{key:?}");
            let clock = contexts.open(key, &second).unwrap();
            assert_eq!(clock.counter(&n1), 2, "{key:?}");
            let refused = write(b"c", clock.clone(), 8).await.unwrap_err();
            assert_eq!(refused.code, ErrorCode::TooLarge, "{key:?}");
            assert_eq!(stored().live_values(), vec![&b"b"[..]], "{key:?}");
            // A caller that does not use the context (RESP) gets none; the
            // write is made all the same.
            let unsealed = WritePlan {
                with_context: false,
                ..plan(key, b"d", clock, primaries, 1 << 20)
            };
            let answer = coordinate(replicas.clone(), unsealed).await.unwrap();
            assert!(answer.is_empty(), "{key:?}");
            assert_eq!(stored().live_values(), vec![&b"d"[..]], "{key:?}");
        }
    }

    /// What a write of `key` would be minted here from, and how; `None`:
    /// by the writer. Nothing is minted.
    fn mintable(replicas: &Replicas, key: &[u8]) -> Option<(Option<Vec<u8>>, MintAs)> {
        let permit = replicas.mint_here(key)?;
        Some((permit.stored.clone(), permit.minting_as.clone()))
    }

    /// A job that holds the writer thread in its mutation until released.
    struct Hold {
        entered: std::sync::mpsc::Receiver<()>,
        release: std::sync::mpsc::Sender<()>,
    }

    impl Hold {
        /// Waits (without blocking this thread) until the writer is in it.
        async fn entered(&self) {
            while self.entered.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        /// Lets the writer go on (now, or once it gets to the job).
        fn release(self) {
            self.release.send(()).unwrap();
        }
    }

    /// The answer of a [`Hold`] job, once released.
    type Held = tokio::task::JoinHandle<
        Result<Result<Option<Vec<u8>>, crate::storage::ApplyError>, actix::MailboxError>,
    >;

    /// Queues a [`Hold`] job (of a key of its own) with the writer.
    fn hold(replicas: &Replicas) -> (Hold, Held) {
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let job = replicas.apply_local(LocalApply {
            key: b"held".to_vec(),
            mutation: Box::new(move |_, _| {
                let _ = entered_tx.send(());
                let _ = released.recv();
                Ok(None)
            }),
            trace: 0,
            bytes: 0,
            minted: None,
            handed_out: false,
            hint_for: None,
        });
        (Hold { entered, release }, tokio::task::spawn_local(job))
    }

    /// A version minted here that the writer's queue refuses (full, or
    /// closed as here) is not handed out: no later mint of the key would
    /// see it. The write answers the refusal before any replica write
    /// leaves, and counts no mint.
    #[actix_rt::test]
    async fn a_version_minted_here_that_the_queue_refuses_is_not_handed_out() {
        let replicas = replicas();
        let sent: Primaries = &[("n1", Reach::Usable), ("n2", Reach::Usable)];
        let write = |value: &[u8]| {
            coordinate(
                replicas.clone(),
                plan(b"k", value, VersionVector::new(), sent, 1 << 20),
            )
        };
        let minted_here = |count: u32| {
            let line = format!("ringkv_versions_minted_total{{on=\"event_loop\"}} {count}");
            replicas.metrics.encode().lines().any(|l| l == line)
        };
        write(b"a").await.unwrap();
        assert!(minted_here(1));
        replicas
            .storage
            .send(crate::storage::CloseWrites)
            .await
            .unwrap()
            .unwrap();
        assert!(
            mintable(&replicas, b"k").is_some(),
            "leave to mint is given"
        );
        let refused = write(b"b").await.unwrap_err();
        assert!(refused.message.contains("stopped"), "{refused:?}");
        assert!(minted_here(1), "{}", replicas.metrics.encode());
    }

    /// A write is minted here, on this thread, when the store holds its
    /// key in memory and no minting job of the key is pending; while one
    /// is, the writer mints it after that job. Either way every version
    /// gets a dot of its own: blind writes piled up behind a held writer
    /// all stay siblings, with distinct dots.
    #[actix_rt::test]
    async fn a_version_is_minted_here_only_when_no_mint_of_its_key_is_pending() {
        let replicas = replicas();
        let sent: Primaries = &[("n1", Reach::Usable), ("n2", Reach::Usable)];
        let n1 = node("n1").version_actor(1);
        let blind = |value: &[u8]| {
            coordinate(
                replicas.clone(),
                plan(b"k", value, VersionVector::new(), sent, 1 << 20),
            )
        };
        let (from, minting_as) = mintable(&replicas, b"k").unwrap();
        assert_eq!((from, &minting_as.actor), (None, &n1), "nothing stored yet");
        blind(b"a").await.unwrap();
        let (from, _) = mintable(&replicas, b"k").unwrap();
        let from = Object::decode(&from.unwrap()).unwrap();
        assert_eq!(from.live_values(), vec![&b"a"[..]], "the stored version");

        // The writer held in a job of another key; the writes of `k` and a
        // second held job queue behind it, so they make one group. While
        // that group runs (held in its second job, before its batch is in
        // the store), the jobs of `k` are pending. The writer must be in
        // the first job before the writes queue: a writer thread slow to
        // wake would otherwise take them into the first job's group, and
        // the second job would run alone after them.
        let (first, first_held) = hold(&replicas);
        first.entered().await;
        let writes: Vec<_> = [b"b", b"c", b"d", b"e"]
            .into_iter()
            .map(|value| tokio::task::spawn_local(blind(value)))
            .collect();
        // Each write queues its job on its first poll.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        let (second, second_held) = hold(&replicas);

        assert!(
            mintable(&replicas, b"k").is_none(),
            "the writes of k are queued, not done"
        );
        assert!(mintable(&replicas, b"other-key").is_some());
        first.release();
        second.entered().await;
        assert!(
            mintable(&replicas, b"k").is_none(),
            "the group holding the writes of k is not in the store yet"
        );

        second.release();
        first_held.await.unwrap().unwrap().unwrap();
        second_held.await.unwrap().unwrap().unwrap();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        let bytes = replicas.read_in_memory(b"k").unwrap().unwrap().unwrap();
        let stored = Object::decode(&bytes).unwrap();
        let mut values = stored.live_values();
        values.sort();
        assert_eq!(values, vec![&b"a"[..], b"b", b"c", b"d", b"e"]);
        let dots: std::collections::HashSet<_> =
            stored.siblings().iter().map(|s| s.dot.clone()).collect();
        assert_eq!(dots.len(), 5, "every version has a dot of its own");
        assert_eq!(stored.context().counter(&n1), 5);
        assert!(mintable(&replicas, b"k").is_some(), "nothing pending again");
    }

    /// The writer stores a version minted here as it was made when the
    /// store still holds what it was made from, and joins it with what the
    /// store holds otherwise (a replica write that landed meanwhile).
    #[test]
    fn a_version_minted_here_is_joined_with_what_landed_meanwhile() {
        let minting_as = MintAs {
            actor: node("n1").version_actor(1),
            counter_floor: 0,
        };
        let from = write(None, b"a", "n1", false);
        let made = write(Some(&from), b"b", "n1", true);
        let store = |current: Option<&Object>| {
            let change = Arc::new(TombstoneChange::new());
            let mutation = store_minted(
                Some(from.encode()),
                made.encode(),
                (false, false),
                change.clone(),
            );
            let stored = mutation(current.map(Object::encode).as_deref(), &minting_as)
                .unwrap()
                .unwrap();
            (Object::decode(&stored).unwrap(), *change.get().unwrap())
        };
        assert_eq!(store(Some(&from)), (made.clone(), (false, false)));
        let landed = write(Some(&from), b"c", "n2", false);
        let (joined, _) = store(Some(&landed));
        let mut values = joined.live_values();
        values.sort();
        assert_eq!(values, vec![&b"b"[..], b"c"]);
    }

    fn write(local: Option<&Object>, value: &[u8], actor: &str, supersede_local: bool) -> Object {
        let context = superseding(VersionVector::new(), local, supersede_local);
        Object::update(
            local,
            &context,
            Some(value.to_vec()),
            &NodeId::new(actor).unwrap(),
            1,
            &VersionLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_blind_write_keeps_what_the_replica_holds_as_siblings() {
        let first = write(None, b"a", "n1", false);
        let second = write(Some(&first), b"b", "n1", false);
        assert_eq!(second.live_values(), vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn a_superseding_write_replaces_what_the_replica_holds() {
        let first = write(None, b"a", "n1", true);
        let second = write(Some(&first), b"b", "n1", true);
        assert_eq!(second.live_values(), vec![&b"b"[..]]);
        // Two concurrent versions minted elsewhere: both replaced too.
        let other = write(None, b"x", "n2", false);
        let both = second.merge(&other);
        assert_eq!(both.live_values().len(), 2);
        let third = write(Some(&both), b"c", "n1", true);
        assert_eq!(third.live_values(), vec![&b"c"[..]]);
    }

    #[test]
    fn a_version_the_replica_has_not_seen_stays_a_sibling() {
        // The superseding write is minted on n1 before n2's write reaches
        // it; the merge at any replica keeps both.
        let local = write(None, b"a", "n1", true);
        let superseding = write(Some(&local), b"b", "n1", true);
        let unseen = write(None, b"x", "n2", false);
        let merged = superseding.merge(&unseen);
        assert_eq!(merged.live_values(), vec![&b"b"[..], &b"x"[..]]);
    }
}
