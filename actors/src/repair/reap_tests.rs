//! The reaper's pure decision, case by case (reap / keep), the
//! compare-and-delete's dominance test, and the dot-reuse hazard the
//! counter floor closes.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::conflict_resolver::{VersionLimits, VersionVector};
use crate::ring::Ring;

const AGE_MS: u64 = 1_000;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn put(local: Option<&Object>, ctx: &VersionVector, value: &[u8], by: &str, at: u64) -> Object {
    let limits = VersionLimits::default();
    Object::update(local, ctx, Some(value.to_vec()), &id(by), at, &limits).unwrap()
}

fn delete(local: &Object, by: &str, at: u64) -> Object {
    let limits = VersionLimits::default();
    Object::update(Some(local), local.context(), None, &id(by), at, &limits).unwrap()
}

/// A value written by `a` at 0 and deleted by `a` at 10: (value, tombstone).
fn value_and_tombstone() -> (Object, Object) {
    let value = put(None, &VersionVector::new(), b"v", "a", 0);
    let tombstone = delete(&value, "a", 10);
    (value, tombstone)
}

fn holds(object: &Object) -> Option<Answer> {
    Some(Answer {
        held: Held::Tombstone(object.clone()),
        hint_pending: false,
    })
}

fn nothing() -> Option<Answer> {
    Some(Answer {
        held: Held::Nothing,
        hint_pending: false,
    })
}

fn replicas() -> Vec<NodeId> {
    vec![id("a"), id("b"), id("c")]
}

const NOW: u64 = 10 + AGE_MS;

#[test]
fn reaps_when_every_replica_holds_the_tombstone() {
    let (_, t) = value_and_tombstone();
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), holds(&t)),
        (id("c"), holds(&t)),
    ];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Reap(t.clone())
    );
}

#[test]
fn reaps_when_a_replica_already_reaped_it_or_never_had_the_key() {
    let (_, t) = value_and_tombstone();
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), nothing()),
        (id("c"), nothing()),
    ];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Reap(t)
    );
}

#[test]
fn a_replica_still_holding_the_old_value_blocks_the_reap() {
    // The partitioned replica: it missed the delete and holds the value.
    let (_, t) = value_and_tombstone();
    let live = Some(Answer {
        held: Held::Live,
        hint_pending: false,
    });
    let answers = vec![(id("a"), holds(&t)), (id("b"), holds(&t)), (id("c"), live)];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Keep(Keep::Live(id("c")))
    );
}

#[test]
fn a_silent_member_blocks_the_reap() {
    let (_, t) = value_and_tombstone();
    let answers = vec![(id("a"), holds(&t)), (id("b"), holds(&t)), (id("c"), None)];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Keep(Keep::NoAnswer(id("c")))
    );
    // A replica missing from the answers entirely (a member the reaper did
    // not know of) blocks it too.
    let answers = vec![(id("a"), holds(&t)), (id("b"), holds(&t))];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Keep(Keep::NoAnswer(id("c")))
    );
}

#[test]
fn a_pending_hint_anywhere_blocks_the_reap() {
    // A stand-in (d, not a replica) holds a hint for the key.
    let (_, t) = value_and_tombstone();
    let hinted = Some(Answer {
        held: Held::Tombstone(t.clone()),
        hint_pending: true,
    });
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), holds(&t)),
        (id("c"), holds(&t)),
        (id("d"), hinted),
    ];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Keep(Keep::HintPending(id("d")))
    );
}

#[test]
fn a_live_value_on_a_non_replica_does_not_block() {
    // A leftover copy on a former owner is not a replica's: the drop cleans
    // it only if dominated; the decision follows the replicas.
    let (_, t) = value_and_tombstone();
    let live = Some(Answer {
        held: Held::Live,
        hint_pending: false,
    });
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), holds(&t)),
        (id("c"), holds(&t)),
        (id("d"), live),
    ];
    assert!(matches!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Reap(_)
    ));
}

#[test]
fn young_deletes_are_kept() {
    let (_, t) = value_and_tombstone();
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), holds(&t)),
        (id("c"), holds(&t)),
    ];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW - 1, AGE_MS),
        Decision::Keep(Keep::Young)
    );
    // A replica's newer delete is young: the join is kept too.
    let newer = delete(&t, "b", NOW);
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), holds(&newer)),
        (id("c"), holds(&t)),
    ];
    assert_eq!(
        decide(&t, &replicas(), &answers, NOW, AGE_MS),
        Decision::Keep(Keep::Young)
    );
}

#[test]
fn a_value_is_never_reaped() {
    let (v, _) = value_and_tombstone();
    assert_eq!(
        decide(&v, &replicas(), &[], NOW, AGE_MS),
        Decision::Keep(Keep::NotTombstone)
    );
}

#[test]
fn the_reap_drops_the_join_of_the_replicas_tombstones() {
    let (_, t) = value_and_tombstone();
    let newer = delete(&t, "b", 20);
    let answers = vec![
        (id("a"), holds(&t)),
        (id("b"), holds(&newer)),
        (id("c"), holds(&t)),
    ];
    let Decision::Reap(joined) = decide(&t, &replicas(), &answers, 20 + AGE_MS, AGE_MS) else {
        panic!("expected a reap");
    };
    assert_eq!(joined, t.merge(&newer));
    assert!(dominated(&t, &joined) && dominated(&newer, &joined));
}

#[test]
fn the_drop_keeps_anything_the_tombstone_does_not_dominate() {
    let (v, t) = value_and_tombstone();
    assert!(dominated(&t, &t), "the same tombstone goes");
    assert!(
        dominated(&v, &t),
        "an older value the tombstone replaced goes"
    );
    // A write that landed after the check: kept.
    let rewritten = put(Some(&t), t.context(), b"new", "b", 30);
    assert!(!dominated(&rewritten, &t));
    // A concurrent write (blind, another coordinator): kept.
    let concurrent = put(None, &VersionVector::new(), b"x", "c", 5);
    assert!(!dominated(&concurrent, &t));
    // A newer delete: kept (reaped by a later round).
    let newer = delete(&t, "b", 40);
    assert!(!dominated(&newer, &t));
    // Only a tombstone reaps anything.
    assert!(!dominated(&v, &v));
}

/// The hazard the shadow closes: a replica that had not yet applied the
/// delete served its old value to an anti-entropy pull (or a read whose
/// repair is still to come); the reap happens; then that page lands. The
/// shadow covers exactly what the delete superseded, so the old value is
/// not stored again, while any write the tombstone does not dominate is.
#[test]
fn a_reaped_keys_shadow_covers_the_superseded_value_and_nothing_newer() {
    let (v, t) = value_and_tombstone();
    let shadow = shadow_of(t.clone(), 5_000);
    assert_eq!(shadow.for_ms, 5_000);
    let covers = |o: &Object| (shadow.covers)(&o.encode());
    assert!(covers(&v), "the old value, still in flight");
    assert!(covers(&t), "the tombstone itself");
    assert!(
        !covers(&put(Some(&t), t.context(), b"new", "b", 30)),
        "a rewrite"
    );
    assert!(
        !covers(&put(None, &VersionVector::new(), b"x", "c", 5)),
        "a concurrent write"
    );
    assert!(!covers(&delete(&t, "b", 40)), "a newer delete");
    assert!(!(shadow.covers)(b"not an object"), "what does not decode");
}

#[test]
fn the_floor_is_the_actors_highest_counter_in_the_tombstone() {
    let (_, t) = value_and_tombstone();
    assert_eq!(floor_for(&t, &id("a")), 2);
    assert_eq!(floor_for(&t, &id("b")), 0);
}

/// The dot-reuse hazard: a client read the value (context `{a: 1}`), the
/// key was deleted and reaped everywhere, then rewritten blind through
/// `a`. Without the floor the rewrite gets `(a, 1)` again, and the old
/// context covers it: the client's put silently replaces the new value.
/// With the floor, the new dot is above every reaped one, and the put
/// leaves both as siblings.
#[test]
fn a_key_rewritten_after_its_reap_never_reuses_a_dot() {
    let limits = VersionLimits::default();
    let a = id("a");
    let (value, tombstone) = value_and_tombstone();
    let old_context = value.context().clone();
    let floor = floor_for(&tombstone, &a);
    // The reap: nothing is stored for the key any more.

    // Without the floor: the hazard.
    let reused = Object::update_above(
        None,
        &VersionVector::new(),
        Some(b"new".to_vec()),
        None,
        &a,
        0,
        100,
        &limits,
    )
    .unwrap();
    assert!(
        old_context.covers(&reused.siblings()[0].dot),
        "the old dot again"
    );
    let lost = put(Some(&reused), &old_context, b"stale client", "a", 101);
    assert!(
        !lost.live_values().contains(&&b"new"[..]),
        "without a floor the new value is silently replaced"
    );

    // With the floor: a fresh dot, and the stale put keeps it as a sibling.
    let fresh = Object::update_above(
        None,
        &VersionVector::new(),
        Some(b"new".to_vec()),
        None,
        &a,
        floor,
        100,
        &limits,
    )
    .unwrap();
    assert_eq!(fresh.siblings()[0].dot.counter, floor + 1);
    assert!(!old_context.covers(&fresh.siblings()[0].dot));
    let both = Object::update_above(
        Some(&fresh),
        &old_context,
        Some(b"stale client".to_vec()),
        None,
        &a,
        floor,
        101,
        &limits,
    )
    .unwrap();
    let mut values = both.live_values();
    values.sort();
    assert_eq!(values, vec![&b"new"[..], &b"stale client"[..]]);
}

#[test]
fn the_floor_raises_only_the_counter_not_the_context() {
    // A sibling of `a` below the floor stays a sibling.
    let limits = VersionLimits::default();
    let a = id("a");
    let v1 = put(None, &VersionVector::new(), b"one", "a", 0);
    let v2 = Object::update_above(
        Some(&v1),
        &VersionVector::new(),
        Some(b"two".to_vec()),
        None,
        &a,
        50,
        1,
        &limits,
    )
    .unwrap();
    assert_eq!(v2.live_values().len(), 2);
    assert_eq!(v2.siblings().last().unwrap().dot.counter, 51);
}

#[test]
fn members_are_both_rings_once() {
    use crate::ring::RingMember;
    let member = |s: &str| RingMember {
        id: id(s),
        dc: "dc".into(),
        rack: "r".into(),
        weight: 1,
    };
    let read = Ring::new(&[member("a"), member("b")], 4);
    let write = Ring::new(&[member("b"), member("c")], 4);
    assert_eq!(members_of(&read, &write), vec![id("a"), id("b"), id("c")]);
}
