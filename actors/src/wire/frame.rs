//! The one framing every ringkv connection uses: a 4-byte unsigned big-endian
//! length `L`, then `L` bytes of MessagePack.
//!
//! ## Format
//!
//! ```text
//! +----------------+---------------------------+
//! | L: u32 BE      | L bytes: one MessagePack  |
//! |                | value                     |
//! +----------------+---------------------------+
//! ```
//!
//! The length is checked against `max_frame_bytes` before a single byte of the
//! body is buffered, so a peer that announces 4 GiB costs us nothing. An empty
//! frame (`L = 0`) is passed up: it is not valid MessagePack, and the layer
//! above answers it as such.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Default limit on one frame's body, from PROTOCOL.md (4 MiB).
pub const MAX_FRAME_BYTES_DEFAULT: usize = 4 * 1024 * 1024;

/// Why a stream of frames cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced length is over the limit. The stream is unusable after
    /// this (we cannot skip a body we refuse to buffer), so the connection is
    /// answered `too_large` and closed.
    #[error("frame of {len} bytes is over the limit of {limit} bytes (max_frame_bytes)")]
    TooLarge {
        /// The length the peer announced.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Length-prefixed frames, with the limit checked before allocation.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    /// Largest body accepted or sent, in bytes.
    max_frame_bytes: usize,
}

impl FrameCodec {
    /// A codec refusing bodies over `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes }
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = src.get(..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; FRAME_HEADER_BYTES];
        len_bytes.copy_from_slice(header);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len,
                limit: self.max_frame_bytes,
            });
        }
        if src.len() < FRAME_HEADER_BYTES + len {
            // Reserve only what the (already bounded) frame needs.
            src.reserve(FRAME_HEADER_BYTES + len - src.len());
            return Ok(None);
        }
        src.advance(FRAME_HEADER_BYTES);
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if body.len() > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len: body.len(),
                limit: self.max_frame_bytes,
            });
        }
        dst.reserve(FRAME_HEADER_BYTES + body.len());
        // Lossless: body.len() <= max_frame_bytes, which config keeps <= u32::MAX.
        dst.put_u32(body.len() as u32);
        dst.extend_from_slice(&body);
        Ok(())
    }
}

/// Encodes one frame into a fresh buffer (for callers that write raw bytes,
/// such as tests and the load generator).
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Vec<Result<Bytes, String>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn round_trip_several_frames() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        for body in [&b"abc"[..], b"", b"0123456789"] {
            codec
                .encode(Bytes::copy_from_slice(body), &mut buf)
                .unwrap();
        }
        let frames = decode_all(&mut codec, &buf);
        let frames: Vec<_> = frames.into_iter().map(|f| f.unwrap()).collect();
        assert_eq!(frames, vec![&b"abc"[..], b"", b"0123456789"]);
    }

    #[test]
    fn empty_frame_is_passed_up_not_swallowed() {
        let mut codec = FrameCodec::new(64);
        let frames = decode_all(&mut codec, &[0, 0, 0, 0]);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].as_ref().unwrap().is_empty());
    }

    #[test]
    fn over_limit_is_refused_before_the_body_arrives() {
        let mut codec = FrameCodec::new(16);
        // Only the header: the body is never needed to refuse it.
        let frames = decode_all(&mut codec, &17u32.to_be_bytes());
        assert_eq!(frames.len(), 1);
        let err = frames[0].as_ref().unwrap_err();
        assert!(
            err.contains("17 bytes") && err.contains("16 bytes"),
            "{err}"
        );
        // A 4 GiB announcement is refused the same way, without allocating.
        let frames = decode_all(&mut codec, &u32::MAX.to_be_bytes());
        assert!(frames[0].is_err());
    }

    #[test]
    fn truncated_frame_waits_for_more() {
        let mut codec = FrameCodec::new(64);
        let full = encode_frame(b"hello");
        for cut in 0..full.len() {
            assert!(decode_all(&mut codec, &full[..cut]).is_empty(), "cut {cut}");
        }
        assert_eq!(decode_all(&mut codec, &full).len(), 1);
    }

    #[test]
    fn garbage_is_framed_by_length_and_passed_up() {
        // Framing does not judge the body: garbage inside a valid length is a
        // frame, and the protocol layer answers it with bad_request.
        let mut codec = FrameCodec::new(64);
        let frames = decode_all(&mut codec, &encode_frame(&[0xc1, 0xff, 0x00]));
        assert_eq!(frames[0].as_ref().unwrap().as_ref(), &[0xc1, 0xff, 0x00]);
    }

    #[test]
    fn encoder_refuses_over_limit_bodies() {
        let mut codec = FrameCodec::new(2);
        let mut buf = BytesMut::new();
        assert!(codec.encode(Bytes::from_static(b"abc"), &mut buf).is_err());
    }
}
