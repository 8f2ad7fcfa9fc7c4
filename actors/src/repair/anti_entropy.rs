//! Merkle anti-entropy's moving half: deriving this node's tree over the
//! keys it shares with a peer from the leaves the storage writer keeps
//! ([`pair_tree`]), walking the peer's tree from the root down through
//! only the nodes that differ ([`sync_with`]), and pulling the differing
//! leaves' slices (the peer does the same from its side, so both
//! converge), paced by `anti_entropy_bytes_per_s_max`. See `merkle` for
//! the trees. The full-scan tree ([`local_tree`], [`serve_tree`]) is kept
//! only to serve peers of an older build.

use super::handoff::Transfer;
use super::merkle::{self, MerkleTree, PairTree, TREE_DEPTH, TREE_FANOUT};
use super::stream::{self, StreamStats, Throttle};
use super::RepairError;
use crate::replicas::Replicas;
use crate::ring::{user_key, Ring};
use crate::storage::tree::leaf_of_token;
use crate::storage::{LocalScan, TreeSnapshotQuery};
use crate::wire::peer::{LeafHashes, MerkleNodes, NodeHashes};
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

/// Most node indices one `MerkleNodes` request names (its answer is
/// `TREE_FANOUT` hashes each: 256 KiB at most).
pub const MERKLE_NODES_PER_REQUEST_MAX: usize = 4096;

/// This node's tree over the keys whose preference list (in `ring`, `n`
/// replicas) holds both `a` and `b`, derived from the leaves the storage
/// writer keeps: leaves wholly in shared ranges as kept, leaves a range
/// boundary cuts from a key walk of their slice. `None` while the leaves
/// are rebuilt at start.
pub async fn pair_tree(
    replicas: &Replicas,
    ring: &Ring,
    n: usize,
    a: &NodeId,
    b: &NodeId,
) -> Result<Option<PairTree>, RepairError> {
    let snapshot = match replicas.storage.send(TreeSnapshotQuery).await {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return Ok(None),
        Err(e) => return Err(RepairError::StorageGone(e)),
    };
    let ranges: Vec<_> = ring
        .ranges()
        .into_iter()
        .map(|range| {
            let list = ring.preference_list_at(range.upto, n);
            (range, list.contains(a) && list.contains(b))
        })
        .collect();
    let shared_at = |token| {
        ranges
            .get(ring.range_index(token))
            .is_some_and(|(_, shared)| *shared)
    };
    let cover = merkle::leaf_cover(&ranges);
    let mut leaves = snapshot.leaves;
    for (leaf, hash) in leaves.iter_mut().enumerate() {
        match cover.get(leaf).copied().unwrap_or(0) {
            1 => {}
            3 => {
                // Cut by a range boundary: only its shared keys count.
                let mut sum = 0u64;
                let range = merkle::leaf_token_range(leaf);
                for (start, end) in range.storage_ranges() {
                    let mut cursor = start;
                    loop {
                        let page = match replicas
                            .storage
                            .send(LocalScan {
                                start: cursor.clone(),
                                end: end.clone(),
                                limit: TREE_SCAN_PAGE_ENTRIES,
                                bytes_max: TREE_SCAN_PAGE_BYTES,
                            })
                            .await
                        {
                            Ok(Ok(page)) => page,
                            Ok(Err(e)) => return Err(RepairError::LocalScan(e)),
                            Err(e) => return Err(RepairError::StorageGone(e)),
                        };
                        for (key, value) in &page.entries {
                            let Some(user) = user_key(key) else { continue };
                            let token = Ring::key_token(user);
                            if leaf_of_token(token.0) == leaf && shared_at(token) {
                                sum = sum.wrapping_add(snapshot.digest.of(key, value));
                            }
                        }
                        match page.entries.last() {
                            Some((last, _)) if page.more => cursor = stream::successor(last),
                            _ => break,
                        }
                    }
                }
                *hash = sum;
            }
            _ => *hash = 0,
        }
    }
    Ok(Some(PairTree::from_leaves(leaves)))
}

/// What one exchange found and moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Tree nodes compared (hashes received), over every level.
    pub leaves: usize,
    /// Leaves that differed.
    pub differing: usize,
    /// Round trips of the walk.
    pub rounds: usize,
    /// Bytes of hashes received.
    pub hash_bytes: u64,
    /// What was pulled for the differing leaves.
    pub pulled: StreamStats,
}

/// One anti-entropy exchange with `peer`: walk the pair's trees from the
/// root down the differing nodes, pull the leaves that differ. Fails with
/// `TreeNotReady` (nothing asked) while this node's leaves are rebuilt.
pub async fn sync_with(
    replicas: &Replicas,
    ring: &Ring,
    n: usize,
    peer: &NodeId,
    throttle: Throttle,
    timeout_ms: u64,
) -> Result<SyncStats, RepairError> {
    let own = replicas.own.clone();
    let Some(local) = pair_tree(replicas, ring, n, &own, peer).await? else {
        return Err(RepairError::TreeNotReady);
    };
    let mut stats = SyncStats::default();
    let differing = walk(&local, &mut stats, |level, indices| {
        let request = MerkleNodes {
            with: own.clone(),
            level,
            indices,
        };
        async move {
            match replicas.call(peer, request, 0, timeout_ms).await {
                Ok(NodeHashes { hashes }) => {
                    replicas
                        .metrics
                        .anti_entropy_bytes(true, leaf_hash_bytes(hashes.len()));
                    Ok(hashes)
                }
                Err(source) => Err(RepairError::PeerTree {
                    peer: peer.clone(),
                    source,
                }),
            }
        }
    })
    .await?;
    stats.differing = differing.len();
    for range in merkle::coalesce(&differing) {
        let transfer = Transfer {
            range,
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

/// The walk of one exchange: asks `ask(level, indices)` for the children
/// of the nodes that differ, level by level from the root, and returns the
/// leaves (ascending) whose hashes differ from `local`'s. `ask` must
/// answer `TREE_FANOUT` hashes per index.
pub async fn walk<F, Fut>(
    local: &PairTree,
    stats: &mut SyncStats,
    mut ask: F,
) -> Result<Vec<u32>, RepairError>
where
    F: FnMut(u8, Vec<u32>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u64>, RepairError>>,
{
    let mut frontier = vec![0u32];
    for level in 0..TREE_DEPTH {
        let mut next = Vec::new();
        for parents in frontier.chunks(MERKLE_NODES_PER_REQUEST_MAX) {
            let hashes = ask(level as u8, parents.to_vec()).await?;
            if hashes.len() != parents.len() * TREE_FANOUT {
                return Err(RepairError::BadTreeReply {
                    asked: parents.len(),
                    got: hashes.len(),
                });
            }
            stats.rounds += 1;
            stats.leaves += hashes.len();
            stats.hash_bytes += leaf_hash_bytes(hashes.len());
            next.extend(merkle::differing_children(local, level, parents, &hashes));
        }
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    Ok(frontier)
}

/// Answers a `MerkleNodes` request from `tree`: `TREE_FANOUT` hashes per
/// index. The request is validated first (level, count, each index); the
/// reason is returned when it is refused.
pub fn serve_nodes(tree: &PairTree, level: u8, indices: &[u32]) -> Result<NodeHashes, String> {
    let level = level as usize;
    if level >= TREE_DEPTH {
        return Err(format!(
            "level {level} is not above the leaves ({TREE_DEPTH})"
        ));
    }
    if indices.is_empty() || indices.len() > MERKLE_NODES_PER_REQUEST_MAX {
        return Err(format!(
            "{} indices; 1 to {MERKLE_NODES_PER_REQUEST_MAX} per request",
            indices.len()
        ));
    }
    let mut hashes = Vec::with_capacity(indices.len() * TREE_FANOUT);
    for &index in indices {
        match tree.children(level, index) {
            Some(children) => hashes.extend_from_slice(children),
            None => return Err(format!("no node {index} at level {level}")),
        }
    }
    Ok(NodeHashes { hashes })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::repair::merkle::{nodes_at, TREE_FANOUT_BITS};
    use crate::storage::tree::TREE_LEAVES;
    use std::collections::BTreeSet;

    /// Walks `local` against `remote` served by `serve_nodes`; the
    /// differing leaves found and the nodes asked about, per level.
    async fn walk_against(
        local: &PairTree,
        remote: &PairTree,
    ) -> (Vec<u32>, Vec<Vec<u32>>, SyncStats) {
        let mut asked = vec![Vec::new(); TREE_DEPTH];
        let mut stats = SyncStats::default();
        let found = walk(local, &mut stats, |level, indices| {
            asked[level as usize].extend(indices.iter().copied());
            let answer = serve_nodes(remote, level, &indices).map(|a| a.hashes);
            async move { Ok(answer.unwrap()) }
        })
        .await
        .unwrap();
        (found, asked, stats)
    }

    #[tokio::test]
    async fn an_in_sync_walk_is_one_round_trip_of_the_roots_children() {
        let leaves: Vec<u64> = (0..TREE_LEAVES as u64).map(|i| i * 7919).collect();
        let a = PairTree::from_leaves(leaves.clone());
        let b = PairTree::from_leaves(leaves);
        let (found, asked, stats) = walk_against(&a, &b).await;
        assert!(found.is_empty());
        assert_eq!(asked[0], vec![0]);
        assert!(asked[1..].iter().all(Vec::is_empty));
        assert_eq!((stats.rounds, stats.leaves), (1, TREE_FANOUT));
    }

    #[tokio::test]
    async fn a_walk_visits_only_the_ancestors_of_differing_leaves() {
        let leaves: Vec<u64> = (0..TREE_LEAVES as u64).map(|i| i ^ 0x5555).collect();
        let mut theirs = leaves.clone();
        let differing: BTreeSet<u32> = [3u32, 4, 70_000, 262_143].into_iter().collect();
        for &leaf in &differing {
            theirs[leaf as usize] = theirs[leaf as usize].wrapping_add(1);
        }
        let (found, asked, stats) = walk_against(
            &PairTree::from_leaves(leaves),
            &PairTree::from_leaves(theirs),
        )
        .await;
        assert_eq!(found, differing.iter().copied().collect::<Vec<_>>());
        for (level, nodes) in asked.iter().enumerate() {
            // The ancestors at `level` of the differing leaves, once each.
            let shift = TREE_FANOUT_BITS as usize * (TREE_DEPTH - level);
            let expected: BTreeSet<u32> = differing.iter().map(|l| l >> shift).collect();
            assert_eq!(
                nodes.iter().copied().collect::<BTreeSet<_>>(),
                expected,
                "level {level}"
            );
            assert_eq!(
                nodes.len(),
                expected.len(),
                "level {level}: asked once each"
            );
            assert!(nodes.iter().all(|n| (*n as usize) < nodes_at(level)));
        }
        assert_eq!(stats.rounds, TREE_DEPTH);
    }

    #[test]
    fn malformed_node_requests_are_refused() {
        let tree = PairTree::from_leaves(Vec::new());
        assert!(serve_nodes(&tree, TREE_DEPTH as u8, &[0]).is_err());
        assert!(serve_nodes(&tree, 0, &[]).is_err());
        assert!(serve_nodes(&tree, 0, &[1]).is_err(), "level 0 has one node");
        assert!(serve_nodes(&tree, 1, &[TREE_FANOUT as u32]).is_err());
        let many = vec![0u32; MERKLE_NODES_PER_REQUEST_MAX + 1];
        assert!(serve_nodes(&tree, 5, &many).is_err());
        let ok = serve_nodes(&tree, 5, &[0, 1, 2]).unwrap();
        assert_eq!(ok.hashes.len(), 3 * TREE_FANOUT);
    }
}
