//! Peer authentication and protected mode against real node processes: a
//! raw TCP peer of the test's own (tests/common/peer.rs) tries the peer
//! port without the secret, with a wrong one, and by replaying what it
//! recorded of a genuine handshake; and a node without a secret asked to
//! listen on a non-loopback address. See SECURITY.md.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::peer::{self, Dialled};
use common::Cluster;
use ringkv_actors::bridge::handshake::PeerKey;
use ringkv_actors::wire::peer::{PeerFrame, PeerRequest, ReplicaRead};
use tokio::net::TcpStream;

/// The cluster's secret (64 hex digits, as the README makes one).
const SECRET: &str = "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5079b2d4f6a8c0e2f4a6b8d0e2";
/// Another secret of the same length.
const WRONG_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000001";
/// What `peer::dial` answers when the node closed after our `Proof`.
const REFUSED: &str = "closed after our proof: refused";

fn write_secret(dir: &Path) -> String {
    let path = dir.join("cluster-secret");
    std::fs::write(&path, SECRET).unwrap();
    path.display().to_string()
}

/// Every node's view of the membership: (observer, member id, peer address).
async fn membership(cluster: &Cluster) -> BTreeSet<(String, String, String)> {
    let mut seen = BTreeSet::new();
    for node in &cluster.nodes {
        let status = node.client().await.status().await.unwrap();
        assert!(
            !format!("{:?}", status.raw).contains(SECRET),
            "status shows the secret"
        );
        for m in status.members {
            seen.insert((node.id.clone(), m.id, m.addr));
        }
    }
    seen
}

/// A peer request for key `k` (to be sealed).
fn read_request(id: u64) -> Vec<u8> {
    PeerFrame::Request {
        id,
        trace: id,
        timeout_ms: 1_000,
        body: PeerRequest::Read(ReplicaRead {
            key: serde_bytes::ByteBuf::from(b"k".to_vec()),
        }),
    }
    .encode()
    .unwrap()
}

#[tokio::test]
async fn peers_without_the_secret_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let cluster = Cluster::start(3, &["--cluster-secret-file", &secret]).await;
    let client = cluster.nodes[0].client().await;
    client.put(b"k", b"v", None).await.unwrap();
    let before = membership(&cluster).await;
    assert_eq!(before.len(), 9, "{before:?}");

    let intruder = peer::member("intruder", common::free_addr(), common::free_addr());
    let n2 = &cluster.nodes[1];
    let as_n2 = peer::member("n2", n2.peer, n2.client);
    let mut accepted = 0;
    let mut refused = 0;
    let mut count = |dialled: &Dialled| match &dialled.outcome {
        Ok(_) => accepted += 1,
        Err(e) => {
            assert_eq!(e, REFUSED);
            refused += 1;
        }
    };
    for node in &cluster.nodes {
        // Without the secret (protected mode's public key), as a stranger
        // and as a member it impersonates; and with a wrong secret.
        for key in [
            PeerKey::ProtectedMode,
            peer::key_of(WRONG_SECRET.as_bytes()),
        ] {
            for who in [&intruder, &as_n2] {
                let credentials = peer::credentials(who.clone(), key.clone());
                let mut stream = TcpStream::connect(node.peer).await.unwrap();
                let local = stream.local_addr().unwrap();
                let dialled = peer::dial(&mut stream, &credentials).await;
                count(&dialled);
                // The Challenge names no cluster; the refusal is logged with
                // the caller's address (before the connection closed).
                assert!(!dialled.received[0].windows(6).any(|w| w == b"ringkv"));
                assert!(
                    node.log_has_line(&["refusing peer", &local.to_string()]),
                    "{}",
                    common::log_excerpt(node)
                );
            }
        }
    }
    assert!(cluster.nodes[0].log_contains("its proof does not verify"));

    // A genuine handshake, as a wire tap between n2 and n1 records it: the
    // test holds the secret and plays n2 (with n2's own address, so the
    // membership is the same), sends one request and reads its answer.
    let n1 = &cluster.nodes[0];
    let genuine = peer::credentials(as_n2.clone(), peer::key_of(SECRET.as_bytes()));
    let mut stream = TcpStream::connect(n1.peer).await.unwrap();
    let mut captured = peer::dial(&mut stream, &genuine).await;
    let (_, session) = captured.outcome.as_mut().unwrap();
    let request = session.seal(read_request(1)).unwrap();
    peer::write_frame(&mut stream, &request).await;
    let answer = peer::read_frame(&mut stream).await.unwrap();
    match PeerFrame::decode(session.open(&answer).unwrap()).unwrap() {
        PeerFrame::Response { id: 1, body } => assert!(body.is_ok(), "{body:?}"),
        other => panic!("expected the response to request 1, got {other:?}"),
    }
    // Inside the live session, the same request frame again (a replay)
    // closes the connection.
    peer::write_frame(&mut stream, &request).await;
    assert_eq!(peer::read_frame(&mut stream).await, None);
    drop(stream);
    assert!(n1.log_contains("fails its MAC check"));
    // The secret itself never crossed the wire.
    for frame in captured.sent.iter().chain(&captured.received) {
        assert!(!frame.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }

    // The recorded Hello, Proof and request replayed, to n1 and to the
    // others: each node answers the Hello with a fresh Challenge, and the
    // recorded Proof does not verify against it.
    let mut transcript = captured.sent.clone();
    transcript.push(request);
    for node in &cluster.nodes {
        let (answers, open) = peer::replay(node.peer, &transcript).await;
        assert_eq!(answers.len(), 1, "only the Challenge is answered");
        assert_ne!(answers[0], captured.received[0], "a fresh nonce each time");
        assert!(!open, "a replayed handshake was accepted by {}", node.id);
        refused += 1;
    }

    assert_eq!(accepted, 0, "an intruder was accepted");
    assert_eq!(refused, 3 * 4 + 3);
    // Nothing changed: every node sees the same members at the same
    // addresses, and every node serves.
    assert_eq!(membership(&cluster).await, before);
    for node in &cluster.nodes {
        let client = node.client().await;
        assert_eq!(client.get(b"k").await.unwrap().values, vec![b"v".to_vec()]);
        client
            .put(node.id.as_bytes(), b"still here", None)
            .await
            .unwrap();
    }
}

/// Protected mode: no secret, a non-loopback `--listen`: the node does not
/// start, and says which flag it needs.
#[test]
fn without_a_secret_a_non_loopback_listen_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_addr().port();
    let output = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["node", "--id", "n1"])
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .args(["--advertise-addr", &format!("127.0.0.1:{port}")])
        .args(["--client-listen", &common::free_addr().to_string()])
        .args(["--data-dir", &dir.path().join("n1").display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("--cluster-secret-file") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
    // (That the same flags pass with a secret is src/config_tests.rs's:
    // this test starts no node on every interface.)
    assert!(stderr.contains("protected mode"), "{stderr}");
}
