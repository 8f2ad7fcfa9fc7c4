//! Wire formats: the frame codec shared by every connection, the client
//! protocol of PROTOCOL.md, and the peer protocol.

pub mod client;
pub mod frame;
pub(crate) mod msgpack;
pub mod peer;
mod peer_fast;
pub mod writer;

pub use frame::{FrameCodec, FrameError, MAX_FRAME_BYTES_DEFAULT};
