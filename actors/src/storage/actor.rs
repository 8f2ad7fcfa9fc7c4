//! The Storage actor: a thin shell that queues requests for the engine's own
//! threads (see `worker`) and hands the answers back. It never blocks its
//! arbiter: a full queue is answered `Overloaded` at once.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::info;

use super::engine::{Engine, KeyValues, StorageError};
use super::worker::{self, ApplyError, ApplyJob, Mutation, ReadJob};
use crate::ring::storage_key;

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
    /// Threads serving point reads.
    pub storage_reader_threads: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            threading: StorageThreading::Threads,
            storage_queue_max: 4096,
            storage_batch_max: 256,
            storage_reader_threads: 2,
        }
    }
}

/// Read the stored bytes of `key` (a user key: the actor stores it under
/// [`crate::ring::storage_key`], in ring order).
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, StorageError>")]
pub struct LocalRead {
    /// The key.
    pub key: Vec<u8>,
}

/// Scan engine keys `[start, end)` (keys as stored: token prefix, then the
/// user key; see [`crate::ring::TokenRange::storage_ranges`]), at most
/// `limit` entries, in order. For handoff and anti-entropy streaming.
#[derive(Message)]
#[rtype(result = "Result<KeyValues, StorageError>")]
pub struct LocalScan {
    /// First engine key (inclusive).
    pub start: Vec<u8>,
    /// End (exclusive); `None`: to the end.
    pub end: Option<Vec<u8>>,
    /// Most entries to return.
    pub limit: usize,
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
    /// Gets the new value as soon as the mutation made it, before it is
    /// durable (the answer then says only whether it became durable: `None`
    /// in place of the value); dropped unsent when the mutation refuses or
    /// changes nothing, or the job is not queued. A write coordinator sends
    /// it to the other replicas meanwhile (see `replicator::write`).
    pub minted: Option<oneshot::Sender<Vec<u8>>>,
}

/// Stop taking writes and wait until the writer thread has finished every
/// write it took (answered, durable or failed). Later writes are refused
/// with `Stopped`. For a clean shutdown: afterwards no version this node
/// minted is still on its way to the disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseWrites;

/// The actor.
pub struct Storage {
    writes: SyncSender<ApplyJob>,
    /// Fires when the writer thread has returned (`Threads` mode).
    writer_done: Option<oneshot::Receiver<()>>,
    reads: SyncSender<ReadJob>,
    options: StorageOptions,
    /// Set in `StorageThreading::Inline` mode.
    inline: Option<Arc<dyn Engine>>,
    span: tracing::Span,
}

impl Storage {
    /// Starts the engine's threads; the actor itself is started by the caller.
    pub fn new(
        node: &crate::NodeId,
        engine: Arc<dyn Engine>,
        options: StorageOptions,
    ) -> std::io::Result<Self> {
        let span = tracing::info_span!("storage", node = %node, actor = "storage");
        let (writes, write_rx) = sync_channel(options.storage_queue_max);
        let (reads, read_rx) = sync_channel(options.storage_queue_max);
        if options.threading == StorageThreading::Inline {
            return Ok(Self {
                writes,
                writer_done: None,
                reads,
                options,
                inline: Some(engine),
                span,
            });
        }
        let writer_engine = engine.clone();
        let batch_max = options.storage_batch_max.max(1);
        let writer_span = span.clone();
        let (done_tx, writer_done) = oneshot::channel();
        std::thread::Builder::new()
            .name("ringkv-storage-w".into())
            .spawn(move || {
                let _guard = writer_span.enter();
                worker::run_writer(writer_engine, write_rx, batch_max);
                let _ = done_tx.send(());
            })?;
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..options.storage_reader_threads.max(1) {
            let (engine, rx, reader_span) = (engine.clone(), read_rx.clone(), span.clone());
            std::thread::Builder::new()
                .name(format!("ringkv-storage-r{i}"))
                .spawn(move || {
                    let _guard = reader_span.enter();
                    worker::run_reader(engine, rx)
                })?;
        }
        Ok(Self {
            writes,
            writer_done: Some(writer_done),
            reads,
            options,
            inline: None,
            span,
        })
    }
}

impl Actor for Storage {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _span = self.span.enter();
        info!(
            queue_max = self.options.storage_queue_max,
            batch_max = self.options.storage_batch_max,
            readers = self.options.storage_reader_threads,
            "storage started"
        );
    }
}

impl Handler<LocalRead> for Storage {
    type Result = ResponseFuture<Result<Option<Vec<u8>>, StorageError>>;

    fn handle(&mut self, msg: LocalRead, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(engine) = &self.inline {
            let result = engine.get(&storage_key(&msg.key));
            return Box::pin(async move { result });
        }
        let (reply, rx) = oneshot::channel();
        let job = ReadJob::Get {
            key: storage_key(&msg.key),
            reply,
        };
        let queued = worker::offer(&self.reads, job, self.options.storage_queue_max);
        Box::pin(async move {
            queued?;
            rx.await.map_err(|_| StorageError::Stopped)?
        })
    }
}

impl Handler<LocalApply> for Storage {
    type Result = ResponseFuture<Result<Option<Vec<u8>>, ApplyError>>;

    fn handle(&mut self, msg: LocalApply, _ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        let job = ApplyJob {
            key: storage_key(&msg.key),
            mutation: msg.mutation,
            trace: msg.trace,
            reply,
            minted: msg.minted,
        };
        if let Some(engine) = &self.inline {
            worker::write_group(engine.as_ref(), vec![job]);
            return Box::pin(async move {
                rx.await
                    .map_err(|_| ApplyError::Storage(StorageError::Stopped))?
            });
        }
        let queued = worker::offer(&self.writes, job, self.options.storage_queue_max);
        Box::pin(async move {
            queued?;
            rx.await
                .map_err(|_| ApplyError::Storage(StorageError::Stopped))?
        })
    }
}

impl Handler<CloseWrites> for Storage {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: CloseWrites, _ctx: &mut Self::Context) -> Self::Result {
        // A sender whose receiver is gone: every later write is `Stopped`.
        // Dropping the old one ends the writer loop once its queue is done.
        let (closed, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.writes, closed));
        let done = self.writer_done.take();
        let _span = self.span.enter();
        info!("storage closed for writes");
        Box::pin(async move {
            if let Some(done) = done {
                let _ = done.await;
            }
        })
    }
}

impl Handler<LocalScan> for Storage {
    type Result = ResponseFuture<Result<KeyValues, StorageError>>;

    fn handle(&mut self, msg: LocalScan, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(engine) = &self.inline {
            let result = engine.scan(&msg.start, msg.end.as_deref(), msg.limit);
            return Box::pin(async move { result });
        }
        let (reply, rx) = oneshot::channel();
        let job = ReadJob::Scan {
            start: msg.start,
            end: msg.end,
            limit: msg.limit,
            reply,
        };
        let queued = worker::offer(&self.reads, job, self.options.storage_queue_max);
        Box::pin(async move {
            queued?;
            rx.await.map_err(|_| StorageError::Stopped)?
        })
    }
}
