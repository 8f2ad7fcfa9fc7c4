//! Each client op's call to the actor that serves it
//! ([`ClientSession::dispatch`]): the replicator for reads, writes and
//! listings, the failure detector, storage and repair for the admin ops.

use actix::prelude::*;

use super::ClientSession;
use crate::client_api::admin;
use crate::failure_detector::{Forget, Leave, StatusQuery};
use crate::metrics::Mailbox;
use crate::repair::admin::{RepairKey, RepairNow, RingQuery};
use crate::replicator::{CoordinateGet, CoordinateList, CoordinateWrite};
use crate::storage::HintCountsQuery;
use crate::wire::client::{
    ClientError, ClientOp, ClientReply, ClientRequest, ErrorCode, LIST_LIMIT_DEFAULT,
};
use crate::NodeId;

impl ClientSession {
    /// The call that serves `request` (`trace`: its id in the logs), as a
    /// future of its reply; `auth` never comes here (`on_auth`).
    pub(super) fn dispatch(
        &self,
        request: ClientRequest,
        trace: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ClientReply, ClientError>>>>
    {
        let gone = |e: MailboxError| {
            ClientError::new(ErrorCode::Internal, format!("node actor unavailable: {e}"))
        };
        let timeout_ms = request.timeout_ms;
        let consistency = request.consistency;
        match request.op {
            // Answered in `on_auth`, before dispatch; never granted here.
            ClientOp::Auth { .. } => Box::pin(async move {
                Err(ClientError::new(
                    ErrorCode::Internal,
                    "`auth` reached the dispatcher (a bug): not granted",
                ))
            }),
            ClientOp::Ping => {
                let node = self.node.to_string();
                Box::pin(async move { Ok(ClientReply::Pong { node }) })
            }
            ClientOp::Status => {
                let call = self.failure_detector.send(StatusQuery);
                let hints = self.storage.send(HintCountsQuery);
                Box::pin(async move {
                    let mut status = call.await.map_err(gone)?;
                    // Writes this node holds as a stand-in, not yet handed
                    // to the replica they are for.
                    if let (ClientReply::Status { extra, .. }, Ok(hints)) =
                        (&mut status, hints.await)
                    {
                        let count: u64 = hints.iter().map(|h| h.1).sum();
                        let bytes: u64 = hints.iter().map(|h| h.2).sum();
                        extra.push(("hints_pending".into(), rmpv::Value::from(count)));
                        extra.push(("hints_pending_bytes".into(), rmpv::Value::from(bytes)));
                    }
                    Ok(status)
                })
            }
            ClientOp::Leave => {
                let call = self.failure_detector.send(Leave);
                let node = self.node.to_string();
                Box::pin(async move {
                    call.await.map_err(gone)??;
                    Ok(ClientReply::Pong { node })
                })
            }
            ClientOp::Forget { node } => {
                let node = match NodeId::new(node) {
                    Ok(node) => node,
                    Err(e) => {
                        let error = ClientError::new(ErrorCode::BadRequest, format!("`node`: {e}"));
                        return Box::pin(async move { Err(error) });
                    }
                };
                let call = self.failure_detector.send(Forget { node });
                let own = self.node.to_string();
                Box::pin(async move {
                    call.await.map_err(gone)??;
                    Ok(ClientReply::Pong { node: own })
                })
            }
            ClientOp::Members => {
                let status = self.failure_detector.send(StatusQuery);
                let ring = self.repair.send(RingQuery { write: true });
                let hints = self.storage.send(HintCountsQuery);
                let (own, load) = (self.node.clone(), self.options.metrics.load_bytes());
                Box::pin(async move {
                    let ClientReply::Status { members, .. } = status.await.map_err(gone)? else {
                        return Err(ClientError::new(
                            ErrorCode::Internal,
                            "the failure detector answered status with another reply",
                        ));
                    };
                    let (ring, _) = ring.await.map_err(gone)?;
                    let hints = hints.await.map_err(gone)?;
                    Ok(admin::members(&own, &members, &ring, &hints, load))
                })
            }
            ClientOp::Ring => {
                let ring = self.repair.send(RingQuery { write: false });
                let own = self.node.clone();
                Box::pin(async move {
                    let (ring, n) = ring.await.map_err(gone)?;
                    Ok(admin::ring(&own, &ring, n))
                })
            }
            ClientOp::Repair { key: Some(key), .. } => {
                let call = self.repair.send(RepairKey { key });
                let own = self.node.clone();
                Box::pin(async move {
                    let replicas = call.await.map_err(gone)?;
                    Ok(admin::key_replicas(&own, &replicas))
                })
            }
            ClientOp::Repair { peer, key: None } => {
                let peer = match peer.map(NodeId::new).transpose() {
                    Ok(peer) => peer,
                    Err(e) => {
                        let error = ClientError::new(ErrorCode::BadRequest, format!("`peer`: {e}"));
                        return Box::pin(async move { Err(error) });
                    }
                };
                let call = self.repair.send(RepairNow { peer });
                let own = self.node.clone();
                Box::pin(async move {
                    let done = call.await.map_err(gone)?;
                    Ok(admin::exchanges(&own, &done))
                })
            }
            ClientOp::Get { key, r, pr } => {
                self.options.metrics.mailbox_sent(Mailbox::Replicator);
                let call = self.replicator.send(CoordinateGet {
                    key,
                    r,
                    pr,
                    consistency,
                    timeout_ms,
                    trace,
                    last_writer_wins: false,
                    with_context: true,
                });
                Box::pin(async move {
                    let (values, context) = call.await.map_err(gone)??;
                    Ok(ClientReply::Values { values, context })
                })
            }
            ClientOp::List { cursor, limit } => {
                let call = self.replicator.send(CoordinateList {
                    cursor,
                    limit: limit.unwrap_or(LIST_LIMIT_DEFAULT),
                    timeout_ms,
                    trace,
                    key_bytes_max: self.options.limits.max_key_bytes,
                });
                Box::pin(async move {
                    let page = call.await.map_err(gone)??;
                    Ok(ClientReply::Keys {
                        keys: page.keys,
                        cursor: page.cursor,
                    })
                })
            }
            ClientOp::Put {
                key,
                value,
                context,
                w,
                pw,
                ttl_ms,
            } => self.write(CoordinateWrite {
                key,
                value: Some(value),
                context,
                supersede_local: false,
                ttl_ms,
                w,
                pw,
                consistency,
                dc_quorums: Vec::new(),
                timeout_ms,
                trace,
                with_context: true,
            }),
            ClientOp::Delete {
                key,
                context,
                w,
                pw,
            } => self.write(CoordinateWrite {
                key,
                value: None,
                context,
                supersede_local: false,
                ttl_ms: None,
                w,
                pw,
                consistency,
                dc_quorums: Vec::new(),
                timeout_ms,
                trace,
                with_context: true,
            }),
        }
    }

    /// A put or delete, coordinated by the replicator.
    fn write(
        &self,
        write: CoordinateWrite,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ClientReply, ClientError>>>>
    {
        self.options.metrics.mailbox_sent(Mailbox::Replicator);
        let call = self.replicator.send(write);
        Box::pin(async move {
            let context = call.await.map_err(|e| {
                ClientError::new(ErrorCode::Internal, format!("replicator unavailable: {e}"))
            })??;
            Ok(ClientReply::Written { context })
        })
    }
}
