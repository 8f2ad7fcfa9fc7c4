//! The write half of a framed connection, in a task of its own: a session
//! queues encoded frames and this task writes them out, so a slow reader on
//! the other end never blocks the session's actor.

use std::future::Future;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

use super::{FrameCodec, FrameError};

/// A queue of encoded frames that [`write_queued_frames`] drains.
pub trait FrameQueue {
    /// The next frame; `None` once every sender is gone and the queue is empty.
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>>;
    /// A frame already queued, without waiting.
    fn try_recv(&mut self) -> Option<Bytes>;
}

impl FrameQueue for mpsc::Receiver<Bytes> {
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> {
        mpsc::Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

impl FrameQueue for mpsc::UnboundedReceiver<Bytes> {
    fn recv(&mut self) -> impl Future<Output = Option<Bytes>> {
        mpsc::UnboundedReceiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Writes the frames of `queue` to `write` until the queue closes, then
/// closes the connection. Returns the first write error, after which it
/// writes nothing more.
///
/// One write per burst: woken by a frame, the task first yields, so every
/// task that is ready on this thread runs (and queues its frames) before
/// the write. Replies that complete together (a group commit answers many
/// replica writes at once, each in a task of its own) then share one
/// syscall instead of taking one each. `written` is told the frame bytes of
/// each burst once it is flushed (or failed).
pub async fn write_queued_frames<W: AsyncWrite + Unpin>(
    write: W,
    codec: FrameCodec,
    mut queue: impl FrameQueue,
    mut written: impl FnMut(usize),
) -> Result<(), FrameError> {
    let mut sink = FramedWrite::new(write, codec);
    while let Some(frame) = queue.recv().await {
        tokio::task::yield_now().await;
        let mut len = frame.len();
        let mut sent = sink.feed(frame).await;
        while sent.is_ok() {
            let Some(more) = queue.try_recv() else { break };
            len += more.len();
            sent = sink.feed(more).await;
        }
        if sent.is_ok() {
            sent = sink.flush().await;
        }
        written(len);
        sent?;
    }
    let _ = sink.close().await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};
    use tokio::sync::oneshot;

    use crate::wire::frame::FRAME_HEADER_BYTES;

    /// A write half that records the bytes of each write call, or fails
    /// every write.
    struct Recorder {
        writes: Rc<RefCell<Vec<usize>>>,
        fail: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.fail {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
            }
            self.writes.borrow_mut().push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Replies that become ready together, each in a task of its own woken
    /// from another thread (as a group commit's answers are), go out in
    /// one write. Without the writer's yield, the first reply's task wakes
    /// the writer onto this thread's own queue, which runs before the
    /// other replies' tasks: five writes.
    #[tokio::test]
    async fn frames_queued_in_one_turn_go_out_in_one_write() {
        let local = tokio::task::LocalSet::new();
        let writes = Rc::new(RefCell::new(Vec::new()));
        let recorder = Recorder {
            writes: writes.clone(),
            fail: false,
        };
        let (frames, queue) = mpsc::unbounded_channel::<Bytes>();
        let body = 10;
        local
            .run_until(async move {
                let writer = tokio::task::spawn_local(write_queued_frames(
                    recorder,
                    FrameCodec::new(1024),
                    queue,
                    |_| {},
                ));
                let mut done = Vec::new();
                let mut replies = Vec::new();
                for _ in 0..5 {
                    let (tx, rx) = oneshot::channel::<()>();
                    let frames = frames.clone();
                    replies.push(tokio::task::spawn_local(async move {
                        rx.await.unwrap();
                        frames.send(Bytes::from(vec![7u8; body])).unwrap();
                    }));
                    done.push(tx);
                }
                tokio::task::yield_now().await; // every reply task waits
                std::thread::spawn(move || {
                    for tx in done {
                        tx.send(()).unwrap();
                    }
                })
                .join()
                .unwrap();
                for reply in replies {
                    reply.await.unwrap();
                }
                drop(frames);
                writer.await.unwrap().unwrap();
            })
            .await;
        assert_eq!(*writes.borrow(), vec![5 * (FRAME_HEADER_BYTES + body)]);
    }

    #[tokio::test]
    async fn a_failed_write_is_returned_and_ends_the_writer() {
        let recorder = Recorder {
            writes: Rc::new(RefCell::new(Vec::new())),
            fail: true,
        };
        let (frames, queue) = mpsc::unbounded_channel::<Bytes>();
        frames.send(Bytes::from_static(b"x")).unwrap();
        let result = write_queued_frames(recorder, FrameCodec::new(1024), queue, |_| {}).await;
        assert!(result.is_err());
        // It stopped: a later frame finds the queue closed.
        assert!(frames.send(Bytes::from_static(b"y")).is_err());
    }
}
