//! Repair's periodic work: tombstone reaper rounds, anti-entropy
//! exchanges with the next healthy partner, and hint delivery.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use tracing::{debug, info, warn, Instrument};

use crate::storage::{CompactStore, HintCountsQuery};
use crate::NodeId;

use super::{hints, reap, stream, Repair, RepairError, SYNC_TIMEOUT_MS_MIN};

impl Repair {
    /// One tombstone reaper round (see `reap`): only when every member is
    /// reachable, since each must answer.
    pub(super) fn reap_round(&mut self, ctx: &mut Context<Self>) {
        if self.reap_pass.running {
            return;
        }
        let members = reap::members_of(&self.read_ring, &self.write_ring);
        if !members.contains(&self.replicas.own) {
            return;
        }
        if let Some(away) = members.iter().find(|m| {
            **m != self.replicas.own
                && (!self.reachable.contains(*m) || self.unusable_links.contains(*m))
        }) {
            let span = self.span.clone();
            let _span = span.enter();
            debug!(peer = %away, "tombstone reaper: a member is away; no round");
            return;
        }
        self.reap_pass.running = true;
        let now_ms = self.clock.now_ms();
        let round = reap::Round {
            replicas: self.replicas.clone(),
            read_ring: self.read_ring.clone(),
            write_ring: self.write_ring.clone(),
            n: self.options.replicas_per_key,
            members,
            epoch: self.ring_epoch.clone(),
            epoch_at_start: self.ring_epoch.load(Ordering::Acquire),
            timeout_ms: self.options.repair_timeout_ms.max(SYNC_TIMEOUT_MS_MIN),
            now_ms,
            options: self.options.reap,
            removed: self.reap_removed.clone(),
        };
        let from = self.reap_pass.cursor.clone();
        let work = reap::round(round, from).instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.reap_pass.running = false;
            let span = act.span.clone();
            let _span = span.enter();
            let stats = match result {
                Ok(stats) => stats,
                Err(e) => {
                    info!(error = %e, "tombstone reaper: round stopped; retrying next round");
                    return;
                }
            };
            let pass = &mut act.reap_pass;
            pass.scanned += stats.scanned;
            pass.tombstones += stats.tombstones;
            pass.reaped += stats.reaped;
            if stats.reaped > 0 || stats.kept > 0 {
                info!(reaped = stats.reaped, kept = stats.kept, first_reason = ?stats.first_keep,
                    "tombstone reaper: round done");
            }
            match stats.next {
                Some(next) => pass.cursor = next,
                None => act.end_reap_pass(ctx),
            }
        }));
    }

    /// A pass over the store is over: recount `ringkv_tombstones`, and
    /// compact when reaps removed a large share of the store.
    pub(super) fn end_reap_pass(&mut self, ctx: &mut Context<Self>) {
        let pass = std::mem::take(&mut self.reap_pass);
        let compacting = pass.compacting;
        self.reap_pass.compacting = compacting;
        self.replicas
            .metrics
            .tombstones_counted(pass.tombstones.saturating_sub(pass.reaped));
        let removed = self.reap_removed.load(Ordering::Relaxed);
        let entries = pass.scanned.saturating_add(removed);
        if compacting || removed == 0 || removed * 100 < entries * reap::REAP_COMPACT_PERCENT {
            return;
        }
        self.reap_pass.compacting = true;
        self.reap_removed.fetch_sub(removed, Ordering::Relaxed);
        info!(
            removed,
            entries = pass.scanned,
            "tombstone reaper: compacting the store to free reaped tombstones' space"
        );
        let compact = self.replicas.storage.send(CompactStore);
        ctx.spawn(compact.into_actor(self).map(|result, act, _| {
            act.reap_pass.compacting = false;
            let span = act.span.clone();
            let _span = span.enter();
            match result {
                Ok(Ok(())) => info!("tombstone reaper: compaction done"),
                Ok(Err(e)) => warn!(error = %e, "tombstone reaper: compaction failed"),
                Err(e) => warn!(error = %e, "tombstone reaper: storage unavailable for compaction"),
            }
        }));
    }
}

impl Repair {
    /// One Merkle exchange with the next healthy partner, round robin.
    pub(super) fn anti_entropy(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        let mut partners: Vec<NodeId> = self
            .read_ring
            .members()
            .iter()
            .map(|m| m.id.clone())
            .filter(|id| {
                *id != self.replicas.own
                    && self.healthy.contains(id)
                    && !self.unusable_links.contains(id)
            })
            .collect();
        partners.sort();
        if partners.is_empty() {
            return;
        }
        let peer = partners[self.next_partner % partners.len()].clone();
        self.next_partner = self.next_partner.wrapping_add(1);
        self.syncing = true;
        let sync = self.sync_params();
        let work = async move {
            let result = sync.with(&peer).await;
            (peer, result)
        }
        .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(|(peer, result), act, _| {
            act.syncing = false;
            let span = act.span.clone();
            let _span = span.enter();
            match result {
                Ok(stats) if stats.differing > 0 => info!(
                    peer = %peer, nodes = stats.leaves, rounds = stats.rounds,
                    differing = stats.differing, keys = stats.pulled.keys,
                    repaired = stats.pulled.changed, bytes = stats.pulled.bytes,
                    "anti-entropy: replicas differed; pulled the differing slices"
                ),
                Ok(stats) => debug!(peer = %peer, rounds = stats.rounds, "anti-entropy: in sync"),
                Err(RepairError::TreeNotReady) => debug!(peer = %peer,
                    "anti-entropy exchange skipped: this node's merkle tree is being rebuilt"),
                Err(e) => debug!(peer = %peer, error = %e, "anti-entropy exchange failed"),
            }
        }));
    }

    /// Hinted handoff: for each owner this node holds hints for, deliver
    /// them to it if it is back, or to each key's current owners if it
    /// left the cluster (a forgotten or departed member never comes back
    /// for them).
    pub(super) fn deliver_hints(&mut self, ctx: &mut Context<Self>) {
        let counts = self.replicas.storage.send(HintCountsQuery);
        ctx.spawn(counts.into_actor(self).map(|counts, act, ctx| {
            let Ok(counts) = counts else { return };
            for (owner, _, _) in counts {
                act.deliver_to(owner, ctx);
            }
        }));
    }

    pub(super) fn deliver_to(&mut self, owner: NodeId, ctx: &mut Context<Self>) {
        if self.delivering.contains(&owner) {
            return;
        }
        let member = |ring: &crate::ring::Ring| ring.members().iter().any(|m| m.id == owner);
        let destination = if !member(&self.read_ring) && !member(&self.write_ring) {
            hints::Destination::CurrentOwners
        } else if self.reachable.contains(&owner) && !self.unusable_links.contains(&owner) {
            hints::Destination::Owner
        } else {
            return; // away: its hints wait
        };
        self.delivering.insert(owner.clone());
        let (replicas, write_ring) = (self.replicas.clone(), self.write_ring.clone());
        let (reachable, unusable) = (self.reachable.clone(), self.unusable_links.clone());
        let n = self.options.replicas_per_key;
        let own = self.replicas.own.clone();
        let owners_of = move |key: &[u8]| -> Vec<NodeId> {
            write_ring
                .preference_list(key, n)
                .into_iter()
                .filter(|m| *m != own && reachable.contains(m) && !unusable.contains(m))
                .collect()
        };
        let throttle = stream::Throttle {
            bytes_per_s_max: self.options.hint_delivery_bytes_per_s_max,
        };
        let timeout_ms = self.options.repair_timeout_ms;
        let target = owner.clone();
        let work = async move {
            hints::deliver(
                &replicas,
                &target,
                destination,
                owners_of,
                throttle,
                timeout_ms,
            )
            .await
        }
        .instrument(self.span.clone());
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.delivering.remove(&owner);
            let span = act.span.clone();
            let _span = span.enter();
            let (done, failure) = match result {
                Ok(done) => (done, None),
                Err((done, why)) => (done, Some(why)),
            };
            act.replicas.metrics.hints_delivered(done.hints);
            if done.hints > 0 {
                info!(peer = %owner, delivered = done.hints, bytes = done.bytes,
                    "hinted handoff: delivered writes held for another replica");
            }
            if let Some(why) = failure {
                debug!(peer = %owner, error = %why, "hint delivery stopped; retrying later");
            }
        }));
    }
}
