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

/// Appends an array header in its shortest form (as rmp-serde does).
pub fn put_array_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(ARRAY16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(ARRAY32);
        out.extend_from_slice(&u32_len(len).to_be_bytes());
    }
}

/// Appends a map header in its shortest form.
pub fn put_map_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(MAP16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(MAP32);
        out.extend_from_slice(&u32_len(len).to_be_bytes());
    }
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
    let len = text.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[STR8, len]);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(STR16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(STR32);
        out.extend_from_slice(&u32_len(len).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

/// Appends a byte string (`bin`) in its shortest form.
pub fn put_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[BIN8, len]);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(BIN16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(BIN32);
        out.extend_from_slice(&u32_len(len).to_be_bytes());
    }
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

    pub fn array_len(&mut self) -> Result<usize, MsgpackError> {
        match self.marker()? {
            m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            ARRAY16 => self.len::<2>(),
            ARRAY32 => self.len::<4>(),
            m => Err(unexpected("an array", m)),
        }
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
        let len = match self.marker()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            STR8 => self.len::<1>()?,
            STR16 => self.len::<2>()?,
            STR32 => self.len::<4>()?,
            m => return Err(unexpected("a string", m)),
        };
        self.take(len)
    }

    pub fn bin_or_nil(&mut self) -> Result<Option<&'a [u8]>, MsgpackError> {
        let len = match self.marker()? {
            NIL => return Ok(None),
            BIN8 => self.len::<1>()?,
            BIN16 => self.len::<2>()?,
            BIN32 => self.len::<4>()?,
            m => return Err(unexpected("bytes or nil", m)),
        };
        self.take(len).map(Some)
    }

    /// A map header: the number of key-value pairs.
    pub fn map_len(&mut self) -> Result<usize, MsgpackError> {
        match self.marker()? {
            m @ 0x80..=0x8f => Ok(usize::from(m & 0x0f)),
            MAP16 => self.len::<2>(),
            MAP32 => self.len::<4>(),
            m => Err(unexpected("a map", m)),
        }
    }
}

fn unexpected(wanted: &str, marker: u8) -> MsgpackError {
    bad(format!("{wanted} expected, found marker {marker:#04x}"))
}
