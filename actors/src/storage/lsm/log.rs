//! The commit log: every acknowledged batch is a record in a log segment
//! before it reaches the memtable.
//!
//! ## Format
//!
//! A segment file `<segment:020>.log` is a sequence of records:
//!
//! ```text
//! offset  size  field
//! 0       4     payload length in bytes (u32 LE)
//! 4       8     sequence number of the batch (u64 LE)
//! 12      4     CRC32C of bytes 0..12 (header checksum)
//! 16      4     CRC32C of the payload
//! 20      len   payload: op count (u32 LE), then per op
//!               tag u8 (1 = put, 2 = delete), key (u32 LE length + bytes),
//!               and for a put the value (u32 LE length + bytes)
//! 20+len  1     end marker 0xA5
//! ```
//!
//! Segments are preallocated (`LsmOptions::log_preallocate_bytes`), so a
//! segment normally ends in a run of zero bytes: unused space. Under
//! `SyncPolicy::Always` they are written with `O_DIRECT` in whole 4 KiB
//! blocks (`vfs::direct`); a write past the preallocated end then leaves
//! zero padding up to the block boundary, read the same way.
//!
//! The header has its own checksum so a damaged length is reported as
//! corruption instead of being mistaken for a torn (short) final record, and
//! the non-zero end marker tells a record whose end never reached the disk
//! (it reads as zero in preallocated space) from a complete one that was
//! damaged afterwards. No single flipped bit turns one into the other.
//!
//! Recovery rules, at each record start:
//! - only zero bytes to the end of the segment: the end of the data;
//! - newest segment only, a torn final record (dropped, it was never
//!   acknowledged): the segment ends inside it; or its header fails its
//!   checksum and nothing but zeros follows the header; or its end marker is
//!   zero and nothing but zeros follows the record;
//! - anything else that fails a check, anywhere, is
//!   [`StorageError::Corruption`]. Older segments were fsynced whole before
//!   the next one was created, so they may not be torn at all.

use std::path::Path;

use super::codec::{len_u32, put_bytes, put_u32, Cursor};
use crate::storage::{StorageError, WriteOp};

/// Bytes before a record's payload.
pub const RECORD_HEADER_BYTES: usize = 20;
/// The last byte of every record; never zero (see the module doc).
pub const RECORD_END_MARKER: u8 = 0xA5;
/// A single batch larger than this is refused (and a header claiming more is
/// corrupt): 64 MiB. It also bounds one table entry, which the block limit
/// `BLOCK_UNCOMPRESSED_BYTES_MAX` must accept.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 << 20;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// The file name of log segment `segment`.
pub fn segment_name(segment: u64) -> String {
    format!("{segment:020}.log")
}

/// The segment number in a log file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".log")?.parse().ok()
}

/// Appends the record for batch `sequence` holding `ops` to `out`.
pub fn encode_record(out: &mut Vec<u8>, sequence: u64, ops: &[WriteOp]) {
    // The payload is encoded in place and the header patched afterwards:
    // no intermediate buffer on the write path.
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    let payload_start = out.len();
    put_u32(out, len_u32(ops.len()));
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                out.push(TAG_PUT);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            WriteOp::Delete { key } => {
                out.push(TAG_DELETE);
                put_bytes(out, key);
            }
        }
    }
    let payload_len = len_u32(out.len() - payload_start);
    let payload_crc = crc32c::crc32c(out.get(payload_start..).unwrap_or_default());
    if let Some(header) = out.get_mut(start..payload_start) {
        header[..4].copy_from_slice(&payload_len.to_le_bytes());
        header[4..12].copy_from_slice(&sequence.to_le_bytes());
        let header_crc = crc32c::crc32c(&header[..12]);
        header[12..16].copy_from_slice(&header_crc.to_le_bytes());
        header[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    }
    out.push(RECORD_END_MARKER);
}

/// The encoded size of a batch, to refuse oversized ones before logging.
pub fn payload_bytes(ops: &[WriteOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            WriteOp::Put { key, value } => 9 + key.len() + value.len(),
            WriteOp::Delete { key } => 5 + key.len(),
        })
        .sum::<usize>()
        + 4
}

/// One batch read back from the log.
#[derive(Debug, PartialEq, Eq)]
pub struct LoggedBatch {
    /// The batch's sequence number.
    pub sequence: u64,
    /// Its operations, in order.
    pub ops: Vec<WriteOp>,
}

/// Parses a whole segment. `newest` says whether a torn tail is allowed.
pub fn replay_segment(
    bytes: &[u8],
    file: &Path,
    newest: bool,
) -> Result<Vec<LoggedBatch>, StorageError> {
    let zeros = |from: usize| {
        bytes
            .get(from..)
            .unwrap_or_default()
            .iter()
            .all(|b| *b == 0)
    };
    let mut batches = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() && !zeros(offset) {
        let corrupt = |reason: &str| StorageError::Corruption {
            file: file.to_owned(),
            offset: offset as u64,
            reason: reason.to_owned(),
        };
        let mut cursor = Cursor::new(bytes.get(offset..).unwrap_or_default());
        let (Some(len), Some(sequence), Some(header_crc), Some(payload_crc)) =
            (cursor.u32(), cursor.u64(), cursor.u32(), cursor.u32())
        else {
            if newest {
                break;
            }
            return Err(corrupt("short record header"));
        };
        let header = bytes.get(offset..offset + 12).unwrap_or_default();
        if crc32c::crc32c(header) != header_crc {
            if newest && zeros(offset + RECORD_HEADER_BYTES) {
                break;
            }
            return Err(corrupt("record header checksum mismatch"));
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > RECORD_PAYLOAD_BYTES_MAX {
            return Err(corrupt("record longer than RECORD_PAYLOAD_BYTES_MAX"));
        }
        let end = offset + RECORD_HEADER_BYTES + len + 1;
        let (Some(payload), Some(marker)) = (cursor.take(len), cursor.u8()) else {
            if newest {
                break;
            }
            return Err(corrupt("short record"));
        };
        if marker != RECORD_END_MARKER {
            if newest && marker == 0 && zeros(end) {
                break;
            }
            return Err(corrupt("bad record end marker"));
        }
        if crc32c::crc32c(payload) != payload_crc {
            return Err(corrupt("record payload checksum mismatch"));
        }
        let ops =
            decode_payload(payload).ok_or_else(|| corrupt("record payload does not parse"))?;
        batches.push(LoggedBatch { sequence, ops });
        offset = end;
    }
    Ok(batches)
}

fn decode_payload(payload: &[u8]) -> Option<Vec<WriteOp>> {
    let mut cursor = Cursor::new(payload);
    let count = cursor.u32()?;
    let mut ops = Vec::new();
    for _ in 0..count {
        let op = match cursor.u8()? {
            TAG_PUT => WriteOp::Put {
                key: cursor.bytes()?.to_vec(),
                value: cursor.bytes()?.to_vec(),
            },
            TAG_DELETE => WriteOp::Delete {
                key: cursor.bytes()?.to_vec(),
            },
            _ => return None,
        };
        ops.push(op);
    }
    (cursor.remaining() == 0).then_some(ops)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn put(key: &[u8], value: &[u8]) -> WriteOp {
        WriteOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut bytes = Vec::new();
        encode_record(
            &mut bytes,
            7,
            &[put(b"a", b"1"), WriteOp::Delete { key: b"b".to_vec() }],
        );
        let first_len = bytes.len();
        encode_record(&mut bytes, 8, &[put(b"c", b"3")]);
        let path = Path::new("x.log");
        assert_eq!(replay_segment(&bytes, path, true).unwrap().len(), 2);
        for cut in first_len + 1..bytes.len() {
            let batches = replay_segment(&bytes[..cut], path, true).unwrap();
            assert_eq!(batches.len(), 1);
            assert!(replay_segment(&bytes[..cut], path, false).is_err());
            // The same tear inside preallocated space: zeros, not EOF.
            let mut zeroed = bytes.clone();
            zeroed[cut..].fill(0);
            zeroed.extend_from_slice(&[0; 64]);
            assert_eq!(replay_segment(&zeroed, path, true).unwrap().len(), 1);
            assert!(replay_segment(&zeroed, path, false).is_err());
        }
        let mut preallocated = bytes.clone();
        preallocated.extend_from_slice(&[0; 64]);
        assert_eq!(replay_segment(&preallocated, path, false).unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_final_record_is_corruption_not_a_torn_tail() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1, &[put(b"a", b"1")]);
        bytes.extend_from_slice(&[0; 64]);
        let record_bits = (bytes.len() - 64) * 8;
        for bit in 0..record_bits {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let result = replay_segment(&damaged, Path::new("x.log"), true);
            assert!(result.is_err(), "bit {bit} went unnoticed: {result:?}");
        }
    }

    #[test]
    fn a_damaged_length_is_corruption_not_a_torn_tail() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1, &[put(b"a", b"1")]);
        bytes[1] ^= 0x10;
        let error = replay_segment(&bytes, Path::new("x.log"), true).unwrap_err();
        assert!(matches!(error, StorageError::Corruption { offset: 0, .. }));
    }
}
