//! A table's block index in memory: every block's last key, offset and
//! stored length, kept in flat arrays so a binary search touches a few
//! compact cache lines instead of one heap allocation per key.

use super::heads::KeyHeads;
use super::TABLE_HEADER_BYTES;
use crate::storage::lsm::codec::Cursor;

/// The parsed, validated block index of one table.
#[derive(Debug, Default)]
pub struct BlockIndex {
    /// Every block's last key, concatenated.
    keys: Vec<u8>,
    /// End of each block's last key in `keys`.
    key_ends: Vec<usize>,
    /// Each block's offset in the file.
    offsets: Vec<u64>,
    /// Each block's stored length (body + trailer).
    stored_lens: Vec<usize>,
    /// The last keys' heads, searched before the keys themselves.
    heads: KeyHeads,
}

/// Where one block lives.
#[derive(Clone, Copy, Debug)]
pub struct BlockHandle {
    /// Offset in the file.
    pub offset: u64,
    /// Stored length in bytes.
    pub stored_len: usize,
}

impl BlockIndex {
    /// Parses an index section that starts at `index_offset`; `None` if it
    /// does not parse or its blocks do not tile the data region exactly.
    pub fn parse(bytes: &[u8], index_offset: u64) -> Option<Self> {
        let mut cursor = Cursor::new(bytes);
        let count = cursor.u32()?;
        let mut index = Self::default();
        let mut end_of_previous = TABLE_HEADER_BYTES as u64;
        for _ in 0..count {
            index.keys.extend_from_slice(cursor.bytes()?);
            let offset = cursor.u64()?;
            let stored_len = usize::try_from(cursor.u32()?).ok()?;
            if offset != end_of_previous {
                return None;
            }
            end_of_previous = offset.checked_add(stored_len as u64)?;
            index.key_ends.push(index.keys.len());
            index.offsets.push(offset);
            index.stored_lens.push(stored_len);
        }
        if cursor.remaining() != 0 || end_of_previous != index_offset {
            return None;
        }
        index.heads = KeyHeads::new(index.len(), |block| {
            index.last_key(block).unwrap_or_default()
        });
        Some(index)
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether the table has no block.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The last key of block `block`.
    pub fn last_key(&self, block: usize) -> Option<&[u8]> {
        let end = *self.key_ends.get(block)?;
        let start = match block.checked_sub(1) {
            Some(previous) => *self.key_ends.get(previous)?,
            None => 0,
        };
        self.keys.get(start..end)
    }

    /// Where block `block` lives.
    pub fn handle(&self, block: usize) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: *self.offsets.get(block)?,
            stored_len: *self.stored_lens.get(block)?,
        })
    }

    /// The first block whose last key is `>= key` (`len()` if none).
    pub fn seek(&self, key: &[u8]) -> usize {
        self.heads
            .lower_bound(key, |block| self.last_key(block).unwrap_or_default())
    }
}
