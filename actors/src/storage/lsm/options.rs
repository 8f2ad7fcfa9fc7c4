//! The engine's tunables. Every limit is named with its unit last.

/// When a write is acknowledged relative to its fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every `write_batch` returns only after its log record is fsynced
    /// (shared with concurrent writers: group commit). The default.
    Always,
    /// Writes return without waiting for the disk: their log records are
    /// buffered in the process (up to 64 KiB, `LOG_BUFFER_BYTES`), and a
    /// background thread writes and fsyncs the log every
    /// `sync_interval_ms` (also done on memtable rotation and on a clean
    /// close). A process crash or a power cut loses about the writes of
    /// the last interval (a sync that finds a writer holding the log is
    /// retried at the next wake-up), always a suffix: what survives is a
    /// prefix of the acknowledged batches.
    Periodic {
        /// Time between background fsyncs of the log.
        sync_interval_ms: u64,
    },
}

/// How SSTable data blocks are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Blocks are stored as is.
    None,
    /// LZ4 block compression (`lz4_flex`); a block that does not shrink is
    /// stored uncompressed. The default.
    Lz4,
}

/// The rewrite a [`CompactionFilter`] applies: engine key and value in,
/// `Some(replacement)` or `None` (keep) out.
pub type CompactionRewrite = dyn Fn(&[u8], &[u8]) -> Option<Vec<u8>> + Send + Sync;

/// Rewrites a live value as compaction copies it: given the engine key and
/// the value, `Some(new value)` replaces it, `None` keeps it as is. The
/// node's filter drops the bytes of expired values
/// (`replicator::expiry::expiry_filter`). It must be idempotent and must not
/// change a value's meaning for reads, since a value may be read before
/// and after.
#[derive(Clone)]
pub struct CompactionFilter(pub std::sync::Arc<CompactionRewrite>);

impl std::fmt::Debug for CompactionFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompactionFilter")
    }
}

/// Options for [`LsmEngine::open`](super::LsmEngine::open).
#[derive(Clone, Debug)]
pub struct LsmOptions {
    /// A memtable past this size is frozen and flushed to an SSTable.
    /// Default 32 MiB.
    pub memtable_bytes_max: usize,
    /// Frozen memtables waiting for their flush; writes stall (with a
    /// warning) while this many are waiting. Default 2.
    pub immutable_memtables_max: usize,
    /// Target uncompressed size of an SSTable data block. Default 4 KiB.
    pub block_bytes: usize,
    /// Bytes of decoded data blocks kept in the block cache. Default 64 MiB.
    pub block_cache_bytes: usize,
    /// Bloom filter bits per key; 10 gives about 1% false positives.
    /// Clamped to 1..=64 (`sstable::BLOOM_BITS_PER_KEY_MAX`).
    pub bloom_bits_per_key: usize,
    /// Durability of acknowledged writes. Default [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// Data block compression. Default [`Compression::Lz4`].
    pub compression: Compression,
    /// A point read consults at most this many SSTables (bloom filters
    /// permitting fewer): compaction keeps the tables that overlap older
    /// ones, plus one for all the disjoint ones, below it, and the store
    /// below `compaction::TABLES_PER_READ_FACTOR_MAX` times it. Default 8.
    pub tables_per_read_max: usize,
    /// How many adjacent tables one compaction merges at most. Default 4.
    pub compaction_tables_max: usize,
    /// When all tables together exceed this percentage of the oldest (the
    /// last full merge), every table is merged into one: the bound on space
    /// amplification under overwrites, paid for in rewrites (about
    /// 100 / (percent - 100) + 1 per byte in steady state; see
    /// `compaction`). 0 turns the trigger off, leaving plain size tiering.
    /// Default 125.
    pub space_amplification_percent_max: u64,
    /// Each new log segment is preallocated to this size (zeros, real
    /// blocks reserved with `fallocate` where the file system can), so an
    /// fdatasync need not update the file size: about 1.5-2x more durable
    /// writes per second on ext4. With [`SyncPolicy::Always`] the reserved
    /// segment is then written with `O_DIRECT` (see `vfs::direct`). 0
    /// disables both. Default 64 MiB, `log_segment_bytes_max`'s default,
    /// so every append of a full segment lands in reserved space.
    pub log_preallocate_bytes: u64,
    /// A log segment holding this many bytes of records is closed and a
    /// new one started, its memtable frozen and flushed as if full. The
    /// memtable limit counts the memory the entries hold, which overwrites
    /// of the same keys do not grow, while the log grows with every write:
    /// this bounds the log that a restart replays. Default 64 MiB, twice
    /// the memtable, so a store that overwrites a working set smaller than
    /// the memtable keeps it there for about twice the memtable's bytes of
    /// writes before a flush (benches/README.md, "Session 26").
    pub log_segment_bytes_max: u64,
    /// Applied to every live value a compaction copies. Default none.
    pub compaction_filter: Option<CompactionFilter>,
    /// Where the engine records fsyncs, memtables, tables, compactions and
    /// stalls: handles shared by every engine opened with these options,
    /// so an engine reopened after a failed write keeps the node's
    /// registered metrics.
    pub metrics: crate::metrics::EngineMetrics,
}

impl Default for LsmOptions {
    fn default() -> Self {
        Self {
            memtable_bytes_max: 32 << 20,
            immutable_memtables_max: 2,
            block_bytes: 4 << 10,
            block_cache_bytes: 64 << 20,
            bloom_bits_per_key: 10,
            sync: SyncPolicy::Always,
            compression: Compression::Lz4,
            tables_per_read_max: 8,
            compaction_tables_max: 4,
            space_amplification_percent_max: 125,
            log_preallocate_bytes: 64 << 20,
            log_segment_bytes_max: 64 << 20,
            compaction_filter: None,
            metrics: crate::metrics::EngineMetrics::default(),
        }
    }
}
