//! The write path: group commit into the log, then the memtable, then (when
//! the memtable is full) the switch to a fresh memtable and log segment.
//!
//! Group commit is leader/follower: a writer queues its record; if no leader
//! is active it becomes the leader, takes every queued record, writes them
//! with one `append` and one fsync, applies them to the memtable in sequence
//! order and wakes the followers whose batches it carried. Writers that
//! arrive meanwhile queue up for the next group, so under load one fsync
//! serves many batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::log::{encode_record, payload_bytes, segment_name, RECORD_PAYLOAD_BYTES_MAX};
use super::manifest::io_error;
use super::memtable::Memtable;
use super::options::SyncPolicy;
use super::state::{lock, Inner, LogFile, LOG_BUFFER_BYTES};
use super::vfs::{file_path, WritableFile};
use crate::storage::{StorageError, WriteOp};

/// A group's record buffer is kept for the next group up to this size: 1 MiB.
const SPARE_RECORDS_BYTES_MAX: usize = 1 << 20;

/// How long a stalled writer sleeps between checks of the flush progress.
const STALL_RECHECK_MS: u64 = 100;

impl Inner {
    /// Logs and applies `ops` as one batch; returns once it is durable (per
    /// the sync policy). The memtable keeps the ops' keys and values.
    pub fn write_batch(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        self.check_poison()?;
        if payload_bytes(&ops) > RECORD_PAYLOAD_BYTES_MAX {
            return Err(StorageError::Io {
                context: "logging a batch larger than RECORD_PAYLOAD_BYTES_MAX".to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
        let mut queue = lock(&self.commit);
        let sequence = queue.sequence_next;
        queue.sequence_next += 1;
        encode_record(&mut queue.records, sequence, &ops);
        queue.batches.push((sequence, ops));
        loop {
            if queue.sequence_applied >= sequence {
                return Ok(());
            }
            self.check_poison()?;
            if queue.leader_active {
                queue.waiting += 1;
                queue = self
                    .committed
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner());
                queue.waiting -= 1;
                continue;
            }
            queue.leader_active = true;
            // Swap in the spare buffers so the next group reuses memory.
            let spare_records = std::mem::take(&mut queue.spare_records);
            let mut records = std::mem::replace(&mut queue.records, spare_records);
            let spare_batches = std::mem::take(&mut queue.spare_batches);
            let mut batches = std::mem::replace(&mut queue.batches, spare_batches);
            drop(queue);
            let last = batches.last().map(|(sequence, _)| *sequence);
            let result = self.commit_group(&records, &mut batches);
            queue = lock(&self.commit);
            queue.leader_active = false;
            if records.capacity() <= SPARE_RECORDS_BYTES_MAX {
                records.clear();
                queue.spare_records = records;
            }
            batches.clear();
            queue.spare_batches = batches;
            match result {
                Ok(()) => {
                    if let Some(last) = last {
                        queue.sequence_applied = last;
                    }
                }
                Err(error) => {
                    // Poison before letting go of the queue: a writer that
                    // took over as leader could otherwise retry the fsync,
                    // which may "succeed" after the kernel dropped the pages.
                    self.poison(&error);
                    return Err(error);
                }
            }
            // A futex wake is a syscall: skip it when nobody waits.
            if queue.waiting > 0 {
                self.committed.notify_all();
            }
        }
    }

    fn commit_group(
        &self,
        records: &[u8],
        batches: &mut Vec<(u64, Vec<WriteOp>)>,
    ) -> Result<(), StorageError> {
        let mut log = lock(&self.log);
        // The segment's path is built only for an error message: it is
        // two allocations, and this runs for every group.
        let segment = log.segment;
        let failed =
            |action: &str, e| io_error(action, &file_path(&self.dir, &segment_name(segment)), e);
        match self.options.sync {
            SyncPolicy::Always => {
                log.file
                    .append(records)
                    .map_err(|e| failed("appending to", e))?;
                self.timed_sync(&mut log)
                    .map_err(|e| failed("syncing", e))?;
                let writes: usize = batches.iter().map(|(_, ops)| ops.len()).sum();
                self.metrics.commit_writes.observe(writes as f64);
            }
            SyncPolicy::Periodic { .. } => {
                log.buffer.extend_from_slice(records);
                if log.buffer.len() >= LOG_BUFFER_BYTES {
                    log.drain().map_err(|e| failed("appending to", e))?;
                }
            }
        }
        log.bytes += records.len() as u64;
        let version = self.current();
        for (sequence, ops) in batches.drain(..) {
            version.active.apply(sequence, ops);
        }
        self.record_memtable_bytes(&version);
        // The memtable counts what it holds, so overwrites of a few keys
        // leave it small while the log grows with every write: the
        // segment's own bound keeps what recovery replays in check.
        if version.active.size_bytes() >= self.options.memtable_bytes_max
            || log.bytes >= self.options.log_segment_bytes_max
        {
            self.rotate(&mut log)?;
        }
        Ok(())
    }

    /// Freezes the active memtable and starts a new log segment. The caller
    /// holds the log lock, so no group is half applied.
    pub fn rotate(&self, log: &mut LogFile) -> Result<(), StorageError> {
        self.stall_while_flushes_pending()?;
        let old_path = file_path(&self.dir, &segment_name(log.segment));
        // Older segments must be whole: recovery allows a torn tail only in
        // the newest one. (A no-op for SyncPolicy::Always.)
        self.timed_sync(log)
            .map_err(|e| io_error("syncing", &old_path, e))?;
        let segment = log.segment + 1;
        let file = self.create_segment(segment)?;
        log.segment = segment;
        log.file = file;
        log.bytes = 0;
        self.swap_version(|version| {
            let frozen = std::mem::replace(&mut version.active, Arc::new(Memtable::new(segment)));
            version.immutables.insert(0, frozen);
        });
        self.request(|work| work.flush_pending = true);
        Ok(())
    }

    /// Whether the next memtable rotation would stall
    /// ([`Self::stall_while_flushes_pending`]): one frozen memtable more
    /// reaches `immutable_memtables_max`. Any group may be the one that
    /// rotates, so this is asked before each.
    pub fn write_may_wait(&self) -> bool {
        self.current().immutables.len() + 1 >= self.options.immutable_memtables_max.max(1)
    }

    fn stall_while_flushes_pending(&self) -> Result<(), StorageError> {
        let mut warned = false;
        let started = std::time::Instant::now();
        let mut work = lock(&self.work);
        while self.current().immutables.len() >= self.options.immutable_memtables_max.max(1) {
            self.check_poison()?;
            if work.shutdown {
                return Err(StorageError::Stopped);
            }
            if !warned {
                tracing::warn!(
                    immutable_memtables_max = self.options.immutable_memtables_max,
                    "write stall: waiting for memtable flushes"
                );
                warned = true;
            }
            work = self
                .progress_made
                .wait_timeout(work, Duration::from_millis(STALL_RECHECK_MS))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if warned {
            self.metrics
                .write_stall_seconds
                .inc_by(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Creates log segment `segment`, preallocated, its directory entry
    /// durable before any record is acknowledged in it.
    pub fn create_segment(&self, segment: u64) -> Result<Box<dyn WritableFile>, StorageError> {
        let path = file_path(&self.dir, &segment_name(segment));
        let mut file = self
            .vfs
            .create(&path)
            .map_err(|e| io_error("creating", &path, e))?;
        if self.options.log_preallocate_bytes > 0 {
            file.preallocate(self.options.log_preallocate_bytes)
                .map_err(|e| io_error("preallocating", &path, e))?;
            // Every append is followed by a sync: the page cache only adds
            // a copy and a write-back (see `vfs::direct`).
            if self.options.sync == SyncPolicy::Always {
                let direct = file
                    .bypass_page_cache()
                    .map_err(|e| io_error("opening for direct writes", &path, e))?;
                tracing::debug!(segment, direct, "log segment created");
            }
        }
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| io_error("syncing the directory of", &path, e))?;
        Ok(file)
    }

    /// Syncs the active log segment (the periodic sync of `SyncPolicy::Periodic`).
    pub fn sync_log(&self) -> Result<(), StorageError> {
        let mut log = lock(&self.log);
        let path = file_path(&self.dir, &segment_name(log.segment));
        log.sync().map_err(|e| io_error("syncing", &path, e))
    }

    /// Freezes the active memtable if it holds anything (for `flush`).
    pub fn freeze_active(&self) -> Result<(), StorageError> {
        let mut log = lock(&self.log);
        if self.current().active.is_empty() {
            return Ok(());
        }
        self.rotate(&mut log).map_err(|error| self.poison(&error))
    }

    /// Whether the engine refuses writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}
