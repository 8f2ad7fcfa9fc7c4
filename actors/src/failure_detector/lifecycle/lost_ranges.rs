//! The pushes an owner owes for the ranges it stopped replicating
//! ([`LostRanges`]): one target at a time, a failed batch to the back.

use crate::repair::handoff::Transfer;
use crate::NodeId;

/// Pushes this node owes for ranges it stopped replicating, one target at
/// a time.
#[derive(Debug, Default)]
pub(in crate::failure_detector) struct LostRanges {
    /// Transfers not yet done, in the order they are tried.
    pending: Vec<Transfer>,
    /// A push is under way.
    running: bool,
}

impl LostRanges {
    /// Transfers still owed.
    pub(in crate::failure_detector) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds `transfers`, skipping those already pending.
    pub(super) fn add(&mut self, transfers: Vec<Transfer>) -> usize {
        let before = self.pending.len();
        for t in transfers {
            if !self.pending.contains(&t) {
                self.pending.push(t);
            }
        }
        self.pending.len() - before
    }

    /// The next batch: every pending transfer to the first target `usable`
    /// accepts; transfers to targets `placed` refuses (they left the ring)
    /// are dropped.
    pub(super) fn next_batch(
        &mut self,
        placed: impl Fn(&NodeId) -> bool,
        usable: impl Fn(&NodeId) -> bool,
    ) -> Option<Vec<Transfer>> {
        if self.running {
            return None;
        }
        self.pending.retain(|t| placed(&t.target));
        let target = self
            .pending
            .iter()
            .find(|t| usable(&t.target))?
            .target
            .clone();
        self.running = true;
        Some(
            self.pending
                .iter()
                .filter(|t| t.target == target)
                .cloned()
                .collect(),
        )
    }

    /// A batch ended: done, it leaves the list; failed, it goes to the back
    /// so other targets get their turn.
    pub(super) fn finish(&mut self, batch: &[Transfer], ok: bool) {
        self.running = false;
        let (sent, rest): (Vec<Transfer>, Vec<Transfer>) =
            self.pending.drain(..).partition(|t| batch.contains(t));
        self.pending = rest;
        if !ok {
            self.pending.extend(sent);
        }
    }
}
