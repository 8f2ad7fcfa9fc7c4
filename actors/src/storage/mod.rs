//! Storage: the node's local data, behind the [`Engine`] seam.

pub mod engine;
pub mod lsm;

pub use engine::{Engine, StorageError, WriteOp};
