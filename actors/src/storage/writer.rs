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

use fnv::FnvHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::engine::{Engine, StorageError};
use super::group_writes::GroupWrites;
use super::keys::{self, HintRecord};
use super::shadows::Shadows;
use super::tree::{KeyTree, TreeDeltas, TreeWriter};
use super::worker::{
    clone_error, current, ApplyError, ApplyJob, Closed, EngineSlot, HintCounts, MintAs, WriterJob,
};
use crate::NodeId;

/// How often an idle writer checks whether it can recover, in milliseconds.
const RECOVERY_TICK_MS: u64 = 100;
/// Longest wait for the reader threads to let go of a poisoned engine
/// before it is closed, in milliseconds.
const CLOSE_WAIT_MS: u64 = 5_000;
/// Hint records read per page while counting them.
const HINT_SCAN_PAGE_ENTRIES: usize = 1024;

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

/// Whether this store mints new versions, and under which name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintState {
    /// The name new versions are minted under.
    pub version_actor: NodeId,
    /// Why minting is stopped (`None`: it is not).
    pub stopped: Option<String>,
}

/// What the writer reports: its minting state after each change.
pub type Publish = Box<dyn FnMut(MintState) + Send>;

/// What a coordinator needs to mint a version on its own thread (see
/// "Minting on the event loop"), kept current by the writer.
#[derive(Debug, Default)]
pub struct MintGate {
    /// The name and floor new versions are minted under; `None` while
    /// minting is stopped.
    minting: Mutex<Option<MintAs>>,
    /// The number of the last queued job whose group is done: written to
    /// the engine (so a read from memory sees it), or failed.
    done: AtomicU64,
}

impl MintGate {
    /// How to mint now; `None` while minting is stopped.
    pub fn minting_as(&self) -> Option<MintAs> {
        self.minting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The number of the last queued job whose group is done.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    fn set(&self, minting: Option<MintAs>) {
        *self
            .minting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = minting;
    }
}

/// One answer of the writer to a caller, sent where the callers wait.
pub enum Answer {
    /// A version minted for a coordinator's write, before its batch is
    /// written.
    Minted(oneshot::Sender<Vec<u8>>, Vec<u8>),
    /// An apply job's result, once its batch is written (or not).
    Applied(
        oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
        Result<Option<Vec<u8>>, ApplyError>,
    ),
    /// A hint clear's result.
    Cleared(
        oneshot::Sender<Result<(), StorageError>>,
        Result<(), StorageError>,
    ),
    /// A reap's result: whether the object was removed.
    Reaped(
        oneshot::Sender<Result<bool, StorageError>>,
        Result<bool, StorageError>,
    ),
}

impl Answer {
    /// Sends it; the caller may have timed out and gone, which is fine.
    pub fn send(self) {
        match self {
            Answer::Minted(reply, bytes) => {
                let _ = reply.send(bytes);
            }
            Answer::Applied(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Cleared(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Reaped(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

/// Where the writer hands a group's answers, all at once: the thread the
/// callers' tasks run on (the Storage actor's), which sends each, so
/// waking them is a same-thread wake-up. Without it (or once that end is
/// gone) the writer sends them itself, one cross-thread wake-up each.
pub type Deliver = tokio::sync::mpsc::UnboundedSender<Vec<Answer>>;

/// The answer a job of a group gets once the batch is written (or not).
enum Outcome {
    Apply(
        oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
        u64,
        Option<Vec<u8>>,
    ),
    Clear(oneshot::Sender<Result<(), StorageError>>),
    Reap(oneshot::Sender<Result<bool, StorageError>>, bool),
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

    /// Rebuilds the per-owner hint counts from the hints namespace.
    fn count_hints(&mut self) -> Result<(), StorageError> {
        let engine = current(&self.slot);
        let (mut cursor, end) = keys::hint_range(None);
        self.hints.clear();
        loop {
            let page = engine.scan(&cursor, Some(&end), HINT_SCAN_PAGE_ENTRIES)?;
            let full = page.len() == HINT_SCAN_PAGE_ENTRIES;
            for (key, value) in &page {
                let Some((owner, _)) = keys::parse_hint_key(key) else {
                    warn!(key = ?key, "a key in the hints namespace is not a hint; ignored");
                    continue;
                };
                let record = HintRecord::decode(value)?;
                let held = self.hints.entry(owner).or_default();
                held.0 += 1;
                held.1 += record.object_bytes;
                self.hint_seq = self.hint_seq.max(record.seq);
            }
            match page.last() {
                Some((last, _)) if full => {
                    cursor = last.clone();
                    cursor.push(0);
                }
                _ => return Ok(()),
            }
        }
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

    /// One group: `first` and what else is queued, up to the batch limits;
    /// with the number of its last job.
    fn take_group(
        &self,
        (mut last, first): (u64, WriterJob),
        jobs: &Receiver<(u64, WriterJob)>,
    ) -> (Vec<WriterJob>, u64) {
        let mut bytes = first.bytes();
        let mut group = vec![first];
        while group.len() < self.limits.batch_max && bytes < self.limits.batch_bytes_max {
            match jobs.try_recv() {
                Ok((number, job)) => {
                    bytes += job.bytes();
                    group.push(job);
                    last = number;
                }
                Err(_) => break,
            }
        }
        (group, last)
    }

    /// The end of the writer loop: flushes the engine (for a clean stop)
    /// and says whether that worked.
    fn finish(&self) -> Result<(), String> {
        if self.mint.stopped.is_some() {
            return Err("the store failed a write and was not recovered".into());
        }
        current(&self.slot).flush().map_err(|e| e.to_string())
    }

    /// Applies one group of jobs and answers each (one engine write batch).
    pub(crate) fn group(&mut self, jobs: Vec<WriterJob>) {
        self.group_through(jobs, None);
    }

    /// [`Writer::group`] of the queued jobs numbered up to `last`: the
    /// gate says they are done once the batch is in the engine (or failed),
    /// before any of them is answered.
    fn group_through(&mut self, jobs: Vec<WriterJob>, last: Option<u64>) {
        let engine = current(&self.slot);
        if engine.is_poisoned() && self.mint.stopped.is_none() {
            self.stop_minting("the store refuses writes (a write to disk failed)".into());
        }
        let mut writes = GroupWrites::with_capacity(jobs.len());
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut deltas: Vec<(NodeId, i64, i64)> = Vec::new();
        let mut seq = self.hint_seq;
        let mut minted_any = false;
        // The versions minted in this group, handed out together before
        // the batch is written.
        let mut minted_out: Vec<Answer> = Vec::new();
        let mut tree = TreeDeltas::new();
        let (floor_before, mut reaped) = (self.mint_as.counter_floor, 0usize);
        let now = Instant::now();
        self.shadows.expire(now);
        for job in jobs {
            match job {
                WriterJob::HintCounts { reply } => {
                    let _ = reply.send(self.hint_counts());
                }
                WriterJob::HintsPending { keys, reply } => {
                    let _ = reply.send(self.hints_pending(&*engine, &writes, &keys));
                }
                WriterJob::Reap {
                    key,
                    decide,
                    shadow,
                    reply,
                } => {
                    let stored = match read(&*engine, &writes, &key) {
                        Ok(stored) => stored,
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                    };
                    match decide(stored.as_deref(), &self.mint.version_actor) {
                        Ok(verdict) => {
                            // Raised at once: a mint later in this group
                            // already sees it (a failed batch leaves it
                            // high, which only skips counters).
                            self.mint_as.counter_floor =
                                self.mint_as.counter_floor.max(verdict.counter_floor);
                            // Before the delete is in the engine: a
                            // coordinator that reads the key gone from
                            // memory mints above the floor.
                            if self.mint.stopped.is_none() {
                                self.gate.set(Some(self.mint_as.clone()));
                            }
                            let delete = verdict.delete && stored.is_some();
                            if delete {
                                self.tree.note(&key, stored.as_deref(), None, &mut tree);
                                writes.delete(key.clone());
                                reaped += 1;
                            }
                            // Cast at once (a write later in this group sees
                            // it); if the batch fails the object is still
                            // stored, and a shadow only ever drops versions
                            // the delete superseded.
                            if delete || stored.is_none() {
                                self.shadows.cast(key, shadow, now);
                            }
                            outcomes.push(Outcome::Reap(reply, delete));
                        }
                        Err(why) => {
                            warn!(key = ?key, error = %why, "reap: the stored object does not decode; kept");
                            let _ = reply.send(Ok(false));
                        }
                    }
                }
                WriterJob::ClearHint {
                    owner,
                    key,
                    seq: delivered,
                    reply,
                } => {
                    let hint = keys::hint_key(&owner, &key);
                    match read(&*engine, &writes, &hint) {
                        Ok(Some(bytes)) => match HintRecord::decode(&bytes) {
                            Ok(record) if record.seq == delivered => {
                                writes.delete(hint);
                                deltas.push((owner, -1, -(record.object_bytes as i64)));
                                outcomes.push(Outcome::Clear(reply));
                            }
                            // Hinted again since: delivered again later.
                            Ok(_) => outcomes.push(Outcome::Clear(reply)),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        },
                        Ok(None) => outcomes.push(Outcome::Clear(reply)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                WriterJob::Apply(job) => {
                    // A version handed out already is stored even while
                    // minting is stopped: its dot is fresh (see "Minting
                    // on the event loop").
                    let minting = job.minted.is_some() && !job.handed_out;
                    if minting {
                        if let Some(reason) = &self.mint.stopped {
                            let reason = reason.clone();
                            let _ = job.reply.send(Err(ApplyError::CannotMint { reason }));
                            continue;
                        }
                    }
                    let trace = job.trace;
                    let handed_out = job.handed_out;
                    let applied = self.apply(
                        &*engine,
                        (&mut writes, &mut minted_out),
                        (&mut deltas, &mut tree),
                        &mut seq,
                        job,
                    );
                    match applied {
                        Some((reply, stored, minted)) => {
                            minted_any |= minted;
                            outcomes.push(Outcome::Apply(reply, trace, stored));
                        }
                        // Answered with an error: a version out already is
                        // not in the store, and a later mint would not see
                        // its dot.
                        None if handed_out => self.stop_minting(
                            "a version this node minted on its event loop and handed out could not be stored".into(),
                        ),
                        None => {}
                    }
                }
            }
        }
        // First in the batch: durable whenever the deletes are.
        let floor = (self.mint_as.counter_floor > floor_before)
            .then(|| keys::counter_floor_op(self.mint_as.counter_floor));
        self.hand_over(minted_out);
        let ops = writes.into_batch(floor);
        let writes = ops.len();
        let committed = if ops.is_empty() {
            Ok(())
        } else {
            engine.write_batch_owned(ops)
        };
        if reaped > 0 && committed.is_ok() {
            debug!(
                reaped,
                counter_floor = self.mint_as.counter_floor,
                "reaped tombstones removed"
            );
            engine.allow_delete_purge();
        }
        match &committed {
            Ok(()) => {
                if writes > 0 {
                    debug!(writes, "storage group commit");
                }
                self.hint_seq = seq;
                self.tree.commit(&tree);
                for (owner, count, bytes) in deltas {
                    let held = self.hints.entry(owner.clone()).or_default();
                    held.0 = held.0.saturating_add_signed(count);
                    held.1 = held.1.saturating_add_signed(bytes);
                    if held.0 == 0 {
                        self.hints.remove(&owner);
                    }
                }
            }
            Err(e) => {
                error!(error = %e, writes, "storage write batch failed");
                self.tree.restart("a write batch failed");
                if minted_any {
                    self.stop_minting(format!(
                        "a write batch failed after this node handed out a version it minted: {e}"
                    ));
                }
            }
        }
        if let Some(last) = last {
            self.gate.done.fetch_max(last, Ordering::SeqCst);
        }
        let answers = outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Apply(reply, trace, stored) => {
                    let result = match &committed {
                        Ok(()) => Ok(stored),
                        Err(e) => Err(ApplyError::Storage(clone_error(e))),
                    };
                    if let Err(e) = &result {
                        debug!(req = %format_args!("{trace:x}"), error = %e, "apply failed");
                    }
                    Answer::Applied(reply, result)
                }
                Outcome::Clear(reply) => {
                    Answer::Cleared(reply, committed.as_ref().map_err(clone_error).copied())
                }
                Outcome::Reap(reply, deleted) => Answer::Reaped(
                    reply,
                    committed.as_ref().map_err(clone_error).map(|_| deleted),
                ),
            })
            .collect();
        self.hand_over(answers);
        // A rebuild of the Merkle leaves goes on between groups.
        self.tree.rebuild_step(&*engine);
    }

    /// Runs one apply job into the group: its mutation, its hint. Returns
    /// its reply, what to answer when the batch is durable and whether it
    /// handed out a minted version; `None` when it was answered already
    /// (refused).
    #[allow(clippy::type_complexity)]
    fn apply(
        &self,
        engine: &dyn Engine,
        (writes, minted_out): (&mut GroupWrites, &mut Vec<Answer>),
        (deltas, tree): (&mut Vec<(NodeId, i64, i64)>, &mut TreeDeltas),
        seq: &mut u64,
        job: ApplyJob,
    ) -> Option<(
        oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
        Option<Vec<u8>>,
        bool,
    )> {
        // A hint past the owner's byte bound is refused before anything
        // is written.
        let mut previous_hint: Option<HintRecord> = None;
        if let Some(owner) = &job.hint_for {
            let hint = keys::hint_key(owner, &job.user_key);
            previous_hint = match read(engine, writes, &hint)
                .and_then(|v| v.as_deref().map(HintRecord::decode).transpose())
            {
                Ok(record) => record,
                Err(e) => {
                    let _ = job.reply.send(Err(ApplyError::Storage(e)));
                    return None;
                }
            };
            let held = self.hints.get(owner).map_or(0, |h| h.1) as i64
                + deltas
                    .iter()
                    .filter(|d| d.0 == *owner)
                    .map(|d| d.2)
                    .sum::<i64>();
            let before = previous_hint.map_or(0, |r| r.object_bytes) as i64;
            let after = held - before + job.bytes as i64;
            let limit = self.limits.hints_bytes_max_per_target;
            if after > limit as i64 && job.bytes as i64 > before {
                let error = ApplyError::HintsFull {
                    owner: owner.clone(),
                    held_bytes: held.max(0) as u64,
                    limit,
                };
                let _ = job.reply.send(Err(error));
                return None;
            }
        }
        let current = match read(engine, writes, &job.key) {
            Ok(current) => current,
            Err(e) => {
                let _ = job.reply.send(Err(ApplyError::Storage(e)));
                return None;
            }
        };
        let (stored, object_bytes, minted) = match (job.mutation)(current.as_deref(), &self.mint_as)
        {
            Err(refusal) => {
                let _ = job.reply.send(Err(ApplyError::Rejected(refusal)));
                return None;
            }
            Ok(None) => {
                let len = current.as_ref().map_or(0, Vec::len);
                (current, len, false)
            }
            Ok(Some(new))
                if current.is_none()
                    && job.minted.is_none()
                    && !job.handed_out
                    && self.shadows.covers(&job.key, &new) =>
            {
                // Superseded by a reaped delete: nothing is stored, and
                // no hint is kept for it.
                debug!(req = %format_args!("{:x}", job.trace), "a write the reaped tombstone covers; not stored");
                return Some((job.reply, None, false));
            }
            Ok(Some(new)) => {
                let len = new.len();
                self.tree
                    .note(&job.key, current.as_deref(), Some(&new), tree);
                writes.put(job.key, new.clone());
                // Handed over once: through `minted` when asked, with the
                // group's other minted versions before its batch is
                // written (the caller may have gone; the write goes on),
                // else with the reply.
                match job.minted {
                    Some(minted) => {
                        // Nobody waits for it (a write with no other
                        // replica to send it to): not handed over.
                        if !minted.is_closed() {
                            minted_out.push(Answer::Minted(minted, new));
                        }
                        (None, len, true)
                    }
                    None => (Some(new), len, job.handed_out),
                }
            }
        };
        if let Some(owner) = job.hint_for {
            *seq += 1;
            let record = HintRecord {
                seq: *seq,
                object_bytes: object_bytes as u64,
            };
            let hint = keys::hint_key(&owner, &job.user_key);
            let value = record.encode();
            writes.put(hint, value);
            let before = previous_hint.map_or(0, |r| r.object_bytes as i64);
            let new_hint = i64::from(previous_hint.is_none());
            deltas.push((owner, new_hint, object_bytes as i64 - before));
        }
        Some((job.reply, stored, minted))
    }

    /// Whether any owner's hint is held for each of `user_keys` (as this
    /// group sees the store).
    fn hints_pending(
        &self,
        engine: &dyn Engine,
        writes: &GroupWrites,
        user_keys: &[Vec<u8>],
    ) -> Result<Vec<bool>, StorageError> {
        let mut pending = Vec::with_capacity(user_keys.len());
        for key in user_keys {
            let mut held = false;
            for owner in self.hints.keys() {
                if read(engine, writes, &keys::hint_key(owner, key))?.is_some() {
                    held = true;
                    break;
                }
            }
            pending.push(held);
        }
        Ok(pending)
    }

    /// Hints held, per owner.
    fn hint_counts(&self) -> HintCounts {
        let mut counts: HintCounts = self
            .hints
            .iter()
            .map(|(owner, (count, bytes))| (owner.clone(), *count, *bytes))
            .collect();
        counts.sort();
        counts
    }

    fn stop_minting(&mut self, reason: String) {
        error!(%reason, "this node stops minting new versions until it has a new incarnation; writes go to other replicas");
        self.mint.stopped = Some(reason);
        self.publish_mint();
    }

    /// After a failure: reopens a poisoned store when the disk takes writes
    /// again, then records a new incarnation and mints again. At most once
    /// per `storage_reopen_interval_ms` of `now_ms`, a monotonic reading
    /// in milliseconds (the writer thread's own; the inline actor's
    /// runtime clock, so a simulation's time counts).
    pub(crate) fn recover(&mut self, now_ms: u64) {
        if self.mint.stopped.is_none() {
            return;
        }
        if self
            .last_attempt_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < self.limits.reopen_interval_ms)
        {
            return;
        }
        self.last_attempt_ms = Some(now_ms);
        // Read apart from the reopen: it waits for every other reference to
        // the engine to go.
        let poisoned = current(&self.slot).is_poisoned();
        if poisoned && !self.reopen() {
            return;
        }
        match (self.backend.renew_incarnation)() {
            Ok(incarnation) => {
                self.mint = MintState {
                    version_actor: self.node.version_actor(incarnation),
                    stopped: None,
                };
                self.mint_as.actor = self.mint.version_actor.clone();
                info!(version_actor = %self.mint.version_actor,
                    "new store incarnation after a failed write: minting again");
                self.publish_mint();
            }
            Err(e) => warn!(error = %e, "cannot record a new incarnation yet; still not minting"),
        }
    }

    /// Closes the poisoned engine and opens the store again; whether it
    /// worked.
    fn reopen(&mut self) -> bool {
        let Some(reopen) = self.backend.reopen.as_mut() else {
            return false;
        };
        if let Some(probe) = self.backend.probe.as_mut() {
            if let Err(e) = probe() {
                debug!(error = %e, "the disk does not take writes yet; not reopening the store");
                return false;
            }
        }
        let old = {
            let mut slot = match self.slot.write() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(
                &mut *slot,
                Arc::new(Closed("the store is being reopened".into())),
            )
        };
        // Readers hold the engine only for one call: wait until they let go.
        let deadline = Instant::now() + Duration::from_millis(CLOSE_WAIT_MS);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if Arc::strong_count(&old) > 1 {
            warn!("the poisoned store is still in use; reopening it later");
            self.set_engine(old);
            return false;
        }
        drop(old);
        match reopen() {
            Ok(engine) => {
                self.set_engine(engine);
                self.tree.restart("the store was reopened");
                if let Err(e) = self.count_hints() {
                    warn!(error = %e, "cannot count the hints of the reopened store");
                }
                match keys::read_counter_floor(&*current(&self.slot)) {
                    Ok(floor) => self.mint_as.counter_floor = self.mint_as.counter_floor.max(floor),
                    Err(e) => {
                        warn!(error = %e, "cannot read the counter floor of the reopened store")
                    }
                }
                info!("store reopened after a failed write");
                true
            }
            Err(e) => {
                warn!(error = %e, "reopening the store failed; retrying later");
                self.set_engine(Arc::new(Closed(format!("reopening the store failed: {e}"))));
                false
            }
        }
    }

    fn set_engine(&self, engine: Arc<dyn Engine>) {
        match self.slot.write() {
            Ok(mut slot) => *slot = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
    }
}

/// The value of `key` as the group sees it: written earlier in the group,
/// or in the engine.
fn read(
    engine: &dyn Engine,
    writes: &GroupWrites,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    match writes.get(key) {
        Some(value) => Ok(value.map(<[u8]>::to_vec)),
        None => engine.get(key),
    }
}
