//! A raw peer of the test's own over real TCP: it speaks the peer
//! handshake (`ringkv_actors::bridge::handshake`) as a node would, or as an
//! attacker would (without the secret, with a wrong one, replaying frames
//! it recorded), and records every frame it sent; [`RawPeer`] then sends
//! sealed requests, for tests of what a node does with what a peer says.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use rand::RngCore;
use ringkv_actors::bridge::handshake::{self, Credentials, PeerKey, Session, NONCE_BYTES};
use ringkv_actors::secret::ClusterSecret;
use ringkv_actors::wire::frame::encode_frame;
use ringkv_actors::wire::peer::{MemberInfo, PeerFrame, PeerReply, PeerRequest, RemoteError};
use ringkv_actors::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read waits before the test calls the node hung (a guard
/// against a hang, not a timed assertion: nodes answer in milliseconds).
const READ_WAIT: Duration = Duration::from_secs(20);

/// A member description as a node sends it in its `Proof`.
pub fn member(id: &str, peer: SocketAddr, client: SocketAddr) -> MemberInfo {
    MemberInfo {
        id: NodeId::new(id).unwrap(),
        peer_addr: peer.to_string(),
        client_addr: client.to_string(),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight: 1,
    }
}

/// The handshake key of a node whose secret file holds `secret`.
pub fn key_of(secret: &[u8]) -> PeerKey {
    PeerKey::new(Some(&ClusterSecret::from_bytes(secret).unwrap()))
}

/// Credentials of cluster `ringkv` (the nodes' default).
pub fn credentials(own: MemberInfo, key: PeerKey) -> Credentials {
    Credentials {
        own,
        cluster: "ringkv".into(),
        key,
    }
}

/// One frame body; `None` once the node closed the connection.
pub async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(READ_WAIT, async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    })
    .await
    .unwrap_or_else(|_| panic!("the node neither answered nor closed within {READ_WAIT:?}"))
}

/// Writes one frame body (a write to a closed connection is not an error
/// here: the next read says it is closed).
pub async fn write_frame(stream: &mut TcpStream, body: &[u8]) {
    let _ = stream.write_all(&encode_frame(body)).await;
}

/// How a dialled handshake went.
pub struct Dialled {
    /// The frames we sent, in order (`Hello`, then `Proof` if we got that
    /// far), as an eavesdropper would record them.
    pub sent: Vec<Vec<u8>>,
    /// Every frame the node sent us.
    pub received: Vec<Vec<u8>>,
    /// The node and the session on success; why not otherwise.
    pub outcome: Result<(MemberInfo, Session), String>,
}

/// Runs the dialler's side of the handshake on `stream`, with a fresh
/// random nonce.
pub async fn dial(stream: &mut TcpStream, credentials: &Credentials) -> Dialled {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut nonce);
    let (waiting, hello) = handshake::hello(credentials, nonce).unwrap();
    let mut dialled = Dialled {
        sent: vec![hello.clone()],
        received: Vec::new(),
        outcome: Err(String::new()),
    };
    write_frame(stream, &hello).await;
    let Some(challenge) = read_frame(stream).await else {
        dialled.outcome = Err("closed before the challenge".into());
        return dialled;
    };
    dialled.received.push(challenge.clone());
    let (welcoming, proof) = match waiting.on_challenge(credentials, &challenge) {
        Ok(next) => next,
        Err(e) => {
            dialled.outcome = Err(format!("bad challenge: {e}"));
            return dialled;
        }
    };
    dialled.sent.push(proof.clone());
    write_frame(stream, &proof).await;
    let Some(welcome) = read_frame(stream).await else {
        dialled.outcome = Err("closed after our proof: refused".into());
        return dialled;
    };
    dialled.received.push(welcome.clone());
    dialled.outcome = welcoming
        .on_welcome(credentials, &welcome)
        .map_err(|e| format!("bad welcome: {e}"));
    dialled
}

/// Connects to `addr` and dials the handshake there.
pub async fn connect_and_dial(addr: SocketAddr, credentials: &Credentials) -> Dialled {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    dial(&mut stream, credentials).await
}

/// Replays recorded frames on a new connection to `addr`, one at a time,
/// reading what the node answers to each: the answers, and whether the
/// node was still open after the last frame (`true`: it answered it).
pub async fn replay(addr: SocketAddr, frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut answers = Vec::new();
    for frame in frames {
        write_frame(&mut stream, frame).await;
        match read_frame(&mut stream).await {
            Some(answer) => answers.push(answer),
            None => return (answers, false),
        }
    }
    (answers, true)
}

/// A member description with `id` and `weight`, at an address nobody
/// listens on.
pub fn member_weighing(id: &str, weight: u32) -> MemberInfo {
    MemberInfo {
        id: NodeId::new(id).unwrap(),
        peer_addr: super::free_addr().to_string(),
        client_addr: super::free_addr().to_string(),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight,
    }
}

/// An open peer connection whose handshake the node accepted.
pub struct RawPeer {
    conn: TcpStream,
    session: Session,
    next_id: u64,
}

/// What the node answered to the handshake.
pub enum Handshake {
    /// Welcome: requests may follow.
    Welcome(Box<RawPeer>),
    /// Refused (a closed connection), with what the raw peer saw.
    Refused(String),
}

impl RawPeer {
    /// Dials `addr` and runs the handshake as `member` of cluster
    /// `cluster`, without a secret (the harness's nodes run in protected
    /// mode, on loopback).
    pub async fn connect(addr: SocketAddr, cluster: &str, member: MemberInfo) -> Handshake {
        let credentials = Credentials {
            own: member,
            cluster: cluster.into(),
            key: PeerKey::new(None),
        };
        let mut conn = TcpStream::connect(addr).await.unwrap();
        match dial(&mut conn, &credentials).await.outcome {
            Ok((_, session)) => Handshake::Welcome(Box::new(RawPeer {
                conn,
                session,
                next_id: 1,
            })),
            Err(why) => Handshake::Refused(why),
        }
    }

    /// Sends one sealed request and waits for its response (`None`: the
    /// node closed the connection).
    pub async fn call(&mut self, body: PeerRequest) -> Option<Result<PeerReply, RemoteError>> {
        let id = self.next_id;
        self.next_id += 1;
        let request = PeerFrame::Request {
            id,
            trace: id,
            timeout_ms: 5_000,
            body,
        };
        let sealed = self.session.seal(request.encode().unwrap()).unwrap();
        write_frame(&mut self.conn, &sealed).await;
        let answer = read_frame(&mut self.conn).await?;
        let opened = self
            .session
            .open(&answer)
            .expect("the node's frame is sealed");
        match PeerFrame::decode(opened).unwrap() {
            PeerFrame::Response { id: got, body } if got == id => Some(body),
            other => panic!("unexpected frame for request {id}: {other:?}"),
        }
    }
}
