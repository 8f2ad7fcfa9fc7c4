//! Storage: the node's local data, behind the [`Engine`] seam, served by the
//! [`Storage`] actor from threads of its own.
//!
//! - `engine`: the trait and the error type;
//! - `keys`: the engine's keyspace (meta, data, hints namespaces);
//! - `lsm`: the LSM engine (commit log with group commit, memtable, SSTables
//!   with bloom filters, compaction, crash-safe recovery) — the default;
//! - `memory_engine`: `--storage memory`, for tests and simulations;
//! - `writer`: the writer thread (group commit of read-modify-writes,
//!   minting, hints, recovery after a failed write), or the writer on the
//!   event loop (`writer/event_loop.rs`, `--storage-writer loop`);
//! - `tree`: the Merkle leaves the writer keeps as data changes;
//! - `shadows`: what reaped keys leave behind for a while (stale versions
//!   still in flight are not stored again);
//! - `worker`: the jobs, the reader threads, the engine slot;
//! - `writer_queue`: the writer's queue, which callers hand jobs to
//!   without a message to the actor, and minting on their own thread;
//! - `actor`: the Storage actor.

pub mod actor;
pub mod engine;
mod group_writes;
pub mod keys;
pub mod lsm;
pub mod memory_engine;
mod shadows;
pub mod tree;
pub mod worker;
pub mod writer;
mod writer_queue;

#[cfg(test)]
mod writer_reap_tests;
#[cfg(test)]
mod writer_tests;

pub use actor::{
    AppliedLater, ClearHint, CloseWrites, CompactStore, HintCountsQuery, HintsPending, LocalApply,
    LocalHints, LocalListKeys, LocalRead, LocalReap, LocalScan, MemoryReads, MintPermit, Storage,
    StorageHealth, StorageOptions, StorageThreading, SubscribeStorage, TreeSnapshotQuery,
    WriterQueue, HINTS_BYTES_MAX_PER_TARGET_DEFAULT, STORAGE_QUEUE_MAX_DEFAULT,
};
pub use engine::{Engine, KeyValues, StorageError, WriteOp};
pub use lsm::{LsmEngine, LsmOptions};
pub use memory_engine::MemoryEngine;
pub use worker::{
    ApplyError, Covers, HeldHint, HintCounts, KeyListing, ListBounds, LiveFilter, MintAs, Mutation,
    Page, ReapDecide, ReapShadow, ReapVerdict,
};
pub use writer::{Backend, MintGate, MintState};
