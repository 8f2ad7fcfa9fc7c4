//! Sealed peer frames: every frame after the handshake's `Challenge`
//! carries a MAC that binds it to the authenticated session, to its
//! direction and to its place in the stream. Pure: no sockets, no actors.
//!
//! ## Format
//!
//! ```text
//! +------------+------------------------------+-------------------+
//! | L: u32 BE  | L - 16 bytes: one MessagePack | tag: 16 bytes     |
//! |            | peer frame                   |                   |
//! +------------+------------------------------+-------------------+
//! tag = GMAC(session key of this direction, nonce = 0u32 || seq: u64 BE, body)
//! ```
//!
//! `seq` is never sent: each side counts the frames of each direction from
//! 0 (the handshake's `Proof` and `Welcome` are frame 0 of their
//! direction), and TCP delivers them in order. So a frame injected into
//! the stream, altered, dropped, reordered or replayed (from this
//! connection, another one, or the other direction, which has its own key)
//! fails its tag, and the link is closed.
//!
//! The tag is GMAC: AES-256-GCM (`ring`) over an empty plaintext with the
//! frame as its associated data, a full 128-bit tag (NIST SP 800-38D). A
//! forger must guess 128 bits per frame, and one wrong guess closes the
//! link. GMAC is safe only while no nonce repeats under one key: the nonce
//! is the frame's sequence number, which never wraps
//! ([`SealError::SequenceExhausted`]), and each direction of each session
//! has its own key (the handshake derives it from both sides' fresh
//! nonces), so no (key, nonce) pair is ever used twice. Session 33
//! replaced HMAC-SHA256-128 with it (peer protocol version 5): a tag costs
//! half as much (benches/README.md, "Session 33"); a version 4 node and a
//! version 5 node refuse each other at the handshake.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, NONCE_LEN};

/// Bytes of the tag appended to every sealed frame.
pub const TAG_BYTES: usize = 16;

/// Bytes of a session key (an HMAC-SHA256 output, an AES-256 key).
pub const SESSION_KEY_BYTES: usize = 32;

/// Why a sealed frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The frame is shorter than a tag.
    #[error("sealed frame of {len} bytes is shorter than its {TAG_BYTES}-byte tag")]
    Short {
        /// The frame's length, in bytes.
        len: usize,
    },
    /// The tag does not verify: the frame was altered, injected, replayed
    /// or reordered, or the sender holds another key.
    #[error("frame {seq} of the session fails its MAC check")]
    BadTag {
        /// The frame's expected sequence number.
        seq: u64,
    },
    /// 2^64 frames in one direction: the session must end (never reached
    /// in practice; a wrapped counter would let old tags verify again).
    #[error("the session's frame counter is exhausted")]
    SequenceExhausted,
}

/// Seals the frames of one direction of a session.
#[derive(Clone)]
pub struct FrameSealer {
    /// AES-256-GCM keyed with the direction's session key.
    key: LessSafeKey,
    /// The next frame's sequence number.
    next: u64,
}

/// Opens (verifies) the frames of one direction of a session.
#[derive(Clone)]
pub struct FrameOpener {
    /// AES-256-GCM keyed with the direction's session key.
    key: LessSafeKey,
    /// The sequence number the next frame must carry.
    next: u64,
}

/// The nonce of frame `seq`: four zero bytes, then `seq` big-endian.
fn nonce(seq: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[NONCE_LEN - 8..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn keyed(key: &[u8; SESSION_KEY_BYTES]) -> LessSafeKey {
    // A 32-byte key is what AES-256 takes; this never fails.
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key")),
    )
}

impl FrameSealer {
    /// A sealer for a direction whose session key is `key`, starting at
    /// frame 0.
    pub fn new(key: &[u8; SESSION_KEY_BYTES]) -> Self {
        Self {
            key: keyed(key),
            next: 0,
        }
    }

    /// Appends the next frame's tag to `body` and counts the frame. Call
    /// it only for a frame that will be written: a sealed frame that is
    /// not sent leaves a gap the other side reads as tampering.
    pub fn seal(&mut self, mut body: Vec<u8>) -> Result<Vec<u8>, SealError> {
        let seq = self.next;
        self.next = seq.checked_add(1).ok_or(SealError::SequenceExhausted)?;
        // An empty plaintext: sealing only fails for one longer than GCM's
        // limit (64 GiB).
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(seq), Aad::from(&body), &mut [])
            .unwrap_or_else(|_| unreachable!("an empty plaintext is within GCM's limit"));
        body.extend_from_slice(tag.as_ref());
        Ok(body)
    }
}

impl FrameOpener {
    /// An opener for a direction whose session key is `key`, expecting
    /// frame 0 first.
    pub fn new(key: &[u8; SESSION_KEY_BYTES]) -> Self {
        Self {
            key: keyed(key),
            next: 0,
        }
    }

    /// Checks `frame`'s tag (in constant time) as the next frame of the
    /// direction and answers its body. A refused frame does not count: the
    /// caller closes the link.
    pub fn open<'a>(&mut self, frame: &'a [u8]) -> Result<&'a [u8], SealError> {
        let (body, given) = split_tag(frame)?;
        let seq = self.next;
        let given = Tag::try_from(given).map_err(|_| SealError::BadTag { seq })?;
        // ring compares the tags in constant time.
        self.key
            .open_in_place_separate_tag(nonce(seq), Aad::from(body), given, &mut [], 0..)
            .map_err(|_| SealError::BadTag { seq })?;
        self.next = seq.checked_add(1).ok_or(SealError::SequenceExhausted)?;
        Ok(body)
    }
}

/// Splits a sealed frame into its body and its tag, unverified (the
/// handshake reads a `Proof` before it checks the frame's tag).
pub fn split_tag(frame: &[u8]) -> Result<(&[u8], &[u8]), SealError> {
    let at = frame
        .len()
        .checked_sub(TAG_BYTES)
        .ok_or(SealError::Short { len: frame.len() })?;
    Ok(frame.split_at(at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair() -> (FrameSealer, FrameOpener) {
        let key = [7u8; SESSION_KEY_BYTES];
        (FrameSealer::new(&key), FrameOpener::new(&key))
    }

    #[test]
    fn sealed_frames_open_in_order() {
        let (mut sealer, mut opener) = pair();
        for body in [&b"first"[..], b"", b"third frame"] {
            let sealed = sealer.seal(body.to_vec()).unwrap();
            assert_eq!(sealed.len(), body.len() + TAG_BYTES);
            assert_eq!(opener.open(&sealed).unwrap(), body);
        }
    }

    #[test]
    fn a_tampered_frame_is_refused() {
        let (mut sealer, opener) = pair();
        let sealed = sealer.seal(b"put k v".to_vec()).unwrap();
        // Every single-bit flip, in the body and in the tag.
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[byte] ^= 1 << bit;
                let mut opener = opener.clone();
                assert_eq!(opener.open(&bad), Err(SealError::BadTag { seq: 0 }));
            }
        }
        // Truncated or extended.
        let mut o = opener.clone();
        assert!(o.open(&sealed[..sealed.len() - 1]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(o.open(&longer).is_err());
        assert_eq!(o.open(&[1, 2, 3]), Err(SealError::Short { len: 3 }));
        // The untouched frame still opens (nothing above advanced it).
        assert!(o.open(&sealed).is_ok());
    }

    #[test]
    fn a_replayed_frame_is_refused() {
        let (mut sealer, mut opener) = pair();
        let first = sealer.seal(b"write".to_vec()).unwrap();
        assert!(opener.open(&first).is_ok());
        assert_eq!(opener.open(&first), Err(SealError::BadTag { seq: 1 }));
    }

    #[test]
    fn reordered_or_dropped_frames_are_refused() {
        let (mut sealer, opener) = pair();
        let a = sealer.seal(b"a".to_vec()).unwrap();
        let b = sealer.seal(b"b".to_vec()).unwrap();
        let mut swapped = opener.clone();
        assert_eq!(swapped.open(&b), Err(SealError::BadTag { seq: 0 }));
        let mut in_order = opener;
        assert!(in_order.open(&a).is_ok());
        assert!(in_order.open(&b).is_ok());
    }

    #[test]
    fn another_key_or_direction_does_not_open() {
        let mut sealer = FrameSealer::new(&[1u8; SESSION_KEY_BYTES]);
        let mut opener = FrameOpener::new(&[2u8; SESSION_KEY_BYTES]);
        let sealed = sealer.seal(b"x".to_vec()).unwrap();
        assert_eq!(opener.open(&sealed), Err(SealError::BadTag { seq: 0 }));
    }

    /// Pins the tag: a change here is a new `PEER_PROTOCOL_VERSION`.
    #[test]
    fn golden_tag() {
        let mut sealer = FrameSealer::new(&[7u8; SESSION_KEY_BYTES]);
        let sealed = sealer.seal(b"ringkv".to_vec()).unwrap();
        let tag: String = sealed[6..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(tag, GOLDEN_TAG);
    }

    /// AES-256-GCM(key = 32 x 0x07, nonce = 12 zero bytes, plaintext
    /// empty, associated data "ringkv"): its tag, computed outside this
    /// code (Python's `cryptography`:
    /// `AESGCM(bytes([7] * 32)).encrypt(bytes(12), b"", b"ringkv")`).
    const GOLDEN_TAG: &str = "b6050207fc1e3cee5f4354b8be437766";
}
