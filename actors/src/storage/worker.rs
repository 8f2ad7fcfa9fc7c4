//! The threads that run the engine, off the actix arbiters.
//!
//! One writer thread owns every read-modify-write: it takes whatever requests
//! are queued (up to `storage_batch_max`), runs each mutation against the
//! current value (seeing earlier mutations of the same batch), and hands all
//! the resulting writes to the engine in one `write_batch` — one fsync for
//! the whole group. Because a single thread applies mutations, two writes to
//! one key can never interleave their read and their write.
//!
//! Reader threads serve point reads straight from the engine, which sees
//! every batch acknowledged before the read was queued.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::{debug, error};

use super::engine::{Engine, KeyValues, StorageError, WriteOp};
use crate::wire::client::ClientError;

/// A read-modify-write: gets the stored value (or `None`) and returns the new
/// value to store (`None`: leave it as it is) or a refusal.
pub type Mutation = Box<dyn FnOnce(Option<&[u8]>) -> Result<Option<Vec<u8>>, ClientError> + Send>;

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The engine failed or is overloaded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The mutation refused the write (e.g. too many siblings).
    #[error(transparent)]
    Rejected(ClientError),
}

/// One queued read-modify-write.
pub(crate) struct ApplyJob {
    pub key: Vec<u8>,
    pub mutation: Mutation,
    pub trace: u64,
    /// Gets the value stored after the job (the old one if unchanged),
    /// once it is durable; `None` in place of a new value already handed
    /// over through `minted`.
    pub reply: oneshot::Sender<Result<Option<Vec<u8>>, ApplyError>>,
    /// Gets the new value as soon as the mutation made it, before the
    /// group is written (dropped unsent when nothing new is written).
    pub minted: Option<oneshot::Sender<Vec<u8>>>,
}

/// One queued read.
pub(crate) enum ReadJob {
    /// A point read.
    Get {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, StorageError>>,
    },
    /// A range scan of engine keys `[start, end)`, at most `limit` entries.
    Scan {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        reply: oneshot::Sender<Result<KeyValues, StorageError>>,
    },
}

/// Sends `job` without blocking; a full queue is `Overloaded`.
pub(crate) fn offer<T>(tx: &SyncSender<T>, job: T, limit: usize) -> Result<(), StorageError> {
    tx.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => StorageError::Overloaded {
            pending: limit,
            limit,
        },
        TrySendError::Disconnected(_) => StorageError::Stopped,
    })
}

/// The writer loop: runs until every sender is dropped.
pub(crate) fn run_writer(engine: Arc<dyn Engine>, jobs: Receiver<ApplyJob>, batch_max: usize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        write_group(engine.as_ref(), batch);
    }
    debug!("storage writer stopped");
}

/// Applies one group of jobs and answers each (one engine write batch).
pub(crate) fn write_group(engine: &dyn Engine, batch: Vec<ApplyJob>) {
    // Values written earlier in this batch, seen by later mutations.
    let mut overlay: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut ops = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let current = match overlay.get(&job.key) {
            Some(v) => Ok(Some(v.clone())),
            None => engine.get(&job.key),
        };
        let outcome = match current {
            Err(e) => Err(ApplyError::Storage(e)),
            Ok(current) => match (job.mutation)(current.as_deref()) {
                Err(refusal) => Err(ApplyError::Rejected(refusal)),
                Ok(None) => Ok((current, false)),
                Ok(Some(new)) => {
                    overlay.insert(job.key.clone(), new.clone());
                    ops.push(WriteOp::Put {
                        key: job.key.clone(),
                        value: new.clone(),
                    });
                    // Handed over once: through `minted` at once when asked
                    // (the caller may have gone; the write goes on), else
                    // with the reply.
                    let stored = match job.minted {
                        Some(minted) => {
                            let _ = minted.send(new);
                            None
                        }
                        None => Some(new),
                    };
                    Ok((stored, true))
                }
            },
        };
        outcomes.push((job.reply, job.trace, outcome));
    }
    let committed = engine.write_batch(&ops);
    if let Err(e) = &committed {
        error!(error = %e, writes = ops.len(), "storage write batch failed");
    } else if !ops.is_empty() {
        debug!(writes = ops.len(), "storage group commit");
    }
    for (reply, trace, outcome) in outcomes {
        let result = match (outcome, &committed) {
            (Ok((_, true)), Err(e)) => Err(ApplyError::Storage(clone_error(e))),
            (Ok((value, _)), _) => Ok(value),
            (Err(e), _) => Err(e),
        };
        if let Err(e) = &result {
            debug!(req = trace, error = %e, "apply failed");
        }
        // The caller may have timed out and gone; that is fine.
        let _ = reply.send(result);
    }
}

/// StorageError holds an io::Error, which is not Clone; every waiter of a
/// failed batch gets an equivalent error.
fn clone_error(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io { context, source } => StorageError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StorageError::Corruption {
            file,
            offset,
            reason,
        } => StorageError::Corruption {
            file: file.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        StorageError::Poisoned { reason } => StorageError::Poisoned {
            reason: reason.clone(),
        },
        StorageError::Overloaded { pending, limit } => StorageError::Overloaded {
            pending: *pending,
            limit: *limit,
        },
        StorageError::Stopped => StorageError::Stopped,
    }
}

/// A reader loop; several share one receiver.
pub(crate) fn run_reader(engine: Arc<dyn Engine>, jobs: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        match job {
            ReadJob::Get { key, reply } => {
                let _ = reply.send(engine.get(&key));
            }
            ReadJob::Scan {
                start,
                end,
                limit,
                reply,
            } => {
                let _ = reply.send(engine.scan(&start, end.as_deref(), limit));
            }
        }
    }
}
