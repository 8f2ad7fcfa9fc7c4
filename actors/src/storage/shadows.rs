//! The shadows of reaped keys: for a while after a reap, the writer
//! remembers each reaped key's tombstone check ([`ReapShadow`]), so that a
//! version the tombstone covers, arriving at a key that holds nothing, is
//! not stored again.
//!
//! Such a version is content some node read before it got the delete and
//! is still moving when the reap happens: a page an anti-entropy pull
//! fetched from a replica that had not yet applied the delete, a push of a
//! handoff, a read repair of a read that began before the reap. The
//! reaper's check saw every replica holding the tombstone, but not what
//! was in flight. Dropping a covered version is always right (the delete
//! superseded it); the shadow only bounds how long this node can tell.
//!
//! Shadows live in memory: a restart forgets them. They last
//! `ReapShadow::for_ms` (the reaper's minimum age, at least the streaming
//! deadline) and at most [`REAP_SHADOW_KEYS_MAX`] are kept (the oldest go
//! first, with a warning: the window is shorter then).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use fnv::FnvHashMap;
use tracing::warn;

use super::worker::{Covers, ReapShadow};

/// Most reaped keys remembered at once (about 200 bytes each).
pub const REAP_SHADOW_KEYS_MAX: usize = 65_536;

/// The shadows of reaped keys, by engine key.
pub(crate) struct Shadows {
    by_key: FnvHashMap<Vec<u8>, (Covers, Instant)>,
    /// Keys in the order their shadows were cast, with their end.
    order: VecDeque<(Instant, Vec<u8>)>,
    keys_max: usize,
    /// The time of the last [`Shadows::expire`]: what `covers` judges by.
    now: Instant,
    /// A full set has already been reported.
    warned_full: bool,
}

impl Default for Shadows {
    fn default() -> Self {
        Self::with_capacity(REAP_SHADOW_KEYS_MAX)
    }
}

impl Shadows {
    /// Shadows for at most `keys_max` keys.
    pub(crate) fn with_capacity(keys_max: usize) -> Self {
        Self {
            by_key: FnvHashMap::default(),
            order: VecDeque::new(),
            keys_max: keys_max.max(1),
            now: Instant::now(),
            warned_full: false,
        }
    }

    /// Casts `key`'s shadow at `now` (replacing an earlier one); the
    /// writer expires the ended ones once per group, before any cast.
    pub(crate) fn cast(&mut self, key: Vec<u8>, shadow: ReapShadow, now: Instant) {
        let until = now + Duration::from_millis(shadow.for_ms);
        while self.by_key.len() >= self.keys_max && !self.by_key.contains_key(&key) {
            if !self.warned_full {
                warn!(
                    keys_max = self.keys_max,
                    "reaped keys' shadows are full: the oldest are forgotten early"
                );
                self.warned_full = true;
            }
            if !self.pop_oldest() {
                break;
            }
        }
        self.order.push_back((until, key.clone()));
        self.by_key.insert(key, (shadow.covers, until));
    }

    /// Whether `key`'s shadow, still cast at the last [`Shadows::expire`],
    /// covers `object`.
    pub(crate) fn covers(&self, key: &[u8], object: &[u8]) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|(covers, until)| self.now < *until && covers(object))
    }

    /// Forgets the shadows that ended by `now`, which becomes the time
    /// [`Shadows::covers`] judges by.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while self.order.front().is_some_and(|(until, _)| *until <= now) {
            self.pop_oldest();
        }
        if self.by_key.len() < self.keys_max / 2 {
            self.warned_full = false;
        }
    }

    /// Removes the oldest entry of `order` (and its shadow, unless it was
    /// cast again since); whether there was one.
    fn pop_oldest(&mut self) -> bool {
        let Some((until, key)) = self.order.pop_front() else {
            return false;
        };
        if self.by_key.get(&key).is_some_and(|(_, u)| *u == until) {
            self.by_key.remove(&key);
        }
        true
    }

    /// Keys with a shadow.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadow(covered: &'static [u8], for_ms: u64) -> ReapShadow {
        ReapShadow {
            covers: Box::new(move |object| object == covered),
            for_ms,
        }
    }

    #[test]
    fn a_shadow_covers_only_what_its_check_covers_and_only_while_it_lasts() {
        let t0 = Instant::now();
        let mut s = Shadows::default();
        s.cast(b"k".to_vec(), shadow(b"old", 1_000), t0);
        assert!(s.covers(b"k", b"old"));
        assert!(!s.covers(b"k", b"new"), "not covered by the check");
        assert!(!s.covers(b"other", b"old"), "another key");
        s.expire(t0 + Duration::from_millis(999));
        assert!(s.covers(b"k", b"old"));
        s.expire(t0 + Duration::from_millis(1_000));
        assert!(!s.covers(b"k", b"old"), "ended");
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_shadow_cast_again_lasts_from_the_second_cast() {
        let t0 = Instant::now();
        let mut s = Shadows::default();
        s.cast(b"k".to_vec(), shadow(b"old", 1_000), t0);
        s.cast(
            b"k".to_vec(),
            shadow(b"old", 1_000),
            t0 + Duration::from_millis(500),
        );
        // The first cast's end passes: the second one holds.
        s.expire(t0 + Duration::from_millis(1_200));
        assert!(s.covers(b"k", b"old"));
        s.expire(t0 + Duration::from_millis(1_500));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_full_set_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut s = Shadows::with_capacity(2);
        s.cast(b"a".to_vec(), shadow(b"x", 1_000), t0);
        s.cast(b"b".to_vec(), shadow(b"x", 1_000), t0);
        s.cast(b"c".to_vec(), shadow(b"x", 1_000), t0);
        assert_eq!(s.len(), 2);
        assert!(!s.covers(b"a", b"x"));
        assert!(s.covers(b"b", b"x") && s.covers(b"c", b"x"));
    }
}
