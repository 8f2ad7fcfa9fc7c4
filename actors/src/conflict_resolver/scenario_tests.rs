//! Worked examples: the chapter's Figure 9, concurrent writes through one
//! node, deletes, limits and read repair.

#![allow(clippy::unwrap_used)]

use super::test_support::{dot, dots, node};
use super::{is_stale, ClockEntry, Object, VersionError, VersionLimits, VersionVector};

fn put(local: Option<&Object>, context: &VersionVector, value: &str, via: &str) -> Object {
    Object::update(
        local,
        context,
        Some(value.into()),
        &node(via),
        0,
        &VersionLimits::default(),
    )
    .unwrap()
}

fn delete(local: Option<&Object>, context: &VersionVector, via: &str) -> Object {
    Object::update(
        local,
        context,
        None,
        &node(via),
        0,
        &VersionLimits::default(),
    )
    .unwrap()
}

fn counters(clock: &VersionVector) -> Vec<(&str, u64)> {
    clock
        .iter()
        .map(|(node, entry)| (node.as_str(), entry.counter))
        .collect()
}

#[test]
fn figure_9_step_by_step() {
    let none = VersionVector::new();
    // 1. D1 written through Sx.
    let d1 = put(None, &none, "D1", "Sx");
    assert_eq!(counters(d1.context()), [("Sx", 1)]);
    // 2. A client reads D1, writes D2 through Sx: D2 descends from D1 and replaces it.
    let d2 = put(Some(&d1), d1.context(), "D2", "Sx");
    assert_eq!(counters(d2.context()), [("Sx", 2)]);
    assert_eq!(d2.live_values(), [b"D2"]);
    // 3. A client reads D2, writes D3 through Sy (which holds D2).
    let d3 = put(Some(&d2), d2.context(), "D3", "Sy");
    assert_eq!(counters(d3.context()), [("Sx", 2), ("Sy", 1)]);
    // 4. Another client reads D2, writes D4 through Sz (which holds D2).
    let d4 = put(Some(&d2), d2.context(), "D4", "Sz");
    assert_eq!(counters(d4.context()), [("Sx", 2), ("Sz", 1)]);
    // D3 and D4 are concurrent: neither clock descends from the other.
    assert!(!d3.context().descends(d4.context()) && !d4.context().descends(d3.context()));
    // 5. A client reads both (a conflict: two siblings), reconciles, writes D5
    // through Sx, which by now holds everything.
    let read = d3.merge(&d4);
    assert_eq!(read.live_values(), [b"D3".as_slice(), b"D4"]);
    let sx = d2.merge(&read);
    let d5 = put(Some(&sx), read.context(), "D5", "Sx");
    assert_eq!(counters(d5.context()), [("Sx", 3), ("Sy", 1), ("Sz", 1)]);
    assert_eq!(dots(&d5), [dot("Sx", 3)]);
    assert_eq!(d5.live_values(), [b"D5"]);
    // Every replica that still holds D3 or D4 converges to D5.
    assert_eq!(d3.merge(&d5), d5);
    assert_eq!(d4.merge(&d5).merge(&d1), d5);
}

#[test]
fn two_writes_through_one_node_from_one_stale_context_both_survive() {
    let base = put(None, &VersionVector::new(), "v0", "a");
    let stale = base.context().clone();
    let first = put(Some(&base), &stale, "v1", "a");
    let second = put(Some(&first), &stale, "v2", "a");
    assert_eq!(dots(&second), [dot("a", 2), dot("a", 3)]);
    assert_eq!(second.live_values(), [b"v1".as_slice(), b"v2"]);
    // The next read hands out a context covering both; a put with it resolves.
    let resolved = put(Some(&second), second.context(), "v3", "a");
    assert_eq!(resolved.live_values(), [b"v3"]);
}

#[test]
fn tombstone_only_object_has_no_live_values_but_a_context() {
    let written = put(None, &VersionVector::new(), "v", "a");
    let deleted = delete(Some(&written), written.context(), "b");
    assert!(deleted.live_values().is_empty());
    assert_eq!(deleted.siblings().len(), 1);
    assert_eq!(deleted.siblings()[0].value, None);
    assert_eq!(counters(deleted.context()), [("a", 1), ("b", 1)]);
}

#[test]
fn delete_then_put_with_context_replaces_the_tombstone() {
    let written = put(None, &VersionVector::new(), "v", "a");
    let deleted = delete(Some(&written), written.context(), "a");
    let again = put(Some(&deleted), deleted.context(), "w", "b");
    assert_eq!(dots(&again), [dot("b", 1)]);
    assert_eq!(again.live_values(), [b"w"]);
    // A put that did not see the tombstone sits beside it instead.
    let blind = put(Some(&deleted), &VersionVector::new(), "x", "a");
    assert_eq!(blind.siblings().len(), 2);
    assert_eq!(blind.live_values(), [b"x"]);
}

#[test]
fn stale_replica_value_does_not_resurrect_after_a_delete() {
    let written = put(None, &VersionVector::new(), "old", "a");
    let stale_replica = written.clone();
    let deleted = delete(Some(&written), written.context(), "b");
    for merged in [stale_replica.merge(&deleted), deleted.merge(&stale_replica)] {
        assert!(merged.live_values().is_empty());
        assert_eq!(merged, deleted);
    }
}

#[test]
fn update_refuses_more_than_siblings_max() {
    let limits = VersionLimits {
        siblings_max: 2,
        ..VersionLimits::default()
    };
    let none = VersionVector::new();
    let one = Object::update(None, &none, Some(b"1".to_vec()), &node("a"), 0, &limits).unwrap();
    let two = Object::update(
        Some(&one),
        &none,
        Some(b"2".to_vec()),
        &node("a"),
        0,
        &limits,
    )
    .unwrap();
    let refused = Object::update(
        Some(&two),
        &none,
        Some(b"3".to_vec()),
        &node("a"),
        0,
        &limits,
    );
    assert!(matches!(
        refused,
        Err(VersionError::TooManySiblings { limit: 2, got: 3 })
    ));
    // A write whose context covers the siblings is still accepted.
    let resolved = Object::update(
        Some(&two),
        two.context(),
        Some(b"3".to_vec()),
        &node("a"),
        0,
        &limits,
    );
    assert_eq!(resolved.unwrap().live_values(), [b"3"]);
}

#[test]
fn update_refuses_a_counter_that_cannot_advance() {
    let mut forged = VersionVector::new();
    forged.insert(
        node("a"),
        ClockEntry {
            counter: u64::MAX,
            updated_ms: 0,
        },
    );
    let refused = Object::update(
        None,
        &forged,
        None,
        &node("a"),
        0,
        &VersionLimits::default(),
    );
    assert!(matches!(
        refused,
        Err(VersionError::CounterExhausted { .. })
    ));
}

#[test]
fn read_repair_flags_replicas_that_lack_or_still_hold_something() {
    let base = put(None, &VersionVector::new(), "v1", "a");
    let newer = put(Some(&base), base.context(), "v2", "b");
    let merged = base.merge(&newer);
    assert!(is_stale(Some(&base), &merged), "holds a replaced sibling");
    assert!(is_stale(None, &merged), "has nothing");
    assert!(!is_stale(Some(&newer), &merged));
    let sibling = put(Some(&base), base.context(), "v3", "c");
    let both = newer.merge(&sibling);
    assert!(is_stale(Some(&newer), &both), "lacks a concurrent sibling");
    assert!(!is_stale(None, &Object::default()));
}
