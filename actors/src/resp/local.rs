//! A RESP connection's two halves and its reply queue, on its thread.
//!
//! The session (an actor) reads the socket as a stream and hands each
//! encoded reply to the writer task (`io::write_replies`); both run on the
//! session's arbiter thread. `tokio::io::split` and a bounded
//! `tokio::sync::mpsc` channel serve tasks on any thread: a lock around
//! every read and write of the socket, and per reply a semaphore (a mutex
//! and atomics), a block list and atomic wakers, about 2% of a one-node
//! GET's CPU (benches/README.md, "Session 26"). Here the halves share the
//! connection through a `RefCell` and the queue is a `VecDeque` with a
//! counted bound, with the same behaviour: the queue refuses a reply past
//! `write_queue_replies_max` or once the writer has stopped (a failed
//! write), and the writer sees the end once the session drops its sender
//! and everything queued is taken.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::BoxConnection;

/// One half of a connection split on its thread: reads and writes go to
/// the same connection, one at a time (polls do not nest).
pub struct Half(Rc<RefCell<BoxConnection>>);

/// The read and the write half of `conn`.
pub fn split(conn: BoxConnection) -> (Half, Half) {
    let shared = Rc::new(RefCell::new(conn));
    (Half(shared.clone()), Half(shared))
}

impl Half {
    /// Polls the connection with `poll`; an error, not a panic, should
    /// the other half ever be inside a poll of its own.
    fn with<T>(
        &self,
        poll: impl FnOnce(Pin<&mut BoxConnection>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.0.try_borrow_mut() {
            Ok(mut conn) => poll(Pin::new(&mut *conn)),
            Err(_) => Poll::Ready(Err(io::Error::other(
                "the connection's other half is in a poll",
            ))),
        }
    }
}

impl AsyncRead for Half {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|conn| conn.poll_read(cx, buf))
    }
}

impl AsyncWrite for Half {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|conn| conn.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|conn| conn.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|conn| conn.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.with(|conn| conn.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.0
            .try_borrow()
            .is_ok_and(|conn| conn.is_write_vectored())
    }
}

struct Queue {
    replies: RefCell<VecDeque<Bytes>>,
    /// Replies queued at most.
    max: usize,
    /// The sender was dropped.
    closed: Cell<bool>,
    /// The writer is gone (its write failed): nothing more is taken.
    abandoned: Cell<bool>,
    /// The writer, waiting for a reply.
    waiting: Cell<Option<Waker>>,
}

impl Queue {
    fn wake(&self) {
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
    }
}

/// The session's end of the reply queue; dropping it ends the writer's.
pub struct Replies(Rc<Queue>);

/// The writer task's end of the reply queue.
pub struct QueuedReplies(Rc<Queue>);

/// A queue of at most `max` replies (at least one).
pub fn reply_queue(max: usize) -> (Replies, QueuedReplies) {
    let queue = Rc::new(Queue {
        replies: RefCell::new(VecDeque::new()),
        max: max.max(1),
        closed: Cell::new(false),
        abandoned: Cell::new(false),
        waiting: Cell::new(None),
    });
    (Replies(queue.clone()), QueuedReplies(queue))
}

impl Replies {
    /// Queues `reply`; gives it back when the queue is full or the
    /// writer is gone.
    pub fn try_send(&self, reply: Bytes) -> Result<(), Bytes> {
        {
            let mut replies = self.0.replies.borrow_mut();
            if replies.len() >= self.0.max || self.0.abandoned.get() {
                return Err(reply);
            }
            replies.push_back(reply);
        }
        self.0.wake();
        Ok(())
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.wake();
    }
}

impl QueuedReplies {
    /// The next reply, once there is one; `None` once the sender is gone
    /// and nothing is left.
    pub async fn recv(&mut self) -> Option<Bytes> {
        poll_fn(|cx| {
            if let Some(reply) = self.try_recv() {
                return Poll::Ready(Some(reply));
            }
            if self.0.closed.get() {
                return Poll::Ready(None);
            }
            self.0.waiting.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    /// The next reply if one is queued.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.0.replies.borrow_mut().pop_front()
    }
}

impl Drop for QueuedReplies {
    fn drop(&mut self) {
        self.0.abandoned.set(true);
        self.0.replies.borrow_mut().clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_queue_keeps_order_refuses_past_its_bound_and_ends_after_the_sender() {
        let (replies, mut queued) = reply_queue(2);
        assert!(queued.recv().now_or_never().is_none(), "nothing queued yet");
        replies.try_send(Bytes::from_static(b"a")).unwrap();
        assert_eq!(queued.recv().await.as_deref(), Some(&b"a"[..]));
        replies.try_send(Bytes::from_static(b"b")).unwrap();
        replies.try_send(Bytes::from_static(b"c")).unwrap();
        assert_eq!(
            replies.try_send(Bytes::from_static(b"d")).unwrap_err(),
            Bytes::from_static(b"d"),
            "a third reply is past the bound of 2"
        );
        assert_eq!(queued.try_recv().as_deref(), Some(&b"b"[..]));
        drop(replies);
        // What was queued before the sender went is still handed out.
        assert_eq!(queued.recv().await.as_deref(), Some(&b"c"[..]));
        assert_eq!(queued.recv().await, None);
    }

    /// A writer that stopped (its write failed) takes nothing more: the
    /// session is refused at once, as a closed channel refused it.
    #[test]
    fn a_gone_writer_refuses_replies() {
        let (replies, queued) = reply_queue(4);
        replies.try_send(Bytes::from_static(b"a")).unwrap();
        drop(queued);
        assert!(replies.try_send(Bytes::from_static(b"b")).is_err());
    }

    #[tokio::test]
    async fn dropping_the_sender_wakes_the_waiting_writer() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (replies, mut queued) = reply_queue(4);
                let writer = tokio::task::spawn_local(async move { queued.recv().await });
                tokio::task::yield_now().await;
                drop(replies);
                assert_eq!(writer.await.unwrap(), None);
            })
            .await;
    }

    #[tokio::test]
    async fn both_halves_reach_the_one_connection() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (mut read, mut write) = split(Box::new(ours));
        write.write_all(b"ping").await.unwrap();
        write.flush().await.unwrap();
        let mut got = [0u8; 4];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        theirs.write_all(b"pong").await.unwrap();
        read.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        write.shutdown().await.unwrap();
        assert_eq!(theirs.read(&mut got).await.unwrap(), 0, "shut down");
    }
}
