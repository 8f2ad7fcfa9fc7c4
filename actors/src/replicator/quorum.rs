//! Quorum counting: pure bookkeeping of who answered, shared by reads and
//! writes.

use std::fmt::Write as _;

use crate::replicas::ReplicaError;
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// Where a quorum stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Enough successes.
    Reached,
    /// Not yet decided.
    Waiting,
    /// Too many failures: even if every outstanding replica succeeds, the
    /// quorum cannot be met.
    Impossible,
}

/// Counts answers toward a quorum of `needed` out of `asked` replicas.
#[derive(Clone, Debug)]
pub struct Tally {
    needed: usize,
    outstanding: usize,
    successes: usize,
    failures: Vec<(NodeId, ReplicaError)>,
}

impl Tally {
    /// A tally for `needed` successes among `asked` replicas.
    pub fn new(needed: usize, asked: usize) -> Self {
        Self {
            needed,
            outstanding: asked,
            successes: 0,
            failures: Vec::new(),
        }
    }

    /// A replica succeeded.
    pub fn success(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.successes += 1;
    }

    /// A replica failed.
    pub fn failure(&mut self, node: NodeId, error: ReplicaError) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.failures.push((node, error));
    }

    /// Successes so far.
    pub fn successes(&self) -> usize {
        self.successes
    }

    /// Where the quorum stands.
    pub fn verdict(&self) -> Verdict {
        if self.successes >= self.needed {
            Verdict::Reached
        } else if self.successes + self.outstanding < self.needed {
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

    fn failed(_: &str) -> ReplicaError {
        ReplicaError::Peer(PeerError::Unreachable)
    }

    fn timed_out() -> ReplicaError {
        ReplicaError::Peer(PeerError::Timeout { timeout_ms: 5 })
    }

    #[test]
    fn reached_once_enough_succeed() {
        let mut t = Tally::new(2, 3);
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success();
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.failure(id("b"), failed("down"));
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success();
        assert_eq!(t.verdict(), Verdict::Reached);
    }

    #[test]
    fn impossible_as_soon_as_failures_rule_it_out() {
        let mut t = Tally::new(2, 3);
        t.failure(id("a"), failed("x"));
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.failure(id("b"), failed("y"));
        assert_eq!(t.verdict(), Verdict::Impossible);
        let e = t.error("replies", Ending::Impossible, Effect::Nothing);
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            e.message.contains("0 of 2") && e.message.contains("a: peer unreachable"),
            "{}",
            e.message
        );
    }

    #[test]
    fn silence_and_partial_writes_are_timeouts() {
        let t = Tally::new(2, 2);
        assert_eq!(
            t.error("acks", Ending::Deadline { timeout_ms: 50 }, Effect::Nothing)
                .code,
            ErrorCode::Timeout
        );
        let mut t = Tally::new(2, 2);
        t.success();
        t.failure(id("b"), failed("gone"));
        // Something was written locally: never claim nothing happened.
        assert_eq!(
            t.error("acks", Ending::Impossible, Effect::MaybeWritten)
                .code,
            ErrorCode::Timeout
        );
        let mut t = Tally::new(3, 3);
        t.failure(id("c"), timed_out());
        assert_eq!(
            t.error("acks", Ending::Impossible, Effect::Nothing).code,
            ErrorCode::Timeout
        );
    }

    #[test]
    fn quorum_of_all_needs_everyone() {
        let mut t = Tally::new(3, 3);
        t.success();
        t.success();
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success();
        assert_eq!(t.verdict(), Verdict::Reached);
    }
}
