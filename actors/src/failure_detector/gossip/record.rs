//! The self-owned part of a member's entry and its merge.
//!
//! A [`MemberRecord`] is written only by the member it describes: it bumps
//! its heartbeat every gossip round, its `status_version` when it changes its
//! administrative status, and picks a new `generation` each time it starts.
//! Everyone else only copies records around, so merging two copies is a
//! lattice join and the order in which gossip arrives does not matter.

use serde::{Deserialize, Serialize};

use super::{MemberState, FORGOTTEN_STATUS_VERSION};

/// Most status changes a member makes in one generation, as a bound on
/// `status_version` (it makes four at most: joining, alive, leaving, left;
/// an admin `forget` uses [`FORGOTTEN_STATUS_VERSION`], which is allowed).
pub const STATUS_VERSION_MAX: u64 = 1 << 16;

/// Why a record a peer sent is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    /// The generation is further ahead of this node's clock than
    /// `generation_skew_ms_max`: no member could have started then, and a
    /// generation at the top of the range could never be outrun.
    #[error("generation {generation} is more than {skew_ms_max} ms ahead of this node's clock ({wall_ms})")]
    FutureGeneration {
        /// The record's generation.
        generation: u64,
        /// This node's wall clock, ms since the Unix epoch.
        wall_ms: u64,
        /// `generation_skew_ms_max`.
        skew_ms_max: u64,
    },
    /// More heartbeats than milliseconds since the generation started (a
    /// member bumps it once per gossip interval, at least 1 ms).
    #[error("heartbeat {heartbeat} is more than the age of its generation in ms")]
    Heartbeat {
        /// The record's heartbeat.
        heartbeat: u64,
    },
    /// A status version over [`STATUS_VERSION_MAX`] that is not the
    /// `forget` mark.
    #[error("status version {0} is over {STATUS_VERSION_MAX}")]
    StatusVersion(u64),
    /// `Suspect` or `Down`: each node's own judgement, never gossiped.
    #[error("status {0} is not administrative")]
    Status(&'static str),
}

/// What a member says about itself; the unit that gossip merges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member's start time in ms (its own clock), raised past any older
    /// generation it knows of; compared before the heartbeat, so a restarted
    /// node's small heartbeat out-ranks the large one others remember. `0`
    /// means "no record yet" (learned from a handshake, a seed or a snapshot).
    pub generation: u64,
    /// Bumped by the member once per gossip round; restarts at 0 with each
    /// generation.
    pub heartbeat: u64,
    /// The member's administrative status: `Joining`, `Alive`, `Leaving` or
    /// `Left` (never `Suspect`/`Down`, which are each node's own judgement).
    pub status: MemberState,
    /// Bumped by the member each time it changes `status`, so the newest
    /// status wins a merge.
    pub status_version: u64,
}

impl MemberRecord {
    /// The record of a member we know of but have heard nothing from.
    pub(super) fn unknown() -> Self {
        Self {
            generation: 0,
            heartbeat: 0,
            status: MemberState::Alive,
            status_version: 0,
        }
    }

    /// Checks a record a peer sent against the bounds, at this node's wall
    /// clock `wall_ms` (ms since the Unix epoch): its generation at most
    /// `skew_ms_max` ahead, its heartbeat at most one per ms of its
    /// generation's age (with the same slack), its status administrative
    /// and its status version at most [`STATUS_VERSION_MAX`] (or the
    /// `forget` mark).
    pub fn validate(&self, wall_ms: u64, skew_ms_max: u64) -> Result<(), InvalidRecord> {
        let latest = wall_ms.saturating_add(skew_ms_max);
        if self.generation > latest {
            return Err(InvalidRecord::FutureGeneration {
                generation: self.generation,
                wall_ms,
                skew_ms_max,
            });
        }
        if self.heartbeat > latest - self.generation {
            return Err(InvalidRecord::Heartbeat {
                heartbeat: self.heartbeat,
            });
        }
        if !self.status.is_administrative() {
            return Err(InvalidRecord::Status(self.status.as_str()));
        }
        if self.status_version > STATUS_VERSION_MAX
            && self.status_version != FORGOTTEN_STATUS_VERSION
        {
            return Err(InvalidRecord::StatusVersion(self.status_version));
        }
        Ok(())
    }

    /// The order in which heartbeats advance: generation first.
    pub fn version(&self) -> (u64, u64) {
        (self.generation, self.heartbeat)
    }

    /// Joins `other` into `self`; returns whether `self` changed.
    ///
    /// Laws (checked by `record_merge_*` in `laws_tests.rs`): for any records
    /// `a`, `b`, `c` of one member, `a ⊔ b = b ⊔ a` (commutative),
    /// `(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)` (associative) and `a ⊔ a = a`
    /// (idempotent). The higher generation wins the whole record; within a
    /// generation the heartbeat is the maximum and the status is the one
    /// with the higher `(status_version, status rank)`. The rank only breaks
    /// ties that a correct member never creates (it mints each status
    /// version once), so that the join stays a join even for bad input.
    pub fn merge(&mut self, other: &MemberRecord) -> bool {
        let before = self.clone();
        if other.generation > self.generation {
            *self = other.clone();
        } else if other.generation == self.generation {
            self.heartbeat = self.heartbeat.max(other.heartbeat);
            if (other.status_version, rank(other.status)) > (self.status_version, rank(self.status))
            {
                self.status = other.status;
                self.status_version = other.status_version;
            }
        }
        *self != before
    }
}

/// A total order on statuses, used only to break impossible ties.
fn rank(status: MemberState) -> u8 {
    match status {
        MemberState::Joining => 0,
        MemberState::Alive => 1,
        MemberState::Suspect => 2,
        MemberState::Down => 3,
        MemberState::Leaving => 4,
        MemberState::Left => 5,
    }
}
