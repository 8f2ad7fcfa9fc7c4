//! Group commit: the jobs of one group run against the store as the group
//! sees it and go to the engine in one batch; each is answered once the
//! batch is written (or failed). See the parent module's "Group commit".

use std::sync::mpsc::Receiver;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use super::{Answer, Writer};
use crate::storage::engine::{Engine, StorageError};
use crate::storage::group_writes::GroupWrites;
use crate::storage::keys::{self, HintRecord};
use crate::storage::tree::TreeDeltas;
use crate::storage::worker::{
    clone_error, current, ApplyError, ApplyJob, ReapDecide, ReapShadow, WriterJob,
};
use crate::NodeId;

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

/// One group as its jobs run: what they write, and how each is answered
/// once the batch is written (or failed).
struct GroupState {
    writes: GroupWrites,
    outcomes: Vec<Outcome>,
    /// Per hint owner: the change of its hint count and bytes.
    deltas: Vec<(NodeId, i64, i64)>,
    /// The last hint `seq` given out.
    seq: u64,
    /// Whether a job handed out a version this thread minted.
    minted_any: bool,
    /// The versions minted in this group, handed out together before the
    /// batch is written.
    minted_out: Vec<Answer>,
    /// The Merkle leaves' changes, added once the batch is durable.
    tree: TreeDeltas,
    /// Objects the group's reaps delete.
    reaped: usize,
}

impl Writer {
    /// One group: `first` and what else is queued, up to the batch limits;
    /// with the number of its last job.
    pub(super) fn take_group(
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

    /// Applies one group of jobs and answers each (one engine write batch).
    pub(crate) fn group(&mut self, jobs: Vec<WriterJob>) {
        self.group_through(jobs, None);
    }

    /// [`Writer::group`] of the queued jobs numbered up to `last`: the
    /// gate says they are done once the batch is in the engine (or failed),
    /// before any of them is answered.
    pub(super) fn group_through(&mut self, jobs: Vec<WriterJob>, last: Option<u64>) {
        let engine = current(&self.slot);
        if engine.is_poisoned() && self.mint.stopped.is_none() {
            self.stop_minting("the store refuses writes (a write to disk failed)".into());
        }
        let mut group = GroupState {
            writes: GroupWrites::with_capacity(jobs.len()),
            outcomes: Vec::with_capacity(jobs.len()),
            deltas: Vec::new(),
            seq: self.hint_seq,
            minted_any: false,
            minted_out: Vec::new(),
            tree: TreeDeltas::new(),
            reaped: 0,
        };
        let floor_before = self.mint_as.counter_floor;
        let now = Instant::now();
        self.shadows.expire(now);
        for job in jobs {
            match job {
                WriterJob::HintCounts { reply } => {
                    let _ = reply.send(self.hint_counts());
                }
                WriterJob::HintsPending { keys, reply } => {
                    let _ = reply.send(self.hints_pending(&*engine, &group.writes, &keys));
                }
                WriterJob::Reap {
                    key,
                    decide,
                    shadow,
                    reply,
                } => self.reap(&*engine, &mut group, (key, decide, shadow, reply), now),
                WriterJob::ClearHint {
                    owner,
                    key,
                    seq,
                    reply,
                } => clear_hint(&*engine, &mut group, (owner, key, seq), reply),
                WriterJob::Apply(job) => self.apply_job(&*engine, &mut group, job),
            }
        }
        let outcomes = std::mem::take(&mut group.outcomes);
        let committed = self.commit(&*engine, group, floor_before);
        if let Some(last) = last {
            self.gate.mark_done(last);
        }
        self.hand_over(answers(outcomes, &committed));
        // A rebuild of the Merkle leaves goes on between groups.
        self.tree.rebuild_step(&*engine);
    }

    /// Runs a reap into the group: the key's object is deleted if the
    /// reaper's check of it (as the group sees it) says so.
    fn reap(
        &mut self,
        engine: &dyn Engine,
        group: &mut GroupState,
        (key, decide, shadow, reply): (
            Vec<u8>,
            ReapDecide,
            ReapShadow,
            oneshot::Sender<Result<bool, StorageError>>,
        ),
        now: Instant,
    ) {
        let stored = match group.writes.read(engine, &key) {
            Ok(stored) => stored,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match decide(stored.as_deref(), &self.mint.version_actor) {
            Ok(verdict) => {
                // Raised at once: a mint later in this group
                // already sees it (a failed batch leaves it
                // high, which only skips counters).
                self.mint_as.counter_floor = self.mint_as.counter_floor.max(verdict.counter_floor);
                // Before the delete is in the engine: a
                // coordinator that reads the key gone from
                // memory mints above the floor.
                if self.mint.stopped.is_none() {
                    self.gate.set(Some(self.mint_as.clone()));
                }
                let delete = verdict.delete && stored.is_some();
                if delete {
                    self.tree
                        .note(&key, stored.as_deref(), None, &mut group.tree);
                    group.writes.delete(key.clone());
                    group.reaped += 1;
                }
                // Cast at once (a write later in this group sees
                // it); if the batch fails the object is still
                // stored, and a shadow only ever drops versions
                // the delete superseded.
                if delete || stored.is_none() {
                    self.shadows.cast(key, shadow, now);
                }
                group.outcomes.push(Outcome::Reap(reply, delete));
            }
            Err(why) => {
                warn!(key = ?key, error = %why, "reap: the stored object does not decode; kept");
                let _ = reply.send(Ok(false));
            }
        }
    }

    /// Runs an apply job into the group (see [`Writer::apply`]), refused
    /// while minting is stopped if it asks to mint.
    fn apply_job(&mut self, engine: &dyn Engine, group: &mut GroupState, job: ApplyJob) {
        // A version handed out already is stored even while
        // minting is stopped: its dot is fresh (see "Minting
        // on the event loop").
        let minting = job.minted.is_some() && !job.handed_out;
        if minting {
            if let Some(reason) = &self.mint.stopped {
                let reason = reason.clone();
                let _ = job.reply.send(Err(ApplyError::CannotMint { reason }));
                return;
            }
        }
        let trace = job.trace;
        let handed_out = job.handed_out;
        match self.apply(engine, group, job) {
            Some((reply, stored, minted)) => {
                group.minted_any |= minted;
                group.outcomes.push(Outcome::Apply(reply, trace, stored));
            }
            // Answered with an error: a version out already is
            // not in the store, and a later mint would not see
            // its dot.
            None if handed_out => self.stop_minting(
                "a version this node minted on its event loop and handed out could not be stored"
                    .into(),
            ),
            None => {}
        }
    }

    /// Hands out the group's minted versions, then writes its batch (the
    /// counter floor first when a reap raised it): what the write gave.
    /// After it, the hint counts and the Merkle leaves take the group's
    /// changes, or (it failed) the leaves are rebuilt and minting stops if
    /// a version went out.
    fn commit(
        &mut self,
        engine: &dyn Engine,
        group: GroupState,
        floor_before: u64,
    ) -> Result<(), StorageError> {
        // First in the batch: durable whenever the deletes are.
        let floor = (self.mint_as.counter_floor > floor_before)
            .then(|| keys::counter_floor_op(self.mint_as.counter_floor));
        self.hand_over(group.minted_out);
        let ops = group.writes.into_batch(floor);
        let writes = ops.len();
        let committed = if ops.is_empty() {
            Ok(())
        } else {
            engine.write_batch_owned(ops)
        };
        if group.reaped > 0 && committed.is_ok() {
            debug!(
                reaped = group.reaped,
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
                self.hint_seq = group.seq;
                self.tree.commit(&group.tree);
                for (owner, count, bytes) in group.deltas {
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
                if group.minted_any {
                    self.stop_minting(format!(
                        "a write batch failed after this node handed out a version it minted: {e}"
                    ));
                }
            }
        }
        committed
    }

    /// Runs one apply job into the group: its mutation, its hint. Returns
    /// its reply, what to answer when the batch is durable and whether it
    /// handed out a minted version; `None` when it was answered already
    /// (refused).
    #[allow(clippy::type_complexity)]
    fn apply(
        &self,
        engine: &dyn Engine,
        group: &mut GroupState,
        job: ApplyJob,
    ) -> Option<(
        oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
        Option<Vec<u8>>,
        bool,
    )> {
        let GroupState {
            writes,
            minted_out,
            deltas,
            tree,
            seq,
            ..
        } = group;
        // A hint past the owner's byte bound is refused before anything
        // is written.
        let mut previous_hint: Option<HintRecord> = None;
        if let Some(owner) = &job.hint_for {
            let hint = keys::hint_key(owner, &job.user_key);
            previous_hint = match writes
                .read(engine, &hint)
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
        let current = match writes.read(engine, &job.key) {
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
}

/// Runs a hint clear into the group: the hint goes if it still has the
/// `seq` that was delivered (hinted again since, it is delivered again
/// later).
fn clear_hint(
    engine: &dyn Engine,
    group: &mut GroupState,
    (owner, key, delivered): (NodeId, Vec<u8>, u64),
    reply: oneshot::Sender<Result<(), StorageError>>,
) {
    let hint = keys::hint_key(&owner, &key);
    match group.writes.read(engine, &hint) {
        Ok(Some(bytes)) => match HintRecord::decode(&bytes) {
            Ok(record) if record.seq == delivered => {
                group.writes.delete(hint);
                group
                    .deltas
                    .push((owner, -1, -(record.object_bytes as i64)));
                group.outcomes.push(Outcome::Clear(reply));
            }
            Ok(_) => group.outcomes.push(Outcome::Clear(reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        },
        Ok(None) => group.outcomes.push(Outcome::Clear(reply)),
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Each job's answer, now that the group's batch was written (or not).
fn answers(outcomes: Vec<Outcome>, committed: &Result<(), StorageError>) -> Vec<Answer> {
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::Apply(reply, trace, stored) => {
                let result = match committed {
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
        .collect()
}
