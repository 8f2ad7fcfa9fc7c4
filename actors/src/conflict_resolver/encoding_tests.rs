//! Golden bytes and refusals for the object and context encodings.

#![allow(clippy::unwrap_used)]

use super::test_support::{dot, node};
use super::{
    ClockEntry, ContextKey, Object, Sibling, VersionError, VersionVector, CONTEXT_TAG_BYTES,
    FORMAT_VERSION, FORMAT_VERSION_EXPIRY,
};

/// Clock `{a: 2 @ 1000 ms, b: 1 @ 5 ms}`; siblings `(a, 2) = "hi"` written
/// at 1000 ms and `(b, 1)` a tombstone written at 5 ms.
pub(super) fn golden_object() -> Object {
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
            expires_ms: None,
        },
        Sibling {
            dot: dot("b", 1),
            value: None,
            written_ms: 5,
            expires_ms: None,
        },
    ];
    Object::from_parts(clock, siblings).unwrap()
}

/// A client context as ringkv handed them out before contexts were sealed
/// (format 1: the clock without a MAC); now refused.
#[rustfmt::skip]
const GOLDEN_UNSIGNED_CONTEXT: [u8; 14] = [
    0x01,                                   // format version 1
    0x92,                                   // array of 2 entries
    0x93, 0xa1, b'a', 0x02, 0xcd, 0x03, 0xe8, // ["a", 2, 1000]
    0x93, 0xa1, b'b', 0x01, 0x05,           // ["b", 1, 5]
];

/// The golden object's context for key `cart:42` in a cluster named
/// `ringkv` without a secret (format 2: the clock, then a 16-byte MAC),
/// computed independently with Python's `hmac`: the context key is
/// HMAC-SHA256("ringkv context mac v1, no cluster secret", "ringkv").
#[rustfmt::skip]
const GOLDEN_CONTEXT: [u8; 30] = [
    0x02,                                   // format version 2
    0x92,                                   // array of 2 entries
    0x93, 0xa1, b'a', 0x02, 0xcd, 0x03, 0xe8, // ["a", 2, 1000]
    0x93, 0xa1, b'b', 0x01, 0x05,           // ["b", 1, 5]
    // HMAC-SHA256(key, 7u64 BE ‖ "cart:42" ‖ the 14 bytes above)[..16]
    0x3b, 0x8e, 0x0b, 0xd0, 0x01, 0xfa, 0xb0, 0x81,
    0x4d, 0x38, 0x20, 0x06, 0xdd, 0xef, 0xef, 0xd4,
];

#[rustfmt::skip]
pub(super) const GOLDEN_OBJECT: [u8; 33] = [
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
    let contexts = ContextKey::from_cluster_name("ringkv");
    let sealed = contexts.seal(b"cart:42", golden_object().context());
    assert_eq!(sealed, GOLDEN_CONTEXT, "{sealed:02x?}");
    assert_eq!(
        &contexts.open(b"cart:42", &GOLDEN_CONTEXT).unwrap(),
        golden_object().context()
    );
    assert_eq!(
        GOLDEN_CONTEXT.len() - GOLDEN_UNSIGNED_CONTEXT.len(),
        CONTEXT_TAG_BYTES
    );
}

#[test]
fn contexts_from_before_the_mac_are_refused_with_a_clear_error() {
    let contexts = ContextKey::from_cluster_name("ringkv");
    let error = contexts
        .open(b"cart:42", &GOLDEN_UNSIGNED_CONTEXT)
        .unwrap_err();
    assert!(matches!(error, VersionError::UnsignedContext), "{error:?}");
    assert!(error.to_string().contains("read the key again"), "{error}");
}

#[test]
fn a_forged_clock_is_refused() {
    // A client that rewrites a counter to u64::MAX (to drop siblings it
    // never saw, or to exhaust the node's counter) cannot fix the MAC.
    let contexts = ContextKey::from_cluster_name("ringkv");
    let mut forged = GOLDEN_CONTEXT;
    forged[5..9].copy_from_slice(&[0xcf, 0xff, 0xff, 0xff]);
    assert!(matches!(
        contexts.open(b"cart:42", &forged),
        Err(VersionError::ContextMacMismatch)
    ));
    let mut clock = VersionVector::new();
    clock.insert(
        node("a"),
        ClockEntry {
            counter: u64::MAX,
            updated_ms: 0,
        },
    );
    let other_cluster = ContextKey::from_cluster_name("not ringkv").seal(b"cart:42", &clock);
    assert!(matches!(
        contexts.open(b"cart:42", &other_cluster),
        Err(VersionError::ContextMacMismatch)
    ));
}

#[test]
fn the_context_key_comes_from_the_secret_when_there_is_one() {
    use crate::secret::ClusterSecret;
    let secret = ClusterSecret::from_bytes(&[b's'; 32]).unwrap();
    let with_secret = ContextKey::from_secret(&secret);
    assert!(with_secret.is_authenticated());
    assert!(!ContextKey::from_cluster_name("ringkv").is_authenticated());
    let sealed = with_secret.seal(b"cart:42", golden_object().context());
    assert!(ContextKey::from_cluster_name("ringkv")
        .open(b"cart:42", &sealed)
        .is_err());
    let other = ClusterSecret::from_bytes(&[b't'; 32]).unwrap();
    assert!(ContextKey::from_secret(&other)
        .open(b"cart:42", &sealed)
        .is_err());
    assert_eq!(
        ContextKey::from_secret(&secret)
            .open(b"cart:42", &sealed)
            .unwrap(),
        *golden_object().context()
    );
    assert_eq!(
        format!("{with_secret:?}"),
        "ContextKey(from the cluster secret)"
    );
}

#[test]
fn golden_object_bytes() {
    assert_eq!(golden_object().encode(), GOLDEN_OBJECT);
    assert_eq!(Object::decode(&GOLDEN_OBJECT).unwrap(), golden_object());
}

/// An expiring value is written in format 2 (its siblings carry
/// `expires_ms`) and reads back whole; an object without one stays in
/// format 1, and a format-2 object without an expiry is refused (it would
/// not re-encode to the same bytes).
#[test]
fn an_expiry_takes_format_2_and_nothing_else_does() {
    let mut object = golden_object();
    object.siblings[0].expires_ms = Some(2_000);
    let bytes = object.encode();
    assert_eq!(bytes[0], FORMAT_VERSION_EXPIRY);
    assert_eq!(Object::decode(&bytes).unwrap(), object);
    let mut round = bytes.clone();
    round.truncate(bytes.len() - 1);
    assert!(Object::decode(&round).is_err());
    assert_eq!(golden_object().encode()[0], FORMAT_VERSION);
    let mut plain: Vec<u8> = vec![FORMAT_VERSION_EXPIRY];
    let siblings = vec![("a", 1u64, None::<u8>, 0u64, None::<u64>)];
    plain.extend(rmp_serde::to_vec(&(vec![("a", 1u64, 0u64)], siblings)).unwrap());
    assert!(refused(&plain).contains("without an expiry"));
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
    future[0] = 3;
    assert!(matches!(
        Object::decode(&future),
        Err(VersionError::UnsupportedVersion { got: 3 })
    ));
    let contexts = ContextKey::from_cluster_name("ringkv");
    assert!(matches!(
        contexts.open(b"k", &[0xff]),
        Err(VersionError::UnsupportedVersion { got: 0xff })
    ));
    assert!(contexts.open(b"k", &[]).is_err());
    assert!(contexts.open(b"k", &GOLDEN_OBJECT).is_err());
    assert!(Object::decode(&GOLDEN_CONTEXT).is_err());
    for cut in 0..GOLDEN_CONTEXT.len() {
        assert!(contexts.open(b"cart:42", &GOLDEN_CONTEXT[..cut]).is_err());
    }
}
