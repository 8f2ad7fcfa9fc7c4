//! Coordinating a read.
//!
//! Asks every reachable replica of the key, answers the client as soon as R
//! of them replied (their versions merged by the ConflictResolver), then
//! keeps listening until all replied or the deadline passed, and hands the
//! final merge to Repair so that replicas that answered stale are brought up
//! to date (read repair).

use std::time::Duration;

use actix::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::oneshot;
use tracing::debug;

use super::quorum::{Effect, Ending, Tally, Verdict};
use super::ReadRepair;
use crate::conflict_resolver::{ConflictResolver, Reconcile, Reconciled};
use crate::replicas::Replicas;
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// What a get answers: live values and the context (absent: never written).
pub type GetAnswer = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// A read to coordinate.
pub struct ReadPlan {
    /// The key.
    pub key: Vec<u8>,
    /// Replies to wait for.
    pub r: usize,
    /// The reachable replicas of the key (this node included if it is one).
    pub replicas: Vec<NodeId>,
    /// Deadline, in milliseconds.
    pub timeout_ms: u64,
    /// The client request.
    pub trace: u64,
}

/// Runs a read; the answer goes to `reply` as soon as it is known, and the
/// future goes on to collect late replies for read repair.
pub async fn coordinate(
    replicas: Replicas,
    resolver: Addr<ConflictResolver>,
    read_repair: Recipient<ReadRepair>,
    plan: ReadPlan,
    reply: oneshot::Sender<Result<GetAnswer, ClientError>>,
) {
    let ReadPlan {
        key,
        r,
        replicas: targets,
        timeout_ms,
        trace,
    } = plan;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut tally = Tally::new(r, targets.len());
    let mut answers: Vec<(NodeId, Option<Vec<u8>>)> = Vec::with_capacity(targets.len());
    let mut pending: FuturesUnordered<_> = targets
        .into_iter()
        .map(|node| {
            let (replicas, key) = (replicas.clone(), key.clone());
            async move {
                let result = replicas.read(&node, &key, trace, timeout_ms).await;
                (node, result)
            }
        })
        .collect();
    let mut reply = Some(reply);
    loop {
        if let Some(tx) = reply.take() {
            match tally.verdict() {
                Verdict::Reached => {
                    let answer = reconcile(&resolver, answers.clone(), trace)
                        .await
                        .map(|rec| (rec.values, rec.context));
                    let _ = tx.send(answer);
                }
                Verdict::Impossible => {
                    let _ = tx.send(Err(tally.error(
                        "replies",
                        Ending::Impossible,
                        Effect::Nothing,
                    )));
                }
                Verdict::Waiting => reply = Some(tx),
            }
        }
        match tokio::time::timeout_at(deadline, pending.next()).await {
            Ok(Some((node, Ok(bytes)))) => {
                tally.success();
                answers.push((node, bytes));
            }
            Ok(Some((node, Err(error)))) => tally.failure(node, error),
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(tx) = reply.take() {
        let answer = match tally.verdict() {
            Verdict::Reached => reconcile(&resolver, answers.clone(), trace)
                .await
                .map(|rec| (rec.values, rec.context)),
            _ => Err(tally.error("replies", Ending::Deadline { timeout_ms }, Effect::Nothing)),
        };
        let _ = tx.send(answer);
    }
    if answers.len() < 2 {
        return;
    }
    match reconcile(&resolver, answers, trace).await {
        Ok(Reconciled {
            object: Some(object),
            stale,
            ..
        }) if !stale.is_empty() => {
            read_repair.do_send(ReadRepair {
                key,
                object,
                stale,
                trace,
            });
        }
        Ok(_) => {}
        Err(e) => {
            debug!(req = %format_args!("{trace:x}"), error = %e, "no read repair: replies did not merge")
        }
    }
}

async fn reconcile(
    resolver: &Addr<ConflictResolver>,
    answers: Vec<(NodeId, Option<Vec<u8>>)>,
    trace: u64,
) -> Result<Reconciled, ClientError> {
    resolver
        .send(Reconcile { answers, trace })
        .await
        .map_err(|e| {
            ClientError::new(
                ErrorCode::Internal,
                format!("conflict resolver unavailable: {e}"),
            )
        })?
}
