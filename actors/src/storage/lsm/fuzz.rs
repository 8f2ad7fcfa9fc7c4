//! Doors for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off by
//! default; the node never enables it).
//!
//! The LSM engine keeps its file formats private (`lsm` exports only the
//! engine, its options and the Vfs seam), so libFuzzer could only reach
//! them through a whole engine. Each function here takes untrusted bytes
//! and runs the engine's own reader on them: the same code recovery and
//! reads run, with no checks added or skipped. What they return lets a
//! target check a law (a manifest re-encodes to its bytes, a log replays
//! to records that re-encode to a prefix of it); the bytes they hand out
//! are copies, so nothing private leaks.
//!
//! Checksums guard every byte of these formats, so random mutations die at
//! the first CRC; the targets fix checksums up on their side before
//! calling in, which keeps the parsers here untouched.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cache::BlockCache;
use super::log::{encode_record, replay_segment, segment_name};
use super::manifest::{Manifest, MANIFEST_NAME};
use super::memtable::Slot;
use super::recovery::recover;
use super::sstable::block::Block;
use super::sstable::filter::HashedKey;
use super::sstable::index::BlockIndex;
use super::sstable::reader::{CacheFill, Table};
use super::vfs::fault::FaultVfs;
use super::vfs::ReadableFile;
use crate::storage::StorageError;

/// Where the fuzzed files pretend to live (only error messages show it).
const FUZZ_DIR: &str = "/fuzz";

/// One entry of a block or table: key and value (`None`: tombstone).
pub type Entry = (Vec<u8>, Slot);

/// One block as the index names it: last key, offset, stored length.
pub type IndexEntry = (Vec<u8>, u64, usize);

/// Decodes a stored data block (body + trailer) with [`Block::decode`],
/// then reads every entry and seeks every key, as point reads and scans do.
pub fn block(stored: &[u8]) -> Result<Vec<Entry>, &'static str> {
    let block = Block::decode(stored.to_vec())?;
    let entries: Vec<Entry> = (0..block.len())
        .map(|index| (block.key(index).to_vec(), block.slot(index)))
        .collect();
    for (key, _) in &entries {
        block.seek(key);
    }
    Ok(entries)
}

/// Parses a table's index section, said to start at `index_offset`, with
/// [`BlockIndex::parse`]; returns every block's last key, offset and stored
/// length (`None` for a block the parsed index cannot name), after
/// seeking each last key.
pub fn index(bytes: &[u8], index_offset: u64) -> Option<Vec<Option<IndexEntry>>> {
    let index = BlockIndex::parse(bytes, index_offset)?;
    let blocks = (0..index.len())
        .map(|block| {
            let last_key = index.last_key(block)?;
            index.seek(last_key);
            let handle = index.handle(block)?;
            Some((last_key.to_vec(), handle.offset, handle.stored_len))
        })
        .collect();
    Some(blocks)
}

/// Opens `bytes` as a table file with [`Table::open`] (header, footer,
/// index, bloom filter, first block), then reads every block through a
/// cache and looks up every key it found plus two probes around them.
/// Returns the entries of every block, in file order.
pub fn table(bytes: &[u8]) -> Result<Vec<Entry>, StorageError> {
    let path = Path::new(FUZZ_DIR).join("00000000000000000001.sst");
    let file = Arc::new(PreadFile(bytes.to_vec()));
    let table = Table::open(1, &path, file)?;
    let cache = BlockCache::new(1 << 20);
    let mut entries = Vec::new();
    for block in 0..table.block_count() {
        let block = table.block(block, &cache, CacheFill::Fill)?;
        entries
            .extend((0..block.len()).map(|index| (block.key(index).to_vec(), block.slot(index))));
    }
    for (key, _) in &entries {
        table.get(HashedKey::new(key), &cache)?;
        table.seek_block(key);
    }
    table.get(HashedKey::new(b""), &cache)?;
    table.get(HashedKey::new(&[0xff; 16]), &cache)?;
    Ok(entries)
}

/// Replays `bytes` as one commit log segment with the log's reader
/// (`newest`: a torn tail is allowed, as in the newest segment), and
/// returns the batches it found encoded again, record after record.
pub fn log_segment(bytes: &[u8], newest: bool) -> Result<Vec<u8>, StorageError> {
    let path = Path::new(FUZZ_DIR).join(segment_name(1));
    let batches = replay_segment(bytes, &path, newest)?;
    let mut encoded = Vec::new();
    for batch in &batches {
        encode_record(&mut encoded, batch.sequence, &batch.ops);
    }
    Ok(encoded)
}

/// Runs recovery (`recover`, what `LsmEngine::open` starts with) over a
/// directory holding a fresh manifest and `segments` as log segments 1, 2,
/// ...; returns the highest sequence number it replayed.
pub fn recover_log(segments: &[&[u8]]) -> Result<u64, StorageError> {
    let dir = PathBuf::from(FUZZ_DIR);
    let manifest = Manifest {
        next_table_id: 1,
        log_segment_first_live: 1,
        sequence_flushed: 0,
        tables: Vec::new(),
    };
    let mut files = vec![(dir.join(MANIFEST_NAME), manifest.encode())];
    for (number, segment) in (1..).zip(segments) {
        files.push((dir.join(segment_name(number)), segment.to_vec()));
    }
    let vfs = FaultVfs::from_snapshot(&files);
    recover(&vfs, &dir).map(|recovered| recovered.sequence_max)
}

/// Decodes `bytes` as a manifest with [`Manifest::decode`] and returns it
/// encoded again (the format has one encoding, so this equals `bytes`).
pub fn manifest(bytes: &[u8]) -> Result<Vec<u8>, StorageError> {
    let path = Path::new(FUZZ_DIR).join(MANIFEST_NAME);
    Manifest::decode(bytes, &path).map(|manifest| manifest.encode())
}

/// A file in memory that reads like `StdVfs`'s: the buffer for a read is
/// allocated at the asked length before the bounds are checked, so a
/// reader that trusts a length from the file allocates here as it would on
/// disk, and the fuzzer's memory limit catches it.
struct PreadFile(Vec<u8>);

impl ReadableFile for PreadFile {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buffer = vec![0; len];
        let source = usize::try_from(offset)
            .ok()
            .and_then(|start| self.0.get(start..start.checked_add(len)?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buffer.copy_from_slice(source);
        Ok(buffer)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}
