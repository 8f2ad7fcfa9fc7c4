//! Gossip membership and failure detection (it replaced the first
//! reachability-from-connections table). Pure: time comes in as `now_ms`,
//! randomness as an `&mut impl Rng`; the FailureDetector actor sends the
//! [`GossipMessage`]s and feeds back what arrives.
//!
//! Every `now_ms` argument is this node's *monotonic* clock
//! ([`Clock::monotonic_ms`](crate::clock::Clock::monotonic_ms)), only ever
//! compared with itself: ages and timers must neither stop when the wall
//! clock steps back (a dead member would never go stale) nor leap when it
//! steps forward (every member would look stale at once). Wall time enters
//! in one place, `wall_ms` of [`Gossip::new`], for the generation.
//!
//! # The algorithm (the chapter's "Failure detection", Figure 11)
//!
//! Every node keeps a list of members. Each entry holds the member's
//! [`MemberInfo`], a [`MemberRecord`] that only the member itself writes
//! (generation, heartbeat, administrative status and its version) and this
//! node's own detection state. Every `gossip_interval_ms` the actor calls
//! [`Gossip::tick`]: the node bumps its own heartbeat, checks its timers and
//! sends its whole list to `gossip_fanout` random live members (never to
//! itself, never to `Left` members). Lists merge record by record with
//! [`MemberRecord::merge`], a join: higher generation, then higher
//! heartbeat, and the status with the higher `status_version`.
//!
//! Members this node cannot currently see (`Suspect`, `Down`, or known but
//! never heard from, such as seeds) get one extra message per tick with
//! probability `unreachable / (live + 1)` (Cassandra's gossiper rule): a
//! healed partition is noticed within a few rounds, a node that knows only
//! unreachable members (a fresh start, a seed list) always contacts one, and
//! a large dead set does not crowd out live gossip.
//!
//! # Detection: two sources before `Down`
//!
//! * A member is **stale** here when its version has not advanced for
//!   `suspect_after_ms` of this node's monotonic clock since we last saw it
//!   advance (or since we learned of it). Ages are local; no clocks are
//!   compared, and wall-clock steps do not reach them.
//! * Stale makes it **`Suspect`** (`reported_by` = ourselves). A member we
//!   know of but have never heard from is `Suspect` from the start: we have
//!   no evidence that it runs.
//! * It becomes **`Down`** only when, while stale here, a gossip message
//!   from a third node (not the member, not ourselves) flags it stale too:
//!   every [`GossipEntry`] carries `stale`, the sender's own verdict by the
//!   same rule. That is the chapter's "at least two independent sources";
//!   `reported_by` names the corroborating sender. One node with a bad link
//!   (or a bad clock) can suspect a member but never takes it down alone.
//! * It is **`Alive`** again as soon as its version advances, first-hand or
//!   from a sender that does not itself flag it stale. A newer version from
//!   a sender that flags it stale is adopted without resetting our timer:
//!   that heartbeat is old news.
//!
//! A consequence: in a two-node cluster nothing is ever `Down`, only
//! `Suspect`. Routing should therefore skip `Suspect` members too (this
//! node alone cannot see them); `Down` is the corroborated verdict for
//! decisions that should not rest on one node's view.
//!
//! # Why not phi accrual
//!
//! Cassandra (and Akka) use the phi accrual detector: each node keeps a
//! window of heartbeat inter-arrival times per peer and computes
//! `phi = -log10(P(silence this long))`, convicting above a threshold (8).
//! It adapts to jitter, but here arrivals are second-hand: a member's
//! heartbeat reaches us over gossip paths of random length, so the window
//! measures the gossip topology and fanout as much as the member, and its
//! verdict is still one node's alone. A fixed `suspect_after_ms` is one
//! knob with a unit, gives exact bounds that deterministic tests can check
//! ("`Down` within `suspect_after_ms` plus a few rounds") and the
//! corroboration rule removes the false positives phi's adaptivity is
//! meant to avoid on one node's flaky link. The price is no adaptation to a
//! slow network or long pauses, and the timeout must cover the gossip's own
//! spread (about log n rounds): the default of 5 intervals suits clusters
//! below ~32 nodes; use 10 or more above (measured, see
//! [`GossipOptions::suspect_after_ms`]). The `stale` predicate is the only
//! place to change to adopt phi later; the wire carries only its boolean.
//!
//! # Generations and restarts
//!
//! A node's generation is its start time in ms of the *wall* clock (a
//! monotonic clock starts again at each boot, and the generation must grow
//! across restarts), raised above the generation
//! in its own persisted [`PersistedMember`] (so a clock that stepped back
//! still moves forward) and, at run time, above any record of itself that
//! gossip shows with a newer version than its own (a lost snapshot plus a
//! clock step back). Generation is compared before the heartbeat, so a node
//! restarting with the same id takes its old place at once: its heartbeat 1
//! out-ranks the old incarnation's heartbeat 90 000.
//!
//! # Bounds
//!
//! Messages list every member (no digest + difference): about 185 bytes per
//! member in named-field MessagePack (18 KB for 100 members, about 190 KB at
//! the default `gossip_members_max` of 1024, under the peer protocol's 4 MiB
//! frame limit), sent `gossip_fanout` times per interval: fine up to a few
//! hundred nodes. The list holds at most
//! `gossip_members_max` members (self included); members beyond it are
//! dropped with a warning and counted in [`Gossip::members_dropped`].
//! `Left` members stay listed (so old gossip cannot revive them) and are
//! never removed: there is no tombstone expiry yet.

//!
//! # Validation and the origin rule
//!
//! Nothing a peer sends is taken on trust (issue 12). Every entry of a
//! message is checked before it is merged, and refused (logged, counted in
//! [`Gossip::entries_refused`]) when out of bounds:
//!
//! * the member's description ([`MemberInfo::validate`]): a valid node id,
//!   a weight in `1..=NODE_WEIGHT_MAX`, addresses and labels of bounded
//!   printable ASCII; members introduced by a handshake are checked the
//!   same way;
//! * its record ([`MemberRecord::validate`]): a generation at most
//!   `generation_skew_ms_max` ahead of this node's wall clock (so no record
//!   sits where it could never be outrun, such as `u64::MAX`), a heartbeat
//!   at most the generation's age in ms, an administrative status, and a
//!   status version at most [`STATUS_VERSION_MAX`] (or the `forget` mark);
//! * a message listing more than [`MEMBERS_MAX`] members is refused whole.
//!
//! Records are relayed (that is how gossip spreads), so without signatures
//! a relay could say anything about anyone. The **origin rule** limits
//! what it can change: a record about member X changes X's generation,
//! status or address here only if it comes from X itself (the transport's
//! peer id, bound to the session by the handshake), or if this node cannot
//! hear X (never heard of it, or X is `Suspect`, `Down` or `Left` here: a
//! member that left and stopped, or was forgotten, has nobody else to speak
//! for it), or it is this node's own verdict (suspicion, `Down`, an admin
//! `forget`). For a member this node hears, a relayed copy only advances
//! the heartbeat within the generation this node knows. Gossip still
//! converges: push-pull exchanges and the bridge's link to every member
//! make every pair talk first-hand within a few rounds, and silent members
//! take relayed news as before (`sim_tests` pass; they only allow their
//! clocks, days apart on purpose, a larger `generation_skew_ms_max`).
//!
//! What a relay can still do is bounded and undone: a forged record about
//! a member that some node cannot hear is taken there, but it reaches the
//! member itself, which starts a new generation on seeing any record of
//! itself that is not its own (`Gossip::outrun`); its own messages then
//! win everywhere. That is also why the generation bound matters: a record
//! at `u64::MAX` could not be outrun.

mod exchange;
mod node;
mod record;

#[cfg(test)]
mod laws_tests;
#[cfg(test)]
mod relay_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use node::Gossip;
pub use record::{InvalidRecord, MemberRecord, STATUS_VERSION_MAX};

use crate::wire::peer::MemberInfo;
use crate::NodeId;

/// Version of [`GossipMessage`]'s layout; messages with another are ignored.
pub const GOSSIP_MESSAGE_VERSION: u32 = 1;

/// The status version of a member removed by an admin `forget`: `Left`
/// with the highest version, so no status the member itself sends in the
/// same generation can outrun it ([`MemberRecord::merge`]).
pub const FORGOTTEN_STATUS_VERSION: u64 = u64::MAX;

/// Default of [`GossipOptions::gossip_interval_ms`], in milliseconds.
pub const GOSSIP_INTERVAL_MS_DEFAULT: u64 = 1000;
/// Default of [`GossipOptions::gossip_fanout`], in members per round.
pub const GOSSIP_FANOUT_DEFAULT: usize = 3;
/// Default suspicion timeout, in gossip rounds: in the simulation, 5
/// rounds gave false `Suspect`s from 32 nodes and false `Down`s at 128;
/// 10 rounds gave none at 32 or 128 (`benches/README.md`, Gossip).
pub const SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT: u64 = 10;
/// Default of [`GossipOptions::gossip_members_max`], in members.
pub const GOSSIP_MEMBERS_MAX_DEFAULT: usize = 1024;

/// Hard bound on `gossip_members_max`, and on the entries of a gossip
/// message: a message listing more is refused whole.
pub const MEMBERS_MAX: usize = 4096;

/// Default `generation_skew_ms_max`: one day.
pub const GENERATION_SKEW_MS_MAX_DEFAULT: u64 = 24 * 3_600_000;

/// Gossip settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipOptions {
    /// How often the actor calls [`Gossip::tick`], in ms; the simulation and
    /// the docs count time in these rounds.
    pub gossip_interval_ms: u64,
    /// Live members each tick sends to (one unreachable member may be added).
    pub gossip_fanout: usize,
    /// A member whose heartbeat has not advanced for this long (this node's
    /// monotonic clock) is suspected. It must exceed the time a heartbeat takes to
    /// reach every node (about log n rounds); the default is
    /// [`SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT`] intervals.
    pub suspect_after_ms: u64,
    /// Most members the list holds, self included; bounds memory and the
    /// size of every message. Capped at [`MEMBERS_MAX`].
    pub gossip_members_max: usize,
    /// How far ahead of this node's wall clock a generation in gossip may
    /// be, in ms; records beyond it are ignored (see "Validation" below).
    /// Must exceed the clock skew between members: a member whose clock is
    /// further ahead than this is not heard until ours catches up.
    pub generation_skew_ms_max: u64,
}

impl Default for GossipOptions {
    fn default() -> Self {
        Self {
            gossip_interval_ms: GOSSIP_INTERVAL_MS_DEFAULT,
            gossip_fanout: GOSSIP_FANOUT_DEFAULT,
            suspect_after_ms: SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT * GOSSIP_INTERVAL_MS_DEFAULT,
            gossip_members_max: GOSSIP_MEMBERS_MAX_DEFAULT,
            generation_skew_ms_max: GENERATION_SKEW_MS_MAX_DEFAULT,
        }
    }
}

/// A member's state as this node sees it and as `status` reports it.
///
/// `Joining`, `Alive`, `Leaving` and `Left` are administrative, set only by
/// the member itself; `Suspect` and `Down` are this node's detection verdict
/// and override the first three (not `Left`, which is final).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Announced, not yet serving.
    Joining,
    /// Serving, and its heartbeat advances.
    Alive,
    /// Its heartbeat is stale here (or never heard); not yet corroborated.
    Suspect,
    /// Stale here and reported stale by another member.
    Down,
    /// Handing its data off before leaving.
    Leaving,
    /// Gone for good (until it restarts with a new generation).
    Left,
}

impl MemberState {
    /// The protocol spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Leaving => "leaving",
            MemberState::Left => "left",
        }
    }

    /// Whether a member may set this on itself ([`Gossip::set_own_status`]).
    pub fn is_administrative(self) -> bool {
        !matches!(self, MemberState::Suspect | MemberState::Down)
    }
}

/// One member as a gossip message carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipEntry {
    /// Who it is and where.
    pub info: MemberInfo,
    /// What the member last said about itself, as far as the sender knows.
    pub record: MemberRecord,
    /// The sender's own verdict: it has not seen this member advance for
    /// its `suspect_after_ms`. The receiver's corroboration for `Down`.
    pub stale: bool,
}

/// What one node sends another every gossip round: its whole list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GossipMessage {
    /// Must equal [`GOSSIP_MESSAGE_VERSION`].
    pub version: u32,
    /// Every member the sender knows, itself included.
    pub members: Vec<GossipEntry>,
}

/// A change of a member's state on this node, for logs and subscribers.
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    /// The member.
    pub node: NodeId,
    /// Its state before (`None`: just learned of).
    pub from: Option<MemberState>,
    /// Its state now.
    pub to: MemberState,
    /// Who caused it: ourselves for a local timeout or our own status, the
    /// corroborating sender for `Down`, the gossip sender for news.
    pub reported_by: NodeId,
}

/// What a tick asks the actor to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Where to send `message` (never self, never `Left`).
    pub targets: Vec<MemberInfo>,
    /// This node's list.
    pub message: GossipMessage,
    /// State changes the tick's timers caused.
    pub changes: Vec<StateChange>,
}

/// One member as [`Gossip::members`] shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView<'a> {
    /// Who it is and where.
    pub info: &'a MemberInfo,
    /// Its state as this node sees it.
    pub state: MemberState,
    /// Its latest known heartbeat (in its latest known generation).
    pub heartbeat: u64,
    /// How long ago (this node's monotonic clock) we last saw it advance,
    /// or learned of it; 0 for ourselves.
    pub heartbeat_age_ms: u64,
    /// Whether the member's own record has reached us (its generation is
    /// known): only such members take a place on the ring, so a node that
    /// only ever completed a handshake (a mistyped id, a joiner that died
    /// first) never owns a range.
    pub heard: bool,
}

/// What the actor persists per member and gives back to [`Gossip::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedMember {
    /// Who it is and where.
    pub info: MemberInfo,
    /// Its last known record; our own gives the generation to out-run.
    pub record: MemberRecord,
}
