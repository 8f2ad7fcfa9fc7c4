//! What the Storage actor hands its threads, and the reader threads.
//!
//! One writer thread (`writer.rs`) owns every read-modify-write; reader
//! threads serve point reads and scans straight from the engine, which sees
//! every batch acknowledged before the read was queued. The engine sits in
//! an [`EngineSlot`] so that the writer can replace it when it reopens a
//! poisoned store.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;

use super::engine::{Engine, KeyValues, StorageError, WriteOp};
use super::keys::HintRecord;
use crate::wire::client::ClientError;
use crate::NodeId;

/// How this store mints new versions now: under which name, and above
/// which counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintAs {
    /// The name new versions are minted under (this store's version actor).
    pub actor: NodeId,
    /// Every new dot's counter is above this: the highest counter of
    /// `actor`'s dots in any tombstone this store reaped (see
    /// `repair::reap`), so a key whose object is gone never reuses a dot.
    /// Durable before the reap that raised it.
    pub counter_floor: u64,
}

/// A read-modify-write: gets the stored value (or `None`) and how new
/// versions are minted ([`MintAs`]), and returns the new value to store
/// (`None`: leave it as it is) or a refusal.
pub type Mutation =
    Box<dyn FnOnce(Option<&[u8]>, &MintAs) -> Result<Option<Vec<u8>>, ClientError> + Send>;

/// What a reap's compare-and-delete decided about the stored object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapVerdict {
    /// Remove the object (it is still exactly the reaped tombstone, or one
    /// it dominates).
    pub delete: bool,
    /// Raise this store's counter floor to at least this (its own dots'
    /// highest counter in the reaped tombstone); written in the same batch.
    pub counter_floor: u64,
}

/// A reap's check, run on the writer thread against the stored object (or
/// `None`) and this store's version actor. `Err`: the stored object does
/// not decode (nothing is removed).
pub type ReapDecide = Box<dyn FnOnce(Option<&[u8]>, &NodeId) -> Result<ReapVerdict, String> + Send>;

/// Whether the reaped tombstone covers an arriving object (its bytes):
/// the tombstone dominates it, so it is a version the delete superseded.
pub type Covers = Box<dyn Fn(&[u8]) -> bool + Send>;

/// What a reaped key leaves behind for a while: a write of a version its
/// tombstone covers, arriving at a key that holds nothing, is not stored
/// (see `writer.rs`, "Reaps and the counter floor": content read before
/// the reap, still in flight, must not bring the value back).
pub struct ReapShadow {
    /// The reaped tombstone's check.
    pub covers: Covers,
    /// How long the shadow lasts, in milliseconds.
    pub for_ms: u64,
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The engine failed or is overloaded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The mutation refused the write (e.g. too many siblings).
    #[error(transparent)]
    Rejected(ClientError),
    /// This store mints no new version now: a local write failed after a
    /// version it minted was handed out, and it has no new incarnation yet
    /// (see `writer.rs`). Nothing was written; another replica can
    /// coordinate the write.
    #[error("this node mints no new versions now: {reason}")]
    CannotMint {
        /// Why, for the log and `status`.
        reason: String,
    },
    /// A stand-in holds `hints_bytes_max_per_target` of hints for `owner`
    /// already: it does not take the write (the coordinator asks another).
    #[error(
        "hints for {owner} hold {held_bytes} bytes; this one would pass \
         hints_bytes_max_per_target ({limit} bytes)"
    )]
    HintsFull {
        /// The replica the hints are for.
        owner: NodeId,
        /// Bytes of hints held for it.
        held_bytes: u64,
        /// The limit.
        limit: u64,
    },
}

/// One queued read-modify-write.
pub(crate) struct ApplyJob {
    /// The engine key (data namespace).
    pub key: Vec<u8>,
    /// The user key (for the hint key).
    pub user_key: Vec<u8>,
    pub mutation: Mutation,
    pub trace: u64,
    /// Bytes the job carries in (the incoming object or value), for the
    /// group's byte bound.
    pub bytes: usize,
    /// Gets the value stored after the job (the old one if unchanged),
    /// once it is durable; `None` in place of a new value already handed
    /// over through `minted`.
    pub reply: oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
    /// For a job that mints a new version: gets it as soon as the mutation
    /// made it, before the group is written (dropped unsent when nothing
    /// new is written).
    pub minted: Option<oneshot::Sender<Vec<u8>>>,
    /// The job stores a version its coordinator minted and handed out
    /// already (`writer`, "Minting on the event loop").
    pub handed_out: bool,
    /// Sloppy quorum: this node stands in for `owner`; a hint is written
    /// in the same batch.
    pub hint_for: Option<NodeId>,
}

/// A hint held on this node, as a scan of the hints namespace returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldHint {
    /// The replica the write was meant for.
    pub owner: NodeId,
    /// The user key.
    pub key: Vec<u8>,
    /// The record (its `seq` identifies this hinting of the key).
    pub record: HintRecord,
}

/// One page of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Keys and values, in key order.
    pub entries: KeyValues,
    /// The range holds more after the last entry.
    pub more: bool,
}

/// Tells whether a stored object (its encoded bytes) holds a live value;
/// `Err` when it does not decode (the listing fails rather than skip it).
/// Given by the caller: storage does not read objects.
pub type LiveFilter = Arc<dyn Fn(&[u8]) -> Result<bool, String> + Send + Sync>;

/// One page of a key listing (`list_live`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyListing {
    /// Keys whose object is live, in key order.
    pub keys: Vec<Vec<u8>>,
    /// The last key examined, when the range holds more after it (the key
    /// limit or a scan bound stopped the page); `None`: the range is done.
    pub stopped_after: Option<Vec<u8>>,
}

/// Bounds of one key-listing scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListBounds {
    /// Most live keys to return.
    pub keys_max: usize,
    /// Most entries (live or not) to examine.
    pub scanned_entries_max: usize,
    /// Bytes of keys and values at which the scan stops (one entry always
    /// counts).
    pub scanned_bytes_max: usize,
}

/// Hints held per owner: how many and how many bytes.
pub type HintCounts = Vec<(NodeId, u64, u64)>;

/// One job for the writer thread.
pub(crate) enum WriterJob {
    /// A read-modify-write of one key.
    Apply(ApplyJob),
    /// A hint was delivered: remove it if it is still hinting `seq`.
    ClearHint {
        owner: NodeId,
        key: Vec<u8>,
        seq: u64,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// How many hints are held, per owner.
    HintCounts { reply: oneshot::Sender<HintCounts> },
    /// A reap: remove the object under `key` (engine key) if `decide` says
    /// so, and raise the counter floor, in one batch.
    Reap {
        key: Vec<u8>,
        decide: ReapDecide,
        shadow: ReapShadow,
        reply: oneshot::Sender<Result<bool, StorageError>>,
    },
    /// Whether any hint (for any owner) is held for each user key.
    HintsPending {
        keys: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<Vec<bool>, StorageError>>,
    },
}

impl WriterJob {
    /// Bytes the job carries in, for the group's byte bound.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            WriterJob::Apply(job) => job.bytes,
            WriterJob::ClearHint { .. }
            | WriterJob::HintCounts { .. }
            | WriterJob::Reap { .. }
            | WriterJob::HintsPending { .. } => 0,
        }
    }
}

/// One queued read.
pub(crate) enum ReadJob {
    /// A point read of an engine key.
    Get {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, StorageError>>,
    },
    /// A range scan of engine keys `[start, end)`: at most `limit` entries
    /// and, past the first, at most `bytes_max` bytes of keys and values.
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        bytes_max: usize,
        reply: oneshot::Sender<Result<Page, StorageError>>,
    },
    /// A full compaction that may drop the engine's deletes (after many
    /// reaps); run on a reader thread, off the writer.
    Compact {
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// The live keys of engine keys `[start, end)`, bounded.
    ListKeys {
        start: Vec<u8>,
        end: Vec<u8>,
        bounds: ListBounds,
        live: LiveFilter,
        reply: oneshot::Sender<Result<KeyListing, StorageError>>,
    },
}

/// The engine, shared by the writer and the readers; the writer replaces
/// it when it reopens a poisoned store.
pub(crate) type EngineSlot = Arc<RwLock<Arc<dyn Engine>>>;

/// The engine in `slot` now.
pub(crate) fn current(slot: &EngineSlot) -> Arc<dyn Engine> {
    match slot.read() {
        Ok(engine) => engine.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Sends `job` without blocking; a full queue is `Overloaded`.
pub(crate) fn offer<T>(tx: &SyncSender<T>, job: T, limit: usize) -> Result<(), StorageError> {
    tx.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => StorageError::Overloaded {
            pending: limit,
            limit,
        },
        TrySendError::Disconnected(_) => StorageError::Stopped,
    })
}

/// Scans at most `limit` entries of `[start, end)`, and stops early once
/// `bytes_max` bytes of keys and values are in (one entry always fits):
/// a scan page becomes one peer frame, and objects can be large.
pub(crate) fn scan_bounded(
    engine: &dyn Engine,
    start: &[u8],
    end: &[u8],
    limit: usize,
    bytes_max: usize,
) -> Result<Page, StorageError> {
    /// Entries read from the engine at a time while filling a page.
    const SCAN_CHUNK_ENTRIES: usize = 32;
    let mut page = Page::default();
    let mut bytes = 0usize;
    let mut cursor = start.to_vec();
    let limit = limit.max(1);
    loop {
        let want = SCAN_CHUNK_ENTRIES.min(limit - page.entries.len()) + 1;
        let chunk = engine.scan(&cursor, Some(end), want)?;
        let exhausted = chunk.len() < want;
        for (key, value) in chunk {
            let size = key.len() + value.len();
            let over_bytes = !page.entries.is_empty() && bytes + size > bytes_max;
            if over_bytes || page.entries.len() == limit {
                page.more = true;
                return Ok(page);
            }
            bytes += size;
            cursor = key.clone();
            cursor.push(0);
            page.entries.push((key, value));
        }
        if exhausted {
            return Ok(page);
        }
    }
}

/// The live keys of `[start, end)`: stops after `keys_max` live keys, or
/// once `scanned_entries_max` entries or `scanned_bytes_max` bytes were
/// examined (tombstones cost as much as live keys), and says where it
/// stopped. Reads the engine in chunks, so memory stays bounded by the
/// answer plus one chunk.
pub(crate) fn list_live(
    engine: &dyn Engine,
    start: &[u8],
    end: &[u8],
    bounds: ListBounds,
    live: &LiveFilter,
) -> Result<KeyListing, StorageError> {
    /// Entries read from the engine at a time.
    const LIST_CHUNK_ENTRIES: usize = 64;
    let mut listing = KeyListing::default();
    let (mut scanned, mut bytes) = (0usize, 0usize);
    let keys_max = bounds.keys_max.max(1);
    let mut cursor = start.to_vec();
    let mut last: Option<Vec<u8>> = None;
    loop {
        let chunk = engine.scan(&cursor, Some(end), LIST_CHUNK_ENTRIES)?;
        let exhausted = chunk.len() < LIST_CHUNK_ENTRIES;
        for (key, value) in chunk {
            let full = listing.keys.len() == keys_max
                || scanned == bounds.scanned_entries_max.max(1)
                || (scanned > 0 && bytes + key.len() + value.len() > bounds.scanned_bytes_max);
            if full {
                listing.stopped_after = last;
                return Ok(listing);
            }
            scanned += 1;
            bytes += key.len() + value.len();
            let is_live = live(&value).map_err(|reason| StorageError::Corruption {
                file: "data namespace".into(),
                offset: 0,
                reason: format!("object under key {key:02x?} does not decode: {reason}"),
            })?;
            cursor = key.clone();
            cursor.push(0);
            if is_live {
                listing.keys.push(key.clone());
            }
            last = Some(key);
        }
        if exhausted {
            return Ok(listing);
        }
    }
}

/// A reader loop; several share one receiver.
pub(crate) fn run_reader(slot: EngineSlot, jobs: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        serve_read(&*current(&slot), job);
    }
}

/// Serves one read against `engine`.
pub(crate) fn serve_read(engine: &dyn Engine, job: ReadJob) {
    match job {
        ReadJob::Get { key, reply } => {
            let _ = reply.send(engine.get(&key));
        }
        ReadJob::Scan {
            start,
            end,
            limit,
            bytes_max,
            reply,
        } => {
            let _ = reply.send(scan_bounded(engine, &start, &end, limit, bytes_max));
        }
        ReadJob::ListKeys {
            start,
            end,
            bounds,
            live,
            reply,
        } => {
            let _ = reply.send(list_live(engine, &start, &end, bounds, &live));
        }
        ReadJob::Compact { reply } => {
            let _ = reply.send(engine.compact_purging_deletes());
        }
    }
}

/// StorageError holds an io::Error, which is not Clone; every waiter of a
/// failed batch gets an equivalent error.
pub(crate) fn clone_error(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io { context, source } => StorageError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StorageError::Corruption {
            file,
            offset,
            reason,
        } => StorageError::Corruption {
            file: file.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        StorageError::Poisoned { reason } => StorageError::Poisoned {
            reason: reason.clone(),
        },
        StorageError::Overloaded { pending, limit } => StorageError::Overloaded {
            pending: *pending,
            limit: *limit,
        },
        StorageError::Stopped => StorageError::Stopped,
        StorageError::Layout { found } => StorageError::Layout {
            found: found.clone(),
        },
    }
}

/// The engine between a poisoned store's close and its reopen: every call
/// fails with the reason.
pub(crate) struct Closed(pub String);

impl Engine for Closed {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Err(self.error())
    }

    fn write_batch(&self, _ops: &[WriteOp]) -> Result<(), StorageError> {
        Err(self.error())
    }

    fn scan(&self, _: &[u8], _: Option<&[u8]>, _: usize) -> Result<KeyValues, StorageError> {
        Err(self.error())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Err(self.error())
    }

    fn is_poisoned(&self) -> bool {
        true
    }
}

impl Closed {
    fn error(&self) -> StorageError {
        StorageError::Poisoned {
            reason: self.0.clone(),
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
