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
    /// Merges one entry from `from`'s list: adopts a newer record (within
    /// the origin rule, see [`Gossip::relay_may_rewrite`]), revives the
    /// member if the news is fresh, and takes it `Down` if both we and
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
        let first_hand = from == &id;
        let fresh = !entry.stale || first_hand;
        let rewrite = first_hand || self.members.get(&id).is_none_or(Self::relay_may_rewrite);
        let mut record = entry.record.clone();
        if !rewrite {
            // A relayed copy about a member we hear ourselves: only its
            // heartbeat within the generation we know counts (the origin
            // rule); its generation, status and address are its own to change.
            if let Some(known) = self.members.get(&id) {
                if record.generation != known.record.generation {
                    return self.corroborate(from, &entry, now_ms, changes);
                }
                record.status = known.record.status;
                record.status_version = known.record.status_version;
            }
        }
        let update = |m: &mut Member| {
            let before = m.record.version();
            let newer_generation = record.generation > m.record.generation;
            m.record.merge(&record);
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
        self.corroborate(from, &entry, now_ms, changes);
    }

    /// The origin rule: may a record about `member` relayed by a third
    /// node change its generation, status or address here? Only when this
    /// node cannot hear the member itself: never heard of it (generation
    /// 0: how members are learned), or it is `Suspect`, `Down` or `Left`
    /// here (a member that left and stopped, was forgotten, or restarted
    /// behind a partition has nobody else to speak for it). A member we
    /// hear is changed only by its own messages; relays advance its
    /// heartbeat within its generation, and a forged record about it
    /// (`left`, a huge generation) does nothing. A member that does fall
    /// silent here and then is forged `left` by a relay sees the forgery
    /// gossiped back to it and starts a new generation
    /// ([`Gossip::outrun`]), which its own messages spread.
    pub(super) fn relay_may_rewrite(member: &Member) -> bool {
        member.record.generation == 0
            || member.detection != Detection::Alive
            || member.record.status == MemberState::Left
    }

    /// Corroboration: a second, independent source for `Down`.
    fn corroborate(
        &mut self,
        from: &NodeId,
        entry: &GossipEntry,
        now_ms: u64,
        changes: &mut Vec<StateChange>,
    ) {
        let id = &entry.info.id;
        if entry.stale && from != id && from != &self.own {
            self.check_timer(id, now_ms, changes);
            let stale_here = self
                .members
                .get(id)
                .is_some_and(|m| m.detection == Detection::Suspect && self.stale(m, now_ms));
            if stale_here {
                self.change(id, from.clone(), changes, |m| {
                    m.detection = Detection::Down;
                });
            }
        }
    }

    /// Raises our generation past a record of ourselves that would change
    /// ours: another incarnation, one from before a lost snapshot, or a
    /// status we never set (a forged `left`, or an admin `forget` of a
    /// node that is in fact running). Only we write our record, so any
    /// such record is outrun by a new generation, which every merge
    /// prefers; this is what undoes a forgery that reached nodes which
    /// could not hear us.
    pub(super) fn outrun(&mut self, seen: &MemberRecord) {
        let Some(own) = self.members.get_mut(&self.own) else {
            return;
        };
        let mut merged = own.record.clone();
        if merged.merge(seen) {
            warn!(
                generation = own.record.generation,
                seen_generation = seen.generation,
                seen_status = seen.status.as_str(),
                "gossip shows a record of this node that is not ours; starting a new generation"
            );
            own.record.generation = seen.generation.max(own.record.generation).saturating_add(1);
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
