//! Tests of the table reader (`reader.rs`): the key filter of both
//! formats, corrupt filters and format versions.

#![allow(clippy::unwrap_used)]

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
