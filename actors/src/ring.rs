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

/// Most data centers `--dc-replication` may name.
pub const DC_REPLICATION_DCS_MAX: usize = 16;

/// Replicas per data center (`--dc-replication dc1:3,dc2:2`); empty: one
/// replication factor N over the whole ring (the default). Sorted by DC
/// name, so every node that parses the same setting holds the same value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DcReplication(Vec<(String, usize)>);

impl DcReplication {
    /// Parses `dc1:3,dc2:2`: DC names (see [`is_dc_name`]), each once,
    /// each count in `1..=replicas_max`, the sum too.
    pub fn parse(text: &str, replicas_max: usize) -> Result<Self, String> {
        let mut dcs: Vec<(String, usize)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, count) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}` is not DC:COUNT (e.g. dc1:3)"))?;
            let name = name.trim();
            if !is_dc_name(name) {
                return Err(format!(
                    "`{name}` is not a DC name (1..={DC_NAME_BYTES_MAX} printable ASCII bytes, \
                     no space, `,` or `:`)"
                ));
            }
            let count: usize = count
                .trim()
                .parse()
                .map_err(|_| format!("the count of {name} must be an integer, got `{count}`"))?;
            if !(1..=replicas_max).contains(&count) {
                return Err(format!(
                    "the count of {name} must be in 1..={replicas_max}, got {count}"
                ));
            }
            if dcs.iter().any(|(n, _)| n == name) {
                return Err(format!("{name} is named twice"));
            }
            dcs.push((name.to_owned(), count));
        }
        if dcs.is_empty() {
            return Err("names no data center (expected e.g. dc1:3,dc2:2)".into());
        }
        if dcs.len() > DC_REPLICATION_DCS_MAX {
            return Err(format!(
                "names {} data centers, at most {DC_REPLICATION_DCS_MAX}",
                dcs.len()
            ));
        }
        let total: usize = dcs.iter().map(|(_, c)| c).sum();
        if total > replicas_max {
            return Err(format!(
                "adds up to {total} replicas per key, at most {replicas_max}"
            ));
        }
        dcs.sort();
        Ok(Self(dcs))
    }

    /// No per-DC factor: N over the whole ring.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replicas per key over every DC (N).
    pub fn total(&self) -> usize {
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// Replicas per key in `dc` (0: not named).
    pub fn in_dc(&self, dc: &str) -> usize {
        self.0.iter().find(|(n, _)| n == dc).map_or(0, |(_, c)| *c)
    }

    /// The DCs and their counts, sorted by name.
    pub fn dcs(&self) -> &[(String, usize)] {
        &self.0
    }
}

impl std::fmt::Display for DcReplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (dc, count)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dc}:{count}")?;
        }
        Ok(())
    }
}

/// Longest data center name `--dc-replication` takes, in bytes (as `--dc`).
pub const DC_NAME_BYTES_MAX: usize = 64;

/// Whether `--dc-replication` may name a data center `name`: what `--dc`
/// takes (printable ASCII without spaces), less its separators `,` and `:`.
pub fn is_dc_name(name: &str) -> bool {
    (1..=DC_NAME_BYTES_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b':')
}

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

/// Picks `wanted` of `candidates` (distinct members in clockwise order),
/// preferring at each step the first candidate in a new data center, then
/// the first in a new rack, then simply the next one.
fn spread_across_topology(
    candidates: &[usize],
    members: &[RingMember],
    wanted: usize,
) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
    let mut remaining: Vec<usize> = candidates.to_vec();
    while chosen.len() < wanted && !remaining.is_empty() {
        let new_dc = |m: &usize| chosen.iter().all(|c| members[*c].dc != members[*m].dc);
        let new_rack = |m: &usize| {
            chosen.iter().all(|c| {
                (&members[*c].dc, &members[*c].rack) != (&members[*m].dc, &members[*m].rack)
            })
        };
        let pick = remaining
            .iter()
            .position(new_dc)
            .or_else(|| remaining.iter().position(new_rack))
            .unwrap_or(0);
        chosen.push(remaining.remove(pick));
    }
    chosen
}

/// The engine key of a user key: its token (big-endian), then the key.
/// Storing keys in ring order makes "every key in this token range" one
/// range scan, which is what handoff and anti-entropy stream.
pub fn storage_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&Ring::key_token(key).0.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The user key inside an engine key (`None` for a key too short to be one).
pub fn user_key(storage_key: &[u8]) -> Option<&[u8]> {
    storage_key.get(8..)
}

/// 64-bit hash for tokens and keys: FNV-1a, then the murmur3 finalizer,
/// because FNV alone leaves short, similar inputs (`n1#0`, `n1#1`) clustered.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// murmur3's 64-bit finalizer: spreads every input bit over the output
/// (`hash_bytes`'s, and the memtable key filter's).
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn replica_ranges_merge_arcs_with_the_same_replicas_and_cover_the_circle() {
        let ring = Ring::new(&[member("a", 1), member("b", 1), member("c", 2)], 16);
        let tokens = ring.tokens_per_member();
        assert_eq!(
            tokens.iter().map(|(_, c)| c).sum::<usize>(),
            ring.token_count()
        );
        assert_eq!(
            tokens[2].1,
            2 * tokens[0].1,
            "weight 2 holds twice the tokens"
        );
        let ranges = ring.replica_ranges(2);
        assert!(ranges.len() <= ring.ranges().len());
        // Neighbours differ (else they would have been merged), and every
        // key's replicas are its range's.
        for pair in ranges.windows(2) {
            assert_ne!(pair[0].1, pair[1].1);
            assert_eq!(pair[0].0.upto, pair[1].0.after, "no gap between ranges");
        }
        for i in 0..500u32 {
            let key = format!("k{i}");
            let token = Ring::key_token(key.as_bytes());
            let holding: Vec<_> = ranges.iter().filter(|r| r.0.contains(token)).collect();
            assert_eq!(holding.len(), 1, "exactly one range holds {key}");
            assert_eq!(holding[0].1, ring.preference_list(key.as_bytes(), 2));
        }
        // One member: one range, the whole circle.
        let alone = Ring::new(&[member("a", 1)], 8).replica_ranges(3);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].0.after, alone[0].0.upto);
    }

    fn two_dcs() -> Vec<RingMember> {
        let mut members = Vec::new();
        for i in 1..=3 {
            members.push(placed(&format!("a{i}"), 1, "dc1", &format!("r{}", i % 2)));
            members.push(placed(&format!("b{i}"), 1, "dc2", "r1"));
        }
        members.push(placed("c1", 1, "dc3", "r1"));
        members
    }

    #[test]
    fn dc_replication_parses_and_refuses_clearly() {
        let d = DcReplication::parse("dc2:2, dc1:3", 8).unwrap();
        assert_eq!(
            (d.total(), d.in_dc("dc1"), d.in_dc("dc2"), d.in_dc("x")),
            (5, 3, 2, 0)
        );
        assert_eq!(d.to_string(), "dc1:3,dc2:2", "sorted by name");
        for (bad, says) in [
            ("dc1", "DC:COUNT"),
            ("dc1:0", "1..=8"),
            ("dc1:x", "integer"),
            ("dc1:2,dc1:1", "twice"),
            ("dc1:5,dc2:5", "adds up to 10"),
            ("", "no data center"),
            ("d c:1", "not a DC name"),
        ] {
            let e = DcReplication::parse(bad, 8).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn per_dc_lists_hold_the_first_members_of_each_dc_clockwise() {
        let dcs = DcReplication::parse("dc1:2,dc2:1", 8).unwrap();
        let members = two_dcs();
        let ring = Ring::new(&members, 32).with_dc_replication(&dcs);
        let dc = |id: &NodeId| ring.dc_of(id).unwrap().to_owned();
        for k in 0..500u32 {
            let token = Ring::key_token(&k.to_be_bytes());
            let list = ring.preference_list_at(token, 3);
            let in_dc = |d: &str| list.iter().filter(|id| dc(id) == d).count();
            assert_eq!(
                (in_dc("dc1"), in_dc("dc2"), in_dc("dc3")),
                (2, 1, 0),
                "{list:?}"
            );
            // dc1's two sit on both of its racks, dc2's one is the first
            // dc2 member clockwise, and the list is in clockwise order.
            let racks: HashSet<_> = list
                .iter()
                .filter(|id| dc(id) == "dc1")
                .map(|id| {
                    ring.members()
                        .iter()
                        .find(|m| m.id == *id)
                        .unwrap()
                        .rack
                        .clone()
                })
                .collect();
            assert_eq!(racks.len(), 2, "{list:?}");
            let walk: Vec<NodeId> = ring
                .walk(ring.first_token_index(token))
                .map(|i| ring.members[i].id.clone())
                .collect();
            let first_dc2 = walk.iter().find(|id| dc(id) == "dc2").unwrap();
            assert!(list.contains(first_dc2));
            let positions: Vec<usize> = list
                .iter()
                .map(|id| walk.iter().position(|w| w == id).unwrap())
                .collect();
            assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
            // A longer walk holds the list, then each DC's own next members.
            let long = ring.preference_list_at(token, 9);
            assert!(list.iter().all(|id| long.contains(id)));
            let long_in = |d: &str| long.iter().filter(|id| dc(id) == d).count();
            assert_eq!((long_in("dc1"), long_in("dc2"), long_in("dc3")), (3, 3, 0));
        }
        // Fewer members in a DC than its count: all of them.
        let small = Ring::new(&members[..3], 32).with_dc_replication(&dcs);
        assert_eq!(small.preference_list(b"k", 3).len(), 3);
        let lone = DcReplication::parse("dc2:3", 8).unwrap();
        let ring = Ring::new(&members, 32).with_dc_replication(&lone);
        let list = ring.preference_list(b"k", 3);
        assert!(
            list.iter().all(|id| ring.dc_of(id) == Some("dc2")),
            "{list:?}"
        );
    }

    fn member(id: &str, weight: u32) -> RingMember {
        placed(id, weight, "dc1", "r1")
    }

    fn placed(id: &str, weight: u32, dc: &str, rack: &str) -> RingMember {
        RingMember {
            id: NodeId::new(id).unwrap(),
            dc: dc.into(),
            rack: rack.into(),
            weight,
        }
    }

    fn share(ring: &Ring, id: &str) -> f64 {
        ring.ownership()
            .into_iter()
            .find(|(m, _)| m.as_str() == id)
            .unwrap()
            .1
    }

    /// The one-packet denial of service: a member announcing weight
    /// 2^32-1 asked for 128 x 4 billion tokens (about 68 GB).
    #[test]
    fn a_huge_weight_cannot_make_the_ring_unbounded() {
        let ring = Ring::new(&[member("n1", 1), member("evil", u32::MAX)], 128);
        // The weight is clamped to NODE_WEIGHT_MAX first.
        assert_eq!(ring.token_count(), 128 + 128 * NODE_WEIGHT_MAX as usize);
        let many: Vec<RingMember> = (0..64)
            .map(|i| member(&format!("n{i}"), NODE_WEIGHT_MAX))
            .collect();
        let counts = token_counts(&many, VNODES_PER_WEIGHT_MAX);
        assert!(counts.iter().sum::<usize>() <= RING_TOKENS_MAX);
        // Scaled by the same factor: equal members stay equal.
        assert!(counts.iter().all(|&c| c == counts[0] && c >= 1));
        let mixed = [member("a", 1), member("b", NODE_WEIGHT_MAX)];
        let counts = token_counts(&mixed, VNODES_PER_WEIGHT_MAX);
        assert!(
            counts.iter().sum::<usize>() <= RING_TOKENS_MAX,
            "{counts:?}"
        );
        assert!(counts[0] >= 1 && counts[1] > counts[0] * 900, "{counts:?}");
    }

    #[test]
    fn three_equal_nodes_own_a_third_each() {
        let ring = Ring::new(&[member("n1", 1), member("n2", 1), member("n3", 1)], 128);
        assert_eq!(ring.token_count(), 384);
        let total: f64 = ring.ownership().iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        for id in ["n1", "n2", "n3"] {
            let s = share(&ring, id);
            assert!((s - 1.0 / 3.0).abs() <= 0.05, "{id} owns {s}");
        }
    }

    #[test]
    fn doubling_a_weight_roughly_doubles_the_share() {
        let even = Ring::new(
            &[
                member("n1", 1),
                member("n2", 1),
                member("n3", 1),
                member("n4", 1),
            ],
            128,
        );
        let heavy = Ring::new(
            &[
                member("n1", 2),
                member("n2", 1),
                member("n3", 1),
                member("n4", 1),
            ],
            128,
        );
        let ratio = share(&heavy, "n1") / share(&even, "n1");
        // n1 goes from 1/4 to 2/5 of the ring: a ratio of 1.6 in theory.
        assert!((1.4..=1.8).contains(&ratio), "ratio {ratio}");
        assert!(share(&heavy, "n1") > 1.7 * share(&heavy, "n2"));
    }

    #[test]
    fn preference_lists_hold_n_distinct_members() {
        let members: Vec<_> = (1..=5).map(|i| member(&format!("n{i}"), 1)).collect();
        let ring = Ring::new(&members, 32);
        for k in 0..2000u32 {
            let list = ring.preference_list(&k.to_be_bytes(), 3);
            assert_eq!(list.len(), 3);
            let distinct: HashSet<_> = list.iter().collect();
            assert_eq!(distinct.len(), 3, "{list:?}");
        }
        // Asking for more than there are gives every member once.
        assert_eq!(ring.preference_list(b"k", 9).len(), 5);
        assert!(Ring::new(&[], 8).preference_list(b"k", 3).is_empty());
    }

    /// The walk keeps its flags in one word up to 64 members and in a
    /// vector beyond: both give each member once, in clockwise order of
    /// first appearance (checked against a walk with a hash set).
    #[test]
    fn walks_give_each_member_once_below_and_above_64_members() {
        for count in [1usize, 3, 63, 64, 65, 100] {
            let members: Vec<_> = (0..count).map(|i| member(&format!("n{i}"), 1)).collect();
            let ring = Ring::new(&members, 4);
            for start in [0, 1, ring.token_count() / 2, ring.token_count() - 1] {
                let walked: Vec<usize> = ring.walk(start).collect();
                let mut seen = HashSet::new();
                let expected: Vec<usize> = (0..ring.token_count())
                    .map(|i| ring.tokens[(start + i) % ring.token_count()].1)
                    .filter(|m| seen.insert(*m))
                    .collect();
                assert_eq!(walked, expected, "{count} members from token {start}");
                assert_eq!(walked.len(), count);
            }
        }
    }

    #[test]
    fn holds_at_agrees_with_the_preference_list() {
        let uniform: Vec<_> = (1..=5).map(|i| member(&format!("n{i}"), i)).collect();
        let racks = vec![
            placed("n1", 1, "dc1", "a"),
            placed("n2", 2, "dc1", "a"),
            placed("n3", 1, "dc1", "b"),
            placed("n4", 1, "dc2", "c"),
        ];
        let per_dc = Ring::new(&racks, 16)
            .with_dc_replication(&DcReplication::parse("dc1:2,dc2:1", 8).unwrap());
        for ring in [Ring::new(&uniform, 16), Ring::new(&racks, 16), per_dc] {
            for k in 0..300u32 {
                let token = Ring::key_token(&k.to_be_bytes());
                for n in 0..=6 {
                    let list = ring.preference_list_at(token, n);
                    for member in ring.members() {
                        assert_eq!(
                            ring.holds_at(token, n, &member.id),
                            list.contains(&member.id),
                            "{} in {list:?}",
                            member.id
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_node_builds_the_same_ring_whatever_the_order() {
        let a = Ring::new(&[member("n1", 1), member("n2", 2), member("n3", 1)], 16);
        let b = Ring::new(&[member("n3", 1), member("n1", 1), member("n2", 2)], 16);
        for k in 0..200u32 {
            let key = k.to_le_bytes();
            assert_eq!(a.preference_list(&key, 2), b.preference_list(&key, 2));
        }
    }

    #[test]
    fn replicas_spread_across_racks_first() {
        // Two nodes in rack a, one in rack b: every list of 2 spans both racks.
        let ring = Ring::new(
            &[
                placed("n1", 1, "dc1", "a"),
                placed("n2", 1, "dc1", "a"),
                placed("n3", 1, "dc1", "b"),
            ],
            32,
        );
        for k in 0..500u32 {
            let list = ring.preference_list(&k.to_be_bytes(), 2);
            assert!(list.iter().any(|id| id.as_str() == "n3"), "{list:?}");
        }
    }

    #[test]
    fn arcs_cover_the_circle_and_agree_with_preference_lists() {
        let ring = Ring::new(&[member("n1", 1), member("n2", 1), member("n3", 1)], 8);
        let arcs = ring.ranges();
        assert_eq!(arcs.len(), 24);
        for k in 0..500u32 {
            let key = k.to_be_bytes();
            let token = Ring::key_token(&key);
            let holding: Vec<_> = arcs.iter().filter(|a| a.contains(token)).collect();
            assert_eq!(holding.len(), 1, "each token on exactly one arc");
            assert_eq!(
                ring.preference_list_at(holding[0].upto, 2),
                ring.preference_list(&key, 2)
            );
            assert_eq!(arcs[ring.range_index(token)], *holding[0]);
            // The arc's storage ranges hold the key's storage key.
            let sk = storage_key(&key);
            let inside = holding[0]
                .storage_ranges()
                .iter()
                .any(|(start, end)| sk >= *start && end.as_ref().is_none_or(|e| sk < *e));
            assert!(inside, "key {k} outside its arc's ranges");
        }
    }

    #[test]
    fn storage_keys_sort_in_ring_order_and_round_trip() {
        let mut keys: Vec<Vec<u8>> = (0..100u32).map(|k| storage_key(&k.to_be_bytes())).collect();
        keys.sort();
        let tokens: Vec<Token> = keys
            .iter()
            .map(|k| Ring::key_token(user_key(k).unwrap()))
            .collect();
        assert!(tokens.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(user_key(&storage_key(b"abc")), Some(&b"abc"[..]));
        assert_eq!(user_key(b"short"), None);
    }

    #[test]
    fn adding_a_node_moves_only_its_share() {
        let three: Vec<_> = (1..=3).map(|i| member(&format!("n{i}"), 1)).collect();
        let mut four = three.clone();
        four.push(member("n4", 1));
        let (before, after) = (Ring::new(&three, 128), Ring::new(&four, 128));
        let keys = 20_000u32;
        let moved = (0..keys)
            .filter(|k| {
                let key = k.to_be_bytes();
                before.preference_list(&key, 1) != after.preference_list(&key, 1)
            })
            .count();
        let fraction = moved as f64 / keys as f64;
        assert!((0.18..=0.32).contains(&fraction), "moved {fraction}");
    }
}
