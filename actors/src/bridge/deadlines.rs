//! Requests with deadlines, under one timer: what an outbound link keeps
//! of the requests it sent ([`super::outbound`]) and an inbound session
//! of the requests it serves ([`super::PeerSession`]). Pure: the owner
//! sets its one timer for [`Deadlines::next_timer`] whenever
//! [`Deadlines::insert`] says so, and takes out what is
//! [`Deadlines::due`] when it fires.
//!
//! One timer per link instead of one per request: a tokio timer set and
//! cancelled per request cost its registration (and an actix-spawned
//! future, or a boxed one) on every replica read and write. A new
//! request's deadline nearly always comes after the timer's (each is its
//! start plus the same timeout), so inserting it sets no timer; the timer
//! fires at the earliest deadline it was set for, expires what is due
//! (usually nothing: those requests were answered long before) and is set
//! again for the next.

use std::collections::BTreeSet;

use fnv::FnvHashMap;
use tokio::time::Instant;

/// Values by key, each with a deadline, in deadline order.
pub struct Deadlines<V> {
    items: FnvHashMap<u64, (Instant, V)>,
    order: BTreeSet<(Instant, u64)>,
    /// The instant the owner's timer is set for (`None`: not set, or it
    /// fired and the owner is about to set it again).
    timer_at: Option<Instant>,
}

impl<V> Default for Deadlines<V> {
    fn default() -> Self {
        Self {
            items: FnvHashMap::default(),
            order: BTreeSet::new(),
            timer_at: None,
        }
    }
}

impl<V> Deadlines<V> {
    /// Adds `value` under `key` (not already present) with `deadline`;
    /// `true` when the owner must set its timer ([`Self::next_timer`]):
    /// none is set, or it is set for later. The deadline counts as the
    /// timer's from here, so that the other inserts of the same turn do
    /// not ask again.
    pub fn insert(&mut self, key: u64, deadline: Instant, value: V) -> bool {
        self.items.insert(key, (deadline, value));
        self.order.insert((deadline, key));
        let arm = self.timer_at.is_none_or(|at| deadline < at);
        if arm {
            self.timer_at = Some(deadline);
        }
        arm
    }

    /// Takes out `key`'s value (answered or finished before its deadline).
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let (deadline, value) = self.items.remove(&key)?;
        self.order.remove(&(deadline, key));
        Some(value)
    }

    /// The timer fired: takes out the values whose deadline is `now` or
    /// earlier, in deadline order, and forgets the timer.
    pub fn due(&mut self, now: Instant) -> Vec<V> {
        self.timer_at = None;
        let mut due = Vec::new();
        while let Some(&(deadline, key)) = self.order.first() {
            if deadline > now {
                break;
            }
            self.order.pop_first();
            if let Some((_, value)) = self.items.remove(&key) {
                due.push(value);
            }
        }
        due
    }

    /// The earliest deadline, which the owner sets its timer for (recorded
    /// as the timer's instant); `None` when nothing is held (no timer).
    pub fn next_timer(&mut self) -> Option<Instant> {
        self.timer_at = self.order.first().map(|&(at, _)| at);
        self.timer_at
    }

    /// Takes out every value (the link is lost), and forgets the timer.
    pub fn drain(&mut self) -> Vec<V> {
        self.order.clear();
        self.timer_at = None;
        self.items.drain().map(|(_, (_, value))| value).collect()
    }

    /// How many values are held.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// Only a deadline before the timer's asks for the timer; what is due
    /// leaves in deadline order, a removed value never comes due, and the
    /// timer is set for the earliest left.
    #[test]
    fn deadlines_ask_for_the_timer_only_when_earlier_and_expire_in_order() {
        let start = Instant::now();
        let mut deadlines = Deadlines::default();
        assert!(deadlines.insert(1, at(start, 1_000), "slow"));
        assert!(deadlines.insert(2, at(start, 10), "fast"));
        assert!(!deadlines.insert(3, at(start, 50), "answered"));
        assert!(!deadlines.insert(4, at(start, 20), "due"));
        assert_eq!(deadlines.next_timer(), Some(at(start, 10)));
        assert_eq!(deadlines.remove(3), Some("answered"));
        assert_eq!(deadlines.remove(3), None);
        assert_eq!(deadlines.due(at(start, 60)), ["fast", "due"]);
        assert_eq!(deadlines.len(), 1);
        // The timer fired and is not set: the next insert asks for it.
        assert!(deadlines.insert(5, at(start, 2_000), "next"));
        assert_eq!(deadlines.next_timer(), Some(at(start, 1_000)));
        assert!(deadlines.due(at(start, 999)).is_empty());
        assert_eq!(deadlines.due(at(start, 2_000)), ["slow", "next"]);
        assert_eq!(deadlines.next_timer(), None);
    }

    /// Draining hands back every value and forgets the timer.
    #[test]
    fn a_drain_takes_everything_and_forgets_the_timer() {
        let start = Instant::now();
        let mut deadlines = Deadlines::default();
        assert!(deadlines.insert(1, at(start, 10), 'a'));
        assert!(!deadlines.insert(2, at(start, 20), 'b'));
        let mut drained = deadlines.drain();
        drained.sort_unstable();
        assert_eq!(drained, ['a', 'b']);
        assert_eq!(deadlines.len(), 0);
        assert!(deadlines.insert(3, at(start, 30), 'c'));
        assert!(deadlines.due(at(start, 29)).is_empty());
    }
}
