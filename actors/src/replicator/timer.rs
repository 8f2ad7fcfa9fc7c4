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
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `timers.next()` returns at its first poll, and with what.
    async fn due_now<const K: usize>(timers: &mut Timers<K>) -> Option<usize> {
        tokio::select! {
            biased;
            i = timers.next() => Some(i),
            () = std::future::ready(()) => None,
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn timers_fire_in_order_and_a_set_one_fires_at_every_wait() {
        let now = Instant::now();
        let hub = TimerHub::default();
        let mut timers = Timers::new(hub, [Some(now + ms(20)), Some(now + ms(10)), None]);
        // A wait dropped before the instant fires nothing.
        assert_eq!(due_now(&mut timers).await, None);
        assert_eq!(timers.next().await, 1);
        assert!(Instant::now() >= now + ms(10));
        // Still set: fires again at once.
        assert_eq!(due_now(&mut timers).await, Some(1));
        timers.unset(1);
        assert_eq!(due_now(&mut timers).await, None);
        assert_eq!(timers.next().await, 0);
        assert!(Instant::now() >= now + ms(20));
        timers.unset(0);
        let waited = tokio::time::timeout(ms(30), timers.next()).await;
        assert!(waited.is_err(), "no timer is set");
    }

    #[tokio::test]
    async fn timers_due_together_fire_lowest_index_first() {
        let at = Instant::now() + ms(5);
        let mut timers = Timers::new(TimerHub::default(), [None, Some(at), Some(at)]);
        assert_eq!(timers.next().await, 1);
        assert_eq!(timers.next().await, 1);
        timers.unset(1);
        assert_eq!(due_now(&mut timers).await, Some(2));
    }

    /// A wait polled again by its own task, with no firing since, returns
    /// at once (no clock read, no lock); a firing (here: the hub woken as
    /// the tokio timer wakes it) sends the next poll the whole way, and
    /// the one after that is fast again. Run as a task, as requests are:
    /// the waker of a test's own future (`block_on`'s) is cloned into one
    /// with another vtable, which `Waker::will_wake` does not take for the
    /// same (every poll went the slow way in a release build).
    #[tokio::test]
    async fn a_wait_polled_again_between_firings_takes_the_fast_path() {
        let ran = tokio::task::LocalSet::new()
            .run_until(async { tokio::task::spawn_local(polled_again_between_firings()).await })
            .await;
        assert!(ran.is_ok(), "the test's task panicked: {ran:?}");
    }

    async fn polled_again_between_firings() {
        let hub = TimerHub::default();
        // Far off: no stall of this machine makes it due during the test.
        let mut waiting = Timers::new(hub.clone(), [Some(Instant::now() + ms(60_000))]);
        let polls = || hub.0.slow_polls.get();
        assert_eq!(due_now(&mut waiting).await, None);
        let after_first = polls();
        for _ in 0..10 {
            assert_eq!(due_now(&mut waiting).await, None);
        }
        assert_eq!(
            polls(),
            after_first,
            "a poll between firings went the whole way"
        );
        Wake::wake_by_ref(&hub.0.waiting);
        assert_eq!(due_now(&mut waiting).await, None);
        assert_eq!(polls(), after_first + 1, "the poll after a firing was fast");
        assert_eq!(due_now(&mut waiting).await, None);
        assert_eq!(polls(), after_first + 1);
        assert_eq!(
            hub.0.waiting.lock().len(),
            1,
            "the wait is still in the hub"
        );
    }

    /// A wait that comes due while its request awaits something else is
    /// woken once and leaves the hub: the other requests' waits do not
    /// spin on its past instant.
    #[tokio::test]
    async fn a_due_wait_whose_request_is_busy_elsewhere_leaves_the_hub() {
        let hub = TimerHub::default();
        let now = Instant::now();
        let mut busy = Timers::new(hub.clone(), [Some(now + ms(2))]);
        // Registered, then dropped: the request goes on to other work.
        assert_eq!(due_now(&mut busy).await, None);
        let mut other = Timers::new(hub.clone(), [Some(now + ms(40))]);
        let polls = Cell::new(0u32);
        let counted = async {
            poll_fn(|cx| {
                polls.set(polls.get() + 1);
                let next = std::pin::pin!(other.next());
                next.poll(cx)
            })
            .await
        };
        assert_eq!(counted.await, 0);
        assert!(Instant::now() >= now + ms(40));
        // A handful of polls (the first, the busy wait's instant, the
        // other's), not one per turn of the loop between.
        assert!(polls.get() <= 5, "{} polls", polls.get());
        assert!(hub.0.waiting.lock().is_empty());
        assert_eq!(due_now(&mut busy).await, Some(0));
    }

    /// The tokio timer fires for one wait and wakes the next one (the
    /// first not due) to set it again; that request ends instead (its
    /// answer came in the same turn) and drops its wait. The waits after
    /// it must still fire, with nothing else running on the thread.
    #[tokio::test]
    async fn a_wait_dropped_when_woken_to_set_the_timer_strands_no_other() {
        let hub = TimerHub::default();
        let start = Instant::now();
        let local = tokio::task::LocalSet::new();
        let mut first = Timers::new(hub.clone(), [Some(start + ms(5))]);
        local.spawn_local(async move {
            first.next().await;
        });
        let mut ending = Timers::new(hub.clone(), [Some(start + ms(10))]);
        local.spawn_local(async move {
            let mut polls = 0;
            poll_fn(|cx| {
                polls += 1;
                if polls > 1 {
                    // Woken (by the hub, at 5 ms): the request ends.
                    return Poll::Ready(());
                }
                let next = std::pin::pin!(ending.next());
                assert!(next.poll(cx).is_pending());
                Poll::Pending
            })
            .await;
            drop(ending);
        });
        let mut last = Timers::new(hub.clone(), [Some(start + ms(30))]);
        local.spawn_local(async move {
            last.next().await;
            assert!(Instant::now() >= start + ms(30));
        });
        let ended = tokio::time::timeout(Duration::from_secs(5), local).await;
        assert!(ended.is_ok(), "the last wait never fired");
        assert!(hub.0.waiting.lock().is_empty());
    }

    /// The same with the wait woken to set the timer again come due by
    /// the time it is polled (the thread was busy): it fires, and its
    /// request goes on to other work (its timers kept). The waits after
    /// it must still fire at their instant, not when that request ends.
    #[tokio::test]
    async fn a_wait_due_when_woken_to_set_the_timer_strands_no_other() {
        let hub = TimerHub::default();
        let start = Instant::now();
        let local = tokio::task::LocalSet::new();
        let mut first = Timers::new(hub.clone(), [Some(start + ms(5))]);
        local.spawn_local(async move {
            first.next().await;
            // The thread stays busy past the next wait's instant.
            std::thread::sleep(ms(6));
            tokio::time::sleep(ms(500)).await;
            drop(first);
        });
        // When the last wait fired, and whether it had when the request
        // holding the next one went on (asserted here: a panic in a task
        // of the LocalSet would not fail the test).
        let last_fired = Rc::new(Cell::new(None));
        let fired_before_next_ended = Rc::new(Cell::new(false));
        let mut next = Timers::new(hub.clone(), [Some(start + ms(8))]);
        let (fired, before) = (last_fired.clone(), fired_before_next_ended.clone());
        local.spawn_local(async move {
            next.next().await;
            // Other work, far longer than the last wait's instant (and
            // ending before the first request's).
            tokio::time::sleep(ms(300)).await;
            before.set(fired.get().is_some());
            drop(next);
        });
        let mut last = Timers::new(hub.clone(), [Some(start + ms(30))]);
        let fired = last_fired.clone();
        local.spawn_local(async move {
            last.next().await;
            fired.set(Some(Instant::now()));
        });
        let ended = tokio::time::timeout(Duration::from_secs(5), local).await;
        assert!(ended.is_ok(), "the last wait never fired");
        assert!(last_fired.get().is_some_and(|at| at >= start + ms(30)));
        assert!(
            fired_before_next_ended.get(),
            "the last wait fired only when another request ended"
        );
        assert!(hub.0.waiting.lock().is_empty());
    }

    /// Many requests' timers on one hub, started in any order and some
    /// dropped before they fire: each fires at (not before) its instant,
    /// whatever the others do.
    #[tokio::test]
    async fn every_request_on_a_hub_fires_at_its_instant() {
        let hub = TimerHub::default();
        let start = Instant::now();
        let delays = [30u64, 5, 18, 5, 40, 1, 25, 12];
        let local = tokio::task::LocalSet::new();
        let fired = Rc::new(RefCell::new(Vec::new()));
        for (n, &delay) in delays.iter().enumerate() {
            let (hub, fired) = (hub.clone(), fired.clone());
            local.spawn_local(async move {
                let at = start + ms(delay);
                let mut timers = Timers::new(hub, [Some(at)]);
                if n == 4 {
                    // Dropped before it fires: it must not hold up the
                    // hub for the others.
                    let _ = tokio::time::timeout(ms(2), timers.next()).await;
                    return;
                }
                timers.next().await;
                assert!(Instant::now() >= at);
                fired.borrow_mut().push(delay);
            });
        }
        // Far past the latest instant: a wait the hub forgot never ends.
        let all_ended = tokio::time::timeout(Duration::from_secs(10), local).await;
        assert!(
            all_ended.is_ok(),
            "a wait never fired: {:?}",
            fired.borrow()
        );
        let mut fired = fired.take();
        assert_eq!(fired.len(), delays.len() - 1);
        let in_order = fired.clone();
        fired.sort_unstable();
        assert_eq!(in_order, fired, "timers fired out of instant order");
        assert!(
            hub.0.waiting.lock().is_empty(),
            "a finished wait is still in the hub"
        );
    }
}
