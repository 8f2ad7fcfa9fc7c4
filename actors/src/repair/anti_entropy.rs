//! Merkle anti-entropy's moving half: building this node's tree over the
//! keys it shares with a peer, and syncing the slices where the peer's tree
//! differs (pulling them; the peer does the same from its side, so both
//! converge). See `merkle` for the tree itself.

use super::handoff::Transfer;
use super::merkle::MerkleTree;
use super::stream::{self, StreamStats, Throttle};
use super::RepairError;
use crate::replicas::Replicas;
use crate::ring::{user_key, Ring};
use crate::storage::LocalScan;
use crate::wire::peer::{LeafHashes, MerkleLeaves};
use crate::NodeId;

/// Most leaves a peer may ask a tree to have.
pub const MERKLE_LEAVES_MAX: usize = 65_536;
/// Entries per local scan page while building a tree.
const TREE_SCAN_PAGE_ENTRIES: usize = 1024;
/// Bytes per local scan page while building a tree.
const TREE_SCAN_PAGE_BYTES: usize = 4 << 20;

/// Builds this node's tree over the keys whose preference list (in `ring`,
/// `n` replicas) holds both `a` and `b`.
pub async fn local_tree(
    replicas: &Replicas,
    ring: &Ring,
    n: usize,
    a: &NodeId,
    b: &NodeId,
    leaves: usize,
) -> Result<MerkleTree, RepairError> {
    let mut tree = MerkleTree::new(leaves.min(MERKLE_LEAVES_MAX));
    // Which ranges both nodes replicate, decided once per range rather than
    // by a preference-list walk (and its allocations) per stored key.
    let shared: Vec<bool> = ring
        .ranges()
        .iter()
        .map(|range| {
            let list = ring.preference_list_at(range.upto, n);
            list.contains(a) && list.contains(b)
        })
        .collect();
    let mut cursor: Vec<u8> = Vec::new();
    loop {
        let scan = replicas.storage.send(LocalScan {
            start: cursor.clone(),
            end: None,
            limit: TREE_SCAN_PAGE_ENTRIES,
            bytes_max: TREE_SCAN_PAGE_BYTES,
        });
        let page = match scan.await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => return Err(RepairError::LocalScan(e)),
            Err(e) => return Err(RepairError::StorageGone(e)),
        };
        let entries = page.entries;
        let full_page = page.more;
        for (key, value) in &entries {
            let Some(user) = user_key(key) else { continue };
            let token = Ring::key_token(user);
            if shared
                .get(ring.range_index(token))
                .copied()
                .unwrap_or(false)
            {
                tree.insert(token, key, value);
            }
        }
        match entries.last() {
            Some((last, _)) if full_page => {
                cursor = last.clone();
                cursor.push(0);
            }
            _ => return Ok(tree),
        }
    }
}

/// What one exchange found and moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Leaves compared.
    pub leaves: usize,
    /// Leaves that differed.
    pub differing: usize,
    /// What was pulled for them.
    pub pulled: StreamStats,
}

/// One anti-entropy exchange with `peer`: compare trees, pull the slices
/// that differ.
pub async fn sync_with(
    replicas: &Replicas,
    ring: &Ring,
    n: usize,
    peer: &NodeId,
    leaves: usize,
    throttle: Throttle,
    timeout_ms: u64,
) -> Result<SyncStats, RepairError> {
    let own = replicas.own.clone();
    let local = local_tree(replicas, ring, n, &own, peer, leaves).await?;
    let request = MerkleLeaves {
        with: own.clone(),
        leaves: local.leaves().len() as u32,
    };
    let remote = match replicas.call(peer, request, 0, timeout_ms).await {
        Ok(LeafHashes { hashes }) => {
            replicas
                .metrics
                .anti_entropy_bytes(true, leaf_hash_bytes(hashes.len()));
            MerkleTree::from_leaves(hashes)
        }
        Err(source) => {
            return Err(RepairError::PeerTree {
                peer: peer.clone(),
                source,
            })
        }
    };
    let differing = local.differing_leaves(&remote);
    let mut stats = SyncStats {
        leaves: local.leaves().len(),
        differing: differing.len(),
        pulled: StreamStats::default(),
    };
    for leaf in differing {
        let transfer = Transfer {
            range: local.leaf_range(leaf),
            source: peer.clone(),
            target: own.clone(),
        };
        let pulled = stream::pull(replicas, &transfer, throttle, timeout_ms, 0).await?;
        replicas.metrics.anti_entropy_bytes(true, pulled.bytes);
        replicas.metrics.anti_entropy_keys_repaired(pulled.changed);
        stats.pulled += pulled;
    }
    Ok(stats)
}

/// Bytes of `leaves` Merkle leaf hashes (8 each), as the metrics count them.
pub fn leaf_hash_bytes(leaves: usize) -> u64 {
    8 * leaves as u64
}

/// Serves a peer's tree request.
pub async fn serve_tree(
    replicas: &Replicas,
    ring: &Ring,
    n: usize,
    with: &NodeId,
    leaves: u32,
) -> Result<LeafHashes, RepairError> {
    let own = replicas.own.clone();
    let tree = local_tree(replicas, ring, n, &own, with, leaves as usize).await?;
    Ok(LeafHashes {
        hashes: tree.leaves().to_vec(),
    })
}
