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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::lsm::options::Compression;
    use crate::storage::lsm::sstable::writer::{TableLayout, TableWriter};
    use crate::storage::lsm::vfs::fault::FaultVfs;
    use crate::storage::lsm::vfs::Vfs;

    const PATH: &str = "/t.sst";

    fn table_bytes(bloom_bits_per_key: usize) -> Vec<u8> {
        let vfs = FaultVfs::new();
        let layout = TableLayout {
            block_bytes: 64,
            bloom_bits_per_key,
            compression: Compression::None,
        };
        let path = Path::new(PATH);
        let mut writer = TableWriter::new(vfs.create(path).unwrap(), path, layout, 4).unwrap();
        for key in [b"a", b"b", b"c", b"d"] {
            writer.add(key, &Some(b"v".to_vec())).unwrap();
        }
        writer.finish().unwrap();
        vfs.contents(path).unwrap()
    }

    fn open(bytes: Vec<u8>) -> Result<Table, StorageError> {
        let vfs = FaultVfs::from_snapshot(&[(PATH.into(), bytes)]);
        Table::open(1, Path::new(PATH), vfs.open(Path::new(PATH)).unwrap())
    }

    /// A version 1 table (the `bloomfilter` crate's filter): the golden
    /// file written before version 2, keys `key-00` to `key-11`.
    fn v1_table() -> Vec<u8> {
        include_bytes!("../testdata/golden_table_v1.sst").to_vec()
    }

    /// `table` with its key filter (the section just before the footer)
    /// replaced by `filter`, every checksum valid.
    fn with_filter(table: &[u8], filter: &[u8]) -> Vec<u8> {
        let footer = &table[table.len() - TABLE_FOOTER_BYTES..];
        let filter_offset = u64::from_le_bytes(footer[16..24].try_into().unwrap());
        let mut out = table[..filter_offset as usize].to_vec();
        out.extend_from_slice(filter);
        let mut footer = footer.to_vec();
        footer[24..28].copy_from_slice(&(filter.len() as u32).to_le_bytes());
        footer[28..32].copy_from_slice(&crc32c::crc32c(filter).to_le_bytes());
        let crc = crc32c::crc32c(&footer[..44]);
        footer[44..48].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&footer);
        out
    }

    /// The key filter of `table`. Version 1: header (version u8, bitmap
    /// bytes u64, hash functions u32, seed), then the bitmap. Version 2:
    /// probes u8, line count u32, then the lines.
    fn filter_of(table: &[u8]) -> Vec<u8> {
        let footer = &table[table.len() - TABLE_FOOTER_BYTES..];
        let offset = u64::from_le_bytes(footer[16..24].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(footer[24..28].try_into().unwrap()) as usize;
        table[offset..offset + len].to_vec()
    }

    /// `table` with format `version` in its header and its footer.
    fn with_version(table: &[u8], header: u32, footer: u32) -> Vec<u8> {
        let mut out = table.to_vec();
        out[8..12].copy_from_slice(&header.to_le_bytes());
        let start = out.len() - TABLE_FOOTER_BYTES;
        out[start + 40..start + 44].copy_from_slice(&footer.to_le_bytes());
        let crc = crc32c::crc32c(&out[start..start + 44]);
        out[start + 44..start + 48].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn a_rebuilt_filter_reads_back_in_both_formats() {
        let cache = BlockCache::new(1 << 20);
        let table = table_bytes(10);
        let table = open(with_filter(&table, &filter_of(&table))).unwrap();
        assert_eq!(
            table.get(HashedKey::new(b"c"), &cache).unwrap(),
            Some(Some(b"v".to_vec()))
        );
        // A cache of its own: the cache knows blocks by table id and offset.
        let cache = BlockCache::new(1 << 20);
        let table = v1_table();
        let table = open(with_filter(&table, &filter_of(&table))).unwrap();
        assert_eq!(
            table.get(HashedKey::new(b"key-01"), &cache).unwrap(),
            Some(Some(b"value-1-x".to_vec()))
        );
    }

    /// Found with the `sstable_table` fuzz target (by hand-made inputs, as
    /// reading `Bloom::from_bytes` suggested): a version 1 filter with zero
    /// bits was accepted, and every lookup then divided by zero.
    #[test]
    fn a_bloom_filter_without_bits_is_corruption() {
        let table = v1_table();
        let mut bloom = filter_of(&table)[..45].to_vec();
        bloom[1..9].copy_from_slice(&0u64.to_le_bytes());
        let error = open(with_filter(&table, &bloom)).err().unwrap();
        assert!(error.to_string().contains("without bits"), "{error}");
    }

    /// Found the same way: a version 1 filter claiming u32::MAX hash
    /// functions was accepted, and a lookup of a key whose bits were all
    /// set then ran four billion rounds.
    #[test]
    fn a_bloom_filter_with_too_many_hash_functions_is_corruption() {
        let table = v1_table();
        let mut bloom = filter_of(&table);
        bloom[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        bloom[45..].fill(0xff);
        let error = open(with_filter(&table, &bloom)).err().unwrap();
        assert!(error.to_string().contains("BLOOM_HASHES_MAX"), "{error}");
    }

    /// The same two hazards in the version 2 filter: no lines to scale a
    /// hash into, and a probe count past the bound.
    #[test]
    fn a_key_filter_without_lines_or_with_too_many_probes_is_corruption() {
        let table = table_bytes(10);
        let mut filter = filter_of(&table)[..5].to_vec();
        filter[1..5].fill(0);
        let error = open(with_filter(&table, &filter)).err().unwrap();
        assert!(error.to_string().contains("without bits"), "{error}");
        let mut filter = filter_of(&table);
        filter[0] = u8::MAX;
        let error = open(with_filter(&table, &filter)).err().unwrap();
        assert!(error.to_string().contains("FILTER_PROBES_MAX"), "{error}");
    }

    /// A version 1 filter in a table that says version 2 (or the other
    /// way round) does not parse; header and footer must agree; a version
    /// this build does not know is refused.
    #[test]
    fn a_table_is_read_by_its_own_format_version_only() {
        let v2 = table_bytes(10);
        let v1 = v1_table();
        for (bytes, expected) in [
            (with_version(&v2, 1, 1), "bloom"),
            (with_version(&v1, 2, 2), "key filter"),
            (with_version(&v2, 1, 2), "version"),
            (with_version(&v2, 3, 3), "version"),
            (with_version(&v1, 0, 0), "version"),
        ] {
            let error = open(bytes).err().unwrap().to_string();
            assert!(error.contains(expected), "{error}");
        }
        assert!(open(with_version(&v2, 2, 2)).is_ok());
        assert!(open(with_version(&v1, 1, 1)).is_ok());
    }

    #[test]
    fn every_bits_per_key_setting_writes_a_table_the_reader_accepts() {
        for bits_per_key in [0, 1, 10, 64, 65, 1_000] {
            let table = open(table_bytes(bits_per_key)).unwrap();
            let cache = BlockCache::new(0);
            assert!(
                table.get(HashedKey::new(b"a"), &cache).unwrap().is_some(),
                "{bits_per_key}"
            );
        }
    }
}
