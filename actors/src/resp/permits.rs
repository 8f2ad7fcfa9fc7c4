//! In-flight permits of one RESP connection, counted on its thread.
//!
//! The session's read stream takes a permit per command before handing it
//! over and waits when there is none (`client_inflight_max`); a command
//! gives its permit back when it is done. Everything happens on the
//! session's arbiter thread with one waiter (the stream), so a counter in
//! a `Cell` does what `tokio::sync::Semaphore` did here without its lock
//! and atomics per command (about 1% of a one-node GET's CPU,
//! benches/README.md, "Session 25").

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// The permits; cloned into the read stream.
#[derive(Clone)]
pub struct Permits(Rc<State>);

struct State {
    available: Cell<usize>,
    closed: Cell<bool>,
    /// The stream, waiting for a permit.
    waiting: Cell<Option<Waker>>,
}

/// One command's permit: given back when dropped.
pub struct Permit(Rc<State>);

impl Permits {
    /// `count` permits (at least one).
    pub fn new(count: usize) -> Self {
        Self(Rc::new(State {
            available: Cell::new(count.max(1)),
            closed: Cell::new(false),
            waiting: Cell::new(None),
        }))
    }

    /// A permit, once one is free; `None` once closed.
    pub async fn acquire(&self) -> Option<Permit> {
        poll_fn(|cx| {
            let state = &self.0;
            if state.closed.get() {
                return Poll::Ready(None);
            }
            match state.available.get().checked_sub(1) {
                Some(left) => {
                    state.available.set(left);
                    Poll::Ready(Some(Permit(state.clone())))
                }
                None => {
                    state.waiting.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// No more permits: a waiting and every later `acquire` gets `None`.
    pub fn close(&self) {
        self.0.closed.set(true);
        if let Some(waker) = self.0.waiting.take() {
            waker.wake();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let state = &self.0;
        state.available.set(state.available.get() + 1);
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_permit_given_back_wakes_the_waiting_acquire() {
        let permits = Permits::new(2);
        let first = permits.acquire().await.unwrap();
        let _second = permits.acquire().await.unwrap();
        let mut third = Box::pin(permits.acquire());
        assert!((&mut third).now_or_never().is_none(), "none free");
        drop(first);
        assert!(third.await.is_some());
    }

    #[tokio::test]
    async fn closing_ends_the_waiting_acquire_and_later_ones() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let permits = Permits::new(1);
                let _held = permits.acquire().await.unwrap();
                let waiting = tokio::task::spawn_local({
                    let permits = permits.clone();
                    async move { permits.acquire().await.is_none() }
                });
                tokio::task::yield_now().await;
                permits.close();
                assert!(permits.acquire().await.is_none());
                assert!(waiting.await.unwrap(), "the waiting acquire got a permit");
            })
            .await;
    }
}
