//! The Storage actor: a thin shell that queues requests for the engine's own
//! threads (the writer, `writer.rs`; the readers, `worker.rs`) and hands
//! the answers back. It never blocks its arbiter: a full queue is answered
//! `Overloaded` at once. A point read the engine can answer from memory
//! (memtables, cached blocks: `Engine::get_cached`) is answered in the
//! handler, without the two thread wake-ups of a reader's round trip.
//!
//! Keys: `LocalRead` and `LocalApply` take user keys; `LocalScan` takes and
//! returns storage keys (token + user key, see `ring::storage_key`); the
//! data namespace of the engine's keyspace (`keys`) is added here.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix::prelude::*;
use futures_util::stream;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn, Instrument as _};

use super::engine::{Engine, StorageError};
use super::keys::{self, HintRecord};
use super::tree::{self, KeyTree, TreeDigest, TreeSnapshot};
use super::worker::{
    self, ApplyError, EngineSlot, HeldHint, HintCounts, KeyListing, ListBounds, LiveFilter,
    Mutation, Page, ReadJob, ReapDecide, ReapShadow, WriterJob,
};
use super::writer::{Answer, Backend, MintState, Writer, WriterLimits};
pub use super::writer_queue::{AppliedLater, MintPermit, WriterQueue};
use crate::ring::storage_key;
use crate::NodeId;

/// Default of [`StorageOptions::hints_bytes_max_per_target`]: 1 GiB of
/// writes held for one replica that is away.
pub const HINTS_BYTES_MAX_PER_TARGET_DEFAULT: u64 = 1 << 30;

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
    /// ([`Writer::run_on_clock`]); reads served in place. For
    /// deterministic simulations of the path `Threads` takes: jobs wait
    /// in the writer's queue, coordinators mint on their own thread
    /// through the mint gate and read the engine's memory directly
    /// ([`MemoryReads`]), and the writer's answers come back a group at a
    /// time. Only for engines that never block, as `Inline`.
    Task {
        /// Time between two groups, in milliseconds (at least 1).
        every_ms: u64,
    },
}

impl StorageThreading {
    /// Whether reads are served in place rather than by reader threads.
    fn reads_in_place(self) -> bool {
        self != StorageThreading::Threads
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
            merkle_digest: tree::raw_digest(),
        }
    }
}

/// Read the stored bytes of `key` (a user key).
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, StorageError>")]
pub struct LocalRead {
    /// The key.
    pub key: Vec<u8>,
}

/// Scan storage keys `[start, end)` (token prefix, then the user key; see
/// [`crate::ring::TokenRange::storage_ranges`]), at most `limit` entries and
/// about `bytes_max` bytes (one entry always fits), in order. For handoff
/// and anti-entropy streaming.
#[derive(Message)]
#[rtype(result = "Result<Page, StorageError>")]
pub struct LocalScan {
    /// First storage key (inclusive).
    pub start: Vec<u8>,
    /// End (exclusive); `None`: to the end.
    pub end: Option<Vec<u8>>,
    /// Most entries to return.
    pub limit: usize,
    /// Bytes of keys and values at which the page stops.
    pub bytes_max: usize,
}

/// The live keys among storage keys `[start, end)` (`end` `None`: to the
/// end), in order, within `bounds` (the key listing's replica side; read
/// on the reader threads like a scan). Keys in the answer are storage keys.
#[derive(Message)]
#[rtype(result = "Result<KeyListing, StorageError>")]
pub struct LocalListKeys {
    /// First storage key (inclusive).
    pub start: Vec<u8>,
    /// End (exclusive); `None`: to the end.
    pub end: Option<Vec<u8>>,
    /// Keys, entries and bytes at which the page stops.
    pub bounds: ListBounds,
    /// Whether an object is live (the caller knows objects).
    pub live: LiveFilter,
}

/// Atomically read, transform and write the value of `key`; answers with
/// the value stored afterwards, once durable.
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, ApplyError>")]
pub struct LocalApply {
    /// The key.
    pub key: Vec<u8>,
    /// The transformation, run on the writer thread.
    pub mutation: Mutation,
    /// The client request served (for logs).
    pub trace: u64,
    /// Bytes the write brings in (the object or value), for the group
    /// commit's byte bound.
    pub bytes: usize,
    /// Set when the mutation mints a new version: gets it as soon as the
    /// mutation made it, before it is durable (the answer then says only
    /// whether it became durable: `None` in place of the value); dropped
    /// unsent when the mutation refuses or changes nothing, or the job is
    /// not run (`ApplyError::CannotMint`). A write coordinator sends it to
    /// the other replicas meanwhile (see `replicator::write`).
    pub minted: Option<oneshot::Sender<Vec<u8>>>,
    /// The mutation stores a version the coordinator minted on its own
    /// thread and handed out already (see `writer`, "Minting on the event
    /// loop"): it is stored even while the writer does not mint, and a
    /// failed batch stops minting as for a version the writer handed out.
    pub handed_out: bool,
    /// Sloppy quorum: this node stands in for this replica; a hint for it
    /// is written in the same batch.
    pub hint_for: Option<NodeId>,
}

/// A delivered hint: remove it if it still hints `seq`.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct ClearHint {
    /// The replica it was for.
    pub owner: NodeId,
    /// The user key.
    pub key: Vec<u8>,
    /// The hinting that was delivered.
    pub seq: u64,
}

/// Hints held for `owner`, in key order, after `after` (a user key), at
/// most `limit`.
#[derive(Message)]
#[rtype(result = "Result<Vec<HeldHint>, StorageError>")]
pub struct LocalHints {
    /// The replica.
    pub owner: NodeId,
    /// Where the previous page ended (`None`: from the first).
    pub after: Option<Vec<u8>>,
    /// Most hints to return.
    pub limit: usize,
}

/// How many hints are held, per owner (count, bytes).
#[derive(Message)]
#[rtype(result = "HintCounts")]
pub struct HintCountsQuery;

/// Whether any hint (for any owner) is held for each of `keys` (user
/// keys), in order.
#[derive(Message)]
#[rtype(result = "Result<Vec<bool>, StorageError>")]
pub struct HintsPending {
    /// The user keys.
    pub keys: Vec<Vec<u8>>,
}

/// A reap's compare-and-delete of `key` (see `writer.rs`, "Reaps and the
/// counter floor"): answers whether the object was removed, once durable.
#[derive(Message)]
#[rtype(result = "Result<bool, StorageError>")]
pub struct LocalReap {
    /// The user key.
    pub key: Vec<u8>,
    /// The check against the stored object.
    pub decide: ReapDecide,
    /// What the key keeps once its object is gone (or if it held none).
    pub shadow: ReapShadow,
}

/// A full compaction that drops the deletes of reaped tombstones (their
/// disk space comes back); runs on a reader thread.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct CompactStore;

/// Whether this node mints new versions now, and under which name; sent
/// to subscribers at each change (see `writer.rs`, "Minting").
#[derive(Message, Clone, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct StorageHealth(pub MintState);

/// Adds a subscriber to [`StorageHealth`]; it gets the current state at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeStorage(pub Recipient<StorageHealth>);

/// Stop taking writes and wait until the writer thread has finished every
/// write it took (answered, durable or failed) and flushed the engine.
/// Later writes are refused with `Stopped`. For a clean shutdown:
/// afterwards no version this node minted is still on its way to the
/// disk. Answers why the stop is not clean, if it is not.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CloseWrites;

/// The actor.
pub struct Storage {
    writes: WriterQueue,
    /// Answers when the writer thread has returned (`Threads` mode).
    writer_done: Option<oneshot::Receiver<Result<(), String>>>,
    reads: SyncSender<ReadJob>,
    slot: EngineSlot,
    options: StorageOptions,
    /// The writer itself in `StorageThreading::Inline` mode, and when it
    /// started on the runtime's clock (simulated time in a simulation).
    inline: Option<(Writer, tokio::time::Instant)>,
    /// In `StorageThreading::Task` mode until `started` spawns it: the
    /// writer's task.
    writer_task: Option<Pin<Box<dyn Future<Output = ()>>>>,
    /// What the writer reports (read in `started`).
    health: Option<mpsc::UnboundedReceiver<MintState>>,
    /// The writer's answers, a group at a time, sent on from here (read
    /// in `started`; `writer::Deliver`).
    deliveries: Option<mpsc::UnboundedReceiver<Vec<Answer>>>,
    last_health: Option<MintState>,
    subscribers: Vec<Recipient<StorageHealth>>,
    /// The Merkle leaves the writer keeps.
    tree: Arc<KeyTree>,
    span: tracing::Span,
}

impl Storage {
    /// Starts the engine's threads; the actor itself is started by the
    /// caller. New versions are minted as `node` in `incarnation` until a
    /// failure calls for another (through `backend`).
    pub fn new(
        node: &NodeId,
        engine: Arc<dyn Engine>,
        options: StorageOptions,
        backend: Backend,
        incarnation: u32,
    ) -> Result<Self, StorageError> {
        let span = tracing::info_span!("storage", node = %node, actor = "storage");
        let (write_tx, write_rx) = sync_channel(options.storage_queue_max);
        let (reads, read_rx) = sync_channel(options.storage_queue_max);
        let slot: EngineSlot = Arc::new(RwLock::new(engine));
        let (health_tx, health) = mpsc::unbounded_channel();
        let tree = Arc::new(KeyTree::new(options.merkle_digest.clone()));
        let limits = WriterLimits {
            batch_max: options.storage_batch_max.max(1),
            batch_bytes_max: options.storage_batch_bytes_max.max(1),
            hints_bytes_max_per_target: options.hints_bytes_max_per_target,
            reopen_interval_ms: options.storage_reopen_interval_ms,
        };
        let mut writer = Writer::new(
            slot.clone(),
            backend,
            node.clone(),
            incarnation,
            limits,
            Box::new(move |state| {
                let _ = health_tx.send(state);
            }),
            tree.clone(),
        )?;
        let writes = WriterQueue::new(write_tx, options.storage_queue_max, writer.gate());
        let mut storage = Self {
            writes,
            writer_done: None,
            reads,
            slot: slot.clone(),
            options,
            inline: None,
            writer_task: None,
            health: Some(health),
            deliveries: None,
            last_health: None,
            subscribers: Vec::new(),
            tree,
            span,
        };
        if storage.options.threading == StorageThreading::Inline {
            writer.rebuild_tree_all()?;
            storage.inline = Some((writer, tokio::time::Instant::now()));
            return Ok(storage);
        }
        let spawn_error = |e: std::io::Error| StorageError::Io {
            context: "starting the storage threads".into(),
            source: e,
        };
        let (deliver, deliveries) = mpsc::unbounded_channel();
        writer.deliver_through(deliver);
        storage.deliveries = Some(deliveries);
        let writer_span = storage.span.clone();
        let (done_tx, writer_done) = oneshot::channel();
        storage.writer_done = Some(writer_done);
        if let StorageThreading::Task { every_ms } = storage.options.threading {
            writer.rebuild_tree_all()?;
            let every = Duration::from_millis(every_ms.max(1));
            storage.writer_task = Some(Box::pin(
                async move {
                    let _ = done_tx.send(writer.run_on_clock(write_rx, every).await);
                }
                .instrument(writer_span),
            ));
            return Ok(storage);
        }
        std::thread::Builder::new()
            .name("ringkv-storage-w".into())
            .spawn(move || {
                let _guard = writer_span.enter();
                let _ = done_tx.send(writer.run(write_rx));
            })
            .map_err(spawn_error)?;
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..storage.options.storage_reader_threads.max(1) {
            let (slot, rx, reader_span) = (slot.clone(), read_rx.clone(), storage.span.clone());
            std::thread::Builder::new()
                .name(format!("ringkv-storage-r{i}"))
                .spawn(move || {
                    let _guard = reader_span.enter();
                    worker::run_reader(slot, rx)
                })
                .map_err(spawn_error)?;
        }
        Ok(storage)
    }

    /// Queues a read for the readers (or serves it here, inline).
    fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> ReadJob,
    ) -> ResponseFuture<Result<T, StorageError>> {
        let (reply, rx) = oneshot::channel();
        let job = job(reply);
        let queued = if self.options.threading.reads_in_place() {
            worker::serve_read(&*worker::current(&self.slot), job);
            Ok(())
        } else {
            worker::offer(&self.reads, job, self.options.storage_queue_max)
        };
        Box::pin(async move {
            queued?;
            rx.await.map_err(|_| StorageError::Stopped)?
        })
    }

    /// Queues a job for the writer that answers through a oneshot, and
    /// waits for its answer (the twin of [`Storage::read`]).
    fn ask_writer<T: Send + 'static>(
        &mut self,
        job: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> WriterJob,
    ) -> ResponseFuture<Result<T, StorageError>> {
        let (reply, rx) = oneshot::channel();
        let queued = self.write(job(reply));
        Box::pin(async move {
            queued?;
            rx.await.map_err(|_| StorageError::Stopped)?
        })
    }

    /// A point read answered here, on the arbiter, when the engine has
    /// it in memory (see [`MemoryReads`]); `None`: it needs a reader.
    fn read_from_memory(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        if self.inline.is_some() {
            return None;
        }
        cached_read(&self.slot, key)
    }

    /// The same reads from memory for the store's callers, without a
    /// message to this actor.
    pub fn memory_reads(&self) -> MemoryReads {
        MemoryReads {
            slot: self.inline.is_none().then(|| self.slot.clone()),
        }
    }

    /// Hands a job to the writer (or runs it here, inline).
    fn write(&mut self, job: WriterJob) -> Result<(), StorageError> {
        match self.inline.as_mut() {
            Some((writer, started)) => {
                writer.group(vec![job]);
                writer.recover(elapsed_ms(*started));
                Ok(())
            }
            None => self.writes.offer(job).map(|_| ()),
        }
    }

    /// The writer's queue, for callers that hand it `LocalApply` jobs
    /// directly ([`WriterQueue::apply`]); `None` when the writer runs
    /// inline (a simulation's store), where every job goes through this
    /// actor.
    pub fn writer_queue(&self) -> Option<WriterQueue> {
        self.inline.is_none().then(|| self.writes.clone())
    }
}

/// Milliseconds since `started` on the runtime's clock.
fn elapsed_ms(started: tokio::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Actor for Storage {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = self.span.enter();
        info!(
            queue_max = self.options.storage_queue_max,
            batch_max = self.options.storage_batch_max,
            readers = self.options.storage_reader_threads,
            "storage started"
        );
        if let Some(health) = self.health.take() {
            ctx.add_stream(stream::unfold(health, |mut rx| async move {
                rx.recv().await.map(|state| (state, rx))
            }));
        }
        if let Some(task) = self.writer_task.take() {
            ctx.spawn(task.into_actor(self));
        }
        if let Some(deliveries) = self.deliveries.take() {
            ctx.add_stream(stream::unfold(deliveries, |mut rx| async move {
                rx.recv().await.map(|answers| (Answers(answers), rx))
            }));
        }
        if self.inline.is_some() {
            let every = Duration::from_millis(self.options.storage_reopen_interval_ms.max(1));
            ctx.run_interval(every, |act, _| {
                if let Some((writer, started)) = act.inline.as_mut() {
                    writer.recover(elapsed_ms(*started));
                }
            });
        }
    }
}

impl StreamHandler<MintState> for Storage {
    fn handle(&mut self, state: MintState, _ctx: &mut Self::Context) {
        for s in &self.subscribers {
            s.do_send(StorageHealth(state.clone()));
        }
        self.last_health = Some(state);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

/// A group's answers from the writer thread (`writer::Deliver`).
struct Answers(Vec<Answer>);

impl StreamHandler<Answers> for Storage {
    /// Sends each answer: its caller's task runs on this thread, so each
    /// wakes it without a cross-thread wake-up.
    fn handle(&mut self, answers: Answers, _ctx: &mut Self::Context) {
        answers.0.into_iter().for_each(Answer::send);
    }

    /// The writer thread has ended; the actor goes on (reads, health).
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<SubscribeStorage> for Storage {
    type Result = ();

    fn handle(&mut self, msg: SubscribeStorage, _ctx: &mut Self::Context) {
        let state = self
            .last_health
            .clone()
            .or_else(|| self.inline.as_ref().map(|(writer, _)| writer.mint_state()));
        if let Some(state) = state {
            msg.0.do_send(StorageHealth(state));
        }
        self.subscribers.push(msg.0);
    }
}

/// `engine.get_cached(key)` of the engine in `slot`. The slot is only
/// tried: while the writer swaps in a reopened engine, reads go to the
/// readers, which wait for it. The read is made under the slot's read
/// lock rather than on a clone of the engine's `Arc`: a memory read takes
/// well under a microsecond, and the clone and its drop were two atomic
/// operations on a line every thread's reads share (0.7% of a one-node
/// GET's samples).
fn cached_read(slot: &EngineSlot, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
    slot.try_read().ok()?.get_cached(key)
}

/// Point reads the engine answers from memory (memtables, cached blocks:
/// `Engine::get_cached`), made by the caller on its own thread: what a
/// [`LocalRead`] starts with, without the message to the Storage actor and
/// its reply. A read that needs the disk still goes to Storage (`get`
/// answers `None`), and so does every read of a store served inline (a
/// simulation's).
#[derive(Clone)]
pub struct MemoryReads {
    slot: Option<EngineSlot>,
}

impl MemoryReads {
    /// Reads that always go to Storage.
    pub fn none() -> Self {
        Self { slot: None }
    }

    /// `key`'s stored bytes (as [`LocalRead`] answers), if the engine has
    /// them in memory; `None`: send a `LocalRead`.
    pub fn get(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        let slot = self.slot.as_ref()?;
        keys::with_user_data_key(key, |key| cached_read(slot, key))
    }
}

impl Handler<LocalRead> for Storage {
    type Result = ResponseFuture<Result<Option<Vec<u8>>, StorageError>>;

    fn handle(&mut self, msg: LocalRead, _ctx: &mut Self::Context) -> Self::Result {
        self.options
            .metrics
            .mailbox_handled(crate::metrics::Mailbox::Storage);
        let key = keys::user_data_key(&msg.key);
        if let Some(answer) = self.read_from_memory(&key) {
            return Box::pin(std::future::ready(answer));
        }
        self.read(|reply| ReadJob::Get { key, reply })
    }
}

/// A copy of the Merkle leaves (`None` while they are rebuilt at start).
#[derive(Message)]
#[rtype(result = "Option<TreeSnapshot>")]
pub struct TreeSnapshotQuery;

impl Handler<TreeSnapshotQuery> for Storage {
    type Result = MessageResult<TreeSnapshotQuery>;

    fn handle(&mut self, _: TreeSnapshotQuery, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.tree.snapshot())
    }
}

impl Handler<LocalScan> for Storage {
    type Result = ResponseFuture<Result<Page, StorageError>>;

    fn handle(&mut self, msg: LocalScan, _ctx: &mut Self::Context) -> Self::Result {
        let (start, end) = keys::data_range(&msg.start, msg.end.as_deref());
        let scan = self.read(|reply| ReadJob::Scan {
            start,
            end,
            limit: msg.limit,
            bytes_max: msg.bytes_max,
            reply,
        });
        Box::pin(async move {
            let page = scan.await?;
            Ok(Page {
                entries: page
                    .entries
                    .into_iter()
                    .filter_map(|(k, v)| keys::storage_key_of(&k).map(|k| (k.to_vec(), v)))
                    .collect(),
                more: page.more,
            })
        })
    }
}

impl Handler<LocalListKeys> for Storage {
    type Result = ResponseFuture<Result<KeyListing, StorageError>>;

    fn handle(&mut self, msg: LocalListKeys, _ctx: &mut Self::Context) -> Self::Result {
        let (start, end) = keys::data_range(&msg.start, msg.end.as_deref());
        let listing = self.read(|reply| ReadJob::ListKeys {
            start,
            end,
            bounds: msg.bounds,
            live: msg.live,
            reply,
        });
        Box::pin(async move {
            let listing = listing.await?;
            let strip = |k: Vec<u8>| keys::storage_key_of(&k).map(<[u8]>::to_vec);
            Ok(KeyListing {
                keys: listing.keys.into_iter().filter_map(strip).collect(),
                stopped_after: listing.stopped_after.and_then(strip),
            })
        })
    }
}

impl Handler<LocalHints> for Storage {
    type Result = ResponseFuture<Result<Vec<HeldHint>, StorageError>>;

    fn handle(&mut self, msg: LocalHints, _ctx: &mut Self::Context) -> Self::Result {
        let (first, end) = keys::hint_range(Some(&msg.owner));
        let start = match &msg.after {
            Some(after) => {
                let mut key = keys::hint_key(&msg.owner, after);
                key.push(0);
                key
            }
            None => first,
        };
        let scan = self.read(|reply| ReadJob::Scan {
            start,
            end,
            limit: msg.limit,
            bytes_max: usize::MAX,
            reply,
        });
        Box::pin(async move {
            let mut hints = Vec::new();
            for (key, value) in scan.await?.entries {
                let Some((owner, user_key)) = keys::parse_hint_key(&key) else {
                    warn!(key = ?key, "a key in the hints namespace is not a hint; skipped");
                    continue;
                };
                hints.push(HeldHint {
                    owner,
                    key: user_key.to_vec(),
                    record: HintRecord::decode(&value)?,
                });
            }
            Ok(hints)
        })
    }
}

impl Handler<LocalApply> for Storage {
    type Result = ResponseFuture<Result<Option<Vec<u8>>, ApplyError>>;

    fn handle(&mut self, msg: LocalApply, _ctx: &mut Self::Context) -> Self::Result {
        self.options
            .metrics
            .mailbox_handled(crate::metrics::Mailbox::Storage);
        let (job, rx) = msg.into_job();
        let queued = self.write(job);
        Box::pin(async move {
            queued?;
            rx.await
                .map_err(|_| ApplyError::Storage(StorageError::Stopped))?
        })
    }
}

impl Handler<ClearHint> for Storage {
    type Result = ResponseFuture<Result<(), StorageError>>;

    fn handle(&mut self, msg: ClearHint, _ctx: &mut Self::Context) -> Self::Result {
        self.ask_writer(|reply| WriterJob::ClearHint {
            owner: msg.owner,
            key: msg.key,
            seq: msg.seq,
            reply,
        })
    }
}

impl Handler<HintsPending> for Storage {
    type Result = ResponseFuture<Result<Vec<bool>, StorageError>>;

    fn handle(&mut self, msg: HintsPending, _ctx: &mut Self::Context) -> Self::Result {
        self.ask_writer(|reply| WriterJob::HintsPending {
            keys: msg.keys,
            reply,
        })
    }
}

impl Handler<LocalReap> for Storage {
    type Result = ResponseFuture<Result<bool, StorageError>>;

    fn handle(&mut self, msg: LocalReap, _ctx: &mut Self::Context) -> Self::Result {
        self.ask_writer(|reply| WriterJob::Reap {
            key: keys::data_key(&storage_key(&msg.key)),
            decide: msg.decide,
            shadow: msg.shadow,
            reply,
        })
    }
}

impl Handler<CompactStore> for Storage {
    type Result = ResponseFuture<Result<(), StorageError>>;

    fn handle(&mut self, _msg: CompactStore, _ctx: &mut Self::Context) -> Self::Result {
        self.read(|reply| ReadJob::Compact { reply })
    }
}

impl Handler<HintCountsQuery> for Storage {
    type Result = ResponseFuture<HintCounts>;

    fn handle(&mut self, _: HintCountsQuery, _ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        let queued = self.write(WriterJob::HintCounts { reply });
        Box::pin(async move {
            if queued.is_err() {
                return Vec::new();
            }
            rx.await.unwrap_or_default()
        })
    }
}

impl Handler<CloseWrites> for Storage {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, _msg: CloseWrites, _ctx: &mut Self::Context) -> Self::Result {
        // A sender whose receiver is gone: every later write is `Stopped`.
        // Dropping the old one ends the writer loop once its queue is done.
        self.writes.close();
        let done = self.writer_done.take();
        let inline = self.inline.take();
        let slot = self.slot.clone();
        let _span = self.span.enter();
        info!("storage closed for writes");
        Box::pin(async move {
            if let Some((writer, _)) = inline {
                if writer.mint_state().stopped.is_some() {
                    return Err("the store failed a write and was not recovered".into());
                }
                return worker::current(&slot).flush().map_err(|e| e.to_string());
            }
            match done {
                Some(done) => done
                    .await
                    .unwrap_or_else(|_| Err("the storage writer thread is gone".into())),
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
#[path = "actor_tests.rs"]
mod tests;
