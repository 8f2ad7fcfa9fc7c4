//! The FailureDetector: holds the membership (from `--seeds`, the handshakes
//! and the copy persisted in the data dir), turns the Bridge's reachability
//! news into member states, and tells subscribers (Replicator, Repair) the
//! ring and who is reachable with a [`MembershipChanged`].
//!
//! Reachability comes from connection state for now; gossip and heartbeat
//! suspicion replace it in the gossip issue, behind the same messages.

pub mod gossip;
mod membership;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use tracing::{info, warn};

pub use gossip::{
    Gossip, GossipMessage, GossipOptions, MemberView, PersistedMember, StateChange, Tick,
};
pub use membership::{MemberState, Membership};

use crate::bridge::PeerEvent;
use crate::ring::Ring;
use crate::wire::client::ClientReply;
use crate::wire::peer::MemberInfo;
use crate::NodeId;

/// The ring and reachability, sent to every subscriber on each change.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct MembershipChanged {
    /// The ring of every known member.
    pub ring: Arc<Ring>,
    /// Members this node can reach now (itself included).
    pub reachable: Arc<HashSet<NodeId>>,
}

/// Asks for the `status` reply.
#[derive(Message)]
#[rtype(result = "ClientReply")]
pub struct StatusQuery;

/// Adds a subscriber; it gets the current state at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MembershipChanged>);

/// Settings the status reply and the ring need.
#[derive(Clone, Debug)]
pub struct FailureDetectorOptions {
    /// Virtual nodes per unit of weight.
    pub vnodes_per_weight: u32,
    /// Where the membership is kept across restarts (`None`: not kept).
    pub members_file: Option<PathBuf>,
    /// Extra keys for `status` (N, R, W, storage, ...).
    pub status_extra: Vec<(String, rmpv::Value)>,
}

/// The actor.
pub struct FailureDetector {
    own: MemberInfo,
    membership: Membership,
    ring: Arc<Ring>,
    options: FailureDetectorOptions,
    subscribers: Vec<Recipient<MembershipChanged>>,
    span: tracing::Span,
}

impl FailureDetector {
    /// A detector that starts from `known` members (seeds' handshakes and
    /// the persisted list fill it in).
    pub fn new(own: MemberInfo, known: Vec<MemberInfo>, options: FailureDetectorOptions) -> Self {
        let membership = Membership::new(own.clone(), known);
        let ring = Arc::new(membership.ring(options.vnodes_per_weight));
        let span =
            tracing::info_span!("failure_detector", node = %own.id, actor = "failure_detector");
        Self {
            own,
            membership,
            ring,
            options,
            subscribers: Vec::new(),
            span,
        }
    }

    /// Reads the persisted member list (empty when there is none).
    pub fn load_members(path: &std::path::Path) -> Result<Vec<MemberInfo>, String> {
        match std::fs::read(path) {
            Ok(bytes) => rmp_serde::from_slice(&bytes)
                .map_err(|e| format!("{} is not a member list: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    fn persist(&self) {
        let Some(path) = &self.options.members_file else {
            return;
        };
        let bytes = match rmp_serde::to_vec_named(&self.membership.infos()) {
            Ok(b) => b,
            Err(e) => return warn!(error = %e, "could not encode the member list"),
        };
        // Write-then-rename so a crash leaves the old list or the new one.
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            warn!(error = %e, file = %path.display(), "could not persist the member list");
        }
    }

    fn changed(&mut self, ring_may_change: bool) {
        if ring_may_change {
            self.ring = Arc::new(self.membership.ring(self.options.vnodes_per_weight));
            self.persist();
        }
        let msg = MembershipChanged {
            ring: self.ring.clone(),
            reachable: Arc::new(self.membership.reachable().into_iter().collect()),
        };
        for s in &self.subscribers {
            s.do_send(msg.clone());
        }
    }
}

impl Actor for FailureDetector {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        info!(
            members = self.membership.infos().len(),
            ring_tokens = self.ring.token_count(),
            "failure detector started"
        );
    }
}

impl Handler<Subscribe> for FailureDetector {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        msg.0.do_send(MembershipChanged {
            ring: self.ring.clone(),
            reachable: Arc::new(self.membership.reachable().into_iter().collect()),
        });
        self.subscribers.push(msg.0);
    }
}

impl Handler<PeerEvent> for FailureDetector {
    type Result = ();

    fn handle(&mut self, event: PeerEvent, _ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        match event {
            PeerEvent::Reachable(member) => {
                let id = member.id.clone();
                let known_before = self.membership.infos().iter().any(|m| m == &member);
                if self.membership.record(member, Some(MemberState::Alive)) {
                    info!(peer = %id, state = "alive", reported_by = "bridge", "member state changed");
                    self.changed(!known_before);
                }
            }
            PeerEvent::Unreachable(id) => {
                if self.membership.mark_down(&id) {
                    info!(peer = %id, state = "down", reported_by = "bridge", "member state changed");
                    self.changed(false);
                }
            }
            PeerEvent::Introduced(member) => {
                let id = member.id.clone();
                let known_before = self.membership.infos().iter().any(|m| m == &member);
                if !known_before && self.membership.record(member, None) {
                    info!(peer = %id, reported_by = "handshake", "member joined the membership");
                    self.changed(true);
                }
            }
        }
    }
}

impl Handler<StatusQuery> for FailureDetector {
    type Result = MessageResult<StatusQuery>;

    fn handle(&mut self, _: StatusQuery, _ctx: &mut Self::Context) -> Self::Result {
        let mut extra = self.options.status_extra.clone();
        extra.push((
            "ring_tokens".into(),
            rmpv::Value::from(self.ring.token_count() as u64),
        ));
        MessageResult(ClientReply::Status {
            node: self.own.id.to_string(),
            members: self.membership.status(&self.ring),
            extra,
        })
    }
}
