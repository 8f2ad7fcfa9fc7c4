//! Hinted handoff's delivery: a stand-in hands the writes it holds for a
//! replica to that replica once it is back (or, if the replica left the
//! cluster, to the key's current owners).
//!
//! The hints themselves are records in the storage engine, written in the
//! same batch as the object they point to (`storage::writer`, "Hints"), so
//! a hint is durable whenever the stand-in's acknowledgement counted toward
//! W, survives a restart, and is bounded per owner
//! (`hints_bytes_max_per_target`). A hint is only a pointer: delivering it
//! means reading the stand-in's current version of the key and writing it
//! to the target (a merge there), then clearing the hint if it was not
//! hinted again meanwhile (its `seq`). A delivery cut short is simply
//! tried again: it is at-least-once, and merges are idempotent.

use std::time::Duration;

use tracing::debug;

use super::stream::Throttle;
use crate::replicas::Replicas;
use crate::storage::{ClearHint, LocalHints, LocalRead};
use crate::NodeId;

/// Hints read per page during delivery.
pub const HINT_PAGE_ENTRIES: usize = 256;

/// Where one owner's hints go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The owner is back: to it.
    Owner,
    /// The owner left the cluster: to each key's current owners, which
    /// `owners_of` gives (the ones this node can reach).
    CurrentOwners,
}

/// What one delivery round for an owner did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Hints delivered and cleared.
    pub hints: u64,
    /// Bytes of objects written.
    pub bytes: u64,
}

/// Delivers every hint held for `owner` (pages of [`HINT_PAGE_ENTRIES`]),
/// paced by `throttle`; stops at the first write that fails (the rest wait
/// for the next round). `owners_of` names a key's current owners, for
/// [`Destination::CurrentOwners`].
pub async fn deliver(
    replicas: &Replicas,
    owner: &NodeId,
    destination: Destination,
    owners_of: impl Fn(&[u8]) -> Vec<NodeId>,
    throttle: Throttle,
    timeout_ms: u64,
) -> Result<Delivered, (Delivered, String)> {
    let mut done = Delivered::default();
    let started = tokio::time::Instant::now();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = replicas
            .storage
            .send(LocalHints {
                owner: owner.clone(),
                after: after.clone(),
                limit: HINT_PAGE_ENTRIES,
            })
            .await
            .map_err(|e| (done, format!("storage unavailable: {e}")))?
            .map_err(|e| (done, format!("reading hints: {e}")))?;
        let full = page.len() == HINT_PAGE_ENTRIES;
        for hint in page {
            after = Some(hint.key.clone());
            replicas
                .metrics
                .mailbox_sent(crate::metrics::Mailbox::Storage);
            let object = replicas
                .storage
                .send(LocalRead {
                    key: hint.key.clone(),
                })
                .await
                .map_err(|e| (done, format!("storage unavailable: {e}")))?
                .map_err(|e| (done, format!("reading {:?}: {e}", hint.key)))?;
            // Nothing here any more: nothing to hand over.
            if let Some(object) = object {
                let targets = match destination {
                    Destination::Owner => vec![owner.clone()],
                    Destination::CurrentOwners => owners_of(&hint.key),
                };
                if targets.is_empty() {
                    return Err((done, "no current owner of the key is reachable".into()));
                }
                for target in &targets {
                    replicas
                        .write(target, hint.key.clone(), object.clone(), 0, timeout_ms)
                        .await
                        .map_err(|e| (done, format!("writing to {target}: {e}")))?;
                }
                done.bytes += object.len() as u64;
            }
            replicas
                .storage
                .send(ClearHint {
                    owner: owner.clone(),
                    key: hint.key,
                    seq: hint.record.seq,
                })
                .await
                .map_err(|e| (done, format!("storage unavailable: {e}")))?
                .map_err(|e| (done, format!("clearing a hint: {e}")))?;
            done.hints += 1;
            let pause = throttle.delay(done.bytes, started.elapsed());
            if pause > Duration::ZERO {
                tokio::time::sleep(pause).await;
            }
        }
        if !full {
            debug!(peer = %owner, hints = done.hints, "hint delivery round done");
            return Ok(done);
        }
    }
}
