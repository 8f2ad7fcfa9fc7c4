//! A `PeerSession` over an in-memory connection, driven by a dialler made
//! of the handshake's own functions: the deadline of a request that its
//! handler never answers.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_bytes::ByteBuf;
use tokio_util::codec::Framed;

use super::handshake::{self, Credentials};
use super::*;
use crate::wire::client::ErrorCode;
use crate::wire::peer::{Durable, RemoteError, ReplicaWrite};
use crate::wire::peer::{PeerFrame, PeerRpc, ReplicaRead, StoredObject};
use crate::wire::FrameCodec;

/// Serves every request type by never answering.
struct Stall;

impl Actor for Stall {
    type Context = Context<Self>;
}

impl<T: PeerRpc> Handler<Incoming<T>> for Stall {
    type Result = ResponseFuture<Result<T::Reply, RemoteError>>;

    fn handle(&mut self, _: Incoming<T>, _: &mut Self::Context) -> Self::Result {
        Box::pin(std::future::pending())
    }
}

/// Leaves every request to its actor.
struct Decline;

impl PeerDirect for Decline {
    fn replica_read(
        &self,
        _: &NodeId,
        _: &ReplicaRead,
    ) -> Option<Result<StoredObject, RemoteError>> {
        None
    }

    fn replica_write(
        &self,
        _: &NodeId,
        _: u64,
        request: ReplicaWrite,
    ) -> Result<LocalBoxFuture<'static, Result<Durable, RemoteError>>, ReplicaWrite> {
        Err(request)
    }
}

/// A member's credentials under the handshake tests' cluster secret.
fn credentials(id: &str, port: u16) -> Credentials {
    handshake::tests::credentials(id, port, handshake::tests::key(handshake::tests::SECRET))
}

fn read(timeout_ms: u64, id: u64) -> PeerFrame {
    PeerFrame::Request {
        id,
        trace: id,
        timeout_ms,
        body: ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        }
        .into_request(),
    }
}

/// The next response on `link`: its id and its error (a failure, not a
/// hang, if none comes).
async fn next(
    link: &mut Framed<tokio::io::DuplexStream, FrameCodec>,
    session: &mut handshake::Session,
) -> (u64, RemoteError) {
    let sealed = tokio::time::timeout(Duration::from_secs(10), link.next())
        .await
        .expect("a response")
        .unwrap()
        .unwrap();
    match PeerFrame::decode(session.open(&sealed).unwrap()).unwrap() {
        PeerFrame::Response { id, body } => (id, body.err().unwrap()),
        other => panic!("a {} frame", other.name()),
    }
}

/// A request its handler never answers is answered `Timeout` at its
/// deadline, and no longer counts against `peer_inflight_max` (here 1):
/// a second request while the first is served is refused, a third after
/// its deadline is served (and times out in turn).
#[actix_rt::test]
async fn a_request_not_answered_by_its_deadline_is_answered_timeout_and_freed() {
    let stall = Stall.start();
    let handlers = PeerHandlers {
        read: stall.clone().recipient(),
        direct: Rc::new(Decline),
        write: stall.clone().recipient(),
        hinted_write: stall.clone().recipient(),
        coordinate: stall.clone().recipient(),
        scan: stall.clone().recipient(),
        merkle_leaves: stall.clone().recipient(),
        merkle_nodes: stall.clone().recipient(),
        gossip: stall.clone().recipient(),
        list_keys: stall.clone().recipient(),
        reap_check: stall.clone().recipient(),
        reap_drop: stall.clone().recipient(),
    };
    let options = BridgeOptions {
        peer_inflight_max: 1,
        ..BridgeOptions::default()
    };
    let codec = FrameCodec::new(options.max_frame_bytes);
    // The bridge only hears of the session (a mailbox nobody reads).
    let bridge = Context::<Bridge>::new();
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let nonces: NonceRng = Rc::new(RefCell::new(SmallRng::seed_from_u64(7)));
    PeerSession::new(
        Box::new(theirs),
        Rc::new(credentials("n2", 7102)),
        nonces,
        handlers,
        bridge.address(),
        options,
        "127.0.0.1:7101".parse().unwrap(),
    )
    .start();

    // The dialler's side of the handshake.
    let dialler = credentials("n1", 7101);
    let mut link = Framed::new(ours, codec);
    let (waiting, hello) = handshake::hello(&dialler, [1; handshake::NONCE_BYTES]).unwrap();
    link.send(Bytes::from(hello)).await.unwrap();
    let challenge = link.next().await.unwrap().unwrap();
    let (welcoming, proof) = waiting.on_challenge(&dialler, &challenge).unwrap();
    link.send(Bytes::from(proof)).await.unwrap();
    let welcome = link.next().await.unwrap().unwrap();
    let (_, mut session) = welcoming.on_welcome(&dialler, &welcome).unwrap();

    let started = tokio::time::Instant::now();
    for frame in [read(100, 1), read(100, 2)] {
        let sealed = session.seal(frame.encode().unwrap()).unwrap();
        link.send(Bytes::from(sealed)).await.unwrap();
    }
    let (id, refused) = next(&mut link, &mut session).await;
    assert_eq!(
        (id, refused.code),
        (2, ErrorCode::Unavailable),
        "{refused:?}"
    );
    assert!(refused.message.contains("peer_inflight_max"));
    let (id, late) = next(&mut link, &mut session).await;
    assert_eq!((id, late.code), (1, ErrorCode::Timeout), "{late:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));

    let sealed = session.seal(read(10, 3).encode().unwrap()).unwrap();
    link.send(Bytes::from(sealed)).await.unwrap();
    let (id, late) = next(&mut link, &mut session).await;
    assert_eq!((id, late.code), (3, ErrorCode::Timeout), "{late:?}");
    drop(bridge);
}
