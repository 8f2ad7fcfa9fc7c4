//! The laws of the versioning rules, checked with proptest over arbitrary
//! valid clocks and objects.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::test_support::{arb_clock, arb_object, dots, node, NODES};
use super::{is_stale, ContextKey, Object, VersionLimits, VersionVector};

/// The context key of the tests' cluster.
fn contexts() -> ContextKey {
    ContextKey::from_cluster_name("laws")
}

/// The merge of every object, left to right.
fn merge_all(objects: &[Object]) -> Object {
    objects
        .iter()
        .fold(Object::default(), |acc, object| acc.merge(object))
}

proptest! {
    #[test]
    fn clock_merge_is_a_join(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
        let join = |x: &VersionVector, y: &VersionVector| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(join(&a, &b), join(&b, &a));
        prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
        prop_assert_eq!(join(&a, &a), a.clone());
        prop_assert!(join(&a, &b).descends(&a) && join(&a, &b).descends(&b));
    }

    #[test]
    fn merge_is_commutative(a in arb_object(), b in arb_object()) {
        prop_assert_eq!(a.merge(&b), b.merge(&a));
    }

    #[test]
    fn merge_is_associative(a in arb_object(), b in arb_object(), c in arb_object()) {
        prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
    }

    #[test]
    fn merge_is_idempotent(a in arb_object(), b in arb_object()) {
        prop_assert_eq!(a.merge(&a), a.clone());
        let ab = a.merge(&b);
        prop_assert_eq!(ab.merge(&a), ab.clone());
        prop_assert_eq!(ab.merge(&ab), ab);
    }

    /// Over any set of replicas, a dot is a sibling of the merge iff some
    /// replica holds it and every replica whose clock covers it holds it; the
    /// merged clock is the join of the clocks; the invariant holds.
    #[test]
    fn merge_drops_exactly_what_a_replica_replaced(
        replicas in prop::collection::vec(arb_object(), 1..5),
    ) {
        let merged = merge_all(&replicas);
        let mut expected = Vec::new();
        for replica in &replicas {
            for dot in dots(replica) {
                let survives = replicas.iter().all(|other| {
                    !other.context().covers(&dot) || dots(other).contains(&dot)
                });
                if survives && !expected.contains(&dot) {
                    expected.push(dot);
                }
            }
        }
        expected.sort();
        prop_assert_eq!(dots(&merged), expected);
        let mut clock = VersionVector::new();
        replicas.iter().for_each(|replica| clock.merge(replica.context()));
        prop_assert_eq!(merged.context(), &clock);
        prop_assert!(Object::from_parts(clock, merged.siblings().to_vec()).is_ok());
    }

    #[test]
    fn update_replaces_exactly_what_the_context_covers(
        local in prop::option::of(arb_object()),
        context in arb_clock(),
        value in prop::option::of(prop::collection::vec(any::<u8>(), 0..4)),
        coordinator in 0..NODES.len(),
        now_ms in 0u64..1_000,
    ) {
        let coordinator = node(NODES[coordinator]);
        let written = Object::update(
            local.as_ref(), &context, value.clone(), &coordinator, now_ms, &VersionLimits::default(),
        ).unwrap();
        let local = local.unwrap_or_default();
        let counter = local.context().counter(&coordinator).max(context.counter(&coordinator)) + 1;
        let new = written.siblings().iter().find(|s| s.dot.node == coordinator && s.dot.counter == counter);
        prop_assert_eq!(new.map(|s| (&s.value, s.written_ms)), Some((&value, now_ms)));
        let mut expected: Vec<_> = dots(&local).into_iter().filter(|d| !context.covers(d)).collect();
        expected.push(super::test_support::dot(coordinator.as_str(), counter));
        expected.sort();
        prop_assert_eq!(dots(&written), expected);
        prop_assert!(written.context().descends(local.context()));
        prop_assert!(written.context().descends(&context));
        prop_assert!(Object::from_parts(written.context().clone(), written.siblings().to_vec()).is_ok());
    }

    /// `is_stale` answers exactly "would merging `merged` into the replica
    /// change its siblings or advance a counter".
    #[test]
    fn is_stale_iff_merging_changes_the_replica(
        replica in prop::option::of(arb_object()),
        others in prop::collection::vec(arb_object(), 0..3),
    ) {
        let mut all = others.clone();
        all.extend(replica.clone());
        let merged = merge_all(&all);
        let base = replica.clone().unwrap_or_default();
        let repaired = base.merge(&merged);
        let changes = repaired.siblings() != base.siblings()
            || !base.context().descends(repaired.context());
        let changes = changes || (replica.is_none() && !merged.context().is_empty());
        prop_assert_eq!(is_stale(replica.as_ref(), &merged), changes);
        prop_assert!(!is_stale(Some(&repaired), &merged));
    }

    #[test]
    fn encode_decode_round_trip(object in arb_object()) {
        prop_assert_eq!(Object::decode(&object.encode()).unwrap(), object.clone());
        let context = object.context();
        let sealed = contexts().seal(b"k", context);
        prop_assert_eq!(&contexts().open(b"k", &sealed).unwrap(), context);
    }

    /// A context opens only for the key it was sealed for, under the key it
    /// was sealed with, whole: a context of another key, of another
    /// cluster, or with any byte changed or cut off is refused.
    #[test]
    fn a_context_opens_only_unchanged_for_its_own_key(
        object in arb_object(), at in any::<prop::sample::Index>(), flip in 1u8..=255,
        other_key in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let sealed = contexts().seal(b"k", object.context());
        prop_assume!(other_key != b"k");
        prop_assert!(contexts().open(&other_key, &sealed).is_err());
        prop_assert!(ContextKey::from_cluster_name("other").open(b"k", &sealed).is_err());
        let mut flipped = sealed.clone();
        let index = at.index(flipped.len());
        flipped[index] ^= flip;
        prop_assert!(contexts().open(b"k", &flipped).is_err());
        prop_assert!(contexts().open(b"k", &sealed[..index]).is_err());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Object::decode(&bytes);
        let _ = contexts().open(b"k", &bytes);
        let mut marked = vec![super::FORMAT_VERSION];
        marked.extend(&bytes);
        let _ = Object::decode(&marked);
        marked[0] = super::CONTEXT_FORMAT_VERSION;
        let _ = contexts().open(b"k", &marked);
    }

    /// Corrupting one byte of a valid encoding never panics, and whatever
    /// still decodes is a valid object that round-trips.
    #[test]
    fn decode_of_corrupted_encoding_is_valid_or_refused(
        object in arb_object(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let mut bytes = object.encode();
        let index = at.index(bytes.len());
        bytes[index] = byte;
        if let Ok(decoded) = Object::decode(&bytes) {
            prop_assert!(Object::from_parts(decoded.context().clone(), decoded.siblings().to_vec()).is_ok());
            prop_assert_eq!(Object::decode(&decoded.encode()).unwrap(), decoded);
        }
        let mut bytes = object.context().encode_clock_for_tests();
        let index = at.index(bytes.len());
        bytes[index] = byte;
        if let Ok(decoded) = VersionVector::decode_clock(&bytes) {
            prop_assert_eq!(VersionVector::decode_clock(&decoded.encode_clock_for_tests()).unwrap(), decoded);
        }
    }
}
