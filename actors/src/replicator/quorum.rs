//! Quorum counting: pure bookkeeping of who was asked and who answered,
//! shared by the read and the write coordinators.
//!
//! Replicas are counted by [`Role`]: a quorum needs `needed` successes in
//! all, of which at least `needed_primaries` from the key's own replicas
//! (PROTOCOL.md's `pr` / `pw`; 0 by default), so a sloppy quorum can be
//! told apart from a strict one.

use std::fmt::Write as _;

use crate::replicas::ReplicaError;
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// Whether a replica asked is one of the key's own or a stand-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// In the key's preference list.
    Primary,
    /// Sloppy quorum: a node past the preference list standing in for an
    /// unreachable primary.
    StandIn,
}

/// Where a quorum stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Enough successes.
    Reached,
    /// Not yet decided.
    Waiting,
    /// Too many failures: even if every outstanding replica succeeds, the
    /// quorum cannot be met (unless more replicas are asked).
    Impossible,
}

/// Counts answers toward a quorum.
#[derive(Clone, Debug)]
pub struct Tally {
    needed: usize,
    needed_primaries: usize,
    outstanding: usize,
    outstanding_primaries: usize,
    successes: usize,
    primary_successes: usize,
    failures: Vec<(NodeId, ReplicaError)>,
}

impl Tally {
    /// A tally for `needed` successes, `needed_primaries` of them from
    /// primaries; nobody asked yet.
    pub fn new(needed: usize, needed_primaries: usize) -> Self {
        Self {
            needed,
            needed_primaries,
            outstanding: 0,
            outstanding_primaries: 0,
            successes: 0,
            primary_successes: 0,
            failures: Vec::new(),
        }
    }

    /// A replica in `role` was asked.
    pub fn asked(&mut self, role: Role) {
        self.outstanding += 1;
        if role == Role::Primary {
            self.outstanding_primaries += 1;
        }
    }

    fn answered(&mut self, role: Role) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if role == Role::Primary {
            self.outstanding_primaries = self.outstanding_primaries.saturating_sub(1);
        }
    }

    /// A replica in `role` succeeded.
    pub fn success(&mut self, role: Role) {
        self.answered(role);
        self.successes += 1;
        if role == Role::Primary {
            self.primary_successes += 1;
        }
    }

    /// A replica in `role` failed.
    pub fn failure(&mut self, node: NodeId, role: Role, error: ReplicaError) {
        self.answered(role);
        self.failures.push((node, error));
    }

    /// Successes so far.
    pub fn successes(&self) -> usize {
        self.successes
    }

    /// Replicas asked that have not answered yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Where the quorum stands.
    pub fn verdict(&self) -> Verdict {
        if self.successes >= self.needed && self.primary_successes >= self.needed_primaries {
            Verdict::Reached
        } else if self.successes + self.outstanding < self.needed
            || self.primary_successes + self.outstanding_primaries < self.needed_primaries
        {
            Verdict::Impossible
        } else {
            Verdict::Waiting
        }
    }

    /// The client error for a quorum that was not reached: because the
    /// failures ruled it out (`Ending::Impossible`), or because the deadline
    /// of `timeout_ms` passed with replicas still silent (`Ending::Deadline`).
    /// With `Effect::MaybeWritten` it is never `unavailable`, which promises
    /// that nothing happened.
    pub fn error(&self, what: &str, ending: Ending, effect: Effect) -> ClientError {
        let mut message = format!("{} of {} {what} needed", self.successes, self.needed);
        if self.needed_primaries > 0 {
            let _ = write!(
                message,
                " ({} of {} from primaries)",
                self.primary_successes, self.needed_primaries
            );
        }
        for (node, error) in &self.failures {
            let _ = write!(message, "; {node}: {error}");
        }
        let silent = match ending {
            Ending::Deadline { timeout_ms } if self.outstanding > 0 => {
                let _ = write!(
                    message,
                    "; {} replica(s) silent after {timeout_ms} ms",
                    self.outstanding
                );
                true
            }
            _ => false,
        };
        let timed_out = silent || self.failures.iter().any(|(_, e)| e.is_timeout());
        let code = if timed_out || effect == Effect::MaybeWritten {
            ErrorCode::Timeout
        } else {
            ErrorCode::Unavailable
        };
        ClientError::new(code, message)
    }
}

/// How a failed quorum ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Failures made it impossible before the deadline.
    Impossible,
    /// The deadline passed.
    Deadline {
        /// The deadline, for the message.
        timeout_ms: u64,
    },
}

/// Whether a failed request may have changed anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing was written (a read, or a write refused up front).
    Nothing,
    /// Some replica may hold the write.
    MaybeWritten,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bridge::PeerError;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn failed() -> ReplicaError {
        ReplicaError::Peer(PeerError::Unreachable)
    }

    fn timed_out() -> ReplicaError {
        ReplicaError::Peer(PeerError::Timeout { timeout_ms: 5 })
    }

    fn tally(needed: usize, needed_primaries: usize, primaries: usize) -> Tally {
        let mut t = Tally::new(needed, needed_primaries);
        for _ in 0..primaries {
            t.asked(Role::Primary);
        }
        t
    }

    #[test]
    fn reached_once_enough_succeed() {
        let mut t = tally(2, 0, 3);
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success(Role::Primary);
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.failure(id("b"), Role::Primary, failed());
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success(Role::Primary);
        assert_eq!(t.verdict(), Verdict::Reached);
    }

    #[test]
    fn impossible_as_soon_as_failures_rule_it_out() {
        let mut t = tally(2, 0, 3);
        t.failure(id("a"), Role::Primary, failed());
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.failure(id("b"), Role::Primary, failed());
        assert_eq!(t.verdict(), Verdict::Impossible);
        let e = t.error("replies", Ending::Impossible, Effect::Nothing);
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            e.message.contains("0 of 2") && e.message.contains("a: peer unreachable"),
            "{}",
            e.message
        );
        // Asking one more (a stand-in) makes it possible again.
        t.asked(Role::StandIn);
        assert_eq!(t.verdict(), Verdict::Waiting);
    }

    #[test]
    fn silence_and_partial_writes_are_timeouts() {
        let t = tally(2, 0, 2);
        assert_eq!(
            t.error("acks", Ending::Deadline { timeout_ms: 50 }, Effect::Nothing)
                .code,
            ErrorCode::Timeout
        );
        let mut t = tally(2, 0, 2);
        t.success(Role::Primary);
        t.failure(id("b"), Role::Primary, failed());
        // Something was written locally: never claim nothing happened.
        assert_eq!(
            t.error("acks", Ending::Impossible, Effect::MaybeWritten)
                .code,
            ErrorCode::Timeout
        );
        let mut t = tally(3, 0, 3);
        t.failure(id("c"), Role::Primary, timed_out());
        assert_eq!(
            t.error("acks", Ending::Impossible, Effect::Nothing).code,
            ErrorCode::Timeout
        );
    }

    #[test]
    fn quorum_of_all_needs_everyone() {
        let mut t = tally(3, 0, 3);
        t.success(Role::Primary);
        t.success(Role::Primary);
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success(Role::Primary);
        assert_eq!(t.verdict(), Verdict::Reached);
    }

    #[test]
    fn stand_ins_count_toward_the_quorum_but_not_toward_primaries() {
        let mut t = tally(2, 2, 1);
        t.asked(Role::StandIn);
        t.success(Role::Primary);
        t.success(Role::StandIn);
        assert_eq!(
            t.verdict(),
            Verdict::Impossible,
            "only one primary answered"
        );
        let e = t.error("acks", Ending::Impossible, Effect::Nothing);
        assert!(e.message.contains("1 of 2 from primaries"), "{}", e.message);
        let mut t = tally(2, 1, 1);
        t.asked(Role::StandIn);
        t.success(Role::StandIn);
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success(Role::Primary);
        assert_eq!(t.verdict(), Verdict::Reached);
    }
}
