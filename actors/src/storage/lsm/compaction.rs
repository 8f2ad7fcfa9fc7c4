//! Compaction: merging adjacent tables into one, dropping shadowed versions.
//!
//! Strategy: size-tiered, over a single run of tables ordered newest first.
//! When the table count reaches `tables_per_read_max - 1`, the window of up
//! to `compaction_tables_max` adjacent tables with the smallest total size is
//! merged into one table that takes the window's place. Merging the smallest
//! neighbours makes tables of similar size meet, as in size-tiered
//! compaction, so a byte is rewritten about log_fanin(data / memtable)
//! times. Chosen over leveled compaction because ringkv's storage load is
//! write-heavy (every replica write, hint and repair lands here) and tiering
//! writes each byte fewer times; its weakness, reads consulting several
//! tables, is bounded by `tables_per_read_max` and softened by the bloom
//! filters. Flushes wait while the count is at the limit, so it is a hard
//! bound on the tables a point read consults.
//!
//! A [`CompactionFilter`](super::CompactionFilter) in the options rewrites
//! each live value as it is copied (the node's drops expired values'
//! bytes).
//!
//! Tombstones: a tombstone can be dropped only when the merge includes the
//! oldest table (nothing older can hold a version it hides) and every input's
//! sequence bound is at or below the purge watermark set by
//! [`LsmEngine::allow_tombstone_purge`](super::LsmEngine::allow_tombstone_purge).

use std::sync::Arc;

use super::manifest::{io_error, TableRecord};
use super::merge::{Layer, Merge, TableIter};
use super::sstable::reader::CacheFill;
use super::sstable::table_name;
use super::state::{lock, Inner, LiveTable};
use super::vfs::file_path;
use crate::storage::StorageError;

/// Chooses the window `[start, end)` of tables (newest first, sizes given)
/// to merge, or `None` if the tables are few enough. `all` forces one
/// window over every table (a full compaction).
pub fn pick_window(
    sizes: &[u64],
    tables_per_read_max: usize,
    fan_in_max: usize,
    all: bool,
) -> Option<(usize, usize)> {
    if all {
        return (!sizes.is_empty()).then_some((0, sizes.len()));
    }
    let trigger = tables_per_read_max.max(2).saturating_sub(1).max(2);
    if sizes.len() < trigger {
        return None;
    }
    let width = fan_in_max.max(2).min(sizes.len());
    (0..=sizes.len() - width)
        .min_by_key(|start| sizes.iter().skip(*start).take(width).sum::<u64>())
        .map(|start| (start, start + width))
}

impl Inner {
    /// Runs one compaction if one is due (or over everything when `all`).
    /// Returns whether it merged anything.
    pub fn compact_once(&self, all: bool) -> Result<bool, StorageError> {
        let _only_one = lock(&self.compaction);
        let version = self.current();
        let sizes: Vec<u64> = version
            .tables
            .iter()
            .map(|t| t.table.size_bytes())
            .collect();
        let Some((start, end)) = pick_window(
            &sizes,
            self.options.tables_per_read_max,
            self.options.compaction_tables_max,
            all,
        ) else {
            return Ok(false);
        };
        let inputs: Vec<LiveTable> = version.tables.get(start..end).unwrap_or_default().to_vec();
        let includes_oldest = end == version.tables.len();
        let sequence_max = inputs.iter().map(|t| t.sequence_max).max().unwrap_or(0);
        let purge = includes_oldest
            && sequence_max
                <= self
                    .purge_watermark
                    .load(std::sync::atomic::Ordering::Acquire);
        if inputs.len() < 2 && !purge {
            return Ok(false);
        }
        let layers: Vec<Layer> = inputs
            .iter()
            .map(|input| -> Layer {
                Box::new(TableIter::new(
                    input.table.clone(),
                    self.cache.clone(),
                    CacheFill::Bypass,
                    &[],
                    None,
                ))
            })
            .collect();
        let filter = self.options.compaction_filter.clone();
        let merged = Merge::new(layers)
            .filter(|entry| !(purge && matches!(entry, Ok((_, None)))))
            .map(move |entry| match (entry, &filter) {
                (Ok((key, Some(value))), Some(filter)) => {
                    let value = (filter.0)(&key, &value).unwrap_or(value);
                    Ok((key, Some(value)))
                }
                (entry, _) => entry,
            });
        let keys_expected: u64 = inputs.iter().map(|t| t.table.entry_count()).sum();
        let id = self.allocate_table_id();
        let keys_expected = usize::try_from(keys_expected).unwrap_or(usize::MAX);
        let output = self.write_table(id, keys_expected, |writer| {
            for entry in merged {
                let (key, slot) = entry?;
                writer.add(&key, &slot)?;
            }
            Ok(())
        })?;
        self.install_compaction(&inputs, output, sequence_max)?;
        // Counted while the compaction lock is held: once a later
        // compaction returns, every earlier one is counted.
        self.metrics.compactions.inc();
        Ok(true)
    }

    fn install_compaction(
        &self,
        inputs: &[LiveTable],
        output: Option<Arc<super::sstable::reader::Table>>,
        sequence_max: u64,
    ) -> Result<(), StorageError> {
        let input_ids: Vec<u64> = inputs.iter().map(|t| t.table.id()).collect();
        let mut manifest = lock(&self.manifest);
        let mut next = manifest.clone();
        let position = next
            .tables
            .iter()
            .position(|t| input_ids.contains(&t.id))
            .unwrap_or(0);
        next.tables.retain(|t| !input_ids.contains(&t.id));
        if let Some(table) = &output {
            next.tables.insert(
                position,
                TableRecord {
                    id: table.id(),
                    sequence_max,
                },
            );
        }
        next.install(self.vfs.as_ref(), &self.dir)?;
        *manifest = next;
        self.swap_version(|version| {
            version
                .tables
                .retain(|t| !input_ids.contains(&t.table.id()));
            if let Some(table) = output {
                let position = position.min(version.tables.len());
                version.tables.insert(
                    position,
                    LiveTable {
                        table,
                        sequence_max,
                    },
                );
            }
        });
        drop(manifest);
        for id in input_ids {
            self.cache.forget_table(id);
            let path = file_path(&self.dir, &table_name(id));
            self.vfs
                .remove(&path)
                .map_err(|e| io_error("removing", &path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::pick_window;

    #[test]
    fn few_tables_need_no_compaction() {
        assert_eq!(pick_window(&[1, 2, 3], 8, 4, false), None);
    }

    #[test]
    fn the_smallest_adjacent_window_is_merged() {
        let sizes = [5, 1, 1, 1, 1, 100, 100];
        assert_eq!(pick_window(&sizes, 8, 4, false), Some((1, 5)));
    }

    #[test]
    fn a_full_compaction_takes_everything() {
        assert_eq!(pick_window(&[1, 2], 8, 4, true), Some((0, 2)));
    }
}
