//! Pins the SSTable format: a table written from fixed input must equal the
//! checked-in fixture byte for byte. After a deliberate format change (and a
//! `TABLE_FORMAT_VERSION` bump), regenerate it with
//! `RINGKV_BLESS=1 cargo test -p ringkv-actors --lib golden`.

use std::path::Path;

use super::*;
use crate::storage::lsm::options::Compression;
use crate::storage::lsm::sstable::writer::{TableLayout, TableWriter};
use crate::storage::lsm::vfs::Vfs;

const FIXTURE: &str = "src/storage/lsm/testdata/golden_table_v1.sst";

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
    use crate::storage::lsm::cache::BlockCache;
    use crate::storage::lsm::sstable::reader::Table;
    let bytes = golden_table(Compression::None);
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
        table.get(b"key-03", &cache).unwrap(),
        Some(None),
        "a tombstone"
    );
    assert_eq!(
        table.get(b"key-01", &cache).unwrap(),
        Some(Some(b"value-1-x".to_vec()))
    );
    assert_eq!(table.get(b"key-99", &cache).unwrap(), None);
}
