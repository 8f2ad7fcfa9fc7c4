//! [`LsmEngine`]: the public face of the LSM tree, its background threads and
//! its [`Engine`] implementation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cache::BlockCache;
use super::compaction::overlaps_older;
use super::log::segment_name;
use super::manifest::io_error;
use super::memtable::Memtable;
use super::merge::{DisjointTablesIter, Layer, MemtableIter, Merge, TableIter};
use super::options::{LsmOptions, SyncPolicy};
use super::recovery::recover;
use super::sstable::filter::HashedKey;
use super::sstable::reader::CacheFill;
use super::state::{lock, CommitQueue, Inner, LogFile, Version, Work};
use super::vfs::{file_path, StdVfs, Vfs};
use crate::storage::{Engine, StorageError, WriteOp};

/// How often an idle background thread re-checks for work (it is also woken
/// explicitly; this only bounds a missed wake-up).
const IDLE_RECHECK_MS: u64 = 1_000;

/// The nice value of the flush and compaction threads: 19, the lowest CPU
/// priority (lowering one's own priority needs no privilege). Their work
/// comes in bursts of CPU (a memtable of 6.7 MB took 120-410 ms to become
/// a table on this project's 2-core VMs, three nodes flushing at once) that
/// at the default priority took the cores from the event loops and writers
/// serving requests. An open loop of puts at half the peak had the lower
/// p99.9 with this in 12 of 16 pairs of runs, 12-13 ms in two of three on
/// a finished cluster (benches/README.md, "Session 18"), but not always:
/// a woken request thread still waits a little for a busy one of these.
/// They now run on what the request path leaves; should they fall behind,
/// the memtable and table limits stall writes (`write_stall_*`), which
/// hands them the CPU. RocksDB lowers its compaction pool the same way
/// (`Env::LowerThreadPoolCPUPriority`).
pub const BACKGROUND_THREAD_NICE: i32 = 19;

/// A log-structured merge-tree engine (see the module doc of `lsm`).
pub struct LsmEngine {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    /// The kernel's ids of `threads`, for tests.
    #[cfg(test)]
    pub(crate) thread_ids: Vec<rustix::thread::Pid>,
}

impl LsmEngine {
    /// Opens (or creates) the store in `dir` through `vfs`, recovering from
    /// the log, and starts the flush and compaction threads.
    pub fn open(
        vfs: Arc<dyn Vfs>,
        dir: impl Into<PathBuf>,
        options: LsmOptions,
    ) -> Result<Self, StorageError> {
        let dir = dir.into();
        let recovered = recover(vfs.as_ref(), &dir)?;
        let segment = recovered.segment_next;
        let replayed = recovered.replayed.clone();
        let inner = Arc::new(Inner {
            cache: Arc::new(BlockCache::new(options.block_cache_bytes)),
            version: RwLock::new(Arc::new(Version {
                active: Arc::new(Memtable::new(segment)),
                immutables: Vec::new(),
                tables: recovered.tables,
            })),
            manifest: Mutex::new(recovered.manifest),
            // Replaced below once the replayed segments are flushed; until
            // then nothing writes, so an unsynced placeholder is harmless.
            log: Mutex::new(LogFile {
                segment,
                file: Box::new(NullFile),
                buffer: Vec::new(),
                bytes: 0,
            }),
            commit: Mutex::new(CommitQueue {
                sequence_next: recovered.sequence_max + 1,
                sequence_applied: recovered.sequence_max,
                ..CommitQueue::default()
            }),
            committed: Condvar::new(),
            work: Mutex::new(Work::default()),
            work_ready: Condvar::new(),
            progress_made: Condvar::new(),
            compaction: Mutex::new(()),
            poison: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            purge_watermark: AtomicU64::new(0),
            metrics: options.metrics.clone(),
            vfs,
            dir,
            options,
        });
        if let Some(replayed) = replayed {
            // The replayed segments become a table before any new segment
            // exists, so a torn tail is only ever in the newest segment.
            inner.flush_memtable(&replayed)?;
        }
        lock(&inner.log).file = inner.create_segment(segment)?;
        // Sets the table and memtable gauges for what recovery found.
        inner.swap_version(|_| {});
        let (threads, _thread_ids): (Vec<_>, Vec<_>) = [
            spawn("ringkv-lsm-flush", &inner, flush_loop)?,
            spawn("ringkv-lsm-compact", &inner, compaction_loop)?,
        ]
        .into_iter()
        .unzip();
        // A store left past a compaction trigger (say, by a build without
        // the space trigger) is merged now, not after the next flush.
        inner.request(|work| work.compaction_pending = true);
        Ok(Self {
            inner,
            threads,
            #[cfg(test)]
            thread_ids: _thread_ids,
        })
    }

    /// Opens the store in directory `path` of the real file system.
    pub fn open_dir(path: impl AsRef<Path>, options: LsmOptions) -> Result<Self, StorageError> {
        Self::open(Arc::new(StdVfs), path.as_ref().to_owned(), options)
    }

    /// Allows compaction to drop engine-level tombstones (`WriteOp::Delete`)
    /// written in batches with sequence number `<= sequence`: the caller (the
    /// repair work) vouches that every replica holds them, so no older value
    /// can come back. Never called by a timer. Takes effect at the next
    /// compaction that includes the oldest table (see [`Self::compact_all`]).
    pub fn allow_tombstone_purge(&self, sequence: u64) {
        self.inner
            .purge_watermark
            .fetch_max(sequence, Ordering::AcqRel);
        self.inner.request(|work| work.compaction_pending = true);
    }

    /// The sequence number of the newest acknowledged batch (to pass to
    /// [`Self::allow_tombstone_purge`]).
    pub fn last_sequence(&self) -> u64 {
        lock(&self.inner.commit).sequence_applied
    }

    /// Flushes every memtable, then merges all tables into one (purging the
    /// tombstones the watermark allows). For tests and maintenance.
    pub fn compact_all(&self) -> Result<(), StorageError> {
        self.flush()?;
        self.inner
            .compact_once(true)
            .map(|_| ())
            .map_err(|error| self.inner.poison(&error))
    }

    /// Runs, in the calling thread, every compaction due now until none is
    /// (what the background thread does after a flush), so the tables left
    /// are the steady state. Returns how many merges ran. For benches,
    /// tests and maintenance.
    pub fn compact_due(&self) -> Result<usize, StorageError> {
        let mut merges = 0;
        while self
            .inner
            .compact_once(false)
            .map_err(|error| self.inner.poison(&error))?
        {
            merges += 1;
            lock(&self.inner.work).progress += 1;
            self.inner.progress_made.notify_all();
        }
        Ok(merges)
    }

    /// Live tables right now.
    pub fn table_count(&self) -> usize {
        self.inner.current().tables.len()
    }

    /// The most tables a point read consults right now: the live tables,
    /// those that do not overlap older ones counted once (they are
    /// pairwise disjoint; see `compaction`'s module doc).
    pub fn tables_a_read_consults(&self) -> usize {
        let version = self.inner.current();
        super::compaction::tables_a_read_consults(&super::compaction::shapes_of(&version.tables))
    }

    /// Total bytes of the live tables.
    pub fn table_bytes(&self) -> u64 {
        self.inner
            .current()
            .tables
            .iter()
            .map(|t| t.table.size_bytes())
            .sum()
    }

    /// Whether a failed fsync (or background write) made the engine refuse writes.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }
}

impl Engine for LsmEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let key = HashedKey::new(key);
        let version = self.inner.current();
        if let Some(slot) = version.active.get(key) {
            return Ok(slot);
        }
        for frozen in &version.immutables {
            if let Some(slot) = frozen.get(key) {
                return Ok(slot);
            }
        }
        for live in &version.tables {
            if let Some(slot) = live.table.get(key, &self.inner.cache)? {
                return Ok(slot);
            }
        }
        Ok(None)
    }

    fn get_cached(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        let key = HashedKey::new(key);
        let version = self.inner.current();
        if let Some(slot) = version.active.get(key) {
            return Some(Ok(slot));
        }
        for frozen in &version.immutables {
            if let Some(slot) = frozen.get(key) {
                return Some(Ok(slot));
            }
        }
        for live in &version.tables {
            match live.table.get_cached(key, &self.inner.cache)? {
                Ok(Some(slot)) => return Some(Ok(slot)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(None))
    }

    fn write_batch(&self, ops: &[WriteOp]) -> Result<(), StorageError> {
        self.inner.write_batch(ops.to_vec())
    }

    fn write_batch_owned(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        self.inner.write_batch(ops)
    }

    fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    fn write_may_wait(&self) -> bool {
        self.inner.write_may_wait()
    }

    /// Every delete ringkv writes is final (a delivered hint, a reaped
    /// tombstone), so from now on every one may go, past and future: a
    /// watermark at the last batch would let one batch written during a
    /// compaction (a flush of it) keep every delete of that compaction.
    fn allow_delete_purge(&self) {
        self.allow_tombstone_purge(u64::MAX);
    }

    fn compact_purging_deletes(&self) -> Result<(), StorageError> {
        self.allow_delete_purge();
        let before = self.table_bytes();
        self.compact_all()?;
        // A merge sizes its table's bloom filter for its inputs' entries
        // (about 2.5 bytes each); when it dropped most of them, one more
        // pass over the (now small) rest sizes it for what is left.
        if self.table_bytes().saturating_mul(2) < before {
            self.compact_all()?;
        }
        Ok(())
    }

    fn metrics(&self) -> Option<crate::metrics::EngineMetrics> {
        Some(self.inner.metrics.clone())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
        let version = self.inner.current();
        let mut layers: Vec<Layer> = Vec::new();
        for memtable in std::iter::once(&version.active).chain(&version.immutables) {
            layers.push(Box::new(MemtableIter::new(memtable.clone(), start, end)));
        }
        // Tables that overlap older ones are merged newest first; the rest
        // are pairwise disjoint and hold the oldest version of each of
        // their keys: one layer, last, opened a table at a time.
        let ranges: Vec<Option<(&[u8], &[u8])>> =
            version.tables.iter().map(|t| t.table.key_range()).collect();
        let mut disjoint = Vec::new();
        for (live, overlaps) in version.tables.iter().zip(overlaps_older(&ranges)) {
            if !overlaps {
                disjoint.push(live.table.clone());
                continue;
            }
            let cache = self.inner.cache.clone();
            layers.push(Box::new(TableIter::new(
                live.table.clone(),
                cache,
                CacheFill::Fill,
                start,
                end,
            )));
        }
        layers.push(Box::new(DisjointTablesIter::new(
            disjoint,
            self.inner.cache.clone(),
            CacheFill::Fill,
            start,
            end,
        )));
        let mut found = Vec::with_capacity(limit.min(4096));
        for entry in Merge::new(layers) {
            if found.len() >= limit {
                break;
            }
            if let (key, Some(value)) = entry? {
                found.push((key, value));
            }
        }
        Ok(found)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.check_poison()?;
        self.inner.freeze_active()?;
        self.inner.request(|work| work.flush_pending = true);
        let mut work = lock(&self.inner.work);
        while !self.inner.current().immutables.is_empty() {
            self.inner.check_poison()?;
            work = self
                .inner
                .progress_made
                .wait_timeout(work, Duration::from_millis(IDLE_RECHECK_MS))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        Ok(())
    }
}

impl Drop for LsmEngine {
    fn drop(&mut self) {
        if !self.inner.is_poisoned() {
            // A clean close keeps even the periodic mode's unsynced tail.
            if let Err(error) = self.inner.sync_log() {
                tracing::warn!(%error, "syncing the log on close failed");
            }
        }
        self.inner.request(|work| work.shutdown = true);
        self.inner.progress_made.notify_all();
        for thread in self.threads.drain(..) {
            // A panicked background thread already poisoned nothing we can fix here.
            let _ = thread.join();
        }
    }
}

/// Starts a background thread at [`BACKGROUND_THREAD_NICE`]; returns once
/// it has lowered its priority (or failed to: logged, and it runs anyway),
/// with its kernel thread id.
fn spawn(
    name: &str,
    inner: &Arc<Inner>,
    body: fn(&Inner),
) -> Result<(JoinHandle<()>, rustix::thread::Pid), StorageError> {
    let inner = inner.clone();
    let (started, tid) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let tid = rustix::thread::gettid();
            let lowered = rustix::process::setpriority_process(Some(tid), BACKGROUND_THREAD_NICE);
            let _ = started.send((tid, lowered));
            body(&inner)
        })
        .map_err(|source| StorageError::Io {
            context: format!("spawning {name}"),
            source,
        })?;
    let (tid, lowered) = tid.recv().map_err(|_| StorageError::Io {
        context: format!("starting {name}"),
        source: std::io::Error::other("the thread ended before it started"),
    })?;
    if let Err(error) = lowered {
        tracing::warn!(thread = name, %error, nice = BACKGROUND_THREAD_NICE,
            "could not lower the background thread's CPU priority; it competes with requests");
    }
    Ok((thread, tid))
}

/// Waits until `ready` says there is work (taking it) or shutdown; returns
/// `None` on shutdown, `Some(true)` for work, `Some(false)` on timeout.
fn wait_for(inner: &Inner, timeout: Duration, ready: fn(&mut Work) -> bool) -> Option<bool> {
    let mut work = lock(&inner.work);
    loop {
        if work.shutdown {
            return None;
        }
        if ready(&mut work) {
            return Some(true);
        }
        let (guard, result) = inner
            .work_ready
            .wait_timeout(work, timeout)
            .unwrap_or_else(|e| e.into_inner());
        work = guard;
        if result.timed_out() {
            return Some(ready(&mut work));
        }
    }
}

fn flush_loop(inner: &Inner) {
    let timeout = match inner.options.sync {
        SyncPolicy::Periodic { sync_interval_ms } => Duration::from_millis(sync_interval_ms.max(1)),
        SyncPolicy::Always => Duration::from_millis(IDLE_RECHECK_MS),
    };
    let mut last_sync = Instant::now();
    while wait_for(inner, timeout, |work| {
        std::mem::take(&mut work.flush_pending)
    })
    .is_some()
    {
        if inner.is_poisoned() {
            continue;
        }
        if matches!(inner.options.sync, SyncPolicy::Periodic { .. })
            && last_sync.elapsed() >= timeout
        {
            // Skip if a writer holds the log: it is mid-group or stalled on
            // us, and the next wake-up retries.
            if let Ok(mut log) = inner.log.try_lock() {
                last_sync = Instant::now();
                let path = file_path(&inner.dir, &segment_name(log.segment));
                if let Err(source) = inner.timed_sync(&mut log) {
                    drop(log);
                    inner.poison(&io_error("syncing", &path, source));
                }
            }
        }
        match inner.flush_pending() {
            Ok(()) | Err(StorageError::Stopped) => {}
            Err(error) => {
                inner.poison(&error);
            }
        }
    }
}

fn compaction_loop(inner: &Inner) {
    let timeout = Duration::from_millis(IDLE_RECHECK_MS);
    while wait_for(inner, timeout, |work| {
        std::mem::take(&mut work.compaction_pending)
    })
    .is_some()
    {
        if inner.is_poisoned() {
            continue;
        }
        loop {
            match inner.compact_once(false) {
                Ok(true) => {
                    lock(&inner.work).progress += 1;
                    inner.progress_made.notify_all();
                }
                Ok(false) => break,
                Err(error) => {
                    inner.poison(&error);
                    break;
                }
            }
        }
    }
}

/// Stands in for the log file while recovery flushes; never written.
struct NullFile;

impl super::vfs::WritableFile for NullFile {
    fn append(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("log not open yet"))
    }

    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
