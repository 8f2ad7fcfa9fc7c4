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

mod forward;
mod local;

pub use forward::{forward, forwarded};
use local::{
    local_acknowledgement, mint_in_writer, mint_with, superseding, LocalWrite, MintedVersion,
};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::{debug, warn};

use super::coordinator::{WriteCoordinator, WriteStep};
use super::fanout::{Ask, DcScope, Reach, SloppyPolicy};
use super::timer::{TimerHub, Timers};
use crate::conflict_resolver::{ContextKey, Object, VersionError, VersionLimits, VersionVector};
use crate::replicas::{ReplicaError, Replicas};
use crate::storage::MintAs;
use crate::wire::client::{ClientError, ErrorCode};
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

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
