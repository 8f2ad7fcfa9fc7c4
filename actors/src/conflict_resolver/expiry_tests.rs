//! TTL: an expiring value reads as absent once expired, on every replica,
//! and no stale replica brings back what it replaced.

#![allow(clippy::unwrap_used)]

use super::test_support::node;
use super::{reconcile, Object, VersionLimits, VersionVector};

const LIMITS: VersionLimits = VersionLimits {
    vclock_entries_max: 50,
    vclock_prune_age_s: 86_400,
    siblings_max: 100,
};

fn put(
    local: Option<&Object>,
    ctx: &VersionVector,
    v: &str,
    expires_ms: Option<u64>,
    at: u64,
) -> Object {
    Object::update_expiring(
        local,
        ctx,
        Some(v.as_bytes().to_vec()),
        expires_ms,
        &node("a"),
        at,
        &LIMITS,
    )
    .unwrap()
}

#[test]
fn an_expired_value_reads_as_absent_but_keeps_its_place() {
    let old = put(None, &VersionVector::new(), "old", None, 10);
    let new = put(Some(&old), old.context(), "new", Some(1_000), 20);
    assert_eq!(new.live_values_at(999), [b"new".as_slice()]);
    assert!(new.live_values_at(1_000).is_empty());
    // A stale replica still holding "old": the merge keeps "new" (expired),
    // so "old" stays replaced.
    let merged = old.merge(&new);
    assert!(merged.live_values_at(1_000).is_empty());
    assert_eq!(merged.siblings().len(), 1);
    // And the reconciled read at that time is absent with a context, so a
    // later put replaces the expired version.
    let answers = [
        (node("a"), Some(old.encode())),
        (node("b"), Some(new.encode())),
    ];
    let r = reconcile(&answers, 1_000).unwrap();
    assert!(r.values.is_empty() && r.last_writer.is_none());
    assert!(r.context.is_some());
    let r = reconcile(&answers, 999).unwrap();
    assert_eq!(r.values, vec![b"new".to_vec()]);
    assert_eq!(r.last_writer, Some(b"new".to_vec()));
}

#[test]
fn a_tombstone_carries_no_expiry() {
    let v = put(None, &VersionVector::new(), "v", None, 1);
    let d = Object::update_expiring(Some(&v), v.context(), None, Some(5), &node("a"), 2, &LIMITS)
        .unwrap();
    assert!(!d.has_expiry());
}

#[test]
fn compaction_drops_expired_bytes_and_replicas_converge_on_that() {
    let v = put(None, &VersionVector::new(), "value", Some(100), 1);
    assert!(v.without_expired(99).is_none(), "nothing expired yet");
    let purged = v.without_expired(100).unwrap();
    assert!(purged.siblings()[0].value.is_none());
    assert!(purged.siblings()[0].is_purged());
    assert_eq!(purged.context(), v.context());
    // Either order, the purged copy wins, and the result round-trips.
    assert_eq!(v.merge(&purged), purged);
    assert_eq!(purged.merge(&v), purged);
    assert_eq!(Object::decode(&purged.encode()).unwrap(), purged);
    // A concurrent live sibling is kept.
    let other = Object::update(
        None,
        &VersionVector::new(),
        Some(b"w".to_vec()),
        &node("b"),
        3,
        &LIMITS,
    )
    .unwrap();
    let both = v.merge(&other);
    let kept = both.without_expired(100).unwrap();
    assert_eq!(kept.live_values_at(100), [b"w".as_slice()]);
}
