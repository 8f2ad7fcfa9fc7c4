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
//! tests at the bottom pin both forms.

use std::io::Cursor;

use serde::{de::DeserializeOwned, Deserialize, Serialize, Serializer};

use super::clock::{ClockEntry, Dot, VersionVector};
use super::object::{Object, Sibling, VersionError};
use crate::NodeId;

/// The format-version marker, the first byte of an object. Bump it (and
/// keep reading the old one) when the layout changes. (Client contexts have
/// their own, `CONTEXT_FORMAT_VERSION`.)
pub const FORMAT_VERSION: u8 = 1;

/// The format-version marker of an object with an expiry on some sibling.
pub const FORMAT_VERSION_EXPIRY: u8 = 2;

/// Bytes an encoded clock entry usually takes beyond its node id, to size the
/// output buffer once.
const ENTRY_OVERHEAD_BYTES: usize = 20;

/// A clock entry on the wire.
#[derive(Serialize, Deserialize)]
struct WireEntry<N>(N, u64, u64);

/// A sibling on its way out: node, counter, value (`bin`, or `nil` for a
/// tombstone), written_ms.
#[derive(Serialize)]
struct WireSiblingOut<'a>(
    &'a str,
    u64,
    #[serde(with = "serde_bytes")] Option<&'a [u8]>,
    u64,
);

/// A sibling on its way in; same layout as [`WireSiblingOut`].
#[derive(Deserialize)]
struct WireSiblingIn(
    String,
    u64,
    #[serde(with = "serde_bytes")] Option<Vec<u8>>,
    u64,
);

/// A sibling of format 2 on its way out: format 1's, then expires_ms.
#[derive(Serialize)]
struct WireSiblingOutExpiry<'a>(
    &'a str,
    u64,
    #[serde(with = "serde_bytes")] Option<&'a [u8]>,
    u64,
    Option<u64>,
);

/// A sibling of format 2 on its way in.
#[derive(Deserialize)]
struct WireSiblingInExpiry(
    String,
    u64,
    #[serde(with = "serde_bytes")] Option<Vec<u8>>,
    u64,
    Option<u64>,
);

/// Serializes a clock as a sequence without building a `Vec` first.
struct ClockOut<'a>(&'a VersionVector);

impl Serialize for ClockOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|(node, entry)| WireEntry(node.as_str(), entry.counter, entry.updated_ms)),
        )
    }
}

/// Serializes siblings as a sequence without building a `Vec` first.
struct SiblingsOut<'a>(&'a [Sibling]);

impl Serialize for SiblingsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|sibling| {
            WireSiblingOut(
                sibling.dot.node.as_str(),
                sibling.dot.counter,
                sibling.value.as_deref(),
                sibling.written_ms,
            )
        }))
    }
}

/// Serializes siblings in format 2 (with expiry).
struct SiblingsOutExpiry<'a>(&'a [Sibling]);

impl Serialize for SiblingsOutExpiry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|sibling| {
            WireSiblingOutExpiry(
                sibling.dot.node.as_str(),
                sibling.dot.counter,
                sibling.value.as_deref(),
                sibling.written_ms,
                sibling.expires_ms,
            )
        }))
    }
}

type WireClockIn = Vec<WireEntry<String>>;
type WireObjectIn = (WireClockIn, Vec<WireSiblingIn>);
type WireObjectInExpiry = (WireClockIn, Vec<WireSiblingInExpiry>);

impl VersionVector {
    /// About the bytes the encoded clock takes (to size a buffer once).
    pub(super) fn encoded_len_hint(&self) -> usize {
        self.len() * ENTRY_OVERHEAD_BYTES
    }

    /// Appends the clock's MessagePack form (no format byte) to `out`.
    pub(super) fn encode_clock(&self, out: &mut Vec<u8>) {
        write_msgpack(out, &ClockOut(self));
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
        clock_from_wire(read_msgpack(body)?)
    }

    /// [`Self::decode_clock`], opened to the fuzz targets (feature
    /// `fuzzing`): behind a context's MAC the fuzzer could not reach it.
    #[cfg(feature = "fuzzing")]
    pub fn decode_clock_for_fuzzing(body: &[u8]) -> Result<VersionVector, VersionError> {
        Self::decode_clock(body)
    }
}

impl Object {
    /// The stored and replicated form: [`FORMAT_VERSION`], then
    /// `[clock, siblings]`.
    pub fn encode(&self) -> Vec<u8> {
        let values: usize = self
            .siblings
            .iter()
            .map(|s| s.value.as_ref().map_or(0, Vec::len))
            .sum();
        let entries = self.clock.len() + self.siblings.len();
        let mut out = Vec::with_capacity(1 + values + entries * ENTRY_OVERHEAD_BYTES);
        if self.has_expiry() {
            out.push(FORMAT_VERSION_EXPIRY);
            write_msgpack(
                &mut out,
                &(ClockOut(&self.clock), SiblingsOutExpiry(&self.siblings)),
            );
        } else {
            out.push(FORMAT_VERSION);
            write_msgpack(
                &mut out,
                &(ClockOut(&self.clock), SiblingsOut(&self.siblings)),
            );
        }
        out
    }

    /// Reads a stored or replicated object, checking the object invariant.
    pub fn decode(bytes: &[u8]) -> Result<Object, VersionError> {
        let (clock, siblings) = match bytes.split_first() {
            Some((&FORMAT_VERSION_EXPIRY, body)) => {
                let (clock, siblings): WireObjectInExpiry = read_msgpack(body)?;
                let siblings = siblings
                    .into_iter()
                    .map(
                        |WireSiblingInExpiry(node, counter, value, written_ms, expires_ms)| {
                            Ok(Sibling {
                                dot: dot(node, counter)?,
                                value,
                                written_ms,
                                expires_ms,
                            })
                        },
                    )
                    .collect::<Result<Vec<_>, VersionError>>()?;
                if !siblings.iter().any(|s| s.expires_ms.is_some()) {
                    // Format 2 only ever carries an expiry: one without
                    // would not re-encode to the same bytes.
                    return Err(bad("format 2 object without an expiry"));
                }
                (clock, siblings)
            }
            _ => {
                let (clock, siblings): WireObjectIn = read_msgpack(body(bytes)?)?;
                let siblings = siblings
                    .into_iter()
                    .map(|WireSiblingIn(node, counter, value, written_ms)| {
                        Ok(Sibling {
                            dot: dot(node, counter)?,
                            value,
                            written_ms,
                            expires_ms: None,
                        })
                    })
                    .collect::<Result<Vec<_>, VersionError>>()?;
                (clock, siblings)
            }
        };
        Object::from_parts(clock_from_wire(clock)?, siblings)
    }
}

fn write_msgpack<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    if let Err(error) = rmp_serde::encode::write(out, value) {
        // Writing plain data into a Vec has no failure path; reaching this is
        // a bug in this module, not bad input.
        unreachable!("encoding versioning data into memory failed: {error}");
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

fn read_msgpack<T: DeserializeOwned>(body: &[u8]) -> Result<T, VersionError> {
    let mut deserializer = rmp_serde::Deserializer::new(Cursor::new(body));
    let value = T::deserialize(&mut deserializer).map_err(|error| bad(error.to_string()))?;
    let read = deserializer.position();
    if read != body.len() as u64 {
        return Err(bad(format!("{} trailing bytes", body.len() as u64 - read)));
    }
    Ok(value)
}

fn clock_from_wire(entries: WireClockIn) -> Result<VersionVector, VersionError> {
    let mut checked: Vec<(NodeId, ClockEntry)> = Vec::with_capacity(entries.len());
    for WireEntry(node, counter, updated_ms) in entries {
        let Dot { node, counter } = dot(node, counter)?;
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
    Ok(VersionVector::from_sorted(checked))
}

/// A dot (or a clock entry's position) from the wire: a valid node id or
/// version actor (`NodeId::version_actor`) and a counter of at least 1
/// (counter 0 names no write).
fn dot(node: String, counter: u64) -> Result<Dot, VersionError> {
    let node = NodeId::parse_version_actor(node).map_err(bad)?;
    if counter == 0 {
        return Err(bad(format!("counter 0 for node {node}")));
    }
    Ok(Dot { node, counter })
}

pub(super) fn bad(reason: impl Into<String>) -> VersionError {
    VersionError::BadEncoding {
        reason: reason.into(),
    }
}
