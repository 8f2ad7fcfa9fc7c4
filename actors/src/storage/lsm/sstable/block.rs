//! Data blocks: encoding on the write side, checked decoding on the read side.

use super::heads::KeyHeads;
use super::{BLOCK_TRAILER_BYTES, BLOCK_UNCOMPRESSED_BYTES_MAX};
use crate::storage::lsm::codec::{len_u32, put_bytes, put_u32, Cursor};
use crate::storage::lsm::memtable::Slot;
use crate::storage::lsm::options::Compression;

const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_LZ4: u8 = 1;
const TAG_TOMBSTONE: u8 = 0;
const TAG_VALUE: u8 = 1;
/// LZ4 makes at most 255 bytes of output from one byte of input (a match
/// grows by 255 bytes per extra length byte), so a block claiming to
/// decompress to more than this many times its stored size is corrupt.
/// Checking it first keeps a forged 12-byte block from costing a buffer of
/// `BLOCK_UNCOMPRESSED_BYTES_MAX` (128 MiB) before LZ4 rejects it.
const LZ4_EXPANSION_MAX: usize = 255;

/// Appends one entry to an uncompressed block body.
pub fn put_entry(body: &mut Vec<u8>, key: &[u8], slot: &Slot) {
    put_bytes(body, key);
    match slot {
        Some(value) => {
            body.push(TAG_VALUE);
            put_bytes(body, value);
        }
        None => body.push(TAG_TOMBSTONE),
    }
}

/// Compresses `body` as asked and appends body and trailer to `out`.
pub fn seal(out: &mut Vec<u8>, body: &[u8], compression: Compression) {
    let start = out.len();
    let compressed = match compression {
        Compression::Lz4 => Some(lz4_flex::block::compress(body)).filter(|c| c.len() < body.len()),
        Compression::None => None,
    };
    let tag = match &compressed {
        Some(compressed) => {
            out.extend_from_slice(compressed);
            COMPRESSION_LZ4
        }
        None => {
            out.extend_from_slice(body);
            COMPRESSION_NONE
        }
    };
    out.push(tag);
    put_u32(out, len_u32(body.len()));
    let crc = crc32c::crc32c(out.get(start..).unwrap_or_default());
    put_u32(out, crc);
}

/// Where an entry lives in a block body: key start and end, and the value's
/// start and end (`None` for a tombstone). `u32` offsets: a body is at most
/// `BLOCK_UNCOMPRESSED_BYTES_MAX` (128 MiB), and small spans keep more of a
/// block's search data in the CPU cache.
type EntrySpan = (u32, u32, Option<(u32, u32)>);

/// A verified, decompressed block with its entries located for binary search.
#[derive(Debug)]
pub struct Block {
    body: Vec<u8>,
    entries: Vec<EntrySpan>,
    heads: KeyHeads,
}

fn span(body: &[u8], start: u32, end: u32) -> &[u8] {
    body.get(start as usize..end as usize).unwrap_or_default()
}

impl Block {
    /// Checks and decodes `stored` (body + trailer); `Err` names what failed.
    pub fn decode(stored: Vec<u8>) -> Result<Self, &'static str> {
        let split = stored
            .len()
            .checked_sub(BLOCK_TRAILER_BYTES)
            .ok_or("block shorter than its trailer")?;
        let (payload, trailer) = stored.split_at(split);
        let mut cursor = Cursor::new(trailer);
        let (Some(tag), Some(len), Some(crc)) = (cursor.u8(), cursor.u32(), cursor.u32()) else {
            return Err("short block trailer");
        };
        if crc32c::crc32c(stored.get(..split + 5).unwrap_or_default()) != crc {
            return Err("block checksum mismatch");
        }
        let len = usize::try_from(len).map_err(|_| "block length overflows")?;
        if len > BLOCK_UNCOMPRESSED_BYTES_MAX {
            return Err("block longer than BLOCK_UNCOMPRESSED_BYTES_MAX");
        }
        let body = match tag {
            COMPRESSION_NONE => {
                let mut body = stored;
                body.truncate(split);
                body
            }
            COMPRESSION_LZ4 => {
                if len > payload.len().saturating_mul(LZ4_EXPANSION_MAX) {
                    return Err("block longer than its LZ4 data can hold");
                }
                lz4_flex::block::decompress(payload, len)
                    .map_err(|_| "block does not decompress")?
            }
            _ => return Err("unknown block compression"),
        };
        if body.len() != len {
            return Err("block length mismatch");
        }
        let entries = locate_entries(&body).ok_or("block entries do not parse")?;
        let heads = KeyHeads::new(entries.len(), |index| {
            entries
                .get(index)
                .map_or(&[][..], |(start, end, _)| span(&body, *start, *end))
        });
        Ok(Self {
            body,
            entries,
            heads,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the block holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held in memory (for the block cache's accounting).
    pub fn size_bytes(&self) -> usize {
        self.body.len()
            + self.entries.len() * std::mem::size_of::<EntrySpan>()
            + self.heads.size_bytes()
    }

    /// The key of entry `index`.
    pub fn key(&self, index: usize) -> &[u8] {
        self.entries
            .get(index)
            .map_or(&[][..], |(start, end, _)| span(&self.body, *start, *end))
    }

    /// The slot (value or tombstone) of entry `index`.
    pub fn slot(&self, index: usize) -> Slot {
        let (_, _, value) = self.entries.get(index)?;
        value.map(|(start, end)| span(&self.body, start, end).to_vec())
    }

    /// The index of the first entry with key `>= key` (`len()` if none).
    pub fn seek(&self, key: &[u8]) -> usize {
        self.heads.lower_bound(key, |index| self.key(index))
    }
}

fn locate_entries(body: &[u8]) -> Option<Vec<EntrySpan>> {
    let mut cursor = Cursor::new(body);
    // Typical entries (16-byte keys, 100-byte values) are ~125 bytes.
    let mut entries = Vec::with_capacity(body.len() / 64 + 1);
    let offset = |cursor: &Cursor<'_>| u32::try_from(cursor.position()).ok();
    while cursor.remaining() > 0 {
        let key_len = usize::try_from(cursor.u32()?).ok()?;
        let key_start = offset(&cursor)?;
        cursor.take(key_len)?;
        let key_end = offset(&cursor)?;
        let value = match cursor.u8()? {
            TAG_TOMBSTONE => None,
            TAG_VALUE => {
                let value_len = usize::try_from(cursor.u32()?).ok()?;
                let value_start = offset(&cursor)?;
                cursor.take(value_len)?;
                Some((value_start, offset(&cursor)?))
            }
            _ => return None,
        };
        entries.push((key_start, key_end, value));
    }
    Some(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A stored block: `payload`, then a trailer with a valid checksum.
    fn stored(payload: &[u8], compression: u8, len: u32) -> Vec<u8> {
        let mut out = payload.to_vec();
        out.push(compression);
        put_u32(&mut out, len);
        let crc = crc32c::crc32c(&out);
        put_u32(&mut out, crc);
        out
    }

    #[test]
    fn blocks_round_trip_with_either_compression() {
        let mut body = Vec::new();
        put_entry(&mut body, b"a", &Some(b"1".repeat(40)));
        put_entry(&mut body, b"b", &None);
        for compression in [Compression::None, Compression::Lz4] {
            let mut out = Vec::new();
            seal(&mut out, &body, compression);
            let block = Block::decode(out).unwrap();
            assert_eq!(block.len(), 2);
            assert_eq!(block.slot(0), Some(b"1".repeat(40)));
            assert_eq!((block.key(1), block.slot(1)), (&b"b"[..], None));
        }
    }

    /// Found by fuzzing (`fuzz/`, target `sstable_block`): LZ4 data that
    /// does not decompress, behind a valid checksum, panicked inside
    /// lz4_flex (an out-of-range slice) until its `checked-decode` feature
    /// was enabled. It is corruption like any other.
    #[test]
    fn corrupt_lz4_behind_a_valid_checksum_is_an_error() {
        for (payload, len) in [
            (&[0u8, 0, 0][..], 0),
            (&[0x8c, 0x34, 0x36, 0, 0][..], 64),
            (&[0xf0, 0xff, 0xff, 0, 0, 0, 0][..], 1_000),
        ] {
            let stored = stored(payload, COMPRESSION_LZ4, len);
            assert!(Block::decode(stored).is_err(), "{payload:?}");
        }
    }

    /// Found by fuzzing (`sstable_block`, out of memory): a 3-byte LZ4
    /// payload claiming 117 MiB made the reader allocate and zero the
    /// whole buffer before LZ4 found the data short.
    #[test]
    fn a_block_claiming_more_than_lz4_can_expand_is_refused_up_front() {
        let stored = stored(&[0x24, 0, 0], COMPRESSION_LZ4, 0x075b_0375);
        assert_eq!(
            Block::decode(stored).unwrap_err(),
            "block longer than its LZ4 data can hold"
        );
    }

    #[test]
    fn the_lz4_expansion_bound_admits_the_most_compressible_body() {
        let mut body = Vec::new();
        put_entry(&mut body, b"k", &Some(vec![0; 4 << 20]));
        let mut out = Vec::new();
        seal(&mut out, &body, Compression::Lz4);
        let payload_bytes = out.len() - BLOCK_TRAILER_BYTES;
        assert!(body.len() / payload_bytes > 200, "nearly the worst case");
        assert_eq!(Block::decode(out).unwrap().slot(0), Some(vec![0; 4 << 20]));
    }
}
