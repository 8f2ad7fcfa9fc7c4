//! MessagePack by hand, for the few forms on every request's path (an
//! object, a clock, the hottest peer frames): writers that emit the
//! shortest form of each value, as rmp-serde does, and a reader over a
//! byte slice that checks every marker and length, so that any input gives
//! a value or an error, never a panic. Markers are the specification's
//! (https://github.com/msgpack/msgpack/blob/master/spec.md).

use std::fmt;

/// Why bytes are not the MessagePack value expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgpackError(String);

impl fmt::Display for MsgpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MsgpackError {}

fn bad(reason: impl Into<String>) -> MsgpackError {
    MsgpackError(reason.into())
}

pub const NIL: u8 = 0xc0;
pub const TRUE: u8 = 0xc3;
pub const BIN8: u8 = 0xc4;
pub const BIN16: u8 = 0xc5;
pub const BIN32: u8 = 0xc6;
pub const UINT8: u8 = 0xcc;
pub const UINT16: u8 = 0xcd;
pub const UINT32: u8 = 0xce;
pub const UINT64: u8 = 0xcf;
pub const STR8: u8 = 0xd9;
pub const STR16: u8 = 0xda;
pub const STR32: u8 = 0xdb;
pub const ARRAY16: u8 = 0xdc;
pub const ARRAY32: u8 = 0xdd;
pub const MAP16: u8 = 0xde;
pub const MAP32: u8 = 0xdf;

/// How a type's length is written: a fixed form holding the length in
/// the marker (base marker, lengths below the limit) where the type has
/// one, then its 8-bit (where it has one), 16-bit and 32-bit forms.
struct Lengths {
    what: &'static str,
    fixed: Option<(u8, usize)>,
    len8: Option<u8>,
    len16: u8,
    len32: u8,
}

const ARRAY: Lengths = Lengths {
    what: "an array",
    fixed: Some((0x90, 16)),
    len8: None,
    len16: ARRAY16,
    len32: ARRAY32,
};
const MAP: Lengths = Lengths {
    what: "a map",
    fixed: Some((0x80, 16)),
    len8: None,
    len16: MAP16,
    len32: MAP32,
};
const STR: Lengths = Lengths {
    what: "a string",
    fixed: Some((0xa0, 32)),
    len8: Some(STR8),
    len16: STR16,
    len32: STR32,
};
const BIN: Lengths = Lengths {
    what: "bytes or nil",
    fixed: None,
    len8: Some(BIN8),
    len16: BIN16,
    len32: BIN32,
};

/// Appends a length header of `kind` in its shortest form (as rmp-serde
/// does).
fn put_len(out: &mut Vec<u8>, kind: &Lengths, len: usize) {
    match (kind.fixed, kind.len8, u8::try_from(len), u16::try_from(len)) {
        (Some((base, limit)), _, Ok(short), _) if len < limit => out.push(base | short),
        (_, Some(marker), Ok(short), _) => out.extend_from_slice(&[marker, short]),
        (_, _, _, Ok(medium)) => {
            out.push(kind.len16);
            out.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            out.push(kind.len32);
            out.extend_from_slice(&u32_len(len).to_be_bytes());
        }
    }
}

/// Appends an array header in its shortest form.
pub fn put_array_len(out: &mut Vec<u8>, len: usize) {
    put_len(out, &ARRAY, len);
}

/// Appends a map header in its shortest form.
pub fn put_map_len(out: &mut Vec<u8>, len: usize) {
    put_len(out, &MAP, len);
}

/// Appends an unsigned integer in its shortest form.
pub fn put_uint(out: &mut Vec<u8>, value: u64) {
    if value < 128 {
        out.push(value as u8);
    } else if let Ok(value) = u8::try_from(value) {
        out.extend_from_slice(&[UINT8, value]);
    } else if let Ok(value) = u16::try_from(value) {
        out.push(UINT16);
        out.extend_from_slice(&value.to_be_bytes());
    } else if let Ok(value) = u32::try_from(value) {
        out.push(UINT32);
        out.extend_from_slice(&value.to_be_bytes());
    } else {
        out.push(UINT64);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a string in its shortest form.
pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, &STR, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// Appends a byte string (`bin`) in its shortest form.
pub fn put_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, &BIN, bytes.len());
    out.extend_from_slice(bytes);
}

/// A length MessagePack can carry. What is written this way (objects,
/// frames) is bounded far below 4 GiB (`object_bytes_max`,
/// `max_frame_bytes`), so a longer one is a bug here, not bad input.
fn u32_len(len: usize) -> u32 {
    match u32::try_from(len) {
        Ok(len) => len,
        Err(_) => unreachable!("a versioning field of {len} bytes"),
    }
}

/// Reads MessagePack values off a byte slice; every read checks the
/// marker and the bytes left, so any input gives a value or an error.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.bytes.len()
    }

    /// Refuses bytes after the value.
    pub fn finish(&self) -> Result<(), MsgpackError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(bad(format!("{n} trailing bytes"))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        if n > self.bytes.len() {
            return Err(bad(format!(
                "truncated: {n} bytes wanted, {} left",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn marker(&mut self) -> Result<u8, MsgpackError> {
        let (&first, rest) = self.bytes.split_first().ok_or_else(|| bad("truncated"))?;
        self.bytes = rest;
        Ok(first)
    }

    /// A big-endian unsigned integer of `N` bytes.
    fn be<const N: usize>(&mut self) -> Result<u64, MsgpackError> {
        let mut value = 0u64;
        for &byte in self.take(N)? {
            value = value << 8 | u64::from(byte);
        }
        Ok(value)
    }

    /// A length of `N` bytes, as an index.
    fn len<const N: usize>(&mut self) -> Result<usize, MsgpackError> {
        usize::try_from(self.be::<N>()?).map_err(|_| bad("a length beyond this machine"))
    }

    /// The length a header of `kind` after `marker` gives, in any of the
    /// type's forms.
    fn len_after(&mut self, kind: &Lengths, marker: u8) -> Result<usize, MsgpackError> {
        let fixed = kind.fixed.and_then(|(base, limit)| {
            marker
                .checked_sub(base)
                .map(usize::from)
                .filter(|&len| len < limit)
        });
        if let Some(len) = fixed {
            Ok(len)
        } else if kind.len8 == Some(marker) {
            self.len::<1>()
        } else if marker == kind.len16 {
            self.len::<2>()
        } else if marker == kind.len32 {
            self.len::<4>()
        } else {
            Err(unexpected(kind.what, marker))
        }
    }

    /// An array header: the number of elements.
    pub fn array_len(&mut self) -> Result<usize, MsgpackError> {
        let marker = self.marker()?;
        self.len_after(&ARRAY, marker)
    }

    pub fn uint(&mut self) -> Result<u64, MsgpackError> {
        let marker = self.marker()?;
        self.uint_after(marker)
    }

    fn uint_after(&mut self, marker: u8) -> Result<u64, MsgpackError> {
        match marker {
            m @ 0x00..=0x7f => Ok(u64::from(m)),
            UINT8 => self.be::<1>(),
            UINT16 => self.be::<2>(),
            UINT32 => self.be::<4>(),
            UINT64 => self.be::<8>(),
            m => Err(unexpected("an unsigned integer", m)),
        }
    }

    pub fn uint_or_nil(&mut self) -> Result<Option<u64>, MsgpackError> {
        match self.marker()? {
            NIL => Ok(None),
            m => self.uint_after(m).map(Some),
        }
    }

    pub fn str(&mut self) -> Result<&'a str, MsgpackError> {
        std::str::from_utf8(self.str_bytes()?).map_err(|e| bad(format!("a string: {e}")))
    }

    /// A string's bytes, not checked for UTF-8 (to compare with a name).
    pub fn str_bytes(&mut self) -> Result<&'a [u8], MsgpackError> {
        let marker = self.marker()?;
        let len = self.len_after(&STR, marker)?;
        self.take(len)
    }

    /// A byte string (`bin`), or `nil`.
    pub fn bin_or_nil(&mut self) -> Result<Option<&'a [u8]>, MsgpackError> {
        match self.marker()? {
            NIL => Ok(None),
            marker => {
                let len = self.len_after(&BIN, marker)?;
                self.take(len).map(Some)
            }
        }
    }

    /// A map header: the number of key-value pairs.
    pub fn map_len(&mut self) -> Result<usize, MsgpackError> {
        let marker = self.marker()?;
        self.len_after(&MAP, marker)
    }
}

fn unexpected(wanted: &str, marker: u8) -> MsgpackError {
    bad(format!("{wanted} expected, found marker {marker:#04x}"))
}

/// Damaged copies of encoded bytes, for the tests that check a hand-written
/// reader against serde's (`encoding_tests.rs`, `peer_fast_tests.rs`).
#[cfg(test)]
pub(crate) mod damage {
    use proptest::prelude::*;

    /// One damage: `bytes` with a byte changed, cut short, a byte added,
    /// or a bit flipped.
    #[derive(Clone, Debug)]
    pub struct Damage {
        at: prop::sample::Index,
        byte: u8,
        how: u8,
    }

    /// Any [`Damage`].
    pub fn any_damage() -> impl Strategy<Value = Damage> {
        (any::<prop::sample::Index>(), any::<u8>(), 0u8..4).prop_map(|(at, byte, how)| Damage {
            at,
            byte,
            how,
        })
    }

    impl Damage {
        /// `bytes` (not empty) with this damage done.
        pub fn to(&self, mut bytes: Vec<u8>) -> Vec<u8> {
            let i = self.at.index(bytes.len());
            match self.how {
                0 => bytes[i] = self.byte,
                1 => bytes.truncate(i),
                2 => bytes.insert(i, self.byte),
                _ => bytes[i] ^= 1 << (self.byte % 8),
            }
            bytes
        }
    }

    /// Every cut of `bytes`, and every single-byte change.
    pub fn every_damage(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut damaged: Vec<Vec<u8>> = (0..bytes.len()).map(|i| bytes[..i].to_vec()).collect();
        for i in 0..bytes.len() {
            for byte in 0..=u8::MAX {
                let mut changed = bytes.to_vec();
                changed[i] = byte;
                damaged.push(changed);
            }
        }
        damaged
    }
}
