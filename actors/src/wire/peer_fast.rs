//! The peer frames on every replicated request's path, written and read by
//! hand: a replica read or write, and their successful answers. Through
//! rmp-serde these frames (MessagePack maps with field and variant names,
//! `PeerFrame::encode`) cost 3-5% of a three-node request's CPU, most of it
//! in matching names and in serde's generic machinery. The bytes are the
//! ones rmp-serde writes for the same frame. Any other frame, and any of
//! these in another form (fields in another order, a field added by a
//! newer version, another integer marker), goes through serde as before,
//! so what a node accepts is unchanged. `peer_fast_tests.rs` checks both
//! directions against serde.

use serde_bytes::ByteBuf;

use super::msgpack::{put_array_len, put_bin, put_map_len, put_str, put_uint, Reader, NIL};
use super::peer::{
    Durable, PeerFrame, PeerReply, PeerRequest, ReplicaRead, ReplicaWrite, StoredObject,
};

/// Bytes reserved for a frame written here beyond its key and object: its
/// names and integers (at most about 100 bytes, with a 64-bit trace id)
/// and the 16-byte tag the session appends (`bridge::seal`), so sealing
/// does not grow the buffer.
const FRAME_OVERHEAD_BYTES: usize = 128;

/// The frame's bytes, for the frames written here (`None`: serde writes it).
pub(super) fn encode(frame: &PeerFrame) -> Option<Vec<u8>> {
    match frame {
        PeerFrame::Request {
            id,
            trace,
            timeout_ms,
            body,
        } => {
            let (variant, key, object) = match body {
                PeerRequest::Read(ReplicaRead { key }) => ("Read", key, None),
                PeerRequest::Write(ReplicaWrite { key, object }) => ("Write", key, Some(object)),
                _ => return None,
            };
            let mut out = Vec::with_capacity(
                FRAME_OVERHEAD_BYTES + key.len() + object.map_or(0, |object| object.len()),
            );
            put_variant(&mut out, "Request");
            put_map_len(&mut out, 4);
            put_uint_field(&mut out, "id", *id);
            put_uint_field(&mut out, "trace", *trace);
            put_uint_field(&mut out, "timeout_ms", *timeout_ms);
            put_str(&mut out, "body");
            put_variant(&mut out, variant);
            put_map_len(&mut out, if object.is_some() { 2 } else { 1 });
            put_str(&mut out, "key");
            put_bin(&mut out, key);
            if let Some(object) = object {
                put_str(&mut out, "object");
                put_bin(&mut out, object);
            }
            Some(out)
        }
        PeerFrame::Response {
            id,
            body: Ok(reply),
        } => {
            let object = match reply {
                PeerReply::Write(Durable) => None,
                PeerReply::Read(StoredObject { object }) => Some(object),
                _ => return None,
            };
            let stored = object
                .and_then(Option::as_ref)
                .map_or(0, |object| object.len());
            let mut out = Vec::with_capacity(FRAME_OVERHEAD_BYTES + stored);
            put_variant(&mut out, "Response");
            put_map_len(&mut out, 2);
            put_uint_field(&mut out, "id", *id);
            put_str(&mut out, "body");
            put_variant(&mut out, "Ok");
            match object {
                None => {
                    put_variant(&mut out, "Write");
                    put_array_len(&mut out, 0);
                }
                Some(object) => {
                    put_variant(&mut out, "Read");
                    put_map_len(&mut out, 1);
                    put_str(&mut out, "object");
                    match object {
                        Some(object) => put_bin(&mut out, object),
                        None => out.push(NIL),
                    }
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// The frame, if `bytes` are one of the frames written here in exactly the
/// form [`encode`] writes (`None`: serde reads them, or refuses them).
pub(super) fn decode(bytes: &[u8]) -> Option<PeerFrame> {
    let mut reader = Reader::new(bytes);
    one_of(&mut reader, 1)?;
    let frame = match reader.str_bytes().ok()? {
        b"Request" => {
            one_of(&mut reader, 4)?;
            let id = uint_field(&mut reader, "id")?;
            let trace = uint_field(&mut reader, "trace")?;
            let timeout_ms = uint_field(&mut reader, "timeout_ms")?;
            named(&mut reader, "body")?;
            one_of(&mut reader, 1)?;
            let body = match reader.str_bytes().ok()? {
                b"Read" => {
                    one_of(&mut reader, 1)?;
                    PeerRequest::Read(ReplicaRead {
                        key: bin_field(&mut reader, "key")?,
                    })
                }
                b"Write" => {
                    one_of(&mut reader, 2)?;
                    PeerRequest::Write(ReplicaWrite {
                        key: bin_field(&mut reader, "key")?,
                        object: bin_field(&mut reader, "object")?,
                    })
                }
                _ => return None,
            };
            PeerFrame::Request {
                id,
                trace,
                timeout_ms,
                body,
            }
        }
        b"Response" => {
            one_of(&mut reader, 2)?;
            let id = uint_field(&mut reader, "id")?;
            named(&mut reader, "body")?;
            one_of(&mut reader, 1)?;
            (reader.str_bytes().ok()? == b"Ok").then_some(())?;
            one_of(&mut reader, 1)?;
            let reply = match reader.str_bytes().ok()? {
                b"Write" => {
                    (reader.array_len().ok()? == 0).then_some(())?;
                    PeerReply::Write(Durable)
                }
                b"Read" => {
                    one_of(&mut reader, 1)?;
                    named(&mut reader, "object")?;
                    let object = reader.bin_or_nil().ok()?;
                    PeerReply::Read(StoredObject {
                        object: object.map(|object| ByteBuf::from(object.to_vec())),
                    })
                }
                _ => return None,
            };
            PeerFrame::Response {
                id,
                body: Ok(reply),
            }
        }
        _ => return None,
    };
    reader.finish().ok()?;
    Some(frame)
}

/// The head of an enum variant as serde writes it: a map of one entry,
/// `{name: ...}`, whose value follows (what `one_of(reader, 1)` and a
/// name read back).
fn put_variant(out: &mut Vec<u8>, name: &str) {
    put_map_len(out, 1);
    put_str(out, name);
}

/// A field `name` holding an unsigned integer (what [`uint_field`] reads).
fn put_uint_field(out: &mut Vec<u8>, name: &str, value: u64) {
    put_str(out, name);
    put_uint(out, value);
}

/// A map of exactly `len` entries.
fn one_of(reader: &mut Reader<'_>, len: usize) -> Option<()> {
    (reader.map_len().ok()? == len).then_some(())
}

/// The key `name`.
fn named(reader: &mut Reader<'_>, name: &str) -> Option<()> {
    (reader.str_bytes().ok()? == name.as_bytes()).then_some(())
}

fn uint_field(reader: &mut Reader<'_>, name: &str) -> Option<u64> {
    named(reader, name)?;
    reader.uint().ok()
}

fn bin_field(reader: &mut Reader<'_>, name: &str) -> Option<ByteBuf> {
    named(reader, name)?;
    Some(ByteBuf::from(reader.bin_or_nil().ok()??.to_vec()))
}

#[cfg(test)]
#[path = "peer_fast_tests.rs"]
mod tests;
