//! The Storage actor: a thin shell that queues requests for the engine's own
//! threads (the writer, `writer.rs`; the readers, `worker.rs`) and hands
//! the answers back. Its handlers never block the arbiter: a full queue
//! is answered `Overloaded` at once. A point read the engine can answer
//! from memory (memtables, cached blocks: `Engine::get_cached`) is
//! answered in the handler, without the two thread wake-ups of a reader's
//! round trip. (With `StorageThreading::Loop` the writer is a task on this
//! actor's arbiter instead, which waits for each group's sync there:
//! `writer/event_loop.rs`.)
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
use tracing::{info, Instrument as _};

use super::engine::{Engine, StorageError};
use super::keys;
use super::tree::KeyTree;
use super::worker::{self, ApplyError, EngineSlot, HintCounts, ReadJob, WriterJob};
use super::writer::{Answer, Backend, LoopWake, MintState, Writer, WriterLimits};
use crate::ring::storage_key;
use crate::NodeId;

mod messages;
mod options;
mod reads;

pub use super::writer_queue::{AppliedLater, MintPermit, WriterQueue};
pub use messages::{
    ClearHint, CloseWrites, CompactStore, HintCountsQuery, HintsPending, LocalApply, LocalHints,
    LocalListKeys, LocalRead, LocalReap, LocalScan, StorageHealth, SubscribeStorage,
};
pub use options::{
    StorageOptions, StorageThreading, HINTS_BYTES_MAX_PER_TARGET_DEFAULT,
    LOOP_SLOW_GROUP_MS_DEFAULT, STORAGE_QUEUE_MAX_DEFAULT,
};
use reads::cached_read;
pub use reads::{MemoryReads, TreeSnapshotQuery};

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
    /// In `StorageThreading::Task` and `Loop` modes until `started`
    /// spawns it: the writer's task.
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
        let writer_span = storage.span.clone();
        let (done_tx, writer_done) = oneshot::channel();
        storage.writer_done = Some(writer_done);
        if !matches!(storage.options.threading, StorageThreading::Loop { .. }) {
            // Answers come back through the actor; the loop writer sends
            // them itself.
            let (deliver, deliveries) = mpsc::unbounded_channel();
            writer.deliver_through(deliver);
            storage.deliveries = Some(deliveries);
        }
        match storage.options.threading {
            StorageThreading::Loop { blocking_off_loop } => {
                let wake = Arc::new(LoopWake::default());
                storage.writes.wake_through(wake.clone());
                let slow = Duration::from_millis(storage.options.loop_slow_group_ms);
                let metrics = storage.options.metrics.clone();
                storage.writer_task = Some(Box::pin(
                    async move {
                        let run =
                            writer.run_on_loop(write_rx, wake, blocking_off_loop, slow, metrics);
                        let _ = done_tx.send(run.await);
                    }
                    .instrument(writer_span),
                ));
            }
            StorageThreading::Task { every_ms } => {
                writer.rebuild_tree_all()?;
                let every = Duration::from_millis(every_ms.max(1));
                storage.writer_task = Some(Box::pin(
                    async move {
                        let _ = done_tx.send(writer.run_on_clock(write_rx, every).await);
                    }
                    .instrument(writer_span),
                ));
            }
            // (`Inline` kept its writer in the actor and returned above.)
            StorageThreading::Threads | StorageThreading::Inline => {
                std::thread::Builder::new()
                    .name("ringkv-storage-w".into())
                    .spawn(move || {
                        let _guard = writer_span.enter();
                        let _ = done_tx.send(writer.run(write_rx));
                    })
                    .map_err(spawn_error)?;
            }
        }
        if storage.options.threading.reads_in_place() {
            return Ok(storage);
        }
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
            threading = ?self.options.threading,
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
