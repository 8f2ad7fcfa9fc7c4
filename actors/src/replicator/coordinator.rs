//! The read and write coordinators as plain state machines: events in
//! (`on_reply` / `on_ack`, `on_stand_in_timer`, `on_deadline`), steps out
//! (who to ask, what to answer the client, when the request is over).
//! No actors, no futures, no clocks: `read.rs` and `write.rs` carry the
//! steps out, and these are unit- and property-tested on their own.

use super::fanout::{Ask, Asking, DcScope, Fanout, Reach, SloppyPolicy};
use super::quorum::{Effect, Ending, Role, Verdict};
use crate::replicas::ReplicaError;
use crate::wire::client::ClientError;
use crate::NodeId;

/// One replica's answer to a read: the encoded object it stores.
pub type ReadAnswer = (NodeId, Option<Vec<u8>>);

/// What a read coordinator asks for next.
#[derive(Debug, Default)]
pub struct ReadStep {
    /// Replicas (stand-ins) to ask now.
    pub asks: Vec<Ask>,
    /// Answer the client now: the answers to reconcile, or why not.
    pub answer: Option<Result<Vec<ReadAnswer>, ClientError>>,
    /// The request is over (everyone answered, or the deadline passed):
    /// every answer, for read repair.
    pub finished: Option<FinishedRead>,
}

/// Every answer of a read once it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRead {
    /// Every replica that answered, stand-ins included.
    pub answers: Vec<ReadAnswer>,
    /// The primaries among them: the only ones read repair writes to.
    pub primaries: Vec<NodeId>,
}

/// A read: ask the replicas (every primary, or only as many as R needs:
/// [`Asking`]), answer the client at R replies (PR of them from
/// primaries), keep listening until everyone asked answered or the
/// deadline passed, then hand every answer to read repair.
#[derive(Debug)]
pub struct ReadCoordinator {
    fanout: Fanout,
    answers: Vec<ReadAnswer>,
    answered: bool,
    finished: bool,
}

impl ReadCoordinator {
    /// Starts a read of `r` replies (`pr` from primaries).
    pub fn start(
        r: usize,
        pr: usize,
        primaries: &[(NodeId, Reach)],
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, ReadStep) {
        Self::start_in(
            DcScope::default(),
            Asking::Every,
            r,
            pr,
            primaries,
            spare,
            policy,
        )
    }

    /// [`ReadCoordinator::start`] within `scope` (per-DC stand-ins and
    /// quorums), asking the primaries `asking` says.
    pub fn start_in(
        scope: DcScope,
        asking: Asking,
        r: usize,
        pr: usize,
        primaries: &[(NodeId, Reach)],
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, ReadStep) {
        let (fanout, asks) = match asking {
            Asking::Every => Fanout::start_in(scope, r, pr, primaries, &[], spare, policy),
            Asking::Needed => Fanout::start_needed_in(scope, r, pr, primaries, spare, policy),
        };
        let mut read = Self {
            fanout,
            answers: Vec::new(),
            answered: false,
            finished: false,
        };
        // With nobody to ask, the first step answers and finishes at once.
        let step = read.step(asks, None);
        (read, step)
    }

    /// A replica answered.
    pub fn on_reply(
        &mut self,
        node: &NodeId,
        result: Result<Option<Vec<u8>>, ReplicaError>,
    ) -> ReadStep {
        let asks = match result {
            Ok(object) => {
                let asks = self.fanout.on_result(node, Ok(()));
                self.answers.push((node.clone(), object));
                asks
            }
            Err(e) => self.fanout.on_result(node, Err(e)),
        };
        self.step(asks, None)
    }

    /// The stand-in timer fired (see [`SloppyPolicy::replace_silent`]).
    pub fn on_stand_in_timer(&mut self) -> ReadStep {
        let asks = self.fanout.on_stand_in_timer();
        self.step(asks, None)
    }

    /// The retry timer fired: silent primaries get a reserve primary
    /// asked in their place, never a stand-in.
    pub fn on_retry_timer(&mut self) -> ReadStep {
        let asks = self.fanout.on_retry_timer();
        self.step(asks, None)
    }

    /// The request's deadline passed.
    pub fn on_deadline(&mut self, timeout_ms: u64) -> ReadStep {
        self.step(Vec::new(), Some(timeout_ms))
    }

    fn step(&mut self, asks: Vec<Ask>, deadline_ms: Option<u64>) -> ReadStep {
        let mut step = ReadStep {
            asks,
            ..ReadStep::default()
        };
        if !self.answered {
            let answer = match (self.fanout.verdict(), deadline_ms) {
                (Verdict::Reached, _) => Some(Ok(self.answers.clone())),
                (Verdict::Impossible, _) => Some(Err(self.fanout.tally().error(
                    "replies",
                    Ending::Impossible,
                    Effect::Nothing,
                ))),
                (Verdict::Waiting, Some(timeout_ms)) => Some(Err(self.fanout.tally().error(
                    "replies",
                    Ending::Deadline { timeout_ms },
                    Effect::Nothing,
                ))),
                (Verdict::Waiting, None) => None,
            };
            self.answered = answer.is_some();
            step.answer = answer;
        }
        if (self.fanout.all_answered() && step.asks.is_empty()) || deadline_ms.is_some() {
            step.finished = self.finish();
        }
        step
    }

    fn finish(&mut self) -> Option<FinishedRead> {
        if std::mem::replace(&mut self.finished, true) {
            return None;
        }
        let primaries = self
            .answers
            .iter()
            .filter(|(n, _)| self.fanout.role_of(n) == Some(Role::Primary))
            .map(|(n, _)| n.clone())
            .collect();
        Some(FinishedRead {
            answers: std::mem::take(&mut self.answers),
            primaries,
        })
    }

    /// Whether the request is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether primaries wait in reserve: the stand-in timer would ask
    /// one in place of a silent primary.
    pub fn has_reserve(&self) -> bool {
        self.fanout.has_reserve()
    }
}

/// What a write coordinator asks for next.
#[derive(Debug, Default)]
pub struct WriteStep {
    /// Replicas to send the new version to now (stand-ins keep a hint for
    /// the primary they stand in for).
    pub asks: Vec<Ask>,
    /// Answer the client now.
    pub answer: Option<Result<(), ClientError>>,
    /// Every replica asked has answered (or the deadline passed).
    pub finished: bool,
}

/// A write of a version already minted locally (or about to be): send it
/// to the other replicas, answer at W durable copies (PW of them on
/// primaries), let the rest finish.
#[derive(Debug)]
pub struct WriteCoordinator {
    fanout: Fanout,
    answered: bool,
    finished: bool,
}

impl WriteCoordinator {
    /// Starts a write needing `w` durable copies (`pw` on primaries).
    /// `local` is this node when it is a primary: its copy is written by
    /// the coordinator itself and is answered with [`Self::on_ack`] like
    /// any other. When the step answers at once, the write is impossible
    /// and nothing may be written.
    pub fn start(
        w: usize,
        pw: usize,
        primaries: &[(NodeId, Reach)],
        local: Option<&NodeId>,
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, WriteStep) {
        Self::start_in(DcScope::default(), w, pw, primaries, local, spare, policy)
    }

    /// [`WriteCoordinator::start`] within `scope` (per-DC stand-ins and
    /// quorums).
    pub fn start_in(
        scope: DcScope,
        w: usize,
        pw: usize,
        primaries: &[(NodeId, Reach)],
        local: Option<&NodeId>,
        spare: Vec<NodeId>,
        policy: SloppyPolicy,
    ) -> (Self, WriteStep) {
        let already: Vec<NodeId> = local.into_iter().cloned().collect();
        let (fanout, asks) = Fanout::start_in(scope, w, pw, primaries, &already, spare, policy);
        let mut write = Self {
            fanout,
            answered: false,
            finished: false,
        };
        let step = if write.fanout.verdict() == Verdict::Impossible {
            write.answered = true;
            write.finished = true;
            WriteStep {
                asks: Vec::new(),
                answer: Some(Err(write.fanout.tally().error(
                    "durable acknowledgements",
                    Ending::Impossible,
                    Effect::Nothing,
                ))),
                finished: true,
            }
        } else {
            WriteStep {
                asks,
                ..WriteStep::default()
            }
        };
        (write, step)
    }

    /// A replica's copy is durable (`Ok`) or failed.
    pub fn on_ack(&mut self, node: &NodeId, result: Result<(), ReplicaError>) -> WriteStep {
        let asks = self.fanout.on_result(node, result);
        self.step(asks, None)
    }

    /// The stand-in timer fired (see [`SloppyPolicy::replace_silent`]).
    pub fn on_stand_in_timer(&mut self) -> WriteStep {
        let asks = self.fanout.on_stand_in_timer();
        self.step(asks, None)
    }

    /// The request's deadline passed.
    pub fn on_deadline(&mut self, timeout_ms: u64) -> WriteStep {
        self.step(Vec::new(), Some(timeout_ms))
    }

    fn step(&mut self, asks: Vec<Ask>, deadline_ms: Option<u64>) -> WriteStep {
        let mut step = WriteStep {
            asks,
            ..WriteStep::default()
        };
        if !self.answered {
            let what = "durable acknowledgements";
            step.answer = match (self.fanout.verdict(), deadline_ms) {
                (Verdict::Reached, _) => Some(Ok(())),
                (Verdict::Impossible, _) => Some(Err(self.fanout.tally().error(
                    what,
                    Ending::Impossible,
                    Effect::MaybeWritten,
                ))),
                (Verdict::Waiting, Some(timeout_ms)) => Some(Err(self.fanout.tally().error(
                    what,
                    Ending::Deadline { timeout_ms },
                    Effect::MaybeWritten,
                ))),
                (Verdict::Waiting, None) => None,
            };
            self.answered = step.answer.is_some();
        }
        if (self.fanout.all_answered() && step.asks.is_empty()) || deadline_ms.is_some() {
            self.finished = true;
        }
        step.finished = self.finished;
        step
    }

    /// Whether every replica asked answered (or the deadline passed).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "coordinator_property_tests.rs"]
mod property_tests;
