//! Byte forms: an [`Object`] (the storage value and the replica wire form) and
//! a [`VersionVector`] (the clock inside the client context; the context
//! itself, with its format byte and MAC, is `context.rs`).
//!
//! An object is one format-version byte ([`FORMAT_VERSION`]) followed by one
//! MessagePack value in rmp-serde's compact form (arrays, no field names):
//! - clock: `[[node, counter, updated_ms], ...]`, entries sorted by node;
//! - object: `[clock, [[node, counter, value | nil, written_ms], ...]]`,
//!   siblings sorted by dot, `value` a `bin` and `nil` for a tombstone.
//!
//! An object with an expiring value (a put with `ttl_ms`) is written in
//! format [`FORMAT_VERSION_EXPIRY`] instead, whose siblings have a fifth
//! element: `[node, counter, value | nil, written_ms, expires_ms | nil]`.
//! Objects without one keep format 1, byte for byte, so stores and peers
//! that never see a TTL see no change.
//!
//! Decoding is total: any input gives an object or a [`VersionError`], never a
//! panic, and the result satisfies the object invariant (node ids valid,
//! entries sorted and distinct with counters >= 1, siblings sorted by
//! distinct dots each covered by the clock, no trailing bytes). The golden
//! tests in `encoding_tests.rs` pin both forms.
//!
//! Both directions are written by hand over the MessagePack markers rather
//! than through serde: an object is encoded and decoded on every write
//! (the read-modify-write, and each replica's merge) and on every read, and
//! the serde path cost 2-4% of a request's CPU, most of it in allocations
//! (each node name was copied into a `String`, then into its `NodeId`). The
//! decoder allocates each clock entry's name once and shares it with the
//! siblings whose dots name it. It reads every integer width MessagePack
//! has but, for strings, values and arrays, only the markers MessagePack
//! defines for them: what rmp-serde writes, and so every object stored or
//! sent by earlier versions. A test checks it against rmp-serde's
//! encoder and decoder (`codec_tests.rs`).

use super::clock::{ClockEntry, Dot, VersionVector};
use super::object::{Object, Sibling, VersionError};
use crate::wire::msgpack::{put_array_len, put_bin, put_str, put_uint, MsgpackError, Reader, NIL};
use crate::NodeId;

/// The format-version marker, the first byte of an object. Bump it (and
/// keep reading the old one) when the layout changes. (Client contexts have
/// their own, `CONTEXT_FORMAT_VERSION`.)
pub const FORMAT_VERSION: u8 = 1;

/// The format-version marker of an object with an expiry on some sibling.
pub const FORMAT_VERSION_EXPIRY: u8 = 2;

/// Bytes an encoded clock entry takes beyond its node id, at most: the
/// array marker, the string's header (a version actor is under 256 bytes:
/// `str8`, 2), two `uint64`s (9 each). With the ids' lengths it sizes the
/// output buffer once.
const CLOCK_ENTRY_OVERHEAD_BYTES_MAX: usize = 21;

/// Bytes an encoded sibling takes beyond its node id and value, at most:
/// the array marker, the string's header (2), the counter (9), the value's
/// `bin32` header (5), the write time (9) and the expiry (9).
const SIBLING_OVERHEAD_BYTES_MAX: usize = 35;

/// Bytes an encoded object takes besides its clock and its siblings, at
/// most: the format byte, the outer array's marker and the siblings'
/// `array32` header (5).
const OBJECT_OVERHEAD_BYTES_MAX: usize = 7;

/// The fewest bytes an encoded clock entry takes (array marker, a one-byte
/// string, two one-byte integers): bounds the capacity reserved for a
/// length read from untrusted input.
const CLOCK_ENTRY_BYTES_MIN: usize = 4;

/// The fewest bytes an encoded sibling takes (array marker, a one-byte
/// string, a one-byte integer, `nil`, a one-byte integer).
const SIBLING_BYTES_MIN: usize = 5;

impl VersionVector {
    /// The most bytes the encoded clock takes (to size a buffer once): its
    /// `array32` header and its entries.
    pub(super) fn encoded_len_max(&self) -> usize {
        5 + self
            .iter()
            .map(|(node, _)| node.as_str().len() + CLOCK_ENTRY_OVERHEAD_BYTES_MAX)
            .sum::<usize>()
    }

    /// Appends the clock's MessagePack form (no format byte) to `out`:
    /// `[[node, counter, updated_ms], ...]`.
    pub(super) fn encode_clock(&self, out: &mut Vec<u8>) {
        put_array_len(out, self.len());
        for (node, entry) in self.iter() {
            put_array_len(out, 3);
            put_str(out, node.as_str());
            put_uint(out, entry.counter);
            put_uint(out, entry.updated_ms);
        }
    }

    /// The clock's MessagePack form alone (tests pin and corrupt it).
    #[cfg(test)]
    pub(super) fn encode_clock_for_tests(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_clock(&mut out);
        out
    }

    /// Reads a clock written by [`Self::encode_clock`]; refuses anything it
    /// would not have produced from a valid clock (trailing bytes included).
    pub(super) fn decode_clock(body: &[u8]) -> Result<VersionVector, VersionError> {
        let mut reader = Reader::new(body);
        let entries = read_clock(&mut reader)?;
        reader.finish()?;
        Ok(VersionVector::from_sorted(entries))
    }

    /// [`Self::decode_clock`], opened to the fuzz targets (feature
    /// `fuzzing`): behind a context's MAC the fuzzer could not reach it.
    #[cfg(feature = "fuzzing")]
    pub fn decode_clock_for_fuzzing(body: &[u8]) -> Result<VersionVector, VersionError> {
        Self::decode_clock(body)
    }
}

impl Object {
    /// The most bytes [`Object::encode`] writes (to size its buffer once).
    pub(super) fn encoded_len_max(&self) -> usize {
        OBJECT_OVERHEAD_BYTES_MAX
            + self.clock.encoded_len_max()
            + self
                .siblings
                .iter()
                .map(|s| {
                    s.dot.node.as_str().len()
                        + s.value.as_ref().map_or(0, Vec::len)
                        + SIBLING_OVERHEAD_BYTES_MAX
                })
                .sum::<usize>()
    }

    /// The stored and replicated form: [`FORMAT_VERSION`], then
    /// `[clock, siblings]` (format 2, [`FORMAT_VERSION_EXPIRY`], when a
    /// sibling expires: each sibling then has a fifth element).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_max());
        let expiry = self.has_expiry();
        out.push(if expiry {
            FORMAT_VERSION_EXPIRY
        } else {
            FORMAT_VERSION
        });
        put_array_len(&mut out, 2);
        self.clock.encode_clock(&mut out);
        put_array_len(&mut out, self.siblings.len());
        for sibling in &self.siblings {
            put_array_len(&mut out, if expiry { 5 } else { 4 });
            put_str(&mut out, sibling.dot.node.as_str());
            put_uint(&mut out, sibling.dot.counter);
            match &sibling.value {
                Some(value) => put_bin(&mut out, value),
                None => out.push(NIL),
            }
            put_uint(&mut out, sibling.written_ms);
            if expiry {
                match sibling.expires_ms {
                    Some(at) => put_uint(&mut out, at),
                    None => out.push(NIL),
                }
            }
        }
        out
    }

    /// Reads a stored or replicated object, checking the object invariant.
    pub fn decode(bytes: &[u8]) -> Result<Object, VersionError> {
        let (expiry, body) = match bytes.split_first() {
            Some((&FORMAT_VERSION_EXPIRY, rest)) => (true, rest),
            _ => (false, body(bytes)?),
        };
        let mut reader = Reader::new(body);
        if reader.array_len()? != 2 {
            return Err(bad("an object is not [clock, siblings]"));
        }
        let clock = read_clock(&mut reader)?;
        let count = reader.array_len()?;
        let mut siblings = Vec::with_capacity(count.min(reader.left() / SIBLING_BYTES_MIN));
        for _ in 0..count {
            let fields = reader.array_len()?;
            if fields != if expiry { 5 } else { 4 } {
                return Err(bad(format!("a sibling of {fields} fields")));
            }
            let node = reader.str()?;
            let counter = reader.uint()?;
            // A dot covered by the clock names one of its entries: that
            // entry's name is shared rather than allocated again.
            let node = match clock.binary_search_by(|(n, _)| n.as_str().cmp(node)) {
                Ok(at) => clock[at].0.clone(),
                Err(_) => NodeId::parse_version_actor(node).map_err(bad)?,
            };
            if counter == 0 {
                return Err(bad(format!("counter 0 for node {node}")));
            }
            let value = reader.bin_or_nil()?.map(<[u8]>::to_vec);
            let written_ms = reader.uint()?;
            let expires_ms = if expiry { reader.uint_or_nil()? } else { None };
            siblings.push(Sibling {
                dot: Dot { node, counter },
                value,
                written_ms,
                expires_ms,
            });
        }
        reader.finish()?;
        if expiry && !siblings.iter().any(|s| s.expires_ms.is_some()) {
            // Format 2 only ever carries an expiry: one without would not
            // re-encode to the same bytes.
            return Err(bad("format 2 object without an expiry"));
        }
        Object::from_parts(VersionVector::from_sorted(clock), siblings)
    }
}

/// Checks the format-version byte and returns what follows it.
fn body(bytes: &[u8]) -> Result<&[u8], VersionError> {
    match bytes.split_first() {
        None => Err(bad("empty input")),
        Some((&FORMAT_VERSION, rest)) => Ok(rest),
        Some((&got, _)) => Err(VersionError::UnsupportedVersion { got }),
    }
}

/// A clock's entries, checked: valid names, sorted and distinct, counters
/// of at least 1 (counter 0 names no write).
fn read_clock(reader: &mut Reader<'_>) -> Result<Vec<(NodeId, ClockEntry)>, VersionError> {
    let count = reader.array_len()?;
    let mut checked: Vec<(NodeId, ClockEntry)> =
        Vec::with_capacity(count.min(reader.left() / CLOCK_ENTRY_BYTES_MIN));
    for _ in 0..count {
        if reader.array_len()? != 3 {
            return Err(bad("a clock entry is not [node, counter, updated_ms]"));
        }
        let node = NodeId::parse_version_actor(reader.str()?).map_err(bad)?;
        let counter = reader.uint()?;
        let updated_ms = reader.uint()?;
        if counter == 0 {
            return Err(bad(format!("counter 0 for node {node}")));
        }
        if checked
            .last()
            .is_some_and(|(previous, _)| previous >= &node)
        {
            return Err(bad(format!(
                "clock entries not sorted and distinct at {node}"
            )));
        }
        checked.push((
            node,
            ClockEntry {
                counter,
                updated_ms,
            },
        ));
    }
    Ok(checked)
}

pub(super) fn bad(reason: impl Into<String>) -> VersionError {
    VersionError::BadEncoding {
        reason: reason.into(),
    }
}

impl From<MsgpackError> for VersionError {
    fn from(error: MsgpackError) -> Self {
        bad(error.to_string())
    }
}
