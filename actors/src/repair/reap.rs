//! Tombstone reaping: a delete's tombstone (an object whose siblings are
//! all deletions, with its causal context) is dropped once it is safe,
//! never after a wall-clock grace.
//!
//! # The rule
//!
//! A tombstone `T` of key `k` may be dropped when, at one moment,
//!
//! 1. every replica of `k` (the write placement's primaries: both rings
//!    while a move is under way) holds `T`, a tombstone that `T` joined
//!    with it still is, or nothing at all (it reaped it already, or never
//!    got the key);
//! 2. no member holds a hint for `k` (for any replica);
//! 3. every member answered (a member that cannot be asked may hold a hint);
//! 4. every deletion in the join of those tombstones is older than
//!    `tombstone_reap_age_ms_min`, so replica writes still in flight
//!    (bounded by their deadline) have landed.
//!
//! The reaper (one per node, over its own store, `tombstone_reap_interval_ms`)
//! takes a bounded batch of local tombstones, asks every member
//! [`ReapCheck`] (each key's stored tombstone, or "live", and "hint
//! pending"), decides with [`decide`], and for the keys it may reap sends
//! [`ReapDrop`] with the join `T*` to every other member, then drops its
//! own. Each drop is a compare-and-delete in the storage writer's
//! read-modify-write: the object goes only if `T*` dominates what is stored
//! then ([`dominated`]), so a write that landed since the check is kept.
//! The same job raises the member's counter floor to its own dots' highest
//! counter in `T*`, durably in the same batch (`storage::writer`).
//!
//! # Why no value comes back
//!
//! A value can only come back if some node still holds it (or a hint for
//! it) after the tombstone is gone everywhere. At the check every replica
//! answered, and none holds anything `T*` does not dominate; no member
//! holds a hint; writes older than the minimum age have landed.
//!
//! - A replica partitioned during the deletes still holds the old value:
//!   it answers "live", nothing is reaped. Anti-entropy or read repair
//!   then gives it the tombstone, and a later round reaps everywhere.
//! - A replica that is down (or a member whose link is down) answers
//!   nothing: no reap. Members come and go: the check asks the members of
//!   both rings at the start, and if the rings change before the drop the
//!   round is abandoned (the next round re-checks with the new placement).
//! - A stand-in holding the delete (or the old value) for a replica that
//!   was away holds a hint for the key: no reap until it is delivered.
//! - A write concurrent with the round is not dominated by `T*`: every
//!   drop compares and keeps it.
//! - Content read before the delete reached its source and still moving
//!   at the drop (an anti-entropy page a replica served just before it
//!   applied the delete, a handoff push, a read repair of an earlier
//!   read): the check cannot see it. Each drop casts a shadow
//!   ([`shadow_of`], `storage::ReapShadow`) for `age_ms_min`: a write that
//!   would store, at a key holding nothing, an object `T*` dominates is not
//!   stored. Dropping it is always right (the delete superseded it); the
//!   shadow's length bounds how late such content may land, and a restart
//!   forgets the shadows.
//! - A drop that reached some members but not others (a member died):
//!   the reaper keeps its own tombstone and tries again; members that
//!   dropped answer "nothing", which is favourable; anti-entropy may copy
//!   the tombstone back to them meanwhile, and the next round reaps it
//!   again.
//!
//! # Why no dot is reused
//!
//! Once the object is gone, a replica no longer remembers the counters
//! handed out for the key, yet a client may still hold an old context
//! (say `{a: 5}`). Without care the next write through `a` would mint
//! `(a, 1)`, which that context covers: a put with it would silently
//! replace the new value. So every store keeps a counter floor (the
//! highest counter of its own dots in any tombstone it dropped, or was
//! told to drop), durable before the delete, and mints above it
//! (`Object::update_above`). Version actors of earlier incarnations never
//! mint again. Every member raises its floor on a drop, replica or not,
//! so a node that coordinated the key's writes before a ring change is
//! covered too.
//!
//! # Cost and the metric
//!
//! Each round reads at most `REAP_SCAN_ENTRIES_MAX` entries of the local
//! store and checks at most `tombstone_reap_batch_keys` keys (one request
//! per member per round). A full pass over the store resets
//! `ringkv_tombstones` to the tombstones it saw; in between it moves with
//! deletes, overwrites and drops. When a pass ends and the objects removed
//! since the last compaction are at least `REAP_COMPACT_PERCENT` of the
//! store's entries, the store is compacted so their space comes back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use serde_bytes::ByteBuf;
use tracing::debug;

use crate::conflict_resolver::Object;
use crate::replicas::{is_tombstone, Replicas};
use crate::replicator::placement;
use crate::ring::{user_key, Ring};
use crate::storage::{HintsPending, LocalReap, LocalScan, ReapShadow, ReapVerdict};
use crate::wire::peer::{HeldForReap, ReapCheck, ReapDrop, REAP_KEYS_PER_REQUEST_MAX};
use crate::NodeId;

/// Default of `tombstone_reap_interval_ms`: one round a minute.
pub const TOMBSTONE_REAP_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default of `tombstone_reap_age_ms_min`: ten minutes, far beyond any
/// replica write's deadline.
pub const TOMBSTONE_REAP_AGE_MS_MIN_DEFAULT: u64 = 600_000;
/// Default of `tombstone_reap_batch_keys`.
pub const TOMBSTONE_REAP_BATCH_KEYS_DEFAULT: usize = 256;
/// Largest `tombstone_reap_batch_keys`: one check request per member.
pub const TOMBSTONE_REAP_BATCH_KEYS_MAX: usize = REAP_KEYS_PER_REQUEST_MAX;
/// Most local entries one round reads looking for tombstones.
pub const REAP_SCAN_ENTRIES_MAX: usize = 16_384;
/// Entries per local scan page.
const REAP_SCAN_PAGE_ENTRIES: usize = 1024;
/// Bytes per local scan page.
const REAP_SCAN_PAGE_BYTES: usize = 4 << 20;
/// A pass ends with a full compaction when the objects removed since the
/// last one are at least this share of the store's entries, in percent.
pub const REAP_COMPACT_PERCENT: u64 = 25;

/// Settings of the reaper; each named with its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReapOptions {
    /// Time between rounds, in milliseconds; 0 turns reaping off.
    pub interval_ms: u64,
    /// A deletion younger than this is not reaped, in milliseconds.
    pub age_ms_min: u64,
    /// Most tombstones checked per round.
    pub batch_keys: usize,
}

impl Default for ReapOptions {
    fn default() -> Self {
        Self {
            interval_ms: TOMBSTONE_REAP_INTERVAL_MS_DEFAULT,
            age_ms_min: TOMBSTONE_REAP_AGE_MS_MIN_DEFAULT,
            batch_keys: TOMBSTONE_REAP_BATCH_KEYS_DEFAULT,
        }
    }
}

/// What one member holds for one key, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// No object.
    Nothing,
    /// A tombstone.
    Tombstone(Object),
    /// A value (or something that does not decode).
    Live,
}

/// One member's answer for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// What it stores.
    pub held: Held,
    /// It holds a hint for the key.
    pub hint_pending: bool,
}

/// Why a tombstone is kept this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The local object is not a tombstone (any more).
    NotTombstone,
    /// A deletion is younger than the minimum age.
    Young,
    /// A member did not answer.
    NoAnswer(NodeId),
    /// A member holds a hint for the key.
    HintPending(NodeId),
    /// A replica holds a value the tombstone does not cover.
    Live(NodeId),
}

/// The decision for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Drop it everywhere where still dominated by this tombstone (the join
    /// of every replica's).
    Reap(Object),
    /// Keep it; why.
    Keep(Keep),
}

/// Whether `object` is a tombstone all of whose deletions are at least
/// `age_ms_min` old at wall time `now_ms`.
pub fn is_candidate(object: &Object, now_ms: u64, age_ms_min: u64) -> bool {
    is_tombstone(object)
        && object
            .siblings()
            .iter()
            .all(|s| s.written_ms.saturating_add(age_ms_min) <= now_ms)
}

/// Whether `tombstone` dominates `stored`: it is a tombstone and merging
/// `stored` into it adds nothing (same or older deletes, nothing newer).
pub fn dominated(stored: &Object, tombstone: &Object) -> bool {
    is_tombstone(tombstone) && tombstone.merge(stored) == *tombstone
}

/// The counter floor a store minting as `actor` needs once `tombstone`
/// is gone: the highest counter of `actor` the tombstone's clock holds.
pub fn floor_for(tombstone: &Object, actor: &NodeId) -> u64 {
    tombstone.context().counter(actor)
}

/// The decision for `own`, this node's tombstone of a key whose replicas
/// are `replicas`, given each member's answer (`None`: no answer). See the
/// module doc for the rule.
pub fn decide(
    own: &Object,
    replicas: &[NodeId],
    answers: &[(NodeId, Option<Answer>)],
    now_ms: u64,
    age_ms_min: u64,
) -> Decision {
    if !is_tombstone(own) {
        return Decision::Keep(Keep::NotTombstone);
    }
    if !is_candidate(own, now_ms, age_ms_min) {
        return Decision::Keep(Keep::Young);
    }
    for (member, answer) in answers {
        match answer {
            None => return Decision::Keep(Keep::NoAnswer(member.clone())),
            Some(a) if a.hint_pending => return Decision::Keep(Keep::HintPending(member.clone())),
            Some(_) => {}
        }
    }
    let mut joined = own.clone();
    for replica in replicas {
        let Some((_, answer)) = answers.iter().find(|(m, _)| m == replica) else {
            return Decision::Keep(Keep::NoAnswer(replica.clone()));
        };
        match answer.as_ref().map(|a| &a.held) {
            None => return Decision::Keep(Keep::NoAnswer(replica.clone())),
            Some(Held::Live) => return Decision::Keep(Keep::Live(replica.clone())),
            Some(Held::Nothing) => {}
            Some(Held::Tombstone(theirs)) => joined = joined.merge(theirs),
        }
    }
    if !is_tombstone(&joined) {
        return Decision::Keep(Keep::NotTombstone);
    }
    if !is_candidate(&joined, now_ms, age_ms_min) {
        return Decision::Keep(Keep::Young);
    }
    Decision::Reap(joined)
}

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

/// The shadow a reap of `tombstone` leaves for `for_ms`: it covers every
/// object the tombstone dominates (an object that does not decode is not
/// covered: it is stored, and refused where it is read, as before).
pub fn shadow_of(tombstone: Object, for_ms: u64) -> ReapShadow {
    ReapShadow {
        covers: Box::new(move |bytes: &[u8]| {
            Object::decode(bytes).is_ok_and(|arrived| dominated(&arrived, &tombstone))
        }),
        for_ms,
    }
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

#[cfg(test)]
#[path = "reap_tests.rs"]
mod tests;
