//! Shared test helpers: node ids and proptest strategies for valid clocks and
//! objects over a small set of nodes, so that generated values collide often.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::{ClockEntry, Dot, Object, Sibling, VersionVector};
use crate::NodeId;

/// The node names generated values draw from.
pub const NODES: [&str; 4] = ["a", "b", "c", "d"];

/// A valid node id (tests only).
pub fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

/// A dot (tests only).
pub fn dot(id: &str, counter: u64) -> Dot {
    Dot {
        node: node(id),
        counter,
    }
}

/// Any clock over [`NODES`] with small counters.
pub fn arb_clock() -> impl Strategy<Value = VersionVector> {
    prop::collection::btree_map(0..NODES.len(), (1u64..5, 0u64..100), 0..=NODES.len()).prop_map(
        |entries| {
            let mut clock = VersionVector::new();
            for (index, (counter, updated_ms)) in entries {
                clock.insert(
                    node(NODES[index]),
                    ClockEntry {
                        counter,
                        updated_ms,
                    },
                );
            }
            clock
        },
    )
}

/// Any object satisfying the invariant: a clock, and siblings drawn from the
/// dots it covers, each dot with the one write it names ([`written`]).
pub fn arb_object() -> impl Strategy<Value = Object> {
    let sibling = (0..NODES.len(), 1u64..5);
    (arb_clock(), prop::collection::vec(sibling, 0..5)).prop_map(|(clock, candidates)| {
        let mut siblings: Vec<Sibling> = candidates
            .into_iter()
            .map(|(index, counter)| written(index, counter))
            .filter(|sibling| clock.covers(&sibling.dot))
            .collect();
        siblings.sort();
        siblings.dedup_by(|later, earlier| later.dot == earlier.dot);
        Object::from_parts(clock, siblings).unwrap()
    })
}

/// The one write that dot (`NODES[index]`, `counter`) names: a dot is
/// minted once, so every object that holds it holds the same sibling.
/// (Drawn at random per object, two replicas could hold one dot with two
/// payloads, which no cluster makes, and the laws fail on it.) Values,
/// tombstones, timestamps and expiries still vary from dot to dot.
fn written(index: usize, counter: u64) -> Sibling {
    let seed = index as u64 * 5 + counter;
    Sibling {
        dot: dot(NODES[index], counter),
        value: (!seed.is_multiple_of(5)).then(|| vec![(seed % 3) as u8; (seed % 3) as usize]),
        written_ms: seed * 7 % 100,
        expires_ms: (seed % 4 == 1).then_some(seed * 13 % 200),
    }
}

/// The dots of an object's siblings, in order.
pub fn dots(object: &Object) -> Vec<Dot> {
    object.siblings().iter().map(|s| s.dot.clone()).collect()
}
