//! The shared state of an open engine: the current version of the tree, the
//! durable manifest, and the signals between the writers and the background
//! threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use super::cache::BlockCache;
use super::manifest::Manifest;
use super::memtable::Memtable;
use super::options::LsmOptions;
use super::sstable::reader::Table;
use super::sstable::writer::TableLayout;
use super::vfs::{Vfs, WritableFile};
use crate::storage::{StorageError, WriteOp};

/// A table in the current version with the sequence bound the manifest keeps.
#[derive(Clone)]
pub struct LiveTable {
    /// The open table.
    pub table: Arc<Table>,
    /// Highest batch sequence number in it.
    pub sequence_max: u64,
}

/// What a read sees: swapped whole (copy on write), never edited in place
/// except for the active memtable's own lock.
#[derive(Clone)]
pub struct Version {
    /// Takes the writes.
    pub active: Arc<Memtable>,
    /// Frozen memtables waiting for their flush, newest first.
    pub immutables: Vec<Arc<Memtable>>,
    /// Live tables, newest first.
    pub tables: Vec<LiveTable>,
}

/// Records buffered in the process before a `write` in
/// [`SyncPolicy::Periodic`](super::options::SyncPolicy) mode: 64 KiB.
pub const LOG_BUFFER_BYTES: usize = 64 << 10;

/// The active log segment.
pub struct LogFile {
    /// Its number.
    pub segment: u64,
    /// Its handle.
    pub file: Box<dyn WritableFile>,
    /// Records not yet handed to the OS (only in periodic sync mode).
    pub buffer: Vec<u8>,
    /// Bytes of records written to this segment (buffered ones included).
    pub bytes: u64,
}

impl LogFile {
    /// Hands buffered records to the OS.
    pub fn drain(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.append(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Makes every record written so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.file.sync()
    }
}

/// Batches waiting for the next group commit.
#[derive(Default)]
pub struct CommitQueue {
    /// Their log records, concatenated.
    pub records: Vec<u8>,
    /// Their operations with their sequence numbers.
    pub batches: Vec<(u64, Vec<WriteOp>)>,
    /// The next sequence number to hand out.
    pub sequence_next: u64,
    /// Every batch up to this one is logged and applied.
    pub sequence_applied: u64,
    /// Whether a leader is committing a group right now.
    pub leader_active: bool,
    /// Writers blocked on `committed`.
    pub waiting: usize,
    /// The last group's emptied record buffer, reused by the next.
    pub spare_records: Vec<u8>,
    /// The last group's emptied batch list, reused by the next.
    pub spare_batches: Vec<(u64, Vec<WriteOp>)>,
}

/// Requests to the background threads.
#[derive(Default)]
pub struct Work {
    /// The engine is being dropped.
    pub shutdown: bool,
    /// A memtable was frozen.
    pub flush_pending: bool,
    /// Tables were added or the purge watermark moved.
    pub compaction_pending: bool,
    /// Bumped after every completed flush or compaction (stalls wait on it).
    pub progress: u64,
}

/// Everything the engine's threads share.
pub struct Inner {
    /// Every file access goes through it.
    pub vfs: Arc<dyn Vfs>,
    /// The store's directory.
    pub dir: PathBuf,
    /// The limits the engine was opened with.
    pub options: LsmOptions,
    /// Decoded data blocks shared by all tables.
    pub cache: Arc<BlockCache>,
    /// What reads see; swapped whole on every freeze, flush and compaction.
    pub version: RwLock<Arc<Version>>,
    /// The durable manifest; held while a new one is installed so installs
    /// and version swaps happen in one order.
    pub manifest: Mutex<Manifest>,
    /// The active log segment; held by the group-commit leader.
    pub log: Mutex<LogFile>,
    /// Batches waiting for the next group commit.
    pub commit: Mutex<CommitQueue>,
    /// Signalled when a group is committed (or the engine is poisoned).
    pub committed: Condvar,
    /// Requests to the background threads.
    pub work: Mutex<Work>,
    /// Wakes the background threads.
    pub work_ready: Condvar,
    /// Signalled after each flush or compaction (stalls wait on it).
    pub progress_made: Condvar,
    /// Serialises compactions (background and `compact_all`).
    pub compaction: Mutex<()>,
    /// Why writes are refused, once they are.
    pub poison: Mutex<Option<String>>,
    /// Fast check of `poison` on every write.
    pub poisoned: AtomicBool,
    /// Tombstones in tables whose sequence bound is at most this may be purged.
    pub purge_watermark: AtomicU64,
    /// Fsync latency, memtable bytes, tables, compactions, stalls.
    pub metrics: crate::metrics::EngineMetrics,
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves its data
/// consistent before anything that can panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        self.version
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the current version.
    pub fn swap_version(&self, edit: impl FnOnce(&mut Version)) {
        let mut guard = self.version.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Version::clone(&guard);
        edit(&mut next);
        self.metrics
            .tables
            .set(i64::try_from(next.tables.len()).unwrap_or(i64::MAX));
        let table_bytes: u64 = next.tables.iter().map(|t| t.table.size_bytes()).sum();
        self.metrics
            .table_bytes
            .set(i64::try_from(table_bytes).unwrap_or(i64::MAX));
        self.record_memtable_bytes(&next);
        *guard = Arc::new(next);
    }

    /// Sets the memtable gauge from `version`.
    pub fn record_memtable_bytes(&self, version: &Version) {
        let bytes: usize = std::iter::once(&version.active)
            .chain(&version.immutables)
            .map(|m| m.size_bytes())
            .sum();
        self.metrics
            .memtable_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Syncs the log, timing the fsync.
    pub fn timed_sync(&self, log: &mut LogFile) -> std::io::Result<()> {
        log.drain()?;
        let started = std::time::Instant::now();
        let synced = log.file.sync();
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        synced
    }

    /// The table layout from the options.
    pub fn layout(&self) -> TableLayout {
        TableLayout {
            block_bytes: self.options.block_bytes,
            bloom_bits_per_key: self.options.bloom_bits_per_key,
            compression: self.options.compression,
        }
    }

    /// `Err(Poisoned)` once an fsync or a background write failed.
    pub fn check_poison(&self) -> Result<(), StorageError> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let reason = lock(&self.poison).clone().unwrap_or_default();
        Err(StorageError::Poisoned { reason })
    }

    /// Refuses writes from now on; logs why. Returns the error to hand back.
    pub fn poison(&self, error: &StorageError) -> StorageError {
        let mut poison = lock(&self.poison);
        if poison.is_none() {
            tracing::error!(%error, "storage engine poisoned: refusing writes from now on");
            *poison = Some(error.to_string());
        }
        self.poisoned.store(true, Ordering::Release);
        drop(poison);
        self.committed.notify_all();
        self.progress_made.notify_all();
        StorageError::Poisoned {
            reason: error.to_string(),
        }
    }

    /// Wakes the background threads for `request`.
    pub fn request(&self, request: impl FnOnce(&mut Work)) {
        request(&mut lock(&self.work));
        self.work_ready.notify_all();
    }
}
