//! The stored object: a sibling set plus the causal context that covers it,
//! with the coordinator's write ([`Object::update`]) and the replica join
//! ([`Object::merge`]).

use std::cmp::Ordering;

use super::clock::{Dot, VersionVector};
use crate::NodeId;

/// Default for [`VersionLimits::vclock_entries_max`]: Dynamo's and Riak's
/// threshold; clocks grow by coordinating node, so a healthy cluster stays far
/// below it.
pub const VCLOCK_ENTRIES_MAX_DEFAULT: usize = 50;
/// Default for [`VersionLimits::vclock_prune_age_s`]: one day, long enough for
/// every replica to have caught up with an entry before it may be forgotten.
pub const VCLOCK_PRUNE_AGE_S_DEFAULT: u64 = 86_400;
/// Default for [`VersionLimits::siblings_max`]: past this, concurrent blind
/// writers are a client bug, and every get would carry them all.
pub const SIBLINGS_MAX_DEFAULT: usize = 100;

/// Bounds on what one object may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionLimits {
    /// Pruning starts once a clock has more entries than this.
    pub vclock_entries_max: usize,
    /// Only entries that have not advanced for longer than this may be pruned.
    pub vclock_prune_age_s: u64,
    /// A write that would leave more siblings than this is refused.
    pub siblings_max: usize,
}

impl Default for VersionLimits {
    fn default() -> Self {
        Self {
            vclock_entries_max: VCLOCK_ENTRIES_MAX_DEFAULT,
            vclock_prune_age_s: VCLOCK_PRUNE_AGE_S_DEFAULT,
            siblings_max: SIBLINGS_MAX_DEFAULT,
        }
    }
}

/// What the versioning rules refuse.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The write would leave more siblings than `siblings_max`.
    #[error("too many siblings: limit {limit}, the write would leave {got}")]
    TooManySiblings {
        /// The configured `siblings_max`.
        limit: usize,
        /// How many siblings the write would have left.
        got: usize,
    },
    /// Stored or received bytes are not a valid object or context.
    #[error("bad version encoding: {reason}")]
    BadEncoding {
        /// What is wrong, for the log.
        reason: String,
    },
    /// The bytes carry a format-version marker this build does not read.
    #[error("unsupported version format {got}")]
    UnsupportedVersion {
        /// The marker found.
        got: u8,
    },
    /// A client context in format 1, from before contexts carried a MAC.
    #[error(
        "a context from before contexts were signed (format 1) is no longer accepted; \
         read the key again for a current context"
    )]
    UnsignedContext,
    /// A client context whose MAC does not match the key it came with and
    /// the clock it carries (or that is too short to hold one).
    #[error(
        "the context's MAC does not match: it was issued for another key or by another \
         cluster, or it was altered"
    )]
    ContextMacMismatch,
    /// The coordinator's counter for this key is at `u64::MAX` (only a forged
    /// context can get there); a further dot would repeat a name.
    #[error("counter of node {node} is exhausted")]
    CounterExhausted {
        /// The coordinator whose counter cannot advance.
        node: NodeId,
    },
}

/// One version of the value: a write that no later write has replaced yet.
///
/// Derives `Ord` (dot first) so that siblings sort by dot, and so that two
/// copies of one dot that disagree (only a bug or corruption) merge to the
/// larger, keeping merge a join.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sibling {
    /// The write's unique name.
    pub dot: Dot,
    /// The value written; `None` is a tombstone (a delete).
    pub value: Option<Vec<u8>>,
    /// Wall time (ms) at which the coordinator accepted the write.
    pub written_ms: u64,
    /// Wall time (ms) from which the value reads as absent (a put with
    /// `ttl_ms`); `None`: it never expires. Part of the version: every
    /// replica holds the same expiry for a dot.
    pub expires_ms: Option<u64>,
}

impl Sibling {
    /// Whether this is an expired value whose bytes were dropped
    /// ([`Object::without_expired`]): no value, an expiry.
    pub fn is_purged(&self) -> bool {
        self.value.is_none() && self.expires_ms.is_some()
    }

    /// Whether the value has expired at wall time `now_ms`.
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }

    /// The value a read at `now_ms` sees: `None` for a tombstone or an
    /// expired value.
    pub fn value_at(&self, now_ms: u64) -> Option<&[u8]> {
        self.value.as_deref().filter(|_| !self.expired_at(now_ms))
    }
}

/// A sibling set and its causal context (a dotted causal container).
///
/// Invariant (kept by every constructor, checked by `decode`): `siblings` are
/// sorted by dot with distinct dots, and `clock` covers every sibling's dot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object {
    /// Everything this object has seen: its siblings and what they replaced.
    pub(super) clock: VersionVector,
    /// The concurrent versions, sorted by dot.
    pub(super) siblings: Vec<Sibling>,
}

impl Object {
    /// The coordinator's write. Keeps exactly the `local` siblings that
    /// `context` does not cover, adds the new sibling with dot
    /// `(coordinator, max(local[coordinator], context[coordinator]) + 1)`, and
    /// sets the clock to `local.clock ∪ context ∪ {new dot}`.
    ///
    /// The new dot is fresh because the coordinator stores every result
    /// locally, so `local` has seen every counter it handed out. Two writes
    /// from one stale context through one node therefore both survive: the
    /// second context does not cover the first write's dot.
    ///
    /// It does not prune; the caller runs [`Object::prune_keeping`] on what it
    /// stores. Refused with [`VersionError::TooManySiblings`] when the result
    /// would hold more than `limits.siblings_max` siblings, and with
    /// [`VersionError::CounterExhausted`] when the counter cannot advance.
    pub fn update(
        local: Option<&Object>,
        context: &VersionVector,
        value: Option<Vec<u8>>,
        coordinator: &NodeId,
        now_ms: u64,
        limits: &VersionLimits,
    ) -> Result<Object, VersionError> {
        Self::update_expiring(local, context, value, None, coordinator, now_ms, limits)
    }

    /// [`Object::update`] with an expiry: the new value reads as absent
    /// from wall time `expires_ms` on (a put with `ttl_ms`).
    pub fn update_expiring(
        local: Option<&Object>,
        context: &VersionVector,
        value: Option<Vec<u8>>,
        expires_ms: Option<u64>,
        coordinator: &NodeId,
        now_ms: u64,
        limits: &VersionLimits,
    ) -> Result<Object, VersionError> {
        Self::update_above(
            local,
            context,
            value,
            expires_ms,
            coordinator,
            0,
            now_ms,
            limits,
        )
    }

    /// [`Object::update_expiring`] whose new dot's counter is also above
    /// `counter_floor`: the coordinator's floor, the highest counter of its
    /// own dots in any tombstone this store reaped (`repair::reap`). Once a
    /// key's object is gone, `local` no longer remembers the counters that
    /// were handed out for it; without the floor the next write would mint
    /// `(coordinator, 1)` again, a dot that a client's old context (or a
    /// replica's clock) still covers, and that write would be silently
    /// replaced. The floor raises only the counter, never the context: a
    /// concurrent sibling stays a sibling.
    #[allow(clippy::too_many_arguments)]
    pub fn update_above(
        local: Option<&Object>,
        context: &VersionVector,
        value: Option<Vec<u8>>,
        expires_ms: Option<u64>,
        coordinator: &NodeId,
        counter_floor: u64,
        now_ms: u64,
        limits: &VersionLimits,
    ) -> Result<Object, VersionError> {
        let mut clock = local.map(|object| object.clock.clone()).unwrap_or_default();
        let seen = clock
            .counter(coordinator)
            .max(context.counter(coordinator))
            .max(counter_floor);
        let counter = seen
            .checked_add(1)
            .ok_or_else(|| VersionError::CounterExhausted {
                node: coordinator.clone(),
            })?;
        let mut siblings: Vec<Sibling> = local
            .map(|object| object.siblings.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|sibling| !context.covers(&sibling.dot))
            .cloned()
            .collect();
        let got = siblings.len() + 1;
        if got > limits.siblings_max {
            return Err(VersionError::TooManySiblings {
                limit: limits.siblings_max,
                got,
            });
        }
        clock.merge(context);
        clock.advance(coordinator, counter, now_ms);
        let dot = Dot {
            node: coordinator.clone(),
            counter,
        };
        // The new dot is above every dot of `coordinator` already here.
        let at = siblings.partition_point(|sibling| sibling.dot < dot);
        siblings.insert(
            at,
            Sibling {
                dot,
                expires_ms: expires_ms.filter(|_| value.is_some()),
                value,
                written_ms: now_ms,
            },
        );
        Ok(Object { clock, siblings })
    }

    /// The join of two replicas' objects. A sibling survives when the other
    /// side holds the same dot or has not seen it; the clock is the join of
    /// both clocks.
    ///
    /// Laws (proptest in `laws_tests`): commutative, associative, idempotent
    /// (`a.merge(&a) == a`). Over any set of replicas, a sibling is in the
    /// merge of all of them iff some replica holds its dot and every replica
    /// whose clock covers the dot holds it too: a replica that saw a write and
    /// dropped it (because a later write replaced it) wins over one that still
    /// holds it.
    pub fn merge(&self, other: &Object) -> Object {
        let mut clock = self.clock.clone();
        clock.merge(&other.clock);
        let mut siblings = Vec::with_capacity(self.siblings.len().max(other.siblings.len()));
        let mut ours = self.siblings.iter().peekable();
        let mut theirs = other.siblings.iter().peekable();
        loop {
            let next = match (ours.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(a), Some(b)) => match a.dot.cmp(&b.dot) {
                    Ordering::Equal => {
                        // A copy whose expired value was purged wins over
                        // one that still holds it (a total order, so merge
                        // stays a join): replicas converge on the purge.
                        let kept = std::cmp::max_by_key(*a, *b, |s| (s.is_purged(), *s));
                        ours.next();
                        theirs.next();
                        Some(kept)
                    }
                    Ordering::Less => ours.next().filter(|a| !other.clock.covers(&a.dot)),
                    Ordering::Greater => theirs.next().filter(|b| !self.clock.covers(&b.dot)),
                },
                (Some(_), None) => ours.next().filter(|a| !other.clock.covers(&a.dot)),
                (None, Some(_)) => theirs.next().filter(|b| !self.clock.covers(&b.dot)),
            };
            siblings.extend(next.cloned());
        }
        Object { clock, siblings }
    }

    /// The values of the non-tombstone siblings, in dot order. Empty when the
    /// key was deleted (only tombstones) or never written.
    pub fn live_values(&self) -> Vec<&[u8]> {
        self.siblings
            .iter()
            .filter_map(|sibling| sibling.value.as_deref())
            .collect()
    }

    /// The last writer among the siblings (tombstones included): the latest
    /// `written_ms`, ties broken by the larger dot, so every node picks the
    /// same one. Its value is what a last-writer-wins read answers (`None`:
    /// a delete won, or nothing was written). The coordinators' wall clocks
    /// decide, so a write from a node whose clock is behind loses.
    pub fn last_writer(&self) -> Option<&Sibling> {
        self.siblings
            .iter()
            .max_by(|a, b| (a.written_ms, &a.dot).cmp(&(b.written_ms, &b.dot)))
    }

    /// The values a read at wall time `now_ms` sees: [`Object::live_values`]
    /// without the expired ones. Empty when every value was deleted or has
    /// expired.
    pub fn live_values_at(&self, now_ms: u64) -> Vec<&[u8]> {
        self.siblings
            .iter()
            .filter_map(|sibling| sibling.value_at(now_ms))
            .collect()
    }

    /// Whether any sibling carries an expiry (the object then needs the
    /// encoding that has room for it).
    pub fn has_expiry(&self) -> bool {
        self.siblings.iter().any(|s| s.expires_ms.is_some())
    }

    /// The object with every value expired at `now_ms` turned into a
    /// tombstone of the same dot (its bytes dropped; the clock and the dot
    /// stay, so no older version comes back), or `None` when nothing
    /// expired. What compaction keeps of an expired value.
    pub fn without_expired(&self, now_ms: u64) -> Option<Object> {
        if !self
            .siblings
            .iter()
            .any(|s| s.value.is_some() && s.expired_at(now_ms))
        {
            return None;
        }
        let siblings = self
            .siblings
            .iter()
            .map(|s| {
                if s.value.is_some() && s.expired_at(now_ms) {
                    Sibling {
                        dot: s.dot.clone(),
                        value: None,
                        written_ms: s.written_ms,
                        expires_ms: s.expires_ms,
                    }
                } else {
                    s.clone()
                }
            })
            .collect();
        Some(Object {
            clock: self.clock.clone(),
            siblings,
        })
    }

    /// All siblings, tombstones included, sorted by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The causal context to hand to the client: a put with it replaces every
    /// sibling of this object. Non-empty even when only tombstones remain.
    pub fn context(&self) -> &VersionVector {
        &self.clock
    }

    /// Builds an object from parts, checking the invariant (sorted distinct
    /// dots, each covered by the clock).
    pub(crate) fn from_parts(
        clock: VersionVector,
        siblings: Vec<Sibling>,
    ) -> Result<Object, VersionError> {
        for pair in siblings.windows(2) {
            if let [before, after] = pair {
                if before.dot >= after.dot {
                    return Err(VersionError::BadEncoding {
                        reason: format!("siblings not sorted by distinct dot at {:?}", after.dot),
                    });
                }
            }
        }
        if let Some(sibling) = siblings.iter().find(|sibling| !clock.covers(&sibling.dot)) {
            return Err(VersionError::BadEncoding {
                reason: format!("sibling dot {:?} not covered by the clock", sibling.dot),
            });
        }
        Ok(Object { clock, siblings })
    }
}

/// Read repair's question: would merging `merged` into this replica's answer
/// change it? True when the replica had no object but `merged` has seen
/// writes, when a counter of `merged.clock` is ahead of the replica's, or
/// when the replica still holds a sibling that `merged` has replaced (or a
/// different copy of one of its dots). Differences in `updated_ms` alone do
/// not count: they are pruning hints, not data.
pub fn is_stale(replica: Option<&Object>, merged: &Object) -> bool {
    let Some(replica) = replica else {
        return !merged.clock.is_empty();
    };
    if !replica.clock.descends(&merged.clock) {
        return true;
    }
    replica.siblings.iter().any(|held| {
        merged.clock.covers(&held.dot)
            && match merged.siblings.binary_search_by(|s| s.dot.cmp(&held.dot)) {
                Ok(at) => merged.siblings.get(at).is_some_and(|kept| kept > held),
                Err(_) => true,
            }
    })
}
