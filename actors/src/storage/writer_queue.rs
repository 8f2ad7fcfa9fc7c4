//! The writer thread's queue (`WriterQueue`): how the Storage actor and the
//! callers that queue writes themselves (`Replicas`) hand the writer its
//! jobs, number them, and mint a key's version on their own thread when
//! no minting job of that key is pending (`MintPermit`).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use fnv::FnvHashMap;
use tokio::sync::oneshot;

use super::engine::StorageError;
use super::keys;
use super::worker::{self, ApplyError, ApplyJob, MintAs, WriterJob};
use super::writer::{LoopWake, MintGate};
use super::LocalApply;

/// The writer thread's queue, shared by the Storage actor and the callers
/// that hand it `LocalApply` jobs themselves (`Replicas`: a coordinator's
/// and a replica's writes), without a message to the actor and the task
/// its answer would take. Closing it (`CloseWrites`) closes it for all:
/// the one sender lives here, and its holders only lock it to send.
#[derive(Clone)]
pub struct WriterQueue {
    /// The sender, and the number the next job gets (jobs are numbered in
    /// queue order; see [`WriterQueue::queue_numbered`]).
    sender: Arc<Mutex<(NumberedSender, u64)>>,
    /// Jobs it holds at most (`storage_queue_max`), for the error.
    limit: usize,
    /// What the writer publishes for minting on the caller's thread.
    gate: Arc<MintGate>,
    /// Per key, the number of the last minting job queued for it (see
    /// [`WriterQueue::mint_here`]).
    mints: Arc<Mutex<MintsQueued>>,
    /// The writer on the event loop, told of each job and of the close
    /// (`StorageThreading::Loop`); `None`: a writer thread waits on the
    /// queue itself.
    wake: Option<Arc<LoopWake>>,
}

/// Per key, the number of the last minting job queued for it. Entries of
/// done jobs are dropped when the map reaches `prune_at`, which is then set
/// to twice what is left (at least `MINTS_TRACKED_PRUNE_AT`), so a map full
/// of pending jobs is not swept on every insert.
#[derive(Debug)]
struct MintsQueued {
    last: FnvHashMap<Vec<u8>, u64>,
    prune_at: usize,
}

impl Default for MintsQueued {
    fn default() -> Self {
        Self {
            last: FnvHashMap::default(),
            prune_at: MINTS_TRACKED_PRUNE_AT,
        }
    }
}

impl MintsQueued {
    /// Whether a minting job of `key` is not done yet (`done`: the number
    /// of the last job done).
    fn pending(&self, key: &[u8], done: u64) -> bool {
        self.last.get(key).is_some_and(|&last| last > done)
    }

    /// Notes job `number` as `key`'s last minting job.
    fn note(&mut self, key: Vec<u8>, number: u64, done: u64) {
        if self.last.len() >= self.prune_at {
            self.last.retain(|_, last| *last > done);
            self.prune_at = (self.last.len() * 2).max(MINTS_TRACKED_PRUNE_AT);
        }
        self.last.insert(key, number);
    }
}

/// Leave to mint one version on the caller's thread
/// ([`WriterQueue::mint_here`]); while it lives, no minting job is queued.
pub struct MintPermit<'a> {
    queue: &'a WriterQueue,
    mints: std::sync::MutexGuard<'a, MintsQueued>,
    /// The stored object to mint from (`None`: the key is not stored).
    pub stored: Option<Vec<u8>>,
    /// The name and floor to mint under.
    pub minting_as: MintAs,
}

impl MintPermit<'_> {
    /// Queues `apply`, the job that stores the version minted (with
    /// `handed_out`), as the key's last minting job.
    /// Refused (the queue is full or closed): the version must not be
    /// handed out, since no later mint of the key would see it.
    pub fn queue(mut self, apply: LocalApply) -> Result<AppliedLater, StorageError> {
        let answer = self.queue.queue_minting(&mut self.mints, apply)?;
        Ok(Box::pin(answered(answer)))
    }
}

/// The writer's answer to a job queued by [`MintPermit::queue`].
pub type AppliedLater =
    futures_util::future::BoxFuture<'static, Result<Option<Vec<u8>>, ApplyError>>;

/// The writer's queue of jobs, each with its number.
pub(super) type NumberedSender = SyncSender<(u64, WriterJob)>;

/// Keys whose last minting job is tracked, at least, at which those whose
/// job is done are dropped ([`MintsQueued`]).
const MINTS_TRACKED_PRUNE_AT: usize = 1024;

impl WriterQueue {
    /// A queue over the writer's `sender`, holding at most `limit` jobs
    /// (`storage_queue_max`), minting under the writer's `gate`.
    pub(super) fn new(sender: NumberedSender, limit: usize, gate: Arc<MintGate>) -> Self {
        Self {
            // Numbered from 1: the gate's 0 says that no job is done yet.
            sender: Arc::new(Mutex::new((sender, 1))),
            limit,
            gate,
            mints: Arc::default(),
            wake: None,
        }
    }

    /// Tells `wake` of every job queued, and of the close, from now on
    /// (the writer on the event loop).
    pub(super) fn wake_through(&mut self, wake: Arc<LoopWake>) {
        self.wake = Some(wake);
    }

    /// Queues `job`; its number, or why it was refused (the queue is full
    /// or closed).
    pub(super) fn offer(&self, job: WriterJob) -> Result<u64, StorageError> {
        // A panic while holding it cannot leave the sender half-changed.
        let mut sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let number = sender.1;
        worker::offer(&sender.0, (number, job), self.limit)?;
        sender.1 += 1;
        if let Some(wake) = &self.wake {
            wake.offered();
        }
        Ok(number)
    }

    /// Hands `apply` to the writer; answers as the Storage actor answers
    /// a `LocalApply`. A job that mints a version of its key (`minted`)
    /// is noted as the key's last minting job: mints of the key on any
    /// thread wait until it is done ([`WriterQueue::mint_here`]).
    pub fn apply(
        &self,
        apply: LocalApply,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, ApplyError>> {
        let queued = if apply.minted.is_some() {
            self.queue_minting(&mut self.mints(), apply)
        } else {
            self.queue_numbered(apply).map(|(_, answer)| answer)
        };
        async move { answered(queued?).await }
    }

    /// Queues `apply`: the job's number (once [`MintGate::done`] reaches
    /// it, the job's write is in the engine, or failed) and where its
    /// answer comes; or why it was refused (the queue is full or closed).
    fn queue_numbered(&self, apply: LocalApply) -> Result<(u64, ApplyAnswer), StorageError> {
        let (job, answer) = apply.into_job();
        let number = self.offer(job)?;
        Ok((number, answer))
    }

    /// Leave to mint a new version of `key` on the caller's thread now,
    /// with what `read` (the stored object, from memory) answered; `None`
    /// when the writer must mint it instead: a minting job of the key is
    /// not done yet, `read` has no answer, or minting is stopped.
    ///
    /// The order is what makes the dot fresh (`writer`, "Minting on the
    /// event loop"): the key's jobs are done before the read, so it sees
    /// every version this store minted for the key; the minting name and
    /// floor are read after it, so a floor raised by a reap whose delete
    /// the read saw is seen too. The leave holds the lock of the key's
    /// jobs until [`MintPermit::queue`] queues the job that stores the
    /// version, so no other thread mints in between.
    pub fn mint_here(
        &self,
        key: &[u8],
        read: impl FnOnce() -> Option<Option<Vec<u8>>>,
    ) -> Option<MintPermit<'_>> {
        let mints = self.mints();
        let done = self.gate.done();
        if mints.pending(key, done) {
            return None;
        }
        let stored = read()?;
        let minting_as = self.gate.minting_as()?;
        Some(MintPermit {
            queue: self,
            mints,
            stored,
            minting_as,
        })
    }

    /// Queues a minting job and notes it as its key's last, under the
    /// `mints` lock (taken before the sender's).
    fn queue_minting(
        &self,
        mints: &mut MintsQueued,
        apply: LocalApply,
    ) -> Result<ApplyAnswer, StorageError> {
        let key = apply.key.clone();
        let (number, answer) = self.queue_numbered(apply)?;
        mints.note(key, number, self.gate.done());
        Ok(answer)
    }

    /// The last minting job of each key (see [`WriterQueue::mint_here`]).
    fn mints(&self) -> std::sync::MutexGuard<'_, MintsQueued> {
        self.mints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the queue: every later job is refused (`Stopped`), and the
    /// writer ends once it has done the jobs queued before.
    pub(super) fn close(&self) {
        let (closed, _) = sync_channel(0);
        let mut sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(std::mem::replace(&mut sender.0, closed));
        if let Some(wake) = &self.wake {
            wake.closed();
        }
    }
}

/// Where a `LocalApply`'s answer comes from the writer.
pub(super) type ApplyAnswer = oneshot::Receiver<Result<Option<Vec<u8>>, ApplyError>>;

/// The writer's answer to a queued job, once it comes (`Stopped` if the
/// writer ended without one).
pub(super) async fn answered(answer: ApplyAnswer) -> Result<Option<Vec<u8>>, ApplyError> {
    answer
        .await
        .map_err(|_| ApplyError::Storage(StorageError::Stopped))?
}

impl LocalApply {
    /// The writer's job for this apply, and where its answer comes.
    pub(super) fn into_job(self) -> (WriterJob, ApplyAnswer) {
        let (reply, answer) = oneshot::channel();
        let job = WriterJob::Apply(ApplyJob {
            key: keys::user_data_key(&self.key),
            user_key: self.key,
            mutation: self.mutation,
            trace: self.trace,
            bytes: self.bytes,
            reply,
            minted: self.minted,
            handed_out: self.handed_out,
            hint_for: self.hint_for,
        });
        (job, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last minting job of each key: pending until done reaches it;
    /// done entries are dropped when the map reaches its mark, and a map
    /// of pending jobs grows without being swept on every insert.
    #[test]
    fn queued_mints_are_pending_until_done_and_swept_in_doubling_steps() {
        let key = |i: u64| i.to_be_bytes().to_vec();
        let mut mints = MintsQueued::default();
        mints.note(key(0), 1, 0);
        assert!(mints.pending(&key(0), 0));
        assert!(!mints.pending(&key(0), 1));
        assert!(!mints.pending(&key(1), 0), "never queued");
        mints.note(key(0), 7, 1);
        assert!(mints.pending(&key(0), 6), "the key's last job counts");

        // Every job done as it is queued: the map stays at its mark.
        let mut mints = MintsQueued::default();
        for i in 0..10 * MINTS_TRACKED_PRUNE_AT as u64 {
            mints.note(key(i), i + 1, i);
        }
        assert!(mints.last.len() <= MINTS_TRACKED_PRUNE_AT);
        assert_eq!(mints.prune_at, MINTS_TRACKED_PRUNE_AT);

        // Nothing done: every entry stays, and the mark doubles.
        let mut mints = MintsQueued::default();
        let queued = 3 * MINTS_TRACKED_PRUNE_AT as u64;
        for i in 0..queued {
            mints.note(key(i), i + 1, 0);
        }
        assert_eq!(mints.last.len() as u64, queued);
        assert_eq!(mints.prune_at, 4 * MINTS_TRACKED_PRUNE_AT);
        assert!((0..queued).all(|i| mints.pending(&key(i), 0)));
    }
}
