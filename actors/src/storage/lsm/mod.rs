//! The LSM storage engine: a log-structured merge-tree behind the
//! [`Engine`](crate::storage::Engine) seam, plain Rust, no actix.
//!
//! # Layout
//!
//! - `options`: [`LsmOptions`], every limit named with its unit.
//! - `vfs`: the file-system seam ([`Vfs`], [`StdVfs`]) and `vfs::fault`, the
//!   in-memory file system that injects crashes, torn writes and errors.
//! - `codec`: bounds-checked little-endian helpers.
//! - `log`: the commit log's record format and replay.
//! - `memtable`: the sorted in-memory table of the newest writes.
//! - `sstable`: the table format (`block`, `index`, `writer`, `reader`).
//! - `cache`: the byte-bounded block cache.
//! - `manifest`: the atomic record of live tables and log position.
//! - `merge`: ordered iteration over memtables and tables, newest wins.
//! - `state`: the shared state of an open engine.
//! - `commit`: the write path and group commit.
//! - `flush`: memtable to table; `compaction`: table merges (universal:
//!   size-tiered with a space-amplification trigger, and why); `recovery`:
//!   opening from disk.
//! - `engine`: [`LsmEngine`] and its background threads.
//! - `fuzz` (feature `fuzzing` only): the readers above, reachable from
//!   the fuzz targets in `fuzz/`.
//!
//! # Write path
//!
//! `write_batch` -> log record (group commit, one fsync per group) ->
//! active memtable -> when full, frozen and flushed by the flush thread to an
//! SSTable, installed by a new manifest, after which its log segment goes.
//!
//! # Read path
//!
//! Active memtable, frozen memtables newest first, then tables newest first,
//! skipping those whose bloom filter rules the key out; blocks through the
//! block cache.

mod cache;
mod codec;
mod commit;
mod compaction;
pub mod engine;
mod flush;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
mod log;
mod manifest;
mod memtable;
mod merge;
pub mod options;
mod recovery;
mod sstable;
mod state;
pub mod vfs;

#[cfg(test)]
mod tests;

pub use engine::LsmEngine;
pub use options::{CompactionFilter, Compression, LsmOptions, SyncPolicy};
/// The SSTable format this build writes (older ones are still read).
pub use sstable::TABLE_FORMAT_VERSION;
pub use vfs::{StdVfs, Vfs};
