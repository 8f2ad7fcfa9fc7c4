//! Repair on an operator's request (`ringkv admin repair`): an
//! anti-entropy exchange with every peer now (or one), and the read repair
//! of one key across its replicas, reporting each replica's version.
//! Also answers what the admin `ring` and `members` ops need of the ring.

use std::sync::Arc;

use actix::prelude::*;
use tracing::{info, warn, Instrument};

use super::{anti_entropy, Repair};
use crate::conflict_resolver::{is_stale, Object};
use crate::replicas::is_tombstone;
use crate::ring::Ring;
use crate::NodeId;

/// Asks for a ring and the replication factor: the ring reads use, or
/// (`write`) the ring writes go to, joining members included.
#[derive(Message)]
#[rtype(result = "(Arc<Ring>, usize)")]
pub struct RingQuery {
    /// The write ring instead of the read ring.
    pub write: bool,
}

/// Runs an anti-entropy exchange now with `peer`, or with every healthy
/// peer one after another.
#[derive(Message)]
#[rtype(result = "Vec<Exchange>")]
pub struct RepairNow {
    /// One peer (`None`: all of them).
    pub peer: Option<NodeId>,
}

/// One exchange's outcome.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The peer.
    pub peer: NodeId,
    /// What it compared and moved, or why it failed.
    pub result: Result<anti_entropy::SyncStats, String>,
}

/// Read-repairs one key across its replicas now.
#[derive(Message)]
#[rtype(result = "Vec<KeyReplica>")]
pub struct RepairKey {
    /// The key.
    pub key: Vec<u8>,
}

/// One replica of a repaired key, as it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReplica {
    /// The replica.
    pub node: NodeId,
    /// Its version before the repair: `None` when it held nothing.
    pub version: Option<VersionSummary>,
    /// Whether it was stale and was written the merged version.
    pub repaired: bool,
    /// Why it could not be read or written.
    pub error: Option<String>,
}

/// What an operator needs to see of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSummary {
    /// Versions held (siblings, deletes included).
    pub siblings: usize,
    /// Of those, values (not deletes).
    pub live: usize,
    /// Every version is a delete.
    pub tombstone: bool,
    /// The causal clock, `node:counter` entries sorted by node.
    pub clock: String,
}

impl VersionSummary {
    /// The summary of `object`.
    pub fn of(object: &Object) -> Self {
        let mut entries: Vec<String> = object
            .context()
            .iter()
            .map(|(node, entry)| format!("{node}:{}", entry.counter))
            .collect();
        entries.sort();
        Self {
            siblings: object.siblings().len(),
            live: object.live_values().len(),
            tombstone: is_tombstone(object),
            clock: entries.join(","),
        }
    }
}

impl Handler<RingQuery> for Repair {
    type Result = MessageResult<RingQuery>;

    fn handle(&mut self, msg: RingQuery, _ctx: &mut Self::Context) -> Self::Result {
        let ring = if msg.write {
            self.write_ring.clone()
        } else {
            self.read_ring.clone()
        };
        MessageResult((ring, self.options.replicas_per_key))
    }
}

impl Handler<RepairNow> for Repair {
    type Result = ResponseFuture<Vec<Exchange>>;

    fn handle(&mut self, msg: RepairNow, _ctx: &mut Self::Context) -> Self::Result {
        let mut partners: Vec<NodeId> = self
            .read_ring
            .members()
            .iter()
            .map(|m| m.id.clone())
            .filter(|id| *id != self.replicas.own)
            .filter(|id| msg.peer.as_ref().is_none_or(|p| p == id))
            .collect();
        partners.sort();
        let sync = self.sync_params();
        let healthy = self.healthy.clone();
        Box::pin(
            async move {
                let mut done = Vec::with_capacity(partners.len());
                for peer in partners {
                    let result = if healthy.contains(&peer) {
                        sync.with(&peer).await.map_err(|e| e.to_string())
                    } else {
                        Err("not healthy (suspect or down): skipped".to_string())
                    };
                    match &result {
                        Ok(stats) => info!(peer = %peer, leaves = stats.leaves,
                            differing = stats.differing, keys = stats.pulled.keys,
                            repaired = stats.pulled.changed, bytes = stats.pulled.bytes,
                            "anti-entropy on request: exchange done"),
                        Err(error) => warn!(peer = %peer, %error,
                            "anti-entropy on request: exchange failed"),
                    }
                    done.push(Exchange { peer, result });
                }
                done
            }
            .instrument(self.span.clone()),
        )
    }
}

impl Handler<RepairKey> for Repair {
    type Result = ResponseFuture<Vec<KeyReplica>>;

    fn handle(&mut self, msg: RepairKey, _ctx: &mut Self::Context) -> Self::Result {
        let owners = self
            .read_ring
            .preference_list(&msg.key, self.options.replicas_per_key);
        let replicas = self.replicas.clone();
        let timeout_ms = self.options.repair_timeout_ms;
        let key = msg.key;
        Box::pin(
            async move {
                let mut found = Vec::with_capacity(owners.len());
                for node in &owners {
                    let read = replicas.read(node, &key, 0, timeout_ms).await;
                    let object = match read {
                        Ok(Some(bytes)) => Object::decode(&bytes)
                            .map(Some)
                            .map_err(|e| format!("stored object does not decode: {e}")),
                        Ok(None) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    };
                    found.push(object);
                }
                let merged = found
                    .iter()
                    .filter_map(|o| o.as_ref().ok().and_then(Option::as_ref))
                    .fold(None::<Object>, |acc, o| {
                        Some(acc.map_or_else(|| o.clone(), |a| a.merge(o)))
                    });
                let mut report = Vec::with_capacity(owners.len());
                for (node, object) in owners.into_iter().zip(found) {
                    let mut line = KeyReplica {
                        node: node.clone(),
                        version: None,
                        repaired: false,
                        error: None,
                    };
                    match object {
                        Err(error) => line.error = Some(error),
                        Ok(object) => {
                            line.version = object.as_ref().map(VersionSummary::of);
                            if let Some(merged) = &merged {
                                if is_stale(object.as_ref(), merged) {
                                    let written = replicas
                                        .write(&node, key.clone(), merged.encode(), 0, timeout_ms)
                                        .await;
                                    match written {
                                        Ok(()) => {
                                            replicas.metrics.read_repair();
                                            line.repaired = true;
                                        }
                                        Err(e) => line.error = Some(e.to_string()),
                                    }
                                }
                            }
                        }
                    }
                    report.push(line);
                }
                info!(
                    replicas = report.len(),
                    repaired = report.iter().filter(|r| r.repaired).count(),
                    "read repair of one key on request"
                );
                report
            }
            .instrument(self.span.clone()),
        )
    }
}
