//! The seed inputs built from the files an `LsmEngine` writes: tables,
//! log segments, manifests, and the hint keys and records it stores.

use std::path::Path;
use std::sync::Arc;

use ringkv_actors::storage::engine::{Engine, WriteOp};
use ringkv_actors::storage::keys::{data_key, hint_key, HintRecord};
use ringkv_actors::storage::lsm::vfs::fault::FaultVfs;
use ringkv_actors::storage::lsm::{fuzz, Compression, LsmEngine, LsmOptions, SyncPolicy};
use ringkv_fuzz::{block_body, index_section, TABLE_FOOTER_BYTES};

use super::{node, Corpus, Result, Target};

/// Where the store lives inside the FaultVfs.
const DB: &str = "/db";

/// What an engine left on its file system.
pub(super) struct StoreFiles {
    /// Tables, by name, with how they were written.
    tables: Vec<(String, Vec<u8>)>,
    /// Log segments, in order.
    segments: Vec<(String, Vec<u8>)>,
    /// Manifests as installed at several points.
    manifests: Vec<(String, Vec<u8>)>,
}

/// Runs `LsmEngine`s over FaultVfs and collects their files.
pub(super) fn store_files() -> Result<StoreFiles> {
    let mut files = StoreFiles {
        tables: Vec::new(),
        segments: Vec::new(),
        manifests: Vec::new(),
    };
    for compression in [Compression::Lz4, Compression::None] {
        let vfs = FaultVfs::new();
        let options = LsmOptions {
            block_bytes: 192,
            compression,
            sync: SyncPolicy::Always,
            log_preallocate_bytes: 0,
            ..LsmOptions::default()
        };
        let label = format!("{compression:?}").to_lowercase();
        let engine = LsmEngine::open(Arc::new(vfs.clone()), DB, options.clone())?;
        collect(
            &vfs,
            "manifest",
            &format!("{label}-fresh"),
            &mut files.manifests,
        );
        write_batches(&engine, 0)?;
        collect(&vfs, ".log", &label, &mut files.segments);
        engine.flush()?;
        write_batches(&engine, 1)?;
        collect(&vfs, ".log", &label, &mut files.segments);
        engine.flush()?;
        collect(&vfs, ".sst", &label, &mut files.tables);
        collect(
            &vfs,
            "manifest",
            &format!("{label}-two-tables"),
            &mut files.manifests,
        );
        engine.compact_all()?;
        collect(&vfs, ".sst", &label, &mut files.tables);
        collect(
            &vfs,
            "manifest",
            &format!("{label}-compacted"),
            &mut files.manifests,
        );
    }
    Ok(files)
}

/// The batches every store gets: data objects, hints, a meta key, deletes
/// (`round` 1 overwrites half of round 0's keys and adds as many).
fn write_batches(engine: &LsmEngine, round: u64) -> Result<()> {
    let owner = node("n3")?;
    for batch in round * 3..round * 3 + 6 {
        let mut ops = Vec::new();
        for i in 0..4u64 {
            let token = (batch * 4 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let storage_key = [
                &token.to_be_bytes()[..],
                format!("user-{batch}-{i}").as_bytes(),
            ]
            .concat();
            ops.push(WriteOp::Put {
                key: data_key(&storage_key),
                value: format!("value-{round}-{batch}-{i}-{}", "x".repeat(i as usize * 8))
                    .into_bytes(),
            });
        }
        ops.push(WriteOp::Put {
            key: hint_key(&owner, format!("user-{batch}").as_bytes()),
            value: HintRecord {
                seq: batch,
                object_bytes: 100,
            }
            .encode(),
        });
        if batch % 3 == 2 {
            ops.push(WriteOp::Delete {
                key: hint_key(&owner, format!("user-{}", batch - 1).as_bytes()),
            });
        }
        engine.write_batch(&ops)?;
    }
    engine.write_batch(&[WriteOp::Put {
        key: b"\x00layout".to_vec(),
        value: vec![2],
    }])?;
    Ok(())
}

/// Adds the files of `vfs` whose name ends in `suffix` (case-insensitive).
fn collect(vfs: &FaultVfs, suffix: &str, label: &str, into: &mut Vec<(String, Vec<u8>)>) {
    for (path, bytes) in vfs.snapshot() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.to_lowercase().ends_with(suffix) && !bytes.is_empty() {
            let name = format!("{label}-{}", name.trim_start_matches('0'));
            if !into.iter().any(|(_, seen)| *seen == bytes) {
                into.push((name, bytes));
            }
        }
    }
}

/// The index section of a table, with its offset (from the footer).
fn index_of(table: &[u8]) -> Option<(u64, &[u8])> {
    let footer = table.get(table.len().checked_sub(TABLE_FOOTER_BYTES)?..)?;
    let offset = u64::from_le_bytes(footer.get(..8)?.try_into().ok()?);
    let len = u32::from_le_bytes(footer.get(8..12)?.try_into().ok()?);
    let start = usize::try_from(offset).ok()?;
    let index = table.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
    Some((offset, index))
}

pub(super) fn sstables(corpus: &mut Corpus, store: &StoreFiles) -> Result<()> {
    let mut tables = corpus.target("sstable_table")?;
    for (name, table) in &store.tables {
        tables.write_mode(name, 0, table)?;
        tables.write_mode(name, 1, table)?;
    }
    // The engine writes the newest table format only; older tables are
    // still read, so the golden file of format version 1 seeds them.
    let v1 = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../actors/src/storage/lsm/testdata/golden_table_v1.sst"),
    )?;
    tables.write_mode("golden-v1.sst", 0, &v1)?;
    tables.write_mode("golden-v1.sst", 1, &v1)?;
    let mut indexes = Vec::new();
    let mut blocks = Vec::new();
    for (name, table) in &store.tables {
        let (offset, index) = index_of(table).ok_or("a table without an index")?;
        let handles = fuzz::index(index, offset).ok_or("an index that does not parse")?;
        assert_eq!(
            index_section(&handles.iter().flatten().cloned().collect::<Vec<_>>()),
            index
        );
        indexes.push((name.clone(), [&offset.to_le_bytes()[..], index].concat()));
        for (number, (_, offset, stored_len)) in handles.iter().flatten().enumerate().take(3) {
            let start = usize::try_from(*offset)?;
            let stored = table
                .get(start..start + stored_len)
                .ok_or("a block outside its table")?;
            blocks.push((format!("{name}-block{number}"), stored.to_vec()));
        }
    }
    let mut target = corpus.target("sstable_index")?;
    for (name, index) in &indexes {
        target.write(name, index)?;
    }
    let mut target = corpus.target("sstable_block")?;
    for (name, stored) in &blocks {
        target.write_mode(name, 0, stored)?;
        let body = block_body(&fuzz::block(stored)?);
        // Modes 2 and 3 seal the body themselves.
        target.write_mode(name, 2, &body)?;
        target.write_mode(name, 3, &body)?;
    }
    Ok(())
}

pub(super) fn commit_log(target: &mut Target<'_>, store: &StoreFiles) -> Result<()> {
    for (name, segment) in &store.segments {
        target.write_mode(name, 0, segment)?;
        target.write_mode(name, 1, segment)?;
        target.write_mode(name, 3, segment)?;
        // Preallocated space after the records, and a torn final record.
        let zeros = [segment.as_slice(), &[0; 64]].concat();
        target.write_mode(&format!("{name}-preallocated"), 0, &zeros)?;
        target.write_mode(&format!("{name}-torn"), 1, &segment[..segment.len() - 7])?;
        // Recovery over two segments, split at a record boundary (the
        // first batch) and in the middle of a record.
        let first = fuzz::log_segment(segment, true)?.len();
        let first_record = replay_prefix(segment).unwrap_or(first);
        for (how, split) in [
            ("at-record", first_record),
            ("mid-record", first_record + 9),
        ] {
            let split = u16::try_from(split)?.to_le_bytes();
            target.write_mode(
                &format!("{name}-recover-{how}"),
                4,
                &[&split[..], segment].concat(),
            )?;
        }
    }
    Ok(())
}

/// The length of a segment's first record (from its length field).
fn replay_prefix(segment: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(segment.get(..4)?.try_into().ok()?);
    Some(20 + usize::try_from(len).ok()? + 1)
}

pub(super) fn manifests(target: &mut Target<'_>, store: &StoreFiles) -> Result<()> {
    for (name, manifest) in &store.manifests {
        target.write_mode(name, 0, manifest)?;
        target.write_mode(name, 1, manifest)?;
    }
    Ok(())
}

pub(super) fn hints_and_gossip(target: &mut Target<'_>, gossip: &[(&str, Vec<u8>)]) -> Result<()> {
    let owner = node("n3")?;
    let actor = node("n1")?.version_actor(7);
    target.write(
        "hint-key",
        &hint_key(&owner, b"\x00\x00\x00\x00\x00\x00\x00\x2acart:42"),
    )?;
    target.write("hint-key-empty-user-key", &hint_key(&owner, b""))?;
    target.write(
        "hint-key-long-owner",
        &hint_key(&node(&"n".repeat(64))?, b"k"),
    )?;
    target.write("hint-key-version-actor", &hint_key(&actor, b"k"))?;
    for (name, record) in [
        (
            "hint-record",
            HintRecord {
                seq: 7,
                object_bytes: 100,
            },
        ),
        (
            "hint-record-max",
            HintRecord {
                seq: u64::MAX,
                object_bytes: u64::MAX,
            },
        ),
    ] {
        target.write(name, &record.encode())?;
    }
    for (name, message) in gossip {
        target.write(&format!("gossip-{name}"), message)?;
    }
    Ok(())
}
