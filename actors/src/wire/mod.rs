//! Wire formats: the frame codec shared by every connection, the client
//! protocol of PROTOCOL.md, and the peer protocol.

pub mod client;
pub mod frame;
pub mod peer;
pub mod writer;

pub use frame::{FrameCodec, FrameError, MAX_FRAME_BYTES_DEFAULT};
