//! Per-peer rate limits on the expensive requests a peer can make of this
//! node: range scans (a page of the store each) and Merkle trees (a scan
//! of the whole store each). Pure token buckets; the Repair actor keeps
//! one pair per member and feeds them its monotonic clock.

use fnv::FnvHashMap;

use crate::NodeId;

/// Scan pages one peer may ask for per second, sustained. Handoff and
/// anti-entropy pull pages of `STREAM_PAGE_ENTRIES` (256) entries, paced
/// by `stream_bytes_per_s_max`: 256 pages a second is 65 536 entries a
/// second, well above what a join needs of one source.
pub const PEER_SCAN_PAGES_PER_S_MAX: u32 = 256;
/// Scan pages one peer may ask for at once, after a quiet spell.
pub const PEER_SCAN_PAGES_BURST_MAX: u32 = 1024;
/// Merkle trees one peer may ask for per second, sustained: each builds a
/// pair tree (for an older build's `MerkleLeaves`, a scan of this node's
/// whole store). A peer asks for one per anti-entropy exchange
/// (`anti_entropy_interval_ms`, one partner at a time); the deeper steps
/// of its walk count as scan pages.
pub const PEER_MERKLE_TREES_PER_S_MAX: u32 = 4;
/// Merkle trees one peer may ask for at once, after a quiet spell.
pub const PEER_MERKLE_TREES_BURST_MAX: u32 = 8;

/// A token bucket: `burst` tokens at most, refilled at `per_s` tokens a
/// second; a request takes one token or is refused.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    per_s: u32,
    burst: u32,
    /// Tokens now, in thousandths (so refills of less than a token a
    /// millisecond are not lost to rounding).
    milli_tokens: u64,
    /// The clock reading (ms) `milli_tokens` is valid at.
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(per_s: u32, burst: u32, now_ms: u64) -> Self {
        Self {
            per_s,
            burst: burst.max(1),
            milli_tokens: u64::from(burst.max(1)) * 1000,
            at_ms: now_ms,
        }
    }

    /// Takes one token at `now_ms` (a monotonic clock; a reading before the
    /// last one refills nothing); `false` when the bucket is empty.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.at_ms = self.at_ms.max(now_ms);
        // per_s tokens a second is per_s milli-tokens a millisecond.
        let refill = elapsed.saturating_mul(u64::from(self.per_s));
        let full = u64::from(self.burst) * 1000;
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(full);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// Which limit a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Costly {
    /// A scan page.
    Scan,
    /// A Merkle tree.
    MerkleTree,
}

impl Costly {
    /// Its sustained limit, per second.
    pub fn per_s_max(self) -> u32 {
        match self {
            Costly::Scan => PEER_SCAN_PAGES_PER_S_MAX,
            Costly::MerkleTree => PEER_MERKLE_TREES_PER_S_MAX,
        }
    }

    fn burst_max(self) -> u32 {
        match self {
            Costly::Scan => PEER_SCAN_PAGES_BURST_MAX,
            Costly::MerkleTree => PEER_MERKLE_TREES_BURST_MAX,
        }
    }
}

/// One scan bucket and one Merkle bucket per peer. Only members with a
/// place on the ring get here (checked first), so the map is bounded by
/// the member list; members that leave it are forgotten by [`retain`].
///
/// [`retain`]: PeerLimits::retain
#[derive(Clone, Debug, Default)]
pub struct PeerLimits {
    peers: FnvHashMap<NodeId, (TokenBucket, TokenBucket)>,
}

impl PeerLimits {
    /// Whether `peer` may make one more `request` at `now_ms`.
    pub fn allow(&mut self, peer: &NodeId, request: Costly, now_ms: u64) -> bool {
        let buckets = self.peers.entry(peer.clone()).or_insert_with(|| {
            let bucket = |c: Costly| TokenBucket::new(c.per_s_max(), c.burst_max(), now_ms);
            (bucket(Costly::Scan), bucket(Costly::MerkleTree))
        });
        match request {
            Costly::Scan => buckets.0.take(now_ms),
            Costly::MerkleTree => buckets.1.take(now_ms),
        }
    }

    /// Forgets the peers `keep` refuses (no longer members).
    pub fn retain(&mut self, mut keep: impl FnMut(&NodeId) -> bool) {
        self.peers.retain(|id, _| keep(id));
    }

    /// Peers tracked.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::new(4, 8, 1_000);
        let taken = (0..20).filter(|_| bucket.take(1_000)).count();
        assert_eq!(taken, 8);
        // 4 a second: one every 250 ms, none before.
        assert!(!bucket.take(1_249));
        assert!(bucket.take(1_250));
        assert!(!bucket.take(1_250));
        // A long quiet spell refills to the burst, not beyond.
        let taken = (0..20).filter(|_| bucket.take(60_000)).count();
        assert_eq!(taken, 8);
        // A clock reading from the past refills nothing.
        assert!(!bucket.take(0));
    }

    #[test]
    fn fractional_refills_add_up() {
        // 256 a second is 0.256 tokens a millisecond.
        let mut bucket = TokenBucket::new(256, 2, 0);
        assert!(bucket.take(0) && bucket.take(0));
        let mut taken = 0;
        for ms in 1..=1_000 {
            taken += usize::from(bucket.take(ms));
        }
        assert_eq!(taken, 256);
    }

    #[test]
    fn limits_are_per_peer_and_per_kind() {
        let mut limits = PeerLimits::default();
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let trees = (0..100)
            .filter(|_| limits.allow(&a, Costly::MerkleTree, 0))
            .count();
        assert_eq!(trees, PEER_MERKLE_TREES_BURST_MAX as usize);
        // a's scans and b's trees have their own buckets.
        assert!(limits.allow(&a, Costly::Scan, 0));
        assert!(limits.allow(&b, Costly::MerkleTree, 0));
        let scans = (0..10_000)
            .filter(|_| limits.allow(&b, Costly::Scan, 0))
            .count();
        assert_eq!(scans, PEER_SCAN_PAGES_BURST_MAX as usize);
        limits.retain(|id| id == &a);
        assert_eq!(limits.len(), 1);
    }
}
