//! The block cache: decoded data blocks, bounded in bytes, least recently
//! used evicted first. Sharded by key so reader threads rarely contend.

use std::collections::BTreeMap;

use fnv::FnvHashMap;
use std::sync::{Arc, Mutex};

use super::sstable::block::Block;

/// Independent LRU shards; a power of two so the shard is a mask away.
const SHARDS: usize = 16;

/// A cached block is named by its table and its offset in that table.
pub type BlockKey = (u64, u64);

#[derive(Default)]
struct Shard {
    blocks: FnvHashMap<BlockKey, (Arc<Block>, u64)>,
    /// Last-use tick to key, oldest first.
    recency: BTreeMap<u64, BlockKey>,
    tick: u64,
    size_bytes: usize,
}

/// A byte-bounded LRU of decoded blocks.
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
        let mut shard = self.shard(key)?.lock().unwrap_or_else(|e| e.into_inner());
        shard.tick += 1;
        let tick = shard.tick;
        let resident = shard.blocks.len() as u64;
        let (block, last_use) = shard.blocks.get_mut(&key)?;
        let block = block.clone();
        // Promote only blocks that drifted into the older half: a hit on a
        // recently used block skips two B-tree updates, and eviction order
        // stays close to LRU.
        if tick.saturating_sub(*last_use) > resident / 2 {
            let old_tick = std::mem::replace(last_use, tick);
            shard.recency.remove(&old_tick);
            shard.recency.insert(tick, key);
        }
        Some(block)
    }

    /// Caches `block`, evicting the least recently used past the limit.
    pub fn insert(&self, key: BlockKey, block: Arc<Block>) {
        let size = block.size_bytes();
        if size > self.shard_bytes_max {
            return;
        }
        let Some(shard) = self.shard(key) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        shard.tick += 1;
        let tick = shard.tick;
        if let Some((old, old_tick)) = shard.blocks.insert(key, (block, tick)) {
            shard.recency.remove(&old_tick);
            shard.size_bytes -= old.size_bytes();
        }
        shard.recency.insert(tick, key);
        shard.size_bytes += size;
        while shard.size_bytes > self.shard_bytes_max {
            let Some((_, oldest)) = shard.recency.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = shard.blocks.remove(&oldest) {
                shard.size_bytes -= evicted.size_bytes();
            }
        }
    }

    /// Drops every block of table `table` (after compaction deleted it).
    pub fn forget_table(&self, table: u64) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let Shard {
                blocks,
                recency,
                size_bytes,
                ..
            } = &mut *shard;
            blocks.retain(|key, (block, tick)| {
                let keep = key.0 != table;
                if !keep {
                    recency.remove(tick);
                    *size_bytes -= block.size_bytes();
                }
                keep
            });
        }
    }
}
