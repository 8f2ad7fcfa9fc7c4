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
//! [`ReapCheck`](crate::wire::peer::ReapCheck) (each key's stored tombstone, or "live", and "hint
//! pending"), decides with [`decide`], and for the keys it may reap sends
//! [`ReapDrop`](crate::wire::peer::ReapDrop) with the join `T*` to every other member, then drops its
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

use crate::conflict_resolver::Object;
use crate::replicas::is_tombstone;
use crate::storage::ReapShadow;
use crate::wire::peer::REAP_KEYS_PER_REQUEST_MAX;
use crate::NodeId;

mod round;
pub use round::{drop_locally, find, held_locally, members_of, round, Found, Round, RoundStats};

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

#[cfg(test)]
#[path = "reap_tests.rs"]
mod tests;
