//! Carrying out a read: the [`ReadCoordinator`] decides, this future asks
//! the replicas it names (the local one through Storage, the others
//! through the Bridge), feeds their answers back, reconciles the answers
//! it hands to the client and, once the read is over, sends the merged
//! version to the primaries that answered stale (read repair).
//!
//! Replicas that disagree are reconciled by the ConflictResolver actor.
//! When every replica answered the same bytes (the common case: nothing to
//! resolve), the future decodes them itself, once, with the same pure rules
//! (`conflict_resolver::answer_agreed`), without a message round trip, and
//! there is nothing to repair.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::oneshot;
use tracing::{debug, error};

use super::coordinator::{ReadAnswer, ReadCoordinator, ReadStep};
use super::fanout::{Asking, DcScope, Reach, SloppyPolicy};
use super::timer::{TimerHub, Timers};
use super::ReadRepair;
use crate::conflict_resolver::{answer_agreed, ContextKey, Reconcile, Reconciled, VersionVector};
use crate::metrics::Metrics;
use crate::replicas::{ReplicaError, Replicas};
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// What a get answers: live values and the context (absent: never written).
pub type GetAnswer = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// One replica's reply, as the read future collects it.
type Reply = (NodeId, Result<Option<Vec<u8>>, ReplicaError>);

/// A read to coordinate.
pub struct ReadPlan {
    /// The key.
    pub key: Vec<u8>,
    /// Keeps the read's timers (the Replicator's).
    pub timers: TimerHub,
    /// Replies to wait for.
    pub r: usize,
    /// Of those, replies from primaries.
    pub pr: usize,
    /// The key's primaries, as this node sees them, in the order to ask
    /// them (this node first).
    pub primaries: Vec<(NodeId, Reach)>,
    /// Every primary, or only as many as `r` needs.
    pub asking: Asking,
    /// Stand-in candidates, in ring order.
    pub spare: Vec<NodeId>,
    /// Per-DC stand-ins and quorums (empty: none).
    pub scope: DcScope,
    /// When stand-ins are asked.
    pub policy: SloppyPolicy,
    /// Time after which silent primaries get stand-ins, in milliseconds.
    pub stand_in_after_ms: u64,
    /// Time after which a silent primary gets a primary held in reserve
    /// asked in its place, in milliseconds (at most `stand_in_after_ms`).
    pub retry_after_ms: u64,
    /// Deadline, in milliseconds.
    pub timeout_ms: u64,
    /// The client request.
    pub trace: u64,
    /// Seals the answer's context to the key.
    pub contexts: ContextKey,
    /// Answer only the last writer's value (`Object::last_writer`), not
    /// every sibling: the RESP front end's `resp_siblings = lww`.
    pub last_writer_wins: bool,
    /// Seal and answer the context (`CoordinateGet::with_context`).
    pub with_context: bool,
    /// Wall time of the read, in ms: values expired by then are absent.
    pub now_ms: u64,
}

/// The actors a read may need once its replicas answer: shared by every
/// read, as one reference count (cloning a `Recipient` allocates).
pub struct ReadHelpers {
    /// Merges answers that are not all the same version.
    pub resolver: Recipient<Reconcile>,
    /// Writes the merged version back to stale replicas.
    pub read_repair: Recipient<ReadRepair>,
}

/// Runs a read; the answer goes to `reply` as soon as it is known, and the
/// future goes on to collect late replies for read repair.
pub async fn coordinate(
    replicas: Replicas,
    helpers: Arc<ReadHelpers>,
    plan: ReadPlan,
    reply: oneshot::Sender<Result<GetAnswer, ClientError>>,
) {
    let ReadHelpers {
        resolver,
        read_repair,
    } = &*helpers;
    let ReadPlan {
        key,
        timers,
        r,
        pr,
        primaries,
        asking,
        spare,
        scope,
        policy,
        stand_in_after_ms,
        retry_after_ms,
        timeout_ms,
        trace,
        contexts,
        last_writer_wins,
        with_context,
        now_ms,
    } = plan;
    let now = tokio::time::Instant::now();
    let deadline = now + Duration::from_millis(timeout_ms);
    let (mut coordinator, mut step) =
        ReadCoordinator::start_in(scope, asking, r, pr, &primaries, spare, policy);
    // Silent primaries get a reserve primary (a speculative retry) or, by
    // the policy, a stand-in.
    let mut timers = Timers::new(
        timers,
        [
            coordinator
                .has_reserve()
                .then(|| now + Duration::from_millis(retry_after_ms)),
            (policy.replace_silent || coordinator.has_reserve())
                .then(|| now + Duration::from_millis(stand_in_after_ms)),
            Some(deadline),
        ],
    );
    let mut pending: FuturesUnordered<LocalBoxFuture<'static, Reply>> = FuturesUnordered::new();
    let mut reply = Some(reply);
    loop {
        for ask in std::mem::take(&mut step.asks) {
            let (replicas, key, node) = (replicas.clone(), key.clone(), ask.node);
            pending.push(Box::pin(async move {
                let result = replicas.read(&node, &key, trace, timeout_ms).await;
                (node, result)
            }));
        }
        if let Some(answer) = step.answer.take() {
            if let Some(tx) = reply.take() {
                let answer = match answer {
                    Ok(answers) => answer_of(resolver, answers, trace, now_ms, last_writer_wins)
                        .await
                        .map(|(values, clock)| {
                            let context = clock
                                .filter(|_| with_context)
                                .map(|clock| contexts.seal(&key, &clock));
                            (values, context)
                        }),
                    Err(e) => Err(e),
                };
                let _ = tx.send(answer);
            }
        }
        if let Some(finished) = step.finished.take() {
            repair_stale(resolver, read_repair, key, finished, trace).await;
            return;
        }
        step = next_step(
            &mut coordinator,
            &replicas.metrics,
            &mut pending,
            &mut timers,
            timeout_ms,
        )
        .await;
    }
}

/// Answers a read at once when it needs only this node's copy and the
/// engine holds that copy in memory: R = 1 with this node the only one
/// asked (N = 1, or `--read-asks needed`). The same pure steps as
/// [`coordinate`] (the coordinator fed the local answer, the answer
/// decoded in place, the context sealed), without a future, a task, a
/// timer or a channel. `None`: the read needs [`coordinate`] (a disk
/// read, a failed one, or other replicas to ask).
pub fn answer_in_place(
    replicas: &Replicas,
    plan: &ReadPlan,
) -> Option<Result<GetAnswer, ClientError>> {
    let own = &replicas.own;
    if plan.r != 1 || plan.primaries.first().map(|(node, _)| node) != Some(own) {
        return None;
    }
    let (mut coordinator, step) = ReadCoordinator::start_in(
        plan.scope.clone(),
        plan.asking,
        plan.r,
        plan.pr,
        &plan.primaries,
        plan.spare.clone(),
        plan.policy,
    );
    let only_own =
        matches!(step.asks.as_slice(), [ask] if ask.node == *own && ask.stand_in_for.is_none());
    if step.answer.is_some() || !only_own {
        return None;
    }
    let local = replicas.read_in_memory(&plan.key)?;
    let step = coordinator.on_reply(own, local);
    if !step.asks.is_empty() || step.finished.is_none() {
        return None;
    }
    let answers = match step.answer? {
        Ok(answers) => answers,
        Err(e) => return Some(Err(e)),
    };
    let answer = agreed_answer(&answers, plan.trace, plan.now_ms, plan.last_writer_wins)?;
    Some(answer.map(|(values, clock)| {
        let context = clock
            .filter(|_| plan.with_context)
            .map(|clock| plan.contexts.seal(&plan.key, &clock));
        (values, context)
    }))
}

/// A read's timers, by index: the retry and stand-in timers (unset once
/// fired, or never set) and the deadline.
type ReadTimers = Timers<3>;
const RETRY: usize = 0;
const STAND_IN: usize = 1;

/// Waits for the next event (a reply, the retry or stand-in timer, the
/// deadline) and feeds it to the coordinator.
async fn next_step(
    coordinator: &mut ReadCoordinator,
    metrics: &Metrics,
    pending: &mut FuturesUnordered<LocalBoxFuture<'static, Reply>>,
    timers: &mut ReadTimers,
    timeout_ms: u64,
) -> ReadStep {
    // Biased: an answer already there is taken before a timer that fired
    // in the same poll, and the order never depends on tokio's random
    // branch choice (so a simulation seed replays exactly).
    tokio::select! {
        biased;
        Some((node, result)) = pending.next() => coordinator.on_reply(&node, result),
        due = timers.next() => match due {
            RETRY => {
                timers.unset(RETRY);
                let step = coordinator.on_retry_timer();
                metrics.read_retries(step.asks.len() as u64);
                step
            }
            STAND_IN => {
                timers.unset(STAND_IN);
                coordinator.on_stand_in_timer()
            }
            _ => coordinator.on_deadline(timeout_ms),
        },
    }
}

/// Read repair: merges every answer and hands the merged version to Repair
/// for the primaries whose answer lacked part of it.
async fn repair_stale(
    resolver: &Recipient<Reconcile>,
    read_repair: &Recipient<ReadRepair>,
    key: Vec<u8>,
    finished: super::coordinator::FinishedRead,
    trace: u64,
) {
    if finished.answers.len() < 2 || answers_agree(&finished.answers) {
        return;
    }
    // Read repair needs only the merged object and who lacks part of it;
    // neither depends on the time of the read.
    match reconcile(resolver, finished.answers, trace, 0).await {
        Ok(Reconciled {
            object: Some(object),
            stale,
            ..
        }) => {
            let stale: Vec<NodeId> = stale
                .into_iter()
                .filter(|n| finished.primaries.contains(n))
                .collect();
            if !stale.is_empty() {
                read_repair.do_send(ReadRepair {
                    key,
                    object,
                    stale,
                    trace,
                });
            }
        }
        Ok(_) => {}
        Err(e) => {
            debug!(req = %format_args!("{trace:x}"), error = %e, "no read repair: replies did not merge")
        }
    }
}

/// Whether every replica answered the same bytes (or every one nothing).
fn answers_agree(answers: &[ReadAnswer]) -> bool {
    match answers.split_first() {
        Some(((_, first), rest)) => rest.iter().all(|(_, bytes)| bytes == first),
        None => true,
    }
}

/// What the client gets from the replicas' answers: the live values (only
/// the last writer's with `last_writer_only`) and the clock for its
/// context. Answers that agree are decoded in place
/// (`conflict_resolver::answer_agreed`), others are merged by the
/// ConflictResolver actor.
async fn answer_of(
    resolver: &Recipient<Reconcile>,
    answers: Vec<ReadAnswer>,
    trace: u64,
    now_ms: u64,
    last_writer_only: bool,
) -> Result<Decoded, ClientError> {
    if let Some(result) = agreed_answer(&answers, trace, now_ms, last_writer_only) {
        return result;
    }
    let merged = reconcile(resolver, answers, trace, now_ms).await?;
    let values = if last_writer_only {
        merged.last_writer.into_iter().collect()
    } else {
        merged.values
    };
    Ok((values, merged.context))
}

/// The live values of an answer and its clock.
type Decoded = (Vec<Vec<u8>>, Option<VersionVector>);

/// [`answer_of`] for answers that agree (decoded here, in place); `None`
/// when they disagree.
pub(super) fn agreed_answer(
    answers: &[ReadAnswer],
    trace: u64,
    now_ms: u64,
    last_writer_only: bool,
) -> Option<Result<Decoded, ClientError>> {
    if !answers_agree(answers) {
        return None;
    }
    let Some((node, bytes)) = answers.first() else {
        return Some(Ok((Vec::new(), None)));
    };
    let result = answer_agreed(node, bytes.as_deref(), now_ms, last_writer_only);
    if let Err(e) = &result {
        error!(req = %format_args!("{trace:x}"), error = %e, "replica answers do not decode");
    }
    Some(result)
}

/// Merges answers that disagree, through the ConflictResolver actor.
async fn reconcile(
    resolver: &Recipient<Reconcile>,
    answers: Vec<ReadAnswer>,
    trace: u64,
    now_ms: u64,
) -> Result<Reconciled, ClientError> {
    resolver
        .send(Reconcile {
            answers,
            trace,
            now_ms,
        })
        .await
        .map_err(|e| {
            ClientError::new(
                ErrorCode::Internal,
                format!("conflict resolver unavailable: {e}"),
            )
        })?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod agree_tests {
    use super::*;

    fn answer(node: &str, bytes: Option<&[u8]>) -> ReadAnswer {
        (NodeId::new(node).unwrap(), bytes.map(<[u8]>::to_vec))
    }

    #[test]
    fn answers_agree_only_when_every_replica_sent_the_same_bytes() {
        assert!(answers_agree(&[]));
        assert!(answers_agree(&[answer("a", Some(b"x"))]));
        assert!(answers_agree(&[
            answer("a", Some(b"x")),
            answer("b", Some(b"x"))
        ]));
        assert!(answers_agree(&[answer("a", None), answer("b", None)]));
        assert!(!answers_agree(&[
            answer("a", Some(b"x")),
            answer("b", None)
        ]));
        assert!(!answers_agree(&[
            answer("a", Some(b"x")),
            answer("b", Some(b"y"))
        ]));
        assert!(!answers_agree(&[
            answer("a", Some(b"x")),
            answer("b", Some(b"x")),
            answer("c", Some(b"y"))
        ]));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "read_tests.rs"]
mod in_place_tests;
