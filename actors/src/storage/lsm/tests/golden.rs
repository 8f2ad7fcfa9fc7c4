//! Pins the SSTable format: a table written from fixed input must equal the
//! checked-in fixture byte for byte. After a deliberate format change (and a
//! `TABLE_FORMAT_VERSION` bump), keep the old fixture (tables of the old
//! format are still on disks: it is read back below), name a new one after
//! the new version and write it with
//! `RINGKV_BLESS=1 cargo test -p ringkv-actors --lib golden`.

use std::path::Path;

use super::*;
use crate::storage::lsm::options::Compression;
use crate::storage::lsm::sstable::writer::{TableLayout, TableWriter};
use crate::storage::lsm::vfs::Vfs;

const FIXTURE: &str = "src/storage/lsm/testdata/golden_table_v2.sst";
/// Written by the version 1 writer (the `bloomfilter` crate's filter) from
/// the same input with lz4 blocks; no longer written, still read.
const FIXTURE_V1: &str = "src/storage/lsm/testdata/golden_table_v1.sst";

fn golden_table(compression: Compression) -> Vec<u8> {
    let vfs = FaultVfs::new();
    let path = Path::new("/golden.sst");
    let layout = TableLayout {
        block_bytes: 64,
        bloom_bits_per_key: 10,
        compression,
    };
    let mut writer = TableWriter::new(vfs.create(path).unwrap(), path, layout, 12).unwrap();
    for i in 0..12u32 {
        let key = format!("key-{i:02}");
        let slot =
            (i % 5 != 3).then(|| format!("value-{i}-{}", "x".repeat(i as usize)).into_bytes());
        writer.add(key.as_bytes(), &slot).unwrap();
    }
    writer.finish().unwrap();
    vfs.contents(path).unwrap()
}

#[test]
fn the_table_format_matches_the_golden_file() {
    let bytes = golden_table(Compression::Lz4);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("RINGKV_BLESS").is_some() {
        std::fs::write(&fixture, &bytes).unwrap();
    }
    let expected = std::fs::read(&fixture).unwrap();
    assert_eq!(
        bytes, expected,
        "the SSTable format changed: bump TABLE_FORMAT_VERSION"
    );
}

#[test]
fn the_golden_table_reads_back() {
    read_back(golden_table(Compression::None));
}

#[test]
fn a_version_1_table_reads_back() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_V1);
    let bytes = std::fs::read(fixture).unwrap();
    assert_eq!(bytes[8..12], 1u32.to_le_bytes(), "a version 1 table");
    read_back(bytes);
}

/// Every key of the golden input reads back from `bytes` as written; keys
/// around them do not.
fn read_back(bytes: Vec<u8>) {
    use crate::storage::lsm::cache::BlockCache;
    use crate::storage::lsm::sstable::filter::HashedKey;
    use crate::storage::lsm::sstable::reader::Table;
    let vfs = FaultVfs::from_snapshot(&[("/t.sst".into(), bytes)]);
    let table = Table::open(
        1,
        Path::new("/t.sst"),
        vfs.open(Path::new("/t.sst")).unwrap(),
    )
    .unwrap();
    let cache = BlockCache::new(1 << 20);
    assert!(table.block_count() > 1);
    assert_eq!(
        table.get(HashedKey::new(b"key-03"), &cache).unwrap(),
        Some(None),
        "a tombstone"
    );
    assert_eq!(
        table.get(HashedKey::new(b"key-01"), &cache).unwrap(),
        Some(Some(b"value-1-x".to_vec()))
    );
    for i in 0..12u32 {
        let slot =
            (i % 5 != 3).then(|| format!("value-{i}-{}", "x".repeat(i as usize)).into_bytes());
        let key = format!("key-{i:02}");
        assert_eq!(
            table.get(HashedKey::new(key.as_bytes()), &cache).unwrap(),
            Some(slot)
        );
    }
    for absent in [&b"key-"[..], b"key-00a", b"key-05a", b"key-1", b"key-99"] {
        assert_eq!(table.get(HashedKey::new(absent), &cache).unwrap(), None);
    }
}

/// A store whose table was written in format version 1 (by an older
/// build) opens and reads every key of it; compaction then rewrites it in
/// the current format, and the store still reads the same.
#[test]
fn a_store_of_version_1_tables_reads_and_compacts_into_the_current_format() {
    let vfs = FaultVfs::new();
    let engine = open(&vfs, LsmOptions::default()).unwrap();
    let golden: Vec<(String, Option<Vec<u8>>)> = (0..12u32)
        .map(|i| {
            let slot =
                (i % 5 != 3).then(|| format!("value-{i}-{}", "x".repeat(i as usize)).into_bytes());
            (format!("key-{i:02}"), slot)
        })
        .collect();
    let ops: Vec<_> = golden
        .iter()
        .map(|(key, slot)| match slot {
            Some(value) => put(key.as_bytes(), value),
            None => delete(key.as_bytes()),
        })
        .collect();
    engine.write_batch(&ops).unwrap();
    engine.flush().unwrap();
    drop(engine);
    // The one table, swapped for the version 1 file of the same entries.
    let v1 = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_V1)).unwrap();
    let mut files = vfs.snapshot();
    let tables: Vec<_> = files
        .iter_mut()
        .filter(|(path, _)| path.extension().is_some_and(|ext| ext == "sst"))
        .collect();
    assert_eq!(tables.len(), 1, "one flushed table");
    tables.into_iter().next().unwrap().1 = v1;
    let vfs = FaultVfs::from_snapshot(&files);
    let table_versions = |vfs: &FaultVfs| -> Vec<u32> {
        vfs.paths()
            .iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "sst"))
            .map(|path| {
                let bytes = vfs.contents(path).unwrap();
                u32::from_le_bytes(bytes[8..12].try_into().unwrap())
            })
            .collect()
    };
    assert_eq!(table_versions(&vfs), [1]);

    let engine = open(&vfs, LsmOptions::default()).unwrap();
    let reads_as_written = |engine: &LsmEngine| {
        for (key, slot) in &golden {
            assert_eq!(&engine.get(key.as_bytes()).unwrap(), slot, "{key}");
        }
        assert_eq!(engine.get(b"key-12").unwrap(), None);
    };
    reads_as_written(&engine);
    engine.write_batch(&[put(b"key-12", b"new")]).unwrap();
    engine.flush().unwrap();
    engine.compact_all().unwrap();
    assert_eq!(
        table_versions(&vfs),
        [crate::storage::lsm::sstable::TABLE_FORMAT_VERSION]
    );
    assert_eq!(engine.get(b"key-12").unwrap(), Some(b"new".to_vec()));
    engine.write_batch(&[delete(b"key-12")]).unwrap();
    reads_as_written(&engine);
}
