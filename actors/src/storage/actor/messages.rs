//! The Storage actor's messages: reads, scans and listings, writes and
//! hint clears for the writer, reaps, and the store's health.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::super::engine::StorageError;
use super::super::worker::{
    ApplyError, HeldHint, HintCounts, KeyListing, ListBounds, LiveFilter, Mutation, Page,
    ReapDecide, ReapShadow,
};
use super::super::writer::MintState;
use crate::NodeId;

/// Read the stored bytes of `key` (a user key).
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, StorageError>")]
pub struct LocalRead {
    /// The key.
    pub key: Vec<u8>,
}

/// Scan storage keys `[start, end)` (token prefix, then the user key; see
/// [`crate::ring::TokenRange::storage_ranges`]), at most `limit` entries and
/// about `bytes_max` bytes (one entry always fits), in order. For handoff
/// and anti-entropy streaming.
#[derive(Message)]
#[rtype(result = "Result<Page, StorageError>")]
pub struct LocalScan {
    /// First storage key (inclusive).
    pub start: Vec<u8>,
    /// End (exclusive); `None`: to the end.
    pub end: Option<Vec<u8>>,
    /// Most entries to return.
    pub limit: usize,
    /// Bytes of keys and values at which the page stops.
    pub bytes_max: usize,
}

/// The live keys among storage keys `[start, end)` (`end` `None`: to the
/// end), in order, within `bounds` (the key listing's replica side; read
/// on the reader threads like a scan). Keys in the answer are storage keys.
#[derive(Message)]
#[rtype(result = "Result<KeyListing, StorageError>")]
pub struct LocalListKeys {
    /// First storage key (inclusive).
    pub start: Vec<u8>,
    /// End (exclusive); `None`: to the end.
    pub end: Option<Vec<u8>>,
    /// Keys, entries and bytes at which the page stops.
    pub bounds: ListBounds,
    /// Whether an object is live (the caller knows objects).
    pub live: LiveFilter,
}

/// Atomically read, transform and write the value of `key`; answers with
/// the value stored afterwards, once durable.
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, ApplyError>")]
pub struct LocalApply {
    /// The key.
    pub key: Vec<u8>,
    /// The transformation, run on the writer thread.
    pub mutation: Mutation,
    /// The client request served (for logs).
    pub trace: u64,
    /// Bytes the write brings in (the object or value), for the group
    /// commit's byte bound.
    pub bytes: usize,
    /// Set when the mutation mints a new version: gets it as soon as the
    /// mutation made it, before it is durable (the answer then says only
    /// whether it became durable: `None` in place of the value); dropped
    /// unsent when the mutation refuses or changes nothing, or the job is
    /// not run (`ApplyError::CannotMint`). A write coordinator sends it to
    /// the other replicas meanwhile (see `replicator::write`).
    pub minted: Option<oneshot::Sender<Vec<u8>>>,
    /// The mutation stores a version the coordinator minted on its own
    /// thread and handed out already (see `writer`, "Minting on the event
    /// loop"): it is stored even while the writer does not mint, and a
    /// failed batch stops minting as for a version the writer handed out.
    pub handed_out: bool,
    /// Sloppy quorum: this node stands in for this replica; a hint for it
    /// is written in the same batch.
    pub hint_for: Option<NodeId>,
}

/// A delivered hint: remove it if it still hints `seq`.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct ClearHint {
    /// The replica it was for.
    pub owner: NodeId,
    /// The user key.
    pub key: Vec<u8>,
    /// The hinting that was delivered.
    pub seq: u64,
}

/// Hints held for `owner`, in key order, after `after` (a user key), at
/// most `limit`.
#[derive(Message)]
#[rtype(result = "Result<Vec<HeldHint>, StorageError>")]
pub struct LocalHints {
    /// The replica.
    pub owner: NodeId,
    /// Where the previous page ended (`None`: from the first).
    pub after: Option<Vec<u8>>,
    /// Most hints to return.
    pub limit: usize,
}

/// How many hints are held, per owner (count, bytes).
#[derive(Message)]
#[rtype(result = "HintCounts")]
pub struct HintCountsQuery;

/// Whether any hint (for any owner) is held for each of `keys` (user
/// keys), in order.
#[derive(Message)]
#[rtype(result = "Result<Vec<bool>, StorageError>")]
pub struct HintsPending {
    /// The user keys.
    pub keys: Vec<Vec<u8>>,
}

/// A reap's compare-and-delete of `key` (see `writer.rs`, "Reaps and the
/// counter floor"): answers whether the object was removed, once durable.
#[derive(Message)]
#[rtype(result = "Result<bool, StorageError>")]
pub struct LocalReap {
    /// The user key.
    pub key: Vec<u8>,
    /// The check against the stored object.
    pub decide: ReapDecide,
    /// What the key keeps once its object is gone (or if it held none).
    pub shadow: ReapShadow,
}

/// A full compaction that drops the deletes of reaped tombstones (their
/// disk space comes back); runs on a reader thread.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct CompactStore;

/// Whether this node mints new versions now, and under which name; sent
/// to subscribers at each change (see `writer.rs`, "Minting").
#[derive(Message, Clone, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct StorageHealth(pub MintState);

/// Adds a subscriber to [`StorageHealth`]; it gets the current state at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeStorage(pub Recipient<StorageHealth>);

/// Stop taking writes and wait until the writer thread has finished every
/// write it took (answered, durable or failed) and flushed the engine.
/// Later writes are refused with `Stopped`. For a clean shutdown:
/// afterwards no version this node minted is still on its way to the
/// disk. Answers why the stop is not clean, if it is not.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CloseWrites;
