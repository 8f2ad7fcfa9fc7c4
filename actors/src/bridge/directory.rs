//! The `LinkDirectory`: each link's connection and sending side, as the
//! Bridge publishes them, so that callers reach a peer without the
//! Bridge's mailbox (and, while the link is up, without the connection's:
//! `outbound.rs`).

use std::sync::Arc;

use actix::prelude::*;
use fnv::FnvHashMap;

use super::connection::{ArmTimer, PeerCall, PeerConnection};
use super::outbound::{Outbound, Sent};
use super::{Link, PeerError};
use crate::wire::peer::PeerRpc;
use crate::NodeId;

/// Each linked node's connection actor and its sending side, as the
/// Bridge last published its links: lets a caller on any thread send a
/// request straight onto an up link ([`LinkDirectory::call`]; see
/// `outbound.rs`), or else to its connection, instead of through the
/// Bridge's mailbox. The Bridge rewrites it whenever a link is added,
/// replaced or dropped; a call that finds no connection, or one that has
/// stopped, gets what the Bridge would answer for a node without a live
/// link ([`PeerError::Unreachable`]).
#[derive(Clone, Default)]
pub struct LinkDirectory(Arc<std::sync::RwLock<FnvHashMap<NodeId, Linked>>>);

/// A published link: its connection, and its sending side once it was up.
type Linked = (Addr<PeerConnection>, Option<Outbound>);

impl LinkDirectory {
    /// The connection to `node`, if the Bridge has a link to it (what the
    /// tests check; calls send under the lock instead, see [`Self::call`]).
    #[cfg(test)]
    pub fn connection(&self, node: &NodeId) -> Option<Addr<PeerConnection>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .map(|(connection, _)| connection.clone())
    }

    /// Calls `node` with a typed request through its connection; the
    /// request back when no link to it is known here (ask the Bridge).
    pub fn call<T: PeerRpc>(
        &self,
        node: &NodeId,
        request: T,
        trace: u64,
        timeout_ms: u64,
    ) -> Result<impl std::future::Future<Output = Result<T::Reply, PeerError>>, T> {
        // Sent under the read lock rather than from a clone of the
        // address: an actix `Addr` clone allocates.
        let links = self.0.read().unwrap_or_else(|e| e.into_inner());
        match links.get(node) {
            Some((connection, outbound)) => Ok(call_on(
                connection,
                outbound.as_ref(),
                request,
                trace,
                timeout_ms,
            )),
            None => Err(request),
        }
    }

    pub(super) fn set(&self, links: &FnvHashMap<NodeId, Link>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.clear();
        map.extend(links.iter().map(|(id, link)| {
            let linked = (link.connection.clone(), link.outbound.clone());
            (id.clone(), linked)
        }));
    }
}

/// Sends a typed request on a link: straight onto it while it is up
/// (`outbound`), else to its connection; its typed reply (a connection
/// that has stopped is `Unreachable`).
pub(super) fn call_on<T: PeerRpc>(
    connection: &Addr<PeerConnection>,
    outbound: Option<&Outbound>,
    request: T,
    trace: u64,
    timeout_ms: u64,
) -> impl std::future::Future<Output = Result<T::Reply, PeerError>> {
    let call = PeerCall {
        body: request.into_request(),
        trace,
        timeout_ms,
    };
    let call = match outbound {
        Some(outbound) => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            match outbound.send(call, reply) {
                Ok(Sent { arm }) => {
                    if arm {
                        connection.do_send(ArmTimer);
                    }
                    Ok(answer)
                }
                Err(refused) => Err(connection.send(refused.0)),
            }
        }
        None => Err(connection.send(call)),
    };
    async move {
        let reply = match call {
            Ok(answer) => answer.await.unwrap_or(Err(PeerError::Disconnected)),
            Err(request) => request.await.unwrap_or(Err(PeerError::Unreachable)),
        }?;
        T::reply_from(reply).map_err(|other| PeerError::UnexpectedReply {
            asked: T::NAME,
            got: other.name(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bridge::{seal, LinkState};
    use crate::wire::peer::StoredObject;
    use crate::wire::peer::{PeerFrame, ReplicaRead};
    use serde_bytes::ByteBuf;
    use std::net::SocketAddr;

    fn read() -> ReplicaRead {
        ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        }
    }

    /// A node the directory has no link to gets its request back (the
    /// caller asks the Bridge); a linked node's request goes to its
    /// connection, and a connection that is gone answers `Unreachable`,
    /// as the Bridge does for a node without a live link.
    #[actix_rt::test]
    async fn a_call_goes_to_the_published_connection_or_back_to_the_caller() {
        let (n2, n3) = (NodeId::new("n2").unwrap(), NodeId::new("n3").unwrap());
        let directory = LinkDirectory::default();
        assert!(directory.call(&n2, read(), 1, 100).is_err());

        let context = Context::<PeerConnection>::new();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut links = FnvHashMap::default();
        links.insert(
            n2.clone(),
            Link {
                addr,
                wanted: addr,
                connection: context.address(),
                outbound: None,
                state: LinkState::Up,
            },
        );
        directory.set(&links);
        assert!(directory.connection(&n2) == Some(context.address()));
        assert!(directory.call(&n3, read(), 1, 100).is_err());
        let call = directory.call(&n2, read(), 1, 100).ok().unwrap();
        drop(context);
        assert!(matches!(call.await, Err(PeerError::Unreachable)));

        directory.set(&FnvHashMap::default());
        assert!(directory.connection(&n2).is_none());
    }

    /// While the link's sending side is up, a call goes onto the link
    /// itself (no message to the connection, whose mailbox is gone here)
    /// and its typed answer comes back by id; once it is down, the call
    /// goes to the connection again.
    #[actix_rt::test]
    async fn a_call_on_an_up_link_skips_the_connection() {
        let n2 = NodeId::new("n2").unwrap();
        let key = [5u8; seal::SESSION_KEY_BYTES];
        let outbound = Outbound::new(1 << 20);
        let (frames, mut queue) = tokio::sync::mpsc::unbounded_channel();
        outbound.up(frames, seal::FrameSealer::new(&key));
        let mut opener = seal::FrameOpener::new(&key);

        let context = Context::<PeerConnection>::new();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let link = |outbound: &Outbound| Link {
            addr,
            wanted: addr,
            connection: context.address(),
            outbound: Some(outbound.clone()),
            state: LinkState::Up,
        };
        let directory = LinkDirectory::default();
        directory.set(&FnvHashMap::from_iter([(n2.clone(), link(&outbound))]));
        let call = directory.call(&n2, read(), 1, 100).ok().unwrap();
        let sealed = queue.try_recv().unwrap();
        let PeerFrame::Request { id, body, .. } =
            PeerFrame::decode(opener.open(&sealed).unwrap()).unwrap()
        else {
            panic!("not a request");
        };
        assert_eq!(body.name(), "Read");
        let object = Some(serde_bytes::ByteBuf::from(b"v".to_vec()));
        let reply = StoredObject {
            object: object.clone(),
        };
        assert!(outbound.answer(id, Ok(ReplicaRead::reply_into(reply))));
        assert_eq!(call.await.unwrap().object, object);

        // Down: to the connection, which is gone.
        assert!(outbound.down().is_empty());
        let call = directory.call(&n2, read(), 1, 100).ok().unwrap();
        drop(context);
        assert!(matches!(call.await, Err(PeerError::Unreachable)));
        assert!(queue.try_recv().is_err());
    }
}
