//! Membership news, shared vocabulary: what the failure detector publishes
//! and the replicator, repair and the bridge consume. It sits below all
//! of them (it depends only on `ring`, `wire` and `node_id`), so none of
//! them imports the failure detector to hear about the cluster.

use fnv::FnvHashSet;
use std::sync::Arc;

use actix::prelude::*;

use crate::ring::Ring;
use crate::wire::peer::MemberInfo;
use crate::NodeId;

/// The rings, reachability and peers, sent to every subscriber on each change.
#[derive(Message, Clone, Default)]
#[rtype(result = "()")]
pub struct MembershipChanged {
    /// Owners for reads (no joining or left members).
    pub read_ring: Arc<Ring>,
    /// Owners for writes (no leaving or left members).
    pub write_ring: Arc<Ring>,
    /// Members worth sending requests to (itself included).
    pub reachable: Arc<FnvHashSet<NodeId>>,
    /// Members nobody suspects (itself included).
    pub healthy: Arc<FnvHashSet<NodeId>>,
    /// Members to keep connections to.
    pub peers: Arc<Vec<MemberInfo>>,
    /// This node knows enough of the cluster to coordinate (see
    /// `failure_detector::bootstrap`); until then requests wait.
    pub ready: bool,
}
