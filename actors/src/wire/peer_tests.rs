//! Tests of the node-to-node protocol (`peer.rs`).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::node_id::NODE_ID_BYTES_MAX;
use crate::wire::client::ErrorCode;

fn member() -> MemberInfo {
    MemberInfo {
        id: NodeId::new("n1").unwrap(),
        peer_addr: "127.0.0.1:7101".into(),
        client_addr: "127.0.0.1:7001".into(),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight: 1,
    }
}

#[test]
fn frames_round_trip() {
    let frames = vec![
        PeerFrame::Hello {
            protocol: PEER_PROTOCOL_VERSION,
            cluster: "c".into(),
            node: member().id,
            nonce: ByteBuf::from(vec![1; 32]),
        },
        PeerFrame::Challenge {
            node: member().id,
            nonce: ByteBuf::from(vec![2; 32]),
        },
        PeerFrame::Proof {
            proof: ByteBuf::from(vec![3; 32]),
            member: member(),
        },
        PeerFrame::Welcome {
            proof: ByteBuf::from(vec![4; 32]),
            member: member(),
        },
        PeerFrame::Request {
            id: 1,
            trace: 2,
            timeout_ms: 3,
            body: ReplicaWrite {
                key: ByteBuf::from(b"k".to_vec()),
                object: ByteBuf::from(vec![1, 2, 3]),
            }
            .into_request(),
        },
        PeerFrame::Response {
            id: 1,
            body: Err(RemoteError::new(ErrorCode::Timeout, "m")),
        },
        PeerFrame::Response {
            id: 2,
            body: Ok(ReplicaRead::reply_into(StoredObject { object: None })),
        },
        PeerFrame::Response {
            id: 3,
            body: Ok(ReplicaWrite::reply_into(Durable)),
        },
        PeerFrame::Request {
            id: 4,
            trace: 5,
            timeout_ms: 6,
            body: ListKeys {
                start: ByteBuf::from(vec![0; 8]),
                end_token: u64::MAX,
                limit: 1000,
            }
            .into_request(),
        },
        PeerFrame::Response {
            id: 4,
            body: Ok(ListKeys::reply_into(KeyPage {
                keys: vec![ByteBuf::from(b"k".to_vec())],
                stopped_after: Some(ByteBuf::from(b"k".to_vec())),
            })),
        },
    ];
    for frame in frames {
        assert_eq!(PeerFrame::decode(&frame.encode().unwrap()).unwrap(), frame);
    }
}

#[test]
fn a_reply_is_only_taken_by_the_request_it_answers() {
    let durable = ReplicaWrite::reply_into(Durable);
    assert_eq!(ReplicaWrite::reply_from(durable.clone()), Ok(Durable));
    // Same reply type, another request: still refused.
    let refused = HintedWrite::reply_from(durable).unwrap_err();
    assert_eq!(refused.name(), "Write");
    assert!(ReplicaRead::reply_from(ScanRange::reply_into(ScanPage {
        entries: Vec::new(),
        more: false,
        resume: None,
    }))
    .is_err());
}

#[test]
fn an_unknown_error_code_reads_as_internal() {
    #[derive(Serialize)]
    struct Newer<'a> {
        code: &'a str,
        message: &'a str,
    }
    let bytes = rmp_serde::to_vec_named(&Newer {
        code: "from_the_future",
        message: "m",
    })
    .unwrap();
    let e: RemoteError = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(e.code, ErrorCode::Internal);
    for code in ErrorCode::ALL {
        let bytes = rmp_serde::to_vec_named(&RemoteError::new(code, "")).unwrap();
        let back: RemoteError = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.code, code);
    }
}

/// Pins the wire format: a change here is a new
/// `PEER_PROTOCOL_VERSION`, never a silent edit.
#[test]
fn golden_request_frame() {
    let frame = PeerFrame::Request {
        id: 7,
        trace: 9,
        timeout_ms: 100,
        body: ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        }
        .into_request(),
    };
    let expected: &[u8] = &[
        0x81, 0xa7, b'R', b'e', b'q', b'u', b'e', b's', b't', 0x84, 0xa2, b'i', b'd', 0x07, 0xa5,
        b't', b'r', b'a', b'c', b'e', 0x09, 0xaa, b't', b'i', b'm', b'e', b'o', b'u', b't', b'_',
        b'm', b's', 0x64, 0xa4, b'b', b'o', b'd', b'y', 0x81, 0xa4, b'R', b'e', b'a', b'd', 0x81,
        0xa3, b'k', b'e', b'y', 0xc4, 0x01, b'k',
    ];
    assert_eq!(frame.encode().unwrap(), expected);
}

#[test]
fn a_member_within_the_limits_is_valid() {
    assert_eq!(member().validate(), Ok(()));
    let heaviest = MemberInfo {
        weight: NODE_WEIGHT_MAX,
        ..member()
    };
    assert_eq!(heaviest.validate(), Ok(()));
}

#[test]
fn a_member_outside_the_limits_is_refused() {
    for weight in [0, NODE_WEIGHT_MAX + 1, u32::MAX] {
        let m = MemberInfo { weight, ..member() };
        assert_eq!(m.validate(), Err(InvalidMember::Weight(weight)));
    }
    // Ids come off the wire unchecked: a long or unprintable one.
    for id in ["x".repeat(NODE_ID_BYTES_MAX + 1), "a\nb".into(), "".into()] {
        let forged: NodeId = rmp_serde::from_slice(&rmp_serde::to_vec(&id).unwrap()).unwrap();
        let m = MemberInfo {
            id: forged,
            ..member()
        };
        assert!(matches!(m.validate(), Err(InvalidMember::Id(_))), "{id:?}");
    }
    let long = "1".repeat(ADDRESS_BYTES_MAX + 1);
    for m in [
        MemberInfo {
            peer_addr: long.clone(),
            ..member()
        },
        MemberInfo {
            client_addr: String::new(),
            ..member()
        },
        MemberInfo {
            dc: "d c".into(),
            ..member()
        },
        MemberInfo {
            rack: "r".repeat(LABEL_BYTES_MAX + 1),
            ..member()
        },
    ] {
        assert!(
            matches!(m.validate(), Err(InvalidMember::Field { .. })),
            "{m:?}"
        );
    }
}

#[test]
fn garbage_never_panics() {
    for body in [
        &[][..],
        &[0xc1],
        &[0x81, 0xa5, b'H'],
        &[0xdd, 0xff, 0xff, 0xff, 0xff],
    ] {
        assert!(PeerFrame::decode(body).is_err());
    }
}
