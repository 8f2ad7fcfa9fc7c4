//! Storage: the node's local data, behind the [`Engine`] seam, served by the
//! [`Storage`] actor from threads of its own.
//!
//! - `engine`: the trait and the error type;
//! - `log_engine`: the temporary durable backend (append-only log + map);
//! - `memory_engine`: `--storage memory`, for tests and simulations;
//! - `worker`: the writer thread (group commit of read-modify-writes) and readers;
//! - `actor`: the Storage actor.

pub mod actor;
pub mod engine;
pub mod log_engine;
pub mod memory_engine;
pub mod worker;

pub use actor::{LocalApply, LocalRead, LocalScan, Storage, StorageOptions, StorageThreading};
pub use engine::{Engine, KeyValues, StorageError, WriteOp};
pub use log_engine::LogEngine;
pub use memory_engine::MemoryEngine;
pub use worker::{ApplyError, Mutation};
