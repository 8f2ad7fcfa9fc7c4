//! The seam between the Storage actor and the bytes on disk.
//!
//! The actor only knows this trait; the engines behind it (the LSM engine;
//! `MemoryEngine`, for `--storage memory` and the simulations) are plain
//! Rust without actix.

use std::path::PathBuf;

/// Key-value pairs in key order, as `scan` returns them.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// One operation of a write batch, applied in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Sets `key` to `value`.
    Put {
        /// The engine key (opaque bytes).
        key: Vec<u8>,
        /// The engine value (opaque bytes; for ringkv, an encoded sibling set).
        value: Vec<u8>,
    },
    /// Removes `key` at the engine level. ringkv's deletes are tombstone
    /// *siblings* (values); this removes the object itself and is only used
    /// once every replica holds the tombstone.
    Delete {
        /// The engine key.
        key: Vec<u8>,
    },
}

/// What can go wrong below the Storage actor.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed; `context` says which file and what was being done.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the engine was doing, with the file name.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes failed their checksum or do not parse.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record or block.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An fsync failed earlier; the engine refuses writes from then on because
    /// the kernel may have dropped the dirty pages (see the fsync-failure
    /// studies): retrying would acknowledge data that is not on disk.
    #[error("storage is poisoned after a failed fsync ({reason}); writes are refused")]
    Poisoned {
        /// The original failure.
        reason: String,
    },
    /// The Storage actor's queue of pending requests is full.
    #[error("storage overloaded: {pending} requests queued (limit {limit})")]
    Overloaded {
        /// Requests waiting.
        pending: usize,
        /// The named limit (`storage_queue_max`).
        limit: usize,
    },
    /// The engine thread is gone (shut down or panicked).
    #[error("storage engine stopped")]
    Stopped,
    /// The store was written with another key layout (see `storage::keys`).
    #[error(
        "the store holds key layout {found}; this build reads layout {} \
         (start the node on an empty data dir: it streams its ranges from its replicas)",
        super::keys::LAYOUT_VERSION
    )]
    Layout {
        /// What was found.
        found: String,
    },
}

/// A key-value engine. Implementations are shared between the engine's writer
/// thread and its reader threads, so every method takes `&self`.
///
/// Laws every engine keeps (checked by the model tests):
/// - a `write_batch` that returned `Ok` is durable (survives a crash) unless the
///   engine was opened in a documented weaker sync mode;
/// - `get` sees every batch that returned before it was called;
/// - `scan` returns keys in ascending byte order.
pub trait Engine: Send + Sync + 'static {
    /// The newest value of `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// [`Self::get`] without blocking: the same answer when it can be
    /// had from memory (memtables, cached blocks), `None` when it needs a
    /// disk read. The Storage actor serves such reads on its arbiter and
    /// hands only the others to its reader threads (no thread hop, no
    /// wake-up each way, for the reads that hit memory). It may wait for a
    /// lock held across an in-memory update (a memtable insert, a version
    /// swap), never for I/O.
    fn get_cached(&self, _key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        None
    }

    /// Applies `ops` in order and returns once they are durable. One call is
    /// one group commit: the Storage actor hands every write that arrived
    /// together to a single call, so they share one fsync.
    fn write_batch(&self, ops: &[WriteOp]) -> Result<(), StorageError>;

    /// [`Engine::write_batch`] of ops the caller no longer needs: an engine
    /// that keeps the keys and values (in a memtable) takes them instead of
    /// copying them. The storage writer's group commits come this way.
    fn write_batch_owned(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        self.write_batch(&ops)
    }

    /// Up to `limit` entries with `start <= key < end` (no upper bound when
    /// `end` is `None`), in ascending key order.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyValues, StorageError>;

    /// Makes everything written so far durable in the engine's long-term
    /// structures (for engines with a memtable: flush it). Used by tests and
    /// before a clean shutdown.
    fn flush(&self) -> Result<(), StorageError>;

    /// Whether the engine refuses every write from now on (a failed fsync
    /// or background write: see `StorageError::Poisoned`); only reopening
    /// it can bring writes back.
    fn is_poisoned(&self) -> bool {
        false
    }

    /// Whether a [`Engine::write_batch`] now may wait for background work
    /// (a write stall: memtables waiting for their flush) rather than only
    /// for its own I/O. The writer on the event loop
    /// (`StorageThreading::Loop`) hands such a group to a thread. Engines
    /// that never wait for anything answer `false`.
    fn write_may_wait(&self) -> bool {
        false
    }

    /// Every engine-level delete written so far may be dropped by
    /// compaction (ringkv writes `WriteOp::Delete` only for data that is
    /// gone for good: a delivered hint, a reaped tombstone). Engines
    /// without such markers ignore it.
    fn allow_delete_purge(&self) {}

    /// Merges the whole store into as little as it can, dropping the
    /// deletes [`Engine::allow_delete_purge`] allowed: what makes the disk
    /// space of reaped tombstones come back. Slow (rewrites the store);
    /// run off the writer thread.
    fn compact_purging_deletes(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// The engine's own metrics (fsyncs, memtables, tables, compactions,
    /// stalls), when it keeps them; node.rs registers them.
    fn metrics(&self) -> Option<crate::metrics::EngineMetrics> {
        None
    }
}
