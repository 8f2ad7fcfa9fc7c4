//! The write half of a framed connection, in a task of its own: a session
//! queues encoded frames and this task writes them out, so a slow reader on
//! the other end never blocks the session's actor.

use std::future::Future;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

use super::FrameCodec;

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
/// closes the connection; stops at the first write error. Everything queued
/// at a wake-up goes out with one flush, and `written` is told the frame
/// bytes of each burst once it is flushed (or failed).
pub async fn write_queued_frames<W: AsyncWrite + Unpin>(
    write: W,
    codec: FrameCodec,
    mut queue: impl FrameQueue,
    mut written: impl FnMut(usize),
) {
    let mut sink = FramedWrite::new(write, codec);
    while let Some(frame) = queue.recv().await {
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
        if sent.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}
