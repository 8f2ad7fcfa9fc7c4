//! Storage: the node's local data, behind the [`Engine`] seam, served by the
//! [`Storage`] actor from threads of its own.
//!
//! - `engine`: the trait and the error type;
//! - `lsm`: the LSM engine (commit log with group commit, memtable, SSTables
//!   with bloom filters, compaction, crash-safe recovery) — the default;
//! - `memory_engine`: `--storage memory`, for tests and simulations;
//! - `worker`: the writer thread (group commit of read-modify-writes) and readers;
//! - `actor`: the Storage actor.

pub mod actor;
pub mod engine;
pub mod lsm;
pub mod memory_engine;
pub mod worker;

pub use actor::{
    CloseWrites, LocalApply, LocalRead, LocalScan, Storage, StorageOptions, StorageThreading,
};
pub use engine::{Engine, KeyValues, StorageError, WriteOp};
pub use lsm::{LsmEngine, LsmOptions};
pub use memory_engine::MemoryEngine;
pub use worker::{ApplyError, Mutation};
