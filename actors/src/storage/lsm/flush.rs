//! Flushing: a frozen memtable becomes an SSTable, the manifest names it,
//! and the log segment it covered is deleted.
//!
//! Crash safety, step by step: the table is written and fsynced, the
//! directory fsynced, then the manifest is replaced atomically. A crash
//! before the rename leaves the old manifest (the table is an orphan, removed
//! on open, and the log segment is replayed); after it, the new one (the
//! segment is below `log_segment_first_live` and removed on open).

use std::sync::Arc;

use super::compaction;
use super::log::{parse_segment_name, segment_name};
use super::manifest::{io_error, TableRecord};
use super::memtable::Memtable;
use super::sstable::reader::Table;
use super::sstable::table_name;
use super::sstable::writer::TableWriter;
use super::state::{lock, Inner, LiveTable};
use super::vfs::file_path;
use crate::storage::StorageError;

impl Inner {
    /// Hands out the next table id (made durable by the next install).
    pub fn allocate_table_id(&self) -> u64 {
        let mut manifest = lock(&self.manifest);
        let id = manifest.next_table_id;
        manifest.next_table_id += 1;
        id
    }

    /// Writes `entries` (ascending) as table `id`; returns it opened.
    pub fn write_table(
        &self,
        id: u64,
        keys_expected: usize,
        fill: impl FnOnce(&mut TableWriter) -> Result<(), StorageError>,
    ) -> Result<Option<Arc<Table>>, StorageError> {
        let path = file_path(&self.dir, &table_name(id));
        let file = self
            .vfs
            .create(&path)
            .map_err(|e| io_error("creating", &path, e))?;
        let mut writer = TableWriter::new(file, &path, self.layout(), keys_expected)?;
        fill(&mut writer)?;
        if writer.entry_count() == 0 {
            drop(writer);
            self.vfs
                .remove(&path)
                .map_err(|e| io_error("removing", &path, e))?;
            return Ok(None);
        }
        writer.finish()?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| io_error("syncing the directory of", &path, e))?;
        let file = self
            .vfs
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        Ok(Some(Arc::new(Table::open(id, &path, file)?)))
    }

    /// Flushes `memtable` (the oldest frozen one) into a table and installs it.
    pub fn flush_memtable(&self, memtable: &Arc<Memtable>) -> Result<(), StorageError> {
        let table = if memtable.is_empty() {
            None
        } else {
            let id = self.allocate_table_id();
            // Frozen: nothing writes to it, so reading under its lock
            // blocks nobody, and nothing is copied.
            self.write_table(id, memtable.len(), |writer| {
                memtable.try_for_each(|key, slot| writer.add(key, slot))
            })?
        };
        let sequence_max = memtable.sequence_max();
        let mut manifest = lock(&self.manifest);
        let mut next = manifest.clone();
        if let Some(table) = &table {
            next.tables.insert(
                0,
                TableRecord {
                    id: table.id(),
                    sequence_max,
                },
            );
        }
        next.log_segment_first_live = memtable.segment() + 1;
        next.sequence_flushed = next.sequence_flushed.max(sequence_max);
        next.install(self.vfs.as_ref(), &self.dir)?;
        *manifest = next;
        self.swap_version(|version| {
            version
                .immutables
                .retain(|frozen| !Arc::ptr_eq(frozen, memtable));
            if let Some(table) = table {
                version.tables.insert(
                    0,
                    LiveTable {
                        table,
                        sequence_max,
                    },
                );
            }
        });
        drop(manifest);
        self.remove_obsolete_segments()
    }

    /// Deletes log segments the manifest no longer needs.
    pub fn remove_obsolete_segments(&self) -> Result<(), StorageError> {
        let first_live = lock(&self.manifest).log_segment_first_live;
        let names = self
            .vfs
            .list(&self.dir)
            .map_err(|e| io_error("listing", &self.dir, e))?;
        for segment in names.iter().filter_map(|name| parse_segment_name(name)) {
            if segment < first_live {
                let path = file_path(&self.dir, &segment_name(segment));
                self.vfs
                    .remove(&path)
                    .map_err(|e| io_error("removing", &path, e))?;
            }
        }
        Ok(())
    }

    /// Flushes frozen memtables, oldest first, until none is left.
    pub fn flush_pending(&self) -> Result<(), StorageError> {
        while let Some(oldest) = self.current().immutables.last().cloned() {
            self.wait_for_table_slot()?;
            self.flush_memtable(&oldest)?;
            self.request(|work| {
                work.progress += 1;
                work.compaction_pending = true;
            });
            self.progress_made.notify_all();
        }
        Ok(())
    }

    /// Holds a flush while a point read may already consult
    /// `tables_per_read_max` tables, or the store holds
    /// [`compaction::tables_max`] (compaction frees a slot).
    fn wait_for_table_slot(&self) -> Result<(), StorageError> {
        let mut work = lock(&self.work);
        let mut warned = false;
        let per_read_max = self.options.tables_per_read_max.max(2);
        let full = || {
            let version = self.current();
            let tables = &version.tables;
            tables.len() >= compaction::tables_max(per_read_max)
                || compaction::tables_a_read_consults(&compaction::shapes_of(tables))
                    >= per_read_max
        };
        while full() {
            if work.shutdown {
                return Err(StorageError::Stopped);
            }
            self.check_poison()?;
            if !warned {
                tracing::warn!(
                    tables_per_read_max = self.options.tables_per_read_max,
                    "flush stall: waiting for compaction"
                );
                warned = true;
            }
            work.compaction_pending = true;
            self.work_ready.notify_all();
            work = self
                .progress_made
                .wait_timeout(work, std::time::Duration::from_millis(100))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        Ok(())
    }
}
