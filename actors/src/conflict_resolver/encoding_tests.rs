//! Golden bytes and refusals for the object and context encodings.

#![allow(clippy::unwrap_used)]

use super::test_support::{dot, node};
use super::{ClockEntry, Object, Sibling, VersionError, VersionVector, FORMAT_VERSION};

/// Clock `{a: 2 @ 1000 ms, b: 1 @ 5 ms}`; siblings `(a, 2) = "hi"` written
/// at 1000 ms and `(b, 1)` a tombstone written at 5 ms.
fn golden_object() -> Object {
    let mut clock = VersionVector::new();
    clock.insert(
        node("a"),
        ClockEntry {
            counter: 2,
            updated_ms: 1000,
        },
    );
    clock.insert(
        node("b"),
        ClockEntry {
            counter: 1,
            updated_ms: 5,
        },
    );
    let siblings = vec![
        Sibling {
            dot: dot("a", 2),
            value: Some(b"hi".to_vec()),
            written_ms: 1000,
        },
        Sibling {
            dot: dot("b", 1),
            value: None,
            written_ms: 5,
        },
    ];
    Object::from_parts(clock, siblings).unwrap()
}

#[rustfmt::skip]
const GOLDEN_CONTEXT: [u8; 14] = [
    0x01,                                   // format version 1
    0x92,                                   // array of 2 entries
    0x93, 0xa1, b'a', 0x02, 0xcd, 0x03, 0xe8, // ["a", 2, 1000]
    0x93, 0xa1, b'b', 0x01, 0x05,           // ["b", 1, 5]
];

#[rustfmt::skip]
const GOLDEN_OBJECT: [u8; 33] = [
    0x01,                                   // format version 1
    0x92,                                   // [clock, siblings]
    0x92,                                   // clock: 2 entries
    0x93, 0xa1, b'a', 0x02, 0xcd, 0x03, 0xe8, // ["a", 2, 1000]
    0x93, 0xa1, b'b', 0x01, 0x05,           // ["b", 1, 5]
    0x92,                                   // siblings: 2
    0x94, 0xa1, b'a', 0x02, 0xc4, 0x02, b'h', b'i', 0xcd, 0x03, 0xe8, // ["a", 2, bin "hi", 1000]
    0x94, 0xa1, b'b', 0x01, 0xc0, 0x05,     // ["b", 1, nil, 5]
];

#[test]
fn golden_context_bytes() {
    assert_eq!(golden_object().context().encode_context(), GOLDEN_CONTEXT);
    assert_eq!(
        &VersionVector::decode_context(&GOLDEN_CONTEXT).unwrap(),
        golden_object().context()
    );
}

#[test]
fn golden_object_bytes() {
    assert_eq!(golden_object().encode(), GOLDEN_OBJECT);
    assert_eq!(Object::decode(&GOLDEN_OBJECT).unwrap(), golden_object());
}

/// An object body with tombstone siblings, written by hand so that it can
/// break the invariant.
fn raw(clock: &[(&str, u64, u64)], siblings: &[(&str, u64, u64)]) -> Vec<u8> {
    let siblings: Vec<_> = siblings
        .iter()
        .map(|&(n, c, w)| (n, c, None::<u8>, w))
        .collect();
    let mut bytes = vec![FORMAT_VERSION];
    bytes.extend(rmp_serde::to_vec(&(clock, siblings)).unwrap());
    bytes
}

fn refused(bytes: &[u8]) -> String {
    match Object::decode(bytes) {
        Err(VersionError::BadEncoding { reason }) => reason,
        other => panic!("expected BadEncoding, got {other:?}"),
    }
}

#[test]
fn decode_accepts_the_raw_helper_form() {
    let bytes = raw(&[("a", 1, 0)], &[("a", 1, 0)]);
    assert_eq!(
        Object::decode(&bytes).unwrap().siblings()[0].dot,
        dot("a", 1)
    );
}

#[test]
fn decode_refuses_broken_invariants() {
    assert!(refused(&raw(&[("a", 1, 0)], &[("a", 2, 0)])).contains("not covered"));
    assert!(refused(&raw(&[("a", 2, 0)], &[("a", 2, 0), ("a", 1, 0)])).contains("sorted"));
    assert!(refused(&raw(&[("a", 2, 0)], &[("a", 1, 0), ("a", 1, 0)])).contains("sorted"));
    assert!(refused(&raw(&[("b", 1, 0), ("a", 1, 0)], &[])).contains("sorted"));
    assert!(refused(&raw(&[("a", 1, 0), ("a", 1, 0)], &[])).contains("sorted"));
    assert!(refused(&raw(&[("a", 1, 0)], &[("a", 0, 0)])).contains("counter 0"));
    assert!(refused(&raw(&[("a", 0, 0)], &[])).contains("counter 0"));
    assert!(refused(&raw(&[("a b", 1, 0)], &[])).contains("node id"));
    assert!(refused(&raw(&[("", 1, 0)], &[])).contains("node id"));
}

#[test]
fn decode_refuses_framing_errors() {
    assert!(refused(&[]).contains("empty"));
    refused(&[FORMAT_VERSION]);
    let mut trailing = GOLDEN_OBJECT.to_vec();
    trailing.push(0x00);
    assert!(refused(&trailing).contains("trailing"));
    for cut in 1..GOLDEN_OBJECT.len() {
        refused(&GOLDEN_OBJECT[..cut]);
    }
    let mut future = GOLDEN_OBJECT.to_vec();
    future[0] = 2;
    assert!(matches!(
        Object::decode(&future),
        Err(VersionError::UnsupportedVersion { got: 2 })
    ));
    assert!(matches!(
        VersionVector::decode_context(&[0xff]),
        Err(VersionError::UnsupportedVersion { got: 0xff })
    ));
    assert!(VersionVector::decode_context(&GOLDEN_OBJECT).is_err());
    assert!(Object::decode(&GOLDEN_CONTEXT).is_err());
}
