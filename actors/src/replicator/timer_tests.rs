//! Tests of the requests' timer hub (`timer.rs`).

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
