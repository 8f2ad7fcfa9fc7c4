//! The reaper's rounds and what it asks of the local store: a round takes
//! a batch of local tombstones ([`find`]), asks every member what it
//! holds for them ([`ReapCheck`], answered by [`held_locally`]), decides
//! with [`decide`] and drops what it may everywhere ([`ReapDrop`],
//! [`drop_locally`]). The rule they follow is the parent module's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use serde_bytes::ByteBuf;
use tracing::debug;

use super::{
    decide, dominated, floor_for, is_candidate, shadow_of, Answer, Decision, Held, Keep,
    ReapOptions, REAP_SCAN_ENTRIES_MAX, REAP_SCAN_PAGE_BYTES, REAP_SCAN_PAGE_ENTRIES,
    TOMBSTONE_REAP_BATCH_KEYS_MAX,
};
use crate::conflict_resolver::Object;
use crate::replicas::{is_tombstone, Replicas};
use crate::replicator::placement;
use crate::ring::{user_key, Ring};
use crate::storage::{HintsPending, LocalReap, LocalScan, ReapVerdict};
use crate::wire::peer::{HeldForReap, ReapCheck, ReapDrop};
use crate::NodeId;

/// What this node holds for `keys` (user keys), as a [`ReapCheck`] answer.
pub async fn held_locally(
    replicas: &Replicas,
    keys: &[Vec<u8>],
) -> Result<Vec<HeldForReap>, String> {
    let pending = replicas
        .storage
        .send(HintsPending {
            keys: keys.to_vec(),
        })
        .await
        .map_err(|e| format!("storage unavailable: {e}"))?
        .map_err(|e| format!("reading hints: {e}"))?;
    let mut held = Vec::with_capacity(keys.len());
    for (key, hint_pending) in keys.iter().zip(pending) {
        let stored = replicas
            .storage
            .send(crate::storage::LocalRead { key: key.clone() })
            .await
            .map_err(|e| format!("storage unavailable: {e}"))?
            .map_err(|e| format!("reading a key: {e}"))?;
        let mut answer = HeldForReap {
            hint_pending,
            ..HeldForReap::default()
        };
        if let Some(bytes) = stored {
            match Object::decode(&bytes) {
                Ok(object) if is_tombstone(&object) => {
                    answer.tombstone = Some(ByteBuf::from(bytes))
                }
                // A value, or something unreadable: not reaped.
                _ => answer.live = true,
            }
        }
        held.push(answer);
    }
    Ok(held)
}

/// Drops each key's local object where `tombstone` still dominates it and
/// raises the counter floor (see [`dominated`], [`floor_for`]); the count
/// removed, once durable. Counts removed tombstones in the metrics and in
/// `removed`. For `shadow_ms` after, a version the tombstone dominates is
/// not stored again at a key that holds nothing (`storage::ReapShadow`).
pub async fn drop_locally(
    replicas: &Replicas,
    tombstones: Vec<(Vec<u8>, Object)>,
    shadow_ms: u64,
    removed: &AtomicU64,
) -> Result<u64, String> {
    let mut count = 0;
    for (key, tombstone) in tombstones {
        let shadow = shadow_of(tombstone.clone(), shadow_ms);
        let decide = Box::new(move |stored: Option<&[u8]>, actor: &NodeId| {
            let delete = match stored {
                None => false,
                Some(bytes) => {
                    let stored = Object::decode(bytes).map_err(|e| e.to_string())?;
                    dominated(&stored, &tombstone)
                }
            };
            Ok(ReapVerdict {
                delete,
                counter_floor: floor_for(&tombstone, actor),
            })
        });
        let deleted = replicas
            .storage
            .send(LocalReap {
                key,
                decide,
                shadow,
            })
            .await
            .map_err(|e| format!("storage unavailable: {e}"))?
            .map_err(|e| format!("removing a tombstone: {e}"))?;
        if deleted {
            count += 1;
        }
    }
    replicas.metrics.tombstones_removed(count);
    removed.fetch_add(count, Ordering::Relaxed);
    Ok(count)
}

/// Decodes a [`HeldForReap`].
fn decode_held(held: &HeldForReap) -> Answer {
    let held_object = if held.live {
        Held::Live
    } else {
        match held.tombstone.as_deref().map(|b| Object::decode(b)) {
            None => Held::Nothing,
            Some(Ok(object)) if is_tombstone(&object) => Held::Tombstone(object),
            Some(_) => Held::Live,
        }
    };
    Answer {
        held: held_object,
        hint_pending: held.hint_pending,
    }
}

/// One batch of local tombstones found by a scan.
#[derive(Debug, Default)]
pub struct Found {
    /// Candidates: user key and tombstone.
    pub candidates: Vec<(Vec<u8>, Object)>,
    /// Where the next round scans from (`None`: the pass is over).
    pub next: Option<Vec<u8>>,
    /// Entries read.
    pub scanned: u64,
    /// Tombstones seen (candidates or not).
    pub tombstones: u64,
}

/// Reads the local store from storage key `from`, collecting up to
/// `batch_keys` candidates within [`REAP_SCAN_ENTRIES_MAX`] entries.
pub async fn find(
    replicas: &Replicas,
    from: Vec<u8>,
    batch_keys: usize,
    now_ms: u64,
    age_ms_min: u64,
) -> Result<Found, String> {
    let mut found = Found::default();
    let mut cursor = from;
    loop {
        let page = replicas
            .storage
            .send(LocalScan {
                start: cursor.clone(),
                end: None,
                limit: REAP_SCAN_PAGE_ENTRIES,
                bytes_max: REAP_SCAN_PAGE_BYTES,
            })
            .await
            .map_err(|e| format!("storage unavailable: {e}"))?
            .map_err(|e| format!("scanning the store: {e}"))?;
        for (key, value) in &page.entries {
            found.scanned += 1;
            cursor = key.clone();
            cursor.push(0);
            let (Some(user), Ok(object)) = (user_key(key), Object::decode(value)) else {
                continue;
            };
            if !is_tombstone(&object) {
                continue;
            }
            found.tombstones += 1;
            if is_candidate(&object, now_ms, age_ms_min) {
                found.candidates.push((user.to_vec(), object));
                if found.candidates.len() >= batch_keys {
                    found.next = Some(cursor);
                    return Ok(found);
                }
            }
        }
        if !page.more {
            return Ok(found);
        }
        if found.scanned >= REAP_SCAN_ENTRIES_MAX as u64 {
            found.next = Some(cursor);
            return Ok(found);
        }
    }
}

/// What a round needs from the actor, taken when it starts.
pub struct Round {
    /// The replicas.
    pub replicas: Replicas,
    /// The rings at the start.
    pub read_ring: Arc<Ring>,
    /// The rings at the start.
    pub write_ring: Arc<Ring>,
    /// Replicas per key.
    pub n: usize,
    /// Every member of both rings (this node included).
    pub members: Vec<NodeId>,
    /// Bumped at every ring change; the round is abandoned if it moves.
    pub epoch: Arc<AtomicU64>,
    /// `epoch` when the round started.
    pub epoch_at_start: u64,
    /// Deadline of one peer request, in milliseconds.
    pub timeout_ms: u64,
    /// Wall time now, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The reaper's settings.
    pub options: ReapOptions,
    /// Objects removed on this node (by any reaper) since the last
    /// compaction.
    pub removed: Arc<AtomicU64>,
}

/// What a round did.
#[derive(Debug, Default)]
pub struct RoundStats {
    /// The scan's findings (without the candidates).
    pub scanned: u64,
    /// Tombstones seen.
    pub tombstones: u64,
    /// Where the next round starts (`None`: the pass is over).
    pub next: Option<Vec<u8>>,
    /// Keys reaped everywhere.
    pub reaped: u64,
    /// Keys kept, and the first reason seen.
    pub kept: u64,
    /// The first reason a key was kept, for the log.
    pub first_keep: Option<Keep>,
}

/// One round: find a batch, check it with every member, drop what may go.
pub async fn round(round: Round, from: Vec<u8>) -> Result<RoundStats, String> {
    let options = round.options;
    let found = find(
        &round.replicas,
        from,
        options.batch_keys.clamp(1, TOMBSTONE_REAP_BATCH_KEYS_MAX),
        round.now_ms,
        options.age_ms_min,
    )
    .await?;
    let mut stats = RoundStats {
        scanned: found.scanned,
        tombstones: found.tombstones,
        next: found.next,
        ..RoundStats::default()
    };
    if found.candidates.is_empty() {
        return Ok(stats);
    }
    let keys: Vec<Vec<u8>> = found.candidates.iter().map(|(k, _)| k.clone()).collect();
    let own = &round.replicas.own;
    let asks = round.members.iter().map(|member| {
        let keys = keys.clone();
        let replicas = &round.replicas;
        async move {
            let held = if member == own {
                held_locally(replicas, &keys).await
            } else {
                let request = ReapCheck {
                    keys: keys.into_iter().map(ByteBuf::from).collect(),
                };
                replicas
                    .call(member, request, 0, round.timeout_ms)
                    .await
                    .map(|r| r.keys)
                    .map_err(|e| e.to_string())
            };
            (member.clone(), held)
        }
    });
    let answers: Vec<(NodeId, Option<Vec<HeldForReap>>)> = join_all(asks)
        .await
        .into_iter()
        .map(|(member, held)| match held {
            Ok(held) if held.len() == keys.len() => (member, Some(held)),
            Ok(_) => (member, None),
            Err(e) => {
                debug!(peer = %member, error = %e, "reap check: no answer");
                (member, None)
            }
        })
        .collect();
    let mut reap: Vec<(Vec<u8>, Object)> = Vec::new();
    for (i, (key, own_tombstone)) in found.candidates.iter().enumerate() {
        let per_key: Vec<(NodeId, Option<Answer>)> = answers
            .iter()
            .map(|(m, held)| {
                let answer = held.as_ref().and_then(|h| h.get(i)).map(decode_held);
                (m.clone(), answer)
            })
            .collect();
        let key_replicas =
            placement::for_write(&round.read_ring, &round.write_ring, round.n, key).primaries;
        match decide(
            own_tombstone,
            &key_replicas,
            &per_key,
            round.now_ms,
            options.age_ms_min,
        ) {
            Decision::Reap(joined) => reap.push((key.clone(), joined)),
            Decision::Keep(why) => {
                stats.kept += 1;
                stats.first_keep.get_or_insert(why);
            }
        }
    }
    if reap.is_empty() {
        return Ok(stats);
    }
    if round.epoch.load(Ordering::Acquire) != round.epoch_at_start {
        return Err("the rings changed during the round; re-checking next round".into());
    }
    let wire: Vec<(ByteBuf, ByteBuf)> = reap
        .iter()
        .map(|(k, t)| (ByteBuf::from(k.clone()), ByteBuf::from(t.encode())))
        .collect();
    let drops = round.members.iter().filter(|m| *m != own).map(|member| {
        let request = ReapDrop {
            tombstones: wire.clone(),
        };
        let replicas = &round.replicas;
        async move {
            let result = replicas.call(member, request, 0, round.timeout_ms).await;
            (member.clone(), result)
        }
    });
    for (member, result) in join_all(drops).await {
        if let Err(e) = result {
            // Our own tombstone stays: the next round tries again.
            return Err(format!("drop at {member} failed: {e}"));
        }
    }
    let count = reap.len() as u64;
    drop_locally(&round.replicas, reap, options.age_ms_min, &round.removed).await?;
    stats.reaped = count;
    Ok(stats)
}

/// The members of both rings, sorted, without duplicates.
pub fn members_of(read_ring: &Ring, write_ring: &Ring) -> Vec<NodeId> {
    let mut members: Vec<NodeId> = read_ring
        .members()
        .iter()
        .chain(write_ring.members())
        .map(|m| m.id.clone())
        .collect();
    members.sort();
    members.dedup();
    members
}
