//! The hand-written peer frames against serde: the same bytes out, the
//! same frames in, and nothing accepted that serde refuses.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_bytes::ByteBuf;

use super::super::peer::{
    Durable, HintedWrite, PeerFrame, PeerReply, PeerRequest, RemoteError, ReplicaRead,
    ReplicaWrite, StoredObject,
};
use super::{decode, encode};
use crate::wire::client::ErrorCode;
use crate::wire::msgpack::damage::{any_damage, every_damage};
use crate::NodeId;

/// Integers of every MessagePack width.
fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..200,
        200u64..70_000,
        70_000u64..5_000_000_000,
        any::<u64>()
    ]
}

/// Bytes of every `bin` length class.
fn bytes() -> impl Strategy<Value = ByteBuf> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 250..300),
        prop::collection::vec(any::<u8>(), 65_530..65_540),
    ]
    .prop_map(ByteBuf::from)
}

/// The four frames written by hand.
fn fast_frame() -> impl Strategy<Value = PeerFrame> {
    prop_oneof![
        (int(), int(), int(), bytes()).prop_map(|(id, trace, timeout_ms, key)| {
            PeerFrame::Request {
                id,
                trace,
                timeout_ms,
                body: PeerRequest::Read(ReplicaRead { key }),
            }
        }),
        (int(), int(), int(), bytes(), bytes()).prop_map(|(id, trace, timeout_ms, key, object)| {
            PeerFrame::Request {
                id,
                trace,
                timeout_ms,
                body: PeerRequest::Write(ReplicaWrite { key, object }),
            }
        }),
        int().prop_map(|id| PeerFrame::Response {
            id,
            body: Ok(PeerReply::Write(Durable)),
        }),
        (int(), prop::option::of(bytes())).prop_map(|(id, object)| PeerFrame::Response {
            id,
            body: Ok(PeerReply::Read(StoredObject { object })),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Written by hand, a frame is serde's bytes, and reads back by hand.
    #[test]
    fn fast_frames_are_serdes_bytes(frame in fast_frame()) {
        let bytes = encode(&frame).unwrap();
        prop_assert_eq!(&bytes, &frame.encode_serde().unwrap());
        prop_assert_eq!(decode(&bytes), Some(frame.clone()));
        prop_assert_eq!(PeerFrame::decode(&bytes).unwrap(), frame);
    }

    /// On damaged bytes (a byte changed, cut short, or added) the hand
    /// reader accepts nothing serde refuses, and reads what serde reads.
    #[test]
    fn the_fast_reader_accepts_no_more_than_serde(
        frame in fast_frame(),
        damage in any_damage(),
    ) {
        let bytes = damage.to(frame.encode().unwrap());
        if let Some(fast) = decode(&bytes) {
            prop_assert_eq!(Some(fast), PeerFrame::decode_serde(&bytes).ok());
        }
        prop_assert_eq!(
            PeerFrame::decode(&bytes).ok(),
            PeerFrame::decode_serde(&bytes).ok()
        );
    }
}

/// Other frames, and the hand-written ones in a form serde also reads
/// (fields in another order), go through serde unchanged.
#[test]
fn other_frames_and_forms_go_through_serde() {
    let hinted = PeerFrame::Request {
        id: 1,
        trace: 2,
        timeout_ms: 3,
        body: PeerRequest::HintedWrite(HintedWrite {
            key: ByteBuf::from(b"k".to_vec()),
            object: ByteBuf::from(b"o".to_vec()),
            owner: NodeId::new("n2").unwrap(),
        }),
    };
    let refused = PeerFrame::Response {
        id: 4,
        body: Err(RemoteError::new(ErrorCode::Unavailable, "no")),
    };
    for frame in [hinted, refused] {
        assert_eq!(encode(&frame), None);
        let bytes = frame.encode().unwrap();
        assert_eq!(decode(&bytes), None);
        assert_eq!(PeerFrame::decode(&bytes).unwrap(), frame);
    }
    // `timeout_ms` before `trace`: serde's map, not the hand-written order.
    let mut reordered = Vec::new();
    let frame = PeerFrame::Request {
        id: 7,
        trace: 8,
        timeout_ms: 9,
        body: PeerRequest::Read(ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        }),
    };
    reordered.extend_from_slice(&[0x81, 0xa7]);
    reordered.extend_from_slice(b"Request");
    reordered.push(0x84);
    for (name, value) in [("id", 7u8), ("timeout_ms", 9), ("trace", 8)] {
        reordered.push(0xa0 | name.len() as u8);
        reordered.extend_from_slice(name.as_bytes());
        reordered.push(value);
    }
    reordered.extend_from_slice(&[0xa4]);
    reordered.extend_from_slice(b"body");
    reordered.extend_from_slice(&[0x81, 0xa4]);
    reordered.extend_from_slice(b"Read");
    reordered.extend_from_slice(&[0x81, 0xa3]);
    reordered.extend_from_slice(b"key");
    reordered.extend_from_slice(&[0xc4, 0x01, b'k']);
    assert_eq!(decode(&reordered), None);
    assert_eq!(PeerFrame::decode(&reordered).unwrap(), frame);
}

/// Every single-byte change and every cut of a small frame of each kind:
/// the hand reader accepts nothing serde refuses, and reads what serde
/// reads.
#[test]
fn every_byte_changed_reads_as_serde_reads() {
    let key = || ByteBuf::from(b"key".to_vec());
    let frames = [
        PeerFrame::Request {
            id: 300,
            trace: 70_000,
            timeout_ms: 5,
            body: PeerRequest::Read(ReplicaRead { key: key() }),
        },
        PeerFrame::Request {
            id: 1,
            trace: 2,
            timeout_ms: 3,
            body: PeerRequest::Write(ReplicaWrite {
                key: key(),
                object: ByteBuf::from(vec![7; 20]),
            }),
        },
        PeerFrame::Response {
            id: 9,
            body: Ok(PeerReply::Write(Durable)),
        },
        PeerFrame::Response {
            id: 9,
            body: Ok(PeerReply::Read(StoredObject { object: None })),
        },
        PeerFrame::Response {
            id: 9,
            body: Ok(PeerReply::Read(StoredObject {
                object: Some(key()),
            })),
        },
    ];
    for frame in frames {
        let bytes = frame.encode().unwrap();
        for bytes in every_damage(&bytes) {
            if let Some(fast) = decode(&bytes) {
                assert_eq!(
                    Some(&fast),
                    PeerFrame::decode_serde(&bytes).ok().as_ref(),
                    "{bytes:02x?}"
                );
            }
        }
    }
}

/// A frame written here has room for the session's 16-byte tag
/// (`bridge::seal::TAG_BYTES`) even with the widest integers, so sealing
/// appends without growing the buffer.
#[test]
fn a_frame_has_room_for_its_tag() {
    let key = ByteBuf::from(vec![1; 40]);
    let widest = [
        PeerFrame::Request {
            id: u64::MAX,
            trace: u64::MAX,
            timeout_ms: u64::MAX,
            body: PeerRequest::Write(ReplicaWrite {
                key: key.clone(),
                object: ByteBuf::from(vec![2; 70_000]),
            }),
        },
        PeerFrame::Request {
            id: u64::MAX,
            trace: u64::MAX,
            timeout_ms: u64::MAX,
            body: PeerRequest::Read(ReplicaRead { key }),
        },
        PeerFrame::Response {
            id: u64::MAX,
            body: Ok(PeerReply::Read(StoredObject {
                object: Some(ByteBuf::from(vec![3; 70_000])),
            })),
        },
    ];
    for frame in widest {
        let bytes = encode(&frame).unwrap();
        assert!(bytes.capacity() >= bytes.len() + 16, "{}", frame.name());
    }
}
