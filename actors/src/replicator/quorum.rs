//! Quorum counting: pure bookkeeping of who was asked and who answered,
//! shared by the read and the write coordinators.
//!
//! Replicas are counted by [`Role`]: a quorum needs `needed` successes in
//! all, of which at least `needed_primaries` from the key's own replicas
//! (PROTOCOL.md's `pr` / `pw`; 0 by default), so a sloppy quorum can be
//! told apart from a strict one. A request at a DC-aware consistency level
//! also needs [`DcQuorum`]s: that many successes among the replicas of one
//! data center (a stand-in counts for the DC of the replica it stands in
//! for). [`Need::for_level`] turns a level into these counts.

use std::fmt::Write as _;

use crate::replicas::ReplicaError;
use crate::ring::DcReplication;
use crate::wire::client::{ClientError, Consistency, ErrorCode};
use crate::NodeId;

/// Successes a request needs among the replicas of one data center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcQuorum {
    /// The data center.
    pub dc: String,
    /// Successes needed there.
    pub needed: usize,
}

/// What a request at a consistency level waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// Successes in all (the request's R or W).
    pub needed: usize,
    /// Successes per data center, on top.
    pub dcs: Vec<DcQuorum>,
}

impl Need {
    /// The counts of `level` for a key with `n` replicas placed by
    /// `dc_replication`, coordinated in data center `own_dc`:
    /// `one` 1, `quorum` N/2+1, `all` N; `local_one` 1 and `local_quorum`
    /// n_own/2+1 in `own_dc`; `each_quorum` n_dc/2+1 in every DC (their sum
    /// in all). Without per-DC replication the ring is one data center and
    /// `local_*` / `each_quorum` are `one` / `quorum`. A `local_*` level on a
    /// node whose DC holds no replicas is `bad_request`.
    pub fn for_level(
        level: Consistency,
        n: usize,
        dc_replication: &DcReplication,
        own_dc: &str,
    ) -> Result<Need, ClientError> {
        let majority = |count: usize| count / 2 + 1;
        let plain = |needed: usize| Need {
            needed,
            dcs: Vec::new(),
        };
        let local = |needed: usize| Need {
            needed,
            dcs: vec![DcQuorum {
                dc: own_dc.to_owned(),
                needed,
            }],
        };
        let own = dc_replication.in_dc(own_dc);
        let per_dc = !dc_replication.is_empty();
        if per_dc && own == 0 && matches!(level, Consistency::LocalOne | Consistency::LocalQuorum) {
            return Err(ClientError::new(
                ErrorCode::BadRequest,
                format!(
                    "consistency {level}: this node's data center {own_dc} holds no replicas \
                     (--dc-replication {dc_replication})"
                ),
            ));
        }
        Ok(match level {
            Consistency::One => plain(1),
            Consistency::Quorum => plain(majority(n)),
            Consistency::All => plain(n),
            Consistency::LocalOne if per_dc => local(1),
            Consistency::LocalQuorum if per_dc => local(majority(own)),
            Consistency::EachQuorum if per_dc => {
                let dcs: Vec<DcQuorum> = dc_replication
                    .dcs()
                    .iter()
                    .map(|(dc, count)| DcQuorum {
                        dc: dc.clone(),
                        needed: majority(*count),
                    })
                    .collect();
                Need {
                    needed: dcs.iter().map(|q| q.needed).sum(),
                    dcs,
                }
            }
            Consistency::LocalOne => plain(1),
            Consistency::LocalQuorum | Consistency::EachQuorum => plain(majority(n)),
        })
    }
}

/// One data center's count within a [`Tally`].
#[derive(Clone, Debug)]
struct DcCount {
    dc: String,
    needed: usize,
    outstanding: usize,
    successes: usize,
}

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
    dcs: Vec<DcCount>,
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
            dcs: Vec::new(),
        }
    }

    /// The same tally, also needing each of `dcs`.
    pub fn with_dc_quorums(mut self, dcs: &[DcQuorum]) -> Self {
        self.dcs = dcs
            .iter()
            .map(|q| DcCount {
                dc: q.dc.clone(),
                needed: q.needed,
                outstanding: 0,
                successes: 0,
            })
            .collect();
        self
    }

    fn dc_count(&mut self, dc: Option<&str>) -> Option<&mut DcCount> {
        let dc = dc?;
        self.dcs.iter_mut().find(|c| c.dc == dc)
    }

    /// A replica in `role` was asked.
    pub fn asked(&mut self, role: Role) {
        self.asked_in(role, None);
    }

    /// A replica in `role`, counting for data center `dc`, was asked.
    pub fn asked_in(&mut self, role: Role, dc: Option<&str>) {
        self.outstanding += 1;
        if role == Role::Primary {
            self.outstanding_primaries += 1;
        }
        if let Some(count) = self.dc_count(dc) {
            count.outstanding += 1;
        }
    }

    fn answered(&mut self, role: Role, dc: Option<&str>) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if role == Role::Primary {
            self.outstanding_primaries = self.outstanding_primaries.saturating_sub(1);
        }
        if let Some(count) = self.dc_count(dc) {
            count.outstanding = count.outstanding.saturating_sub(1);
        }
    }

    /// A replica in `role` succeeded.
    pub fn success(&mut self, role: Role) {
        self.success_in(role, None);
    }

    /// A replica in `role`, counting for data center `dc`, succeeded.
    pub fn success_in(&mut self, role: Role, dc: Option<&str>) {
        self.answered(role, dc);
        self.successes += 1;
        if role == Role::Primary {
            self.primary_successes += 1;
        }
        if let Some(count) = self.dc_count(dc) {
            count.successes += 1;
        }
    }

    /// A replica in `role` failed.
    pub fn failure(&mut self, node: NodeId, role: Role, error: ReplicaError) {
        self.failure_in(node, role, None, error);
    }

    /// A replica in `role`, counting for data center `dc`, failed.
    pub fn failure_in(&mut self, node: NodeId, role: Role, dc: Option<&str>, error: ReplicaError) {
        self.answered(role, dc);
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
        let dcs_reached = self.dcs.iter().all(|c| c.successes >= c.needed);
        let dc_impossible = self
            .dcs
            .iter()
            .any(|c| c.successes + c.outstanding < c.needed);
        if self.successes >= self.needed
            && self.primary_successes >= self.needed_primaries
            && dcs_reached
        {
            Verdict::Reached
        } else if self.successes + self.outstanding < self.needed
            || self.primary_successes + self.outstanding_primaries < self.needed_primaries
            || dc_impossible
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
        for c in &self.dcs {
            let _ = write!(message, " ({} of {} in {})", c.successes, c.needed, c.dc);
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
#[path = "quorum_tests.rs"]
mod tests;
