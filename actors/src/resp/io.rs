//! A RESP connection's bytes: the decoder that splits the stream into
//! commands, and the task that writes the replies (`session` drives both).

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Decoder;

use super::frame::{next_frame, FrameLimits, Framed};
use super::local::QueuedReplies;

/// What the decoder hands the session.
#[derive(Debug)]
pub(super) enum Input {
    /// A command's arguments.
    Command(Vec<Vec<u8>>),
    /// Not a command; the connection goes on.
    NotACommand(String),
    /// The stream cannot be framed any more.
    Fatal(String),
}

/// Splits the byte stream into [`Input`]s (`frame::next_frame`).
pub(super) struct RespDecoder {
    pub(super) limits: FrameLimits,
    /// A fatal frame was reported: nothing more is read.
    pub(super) failed: bool,
}

impl Decoder for RespDecoder {
    type Item = Input;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Input>, std::io::Error> {
        loop {
            if self.failed {
                src.clear();
                return Ok(None);
            }
            match next_frame(src, &self.limits) {
                Framed::Incomplete => return Ok(None),
                Framed::Nothing(len) => {
                    let _ = src.split_to(len);
                }
                Framed::Command(args, len) => {
                    let _ = src.split_to(len);
                    return Ok(Some(Input::Command(args)));
                }
                Framed::NotACommand(e, len) => {
                    let _ = src.split_to(len);
                    return Ok(Some(Input::NotACommand(e)));
                }
                Framed::Fatal(e) => {
                    self.failed = true;
                    return Ok(Some(Input::Fatal(e)));
                }
            }
        }
    }
}

/// Writes queued replies to the socket, everything queued at a wake-up
/// with one flush; closes the socket once the session drops its sender.
pub(super) async fn write_replies<W: tokio::io::AsyncWrite + Unpin>(
    mut write: W,
    mut queue: QueuedReplies,
) {
    while let Some(first) = queue.recv().await {
        let mut sent = write.write_all(&first).await;
        while sent.is_ok() {
            let Some(more) = queue.try_recv() else { break };
            sent = write.write_all(&more).await;
        }
        if sent.is_ok() {
            sent = write.flush().await;
        }
        if sent.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}
