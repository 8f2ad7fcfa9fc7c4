//! Opening an engine: load the manifest, open the live tables, remove
//! leftovers of interrupted flushes and compactions, replay the log after the
//! last flushed sequence number and flush what it held.

use std::path::Path;
use std::sync::Arc;

use super::log::{parse_segment_name, replay_segment, segment_name};
use super::manifest::{io_error, Manifest, MANIFEST_NAME, MANIFEST_TEMP_NAME};
use super::memtable::Memtable;
use super::sstable::reader::Table;
use super::sstable::{parse_table_name, table_name};
use super::state::LiveTable;
use super::vfs::{file_path, Vfs};
use crate::storage::StorageError;

/// What recovery hands to the engine.
pub struct Recovered {
    /// The durable manifest.
    pub manifest: Manifest,
    /// Its tables, opened, newest first.
    pub tables: Vec<LiveTable>,
    /// Batches replayed from the log (not yet in a table).
    pub replayed: Option<Arc<Memtable>>,
    /// The highest sequence number seen anywhere.
    pub sequence_max: u64,
    /// The first segment number free for a new log segment.
    pub segment_next: u64,
}

/// Loads the durable state of `dir` (creating an empty store if needed).
pub fn recover(vfs: &dyn Vfs, dir: &Path) -> Result<Recovered, StorageError> {
    vfs.create_dir_all(dir)
        .map_err(|e| io_error("creating", dir, e))?;
    let manifest = match Manifest::load(vfs, dir)? {
        Some(manifest) => manifest,
        None => {
            // A new store writes its manifest before any other file, so
            // tables or logs without one mean the manifest was lost: refuse
            // rather than treat every table as an orphan and delete it.
            let names = vfs.list(dir).map_err(|e| io_error("listing", dir, e))?;
            let data_file = names.iter().find(|name| {
                parse_table_name(name).is_some() || parse_segment_name(name).is_some()
            });
            if let Some(name) = data_file {
                return Err(StorageError::Corruption {
                    file: file_path(dir, MANIFEST_NAME),
                    offset: 0,
                    reason: format!("manifest missing although {name} exists"),
                });
            }
            let fresh = Manifest {
                next_table_id: 1,
                log_segment_first_live: 1,
                sequence_flushed: 0,
                tables: Vec::new(),
            };
            fresh.install(vfs, dir)?;
            fresh
        }
    };
    let names = vfs.list(dir).map_err(|e| io_error("listing", dir, e))?;
    remove_garbage(vfs, dir, &manifest, &names)?;
    let mut tables = Vec::new();
    for record in &manifest.tables {
        let path = file_path(dir, &table_name(record.id));
        let file = vfs.open(&path).map_err(|e| io_error("opening", &path, e))?;
        let table = Table::open(record.id, &path, file)?;
        tables.push(LiveTable {
            table: Arc::new(table),
            sequence_max: record.sequence_max,
        });
    }
    let mut segments: Vec<u64> = names
        .iter()
        .filter_map(|name| parse_segment_name(name))
        .filter(|segment| *segment >= manifest.log_segment_first_live)
        .collect();
    segments.sort_unstable();
    let mut sequence_max = manifest.sequence_flushed;
    let replayed = match segments.last() {
        Some(last) => {
            let memtable = Arc::new(Memtable::new(*last));
            for (position, segment) in segments.iter().enumerate() {
                let path = file_path(dir, &segment_name(*segment));
                let file = vfs.open(&path).map_err(|e| io_error("opening", &path, e))?;
                let len = file.len_bytes().map_err(|e| io_error("sizing", &path, e))?;
                let len = usize::try_from(len)
                    .map_err(|e| io_error("sizing", &path, std::io::Error::other(e)))?;
                let bytes = file
                    .read_at(0, len)
                    .map_err(|e| io_error("reading", &path, e))?;
                let newest = position + 1 == segments.len();
                for batch in replay_segment(&bytes, &path, newest)? {
                    if batch.sequence > manifest.sequence_flushed {
                        memtable.apply(batch.sequence, batch.ops);
                        sequence_max = sequence_max.max(batch.sequence);
                    }
                }
            }
            Some(memtable)
        }
        None => None,
    };
    let segment_next = segments
        .last()
        .map_or(manifest.log_segment_first_live, |last| last + 1);
    Ok(Recovered {
        manifest,
        tables,
        replayed,
        sequence_max,
        segment_next,
    })
}

/// Removes tables the manifest does not name (an interrupted flush or
/// compaction), a stale temporary manifest and fully flushed log segments.
fn remove_garbage(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    names: &[String],
) -> Result<(), StorageError> {
    for name in names {
        let orphan_table =
            parse_table_name(name).is_some_and(|id| !manifest.tables.iter().any(|t| t.id == id));
        let old_segment =
            parse_segment_name(name).is_some_and(|s| s < manifest.log_segment_first_live);
        if orphan_table || old_segment || name == MANIFEST_TEMP_NAME {
            let path = file_path(dir, name);
            vfs.remove(&path)
                .map_err(|e| io_error("removing", &path, e))?;
        }
    }
    Ok(())
}
