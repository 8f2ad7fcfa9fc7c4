//! Writes one table from entries given in ascending key order.

use std::path::{Path, PathBuf};

use super::block::{put_entry, seal};
use super::filter::{key_hash, BlockedFilter};
use super::{BLOCK_BYTES_MAX, TABLE_FORMAT_VERSION, TABLE_MAGIC};
use crate::storage::lsm::codec::{len_u32, put_bytes, put_u32, put_u64};
use crate::storage::lsm::memtable::Slot;
use crate::storage::lsm::options::Compression;
use crate::storage::lsm::vfs::WritableFile;
use crate::storage::StorageError;

/// Bytes buffered before an append to the file: 256 KiB.
const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// How a table is laid out (taken from the engine's options).
#[derive(Clone, Copy, Debug)]
pub struct TableLayout {
    /// Target uncompressed block size.
    pub block_bytes: usize,
    /// Bloom bits per key.
    pub bloom_bits_per_key: usize,
    /// Block compression.
    pub compression: Compression,
}

/// Streams entries into a table file; [`finish`](Self::finish) syncs it.
pub struct TableWriter {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    layout: TableLayout,
    buffer: Vec<u8>,
    written_bytes: u64,
    block: Vec<u8>,
    last_key: Vec<u8>,
    index: Vec<(Vec<u8>, u64, u32)>,
    filter: BlockedFilter,
    entry_count: u64,
}

impl TableWriter {
    /// Starts a table expected to hold about `keys_expected` entries (sizes
    /// the key filter; an over-estimate only lowers its false positives).
    pub fn new(
        file: Box<dyn WritableFile>,
        path: &Path,
        layout: TableLayout,
        keys_expected: usize,
    ) -> Result<Self, StorageError> {
        let filter =
            BlockedFilter::new(keys_expected, layout.bloom_bits_per_key).ok_or_else(|| {
                StorageError::Io {
                    context: format!("sizing the key filter of {}", path.display()),
                    source: std::io::Error::other(format!(
                        "{keys_expected} keys need more than u32::MAX filter lines"
                    )),
                }
            })?;
        let mut buffer = Vec::with_capacity(WRITE_BUFFER_BYTES);
        buffer.extend_from_slice(&TABLE_MAGIC);
        put_u32(&mut buffer, TABLE_FORMAT_VERSION);
        Ok(Self {
            file,
            path: path.to_owned(),
            layout,
            buffer,
            written_bytes: 0,
            block: Vec::new(),
            last_key: Vec::new(),
            index: Vec::new(),
            filter,
            entry_count: 0,
        })
    }

    /// Adds the next entry; keys must ascend strictly.
    pub fn add(&mut self, key: &[u8], slot: &Slot) -> Result<(), StorageError> {
        put_entry(&mut self.block, key, slot);
        self.filter.insert(key_hash(key));
        self.entry_count += 1;
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        if self.block.len() >= self.layout.block_bytes.min(BLOCK_BYTES_MAX) {
            self.seal_block()?;
        }
        Ok(())
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// Writes index, key filter and footer, syncs the file; returns its size.
    pub fn finish(mut self) -> Result<u64, StorageError> {
        if !self.block.is_empty() {
            self.seal_block()?;
        }
        let index_offset = self.offset();
        let mut index = Vec::new();
        put_u32(&mut index, len_u32(self.index.len()));
        for (last_key, offset, stored_len) in &self.index {
            put_bytes(&mut index, last_key);
            put_u64(&mut index, *offset);
            put_u32(&mut index, *stored_len);
        }
        self.buffer.extend_from_slice(&index);
        let filter_offset = self.offset();
        let filter = self.filter.to_bytes();
        self.buffer.extend_from_slice(&filter);
        let mut footer = Vec::new();
        put_u64(&mut footer, index_offset);
        put_u32(&mut footer, len_u32(index.len()));
        put_u32(&mut footer, crc32c::crc32c(&index));
        put_u64(&mut footer, filter_offset);
        put_u32(&mut footer, len_u32(filter.len()));
        put_u32(&mut footer, crc32c::crc32c(&filter));
        put_u64(&mut footer, self.entry_count);
        put_u32(&mut footer, TABLE_FORMAT_VERSION);
        let footer_crc = crc32c::crc32c(&footer);
        put_u32(&mut footer, footer_crc);
        footer.extend_from_slice(&TABLE_MAGIC);
        self.buffer.extend_from_slice(&footer);
        self.drain()?;
        self.file.sync().map_err(|source| StorageError::Io {
            context: format!("syncing table {}", self.path.display()),
            source,
        })?;
        Ok(self.written_bytes)
    }

    fn offset(&self) -> u64 {
        self.written_bytes + self.buffer.len() as u64
    }

    fn seal_block(&mut self) -> Result<(), StorageError> {
        let offset = self.offset();
        seal(&mut self.buffer, &self.block, self.layout.compression);
        let stored_len = len_u32(usize::try_from(self.offset() - offset).unwrap_or(usize::MAX));
        self.index.push((self.last_key.clone(), offset, stored_len));
        self.block.clear();
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), StorageError> {
        self.file
            .append(&self.buffer)
            .map_err(|source| StorageError::Io {
                context: format!("writing table {}", self.path.display()),
                source,
            })?;
        self.written_bytes += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}
