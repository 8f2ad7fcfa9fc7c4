//! The harness's helpers: framing a byte stream as a connection reads
//! it, the mode byte, and the encoders and checksum fixers of the on-disk
//! formats.
//!
//! The on-disk formats checksum every byte, so a mutated input almost
//! always dies at the first CRC check and the parser behind it is never
//! reached. The `fix_*` functions below recompute the checksums of a
//! mutated input, following the layouts in the `## Format` sections of
//! `actors/src/storage/lsm/` (duplicated here on purpose: the harness must
//! not share code with what it tests). Each target runs some inputs as
//! they are and some fixed up, chosen by the input's first byte (the
//! "mode"), so both the checksum checks and what lies behind them are
//! fuzzed.
//!
//! Also compiled into the root package's `tests/fuzz_corpus.rs` (with
//! `#[path]`), so it names only crates both have.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use ringkv_actors::wire::FrameCodec;

/// Every frame a connection would read from `stream`, and whether the
/// codec refused the stream (it is closed then).
#[derive(Debug, PartialEq, Eq)]
pub struct Framed {
    /// Complete frames, in order.
    pub frames: Vec<Bytes>,
    /// The codec's error, if it stopped with one.
    pub refused: Option<String>,
}

/// Runs `stream` through [`FrameCodec`] the way `FramedRead` does: as it
/// arrives in `chunk_bytes` pieces, decoding after each, then at EOF.
pub fn frames(stream: &[u8], max_frame_bytes: usize, chunk_bytes: usize) -> Framed {
    let mut codec = FrameCodec::new(max_frame_bytes);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(chunk_bytes.max(1)) {
        buffer.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    return Framed {
                        frames,
                        refused: Some(error.to_string()),
                    }
                }
            }
        }
    }
    // At EOF a partial frame is the stream's error, not a frame.
    let refused = match codec.decode_eof(&mut buffer) {
        Ok(Some(frame)) => {
            frames.push(frame);
            None
        }
        Ok(None) => None,
        Err(error) => Some(error.to_string()),
    };
    Framed { frames, refused }
}

/// The frames of `stream`, checking that how the bytes are split into
/// reads does not change them (whole, and in chunks of 1 to 16 bytes).
pub fn frames_any_split(stream: &[u8], max_frame_bytes: usize) -> Vec<Bytes> {
    let whole = frames(stream, max_frame_bytes, stream.len());
    let chunk_bytes = stream.len() % 16 + 1;
    let split = frames(stream, max_frame_bytes, chunk_bytes);
    // A refused stream may have been refused at another point of the
    // buffer, but never with other frames before it.
    assert_eq!(whole.frames, split.frames, "framing depends on read sizes");
    assert_eq!(whole.refused.is_some(), split.refused.is_some());
    whole.frames
}

/// Splits off the mode byte (0 for an empty input).
pub fn mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((mode, rest)) => (*mode, rest),
        None => (0, data),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn put_u32_at(bytes: &mut [u8], at: usize, value: u32) {
    if let Some(slot) = at.checked_add(4).and_then(|end| bytes.get_mut(at..end)) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

/// CRC32C of `bytes[start..end]` (0 when out of range).
fn crc_of(bytes: &[u8], start: usize, end: usize) -> u32 {
    bytes.get(start..end).map_or(0, crc32c::crc32c)
}

/// Bytes of a block trailer: compression, uncompressed length, CRC32C.
pub const BLOCK_TRAILER_BYTES: usize = 9;
/// Block compression tags.
pub const COMPRESSION_NONE: u8 = 0;
/// LZ4.
pub const COMPRESSION_LZ4: u8 = 1;

/// Sets a stored block's CRC (its last 4 bytes) to match the rest.
pub fn fix_block(stored: &mut [u8]) {
    if let Some(at) = stored.len().checked_sub(4) {
        if stored.len() >= BLOCK_TRAILER_BYTES {
            let crc = crc_of(stored, 0, at);
            put_u32_at(stored, at, crc);
        }
    }
}

/// A stored block holding `body`, sealed with a correct trailer.
pub fn seal_block(body: &[u8], compression: u8) -> Vec<u8> {
    let mut stored = match compression {
        COMPRESSION_LZ4 => lz4_flex::block::compress(body),
        _ => body.to_vec(),
    };
    stored.push(compression);
    stored.extend_from_slice(&(body.len() as u32).to_le_bytes());
    stored.extend_from_slice(&[0; 4]);
    fix_block(&mut stored);
    stored
}

/// A block body in the table format: per entry, key (u32 length +
/// bytes), tag (0 tombstone, 1 value), value (u32 length + bytes).
pub fn block_body(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in entries {
        put_bytes(&mut body, key);
        match value {
            Some(value) => {
                body.push(1);
                put_bytes(&mut body, value);
            }
            None => body.push(0),
        }
    }
    body
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// An index section in the table format: count, then per block last key
/// (u32 length + bytes), offset u64, stored length u32.
pub fn index_section(blocks: &[(Vec<u8>, u64, usize)]) -> Vec<u8> {
    let mut out = (blocks.len() as u32).to_le_bytes().to_vec();
    for (last_key, offset, stored_len) in blocks {
        put_bytes(&mut out, last_key);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(*stored_len as u32).to_le_bytes());
    }
    out
}

/// Bytes of a table's footer.
pub const TABLE_FOOTER_BYTES: usize = 56;
const TABLE_HEADER_BYTES: usize = 12;

/// Recomputes a table's checksums where the footer and the index point:
/// every data block the index names, the index, the key filter, and the
/// footer itself (in that order, since each covers the ones before).
pub fn fix_table(table: &mut [u8]) {
    let Some(footer) = table.len().checked_sub(TABLE_FOOTER_BYTES) else {
        return;
    };
    if footer < TABLE_HEADER_BYTES {
        return;
    }
    let section = |offset: Option<u64>, len: Option<u32>| -> Option<(usize, usize)> {
        let start = usize::try_from(offset?).ok()?;
        let end = start.checked_add(usize::try_from(len?).ok()?)?;
        (end <= footer).then_some((start, end))
    };
    let index = section(u64_at(table, footer), u32_at(table, footer + 8));
    if let Some((start, end)) = index {
        for (offset, stored_len) in index_blocks(table.get(start..end).unwrap_or_default()) {
            let block_end = offset.saturating_add(stored_len);
            if let Some(block) = table.get_mut(offset..block_end.min(footer)) {
                fix_block(block);
            }
        }
        let crc = crc_of(table, start, end);
        put_u32_at(table, footer + 12, crc);
    }
    if let Some((start, end)) = section(u64_at(table, footer + 16), u32_at(table, footer + 24)) {
        let crc = crc_of(table, start, end);
        put_u32_at(table, footer + 28, crc);
    }
    let crc = crc_of(table, footer, footer + 44);
    put_u32_at(table, footer + 44, crc);
}

/// The (offset, stored length) of every block an index section names, as
/// far as it parses.
fn index_blocks(index: &[u8]) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let Some(count) = u32_at(index, 0) else {
        return blocks;
    };
    let mut at = 4usize;
    for _ in 0..count {
        let Some(key_len) = u32_at(index, at).and_then(|len| usize::try_from(len).ok()) else {
            break;
        };
        at = at.saturating_add(4).saturating_add(key_len);
        let (Some(offset), Some(stored_len)) = (u64_at(index, at), u32_at(index, at + 8)) else {
            break;
        };
        at += 12;
        if let (Ok(offset), Ok(stored_len)) = (usize::try_from(offset), usize::try_from(stored_len))
        {
            blocks.push((offset, stored_len));
        }
    }
    blocks
}

/// Bytes before a log record's payload.
pub const RECORD_HEADER_BYTES: usize = 20;

/// Recomputes the header and payload checksums of every record of a log
/// segment, walking the records by their lengths as far as they fit.
pub fn fix_log(segment: &mut [u8]) {
    let mut at = 0usize;
    while let Some(len) = u32_at(segment, at) {
        let header_crc = crc_of(segment, at, at + 12);
        put_u32_at(segment, at + 12, header_crc);
        let payload = at + RECORD_HEADER_BYTES;
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|len| payload.checked_add(len))
        else {
            return;
        };
        if end > segment.len() {
            return;
        }
        let payload_crc = crc_of(segment, payload, end);
        put_u32_at(segment, at + 16, payload_crc);
        at = end + 1;
    }
}

/// Sets a manifest's trailing CRC to match the bytes before it.
pub fn fix_manifest(manifest: &mut [u8]) {
    if let Some(at) = manifest.len().checked_sub(4) {
        let crc = crc_of(manifest, 0, at);
        put_u32_at(manifest, at, crc);
    }
}
