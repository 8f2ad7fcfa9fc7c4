//! Reads a front end answers on its own, without a message to the
//! Replicator: a read of R = 1 of a key whose only read primary is this
//! node, its copy held in memory. The Replicator answers such a read in
//! its handler already (`read::answer_in_place`), with nothing to
//! coordinate; asking it still took a message to its mailbox, a reply
//! channel, and a task in the session to wait for the reply. A RESP
//! session asks a [`LocalReads`] first and sends `CoordinateGet` only when
//! it declines: on one node (N = 1) a GET then costs 7.4-8.2 µs of CPU
//! instead of 9.1-9.8 (benches/README.md, "Session 20"). RESP GET and
//! MGET ask it, and so does the client port's `get` (with its R, PR and
//! a sealed context). The bridge's peer sessions use it too, for replica
//! reads and writes from other nodes (`bridge::PeerDirect`, below).
//!
//! The Replicator owns it and publishes here, whenever its rings change,
//! the part of its state such a read depends on; nothing is published
//! before the node is ready (requests then wait in the Replicator). The
//! answer is the one the Replicator's coordination gives (the tests
//! below compare the two): the local copy, decoded by the same pure rules
//! (`conflict_resolver::answer_agreed`). Everything else (R > 1, other
//! primaries, per-DC quorums, a copy not in memory, a failed read) is
//! declined and goes to the Replicator as before.

use std::cell::RefCell;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use serde_bytes::ByteBuf;

use super::quorum::Need;
use super::read::{agreed_answer, GetAnswer};
use super::{placement, ReplicationOptions};
use crate::bridge::PeerDirect;
use crate::clock::SharedClock;
use crate::replicas::Replicas;
use crate::ring::Ring;
use crate::wire::client::{ClientError, Consistency};
use crate::wire::peer::{Durable, RemoteError, ReplicaRead, ReplicaWrite, StoredObject};
use crate::NodeId;

/// The reads a session may answer itself (see the module doc); shared on
/// the node's event loop by the Replicator and the sessions (RESP, client
/// port, peers).
pub struct LocalReads {
    replicas: Replicas,
    options: ReplicationOptions,
    clock: SharedClock,
    /// The Replicator's span (replica writes run in it, as in the
    /// Replicator).
    span: tracing::Span,
    /// The Replicator's rings once it is ready (`None` before).
    rings: RefCell<Option<Rings>>,
}

impl std::fmt::Debug for LocalReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReads")
            .field("own", &self.replicas.own)
            .field("published", &self.rings.borrow().is_some())
            .finish_non_exhaustive()
    }
}

/// The rings a read's placement comes from.
struct Rings {
    read: Arc<Ring>,
    write: Arc<Ring>,
}

impl LocalReads {
    /// Answers nothing until [`LocalReads::publish`].
    pub(super) fn new(
        replicas: Replicas,
        options: ReplicationOptions,
        clock: SharedClock,
        span: tracing::Span,
    ) -> Self {
        Self {
            replicas,
            options,
            clock,
            span,
            rings: RefCell::new(None),
        }
    }

    /// Whether the Replicator serves `from`'s replica request for `key`
    /// (`Replicator::admit_peer`: `from` is a member and this node shares
    /// the key, a primary or a stand-in candidate), once it is ready; `false` leaves it to the Replicator,
    /// which refuses it and says why.
    fn admits(&self, from: &NodeId, key: &[u8]) -> bool {
        let rings = self.rings.borrow();
        let Some(rings) = rings.as_ref() else {
            return false;
        };
        super::peer_refusal(
            (&rings.read, &rings.write),
            self.options.n,
            &self.replicas.own,
            from,
            key,
        )
        .is_none()
    }

    /// The Replicator's rings, from now on (it is ready).
    pub(super) fn publish(&self, read: Arc<Ring>, write: Arc<Ring>) {
        *self.rings.borrow_mut() = Some(Rings { read, write });
    }

    /// The answer to `read` when this node alone answers it (R = 1, this
    /// node the key's only read primary, no per-DC quorum) and holds its
    /// copy in memory: what `CoordinateGet` with the same fields answers.
    /// `None`: send the read to the Replicator.
    pub fn answer(&self, read: &LocalRead<'_>) -> Option<Result<GetAnswer, ClientError>> {
        let rings = self.rings.borrow();
        let rings = rings.as_ref()?;
        let options = &self.options;
        if !options.dc_replication.is_empty() {
            return None;
        }
        let r = match read.consistency {
            None => read.r.unwrap_or(options.r),
            Some(level) => {
                let need =
                    Need::for_level(level, options.n, &options.dc_replication, &options.dc).ok()?;
                if !need.dcs.is_empty() {
                    return None;
                }
                need.needed
            }
        };
        // PR above R is refused by the Replicator, which says why.
        if r != 1 || read.pr.unwrap_or(0) > r {
            return None;
        }
        if !placement::sole_read_primary_at(
            &rings.read,
            &rings.write,
            options.n,
            Ring::key_token(read.key),
            &self.replicas.own,
        ) {
            return None;
        }
        // A failed read is the coordination's to handle (stand-ins).
        let stored = self.replicas.read_in_memory(read.key)?.ok()?;
        let answers = [(self.replicas.own.clone(), stored)];
        let now_ms = self.clock.now_ms();
        let answer = agreed_answer(&answers, read.trace, now_ms, read.last_writer_wins)?;
        Some(answer.map(|(values, clock)| {
            let context = clock
                .filter(|_| read.with_context)
                .map(|clock| options.contexts.seal(read.key, &clock));
            (values, context)
        }))
    }
}

/// A read to answer locally: `CoordinateGet`'s fields, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct LocalRead<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Replies to wait for (`None`: the node's R).
    pub r: Option<usize>,
    /// Of those, from primaries (`None`: 0).
    pub pr: Option<usize>,
    /// A consistency level (it sets R instead).
    pub consistency: Option<Consistency>,
    /// Answer only the last writer's value.
    pub last_writer_wins: bool,
    /// Seal and answer the context.
    pub with_context: bool,
    /// The request id, for the logs.
    pub trace: u64,
}

impl PeerDirect for LocalReads {
    /// A replica read from `from` of a copy held in memory, when the
    /// Replicator would serve it; a refusal, a disk read or a failed read
    /// is the Replicator's.
    fn replica_read(
        &self,
        from: &NodeId,
        request: &ReplicaRead,
    ) -> Option<Result<StoredObject, RemoteError>> {
        if !self.admits(from, &request.key) {
            return None;
        }
        let object = self.replicas.read_in_memory(&request.key)?.ok()?;
        Some(Ok(StoredObject {
            object: object.map(ByteBuf::from),
        }))
    }

    /// A replica write from `from`, when the Replicator would take it: the
    /// same store and answer as its handler's, without its mailbox.
    fn replica_write(
        &self,
        from: &NodeId,
        trace: u64,
        request: ReplicaWrite,
    ) -> Result<LocalBoxFuture<'static, Result<Durable, RemoteError>>, ReplicaWrite> {
        if !self.admits(from, &request.key) {
            return Err(request);
        }
        let span = super::replica_span(&self.span, from, trace);
        Ok(super::replica_write(
            self.replicas.clone(),
            request,
            trace,
            span,
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "local_read_tests.rs"]
mod tests;
