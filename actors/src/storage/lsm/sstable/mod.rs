//! Sorted string tables: immutable, checksummed files of sorted entries.
//!
//! ## Format
//!
//! A table file `<id:020>.sst`, all integers little-endian:
//!
//! ```text
//! header      magic "RKVTABLE" (8 bytes), format version u32 (= 2)
//! data block* body, then a 9-byte trailer:
//!               compression u8 (0 = none, 1 = lz4), uncompressed length u32,
//!               CRC32C u32 of body + the first 5 trailer bytes
//!             the uncompressed body is a run of entries, ascending by key:
//!               key (u32 length + bytes), tag u8 (0 = tombstone, 1 = value),
//!               value (u32 length + bytes, only when tag = 1)
//! index       entry count u32, then per data block:
//!               last key (u32 length + bytes), offset u64, stored length u32
//!               (body + trailer)
//! filter      every key of the table in a blocked bloom filter (the
//!             format is in `filter.rs`: one 64-byte line per key)
//! footer      56 bytes: index offset u64, index length u32, index CRC32C u32,
//!             filter offset u64, filter length u32, filter CRC32C u32,
//!             entry count u64, format version u32,
//!             CRC32C u32 of the 44 footer bytes before it, magic (8 bytes)
//! ```
//!
//! Version 1 tables differ only in the filter: the `bloomfilter` crate's
//! v3 serialisation (`Bloom::to_bytes`, which stores its seed; the writer
//! used the fixed `b"ringkv bloom seed, fixed forever"`), k bits anywhere in the bitmap. They are still read (and
//! rewritten as version 2 when compaction merges them); only version 2 is
//! written.
//!
//! Every byte a read depends on is covered by a checksum that is verified
//! before the bytes are parsed; a mismatch is `StorageError::Corruption`.
//! Both formats are pinned by the golden-file tests in `tests/golden.rs`.

pub mod block;
pub mod filter;
pub mod heads;
pub mod index;
pub mod reader;
pub mod writer;

/// First and last 8 bytes of every table.
pub const TABLE_MAGIC: [u8; 8] = *b"RKVTABLE";
/// The format tables are written in; bumped on any incompatible change of
/// the layout above.
pub const TABLE_FORMAT_VERSION: u32 = 2;
/// The oldest format still read: version 1, with the `bloomfilter`
/// crate's filter.
pub const TABLE_FORMAT_VERSION_BLOOM: u32 = 1;
/// Magic plus version.
pub const TABLE_HEADER_BYTES: usize = 12;
/// The fixed-size footer.
pub const TABLE_FOOTER_BYTES: usize = 56;
/// A data block's trailer: compression, uncompressed length, checksum.
pub const BLOCK_TRAILER_BYTES: usize = 9;
/// The largest block target size accepted (`LsmOptions::block_bytes` is
/// clamped to it): 16 MiB.
pub const BLOCK_BYTES_MAX: usize = 16 << 20;
/// A block claiming to decompress to more than this is corrupt: 128 MiB. A
/// block is sealed once it reaches `BLOCK_BYTES_MAX` at most, so it holds
/// less than that plus one entry, and an entry is bounded by the log's
/// `RECORD_PAYLOAD_BYTES_MAX` (64 MiB): every block the writer makes is
/// accepted by the reader.
pub const BLOCK_UNCOMPRESSED_BYTES_MAX: usize = 128 << 20;
/// The most bloom filter bits a table spends per key
/// (`LsmOptions::bloom_bits_per_key` is clamped to it): at 64 the false
/// positive rate is already far below anything measurable, and it keeps
/// the number of hash functions under [`BLOOM_HASHES_MAX`].
pub const BLOOM_BITS_PER_KEY_MAX: usize = 64;
/// A version 1 bloom filter with more hash functions than this is corrupt: every
/// lookup runs one round per function, and a filter of
/// `BLOOM_BITS_PER_KEY_MAX` bits per key has about 44 (bits per key times
/// ln 2), so every filter the writer makes is accepted.
pub const BLOOM_HASHES_MAX: u32 = 64;

/// The file name of table `id`.
pub fn table_name(id: u64) -> String {
    format!("{id:020}.sst")
}

/// The table id in a table file name, if it is one.
pub fn parse_table_name(name: &str) -> Option<u64> {
    name.strip_suffix(".sst")?.parse().ok()
}
