//! What a node does with what a peer says (issue 12, "Validation of
//! everything a peer says"), on real processes: a raw peer that completed
//! the handshake sends a Hello with weight 2^32-1, gossip forging `left`
//! (and generation u64::MAX) for members it is not, and peer requests for
//! ranges it does not share. Each is refused or ignored, every node keeps
//! serving, and the membership is unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::peer::{member_weighing as member, Handshake, RawPeer};
use common::Cluster;
use ringkv_actors::failure_detector::gossip::{
    GossipEntry, MemberRecord, FORGOTTEN_STATUS_VERSION, GOSSIP_MESSAGE_VERSION,
};
use ringkv_actors::failure_detector::{GossipMessage, MemberState};
use ringkv_actors::ring::VNODES_PER_WEIGHT_DEFAULT;
use ringkv_actors::wire::peer::{
    GossipExchange, ListKeys, MemberInfo, MerkleLeaves, MerkleNodes, PeerReply, PeerRequest,
    ReapCheck, ReapDrop, ReplicaRead, ReplicaWrite, ScanRange,
};
use ringkv_actors::NodeId;
use serde_bytes::ByteBuf;

const NODES: usize = 3;

/// Every node lists exactly n1..n3 as `alive` (plus, at most, the raw
/// peers as never-heard `suspect`s: a handshake alone places nobody), and
/// its ring holds the three members' tokens only.
async fn membership_unchanged(cluster: &Cluster) {
    for node in &cluster.nodes {
        let status = node.client().await.status().await.unwrap();
        for id in ["n1", "n2", "n3"] {
            let m = status.members.iter().find(|m| m.id == id);
            assert_eq!(
                m.map(|m| m.state.as_str()),
                Some("alive"),
                "{} sees {id} as {m:?}",
                node.id
            );
        }
        for m in status.members.iter().filter(|m| !m.id.starts_with('n')) {
            assert_eq!(m.state, "suspect", "{} lists {m:?}", node.id);
            assert_eq!(m.ring_share.unwrap_or(0.0), 0.0, "{} placed {m:?}", node.id);
        }
        let tokens = node.status_field("ring_tokens").await.unwrap();
        assert_eq!(
            tokens.as_u64(),
            Some(NODES as u64 * u64::from(VNODES_PER_WEIGHT_DEFAULT)),
            "{}",
            node.id
        );
    }
}

/// The cluster still reads and writes through every node.
async fn every_node_serves(cluster: &Cluster) {
    for node in &cluster.nodes {
        let client = node.client().await;
        let key = format!("after-{}", node.id);
        client.put(key.as_bytes(), b"ok", None).await.unwrap();
        assert_eq!(
            client.get(b"k").await.unwrap().values,
            vec![b"v".to_vec()],
            "{} lost k",
            node.id
        );
    }
}

fn gossip(entries: Vec<(MemberInfo, MemberRecord)>) -> PeerRequest {
    let message = GossipMessage {
        version: GOSSIP_MESSAGE_VERSION,
        members: entries
            .into_iter()
            .map(|(info, record)| GossipEntry {
                info,
                record,
                stale: false,
            })
            .collect(),
    };
    PeerRequest::Gossip(GossipExchange {
        message: ByteBuf::from(rmp_serde::to_vec_named(&message).unwrap()),
    })
}

/// The description a node gives of member `id` in `status`.
async fn info_of(cluster: &Cluster, id: &str) -> MemberInfo {
    let status = cluster.nodes[0].client().await.status().await.unwrap();
    let m = status.members.into_iter().find(|m| m.id == id).unwrap();
    MemberInfo {
        id: NodeId::new(id).unwrap(),
        peer_addr: m.addr,
        client_addr: m.client_addr.unwrap(),
        dc: m.dc,
        rack: m.rack.unwrap(),
        weight: 1,
    }
}

fn refusal(answer: Option<Result<PeerReply, ringkv_actors::wire::peer::RemoteError>>) -> String {
    match answer {
        Some(Err(e)) => {
            assert!(e.untouched, "a refusal is made before acting: {e:?}");
            e.message
        }
        // A closed connection refuses too.
        None => "closed".into(),
        Some(Ok(reply)) => panic!("served: {reply:?}"),
    }
}

#[tokio::test]
async fn what_a_peer_says_is_refused_or_ignored_and_the_cluster_keeps_serving() {
    let cluster = Cluster::start(NODES, &[]).await;
    let client = cluster.nodes[0].client().await;
    client.put(b"k", b"v", None).await.unwrap();

    // 1. A Hello with weight 2^32-1: refused at the handshake, or accepted
    // there and then refused everything; it never reaches a ring.
    for node in &cluster.nodes {
        match RawPeer::connect(node.peer, "ringkv", member("heavy", u32::MAX)).await {
            Handshake::Refused(_) => {}
            Handshake::Welcome(mut heavy) => {
                let why = refusal(heavy.call(gossip(Vec::new())).await);
                assert!(why.contains("weight"), "{why}");
            }
        }
    }

    // 2. Gossip from a valid raw peer `x`, forging records about n2 and n3:
    // generation u64::MAX and `left` (out of bounds), and a newer
    // generation within bounds, `left` and even the `forget` mark (the
    // origin rule: only n2 and n3 change their own status). Sent to every
    // node; each merges it before it answers.
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (n2, n3) = (info_of(&cluster, "n2").await, info_of(&cluster, "n3").await);
    let left = |generation, status_version| MemberRecord {
        generation,
        heartbeat: 0,
        status: MemberState::Left,
        status_version,
    };
    let forged = vec![
        (n2.clone(), left(u64::MAX, 1)),
        (n3.clone(), left(wall_ms + 60_000, 1)),
        (n2, left(wall_ms + 60_000, FORGOTTEN_STATUS_VERSION)),
    ];
    let mut peers = Vec::new();
    for node in &cluster.nodes {
        let Handshake::Welcome(mut x) = RawPeer::connect(node.peer, "ringkv", member("x", 1)).await
        else {
            panic!("a valid Hello is welcome");
        };
        match x.call(gossip(forged.clone())).await {
            Some(Ok(PeerReply::Gossip(_))) => {}
            other => panic!("{}: gossip not answered: {other:?}", node.id),
        }
        peers.push(x);
    }
    membership_unchanged(&cluster).await;
    assert!(
        cluster.nodes[0].log_contains("ignoring an invalid gossip entry"),
        "the out-of-bounds record is logged"
    );

    // 3. Requests for ranges `x` does not share (it has no place on the
    // ring): a Write that would overwrite k, a Read, a Scan of the whole
    // store, a listing of every key, Merkle trees for another pair, a
    // tombstone reaper's check and drop. All refused, logged.
    for (x, node) in peers.iter_mut().zip(&cluster.nodes) {
        let write = PeerRequest::Write(ReplicaWrite {
            key: ByteBuf::from(b"k".to_vec()),
            object: ByteBuf::from(vec![0x90]),
        });
        let read = PeerRequest::Read(ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        });
        let scan = PeerRequest::Scan(ScanRange {
            start: ByteBuf::new(),
            end: None,
            limit: 1024,
            bytes_max: 1 << 20,
        });
        let list = PeerRequest::ListKeys(ListKeys {
            start: ByteBuf::new(),
            end_token: u64::MAX,
            limit: 1000,
        });
        // Tombstone reaping: a check would tell it what every key holds,
        // a drop would remove tombstones and raise the counter floor.
        let reap_check = PeerRequest::ReapCheck(ReapCheck {
            keys: vec![ByteBuf::from(b"k".to_vec())],
        });
        let reap_drop = PeerRequest::ReapDrop(ReapDrop {
            tombstones: vec![(ByteBuf::from(b"k".to_vec()), ByteBuf::from(vec![0x90]))],
        });
        for request in [write, read, scan, list, reap_check, reap_drop] {
            let name = request.name();
            let why = refusal(x.call(request).await);
            assert!(why.contains("not a member"), "{}: {name}: {why}", node.id);
        }
        let tree = PeerRequest::MerkleLeaves(MerkleLeaves {
            with: NodeId::new("n2").unwrap(),
            leaves: 64,
        });
        let why = refusal(x.call(tree).await);
        assert!(why.contains("Merkle tree"), "{}: {why}", node.id);
        // The incremental tree's walk: for another pair, and for its own.
        let nodes = |with: &str| {
            PeerRequest::MerkleNodes(MerkleNodes {
                with: NodeId::new(with).unwrap(),
                level: 0,
                indices: vec![0],
            })
        };
        let why = refusal(x.call(nodes("n2")).await);
        assert!(why.contains("Merkle tree"), "{}: {why}", node.id);
        let why = refusal(x.call(nodes("x")).await);
        assert!(why.contains("not a member"), "{}: {why}", node.id);
        assert!(node.log_contains("refusing a peer request"), "{}", node.id);
    }

    // 4. Nothing changed, and every node serves.
    membership_unchanged(&cluster).await;
    every_node_serves(&cluster).await;
}
