//! A raw peer: a TCP client speaking the node-to-node protocol by hand
//! (handshake, then `Request` frames), for tests of what a node does with
//! what a peer says. The handshake lives in [`RawPeer::connect`] alone, so
//! a change to it (authentication) is made in one place.

use std::net::SocketAddr;
use std::time::Duration;

use ringkv_actors::wire::frame::encode_frame;
use ringkv_actors::wire::peer::{
    MemberInfo, PeerFrame, PeerReply, PeerRequest, RemoteError, PEER_PROTOCOL_VERSION,
};
use ringkv_actors::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a raw peer waits for one frame before the test fails.
const FRAME_WAIT: Duration = Duration::from_secs(10);

/// A member description with `id` and `weight`, at an address nobody
/// listens on.
pub fn member(id: &str, weight: u32) -> MemberInfo {
    MemberInfo {
        id: NodeId::new(id).unwrap(),
        peer_addr: super::free_addr().to_string(),
        client_addr: super::free_addr().to_string(),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight,
    }
}

/// An open peer connection whose handshake the node answered.
pub struct RawPeer {
    conn: TcpStream,
    next_id: u64,
}

/// What the node answered to a Hello.
pub enum Handshake {
    /// `Welcome`: requests may follow.
    Welcome(RawPeer),
    /// `Refused`, with the reason.
    Refused(String),
}

impl RawPeer {
    /// Dials `addr` and says Hello as `member` of cluster `cluster`.
    pub async fn connect(addr: SocketAddr, cluster: &str, member: MemberInfo) -> Handshake {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let hello = PeerFrame::Hello {
            protocol: PEER_PROTOCOL_VERSION,
            cluster: cluster.into(),
            member,
        };
        conn.write_all(&encode_frame(&hello.encode().unwrap()))
            .await
            .unwrap();
        match read_frame(&mut conn).await {
            Some(PeerFrame::Welcome { .. }) => Handshake::Welcome(RawPeer { conn, next_id: 1 }),
            Some(PeerFrame::Refused { reason }) => Handshake::Refused(reason),
            Some(other) => panic!("unexpected answer to a Hello: {other:?}"),
            None => Handshake::Refused("closed without an answer".into()),
        }
    }

    /// Sends one request and waits for its response (`None`: the node
    /// closed the connection).
    pub async fn call(&mut self, body: PeerRequest) -> Option<Result<PeerReply, RemoteError>> {
        let id = self.next_id;
        self.next_id += 1;
        let request = PeerFrame::Request {
            id,
            trace: id,
            timeout_ms: 5_000,
            body,
        };
        self.conn
            .write_all(&encode_frame(&request.encode().unwrap()))
            .await
            .ok()?;
        match read_frame(&mut self.conn).await? {
            PeerFrame::Response { id: got, body } if got == id => Some(body),
            other => panic!("unexpected frame for request {id}: {other:?}"),
        }
    }
}

async fn read_frame(conn: &mut TcpStream) -> Option<PeerFrame> {
    let mut len = [0u8; 4];
    tokio::time::timeout(FRAME_WAIT, conn.read_exact(&mut len))
        .await
        .expect("the node answers within FRAME_WAIT")
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).await.ok()?;
    Some(PeerFrame::decode(&body).unwrap())
}
