//! Quorum counting: pure bookkeeping of who answered, shared by reads and
//! writes.

use std::fmt::Write as _;

use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// How one replica failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaFailure {
    /// It did not answer in time: it may still act on the request.
    TimedOut,
    /// It could not be asked or refused at once.
    Failed,
}

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
    failures: Vec<(NodeId, ReplicaFailure, String)>,
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
    pub fn failure(&mut self, node: NodeId, kind: ReplicaFailure, detail: String) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.failures.push((node, kind, detail));
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
        for (node, _, detail) in &self.failures {
            let _ = write!(message, "; {node}: {detail}");
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
        let timed_out = silent
            || self
                .failures
                .iter()
                .any(|(_, k, _)| *k == ReplicaFailure::TimedOut);
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

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn reached_once_enough_succeed() {
        let mut t = Tally::new(2, 3);
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success();
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.failure(id("b"), ReplicaFailure::Failed, "down".into());
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.success();
        assert_eq!(t.verdict(), Verdict::Reached);
    }

    #[test]
    fn impossible_as_soon_as_failures_rule_it_out() {
        let mut t = Tally::new(2, 3);
        t.failure(id("a"), ReplicaFailure::Failed, "x".into());
        assert_eq!(t.verdict(), Verdict::Waiting);
        t.failure(id("b"), ReplicaFailure::Failed, "y".into());
        assert_eq!(t.verdict(), Verdict::Impossible);
        let e = t.error("replies", Ending::Impossible, Effect::Nothing);
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            e.message.contains("0 of 2") && e.message.contains("a: x"),
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
        t.failure(id("b"), ReplicaFailure::Failed, "gone".into());
        // Something was written locally: never claim nothing happened.
        assert_eq!(
            t.error("acks", Ending::Impossible, Effect::MaybeWritten)
                .code,
            ErrorCode::Timeout
        );
        let mut t = Tally::new(3, 3);
        t.failure(id("c"), ReplicaFailure::TimedOut, "slow".into());
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
