//! Merkle-tree anti-entropy's pure half: hash trees over the token circle
//! whose leaves are slices of keys (the chapter's Figures 13-16).
//!
//! # The incremental tree (what exchanges use)
//!
//! The node keeps, as it writes, one hash per fixed token slice
//! (`storage::tree`: [`TREE_LEAVES`] leaves, each the wrapping sum of its
//! entries' [`entry_digest`]s). Two replicas compare only what they both
//! hold: a [`PairTree`] for the pair `(a, b)` takes each leaf as kept when
//! every token of its slice lies in a range both replicate, as 0 when none
//! does, and, for the few leaves a range boundary cuts ([`leaf_cover`]
//! says which), the sum over a key walk of just that slice's shared keys.
//! Interior nodes are the wrapping sums of their [`TREE_FANOUT`] children,
//! [`TREE_DEPTH`] levels up to the root, so building a pair's tree costs
//! O(leaves + ranges + keys of the cut leaves), never a scan of the store.
//!
//! An exchange walks it: ask the peer for the root's children, compare,
//! ask for the children of only the nodes that differ, down to the
//! leaves ([`differing_children`]); then pull just the differing leaves'
//! slices. A pair in sync costs one round trip of [`TREE_FANOUT`] hashes.
//! Sums cancel only if two differences are exact negatives of each other
//! (a 2^-64 chance for hashed entries).
//!
//! # The full-scan tree (older peers)
//!
//! [`MerkleTree`] is the tree this node served before: built per request
//! from a scan of the whole store, its leaves sent in one message
//! (`MerkleLeaves`). It is still served to peers of an older build; this
//! build never asks for it.

use std::sync::Arc;

use crate::conflict_resolver::{Object, FORMAT_VERSION_EXPIRY};
use crate::ring::{hash_bytes, Token, TokenRange};
use crate::storage::tree::{leaf_of_token, pair_digest, TreeDigest, TREE_LEAF_BITS, TREE_LEAVES};

/// Children of an interior node of a [`PairTree`], as a power of two.
pub const TREE_FANOUT_BITS: u32 = 3;
/// Children of an interior node of a [`PairTree`].
pub const TREE_FANOUT: usize = 1 << TREE_FANOUT_BITS;
/// Levels below the root (the leaves are level `TREE_DEPTH`).
pub const TREE_DEPTH: usize = (TREE_LEAF_BITS / TREE_FANOUT_BITS) as usize;
const _: () = assert!(TREE_LEAF_BITS.is_multiple_of(TREE_FANOUT_BITS));

/// The digest of a stored entry, as compaction will leave it: an object
/// with values that carry an expiry is hashed with those values purged
/// (`Object::without_expired` at the end of time), so the compaction
/// filter's purge changes no hash; other entries hash as stored. The
/// expiry is part of the version, so two replicas of one version still
/// hash alike, and a replica that lacks a version still differs.
/// Only an object in the expiry format (its first byte) is decoded, so a
/// write without a TTL costs the storage writer two hashes.
pub fn entry_digest(storage_key: &[u8], value: &[u8]) -> u64 {
    let purged = (value.first() == Some(&FORMAT_VERSION_EXPIRY))
        .then(|| Object::decode(value).ok())
        .flatten()
        .filter(Object::has_expiry)
        .and_then(|object| object.without_expired(u64::MAX))
        .map(|object| object.encode());
    let bytes = purged.as_deref().unwrap_or(value);
    pair_digest(storage_key, bytes)
}

/// [`entry_digest`] as the storage writer takes it.
pub fn tree_digest() -> TreeDigest {
    TreeDigest(Arc::new(entry_digest))
}

/// Nodes at `level` of a [`PairTree`] (`TREE_FANOUT^level`).
pub fn nodes_at(level: usize) -> usize {
    1 << (TREE_FANOUT_BITS as usize * level)
}

/// The tokens leaf `leaf` of the incremental tree covers.
pub fn leaf_token_range(leaf: usize) -> TokenRange {
    let shift = 64 - TREE_LEAF_BITS;
    let lo = (leaf as u64) << shift;
    let hi = lo | (u64::MAX >> TREE_LEAF_BITS);
    TokenRange {
        after: Token(lo.wrapping_sub(1)),
        upto: Token(hi),
    }
}

/// How much of each leaf a pair shares, one byte per leaf: bit 1 set when
/// some of its tokens are in a shared range, bit 2 when some are not; so
/// 1 is a wholly shared leaf, 3 a leaf a range boundary cuts. `ranges` is
/// the ring's ranges with whether the pair shares each.
pub fn leaf_cover(ranges: &[(TokenRange, bool)]) -> Vec<u8> {
    let mut cover = vec![0u8; TREE_LEAVES];
    let mut mark = |lo: u64, hi: u64, bit: u8| {
        for c in &mut cover[leaf_of_token(lo)..=leaf_of_token(hi)] {
            *c |= bit;
        }
    };
    for (range, shared) in ranges {
        let bit = if *shared { 1 } else { 2 };
        let (after, upto) = (range.after.0, range.upto.0);
        if after < upto {
            mark(after + 1, upto, bit);
        } else {
            // Through zero (or the whole circle when after == upto).
            if after < u64::MAX {
                mark(after + 1, u64::MAX, bit);
            }
            mark(0, upto, bit);
        }
    }
    cover
}

/// Sorted leaves as token ranges, neighbours merged (one pull each).
pub fn coalesce(leaves: &[u32]) -> Vec<TokenRange> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &leaf in leaves {
        match out.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(leaf) => *last = leaf,
            _ => out.push((leaf, leaf)),
        }
    }
    out.into_iter()
        .map(|(first, last)| TokenRange {
            after: leaf_token_range(first as usize).after,
            upto: leaf_token_range(last as usize).upto,
        })
        .collect()
}

/// A pair's tree: the leaves they share, and the sums above them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairTree {
    /// `levels[0]` is the root, `levels[TREE_DEPTH]` the leaves.
    levels: Vec<Vec<u64>>,
}

impl PairTree {
    /// The tree over `leaves` ([`TREE_LEAVES`] of them; missing ones are 0,
    /// extra ones ignored).
    pub fn from_leaves(mut leaves: Vec<u64>) -> Self {
        leaves.resize(TREE_LEAVES, 0);
        let mut levels = vec![leaves];
        for _ in 0..TREE_DEPTH {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up: Vec<u64> = below
                .chunks(TREE_FANOUT)
                .map(|c| c.iter().fold(0u64, |a, h| a.wrapping_add(*h)))
                .collect();
            levels.push(up);
        }
        levels.reverse();
        Self { levels }
    }

    /// The root hash.
    pub fn root(&self) -> u64 {
        self.levels
            .first()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or(0)
    }

    /// The leaf hashes.
    pub fn leaves(&self) -> &[u64] {
        self.levels.last().map(Vec::as_slice).unwrap_or_default()
    }

    /// The children of node `index` at `level` (`None`: no such interior
    /// node).
    pub fn children(&self, level: usize, index: u32) -> Option<&[u64]> {
        let below = self.levels.get(level + 1)?;
        if level >= TREE_DEPTH || index as usize >= nodes_at(level) {
            return None;
        }
        let start = index as usize * TREE_FANOUT;
        below.get(start..start + TREE_FANOUT)
    }
}

/// The children (at `level + 1`) of `parents` (at `level`) whose hashes in
/// `remote` (the peer's children of each parent, in order, `TREE_FANOUT`
/// per parent) differ from `local`'s; in ascending order when `parents`
/// are.
pub fn differing_children(
    local: &PairTree,
    level: usize,
    parents: &[u32],
    remote: &[u64],
) -> Vec<u32> {
    let mut out = Vec::new();
    for (parent, theirs) in parents.iter().zip(remote.chunks(TREE_FANOUT)) {
        let Some(ours) = local.children(level, *parent) else {
            continue;
        };
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            if a != b {
                out.push(parent * TREE_FANOUT as u32 + i as u32);
            }
        }
    }
    out
}

/// Default leaves per tree: 1,024 leaves of 8 bytes is an 8 KiB exchange,
/// and with a million keys a leaf holds about a thousand (the chapter's
/// "one million buckets per one billion keys" ratio).
pub const MERKLE_LEAVES_DEFAULT: usize = 1024;

/// A tree over the whole token circle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    leaves: Vec<u64>,
}

impl MerkleTree {
    /// An empty tree with `leaves` leaves (rounded up to a power of two, at
    /// least 1).
    pub fn new(leaves: usize) -> Self {
        Self {
            leaves: vec![0; leaves.max(1).next_power_of_two()],
        }
    }

    /// A tree from leaf hashes received from a peer.
    pub fn from_leaves(leaves: Vec<u64>) -> Self {
        Self { leaves }
    }

    /// The leaf hashes (what peers exchange).
    pub fn leaves(&self) -> &[u64] {
        &self.leaves
    }

    /// Adds one stored entry (its token, engine key and stored bytes).
    pub fn insert(&mut self, token: Token, key: &[u8], value: &[u8]) {
        let leaf = self.leaf_of(token);
        let entry = pair_digest(key, value);
        if let Some(h) = self.leaves.get_mut(leaf) {
            *h = h.wrapping_add(entry);
        }
    }

    /// The root: pairs of nodes hashed level by level up to one.
    pub fn root(&self) -> u64 {
        let mut level = self.leaves.clone();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| {
                    let mut bytes = [0u8; 16];
                    bytes[..8].copy_from_slice(&pair[0].to_le_bytes());
                    bytes[8..].copy_from_slice(&pair.get(1).copied().unwrap_or(0).to_le_bytes());
                    hash_bytes(&bytes)
                })
                .collect();
        }
        level.first().copied().unwrap_or(0)
    }

    /// Leaves whose hashes differ from `other`'s (all of them when the trees
    /// have different shapes).
    pub fn differing_leaves(&self, other: &MerkleTree) -> Vec<usize> {
        if self.leaves.len() != other.leaves.len() {
            return (0..self.leaves.len()).collect();
        }
        if self.root() == other.root() {
            return Vec::new();
        }
        (0..self.leaves.len())
            .filter(|&i| self.leaves[i] != other.leaves[i])
            .collect()
    }

    /// The leaf a token falls in.
    pub fn leaf_of(&self, token: Token) -> usize {
        ((token.0 as u128 * self.leaves.len() as u128) >> 64) as usize
    }

    /// The tokens leaf `i` covers.
    pub fn leaf_range(&self, i: usize) -> TokenRange {
        let count = self.leaves.len() as u128;
        // Leaf i holds tokens t with floor(t * count / 2^64) == i, that is
        // ceil(i * 2^64 / count) <= t < ceil((i + 1) * 2^64 / count).
        let start = |i: u128| -> u128 { (i << 64).div_ceil(count) };
        let (lo, hi) = (start(i as u128), start(i as u128 + 1));
        // As (after, upto]: after = lo - 1 (wrapping), upto = hi - 1.
        TokenRange {
            after: Token((lo as u64).wrapping_sub(1)),
            upto: Token((hi.saturating_sub(1)) as u64),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::Ring;

    fn tree_of(keys: &[(&str, &str)], leaves: usize) -> MerkleTree {
        let mut t = MerkleTree::new(leaves);
        for (k, v) in keys {
            t.insert(Ring::key_token(k.as_bytes()), k.as_bytes(), v.as_bytes());
        }
        t
    }

    fn token_range(after: u64, upto: u64) -> TokenRange {
        TokenRange {
            after: Token(after),
            upto: Token(upto),
        }
    }

    #[test]
    fn leaf_ranges_tile_the_circle() {
        assert_eq!(leaf_token_range(0).after, Token(u64::MAX));
        assert_eq!(leaf_token_range(TREE_LEAVES - 1).upto, Token(u64::MAX));
        for leaf in [0, 1, 777, TREE_LEAVES - 2] {
            let r = leaf_token_range(leaf);
            assert_eq!(leaf_token_range(leaf + 1).after, r.upto);
            assert_eq!(leaf_of_token(r.upto.0), leaf);
            assert_eq!(leaf_of_token(r.after.0.wrapping_add(1)), leaf);
        }
    }

    #[test]
    fn cover_tells_whole_cut_and_unshared_leaves_apart() {
        let width = 1u64 << (64 - TREE_LEAF_BITS);
        // Shared: leaves 0..=9 and half of leaf 10; the rest is not,
        // through zero.
        let cut = 10 * width + width / 2;
        let cover = leaf_cover(&[
            (token_range(u64::MAX, cut), true),
            (token_range(cut, u64::MAX), false),
        ]);
        assert!(cover[..10].iter().all(|c| *c == 1));
        assert_eq!(cover[10], 3);
        assert!(cover[11..].iter().all(|c| *c == 2));
        // One range: the whole circle, shared.
        assert!(leaf_cover(&[(token_range(5, 5), true)])
            .iter()
            .all(|c| *c == 1));
    }

    #[test]
    fn coalesce_merges_neighbouring_leaves() {
        let ranges = coalesce(&[1, 2, 3, 7, 9, 10]);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].after, leaf_token_range(1).after);
        assert_eq!(ranges[0].upto, leaf_token_range(3).upto);
        assert_eq!(ranges[1], leaf_token_range(7));
        assert_eq!(ranges[2].upto, leaf_token_range(10).upto);
    }

    #[test]
    fn interior_nodes_sum_their_children() {
        let mut leaves = vec![0u64; TREE_LEAVES];
        leaves[0] = 5;
        leaves[TREE_LEAVES - 1] = u64::MAX;
        let tree = PairTree::from_leaves(leaves);
        assert_eq!(tree.root(), 4, "wrapping sum");
        assert_eq!(tree.children(0, 0).unwrap().len(), TREE_FANOUT);
        assert!(tree.children(0, 1).is_none());
        assert!(tree.children(TREE_DEPTH, 0).is_none());
        assert_eq!(tree.children(TREE_DEPTH - 1, 0).unwrap()[0], 5);
    }

    #[test]
    fn purging_an_expired_value_keeps_the_digest_and_a_new_version_changes_it() {
        use crate::conflict_resolver::{VersionLimits, VersionVector};
        let node = crate::NodeId::new("a").unwrap();
        let put = |value: &[u8], expires: Option<u64>, counter| {
            Object::update_expiring(
                None,
                &VersionVector::new(),
                Some(value.to_vec()),
                expires,
                &node,
                counter,
                &VersionLimits::default(),
            )
            .unwrap()
        };
        let key = b"\0\0\0\0\0\0\0\x01k";
        let expiring = put(b"v", Some(1_000), 1);
        let purged = expiring.without_expired(2_000).unwrap();
        assert_ne!(expiring.encode(), purged.encode());
        assert_eq!(
            entry_digest(key, &expiring.encode()),
            entry_digest(key, &purged.encode())
        );
        let plain = put(b"v", None, 1).encode();
        assert_ne!(
            entry_digest(key, &plain),
            entry_digest(key, &put(b"w", None, 1).encode())
        );
        assert_ne!(entry_digest(key, &plain), entry_digest(b"other", &plain));
    }

    #[test]
    fn equal_data_equal_roots_in_any_order() {
        let a = tree_of(&[("a", "1"), ("b", "2"), ("c", "3")], 64);
        let b = tree_of(&[("c", "3"), ("a", "1"), ("b", "2")], 64);
        assert_eq!(a.root(), b.root());
        assert!(a.differing_leaves(&b).is_empty());
    }

    #[test]
    fn one_difference_names_exactly_its_leaf() {
        let a = tree_of(&[("a", "1"), ("b", "2"), ("c", "3")], 64);
        let b = tree_of(&[("a", "1"), ("b", "changed"), ("c", "3")], 64);
        assert_ne!(a.root(), b.root());
        let diff = a.differing_leaves(&b);
        assert_eq!(diff, vec![a.leaf_of(Ring::key_token(b"b"))]);
        // A missing key is a difference too.
        let c = tree_of(&[("a", "1"), ("c", "3")], 64);
        assert_eq!(
            a.differing_leaves(&c),
            vec![a.leaf_of(Ring::key_token(b"b"))]
        );
    }

    #[test]
    fn leaf_ranges_tile_the_circle_and_match_leaf_of() {
        let t = MerkleTree::new(8);
        for i in 0..8 {
            let r = t.leaf_range(i);
            assert_eq!(t.leaf_of(Token(r.after.0.wrapping_add(1))), i);
            assert_eq!(t.leaf_of(r.upto), i);
            let next = t.leaf_range((i + 1) % 8);
            assert_eq!(next.after, r.upto, "leaf {i} and the next share a boundary");
        }
        for k in 0..1000u32 {
            let token = Ring::key_token(&k.to_be_bytes());
            let leaf = t.leaf_of(token);
            assert!(t.leaf_range(leaf).contains(token));
        }
    }

    #[test]
    fn differently_shaped_trees_differ_everywhere() {
        assert_eq!(
            MerkleTree::new(4)
                .differing_leaves(&MerkleTree::new(8))
                .len(),
            4
        );
    }
}
