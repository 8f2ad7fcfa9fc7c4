//! Compaction: merging adjacent tables into one, dropping shadowed versions.
//!
//! Strategy: universal (size-tiered) compaction over a single run of tables
//! ordered newest first, with a space-amplification trigger, as RocksDB's
//! universal compaction with `max_size_amplification_percent`:
//!
//! 1. **Space amplification.** The oldest table holds (nearly) every live key
//!    once; the newer tables hold the writes since, many of them newer
//!    versions of keys the oldest already has. When all tables together
//!    exceed `space_amplification_percent_max` percent (default 125) of the
//!    base, every table is merged into one, which drops every shadowed
//!    version. The base is the oldest table plus every newer table whose
//!    key range lies outside the span of the tables older than it: such a
//!    table shadows nothing, so a fill in key order (each flush past the
//!    last) is never merged for space. So the bytes on disk stay within
//!    1.25x of the live data under overwrites, where plain size tiering let
//!    them reach 2-4x.
//! 2. **Tables a read consults.** Otherwise, when the tables a point read
//!    may consult reach `tables_per_read_max - 1`, the window of
//!    `compaction_tables_max` adjacent tables with the smallest total size
//!    among those holding at least two overlapping tables (any window when
//!    none does) is merged into one table that takes the window's place.
//!    Merging the smallest neighbours makes tables of similar size meet, so
//!    a byte is rewritten about log_fanin(data / memtable) times. A read
//!    skips every table whose key range does not hold the key, and the
//!    tables that do not overlap the tables older than them are pairwise
//!    disjoint, so a read consults at most one of them: they count as one
//!    ([`tables_a_read_consults`]). So a fill in key order is not merged
//!    at all until the store holds `TABLES_PER_READ_FACTOR_MAX` times
//!    `tables_per_read_max` tables (the bound on open tables, their
//!    filters and indexes), where RocksDB's leveled compaction would move
//!    such tables down without rewriting them.
//!
//! Write cost: a full merge rewrites the whole store after the newer tables
//! reach a quarter of it, so in steady state each user byte is rewritten
//! about (1 + p) / p = 5 times for p = 0.25, plus the log and the flush
//! (about 7 in all; `benches/README.md` has the measured figures). Leveled
//! compaction (RocksDB's default) reaches about 1.1x space with partial
//! merges by key range, at the cost of non-overlapping tables per level and
//! a levelled manifest; universal keeps this engine's single run and
//! manifest format (a store written before the trigger existed opens as is
//! and is brought within the bound by its first compaction). Its weaknesses:
//! a full merge needs free space for a second copy of the store while it
//! runs, and a store much larger than the memtable merges whole. Reads
//! consult at most `tables_per_read_max` tables, softened by the bloom
//! filters; flushes wait while that count (or the store's table count) is
//! at its limit, so it is a hard bound on the tables a point read consults.
//!
//! A [`CompactionFilter`](super::CompactionFilter) in the options rewrites
//! each live value as it is copied (the node's drops expired values'
//! bytes).
//!
//! Tombstones: a tombstone can be dropped only when the merge includes the
//! oldest table (nothing older can hold a version it hides) and every input's
//! sequence bound is at or below the purge watermark set by
//! [`LsmEngine::allow_tombstone_purge`](super::LsmEngine::allow_tombstone_purge).
//! The space trigger's full merges include the oldest table, so purgeable
//! tombstones go at the latest with the next full merge.

use std::sync::Arc;

use super::manifest::{io_error, TableRecord};
use super::merge::{Layer, Merge, TableIter};
use super::sstable::reader::CacheFill;
use super::sstable::table_name;
use super::state::{lock, Inner, LiveTable};
use super::vfs::file_path;
use crate::storage::StorageError;

/// The limits [`pick_window`] applies, from [`LsmOptions`](super::LsmOptions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PickLimits {
    /// `tables_per_read_max`: merge when the count reaches one below it.
    pub tables_per_read_max: usize,
    /// `compaction_tables_max`: the widest window of a count-triggered merge.
    pub fan_in_max: usize,
    /// `space_amplification_percent_max`: merge everything when all tables
    /// exceed this percentage of the base (see [`space_amplification_exceeded`]);
    /// 0 turns the trigger off.
    pub space_amplification_percent_max: u64,
}

/// What the picker knows of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableShape {
    /// File size.
    pub size_bytes: u64,
    /// Whether its key range meets the key span of the tables older than it
    /// (so it may hold newer versions of their keys); see [`overlaps_older`].
    pub overlaps_older: bool,
}

/// For tables newest first, given as key ranges (`None` for an empty table),
/// whether each one's range meets the span (smallest to largest key) of all
/// the tables older than it. The oldest table overlaps nothing.
pub fn overlaps_older(ranges: &[Option<(&[u8], &[u8])>]) -> Vec<bool> {
    let mut overlaps = vec![false; ranges.len()];
    let mut span: Option<(&[u8], &[u8])> = None;
    for (position, range) in ranges.iter().enumerate().rev() {
        let Some((low, high)) = *range else {
            continue;
        };
        if let Some((span_low, span_high)) = span {
            overlaps[position] = low <= span_high && high >= span_low;
            span = Some((span_low.min(low), span_high.max(high)));
        } else {
            span = Some((low, high));
        }
    }
    overlaps
}

/// Chooses the window `[start, end)` of tables (newest first) to merge, or
/// `None` if none is due. `all` forces one window over every table (a full
/// compaction). See the module doc for the two triggers.
pub fn pick_window(tables: &[TableShape], limits: PickLimits, all: bool) -> Option<(usize, usize)> {
    if all {
        return (!tables.is_empty()).then_some((0, tables.len()));
    }
    if space_amplification_exceeded(tables, limits.space_amplification_percent_max) {
        return Some((0, tables.len()));
    }
    let trigger = limits.tables_per_read_max.max(2).saturating_sub(1).max(2);
    let too_many = tables.len() >= tables_max(limits.tables_per_read_max);
    if tables_a_read_consults(tables) < trigger && !too_many {
        return None;
    }
    let width = limits.fan_in_max.max(2).min(tables.len());
    let size = |start: &usize| -> u64 {
        tables[*start..*start + width]
            .iter()
            .map(|t| t.size_bytes)
            .sum()
    };
    let overlapping = |start: &usize| -> usize {
        tables[*start..*start + width]
            .iter()
            .filter(|t| t.overlaps_older)
            .count()
    };
    // Merging two overlapping tables lowers the count a read consults;
    // merging one with disjoint neighbours may not.
    let windows = 0..=tables.len() - width;
    windows
        .clone()
        .filter(|start| too_many || overlapping(start) >= 2)
        .min_by_key(size)
        .or_else(|| windows.min_by_key(size))
        .map(|start| (start, start + width))
}

/// A store keeps at most this many times `tables_per_read_max` tables, the
/// disjoint ones a read consults as one included (see the module doc).
pub const TABLES_PER_READ_FACTOR_MAX: usize = 4;

/// The most tables a store keeps before it merges any (disjoint ones too).
pub fn tables_max(tables_per_read_max: usize) -> usize {
    tables_per_read_max
        .max(2)
        .saturating_mul(TABLES_PER_READ_FACTOR_MAX)
}

/// The most tables (newest first) a point read may consult: each table
/// that overlaps the tables older than it, plus one for all the others,
/// which are pairwise disjoint (each lies outside the key span of every
/// table older than it), so at most one holds the key.
pub fn tables_a_read_consults(tables: &[TableShape]) -> usize {
    let overlapping = tables.iter().filter(|t| t.overlaps_older).count();
    overlapping + usize::from(overlapping < tables.len())
}

/// Whether all tables (newest first) sum to more than `percent_max` percent
/// of their base: the oldest table plus every newer one that does not
/// overlap the tables older than it. Only overlapping tables can hold
/// versions that shadow older ones, so a store filled in key order (each
/// table past the last) never triggers, while overwrites do. An empty base
/// counts as exceeded as soon as anything overlaps; `percent_max` 0 is
/// never exceeded.
pub fn space_amplification_exceeded(tables: &[TableShape], percent_max: u64) -> bool {
    if tables.len() < 2 || percent_max == 0 {
        return false;
    }
    let Some((oldest, newer)) = tables.split_last() else {
        return false;
    };
    let mut base = u128::from(oldest.size_bytes);
    let mut total = base;
    for table in newer {
        total += u128::from(table.size_bytes);
        if !table.overlaps_older {
            base += u128::from(table.size_bytes);
        }
    }
    total * 100 > base * u128::from(percent_max)
}

/// The picker's view of `tables` (newest first).
pub(super) fn shapes_of(tables: &[LiveTable]) -> Vec<TableShape> {
    let ranges: Vec<Option<(&[u8], &[u8])>> = tables.iter().map(|t| t.table.key_range()).collect();
    tables
        .iter()
        .zip(overlaps_older(&ranges))
        .map(|(t, overlaps_older)| TableShape {
            size_bytes: t.table.size_bytes(),
            overlaps_older,
        })
        .collect()
}

impl Inner {
    /// Runs one compaction if one is due (or over everything when `all`).
    /// Returns whether it merged anything.
    pub fn compact_once(&self, all: bool) -> Result<bool, StorageError> {
        let _only_one = lock(&self.compaction);
        let version = self.current();
        let shapes = shapes_of(&version.tables);
        let limits = PickLimits {
            tables_per_read_max: self.options.tables_per_read_max,
            fan_in_max: self.options.compaction_tables_max,
            space_amplification_percent_max: self.options.space_amplification_percent_max,
        };
        let Some((start, end)) = pick_window(&shapes, limits, all) else {
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
#[path = "compaction_tests.rs"]
mod tests;
