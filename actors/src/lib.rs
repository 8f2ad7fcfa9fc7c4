//! ringkv's actors.
#![deny(clippy::unwrap_used)]

pub mod conflict_resolver;
pub mod node_id;
pub mod ring;
pub mod storage;
pub mod wire;

pub use node_id::NodeId;
