//! The writer thread: every read-modify-write of the store, in groups that
//! share one `write_batch` (one fsync), and the rules that keep a write
//! from being lost when the disk fails.
//!
//! # Group commit
//!
//! The writer takes whatever jobs are queued (up to `storage_batch_max`,
//! and about `storage_batch_bytes_max` of incoming data), runs each
//! mutation against the current value (seeing earlier ones of the same
//! group), and writes the results in one batch. One thread applies every
//! mutation, so two writes to one key never interleave their read and
//! their write. If the batch fails, every job of the group fails, even one
//! that changed nothing: the value it saw may have come from the failed
//! batch.
//!
//! # Minting: a dot is never reused
//!
//! A coordinator's mutation mints a new version under this store's
//! version actor (`<id>#<incarnation>`), with the next counter after what
//! the store holds, and hands it out before the group's batch is written
//! (`ApplyJob::minted`, with the group's other minted versions) so the
//! other replicas write it while the local batch is fsynced. If that batch
//! then fails, the version exists elsewhere but not here, and the next
//! mint of the key would pick the same counter: replicas would take the
//! second write as already seen. So after a failed batch that handed out a
//! version, or once the engine refuses writes, the writer mints nothing
//! (`ApplyError::CannotMint`: the coordinator hands the write to another
//! replica) until it has recorded a new incarnation (a new name, whose
//! counters nobody has seen). A store whose engine is poisoned (a failed
//! fsync: ENOSPC, EIO) is first reopened: every `storage_reopen_interval_ms`
//! the writer checks that the disk takes writes again (a small fsynced
//! probe file), closes the engine and opens it again from what is durable.
//!
//! # Minting on the event loop
//!
//! A coordinator may also mint a version itself, on its event loop, from
//! the stored object as the engine holds it in memory, and hand it out
//! before this thread sees the job (one thread hop less on a put's path).
//! That is safe only when the stored object is the newest this store has
//! minted for the key: the writer publishes what the coordinator needs in
//! a [`MintGate`]: the name and floor new versions are minted under
//! (nothing while minting is stopped, set before the jobs of a failed
//! batch are answered), and the number of the last job whose group is
//! done ([`WriterQueue`](super::WriterQueue) numbers jobs in queue order),
//! published once its batch is in the engine (or failed). The coordinator
//! mints only for a key whose earlier minting jobs are all done. Such a
//! job comes with `handed_out`: a failed batch stops minting as for a
//! version this thread handed out, and so does the job failing on its own
//! (its stored object unreadable); it is never refused for not minting
//! (its version is out already). A version whose job the queue refuses (full
//! or closed) is never handed out: no later mint of the key would see it.
//!
//! # Reaps and the counter floor
//!
//! A reap (`WriterJob::Reap`, from `repair::reap`) is a compare-and-delete
//! in the same read-modify-write as every other job: its check runs
//! against the stored object as this group sees it, so a write that landed
//! since the reaper looked (not dominated by the tombstone) is kept. The
//! check also names the highest counter of this store's own dots in the
//! tombstone: the writer raises its counter floor (`MintAs`) to it and
//! writes the floor (`keys::COUNTER_FLOOR_KEY`) first in the same batch as
//! the delete, so the floor is durable whenever the delete is. Every
//! mutation mints above the floor, so a key whose object is gone never
//! gets a dot it had before. After a batch with reaps, the engine may drop
//! its delete markers at compaction (`Engine::allow_delete_purge`).
//!
//! A reaped key (or one that held nothing when the reap reached it) keeps
//! a shadow for a while (`shadows.rs`): a non-minting write arriving at
//! the key while it holds nothing is not stored if the reaped tombstone
//! covers what it would store. That is content read before the delete
//! reached its source and still in flight at the reap (an anti-entropy
//! page, a handoff push, a read repair); without the shadow it would bring
//! the deleted value back.
//!
//! # Hints
//!
//! A stand-in's write carries `hint_for`: the hint (`keys::hint_key`) goes
//! into the same batch as the object, so it is durable when the write is
//! acknowledged. The writer keeps the count and bytes of hints per owner
//! (rebuilt from the hints namespace at start and after a reopen) and
//! refuses a hint past `hints_bytes_max_per_target` (`HintsFull`) before
//! anything is written. Delivery removes a hint only if it still has the
//! `seq` that was delivered.
//!
//! # Merkle leaves
//!
//! Each read-modify-write that stores a new object notes its leaf delta
//! (`tree::TreeWriter::note`, with the old and new bytes it has anyway);
//! the group's deltas are added once its batch is durable, and a failed
//! batch or a reopen starts a rebuild, scanned a page after each group
//! and while idle (see `tree.rs`).

mod answer;
mod event_loop;
mod gate;
mod group;
mod hints;
mod recovery;

pub use answer::{Answer, Deliver};
pub use event_loop::{LoopWake, GATHER_IDLE_YIELDS, GATHER_YIELDS_MAX};
pub use gate::{MintGate, MintState, Publish};

use fnv::FnvHashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::engine::{Engine, StorageError};
use super::keys;
use super::shadows::Shadows;
use super::tree::{KeyTree, TreeWriter};
use super::worker::{current, EngineSlot, MintAs, WriterJob};
use crate::NodeId;

/// How often an idle writer checks whether it can recover, in milliseconds.
const RECOVERY_TICK_MS: u64 = 100;

/// Opens the store again (the same files), with this build's layout.
pub type Reopen = Box<dyn FnMut() -> Result<Arc<dyn Engine>, StorageError> + Send>;
/// Checks that the disk takes writes.
pub type Probe = Box<dyn FnMut() -> Result<(), String> + Send>;
/// Records a new incarnation durably and returns it.
pub type RenewIncarnation = Box<dyn FnMut() -> Result<u32, String> + Send>;

/// How the writer reaches the world beyond the engine.
pub struct Backend {
    /// Opens the store again after it was poisoned (`None`: it cannot be;
    /// the node must be restarted).
    pub reopen: Option<Reopen>,
    /// Whether the disk takes writes again (a small fsynced file), checked
    /// before a reopen is tried.
    pub probe: Option<Probe>,
    /// Records a new incarnation of the store durably and returns it.
    pub renew_incarnation: RenewIncarnation,
}

impl Backend {
    /// For a store kept in memory: nothing to reopen, and an incarnation
    /// is only a random number.
    pub fn in_memory() -> Self {
        Self {
            reopen: None,
            probe: None,
            renew_incarnation: Box::new(|| Ok(rand::random())),
        }
    }
}

/// The writer's limits; each named with its unit.
#[derive(Clone, Copy, Debug)]
pub struct WriterLimits {
    /// Most jobs in one group.
    pub batch_max: usize,
    /// Incoming bytes a group stops taking jobs at.
    pub batch_bytes_max: usize,
    /// Bytes of hints (the objects' sizes) held for one owner.
    pub hints_bytes_max_per_target: u64,
    /// Time between attempts to reopen a poisoned store (or to record a
    /// new incarnation), in milliseconds.
    pub reopen_interval_ms: u64,
}

/// The writer's state; owned by its thread (or, inline, by the actor).
pub(crate) struct Writer {
    slot: EngineSlot,
    backend: Backend,
    node: NodeId,
    mint: MintState,
    /// What mutations mint as: `mint.version_actor` and the counter floor
    /// (durable; raised by reaps).
    mint_as: MintAs,
    /// Per owner: hints held and their bytes.
    hints: FnvHashMap<NodeId, (u64, u64)>,
    /// The last hint `seq` given out.
    hint_seq: u64,
    limits: WriterLimits,
    publish: Publish,
    /// When recovery was last tried (on the caller's monotonic clock, ms).
    last_attempt_ms: Option<u64>,
    /// The Merkle leaves kept as data changes (`tree.rs`).
    tree: TreeWriter,
    /// Reaped keys' shadows (`shadows.rs`).
    shadows: Shadows,
    /// Where a group's answers go (see [`Deliver`]).
    deliver: Option<Deliver>,
    /// What coordinators mint on their own thread with.
    gate: Arc<MintGate>,
}

impl Writer {
    /// A writer for the store in `slot`, minting as `node` in
    /// `incarnation`; counts the hints held.
    pub(crate) fn new(
        slot: EngineSlot,
        backend: Backend,
        node: NodeId,
        incarnation: u32,
        limits: WriterLimits,
        publish: Publish,
        tree: Arc<KeyTree>,
    ) -> Result<Self, StorageError> {
        let mut writer = Self {
            slot,
            backend,
            mint: MintState {
                version_actor: node.version_actor(incarnation),
                stopped: None,
            },
            mint_as: MintAs {
                actor: node.version_actor(incarnation),
                counter_floor: 0,
            },
            node,
            hints: FnvHashMap::default(),
            hint_seq: 0,
            limits,
            publish,
            last_attempt_ms: None,
            tree: TreeWriter::new(tree),
            shadows: Shadows::default(),
            deliver: None,
            gate: Arc::default(),
        };
        writer.count_hints()?;
        writer.mint_as.counter_floor = keys::read_counter_floor(&*current(&writer.slot))?;
        writer.publish_mint();
        Ok(writer)
    }

    /// The gate coordinators mint through on their own thread.
    pub(crate) fn gate(&self) -> Arc<MintGate> {
        self.gate.clone()
    }

    /// Reports the minting state (after each change), to the gate first.
    fn publish_mint(&mut self) {
        let minting = self.mint.stopped.is_none().then(|| self.mint_as.clone());
        self.gate.set(minting);
        (self.publish)(self.mint.clone());
    }

    /// Hands each group's answers to `deliver` from now on.
    pub(crate) fn deliver_through(&mut self, deliver: Deliver) {
        self.deliver = Some(deliver);
    }

    /// Sends `answers` through the caller's thread (one wake-up for all),
    /// or here when there is none.
    fn hand_over(&self, answers: Vec<Answer>) {
        if answers.is_empty() {
            return;
        }
        let answers = match &self.deliver {
            Some(deliver) => match deliver.send(answers) {
                Ok(()) => return,
                Err(refused) => refused.0,
            },
            None => answers,
        };
        answers.into_iter().for_each(Answer::send);
    }

    /// Rebuilds the Merkle leaves at once (inline mode: a store in memory).
    pub(crate) fn rebuild_tree_all(&mut self) -> Result<(), StorageError> {
        self.tree.rebuild_all(&*current(&self.slot))
    }

    /// The minting state now.
    pub(crate) fn mint_state(&self) -> MintState {
        self.mint.clone()
    }

    /// Stops minting as a failed batch does.
    #[cfg(test)]
    pub(crate) fn stop_minting_for_test(&mut self, reason: &str) {
        self.stop_minting(reason.into());
    }

    /// The counter floor now (see "Reaps and the counter floor").
    #[cfg(test)]
    pub(crate) fn counter_floor(&self) -> u64 {
        self.mint_as.counter_floor
    }

    /// The writer loop: runs until every sender is dropped, then flushes
    /// the engine (for a clean stop) and says whether that worked.
    pub(crate) fn run(mut self, jobs: Receiver<(u64, WriterJob)>) -> Result<(), String> {
        let tick = Duration::from_millis(RECOVERY_TICK_MS);
        let started = Instant::now();
        let now_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut rebuild_failed = false;
        loop {
            // While the Merkle leaves are rebuilt, idle time scans for them.
            // A page that failed to scan waits a tick like an idle writer.
            let first = if self.tree.rebuilding() && !rebuild_failed {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        rebuild_failed = !self.tree.rebuild_step(&*current(&self.slot));
                        self.recover(now_ms());
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                rebuild_failed = false;
                match jobs.recv_timeout(tick) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        self.recover(now_ms());
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let (group, last) = self.take_group(first, &jobs);
            self.group_through(group, Some(last));
            self.recover(now_ms());
        }
        debug!("storage writer stopped");
        self.finish()
    }

    /// The writer loop as a task on the runtime's clock
    /// (`StorageThreading::Task`, for deterministic simulations): every
    /// `every` it takes one group of what is queued, as [`Writer::run`]
    /// does on its thread (or, with nothing queued, a page of a Merkle
    /// rebuild), and tries to recover; it ends as `run` does once every
    /// sender is dropped. Jobs wait in the queue in between, so their
    /// callers meet a writer that lags behind them, as a real one does.
    pub(crate) async fn run_on_clock(
        mut self,
        jobs: Receiver<(u64, WriterJob)>,
        every: Duration,
    ) -> Result<(), String> {
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match jobs.try_recv() {
                Ok(first) => {
                    let (group, last) = self.take_group(first, &jobs);
                    self.group_through(group, Some(last));
                }
                Err(TryRecvError::Empty) => {
                    if self.tree.rebuilding() {
                        self.tree.rebuild_step(&*current(&self.slot));
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            }
            self.recover(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
        debug!("storage writer stopped");
        self.finish()
    }

    /// The end of the writer loop: flushes the engine (for a clean stop)
    /// and says whether that worked.
    fn finish(&self) -> Result<(), String> {
        if self.mint.stopped.is_some() {
            return Err("the store failed a write and was not recovered".into());
        }
        current(&self.slot).flush().map_err(|e| e.to_string())
    }
}
