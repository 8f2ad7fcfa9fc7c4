//! The link's write half: a task that writes what the connection queues.

use actix::prelude::*;
use bytes::Bytes;
use tokio::io::WriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::net::BoxConnection;
use crate::wire::writer::write_queued_frames;
use crate::wire::{FrameCodec, FrameError};

use super::PeerConnection;

/// The link's write half: frames queued here are written by a task of
/// their own ([`write_queued_frames`]), so the requests coordinators send in
/// one turn of the event loop go out in one write.
pub(super) struct Writer {
    frames: mpsc::UnboundedSender<Bytes>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Starts the writing task on `write`. If a write fails, the task tells
    /// this connection, naming the dial `attempt` it belongs to.
    pub(super) fn start(
        write: WriteHalf<BoxConnection>,
        codec: FrameCodec,
        connection: Addr<PeerConnection>,
        attempt: u64,
    ) -> Self {
        let (frames, queue) = mpsc::unbounded_channel();
        let task = actix::spawn(async move {
            if let Err(error) = write_queued_frames(write, codec, queue, |_| {}).await {
                connection.do_send(WriteFailed { attempt, error });
            }
        });
        Self { frames, task }
    }

    pub(super) fn write(&self, frame: Bytes) {
        // A closed queue means the task stopped on a write error, which it
        // reported: the link is being torn down.
        let _ = self.frames.send(frame);
    }

    /// Where frames are queued for the task (handed to [`Outbound`] once
    /// the link is up).
    pub(super) fn queue(&self) -> mpsc::UnboundedSender<Bytes> {
        self.frames.clone()
    }
}

/// Dropping the writer stops it at once: what is still queued is dropped
/// and the write half closes. A torn-down link may have a peer that no
/// longer reads, which a graceful close would wait on forever.
impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A write on the link failed (the task has stopped).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct WriteFailed {
    pub(super) attempt: u64,
    pub(super) error: FrameError,
}
