//! Ordered iteration over the layers of the LSM tree and their merge.
//!
//! Every layer yields `(key, slot)` in ascending key order; [`Merge`] combines
//! layers given newest first, so for a key present in several layers the
//! newest slot wins and the older ones (shadowed versions) are skipped.

use std::collections::VecDeque;
use std::sync::Arc;

use super::cache::BlockCache;
use super::memtable::{Memtable, Slot};
use super::sstable::block::Block;
use super::sstable::reader::{CacheFill, Table};
use crate::storage::StorageError;

/// One entry of a layer.
pub type Entry = (Vec<u8>, Slot);
/// A layer's entries, in key order.
pub type Layer<'a> = Box<dyn Iterator<Item = Result<Entry, StorageError>> + Send + 'a>;

/// Entries copied out of a memtable per lock acquisition.
const MEMTABLE_CHUNK_ENTRIES: usize = 256;

/// Iterates a memtable in chunks, so no lock is held between calls.
pub struct MemtableIter {
    memtable: Arc<Memtable>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
    buffer: VecDeque<Entry>,
    exhausted: bool,
}

impl MemtableIter {
    /// Entries with `start <= key < end`.
    pub fn new(memtable: Arc<Memtable>, start: &[u8], end: Option<&[u8]>) -> Self {
        Self {
            memtable,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            after: None,
            buffer: VecDeque::new(),
            exhausted: false,
        }
    }
}

impl Iterator for MemtableIter {
    type Item = Result<Entry, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.exhausted {
            let chunk = self.memtable.chunk(
                &self.start,
                self.after.as_deref(),
                self.end.as_deref(),
                MEMTABLE_CHUNK_ENTRIES,
            );
            self.exhausted = chunk.len() < MEMTABLE_CHUNK_ENTRIES;
            self.after = chunk.last().map(|(key, _)| key.clone());
            self.buffer.extend(chunk);
        }
        self.buffer.pop_front().map(Ok)
    }
}

/// Iterates a table from a start key to an optional end key.
pub struct TableIter {
    table: Arc<Table>,
    cache: Arc<BlockCache>,
    fill: CacheFill,
    end: Option<Vec<u8>>,
    block_index: usize,
    block: Option<Arc<Block>>,
    position: usize,
    start: Vec<u8>,
    failed: bool,
}

impl TableIter {
    /// Entries with `start <= key < end`.
    pub fn new(
        table: Arc<Table>,
        cache: Arc<BlockCache>,
        fill: CacheFill,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Self {
        let block_index = table.seek_block(start);
        Self {
            table,
            cache,
            fill,
            end: end.map(<[u8]>::to_vec),
            block_index,
            block: None,
            position: 0,
            start: start.to_vec(),
            failed: false,
        }
    }
}

impl Iterator for TableIter {
    type Item = Result<Entry, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(block) = &self.block {
                if self.position < block.len() {
                    let key = block.key(self.position);
                    if self.end.as_deref().is_some_and(|end| key >= end) {
                        return None;
                    }
                    let entry = (key.to_vec(), block.slot(self.position));
                    self.position += 1;
                    return Some(Ok(entry));
                }
                self.block = None;
                self.block_index += 1;
            }
            if self.block_index >= self.table.block_count() {
                return None;
            }
            match self.table.block(self.block_index, &self.cache, self.fill) {
                Ok(block) => {
                    self.position = block.seek(&self.start);
                    self.block = Some(block);
                }
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// Iterates pairwise disjoint tables one after another in key order,
/// opening each only when the one before it is done (LevelDB's level
/// iterator): a scan over a key-order fill reads blocks of the tables it
/// reaches, not the first block of every table. Only for tables that do
/// not overlap the tables older than them (`compaction::overlaps_older`):
/// a key of one of them has no older version anywhere, so the layer goes
/// last in a [`Merge`] and every newer table still wins over it.
pub struct DisjointTablesIter {
    /// Tables still to open, in descending key order (popped from the end).
    tables: Vec<Arc<Table>>,
    current: Option<TableIter>,
    cache: Arc<BlockCache>,
    fill: CacheFill,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl DisjointTablesIter {
    /// Entries with `start <= key < end` of `tables`, which must be
    /// pairwise disjoint; tables wholly outside the range are never opened.
    pub fn new(
        tables: Vec<Arc<Table>>,
        cache: Arc<BlockCache>,
        fill: CacheFill,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Self {
        let mut tables: Vec<Arc<Table>> = tables
            .into_iter()
            .filter(|t| match t.key_range() {
                Some((low, high)) => high >= start && end.is_none_or(|end| low < end),
                None => false,
            })
            .collect();
        tables.sort_by(|a, b| b.key_range().cmp(&a.key_range()));
        Self {
            tables,
            current: None,
            cache,
            fill,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
        }
    }
}

impl Iterator for DisjointTablesIter {
    type Item = Result<Entry, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.current.as_mut().and_then(Iterator::next) {
                return Some(entry);
            }
            let table = self.tables.pop()?;
            self.current = Some(TableIter::new(
                table,
                self.cache.clone(),
                self.fill,
                &self.start,
                self.end.as_deref(),
            ));
        }
    }
}

/// The newest-wins merge of layers given newest first.
pub struct Merge<'a> {
    layers: Vec<Layer<'a>>,
    heads: Vec<Option<Entry>>,
    started: bool,
    /// After a step: the layer that won and the layer holding the smallest
    /// of the other heads. While the winner's next key stays strictly below
    /// that runner-up it wins again without a scan of every head (the
    /// common case when layers cover disjoint key ranges).
    streak: Option<(usize, Option<usize>)>,
}

impl<'a> Merge<'a> {
    /// Merges `layers`, newest first.
    pub fn new(layers: Vec<Layer<'a>>) -> Self {
        let heads = layers.iter().map(|_| None).collect();
        Self {
            layers,
            heads,
            started: false,
            streak: None,
        }
    }

    fn refill(&mut self, index: usize) -> Result<(), StorageError> {
        if let (Some(layer), Some(head)) = (self.layers.get_mut(index), self.heads.get_mut(index)) {
            *head = layer.next().transpose()?;
        }
        Ok(())
    }

    fn key(&self, index: usize) -> Option<&[u8]> {
        self.heads
            .get(index)?
            .as_ref()
            .map(|(key, _)| key.as_slice())
    }

    /// The layer with the smallest head key, the lowest index on a tie.
    fn smallest(&self, except: Option<usize>) -> Option<usize> {
        let mut best: Option<usize> = None;
        for index in 0..self.heads.len() {
            if Some(index) == except {
                continue;
            }
            let Some(key) = self.key(index) else { continue };
            if best
                .and_then(|b| self.key(b))
                .is_none_or(|best_key| key < best_key)
            {
                best = Some(index);
            }
        }
        best
    }

    fn step(&mut self) -> Result<Option<Entry>, StorageError> {
        if !self.started {
            self.started = true;
            for index in 0..self.layers.len() {
                self.refill(index)?;
            }
        }
        if let Some((winner, runner_up)) = self.streak {
            let wins = match (self.key(winner), runner_up.and_then(|r| self.key(r))) {
                (Some(key), Some(other)) => key < other,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if wins {
                let entry = self.heads.get_mut(winner).and_then(Option::take);
                self.refill(winner)?;
                return Ok(entry);
            }
        }
        let Some(winner) = self.smallest(None) else {
            return Ok(None);
        };
        let Some(entry) = self.heads.get_mut(winner).and_then(Option::take) else {
            return Ok(None);
        };
        for index in 0..self.heads.len() {
            let shadowed = self.key(index) == Some(entry.0.as_slice());
            if shadowed || index == winner {
                self.refill(index)?;
            }
        }
        self.streak = Some((winner, self.smallest(Some(winner))));
        Ok(Some(entry))
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<Entry, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
