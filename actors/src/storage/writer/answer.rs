//! What the writer answers its callers with ([`Answer`]), and where it
//! hands a group's answers ([`Deliver`]).

use tokio::sync::oneshot;

use crate::storage::engine::StorageError;
use crate::storage::worker::ApplyError;

/// One answer of the writer to a caller, sent where the callers wait.
pub enum Answer {
    /// A version minted for a coordinator's write, before its batch is
    /// written.
    Minted(oneshot::Sender<Vec<u8>>, Vec<u8>),
    /// An apply job's result, once its batch is written (or not).
    Applied(
        oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
        Result<Option<Vec<u8>>, ApplyError>,
    ),
    /// A hint clear's result.
    Cleared(
        oneshot::Sender<Result<(), StorageError>>,
        Result<(), StorageError>,
    ),
    /// A reap's result: whether the object was removed.
    Reaped(
        oneshot::Sender<Result<bool, StorageError>>,
        Result<bool, StorageError>,
    ),
}

impl Answer {
    /// Sends it; the caller may have timed out and gone, which is fine.
    pub fn send(self) {
        match self {
            Answer::Minted(reply, bytes) => {
                let _ = reply.send(bytes);
            }
            Answer::Applied(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Cleared(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Reaped(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

/// Where the writer hands a group's answers, all at once: the thread the
/// callers' tasks run on (the Storage actor's), which sends each, so
/// waking them is a same-thread wake-up. Without it (or once that end is
/// gone) the writer sends them itself, one cross-thread wake-up each.
pub type Deliver = tokio::sync::mpsc::UnboundedSender<Vec<Answer>>;
