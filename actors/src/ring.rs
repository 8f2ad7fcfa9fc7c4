//! The consistent-hash ring: virtual nodes weighted by capacity, and the
//! preference list of a key.
//!
//! Each member gets `vnodes_per_weight * weight` tokens, placed by hashing
//! `"{id}#{i}"`; a key is hashed onto the same 64-bit circle and its
//! preference list is the first N distinct physical members met walking
//! clockwise. When members sit in several data centers or racks, the walk
//! prefers a member in a data center (then a rack) the list does not hold
//! yet, so one rack or DC failure cannot take every replica; with a uniform
//! topology this is exactly "the first N distinct nodes".
//!
//! With a per-DC replication factor ([`DcReplication`], `--dc-replication
//! dc1:3,dc2:2`) the list is instead, for each data center named, the first
//! `n_dc` distinct members of that DC clockwise from the key's token (racks
//! spread within the DC as above), in clockwise order; members of DCs not
//! named hold no replicas.
//!
//! Pure: no I/O, deterministic for a given membership (every node that knows
//! the same members computes the same ring).

mod dc_replication;
mod keys;
mod topology;

pub use dc_replication::{is_dc_name, DcReplication, DC_NAME_BYTES_MAX, DC_REPLICATION_DCS_MAX};
pub use keys::{hash_bytes, mix64, storage_key, user_key};
use topology::spread_across_topology;

use crate::node_id::NODE_WEIGHT_MAX;
use crate::NodeId;

/// Default virtual nodes per unit of weight. 128 keeps three equal nodes
/// within a few percent of a third each (see the tests) while the ring of a
/// hundred nodes stays small enough to rebuild on every membership change.
pub const VNODES_PER_WEIGHT_DEFAULT: u32 = 128;

/// Largest `--vnodes` (virtual nodes per unit of weight).
pub const VNODES_PER_WEIGHT_MAX: u32 = 4096;

/// Most tokens a ring holds, whatever its members announce: 16 bytes each,
/// so 16 MiB at most, rebuilt on every membership change. When the
/// members' `vnodes x weight` add up to more, every member's count is
/// scaled down by the same factor (at least one token each), so every node
/// that knows the same members still builds the same ring.
pub const RING_TOKENS_MAX: usize = 1 << 20;

/// A position on the ring.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Token(pub u64);

/// The keys whose token `t` has `after < t <= upto`, wrapping around the
/// circle when `after >= upto` (the arc through zero; `after == upto` is the
/// whole circle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TokenRange {
    /// Exclusive start.
    pub after: Token,
    /// Inclusive end.
    pub upto: Token,
}

impl TokenRange {
    /// Whether `token` lies on the arc.
    pub fn contains(&self, token: Token) -> bool {
        if self.after < self.upto {
            self.after < token && token <= self.upto
        } else {
            token > self.after || token <= self.upto
        }
    }

    /// The arc as at most two non-wrapping engine-key ranges
    /// `[start, end)` (`end` `None`: to the end of the key space), for range
    /// scans of keys stored under [`storage_key`].
    pub fn storage_ranges(&self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let from = |t: Token| t.0.checked_add(1).map(|v| v.to_be_bytes().to_vec());
        let start = from(self.after);
        let end = from(self.upto);
        if self.after < self.upto {
            // (after, upto]: [after+1, upto+1); after+1 exists since after < upto.
            vec![(start.unwrap_or_default(), end)]
        } else {
            // (after, MAX] and [0, upto].
            let mut ranges = Vec::with_capacity(2);
            if let Some(start) = start {
                ranges.push((start, None));
            }
            ranges.push((Vec::new(), end));
            ranges
        }
    }
}

/// How many tokens each of `members` gets: `vnodes_per_weight x weight`
/// (both clamped to their limits), scaled down proportionally (at least
/// one each) when the sum would pass [`RING_TOKENS_MAX`]. The sum never
/// passes `RING_TOKENS_MAX` unless there are more members than that.
pub fn token_counts(members: &[RingMember], vnodes_per_weight: u32) -> Vec<usize> {
    let vnodes = vnodes_per_weight.clamp(1, VNODES_PER_WEIGHT_MAX) as usize;
    let wanted: Vec<usize> = members
        .iter()
        .map(|m| vnodes * m.weight.clamp(1, NODE_WEIGHT_MAX) as usize)
        .collect();
    let total: usize = wanted.iter().sum();
    if total <= RING_TOKENS_MAX {
        return wanted;
    }
    // Floor of count x MAX / total: the scaled sum stays under MAX, plus
    // at most one per member for the floor of 1.
    wanted
        .into_iter()
        .map(|count| {
            let scaled = (count as u128 * RING_TOKENS_MAX as u128 / total as u128) as usize;
            scaled.max(1)
        })
        .collect()
}

/// What the ring needs to know of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingMember {
    /// The member's id (also what its tokens are derived from).
    pub id: NodeId,
    /// Data center, for replica spreading.
    pub dc: String,
    /// Rack, for replica spreading.
    pub rack: String,
    /// Capacity weight (>= 1).
    pub weight: u32,
}

/// An immutable ring; rebuilt when membership changes.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    /// Sorted by token; the second field indexes `members`.
    tokens: Vec<(Token, usize)>,
    /// Members, sorted by id.
    members: Vec<RingMember>,
    /// True when every member has the same (dc, rack): the walk can stop at
    /// the first N distinct members.
    uniform_topology: bool,
    /// Replicas per DC (empty: N over the whole ring).
    dc_replication: DcReplication,
}

impl Ring {
    /// Builds the ring of `members` (duplicates by id are ignored). Each
    /// weight is clamped to `1..=NODE_WEIGHT_MAX` and `vnodes_per_weight` to
    /// `1..=VNODES_PER_WEIGHT_MAX`, and the ring holds at most
    /// [`RING_TOKENS_MAX`] tokens (see [`token_counts`]): a weight that
    /// slipped past validation cannot make it allocate without bound.
    pub fn new(members: &[RingMember], vnodes_per_weight: u32) -> Self {
        let mut members: Vec<RingMember> = members.to_vec();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let counts = token_counts(&members, vnodes_per_weight);
        let mut tokens = Vec::with_capacity(counts.iter().sum());
        for (index, (member, count)) in members.iter().zip(counts).enumerate() {
            for i in 0..count {
                let label = format!("{}#{i}", member.id);
                tokens.push((Token(hash_bytes(label.as_bytes())), index));
            }
        }
        // Ties (astronomically rare) are broken by member order, so every
        // node still builds the same ring.
        tokens.sort_unstable();
        let uniform_topology = members
            .windows(2)
            .all(|w| w[0].dc == w[1].dc && w[0].rack == w[1].rack);
        Self {
            tokens,
            members,
            uniform_topology,
            dc_replication: DcReplication::default(),
        }
    }

    /// The same ring placing replicas per data center (see
    /// [`Ring::preference_list_at`]).
    pub fn with_dc_replication(mut self, dc_replication: &DcReplication) -> Self {
        self.dc_replication = dc_replication.clone();
        self
    }

    /// Whether `other` places every key as this ring does (the same
    /// members, tokens and per-DC replication): the membership view then
    /// hands out one ring as both its read and its write ring.
    pub fn places_as(&self, other: &Ring) -> bool {
        // `uniform_topology` follows from the members.
        self.tokens == other.tokens
            && self.members == other.members
            && self.dc_replication == other.dc_replication
    }

    /// Whether a preference list of `n` is always the first `n` of a longer
    /// one (every member in one DC and rack, no per-DC replication): the
    /// walk then simply takes members clockwise.
    pub fn lists_are_prefixes(&self) -> bool {
        self.uniform_topology && self.dc_replication.is_empty()
    }

    /// Replicas per DC this ring places by (empty: N over the whole ring).
    pub fn dc_replication(&self) -> &DcReplication {
        &self.dc_replication
    }

    /// The data center of `node` (`None`: not a member).
    pub fn dc_of(&self, node: &NodeId) -> Option<&str> {
        self.members
            .binary_search_by(|m| m.id.cmp(node))
            .ok()
            .map(|i| self.members[i].dc.as_str())
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[RingMember] {
        &self.members
    }

    /// Number of tokens (virtual nodes) on the ring.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The token a key hashes to.
    pub fn key_token(key: &[u8]) -> Token {
        Token(hash_bytes(key))
    }

    /// The key's preference list: up to `n` distinct members, the first one
    /// the key's primary. Fewer than `n` only when the ring has fewer members.
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        self.preference_list_at(Self::key_token(key), n)
    }

    /// The preference list of every key hashing to `token`.
    ///
    /// With a [`DcReplication`], `n` is normally its total: the list is
    /// then each named DC's first `n_dc` distinct members clockwise, in
    /// clockwise order. A longer walk (`n` past the total, for stand-in
    /// candidates) takes `ceil(n_dc x n / total)` from each DC, so the
    /// members past a DC's replicas are that DC's own; a shorter one keeps
    /// the first `n` of the list.
    pub fn preference_list_at(&self, token: Token, n: usize) -> Vec<NodeId> {
        let start = self.first_token_index(token);
        if !self.dc_replication.is_empty() {
            return self.per_dc_list(start, n);
        }
        let wanted = n.min(self.members.len());
        if self.uniform_topology {
            return self
                .walk(start)
                .take(wanted)
                .map(|i| self.members[i].id.clone())
                .collect();
        }
        let candidates: Vec<usize> = self.walk(start).collect();
        spread_across_topology(&candidates, &self.members, wanted)
            .into_iter()
            .map(|i| self.members[i].id.clone())
            .collect()
    }

    /// Whether `node` is in the preference list of `token` of length `n`:
    /// `preference_list_at(token, n).contains(node)`, without building the
    /// list (nor cloning its ids) when the topology is uniform. Every peer
    /// request asks it (`placement::shares`).
    pub fn holds_at(&self, token: Token, n: usize, node: &NodeId) -> bool {
        if !self.dc_replication.is_empty() || !self.uniform_topology {
            return self.preference_list_at(token, n).contains(node);
        }
        self.walk(self.first_token_index(token))
            .take(n.min(self.members.len()))
            .any(|i| self.members[i].id == *node)
    }

    fn per_dc_list(&self, start: usize, n: usize) -> Vec<NodeId> {
        let total = self.dc_replication.total().max(1);
        let candidates: Vec<usize> = self.walk(start).collect();
        let mut chosen: Vec<usize> = Vec::new();
        for (dc, count) in self.dc_replication.dcs() {
            let quota = (count * n).div_ceil(total);
            let in_dc: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&m| self.members[m].dc == *dc)
                .collect();
            chosen.extend(spread_across_topology(&in_dc, &self.members, quota));
        }
        // Clockwise order: the list's first member is the key's primary.
        let mut list: Vec<usize> = candidates
            .into_iter()
            .filter(|m| chosen.contains(m))
            .collect();
        if n < total {
            list.truncate(n);
        }
        list.into_iter()
            .map(|i| self.members[i].id.clone())
            .collect()
    }

    /// Each member's share of the ring as primary owner, 0.0..=1.0.
    pub fn ownership(&self) -> Vec<(NodeId, f64)> {
        let mut owned = vec![0u128; self.members.len()];
        if let Some(&(Token(last), _)) = self.tokens.last() {
            let mut previous = last;
            for &(Token(token), member) in &self.tokens {
                // Range (previous, token], wrapping around zero.
                owned[member] += token.wrapping_sub(previous) as u128;
                previous = token;
            }
            if self.tokens.len() == 1 {
                owned[self.tokens[0].1] = 1u128 << 64;
            }
        }
        let circle = (1u128 << 64) as f64;
        self.members
            .iter()
            .zip(owned)
            .map(|(m, o)| (m.id.clone(), o as f64 / circle))
            .collect()
    }

    /// The arcs between consecutive tokens, as `(after, upto)`: every key
    /// whose token `t` has `after < t <= upto` (wrapping past `u64::MAX` for
    /// the last arc) has the same preference list. One arc covers the whole
    /// circle when the ring has one token; none when it is empty.
    pub fn ranges(&self) -> Vec<TokenRange> {
        let Some(&(last, _)) = self.tokens.last() else {
            return Vec::new();
        };
        let mut previous = last;
        let mut arcs = Vec::with_capacity(self.tokens.len());
        for &(token, _) in &self.tokens {
            arcs.push(TokenRange {
                after: previous,
                upto: token,
            });
            previous = token;
        }
        arcs
    }

    /// The ring as an operator reads it: consecutive arcs whose keys have
    /// the same `n` replicas merged into one, in token order, each with its
    /// replicas (the primary first).
    pub fn replica_ranges(&self, n: usize) -> Vec<(TokenRange, Vec<NodeId>)> {
        let mut merged: Vec<(TokenRange, Vec<NodeId>)> = Vec::new();
        for arc in self.ranges() {
            let owners = self.preference_list_at(arc.upto, n);
            match merged.last_mut() {
                Some((last, last_owners)) if *last_owners == owners => last.upto = arc.upto,
                _ => merged.push((arc, owners)),
            }
        }
        // The first and the last arc meet at zero: one range when they
        // have the same replicas (and there is more than one).
        if merged.len() > 1 && merged.first().map(|f| &f.1) == merged.last().map(|l| &l.1) {
            if let Some((last, _)) = merged.pop() {
                merged[0].0.after = last.after;
            }
        }
        merged
    }

    /// Tokens (virtual nodes) each member holds, in member order.
    pub fn tokens_per_member(&self) -> Vec<(NodeId, usize)> {
        let mut counts = vec![0usize; self.members.len()];
        for &(_, member) in &self.tokens {
            counts[member] += 1;
        }
        self.members
            .iter()
            .zip(counts)
            .map(|(m, c)| (m.id.clone(), c))
            .collect()
    }

    /// The index in [`Ring::ranges`] of the range holding `token` (0 for an
    /// empty ring).
    pub fn range_index(&self, token: Token) -> usize {
        self.first_token_index(token)
    }

    /// The first ring token at or after `token` without wrapping: the end
    /// (inclusive) of the arc holding `token` on a walk from 0 to
    /// `u64::MAX`; `None` past the last token (that piece of the wrapping
    /// arc ends at `u64::MAX`).
    pub fn token_at_or_after(&self, token: Token) -> Option<Token> {
        let i = self.tokens.partition_point(|&(t, _)| t < token);
        self.tokens.get(i).map(|&(t, _)| t)
    }

    fn first_token_index(&self, token: Token) -> usize {
        let i = self.tokens.partition_point(|&(t, _)| t < token);
        if i == self.tokens.len() {
            0
        } else {
            i
        }
    }

    /// Distinct member indexes in clockwise order from token index `start`.
    fn walk(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        // One flag per member, not a hash set: no hashing and no random
        // state per walk, and every request walks (placement, admission).
        // Up to 64 members the flags are the bits of one word, with no
        // allocation.
        let total = self.members.len();
        let mut bits = 0u64;
        let mut flags = if total > u64::BITS as usize {
            vec![false; total]
        } else {
            Vec::new()
        };
        self.tokens
            .iter()
            .cycle()
            .skip(start)
            .take(self.tokens.len())
            .map(|&(_, m)| m)
            .filter(move |&m| {
                if m >= total {
                    false
                } else if flags.is_empty() {
                    let bit = 1u64 << m;
                    let new = bits & bit == 0;
                    bits |= bit;
                    new
                } else {
                    flags
                        .get_mut(m)
                        .is_some_and(|s| !std::mem::replace(s, true))
                }
            })
            .take(total)
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
