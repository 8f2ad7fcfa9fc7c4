//! Opens a table (footer, index, key filter, all checked) and serves point
//! reads and ordered iteration from it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bloomfilter::Bloom;

use super::block::Block;
use super::filter::{BlockedFilter, HashedKey};
use super::index::BlockIndex;
use super::{
    BLOOM_HASHES_MAX, TABLE_FOOTER_BYTES, TABLE_FORMAT_VERSION, TABLE_FORMAT_VERSION_BLOOM,
    TABLE_HEADER_BYTES, TABLE_MAGIC,
};
use crate::storage::lsm::cache::BlockCache;
use crate::storage::lsm::codec::Cursor;
use crate::storage::lsm::memtable::Slot;
use crate::storage::lsm::vfs::ReadableFile;
use crate::storage::StorageError;

/// An open, verified table.
pub struct Table {
    id: u64,
    path: PathBuf,
    file: Arc<dyn ReadableFile>,
    index: BlockIndex,
    filter: KeyFilter,
    entry_count: u64,
    size_bytes: u64,
    /// The first key of the first block.
    min_key: Vec<u8>,
}

/// A table's key filter, as its format version stores it.
enum KeyFilter {
    /// Version 1: the `bloomfilter` crate's, k bits anywhere in the bitmap.
    Bloom(Bloom<[u8]>),
    /// Version 2 on: all of a key's bits in one cache line.
    Blocked(BlockedFilter),
}

impl KeyFilter {
    /// `false`: the table does not hold `key`.
    fn may_hold(&self, key: HashedKey<'_>) -> bool {
        match self {
            Self::Bloom(bloom) => bloom.check(key.key),
            Self::Blocked(filter) => filter.may_hold(key.hash),
        }
    }

    /// Reads the filter section of a table of format `version`.
    fn parse(version: u32, bytes: Vec<u8>) -> Result<Self, Cow<'static, str>> {
        if version != TABLE_FORMAT_VERSION_BLOOM {
            return BlockedFilter::from_bytes(&bytes)
                .map(Self::Blocked)
                .map_err(|error| error.reason().into());
        }
        let bloom = Bloom::from_bytes(bytes)
            .map_err(|reason| format!("bloom filter does not parse: {reason}"))?;
        // `Bloom::check` takes its hash modulo the bit count and runs once
        // per hash function: a filter without bits would divide by zero,
        // one claiming billions of functions would stall every lookup.
        // (`Bloom::is_empty` says whether any bit is set, not this.)
        let bloom_bits = bloom.len();
        if bloom_bits == 0 {
            return Err("bloom filter without bits".into());
        }
        if bloom.number_of_hash_functions() > BLOOM_HASHES_MAX {
            return Err("bloom filter with more than BLOOM_HASHES_MAX hash functions".into());
        }
        Ok(Self::Bloom(bloom))
    }
}

/// Whether a block read should be remembered in the block cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheFill {
    /// Point reads and scans: cache the block.
    Fill,
    /// Compaction: a one-off sequential pass that must not evict hot blocks.
    Bypass,
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> StorageError {
    StorageError::Corruption {
        file: path.to_owned(),
        offset,
        reason: reason.to_owned(),
    }
}

fn read(
    file: &dyn ReadableFile,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    file.read_at(offset, len)
        .map_err(|source| StorageError::Io {
            context: format!("reading {} bytes at {offset} of {}", len, path.display()),
            source,
        })
}

impl Table {
    /// Opens table `id` from `file`, checking header, footer, index and key
    /// filter. Tables of every format version this build knows are read
    /// (`TABLE_FORMAT_VERSION_BLOOM` up to `TABLE_FORMAT_VERSION`).
    pub fn open(id: u64, path: &Path, file: Arc<dyn ReadableFile>) -> Result<Self, StorageError> {
        let size_bytes = file.len_bytes().map_err(|source| StorageError::Io {
            context: format!("sizing {}", path.display()),
            source,
        })?;
        let footer_offset = size_bytes
            .checked_sub(TABLE_FOOTER_BYTES as u64)
            .filter(|offset| *offset >= TABLE_HEADER_BYTES as u64)
            .ok_or_else(|| corrupt(path, 0, "table shorter than header and footer"))?;
        let header = read(file.as_ref(), path, 0, TABLE_HEADER_BYTES)?;
        let mut cursor = Cursor::new(&header);
        let known = TABLE_FORMAT_VERSION_BLOOM..=TABLE_FORMAT_VERSION;
        let header_version = cursor
            .take(8)
            .filter(|magic| *magic == TABLE_MAGIC)
            .and_then(|_| cursor.u32())
            .filter(|version| known.contains(version))
            .ok_or_else(|| corrupt(path, 0, "bad table magic or version"))?;
        let footer = read(file.as_ref(), path, footer_offset, TABLE_FOOTER_BYTES)?;
        let footer_error = || corrupt(path, footer_offset, "table footer does not parse");
        let mut cursor = Cursor::new(&footer);
        let fields = (
            cursor.u64(),
            cursor.u32(),
            cursor.u32(),
            cursor.u64(),
            cursor.u32(),
            cursor.u32(),
            cursor.u64(),
            cursor.u32(),
            cursor.u32(),
            cursor.take(8),
        );
        let (
            Some(index_offset),
            Some(index_len),
            Some(index_crc),
            Some(filter_offset),
            Some(filter_len),
            Some(filter_crc),
            Some(entry_count),
            Some(version),
            Some(footer_crc),
            Some(magic),
        ) = fields
        else {
            return Err(footer_error());
        };
        if crc32c::crc32c(footer.get(..44).unwrap_or_default()) != footer_crc {
            return Err(corrupt(
                path,
                footer_offset,
                "table footer checksum mismatch",
            ));
        }
        if magic != TABLE_MAGIC || version != header_version {
            return Err(corrupt(path, footer_offset, "bad footer magic or version"));
        }
        let section = |offset: u64, len: u32, crc: u32, what: &str| {
            let len = usize::try_from(len).map_err(|_| footer_error())?;
            if offset
                .checked_add(len as u64)
                .is_none_or(|end| end > footer_offset)
            {
                return Err(corrupt(
                    path,
                    offset,
                    &format!("{what} lies outside the table"),
                ));
            }
            let bytes = read(file.as_ref(), path, offset, len)?;
            if crc32c::crc32c(&bytes) != crc {
                return Err(corrupt(path, offset, &format!("{what} checksum mismatch")));
            }
            Ok(bytes)
        };
        let index_bytes = section(index_offset, index_len, index_crc, "index")?;
        let filter_bytes = section(filter_offset, filter_len, filter_crc, "key filter")?;
        let index = BlockIndex::parse(&index_bytes, index_offset)
            .ok_or_else(|| corrupt(path, index_offset, "index does not parse"))?;
        let filter = KeyFilter::parse(version, filter_bytes)
            .map_err(|reason| corrupt(path, filter_offset, &reason))?;
        let mut table = Self {
            id,
            path: path.to_owned(),
            file,
            index,
            filter,
            entry_count,
            size_bytes,
            min_key: Vec::new(),
        };
        // The smallest key lets reads skip the table without touching its
        // key filter; it costs one block read per table opened.
        if !table.index.is_empty() {
            let first = table.block(0, &BlockCache::new(0), CacheFill::Bypass)?;
            table.min_key = first.key(0).to_vec();
        }
        Ok(table)
    }

    /// Whether `key` lies outside the table's key range.
    fn out_of_range(&self, key: &[u8]) -> bool {
        match self.key_range() {
            Some((min_key, max_key)) => key < min_key || key > max_key,
            None => true,
        }
    }

    /// The smallest and the largest key stored, `None` for an empty table.
    pub fn key_range(&self) -> Option<(&[u8], &[u8])> {
        let max_key = self
            .index
            .len()
            .checked_sub(1)
            .and_then(|last| self.index.last_key(last))?;
        Some((self.min_key.as_slice(), max_key))
    }

    /// The table's id (its name and its age: higher is newer).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// File size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Entries stored (tombstones included).
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// The slot for `key` if this table has one (`Some(None)` = tombstone).
    pub fn get(
        &self,
        hashed: HashedKey<'_>,
        cache: &BlockCache,
    ) -> Result<Option<Slot>, StorageError> {
        let key = hashed.key;
        if self.out_of_range(key) || !self.filter.may_hold(hashed) {
            return Ok(None);
        }
        let block_index = self.index.seek(key);
        if block_index >= self.index.len() {
            return Ok(None);
        }
        let block = self.block(block_index, cache, CacheFill::Fill)?;
        let position = block.seek(key);
        if position < block.len() && block.key(position) == key {
            return Ok(Some(block.slot(position)));
        }
        Ok(None)
    }

    /// [`Self::get`] from memory only: `None` when the answer needs a
    /// block that is not in `cache` (a disk read), so a caller that must
    /// not block can hand the read to a thread that may.
    pub fn get_cached(
        &self,
        hashed: HashedKey<'_>,
        cache: &BlockCache,
    ) -> Option<Result<Option<Slot>, StorageError>> {
        let key = hashed.key;
        if self.out_of_range(key) || !self.filter.may_hold(hashed) {
            return Some(Ok(None));
        }
        let block_index = self.index.seek(key);
        if block_index >= self.index.len() {
            return Some(Ok(None));
        }
        let Some(entry) = self.index.handle(block_index) else {
            return Some(Err(corrupt(&self.path, 0, "block index out of range")));
        };
        let block = cache.get((self.id, entry.offset))?;
        let position = block.seek(key);
        if position < block.len() && block.key(position) == key {
            return Some(Ok(Some(block.slot(position))));
        }
        Some(Ok(None))
    }

    /// Number of data blocks.
    pub fn block_count(&self) -> usize {
        self.index.len()
    }

    /// The first block that may hold a key `>= key`.
    pub fn seek_block(&self, key: &[u8]) -> usize {
        self.index.seek(key)
    }

    /// Block `block_index`, checked and decoded, through the cache.
    pub fn block(
        &self,
        block_index: usize,
        cache: &BlockCache,
        fill: CacheFill,
    ) -> Result<Arc<Block>, StorageError> {
        let (Some(entry), Some(last_key)) = (
            self.index.handle(block_index),
            self.index.last_key(block_index),
        ) else {
            return Err(corrupt(&self.path, 0, "block index out of range"));
        };
        if let Some(block) = cache.get((self.id, entry.offset)) {
            return Ok(block);
        }
        let stored = read(
            self.file.as_ref(),
            &self.path,
            entry.offset,
            entry.stored_len,
        )?;
        let block =
            Block::decode(stored).map_err(|reason| corrupt(&self.path, entry.offset, reason))?;
        if block.is_empty() || block.key(block.len() - 1) != last_key {
            return Err(corrupt(
                &self.path,
                entry.offset,
                "block does not end at its index key",
            ));
        }
        let block = Arc::new(block);
        if fill == CacheFill::Fill {
            cache.insert((self.id, entry.offset), block.clone());
        }
        Ok(block)
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
