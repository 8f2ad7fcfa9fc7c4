//! The manifest: the one file that says which tables are live and which log
//! segments still matter. It changes atomically: written to `MANIFEST.tmp`,
//! fsynced, renamed over `MANIFEST`, then the directory is fsynced. A crash at
//! any step leaves either the old or the new manifest in place; files the old
//! one does not name are garbage removed on the next open.
//!
//! ## Format
//!
//! ```text
//! magic "RKVMANIF" (8 bytes), format version u32 (= 1)
//! next table id u64          ids below it were handed out (maybe orphaned)
//! first live log segment u64 older segments are fully in tables
//! last flushed sequence u64  batches up to it are in tables
//! table count u32, then per table, newest first:
//!   table id u64, highest sequence number it holds u64
//! CRC32C u32 of every byte before it
//! ```

use std::path::Path;

use super::codec::{len_u32, put_u32, put_u64, Cursor};
use super::vfs::{file_path, Vfs};
use crate::storage::StorageError;

/// The live manifest's file name.
pub const MANIFEST_NAME: &str = "MANIFEST";
/// Where a new manifest is written before the rename.
pub const MANIFEST_TEMP_NAME: &str = "MANIFEST.tmp";
const MANIFEST_MAGIC: [u8; 8] = *b"RKVMANIF";
const MANIFEST_FORMAT_VERSION: u32 = 1;

/// One live table as the manifest records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRecord {
    /// The table id (file name; higher is newer).
    pub id: u64,
    /// The highest batch sequence number the table holds: a tombstone in it
    /// is at most this new (used by the tombstone purge rule).
    pub sequence_max: u64,
}

/// The durable state of the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The next table id to hand out.
    pub next_table_id: u64,
    /// Log segments below this one are fully flushed and may be deleted.
    pub log_segment_first_live: u64,
    /// Every batch up to this sequence number is in a table.
    pub sequence_flushed: u64,
    /// Live tables, newest first.
    pub tables: Vec<TableRecord>,
}

impl Manifest {
    /// Serialises the manifest (see `## Format`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MANIFEST_MAGIC);
        put_u32(&mut out, MANIFEST_FORMAT_VERSION);
        put_u64(&mut out, self.next_table_id);
        put_u64(&mut out, self.log_segment_first_live);
        put_u64(&mut out, self.sequence_flushed);
        put_u32(&mut out, len_u32(self.tables.len()));
        for table in &self.tables {
            put_u64(&mut out, table.id);
            put_u64(&mut out, table.sequence_max);
        }
        let crc = crc32c::crc32c(&out);
        put_u32(&mut out, crc);
        out
    }

    /// Parses and checks a manifest read from `file`.
    pub fn decode(bytes: &[u8], file: &Path) -> Result<Self, StorageError> {
        let corrupt = |reason: &str| StorageError::Corruption {
            file: file.to_owned(),
            offset: 0,
            reason: reason.to_owned(),
        };
        let body_len = bytes
            .len()
            .checked_sub(4)
            .ok_or_else(|| corrupt("manifest too short"))?;
        let (body, crc) = bytes.split_at(body_len);
        if Cursor::new(crc).u32() != Some(crc32c::crc32c(body)) {
            return Err(corrupt("manifest checksum mismatch"));
        }
        let mut cursor = Cursor::new(body);
        if cursor.take(8) != Some(&MANIFEST_MAGIC[..])
            || cursor.u32() != Some(MANIFEST_FORMAT_VERSION)
        {
            return Err(corrupt("bad manifest magic or version"));
        }
        let parse = |cursor: &mut Cursor| -> Option<Manifest> {
            let next_table_id = cursor.u64()?;
            let log_segment_first_live = cursor.u64()?;
            let sequence_flushed = cursor.u64()?;
            let count = cursor.u32()?;
            let mut tables = Vec::new();
            for _ in 0..count {
                tables.push(TableRecord {
                    id: cursor.u64()?,
                    sequence_max: cursor.u64()?,
                });
            }
            (cursor.remaining() == 0).then_some(Manifest {
                next_table_id,
                log_segment_first_live,
                sequence_flushed,
                tables,
            })
        };
        parse(&mut cursor).ok_or_else(|| corrupt("manifest does not parse"))
    }

    /// Reads `dir/MANIFEST`, or `None` if the directory holds none yet.
    pub fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = file_path(dir, MANIFEST_NAME);
        let file = match vfs.open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("opening", &path, source)),
        };
        let len = file.len_bytes().map_err(|e| io_error("sizing", &path, e))?;
        let len = usize::try_from(len).map_err(|_| StorageError::Corruption {
            file: path.clone(),
            offset: 0,
            reason: "manifest too large".to_owned(),
        })?;
        let bytes = file
            .read_at(0, len)
            .map_err(|e| io_error("reading", &path, e))?;
        Self::decode(&bytes, &path).map(Some)
    }

    /// Durably replaces the manifest in `dir` with `self`.
    pub fn install(&self, vfs: &dyn Vfs, dir: &Path) -> Result<(), StorageError> {
        let temp = file_path(dir, MANIFEST_TEMP_NAME);
        let live = file_path(dir, MANIFEST_NAME);
        let mut file = vfs
            .create(&temp)
            .map_err(|e| io_error("creating", &temp, e))?;
        file.append(&self.encode())
            .map_err(|e| io_error("writing", &temp, e))?;
        file.sync().map_err(|e| io_error("syncing", &temp, e))?;
        vfs.rename(&temp, &live)
            .map_err(|e| io_error("renaming", &temp, e))?;
        vfs.sync_dir(dir)
            .map_err(|e| io_error("syncing the directory of", &live, e))
    }
}

/// An I/O error with the file and the action in its context.
pub fn io_error(action: &str, path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        context: format!("{action} {}", path.display()),
        source,
    }
}
