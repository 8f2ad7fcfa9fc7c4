//! Requests' timers (the retry, stand-in and deadline timers of each read
//! or write coordination), all on one tokio timer per Replicator.
//!
//! Registering a tokio timer earlier than the timer driver's next planned
//! wake-up (or any timer, when none was registered as the thread last went
//! idle) makes tokio wake its own thread through the I/O driver, even
//! when the registering thread is that thread: an eventfd write, and one
//! more `epoll_wait` return. `next_wake` is only updated when the thread
//! parks, so every request started in a busy turn paid it: a coordination
//! registered its timers (`tokio::time::sleep_until`) afresh at each of
//! its waits, and at 32 gets in flight that was 0.5-1.2 eventfd writes
//! per get over the three nodes (`perf record -e syscalls:sys_enter_write`;
//! benches/README.md, Session 12).
//!
//! A [`TimerHub`] keeps the waits of every request of one actor in
//! instant order, and one tokio timer at (or before) the earliest. A new
//! request's timers come later than the ones already waiting (each is its
//! start plus a fixed delay), so starting one registers nothing with
//! tokio. When the tokio timer fires, the hub wakes the waits that are
//! due (they leave it) and the first one that is not, which sets the tokio
//! timer again for itself. That one may leave instead (its request ended,
//! or its instant passed before it was polled): a wait that leaves while
//! the tokio timer has fired and is not set again wakes the hub's waits
//! as the firing did, so the next one sets it. Without that, the waits
//! after it fired only when some other request polled the hub.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::time::{Instant, Sleep};

/// The timers of one actor's requests (one thread: the hub is `Rc`).
#[derive(Clone)]
pub struct TimerHub(Rc<Hub>);

struct Hub {
    waiting: Arc<Waiting>,
    /// Wakes `waiting`; handed to the tokio timer.
    waker: Waker,
    /// The tokio timer and the instant it is set for (created at the first
    /// wait, inside the runtime).
    sleep: RefCell<Option<(Pin<Box<Sleep>>, Instant)>>,
    next_id: Cell<u64>,
    /// Polls that went past the fast path (tests count them).
    #[cfg(test)]
    slow_polls: Cell<u32>,
}

/// Waits not yet due, in instant order: `(instant, wait id)` -> its
/// waker; and how many times they were woken as at a firing.
struct Waiting {
    map: Mutex<BTreeMap<(Instant, u64), Waker>>,
    /// Counts the firings: while it stays the same, no wait left the hub
    /// but by its own request, and the tokio timer is set for the
    /// earliest wait or before and has not fired.
    fired: AtomicU64,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Instant, u64), Waker>> {
        // A panic while holding it leaves the map whole (no multi-step
        // update), so a poisoned lock is still good.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Wake for Waiting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// The tokio timer fired: wakes the waits that are due, and the first
    /// one that is not (its poll sets the tokio timer again). The due ones
    /// leave the hub: their next poll finds their instant passed without
    /// it, and a request that is busy elsewhere when its wait comes due
    /// (awaiting a reconcile, say) leaves no past instant behind to set
    /// the tokio timer for again and again.
    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let wakers: Vec<Waker> = {
            let mut waiting = self.lock();
            let not_due = waiting.split_off(&(now, u64::MAX));
            let due = std::mem::replace(&mut *waiting, not_due);
            due.into_values()
                .chain(waiting.values().next().cloned())
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Default for TimerHub {
    fn default() -> Self {
        let waiting = Arc::new(Waiting {
            map: Mutex::new(BTreeMap::new()),
            fired: AtomicU64::new(0),
        });
        Self(Rc::new(Hub {
            waker: Waker::from(waiting.clone()),
            waiting,
            sleep: RefCell::new(None),
            next_id: Cell::new(0),
            #[cfg(test)]
            slow_polls: Cell::new(0),
        }))
    }
}

impl TimerHub {
    /// Polls the wait `entry` (its instant and id) until its instant.
    /// `registered`: the waker `entry` was last left in the hub with and
    /// the firing count then, kept by the caller (`None` if it is not in
    /// the hub).
    fn poll_until(
        &self,
        entry: (Instant, u64),
        registered: &mut Option<(Waker, u64)>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let hub = &self.0;
        // Polled again (another branch of its request woke it) with no
        // firing since it was left in the hub with this waker: it is still
        // there, and the tokio timer is set for it or an earlier wait, so
        // a firing will wake it when due. (As with a tokio timer, a wait
        // whose instant just passed is ready once the timer driver fires.)
        // Most polls of a request's timers are these: no clock read, no
        // lock.
        if registered.as_ref().is_some_and(|(waker, fired)| {
            *fired == hub.waiting.fired.load(Ordering::Relaxed) && waker.will_wake(cx.waker())
        }) {
            return Poll::Pending;
        }
        #[cfg(test)]
        hub.slow_polls.set(hub.slow_polls.get() + 1);
        if Instant::now() >= entry.0 {
            // Woken to set the tokio timer again, it may have come due
            // since: `forget` wakes the next one to set it.
            *registered = None;
            self.forget(entry);
            return Poll::Ready(());
        }
        let earliest = {
            let mut waiting = hub.waiting.lock();
            match waiting.get_mut(&entry) {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                Some(waker) => waker.clone_from(cx.waker()),
                None => {
                    waiting.insert(entry, cx.waker().clone());
                }
            }
            match waiting.keys().next() {
                Some(&(at, _)) => at,
                None => entry.0,
            }
        };
        let mut sleep = hub.sleep.borrow_mut();
        let timer = match &mut *sleep {
            Some((timer, set_for)) => {
                // Set too late, or fired: set for the earliest wait. (Set
                // earlier than needed, it fires and wakes that wait, which
                // sets it again.)
                if *set_for > earliest || timer.is_elapsed() {
                    timer.as_mut().reset(earliest);
                    *set_for = earliest;
                }
                timer
            }
            None => {
                &mut sleep
                    .insert((Box::pin(tokio::time::sleep_until(earliest)), earliest))
                    .0
            }
        };
        let polled = timer.as_mut().poll(&mut Context::from_waker(&hub.waker));
        *registered = Some((
            cx.waker().clone(),
            hub.waiting.fired.load(Ordering::Relaxed),
        ));
        if polled.is_ready() {
            // Already passed: the waits due are woken now (this one is
            // not due, but it is the first one that is not if it is the
            // earliest left, and then it sets the timer again).
            drop(sleep);
            Wake::wake_by_ref(&hub.waiting);
        }
        Poll::Pending
    }

    /// Removes the wait `entry`. When the tokio timer has fired and not
    /// been set again, the waits left are woken as at a firing: the wait
    /// woken to set it again (the first not due) may be leaving without
    /// another poll, its request ended by something else in the same turn,
    /// and then the next one sets it (or no wait is left to fire).
    fn forget(&self, entry: (Instant, u64)) {
        let hub = &self.0;
        hub.waiting.lock().remove(&entry);
        let fired = hub
            .sleep
            .try_borrow()
            .is_ok_and(|sleep| sleep.as_ref().is_some_and(|(timer, _)| timer.is_elapsed()));
        if fired {
            Wake::wake_by_ref(&hub.waiting);
        }
    }

    fn new_id(&self) -> u64 {
        let id = self.0.next_id.get();
        self.0.next_id.set(id.wrapping_add(1));
        id
    }
}

/// `K` timers of one request, each set (it fires at its instant, and at
/// every wait after that until it is unset) or unset (it never fires).
pub(super) struct Timers<const K: usize> {
    hub: TimerHub,
    at: [Option<Instant>; K],
    /// This request's wait in the hub: its instant and id.
    entry: Option<(Instant, u64)>,
    /// The waker `entry` was last left in the hub with, and the hub's
    /// firing count then (see `TimerHub::poll_until`).
    registered: Option<(Waker, u64)>,
}

impl<const K: usize> Timers<K> {
    /// Timers firing at `at` (`None`: never), kept by `hub`.
    pub(super) fn new(hub: TimerHub, at: [Option<Instant>; K]) -> Self {
        Self {
            hub,
            at,
            entry: None,
            registered: None,
        }
    }

    /// Unsets timer `i`: it never fires again.
    pub(super) fn unset(&mut self, i: usize) {
        self.at[i] = None;
    }

    /// The earliest set timer, the lowest index first among those set for
    /// the same instant.
    fn earliest(&self) -> Option<(usize, Instant)> {
        (0..K)
            .filter_map(|i| self.at[i].map(|at| (i, at)))
            .min_by_key(|&(i, at)| (at, i))
    }

    /// Waits until the earliest set timer's instant (at once if it has
    /// passed) and returns its index; waits forever when none is set.
    /// Cancel-safe: dropping the wait leaves it in the hub for the next.
    pub(super) async fn next(&mut self) -> usize {
        let Some((i, at)) = self.earliest() else {
            if let Some(entry) = self.entry.take() {
                self.hub.forget(entry);
            }
            return std::future::pending().await;
        };
        let entry = match self.entry {
            Some(entry) if entry.0 == at => entry,
            Some(old) => {
                self.hub.forget(old);
                self.registered = None;
                (at, self.hub.new_id())
            }
            None => (at, self.hub.new_id()),
        };
        self.entry = Some(entry);
        let (hub, registered) = (&self.hub, &mut self.registered);
        poll_fn(|cx| hub.poll_until(entry, registered, cx)).await;
        i
    }
}

impl<const K: usize> Drop for Timers<K> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.hub.forget(entry);
        }
    }
}

#[cfg(test)]
#[path = "timer_tests.rs"]
mod tests;
