//! The seed inputs built from frames and objects: client requests and
//! responses, peer frames, version objects and contexts, gossip lists.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_bytes::ByteBuf;

use ringkv_actors::conflict_resolver::{ContextKey, Object, VersionLimits, VersionVector};
use ringkv_actors::failure_detector::{Gossip, GossipOptions, MemberState};
use ringkv_actors::wire::client::{
    encode_request, encode_response, ClientError, ClientOp, ClientReply, ClientRequest, ErrorCode,
    MemberStatus,
};
use ringkv_actors::wire::frame::encode_frame;
use ringkv_actors::wire::peer::{
    Coordinated, Durable, ForwardedWrite, GossipExchange, GossipReply, HintedWrite, LeafHashes,
    MerkleLeaves, PeerFrame, PeerRpc, Probe, Probed, RemoteError, ReplicaRead, ReplicaWrite,
    ScanPage, ScanRange, StoredObject, PEER_PROTOCOL_VERSION,
};

use super::{member, node, Result, Target};

/// Objects as the coordinators mint them: one write, a delete, concurrent
/// siblings, a write that resolves them, writes by version actors.
pub(super) fn objects() -> Result<Vec<(&'static str, Object)>> {
    let limits = VersionLimits::default();
    let blind = VersionVector::new();
    let (n1, n2) = (node("n1")?, node("n2")?);
    let actor = n1.version_actor(0x1a2b_3c4d);
    let one = Object::update(None, &blind, Some(b"apples".to_vec()), &n1, 1_000, &limits)?;
    let deleted = Object::update(Some(&one), one.context(), None, &n1, 2_000, &limits)?;
    let siblings = Object::update(
        Some(&one),
        &blind,
        Some(b"pears".to_vec()),
        &n2,
        3_000,
        &limits,
    )?;
    let resolved = Object::update(
        Some(&siblings),
        siblings.context(),
        Some(b"apples+pears".to_vec()),
        &n2,
        4_000,
        &limits,
    )?;
    let by_actor = Object::update(None, &blind, Some(vec![0; 64]), &actor, 5_000, &limits)?;
    let merged = by_actor.merge(&siblings);
    Ok(vec![
        ("one-write", one),
        ("deleted", deleted),
        ("siblings", siblings),
        ("resolved", resolved),
        ("version-actor", by_actor),
        ("merged", merged),
    ])
}

/// A gossip node's lists: alone, then knowing others in several states.
pub(super) fn gossip_messages() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut gossip = Gossip::new(
        member("n1", 1)?,
        Vec::new(),
        1_000,
        0,
        GossipOptions::default(),
    );
    let mut rng = SmallRng::seed_from_u64(7);
    let alone = gossip.tick(1_000, &mut rng).message;
    gossip.introduce(member("n2", 2)?, 1_000);
    gossip.introduce(member("n3", 3)?, 1_000);
    gossip.set_own_status(MemberState::Leaving, 2_000);
    let three = gossip.tick(20_000, &mut rng).message;
    Ok(vec![
        ("alone", rmp_serde::to_vec_named(&alone)?),
        ("three-members", rmp_serde::to_vec_named(&three)?),
    ])
}

pub(super) fn client_frames(target: &mut Target<'_>) -> Result<()> {
    let request = |id, op| {
        encode_frame(&encode_request(&ClientRequest {
            id,
            op,
            timeout_ms: (id % 2 == 0).then_some(500),
            consistency: None,
        }))
    };
    let key = b"cart:42".to_vec();
    let requests = [
        ("ping", ClientOp::Ping),
        ("status", ClientOp::Status),
        ("leave", ClientOp::Leave),
        ("forget", ClientOp::Forget { node: "n3".into() }),
        (
            "get",
            ClientOp::Get {
                key: key.clone(),
                r: Some(2),
                pr: Some(1),
            },
        ),
        (
            "put",
            ClientOp::Put {
                key: key.clone(),
                value: b"apples".to_vec(),
                context: Some(sealed(&key, &VersionVector::new())),
                w: Some(2),
                pw: None,
                ttl_ms: None,
            },
        ),
        (
            "delete",
            ClientOp::Delete {
                key: key.clone(),
                context: None,
                w: None,
                pw: Some(0),
            },
        ),
    ];
    let mut stream = Vec::new();
    for (id, (name, op)) in (1..).zip(requests) {
        let frame = request(id, op);
        target.write(&format!("request-{name}"), &frame)?;
        stream.extend_from_slice(&frame);
    }
    target.write("requests-pipelined", &stream)?;
    let responses = [
        ("pong", Ok(ClientReply::Pong { node: "n1".into() })),
        (
            "values",
            Ok(ClientReply::Values {
                values: vec![b"apples".to_vec(), b"pears".to_vec()],
                context: Some(vec![1, 0x90]),
            }),
        ),
        (
            "written",
            Ok(ClientReply::Written {
                context: vec![1, 0x90],
            }),
        ),
        (
            "status",
            Ok(ClientReply::Status {
                node: "n1".into(),
                members: vec![MemberStatus {
                    id: "n1".into(),
                    addr: "127.0.0.1:7101".into(),
                    client_addr: "127.0.0.1:7001".into(),
                    dc: "dc1".into(),
                    rack: "r1".into(),
                    state: "alive".into(),
                    ring_share: 0.5,
                    heartbeat_age_ms: 0,
                }],
                extra: vec![("n".into(), 3.into())],
            }),
        ),
        (
            "error",
            Err(ClientError::new(
                ErrorCode::Unavailable,
                "2 of 3 replicas down",
            )),
        ),
    ];
    for (id, (name, result)) in (100..).zip(responses) {
        target.write(
            &format!("response-{name}"),
            &encode_frame(&encode_response(id, &result)),
        )?;
    }
    // The edges of framing: an empty frame, a torn one, one over the limit.
    target.write("frame-empty", &encode_frame(b""))?;
    let torn = request(9, ClientOp::Ping);
    target.write("frame-torn", &torn[..torn.len() - 2])?;
    target.write("frame-too-large", &u32::MAX.to_be_bytes())?;
    Ok(())
}

pub(super) fn peer_frames(
    target: &mut Target<'_>,
    objects: &[(&str, Object)],
    gossip: &[(&str, Vec<u8>)],
) -> Result<()> {
    let object = ByteBuf::from(objects.first().map(|(_, o)| o.encode()).unwrap_or_default());
    let message = ByteBuf::from(gossip.last().map(|(_, m)| m.clone()).unwrap_or_default());
    let key = ByteBuf::from(b"\x00\x00\x00\x00\x00\x00\x00\x2acart:42".to_vec());
    let request = |id, body| PeerFrame::Request {
        id,
        trace: 1_000 + id,
        timeout_ms: 500,
        body,
    };
    let frames = vec![
        (
            "hello",
            PeerFrame::Hello {
                protocol: PEER_PROTOCOL_VERSION,
                cluster: "ringkv".into(),
                node: node("n1")?,
                nonce: ByteBuf::from(vec![1; 32]),
            },
        ),
        (
            "challenge",
            PeerFrame::Challenge {
                node: node("n2")?,
                nonce: ByteBuf::from(vec![2; 32]),
            },
        ),
        (
            "proof",
            PeerFrame::Proof {
                proof: ByteBuf::from(vec![3; 32]),
                member: member("n1", 1)?,
            },
        ),
        (
            "welcome",
            PeerFrame::Welcome {
                proof: ByteBuf::from(vec![4; 32]),
                member: member("n2", 2)?,
            },
        ),
        (
            "read",
            request(1, ReplicaRead { key: key.clone() }.into_request()),
        ),
        (
            "write",
            request(
                2,
                ReplicaWrite {
                    key: key.clone(),
                    object: object.clone(),
                }
                .into_request(),
            ),
        ),
        (
            "hinted-write",
            request(
                3,
                HintedWrite {
                    key: key.clone(),
                    object: object.clone(),
                    owner: node("n3")?,
                }
                .into_request(),
            ),
        ),
        (
            "coordinate",
            request(
                4,
                ForwardedWrite {
                    key: key.clone(),
                    value: Some(ByteBuf::from(b"apples".to_vec())),
                    context: None,
                    w: 2,
                    pw: 1,
                    supersede_local: false,
                    ttl_ms: None,
                    dc_quorums: vec![("dc1".into(), 2)],
                }
                .into_request(),
            ),
        ),
        (
            "scan",
            request(
                5,
                ScanRange {
                    start: key.clone(),
                    end: None,
                    limit: 100,
                    bytes_max: 1 << 20,
                }
                .into_request(),
            ),
        ),
        (
            "merkle-leaves",
            request(
                6,
                MerkleLeaves {
                    with: node("n2")?,
                    leaves: 64,
                }
                .into_request(),
            ),
        ),
        (
            "gossip",
            request(
                7,
                GossipExchange {
                    message: message.clone(),
                }
                .into_request(),
            ),
        ),
        ("probe", request(8, Probe.into_request())),
        (
            "reply-read",
            reply(
                1,
                ReplicaRead::reply_into(StoredObject {
                    object: Some(object.clone()),
                }),
            ),
        ),
        ("reply-write", reply(2, ReplicaWrite::reply_into(Durable))),
        (
            "reply-coordinate",
            reply(
                4,
                ForwardedWrite::reply_into(Coordinated {
                    context: ByteBuf::from(vec![1, 0x90]),
                }),
            ),
        ),
        (
            "reply-scan",
            reply(
                5,
                ScanRange::reply_into(ScanPage {
                    entries: vec![(key.clone(), object.clone())],
                    more: true,
                    resume: None,
                }),
            ),
        ),
        (
            "reply-merkle-leaves",
            reply(
                6,
                MerkleLeaves::reply_into(LeafHashes {
                    hashes: vec![1, u64::MAX, 0xdead_beef],
                }),
            ),
        ),
        (
            "reply-gossip",
            reply(7, GossipExchange::reply_into(GossipReply { message })),
        ),
        ("reply-probe", reply(8, Probe::reply_into(Probed))),
        (
            "reply-error",
            PeerFrame::Response {
                id: 9,
                body: Err(RemoteError::new(ErrorCode::Timeout, "replica too slow")),
            },
        ),
    ];
    let mut stream = Vec::new();
    for (name, frame) in frames {
        let framed = encode_frame(&frame.encode()?);
        target.write(&format!("frame-{name}"), &framed)?;
        stream.extend_from_slice(&framed);
    }
    target.write("frames-all", &stream)?;
    Ok(())
}

fn reply(id: u64, reply: ringkv_actors::wire::peer::PeerReply) -> PeerFrame {
    PeerFrame::Response {
        id,
        body: Ok(reply),
    }
}

pub(super) fn versioning(target: &mut Target<'_>, objects: &[(&str, Object)]) -> Result<()> {
    for (name, object) in objects {
        target.write(&format!("object-{name}"), &object.encode())?;
        target.write(&format!("context-{name}"), &sealed(b"k", object.context()))?;
    }
    target.write("context-empty", &sealed(b"k", &VersionVector::new()))?;
    Ok(())
}

/// A client context for `clock` on `key`, sealed as a cluster without a
/// secret seals it (the fuzz target opens contexts for key `k` so).
fn sealed(key: &[u8], clock: &VersionVector) -> Vec<u8> {
    ContextKey::from_cluster_name("ringkv").seal(key, clock)
}
