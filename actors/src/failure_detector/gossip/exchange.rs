//! The message side of [`Gossip`]: merging a received list, corroborating
//! suspicion, choosing targets and building our own list.

use rand::seq::SliceRandom;
use rand::Rng;
use tracing::warn;

use super::node::{Detection, Member};
use super::{
    Gossip, GossipEntry, GossipMessage, MemberRecord, MemberState, StateChange,
    GOSSIP_MESSAGE_VERSION,
};
use crate::wire::peer::MemberInfo;
use crate::NodeId;

impl Gossip {
    /// Merges one entry from `from`'s list: adopts a newer record, revives
    /// the member if the news is fresh, and takes it `Down` if both we and
    /// `from` find it stale.
    pub(super) fn merge_entry(
        &mut self,
        from: &NodeId,
        entry: GossipEntry,
        now_ms: u64,
        changes: &mut Vec<StateChange>,
    ) {
        let id = entry.info.id.clone();
        let is_new = !self.members.contains_key(&id);
        if is_new && !self.has_room(&id) {
            return;
        }
        // The member's own word is first-hand; a third party's newer record
        // is fresh only if that party does not itself find it stale.
        let fresh = !entry.stale || from == &id;
        let update = |m: &mut Member| {
            let before = m.record.version();
            let newer_generation = entry.record.generation > m.record.generation;
            m.record.merge(&entry.record);
            if newer_generation {
                m.info = entry.info.clone();
            }
            if m.record.version() > before && fresh {
                m.since_ms = now_ms;
                m.detection = Detection::Alive;
            }
        };
        if is_new {
            let mut member = Member::learned(entry.info.clone(), now_ms);
            update(&mut member);
            changes.push(StateChange {
                node: id.clone(),
                from: None,
                to: member.state(false),
                reported_by: from.clone(),
            });
            self.members.insert(id.clone(), member);
        } else {
            self.change(&id, from.clone(), changes, update);
        }
        // Corroboration: a second, independent source for `Down`.
        if entry.stale && from != &id && from != &self.own {
            self.check_timer(&id, now_ms, changes);
            let stale_here = self
                .members
                .get(&id)
                .is_some_and(|m| m.detection == Detection::Suspect && self.stale(m, now_ms));
            if stale_here {
                self.change(&id, from.clone(), changes, |m| {
                    m.detection = Detection::Down;
                });
            }
        }
    }

    /// Raises our generation past a record of ourselves that is newer than
    /// ours (another incarnation, or one from before a lost snapshot).
    pub(super) fn outrun(&mut self, seen: &MemberRecord) {
        let Some(own) = self.members.get_mut(&self.own) else {
            return;
        };
        if seen.version() > own.record.version() {
            warn!(
                generation = own.record.generation,
                seen_generation = seen.generation,
                "gossip shows a newer incarnation of this node; starting a new generation"
            );
            own.record.generation = seen.generation.saturating_add(1);
            own.record.heartbeat = 0;
        }
    }

    /// `gossip_fanout` random live members, plus one unreachable member with
    /// probability `unreachable / (live + 1)`. Never ourselves or `Left`.
    pub(super) fn targets(&self, rng: &mut impl Rng) -> Vec<MemberInfo> {
        let (mut live, mut unreachable) = (Vec::new(), Vec::new());
        for (id, m) in &self.members {
            match m.state(false) {
                _ if id == &self.own => {}
                MemberState::Left => {}
                MemberState::Suspect | MemberState::Down => unreachable.push(&m.info),
                _ => live.push(&m.info),
            }
        }
        let mut targets: Vec<MemberInfo> = live
            .choose_multiple(rng, self.options.gossip_fanout)
            .map(|info| (*info).clone())
            .collect();
        let denominator = live.len().saturating_add(1);
        let chance = unreachable.len().min(denominator);
        // Both fit u32 for any list below 4 billion members.
        let odds = (u32::try_from(chance), u32::try_from(denominator));
        if let (Ok(numerator), Ok(denominator)) = odds {
            if numerator > 0 && rng.gen_ratio(numerator, denominator) {
                if let Some(info) = unreachable.choose(rng) {
                    targets.push((*info).clone());
                }
            }
        }
        targets
    }

    /// Our whole list, each entry with our staleness verdict on it at
    /// `now_ms` (monotonic).
    pub fn message(&self, now_ms: u64) -> GossipMessage {
        let members = self
            .members
            .iter()
            .map(|(id, m)| GossipEntry {
                info: m.info.clone(),
                record: m.record.clone(),
                stale: id != &self.own && m.detection != Detection::Alive && self.stale(m, now_ms),
            })
            .collect();
        GossipMessage {
            version: GOSSIP_MESSAGE_VERSION,
            members,
        }
    }

    /// Applies `update` to member `id` and records the state change it
    /// causes, if any, as reported by `by`.
    pub(super) fn change(
        &mut self,
        id: &NodeId,
        by: NodeId,
        changes: &mut Vec<StateChange>,
        update: impl FnOnce(&mut Member),
    ) {
        let is_self = id == &self.own;
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        let from = member.state(is_self);
        update(member);
        let to = member.state(is_self);
        if from != to {
            changes.push(StateChange {
                node: id.clone(),
                from: Some(from),
                to,
                reported_by: by,
            });
        }
    }
}
