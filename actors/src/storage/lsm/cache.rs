//! The block cache: decoded data blocks, bounded in bytes, evicted by CLOCK
//! (second chance). Sharded by key so reader threads rarely contend.
//!
//! CLOCK instead of strict LRU: a hit only sets a flag, where LRU would
//! reorder a list on every read; eviction gives each recently used block a
//! second pass before dropping it, which approximates LRU closely.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use fnv::FnvHashMap;

use super::sstable::block::Block;

/// Independent shards; a hit locks one shard only.
const SHARDS: usize = 16;

/// A cached block is named by its table and its offset in that table.
pub type BlockKey = (u64, u64);

struct Cached {
    block: Arc<Block>,
    /// Set by a hit, cleared when the clock hand passes.
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    blocks: FnvHashMap<BlockKey, Cached>,
    /// The clock: keys in insertion order, the hand at the front. May hold
    /// keys already dropped by `forget_table`; they are skipped.
    clock: VecDeque<BlockKey>,
    size_bytes: usize,
}

/// A byte-bounded cache of decoded blocks.
pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_bytes_max: usize,
}

impl BlockCache {
    /// A cache holding at most about `capacity_bytes` of blocks (0 disables it).
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_bytes_max: capacity_bytes / SHARDS,
        }
    }

    fn shard(&self, key: BlockKey) -> Option<&Mutex<Shard>> {
        let hash = key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (key.1 >> 12);
        self.shards.get((hash as usize) % SHARDS)
    }

    /// The cached block, marking it recently used.
    pub fn get(&self, key: BlockKey) -> Option<Arc<Block>> {
        if self.shard_bytes_max == 0 {
            return None;
        }
        let mut shard = self.shard(key)?.lock().unwrap_or_else(|e| e.into_inner());
        let cached = shard.blocks.get_mut(&key)?;
        cached.referenced = true;
        Some(cached.block.clone())
    }

    /// Caches `block`, evicting blocks not used since the hand last passed.
    pub fn insert(&self, key: BlockKey, block: Arc<Block>) {
        let size = block.size_bytes();
        if size > self.shard_bytes_max {
            return;
        }
        let Some(shard) = self.shard(key) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        let cached = Cached {
            block,
            referenced: false,
        };
        match shard.blocks.insert(key, cached) {
            Some(old) => shard.size_bytes -= old.block.size_bytes(),
            None => shard.clock.push_back(key),
        }
        shard.size_bytes += size;
        while shard.size_bytes > self.shard_bytes_max {
            let Some(hand) = shard.clock.pop_front() else {
                break;
            };
            let Some(cached) = shard.blocks.get_mut(&hand) else {
                continue;
            };
            if std::mem::replace(&mut cached.referenced, false) {
                shard.clock.push_back(hand);
            } else if let Some(evicted) = shard.blocks.remove(&hand) {
                shard.size_bytes -= evicted.block.size_bytes();
            }
        }
    }

    /// Drops every block of table `table` (after compaction deleted it).
    pub fn forget_table(&self, table: u64) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let Shard {
                blocks, size_bytes, ..
            } = &mut *shard;
            blocks.retain(|key, cached| {
                let keep = key.0 != table;
                if !keep {
                    *size_bytes -= cached.block.size_bytes();
                }
                keep
            });
            let Shard { blocks, clock, .. } = &mut *shard;
            clock.retain(|key| blocks.contains_key(key));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::lsm::options::Compression;
    use crate::storage::lsm::sstable::block::{put_entry, seal};

    fn block(value_bytes: usize) -> Arc<Block> {
        let mut body = Vec::new();
        put_entry(&mut body, b"k", &Some(vec![7; value_bytes]));
        let mut stored = Vec::new();
        seal(&mut stored, &body, Compression::None);
        Arc::new(Block::decode(stored).unwrap())
    }

    #[test]
    fn the_cache_stays_under_its_byte_limit_and_keeps_used_blocks() {
        let cache = BlockCache::new(SHARDS * 4096);
        // Same table, offsets chosen to land in one shard.
        let keys: Vec<BlockKey> = (0..64u64).map(|i| (1, i << 12 << 4)).collect();
        let shard_of = |key: BlockKey| {
            (key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (key.1 >> 12)) as usize % SHARDS
        };
        let same: Vec<_> = keys
            .iter()
            .filter(|k| shard_of(**k) == shard_of(keys[0]))
            .copied()
            .collect();
        cache.insert(same[0], block(1000));
        for key in same.iter().skip(1) {
            assert!(cache.get(same[0]).is_some(), "a block in use survives");
            cache.insert(*key, block(1000));
        }
        let shard = cache.shard(same[0]).unwrap().lock().unwrap();
        assert!(shard.size_bytes <= 4096);
    }
}
