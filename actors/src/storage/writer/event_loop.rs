//! The writer on the node's event loop (`StorageThreading::Loop`): a task
//! on the Storage actor's arbiter instead of a thread of its own.
//!
//! # Why
//!
//! With the writer on a thread, every write crosses two threads: the
//! session's job wakes the writer (a futex), the group's answers wake the
//! event loop. On the loop, as in Redis, nothing wakes another thread, and
//! a group takes every job the sessions queue while the loop yields to
//! them: the loop yields to the runtime (which polls the sockets first)
//! after the first job, and again until [`GATHER_IDLE_YIELDS`] yields in
//! a row brought nothing (at most [`GATHER_YIELDS_MAX`] yields); then it
//! takes the group ([`Writer::take_group`]) and commits it. Measured in `benches/README.md` (sessions 30-31).
//!
//! # What stays off the loop
//!
//! The loop waits for each group's log sync, as Redis waits for its
//! `appendfsync always`. What may wait longer does not run on the loop,
//! where it would stop every actor of the node, pings included: it moves
//! the writer to a blocking thread ([`tokio::task::spawn_blocking`]) for
//! that one step and takes it back after:
//! - a group while the engine may stall (`Engine::write_may_wait`:
//!   memtables waiting for their flush) or while the Merkle leaves are
//!   rebuilt (each group is followed by a page of the rebuild, a scan);
//! - a page of the rebuild while idle;
//! - recovery after a failed write (`Writer::recover`: the disk probe, the
//!   store's reopen, the new incarnation);
//! - the final flush when the queue closes;
//! - every group after one that took longer than the slow-group limit
//!   (`StorageOptions::loop_slow_group_ms`: a disk that syncs slowly for
//!   a while), until one takes less on the thread: a slow disk stops the
//!   event loop for one group, not for each.
//!
//! Jobs queued meanwhile wait in the queue as they would for a busy writer
//! thread. In a deterministic simulation (`blocking_off_loop` false) those
//! steps run in place: the simulated engine never blocks, and a real
//! thread would make the order of events depend on the OS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;

use super::{Writer, RECOVERY_TICK_MS};
use crate::storage::worker::{current, WriterJob};

/// Times the loop yields to the runtime, at most, while it gathers a
/// group.
pub const GATHER_YIELDS_MAX: u32 = 16;

/// Yields in a row that brought no job, after which the loop takes the
/// group. One (session 30's "loop-8") made groups of 27 one-node SETs
/// from 50 clients; two make 37, for 5-10% less CPU per SET
/// (`benches/README.md`, session 31).
pub const GATHER_IDLE_YIELDS: u32 = 2;

/// How the writer's queue wakes the writer on the loop: a job was queued,
/// or the queue closed.
#[derive(Debug, Default)]
pub struct LoopWake {
    notify: Notify,
    /// Jobs queued so far (the loop gathers while this moves).
    offered: AtomicU64,
}

impl LoopWake {
    /// A job was queued.
    pub(crate) fn offered(&self) {
        self.offered.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// The queue closed.
    pub(crate) fn closed(&self) {
        self.notify.notify_one();
    }

    fn count(&self) -> u64 {
        self.offered.load(Ordering::Relaxed)
    }
}

impl Writer {
    /// The writer loop as a task on the event loop (see the module's
    /// doc): runs until every sender is dropped, then flushes the engine
    /// as [`Writer::run`] does. `blocking_off_loop`: whether steps that
    /// may block go to a blocking thread (a process) or run in place (a
    /// simulation).
    pub(crate) async fn run_on_loop(
        self,
        jobs: Receiver<(u64, WriterJob)>,
        wake: std::sync::Arc<LoopWake>,
        blocking_off_loop: bool,
        slow_group: Duration,
        metrics: crate::metrics::Metrics,
    ) -> Result<(), String> {
        let started = tokio::time::Instant::now();
        let now_ms = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let tick = Duration::from_millis(RECOVERY_TICK_MS);
        let mut writer = self;
        let mut rebuild_failed = false;
        // The last group took longer than `slow_group`: the next goes to
        // the thread (see the module's doc).
        let mut slow = false;
        loop {
            match jobs.try_recv() {
                Ok(first) => {
                    gather(&wake).await;
                    let (group, last) = writer.take_group(first, &jobs);
                    let off_loop = slow || writer.group_may_block();
                    metrics.writer_group(!off_loop);
                    let took = if off_loop {
                        let took;
                        (writer, took) = step(writer, blocking_off_loop, move |w| {
                            timed(|| w.group_through(group, Some(last)))
                        })
                        .await?;
                        took
                    } else {
                        timed(|| writer.group_through(group, Some(last)))
                    };
                    let was_slow = std::mem::replace(&mut slow, took > slow_group);
                    if slow != was_slow {
                        debug!(
                            took_us = took.as_micros(),
                            slow,
                            "the storage writer's groups go {} from now on",
                            if slow {
                                "to a thread"
                            } else {
                                "back to the loop"
                            }
                        );
                    }
                }
                Err(TryRecvError::Disconnected) => break,
                // While the Merkle leaves are rebuilt, idle time scans for
                // them; a page that failed waits a tick.
                Err(TryRecvError::Empty) if writer.tree.rebuilding() && !rebuild_failed => {
                    (writer, rebuild_failed) = step(writer, blocking_off_loop, |w| {
                        !w.tree.rebuild_step(&*current(&w.slot))
                    })
                    .await?;
                }
                Err(TryRecvError::Empty) => {
                    rebuild_failed = false;
                    if !writer.recovery_due(now_ms()) {
                        // A job queued since the `try_recv` left a
                        // permit: this returns at once.
                        let _ = tokio::time::timeout(tick, wake.notify.notified()).await;
                    }
                }
            }
            if writer.recovery_due(now_ms()) {
                let now = now_ms();
                writer = step(writer, blocking_off_loop, move |w| w.recover(now))
                    .await?
                    .0;
            }
        }
        debug!("storage writer stopped");
        step(writer, blocking_off_loop, |w| w.finish()).await?.1
    }

    /// Whether the next group may wait for more than its own sync (see
    /// the module's doc).
    fn group_may_block(&self) -> bool {
        self.tree.rebuilding() || current(&self.slot).write_may_wait()
    }
}

/// How long `work` took (on the real clock: a simulation's groups run in
/// place either way).
fn timed(work: impl FnOnce()) -> Duration {
    let began = std::time::Instant::now();
    work();
    began.elapsed()
}

/// Yields to the runtime until [`GATHER_IDLE_YIELDS`] yields in a row
/// brought no job, at most [`GATHER_YIELDS_MAX`] times.
async fn gather(wake: &LoopWake) {
    let mut seen = wake.count();
    let mut idle = 0;
    for _ in 0..GATHER_YIELDS_MAX {
        tokio::task::yield_now().await;
        let now = wake.count();
        idle = if now == seen { idle + 1 } else { 0 };
        if idle >= GATHER_IDLE_YIELDS {
            break;
        }
        seen = now;
    }
}

/// Runs `work` on the writer on a blocking thread (or in place), and gives
/// the writer back with what `work` returned; an error if `work` panicked
/// (the writer is gone then, and every queued job is answered `Stopped`).
async fn step<T: Send + 'static>(
    mut writer: Writer,
    blocking_off_loop: bool,
    work: impl FnOnce(&mut Writer) -> T + Send + 'static,
) -> Result<(Writer, T), String> {
    if !blocking_off_loop {
        let out = work(&mut writer);
        return Ok((writer, out));
    }
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _guard = span.enter();
        let out = work(&mut writer);
        (writer, out)
    })
    .await
    .map_err(|e| format!("the storage writer failed on its blocking thread: {e}"))
}
