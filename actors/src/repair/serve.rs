//! What Repair serves to peers: pages of range scans, Merkle tree nodes
//! and leaves of the keys a peer shares with this node, and the reaper's
//! checks and drops, each admitted only from a placed member within its
//! rate limit.

use std::sync::Arc;

use actix::prelude::*;
use tracing::{debug, warn, Instrument};

use serde_bytes::ByteBuf;

use crate::bridge::Incoming;
use crate::replicator::placement;
use crate::ring::{user_key, Ring};
use crate::storage::LocalScan;
use crate::wire::client::ErrorCode;
use crate::wire::peer::{
    LeafHashes, MerkleLeaves, MerkleNodes, NodeHashes, PeerRefusal, ReapCheck, ReapDrop,
    ReapDropped, ReapHeld, RemoteError, ScanPage, ScanRange, REAP_KEYS_PER_REQUEST_MAX,
};
use crate::NodeId;

use super::{
    anti_entropy, lock, rate, reap, stream, Repair, RepairError, PAIR_TREE_REUSE_MS,
    SCAN_PAGE_BYTES_MAX, SCAN_PAGE_ENTRIES_MAX, SCAN_SKIPPED_PAGES_MAX,
};

impl Repair {
    /// The checks of a peer's scan or Merkle request (issue 12): the sender
    /// has a place on our rings, and is within its rate limit. Refusals are
    /// logged and answered untouched.
    fn admit(&mut self, from: &NodeId, request: rate::Costly) -> Result<(), RemoteError> {
        let refusal = if !placement::is_placed(&self.read_ring, &self.write_ring, from) {
            PeerRefusal::NotAMember { peer: from.clone() }
        } else {
            let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            if self.limits.allow(from, request, now_ms) {
                return Ok(());
            }
            PeerRefusal::RateLimited {
                peer: from.clone(),
                request: match request {
                    rate::Costly::Scan => "Scan",
                    rate::Costly::MerkleTree => "MerkleLeaves",
                },
                per_s_max: request.per_s_max(),
            }
        };
        let span = self.span.clone();
        let _span = span.enter();
        warn!(peer = %from, reason = %refusal, "refusing a peer request");
        Err(refusal.into())
    }
}

impl Handler<Incoming<ScanRange>> for Repair {
    type Result = ResponseFuture<Result<ScanPage, RemoteError>>;

    /// Serves a page of a range scan (a peer's handoff or anti-entropy
    /// pull): only keys the asking peer shares in this node's view (a
    /// replica or stand-in candidate of their range), so no member can
    /// copy the store; pages of keys it does not share are skipped, at
    /// most `SCAN_SKIPPED_PAGES_MAX` per request.
    fn handle(&mut self, msg: Incoming<ScanRange>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit(&msg.from, rate::Costly::Scan) {
            return Box::pin(async move { Err(refused) });
        }
        let ScanRange {
            start,
            end,
            limit,
            bytes_max,
        } = msg.request;
        let storage = self.replicas.storage.clone();
        let (read_ring, write_ring) = (self.read_ring.clone(), self.write_ring.clone());
        let (n, from) = (self.options.replicas_per_key, msg.from);
        let shared = move |key: &[u8]| {
            user_key(key).is_some_and(|user| {
                placement::shares(&read_ring, &write_ring, n, Ring::key_token(user), &from)
            })
        };
        let (end, limit) = (
            end.map(ByteBuf::into_vec),
            (limit as usize).clamp(1, SCAN_PAGE_ENTRIES_MAX),
        );
        let bytes_max = bytes_max.min(SCAN_PAGE_BYTES_MAX) as usize;
        Box::pin(async move {
            let mut cursor = start.into_vec();
            for _ in 0..SCAN_SKIPPED_PAGES_MAX {
                let page = storage
                    .send(LocalScan {
                        start: cursor.clone(),
                        end: end.clone(),
                        limit,
                        bytes_max,
                    })
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
                let more = page.more;
                let last = page.entries.last().map(|(key, _)| stream::successor(key));
                let entries: Vec<(ByteBuf, ByteBuf)> = page
                    .entries
                    .into_iter()
                    .filter(|(key, _)| shared(key))
                    .map(|(k, v)| (ByteBuf::from(k), ByteBuf::from(v)))
                    .collect();
                let skipped_tail = entries.last().map(|(k, _)| stream::successor(k)) != last;
                let resume = (more && skipped_tail).then(|| last.clone()).flatten();
                match last {
                    Some(next) if entries.is_empty() && more => cursor = next,
                    _ => {
                        return Ok(ScanPage {
                            entries,
                            more,
                            resume: resume.map(ByteBuf::from),
                        })
                    }
                }
            }
            // Nothing shared in SCAN_SKIPPED_PAGES_MAX pages: say where to go on.
            Ok(ScanPage {
                entries: Vec::new(),
                more: true,
                resume: Some(ByteBuf::from(cursor)),
            })
        })
    }
}

impl Handler<Incoming<MerkleNodes>> for Repair {
    type Result = ResponseFuture<Result<NodeHashes, RemoteError>>;

    /// Serves children of nodes of this node's tree over the keys it shares
    /// with the asking peer (a step of the peer's walk). A walk's first
    /// request (level 0) builds the pair tree and counts against the
    /// peer's Merkle-tree rate limit; its deeper requests are answered from
    /// that tree (for `PAIR_TREE_REUSE_MS`) and count as scan pages.
    fn handle(&mut self, msg: Incoming<MerkleNodes>, _ctx: &mut Self::Context) -> Self::Result {
        let MerkleNodes {
            with,
            level,
            indices,
        } = msg.request;
        let span = self.span.clone();
        if with != msg.from {
            let refusal = PeerRefusal::NotThePair {
                peer: msg.from.clone(),
                with,
            };
            let _span = span.enter();
            warn!(peer = %msg.from, reason = %refusal, "refusing a peer request");
            return Box::pin(async move { Err(refusal.into()) });
        }
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let cached = (level > 0)
            .then(|| lock(&self.served_trees).get(&with).cloned())
            .flatten()
            .filter(|(built, _)| now_ms.saturating_sub(*built) < PAIR_TREE_REUSE_MS)
            .map(|(_, tree)| tree);
        let cost = if cached.is_some() {
            rate::Costly::Scan
        } else {
            rate::Costly::MerkleTree
        };
        if let Err(refused) = self.admit(&msg.from, cost) {
            return Box::pin(async move { Err(refused) });
        }
        let (replicas, ring, n) = (
            self.replicas.clone(),
            self.read_ring.clone(),
            self.options.replicas_per_key,
        );
        let served_trees = self.served_trees.clone();
        Box::pin(
            async move {
                let tree = match cached {
                    Some(tree) => tree,
                    None => {
                        let own = replicas.own.clone();
                        let built = anti_entropy::pair_tree(&replicas, &ring, n, &own, &with)
                            .await
                            .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
                        let Some(built) = built else {
                            return Err(RemoteError::new(
                                ErrorCode::Unavailable,
                                RepairError::TreeNotReady.to_string(),
                            ));
                        };
                        let tree = Arc::new(built);
                        lock(&served_trees).insert(with.clone(), (now_ms, tree.clone()));
                        tree
                    }
                };
                let served = anti_entropy::serve_nodes(&tree, level, &indices).map_err(|why| {
                    warn!(peer = %with, reason = %why, "refusing a malformed MerkleNodes request");
                    RemoteError::new(ErrorCode::BadRequest, why)
                })?;
                replicas
                    .metrics
                    .anti_entropy_bytes(false, anti_entropy::leaf_hash_bytes(served.hashes.len()));
                Ok(served)
            }
            .instrument(span),
        )
    }
}

impl Handler<Incoming<MerkleLeaves>> for Repair {
    type Result = ResponseFuture<Result<LeafHashes, RemoteError>>;

    /// Serves this node's Merkle leaves over the keys it shares with the
    /// asking peer (the other half of an anti-entropy exchange); only the
    /// asking peer's own pair, within its rate limit.
    fn handle(&mut self, msg: Incoming<MerkleLeaves>, _ctx: &mut Self::Context) -> Self::Result {
        let MerkleLeaves { with, leaves } = msg.request;
        if with != msg.from {
            let refusal = PeerRefusal::NotThePair {
                peer: msg.from.clone(),
                with,
            };
            let span = self.span.clone();
            let _span = span.enter();
            warn!(peer = %msg.from, reason = %refusal, "refusing a peer request");
            return Box::pin(async move { Err(refusal.into()) });
        }
        if let Err(refused) = self.admit(&msg.from, rate::Costly::MerkleTree) {
            return Box::pin(async move { Err(refused) });
        }
        let (replicas, ring, n) = (
            self.replicas.clone(),
            self.read_ring.clone(),
            self.options.replicas_per_key,
        );
        Box::pin(
            async move {
                let served = anti_entropy::serve_tree(&replicas, &ring, n, &with, leaves)
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
                replicas
                    .metrics
                    .anti_entropy_bytes(false, anti_entropy::leaf_hash_bytes(served.hashes.len()));
                Ok(served)
            }
            .instrument(self.span.clone()),
        )
    }
}

impl Repair {
    /// A reap request's checks: the sender has a place on our rings, and
    /// asks about at most `REAP_KEYS_PER_REQUEST_MAX` keys.
    fn admit_reap(&self, from: &NodeId, keys: usize) -> Result<(), RemoteError> {
        if !placement::is_placed(&self.read_ring, &self.write_ring, from) {
            let refusal = PeerRefusal::NotAMember { peer: from.clone() };
            let span = self.span.clone();
            let _span = span.enter();
            warn!(peer = %from, reason = %refusal, "refusing a peer request");
            return Err(refusal.into());
        }
        if keys > REAP_KEYS_PER_REQUEST_MAX {
            return Err(RemoteError::new(
                ErrorCode::BadRequest,
                format!("{keys} keys in one reap request (REAP_KEYS_PER_REQUEST_MAX {REAP_KEYS_PER_REQUEST_MAX})"),
            ));
        }
        Ok(())
    }
}

impl Handler<Incoming<ReapCheck>> for Repair {
    type Result = ResponseFuture<Result<ReapHeld, RemoteError>>;

    /// Answers a reaper's check: what this node holds for each key.
    fn handle(&mut self, msg: Incoming<ReapCheck>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_reap(&msg.from, msg.request.keys.len()) {
            return Box::pin(async move { Err(refused) });
        }
        let replicas = self.replicas.clone();
        let keys: Vec<Vec<u8>> = msg
            .request
            .keys
            .into_iter()
            .map(ByteBuf::into_vec)
            .collect();
        Box::pin(
            async move {
                let keys = reap::held_locally(&replicas, &keys)
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e))?;
                Ok(ReapHeld { keys })
            }
            .instrument(self.span.clone()),
        )
    }
}

impl Handler<Incoming<ReapDrop>> for Repair {
    type Result = ResponseFuture<Result<ReapDropped, RemoteError>>;

    /// Serves a reaper's drop: each compare-and-delete, durably.
    fn handle(&mut self, msg: Incoming<ReapDrop>, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(refused) = self.admit_reap(&msg.from, msg.request.tombstones.len()) {
            return Box::pin(async move { Err(refused) });
        }
        let mut tombstones = Vec::with_capacity(msg.request.tombstones.len());
        for (key, object) in msg.request.tombstones {
            match crate::conflict_resolver::Object::decode(&object) {
                Ok(object) if crate::replicas::is_tombstone(&object) => {
                    tombstones.push((key.into_vec(), object))
                }
                _ => {
                    return Box::pin(async move {
                        Err(RemoteError::new(
                            ErrorCode::BadRequest,
                            "a reap drop carries something that is not a tombstone",
                        ))
                    })
                }
            }
        }
        let (replicas, removed, from) =
            (self.replicas.clone(), self.reap_removed.clone(), msg.from);
        let shadow_ms = self.options.reap.age_ms_min;
        Box::pin(
            async move {
                let count = reap::drop_locally(&replicas, tombstones, shadow_ms, &removed)
                    .await
                    .map_err(|e| RemoteError::new(ErrorCode::Internal, e))?;
                if count > 0 {
                    debug!(peer = %from, removed = count, "tombstone reaper: removed tombstones a member reaped");
                }
                Ok(ReapDropped { removed: count })
            }
            .instrument(self.span.clone()),
        )
    }
}
