//! The coordinator's own copy of a write: the version minted on this
//! thread or by the writer, and its answer as an acknowledgement.

use std::sync::{Arc, OnceLock};

use futures_util::future::LocalBoxFuture;

use crate::conflict_resolver::{Object, VersionVector};
use crate::replicas::{store_minted, ReplicaError, Replicas, TombstoneChange};
use crate::storage::{AppliedLater, LocalApply, MintPermit};
use crate::wire::client::{ClientError, ErrorCode};

/// What the local write answers: whether its copy became durable.
type LocalAnswer = Result<Result<Option<Vec<u8>>, crate::storage::ApplyError>, actix::MailboxError>;

/// The coordinator's own copy as an acknowledgement: durable or failed;
/// a durable one counts what it changed (from tombstone, to tombstone).
pub(super) fn local_acknowledgement(
    applied: LocalAnswer,
    change: Option<(bool, bool)>,
    metrics: &crate::metrics::Metrics,
) -> Result<(), ReplicaError> {
    match applied {
        Ok(Ok(_)) => {
            if let Some((was, is)) = change {
                metrics.tombstone_transition(was, is);
            }
            Ok(())
        }
        Ok(Err(e)) => Err(ReplicaError::from(e)),
        Err(e) => Err(ReplicaError::from(e)),
    }
}

/// The coordinator's own copy of a write, as the replica writes leave.
pub(super) enum LocalWrite {
    /// The writer minted the version; its answer is still to come.
    Writing(LocalBoxFuture<'static, LocalAnswer>),
    /// The writer minted the version and has answered already (a write
    /// with nobody to send it to waits for that).
    Answered(LocalAnswer),
    /// Minted here; the writer stores it, and says in `TombstoneChange`
    /// what that changed.
    MintedHere(AppliedLater, Arc<TombstoneChange>),
}

/// Where a write's mutation leaves the clock of its new version and what
/// it changed (from tombstone, to tombstone), once it ran.
pub(super) type MintedVersion = OnceLock<(VersionVector, (bool, bool))>;

/// Mints a write's new version here, on this thread, with `permit`, and
/// queues the job that stores it; the local write and the version's bytes.
pub(super) fn mint_with(
    mut permit: MintPermit<'_>,
    mutation: crate::storage::Mutation,
    key: &[u8],
    (trace, bytes): (u64, usize),
    minted: &MintedVersion,
) -> Result<(LocalWrite, Vec<u8>), ClientError> {
    let minted_from = permit.stored.take();
    let made = match mutation(minted_from.as_deref(), &permit.minting_as)? {
        Some(made) => made,
        None => {
            return Err(ClientError::new(
                ErrorCode::Internal,
                "the write minted no new version",
            ))
        }
    };
    let change = Arc::new(TombstoneChange::new());
    let transition = minted.get().map_or((false, false), |m| m.1);
    // Refused by the writer's queue: nothing is handed out (no later mint
    // of the key here would see this version).
    let apply = permit
        .queue(LocalApply {
            key: key.to_vec(),
            mutation: store_minted(minted_from, made.clone(), transition, change.clone()),
            trace,
            bytes,
            minted: None,
            handed_out: true,
            hint_for: None,
        })
        .map_err(|e| ReplicaError::from(e).to_client())?;
    Ok((LocalWrite::MintedHere(apply, change), made))
}

/// Hands a write's `mutation` to the writer thread, which mints the new
/// version and hands it back before its batch is durable; the local write
/// and the version's bytes (none for a write with nobody to send it to,
/// which waits for its own copy instead).
#[allow(clippy::too_many_arguments)]
pub(super) async fn mint_in_writer(
    replicas: &Replicas,
    key: &[u8],
    mutation: crate::storage::Mutation,
    (trace, bytes): (u64, usize),
    alone: bool,
    deadline: tokio::time::Instant,
    timeout_ms: u64,
    minted: &MintedVersion,
) -> Result<(LocalWrite, Vec<u8>), ClientError> {
    // A write with nobody to send its version to does not wait for it: it
    // drops the receiving end, so the writer skips the hand-off (which
    // would wake this thread once more for nothing). The job still asks
    // for one: that is what makes it a minting job to the writer (refused
    // while minting is stopped, counted when its batch fails).
    let (minted_tx, minted_rx) = tokio::sync::oneshot::channel();
    let minted_rx = (!alone).then_some(minted_rx);
    let mut apply: LocalBoxFuture<'static, LocalAnswer> =
        Box::pin(replicas.apply_local(LocalApply {
            key: key.to_vec(),
            mutation,
            trace,
            bytes,
            minted: Some(minted_tx),
            handed_out: false,
            hint_for: None,
        }));
    let local_timeout = || {
        ClientError::new(
            ErrorCode::Timeout,
            format!("local write did not finish within {timeout_ms} ms"),
        )
    };
    match minted_rx {
        Some(minted_rx) => match tokio::time::timeout_at(deadline, minted_rx).await {
            Ok(Ok(bytes)) => Ok((LocalWrite::Writing(apply), bytes)),
            // Nothing was minted: the apply's own answer says why.
            Ok(Err(_)) => {
                let result = tokio::time::timeout_at(deadline, &mut apply)
                    .await
                    .map_err(|_| local_timeout())?;
                Err(refusal_of(result))
            }
            Err(_) => Err(local_timeout()),
        },
        None => {
            let result = tokio::time::timeout_at(deadline, &mut apply)
                .await
                .map_err(|_| local_timeout())?;
            if minted.get().is_none() {
                return Err(refusal_of(result));
            }
            Ok((LocalWrite::Answered(result), Vec::new()))
        }
    }
}

/// Why a local write that minted nothing failed: refused (its mutation's
/// error, or `CannotMint` in the moment before the Replicator heard that
/// this store stopped minting: `unavailable`), or the store's error.
fn refusal_of(
    result: Result<Result<Option<Vec<u8>>, crate::storage::ApplyError>, actix::MailboxError>,
) -> ClientError {
    let refused = match result {
        Ok(Ok(_)) => {
            return ClientError::new(ErrorCode::Internal, "the write minted no new version")
        }
        Ok(Err(e)) => ReplicaError::from(e),
        Err(e) => ReplicaError::from(e),
    };
    refused.to_client()
}

/// The context a write is minted with: the client's, joined with the
/// clock of the local copy when the write supersedes what this replica
/// holds (`supersede_local`).
pub(super) fn superseding(
    mut context: VersionVector,
    local: Option<&Object>,
    supersede_local: bool,
) -> VersionVector {
    if let (true, Some(local)) = (supersede_local, local) {
        context.merge(local.context());
    }
    context
}
