//! [`Gossip`]: one node's member list, its timers and its merge of incoming
//! gossip. See the module doc of [`super`] for the rules.

use std::collections::BTreeMap;

use rand::Rng;
use tracing::warn;

use super::{
    GossipEntry, GossipMessage, GossipOptions, MemberRecord, MemberState, MemberView,
    PersistedMember, StateChange, Tick, FORGOTTEN_STATUS_VERSION, GOSSIP_MESSAGE_VERSION,
    MEMBERS_MAX,
};
use crate::wire::peer::MemberInfo;
use crate::NodeId;

/// This node's detection verdict on another member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Detection {
    /// Advanced within `suspect_after_ms`.
    Alive,
    /// Stale here, or never heard from.
    Suspect,
    /// Stale here and flagged stale by another member.
    Down,
}

/// One member in the list.
#[derive(Clone, Debug)]
pub(super) struct Member {
    /// Who it is and where (from its newest generation).
    pub(super) info: MemberInfo,
    /// What it last said about itself.
    pub(super) record: MemberRecord,
    /// Our verdict on it (always `Alive` for ourselves).
    pub(super) detection: Detection,
    /// This node's monotonic clock when the member last advanced here (or
    /// was learned of): the start of its staleness timer.
    pub(super) since_ms: u64,
}

/// One node's gossip membership and failure detector.
#[derive(Clone, Debug)]
pub struct Gossip {
    /// This node: never judged, never a target, its record written only here.
    pub(super) own: NodeId,
    /// Every member, ourselves included, sorted by id (so `members()` and
    /// the simulation are deterministic).
    pub(super) members: BTreeMap<NodeId, Member>,
    /// Timers, fanout and the list's limit.
    pub(super) options: GossipOptions,
    /// Members refused because the list was full, for the actor's metrics.
    pub(super) members_dropped: u64,
    /// Gossip entries refused by validation (bounds or the origin rule's
    /// bounds), for logs and tests.
    pub(super) entries_refused: u64,
    /// The wall clock (ms since the Unix epoch) and the monotonic clock at
    /// the start: this node's wall time at monotonic `now_ms` is
    /// `start_wall_ms + (now_ms - start_now_ms)`, what generations in
    /// gossip are checked against (a later step of the wall clock does not
    /// move it).
    pub(super) start_wall_ms: u64,
    pub(super) start_now_ms: u64,
}

impl Gossip {
    /// A node `own` that starts `Alive` in a new generation, knowing `known`
    /// (a [`Gossip::snapshot`]); the others start `Suspect` until heard from
    /// (`Left` ones stay `Left`). Our persisted status is not restored: a
    /// restart is a new incarnation.
    ///
    /// Two clocks: `wall_ms` (wall time, ms since the Unix epoch) only
    /// gives the generation, which must grow across restarts of the
    /// process, so a monotonic clock (it starts again at each boot) cannot
    /// give it; it is raised past our persisted generation. `now_ms` (this
    /// node's monotonic clock, like every other `now_ms` here) starts the
    /// members' timers. A wall-clock step moves only the generation, which
    /// no timer reads.
    pub fn new(
        own: MemberInfo,
        known: Vec<PersistedMember>,
        wall_ms: u64,
        now_ms: u64,
        options: GossipOptions,
    ) -> Self {
        // Our generation first: it must out-run the one we persisted, even
        // if the clock stepped back across the restart.
        let persisted_generation = known
            .iter()
            .filter(|p| p.info.id == own.id)
            .map(|p| p.record.generation.saturating_add(1))
            .max();
        let generation = wall_ms.max(1).max(persisted_generation.unwrap_or(0));
        let mut gossip = Self {
            own: own.id.clone(),
            members: BTreeMap::new(),
            options,
            members_dropped: 0,
            entries_refused: 0,
            start_wall_ms: wall_ms,
            start_now_ms: now_ms,
        };
        let record = MemberRecord {
            generation,
            ..MemberRecord::unknown()
        };
        gossip.members.insert(
            own.id.clone(),
            Member {
                record,
                detection: Detection::Alive,
                since_ms: now_ms,
                info: own,
            },
        );
        for persisted in known {
            if persisted.info.id != gossip.own && gossip.has_room(&persisted.info.id) {
                let id = persisted.info.id.clone();
                let member = gossip
                    .members
                    .entry(id)
                    .or_insert_with(|| Member::learned(persisted.info.clone(), now_ms));
                member.record.merge(&persisted.record);
            }
        }
        gossip
    }

    /// One gossip round at `now_ms` (monotonic): bumps our heartbeat,
    /// suspects members stale for `suspect_after_ms`, and picks where to
    /// send our list.
    pub fn tick(&mut self, now_ms: u64, rng: &mut impl Rng) -> Tick {
        if let Some(own) = self.members.get_mut(&self.own) {
            own.record.heartbeat = own.record.heartbeat.saturating_add(1);
        }
        let mut changes = Vec::new();
        let ids: Vec<NodeId> = self.members.keys().cloned().collect();
        for id in &ids {
            self.check_timer(id, now_ms, &mut changes);
        }
        Tick {
            targets: self.targets(rng),
            message: self.message(now_ms),
            changes,
        }
    }

    /// Merges a list received from `from` (the transport's authenticated
    /// peer id) at `now_ms` (monotonic: a member that advanced restarts
    /// its timer there). Entries about ourselves never change our record; they only
    /// push our generation forward if they show a newer incarnation of us.
    ///
    /// Law (checked by `receive_order_and_repeats_do_not_change_known_records`):
    /// after any sequence of `receive` calls, the record this node holds for
    /// each other member is the [`MemberRecord::merge`] join of the records
    /// it started with and every entry about that member in the messages
    /// received, so it does not depend on their order (commutative) nor on
    /// repeats (idempotent). Detection states, which depend on `now_ms` and
    /// on who sent what, are not covered by this law.
    pub fn receive(
        &mut self,
        from: &NodeId,
        message: GossipMessage,
        now_ms: u64,
    ) -> Vec<StateChange> {
        let mut changes = Vec::new();
        if message.version != GOSSIP_MESSAGE_VERSION {
            warn!(peer = %from, version = message.version, "ignoring gossip of another version");
            return changes;
        }
        if message.members.len() > MEMBERS_MAX {
            warn!(peer = %from, entries = message.members.len(), members_max = MEMBERS_MAX,
                "ignoring gossip listing more members than MEMBERS_MAX");
            self.entries_refused += 1;
            return changes;
        }
        let dropped_before = self.members_dropped;
        for entry in message.members {
            if let Err(why) = self.validate_entry(&entry, now_ms) {
                self.entries_refused += 1;
                warn!(peer = %from, member = %entry.info.id, reason = %why,
                    "ignoring an invalid gossip entry");
            } else if entry.info.id == self.own {
                self.outrun(&entry.record);
            } else {
                self.merge_entry(from, entry, now_ms, &mut changes);
            }
        }
        if self.members_dropped > dropped_before {
            warn!(
                peer = %from,
                dropped = self.members_dropped - dropped_before,
                gossip_members_max = self.options.gossip_members_max,
                "member list full; dropped members from gossip"
            );
        }
        changes
    }

    /// Adds a member learned from a handshake or a seed; it is `Suspect`
    /// until its first heartbeat arrives, its timer starting at `now_ms`
    /// (monotonic). A known member keeps its entry.
    pub fn introduce(&mut self, member: MemberInfo, now_ms: u64) -> Vec<StateChange> {
        if member.id == self.own || self.members.contains_key(&member.id) {
            return Vec::new();
        }
        if let Err(why) = member.validate() {
            self.entries_refused += 1;
            warn!(member = %member.id, reason = %why, "not adding an introduced member: invalid");
            return Vec::new();
        }
        if !self.has_room(&member.id) {
            warn!(member = %member.id, gossip_members_max = self.options.gossip_members_max,
                "member list full; not adding an introduced member");
            return Vec::new();
        }
        let id = member.id.clone();
        self.members
            .insert(id.clone(), Member::learned(member, now_ms));
        vec![StateChange {
            node: id,
            from: None,
            to: MemberState::Suspect,
            reported_by: self.own.clone(),
        }]
    }

    /// Changes our own administrative status (`Joining`, `Alive`, `Leaving`,
    /// `Left`), bumping its version so that it wins every merge. `Suspect`
    /// and `Down` are refused: nobody judges itself. `now_ms` is unused
    /// today (a status change starts no timer).
    pub fn set_own_status(&mut self, status: MemberState, now_ms: u64) -> Vec<StateChange> {
        let _ = now_ms;
        let Some(own) = self.members.get_mut(&self.own) else {
            return Vec::new();
        };
        if !status.is_administrative() {
            warn!(
                status = status.as_str(),
                "a node cannot set itself suspect or down"
            );
            return Vec::new();
        }
        if own.record.status == status {
            return Vec::new();
        }
        let from = own.record.status;
        own.record.status = status;
        own.record.status_version = own.record.status_version.saturating_add(1);
        vec![StateChange {
            node: self.own.clone(),
            from: Some(from),
            to: status,
            reported_by: self.own.clone(),
        }]
    }

    /// Every member, sorted by id, ourselves included; heartbeat ages are
    /// measured up to `now_ms` (monotonic).
    pub fn members(&self, now_ms: u64) -> Vec<MemberView<'_>> {
        self.members
            .iter()
            .map(|(id, m)| MemberView {
                info: &m.info,
                state: m.state(id == &self.own),
                heartbeat: m.record.heartbeat,
                heartbeat_age_ms: if id == &self.own {
                    0
                } else {
                    now_ms.saturating_sub(m.since_ms)
                },
                heard: m.record.generation > 0,
            })
            .collect()
    }

    /// The state of `node` as this node sees it.
    pub fn state_of(&self, node: &NodeId) -> Option<MemberState> {
        self.members.get(node).map(|m| m.state(node == &self.own))
    }

    /// What to persist: every member's info and record, ourselves included
    /// (our generation is what the next start must out-run).
    pub fn snapshot(&self) -> Vec<PersistedMember> {
        self.members
            .values()
            .map(|m| PersistedMember {
                info: m.info.clone(),
                record: m.record.clone(),
            })
            .collect()
    }

    /// Admin `forget`: marks `node`, which this node sees as suspect or
    /// down, `Left` with [`FORGOTTEN_STATUS_VERSION`], which no record of
    /// the same generation can outrun (a restart, in a new generation,
    /// brings it back as a new member). Refused for a member that is not
    /// suspect or down: a running node leaves with `leave`.
    pub fn forget(&mut self, node: &NodeId, now_ms: u64) -> Result<Vec<StateChange>, String> {
        let _ = now_ms;
        let Some(member) = self.members.get(node) else {
            return Err(format!("no member {node} is known here"));
        };
        match member.state(node == &self.own) {
            MemberState::Suspect | MemberState::Down => {}
            MemberState::Left if self.is_forgotten(node) => return Ok(Vec::new()),
            state => {
                return Err(format!(
                    "{node} is {}: only a member that is down (or suspect) can be forgotten; \
                     a running node leaves with `leave`",
                    state.as_str()
                ))
            }
        }
        let mut changes = Vec::new();
        let by = self.own.clone();
        self.change(node, by, &mut changes, |m| {
            m.record.status = MemberState::Left;
            m.record.status_version = FORGOTTEN_STATUS_VERSION;
            // A member never heard from gets a generation, so that the
            // mark travels (and its real first start still outruns it).
            m.record.generation = m.record.generation.max(1);
        });
        Ok(changes)
    }

    /// Whether `node` was forgotten (admin `forget`) in its generation.
    pub fn is_forgotten(&self, node: &NodeId) -> bool {
        self.members.get(node).is_some_and(|m| {
            m.record.status == MemberState::Left
                && m.record.status_version == FORGOTTEN_STATUS_VERSION
        })
    }

    /// Members refused because the list held `gossip_members_max` already.
    pub fn members_dropped(&self) -> u64 {
        self.members_dropped
    }

    /// Gossip entries and introduced members refused as invalid.
    pub fn entries_refused(&self) -> u64 {
        self.entries_refused
    }

    /// This node's wall clock (ms since the Unix epoch) at monotonic
    /// `now_ms`, as generations are checked against it.
    pub fn wall_ms(&self, now_ms: u64) -> u64 {
        self.start_wall_ms
            .saturating_add(now_ms.saturating_sub(self.start_now_ms))
    }

    /// Checks one gossip entry: the member's description
    /// ([`MemberInfo::validate`]) and its record
    /// ([`MemberRecord::validate`], against our wall clock and
    /// `generation_skew_ms_max`).
    pub(super) fn validate_entry(&self, entry: &GossipEntry, now_ms: u64) -> Result<(), String> {
        entry.info.validate().map_err(|e| e.to_string())?;
        let skew = self.options.generation_skew_ms_max;
        entry
            .record
            .validate(self.wall_ms(now_ms), skew)
            .map_err(|e| e.to_string())
    }

    /// Our current generation (wall-clock start time in ms since the Unix
    /// epoch, or later if raised).
    pub fn generation(&self) -> u64 {
        self.members
            .get(&self.own)
            .map_or(0, |m| m.record.generation)
    }

    /// Whether `id` is known or there is room for one more member; counts
    /// the refusal.
    pub(super) fn has_room(&mut self, id: &NodeId) -> bool {
        let room = self.members.contains_key(id)
            || self.members.len() < self.options.gossip_members_max.clamp(1, MEMBERS_MAX);
        if !room {
            self.members_dropped += 1;
        }
        room
    }

    /// Whether `member` has not advanced here for `suspect_after_ms` of the
    /// monotonic clock, up to `now_ms`.
    pub(super) fn stale(&self, member: &Member, now_ms: u64) -> bool {
        now_ms.saturating_sub(member.since_ms) >= self.options.suspect_after_ms
    }

    /// Suspects `id` if it went stale while `Alive`.
    pub(super) fn check_timer(&mut self, id: &NodeId, now_ms: u64, changes: &mut Vec<StateChange>) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        let eligible = id != &self.own && member.record.status != MemberState::Left;
        if eligible && member.detection == Detection::Alive && self.stale(member, now_ms) {
            let by = self.own.clone();
            self.change(id, by, changes, |m| m.detection = Detection::Suspect);
        }
    }
}

impl Member {
    /// A member we know of but have not heard from: `Suspect`, timer from
    /// `now_ms` (monotonic).
    pub(super) fn learned(info: MemberInfo, now_ms: u64) -> Self {
        Self {
            info,
            record: MemberRecord::unknown(),
            detection: Detection::Suspect,
            since_ms: now_ms,
        }
    }

    /// Its state as reported: `Left` is final, our verdict overrides the
    /// other administrative statuses, and we never judge ourselves.
    pub(super) fn state(&self, is_self: bool) -> MemberState {
        match (self.record.status, self.detection) {
            (MemberState::Left, _) => MemberState::Left,
            (status, _) if is_self => status,
            (_, Detection::Suspect) => MemberState::Suspect,
            (_, Detection::Down) => MemberState::Down,
            (status, Detection::Alive) => status,
        }
    }
}
