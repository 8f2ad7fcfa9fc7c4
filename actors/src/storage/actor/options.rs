//! The Storage actor's tuning ([`StorageOptions`]) and where the engine's
//! work runs ([`StorageThreading`]).

use super::super::tree::{self, TreeDigest};

/// Default of [`StorageOptions::hints_bytes_max_per_target`]: 1 GiB of
/// writes held for one replica that is away.
pub const HINTS_BYTES_MAX_PER_TARGET_DEFAULT: u64 = 1 << 30;

/// Default of [`StorageOptions::loop_slow_group_ms`]: a group commit on the
/// event loop that takes longer (a sync of this VM's disk takes 0.07-0.3
/// ms) hands the next ones to a thread.
pub const LOOP_SLOW_GROUP_MS_DEFAULT: u64 = 2;

/// Default of [`StorageOptions::storage_queue_max`], in requests.
pub const STORAGE_QUEUE_MAX_DEFAULT: usize = 4096;

/// Where the engine's work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageThreading {
    /// On the engine's own threads (a writer and readers): the default,
    /// and the only choice for engines that touch a disk.
    Threads,
    /// In the actor's handler, on its arbiter. Only for engines that never
    /// block (the memory engine) in deterministic simulations, where real
    /// threads would make reply timing depend on the OS scheduler.
    Inline,
    /// The writer as a task on the actor's arbiter that takes one group of
    /// the queued jobs every `every_ms` of the runtime's clock
    /// (`Writer::run_on_clock`); reads served in place. For
    /// deterministic simulations of the path `Threads` takes: jobs wait
    /// in the writer's queue, coordinators mint on their own thread
    /// through the mint gate and read the engine's memory directly
    /// ([`MemoryReads`](super::MemoryReads)), and the writer's answers come back a group at a
    /// time. Only for engines that never block, as `Inline`.
    Task {
        /// Time between two groups, in milliseconds (at least 1).
        every_ms: u64,
    },
    /// The writer as a task on the actor's arbiter, the node's event loop
    /// (`Writer::run_on_loop`), the way Redis writes: no thread wakes
    /// another for a write or its answer, and a group gathers every job
    /// the sessions queue while the loop yields to them
    /// (`writer::GATHER_IDLE_YIELDS`, `writer::GATHER_YIELDS_MAX`). The loop waits for each
    /// group's sync, so under load it forwards no frame meanwhile; what
    /// may wait longer than a sync (a group while the engine may stall,
    /// while the Merkle leaves are rebuilt, the reopen of a failed store,
    /// the final flush) goes to a blocking thread when
    /// `blocking_off_loop` (a process; point reads then go to the reader
    /// threads), or runs in place (a deterministic simulation, whose
    /// engine never blocks; reads served in place as `Task` does).
    Loop {
        /// Whether steps that may block run on a thread (`true`) or in
        /// place (`false`: simulations only).
        blocking_off_loop: bool,
    },
}

impl StorageThreading {
    /// Whether reads are served in place rather than by reader threads.
    pub(super) fn reads_in_place(self) -> bool {
        match self {
            StorageThreading::Threads => false,
            StorageThreading::Inline | StorageThreading::Task { .. } => true,
            StorageThreading::Loop { blocking_off_loop } => !blocking_off_loop,
        }
    }
}

/// Tuning of the Storage actor; every limit named with its unit.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Where the engine's work runs.
    pub threading: StorageThreading,
    /// Requests that may wait for the writer (or the readers) before new
    /// ones are refused with `Overloaded`.
    pub storage_queue_max: usize,
    /// Most writes handed to the engine in one group commit.
    pub storage_batch_max: usize,
    /// Incoming bytes at which a group commit stops taking writes (one
    /// batch must stay under the engine's record limit).
    pub storage_batch_bytes_max: usize,
    /// Threads serving point reads.
    pub storage_reader_threads: usize,
    /// Bytes of hints (the hinted objects' sizes) this node holds for one
    /// replica; past it, it refuses to stand in for that replica.
    pub hints_bytes_max_per_target: u64,
    /// Time between attempts to reopen a store whose engine failed a
    /// write, in milliseconds.
    pub storage_reopen_interval_ms: u64,
    /// Where the mailbox depth of reads and writes is kept (their senders
    /// count them in, the handlers out).
    pub metrics: crate::metrics::Metrics,
    /// With the writer on the event loop (`StorageThreading::Loop`): a
    /// group that took longer than this, in milliseconds, sends the next
    /// groups to a thread until one there takes less.
    pub loop_slow_group_ms: u64,
    /// How the Merkle leaves hash a stored entry (`tree.rs`); the node
    /// hands in `repair::merkle::entry_digest`.
    pub merkle_digest: TreeDigest,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            threading: StorageThreading::Threads,
            storage_queue_max: STORAGE_QUEUE_MAX_DEFAULT,
            storage_batch_max: 256,
            storage_batch_bytes_max: 16 << 20,
            storage_reader_threads: 2,
            hints_bytes_max_per_target: HINTS_BYTES_MAX_PER_TARGET_DEFAULT,
            storage_reopen_interval_ms: 1000,
            metrics: crate::metrics::Metrics::default(),
            loop_slow_group_ms: LOOP_SLOW_GROUP_MS_DEFAULT,
            merkle_digest: tree::raw_digest(),
        }
    }
}
