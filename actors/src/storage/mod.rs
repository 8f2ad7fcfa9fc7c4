//! Storage: the node's local data, behind the [`Engine`] seam.

pub mod engine;

pub use engine::{Engine, StorageError, WriteOp};
