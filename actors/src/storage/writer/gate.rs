//! The writer's [`MintGate`] (what a coordinator mints with on its own
//! thread) and the minting state it reports ([`MintState`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::storage::worker::MintAs;
use crate::NodeId;

/// Whether this store mints new versions, and under which name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintState {
    /// The name new versions are minted under.
    pub version_actor: NodeId,
    /// Why minting is stopped (`None`: it is not).
    pub stopped: Option<String>,
}

/// What the writer reports: its minting state after each change.
pub type Publish = Box<dyn FnMut(MintState) + Send>;

/// What a coordinator needs to mint a version on its own thread (see
/// "Minting on the event loop"), kept current by the writer.
#[derive(Debug, Default)]
pub struct MintGate {
    /// The name and floor new versions are minted under; `None` while
    /// minting is stopped.
    minting: Mutex<Option<MintAs>>,
    /// The number of the last queued job whose group is done: written to
    /// the engine (so a read from memory sees it), or failed.
    done: AtomicU64,
}

impl MintGate {
    /// How to mint now; `None` while minting is stopped.
    pub fn minting_as(&self) -> Option<MintAs> {
        self.minting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The number of the last queued job whose group is done.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Notes the queued jobs up to number `last` as done (numbers only
    /// grow: a smaller `last` changes nothing).
    pub(super) fn mark_done(&self, last: u64) {
        self.done.fetch_max(last, Ordering::SeqCst);
    }

    pub(super) fn set(&self, minting: Option<MintAs>) {
        *self
            .minting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = minting;
    }
}
