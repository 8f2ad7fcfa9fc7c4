//! Merkle-tree anti-entropy's pure half: a hash tree over the token circle
//! whose leaves are buckets of keys (the chapter's Figures 13-16).
//!
//! Two replicas build a tree over the keys they both hold a replica of,
//! with the same number of leaves: leaf `i` covers an equal slice of the
//! token circle, and its hash combines the hashes of every (key, stored
//! object) in the slice. Equal roots mean equal data; otherwise the leaves
//! that differ name the only slices worth syncing, so the data moved is
//! proportional to the differences, not to the data set. Stored objects are
//! encoded canonically, so replicas holding the same versions hash alike.
//!
//! A leaf's hash is the wrapping sum of its entries' 64-bit hashes: the
//! order entries are added in does not matter, so the tree can be built
//! from a scan in any order.

use crate::ring::{hash_bytes, Token, TokenRange};

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
        let entry = hash_bytes(key) ^ hash_bytes(value).rotate_left(17);
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
