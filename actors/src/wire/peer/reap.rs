//! The tombstone reaper's two calls (`repair::reap`): which members still
//! hold a key and its hints ([`ReapCheck`]), then the delete of what they
//! hold ([`ReapDrop`]).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Most keys one [`ReapCheck`] or [`ReapDrop`] may carry; a larger one is
/// refused.
pub const REAP_KEYS_PER_REQUEST_MAX: usize = 1024;

/// Tombstone reaping's check (`repair::reap`): for each key, what this
/// member stores and whether it holds a hint for it (for any replica).
/// Sent by a reaper to every member; served only to a member of the
/// serving node's rings. Added without a protocol version bump: a peer of
/// an older build cannot decode it and closes the link, and the reaper
/// then reaps nothing (it needs every member's answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapCheck {
    /// User keys, at most [`REAP_KEYS_PER_REQUEST_MAX`].
    pub keys: Vec<ByteBuf>,
}

/// The answer to [`ReapCheck`]: one entry per key, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapHeld {
    /// What is held for each key.
    pub keys: Vec<HeldForReap>,
}

/// What one member holds for one key, as compact as the question needs:
/// a tombstone's encoding (its clock and deleted dots), or only that a
/// live value is there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldForReap {
    /// The stored object when it is a tombstone (encoded).
    pub tombstone: Option<ByteBuf>,
    /// The stored object holds a value (or does not decode).
    pub live: bool,
    /// A hint for the key is held here, for any replica.
    pub hint_pending: bool,
}

/// Tombstone reaping's drop: remove each key's object if what is stored
/// is still exactly, or dominated by, the given tombstone (encoded), and
/// raise this member's counter floor to its own dots' highest counter in
/// it. Sent by a reaper, after a check, to every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapDrop {
    /// User keys and the tombstones to compare with, at most
    /// [`REAP_KEYS_PER_REQUEST_MAX`].
    pub tombstones: Vec<(ByteBuf, ByteBuf)>,
}

/// The answer to [`ReapDrop`]: durable on the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapDropped {
    /// Objects removed.
    pub removed: u64,
}
