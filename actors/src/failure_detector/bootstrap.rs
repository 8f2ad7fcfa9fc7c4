//! Bootstrap: when a starting node knows enough of the cluster to
//! coordinate requests. Pure; the FailureDetector feeds it what the
//! bridge and gossip report and publishes `ready` with the membership.
//!
//! A node that starts with no seeds (the first node) or with a persisted
//! membership (a restart: it knows the ring it served before) is ready at
//! once. A node that only has seeds is ready once every seed address has
//! completed a gossip exchange with it (so it knows the members that seed
//! knows), or once `bootstrap_wait_ms` has passed (a seed that is not
//! running, or hangs; the node then goes on with what it knows, and says
//! so in its log and `status`). A refused connection does not settle a
//! seed: nodes started together refuse each other for the milliseconds
//! before their listeners are bound, and a node that gave up on them then
//! would plan its first requests on a ring of itself alone.
//!
//! Until then the Replicator holds client requests (up to their own
//! deadline) instead of planning them on a ring that holds only this node:
//! a node that answers `ping` can take a get or a put at once.

use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Where a node is in its start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    /// Seed addresses neither heard from nor refused yet.
    pending: BTreeSet<SocketAddr>,
    /// When to stop waiting for them, on this node's monotonic clock (a
    /// wall-clock step must not end the wait early nor stretch it).
    deadline_ms: u64,
    /// Some seed completed a gossip exchange.
    heard_any: bool,
    ready: bool,
}

/// How a bootstrap ended, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Every seed answered.
    Complete,
    /// `bootstrap_wait_ms` passed; these seeds never answered.
    TimedOut(Vec<SocketAddr>),
}

impl Bootstrap {
    /// A start with `seeds` at `now_ms` (monotonic clock), waiting at most
    /// `wait_ms` for them; `knows_cluster` when a persisted membership
    /// names other members.
    pub fn new(seeds: &[SocketAddr], knows_cluster: bool, now_ms: u64, wait_ms: u64) -> Self {
        let pending: BTreeSet<SocketAddr> = seeds.iter().copied().collect();
        Self {
            ready: knows_cluster || pending.is_empty(),
            pending,
            deadline_ms: now_ms.saturating_add(wait_ms),
            heard_any: false,
        }
    }

    /// The seed at `addr` completed a gossip exchange with us.
    pub fn heard(&mut self, addr: SocketAddr) -> Option<Ready> {
        self.heard_any = true;
        self.pending.remove(&addr);
        if !self.ready && self.pending.is_empty() {
            self.ready = true;
            return Some(Ready::Complete);
        }
        None
    }

    /// Time passes (`now_ms`, monotonic clock); ready (timed out) once
    /// `bootstrap_wait_ms` is over.
    pub fn tick(&mut self, now_ms: u64) -> Option<Ready> {
        if self.ready || now_ms < self.deadline_ms {
            return None;
        }
        self.ready = true;
        Some(Ready::TimedOut(self.pending.iter().copied().collect()))
    }

    /// Whether the node may coordinate.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether some seed completed a gossip exchange with us.
    pub fn heard_any(&self) -> bool {
        self.heard_any
    }

    /// Seeds still awaited (for `status` while not ready).
    pub fn waiting_for(&self) -> Vec<SocketAddr> {
        if self.ready {
            return Vec::new();
        }
        self.pending.iter().copied().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_first_node_and_a_restart_are_ready_at_once() {
        assert!(Bootstrap::new(&[], false, 0, 100).is_ready());
        assert!(Bootstrap::new(&[addr(1)], true, 0, 100).is_ready());
        assert!(!Bootstrap::new(&[addr(1)], false, 0, 100).is_ready());
    }

    #[test]
    fn ready_once_every_seed_answered() {
        let mut b = Bootstrap::new(&[addr(1), addr(2)], false, 0, 100);
        assert_eq!(b.heard(addr(1)), None);
        assert_eq!(b.waiting_for(), vec![addr(2)]);
        assert_eq!(b.heard(addr(2)), Some(Ready::Complete));
        assert!(b.is_ready() && b.heard_any());
        assert_eq!(b.heard(addr(2)), None, "ready only once");
    }

    #[test]
    fn a_silent_seed_is_waited_for_only_so_long() {
        let mut b = Bootstrap::new(&[addr(1), addr(2)], false, 1000, 500);
        b.heard(addr(1));
        assert_eq!(b.tick(1499), None);
        assert_eq!(b.tick(1500), Some(Ready::TimedOut(vec![addr(2)])));
        assert!(b.is_ready() && b.heard_any());
        assert!(b.waiting_for().is_empty());
    }
}
