//! ringkv's actors.
#![deny(clippy::unwrap_used)]

pub mod conflict_resolver;
pub mod node_id;
pub mod storage;

pub use node_id::NodeId;
