//! The hand-written object codec checked against the serde form it
//! replaced: it writes the same bytes, fits the size it reserves, and
//! accepts no input the serde decoder refused.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::encoding_tests::{golden_object, GOLDEN_OBJECT};
use super::*;
use crate::wire::msgpack::damage::{any_damage, every_damage};
use crate::NodeId;

/// The serde form the hand-written codec replaced (rmp-serde over tuple
/// structs), kept as the reference it is checked against: every object
/// stored or sent before it was written by this encoder.
mod reference {
    use serde::{Deserialize, Serialize};

    use super::super::object::Sibling;
    use super::super::{ClockEntry, Dot, Object, VersionVector};
    use crate::NodeId;

    #[derive(Serialize, Deserialize)]
    struct Entry(String, u64, u64);

    #[derive(Serialize, Deserialize)]
    struct SiblingV1(
        String,
        u64,
        #[serde(with = "serde_bytes")] Option<Vec<u8>>,
        u64,
    );

    #[derive(Serialize, Deserialize)]
    struct SiblingV2(
        String,
        u64,
        #[serde(with = "serde_bytes")] Option<Vec<u8>>,
        u64,
        Option<u64>,
    );

    fn clock_out(clock: &VersionVector) -> Vec<Entry> {
        clock
            .iter()
            .map(|(n, e)| Entry(n.as_str().into(), e.counter, e.updated_ms))
            .collect()
    }

    pub fn encode(object: &Object) -> Vec<u8> {
        let clock = clock_out(object.context());
        let siblings = object.siblings();
        if object.has_expiry() {
            let out: Vec<SiblingV2> = siblings
                .iter()
                .map(|s| {
                    let v = s.value.clone();
                    SiblingV2(
                        s.dot.node.as_str().into(),
                        s.dot.counter,
                        v,
                        s.written_ms,
                        s.expires_ms,
                    )
                })
                .collect();
            [vec![2], rmp_serde::to_vec(&(clock, out)).unwrap()].concat()
        } else {
            let out: Vec<SiblingV1> = siblings
                .iter()
                .map(|s| {
                    SiblingV1(
                        s.dot.node.as_str().into(),
                        s.dot.counter,
                        s.value.clone(),
                        s.written_ms,
                    )
                })
                .collect();
            [vec![1], rmp_serde::to_vec(&(clock, out)).unwrap()].concat()
        }
    }

    /// What the serde decoder made of `bytes` (`None`: refused), checked
    /// for the object invariant as it was.
    pub fn decode(bytes: &[u8]) -> Option<Object> {
        let (&format, body) = bytes.split_first()?;
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(body));
        let (clock, siblings): (Vec<Entry>, Vec<SiblingV2>) = match format {
            1 => {
                let (clock, siblings): (Vec<Entry>, Vec<SiblingV1>) =
                    Deserialize::deserialize(&mut de).ok()?;
                let siblings = siblings
                    .into_iter()
                    .map(|SiblingV1(n, c, v, w)| SiblingV2(n, c, v, w, None))
                    .collect();
                (clock, siblings)
            }
            2 => Deserialize::deserialize(&mut de).ok()?,
            _ => return None,
        };
        if de.position() != body.len() as u64 {
            return None;
        }
        if format == 2 && !siblings.iter().any(|s| s.4.is_some()) {
            return None;
        }
        let mut entries: Vec<(NodeId, ClockEntry)> = Vec::new();
        for Entry(node, counter, updated_ms) in clock {
            let node = NodeId::parse_version_actor(&node).ok()?;
            if counter == 0 || entries.last().is_some_and(|(p, _)| p >= &node) {
                return None;
            }
            entries.push((
                node,
                ClockEntry {
                    counter,
                    updated_ms,
                },
            ));
        }
        let siblings = siblings
            .into_iter()
            .map(|SiblingV2(node, counter, value, written_ms, expires_ms)| {
                let node = NodeId::parse_version_actor(&node).ok()?;
                (counter > 0).then_some(Sibling {
                    dot: Dot { node, counter },
                    value,
                    written_ms,
                    expires_ms,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Object::from_parts(VersionVector::from_sorted(entries), siblings).ok()
    }
}

/// Objects with every integer width, long names and values of every
/// length class, so each MessagePack form is written.
fn wide_object() -> impl Strategy<Value = Object> {
    let names = prop::sample::select(vec![
        "a".to_string(),
        "n1#0000002a".to_string(),
        "x".repeat(31),
        "y".repeat(32),
        "z".repeat(64),
    ]);
    let int = prop_oneof![
        0u64..200,
        200u64..70_000,
        70_000u64..5_000_000_000,
        any::<u64>()
    ];
    let value = prop::option::weighted(
        0.8,
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4),
            prop::collection::vec(any::<u8>(), 250..300),
            prop::collection::vec(any::<u8>(), 65_530..65_540),
        ],
    );
    let entries = prop::collection::btree_map(
        names,
        (int.clone().prop_map(|c| c.max(1)), int.clone()),
        0..5,
    );
    let siblings = prop::collection::vec(
        (
            0usize..5,
            value,
            int.clone(),
            prop::option::weighted(0.3, int),
        ),
        0..4,
    );
    (entries, siblings).prop_map(|(entries, candidates)| {
        let entries: Vec<(NodeId, ClockEntry)> = entries
            .into_iter()
            .map(|(name, (counter, updated_ms))| {
                (
                    NodeId::parse_version_actor(&name).unwrap(),
                    ClockEntry {
                        counter,
                        updated_ms,
                    },
                )
            })
            .collect();
        let mut siblings: Vec<Sibling> = candidates
            .into_iter()
            .filter_map(|(pick, value, written_ms, expires_ms)| {
                let (node, entry) = entries.get(pick % entries.len().max(1))?;
                Some(Sibling {
                    dot: Dot {
                        node: node.clone(),
                        counter: 1 + written_ms % entry.counter,
                    },
                    value,
                    written_ms,
                    expires_ms,
                })
            })
            .collect();
        siblings.sort();
        siblings.dedup_by(|later, earlier| later.dot == earlier.dot);
        Object::from_parts(VersionVector::from_sorted(entries), siblings).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The hand-written encoder writes rmp-serde's bytes, and the decoder
    /// reads them back to the same object.
    #[test]
    fn the_codec_writes_and_reads_the_serde_form(object in wide_object()) {
        let bytes = object.encode();
        prop_assert_eq!(&bytes, &reference::encode(&object));
        prop_assert_eq!(Object::decode(&bytes).unwrap(), object);
    }

    /// The buffer an object and its clock are encoded into is sized once:
    /// what is written never passes the size reserved.
    #[test]
    fn encoding_fits_the_size_reserved(object in wide_object()) {
        let bytes = object.encode();
        prop_assert!(bytes.len() <= object.encoded_len_max());
        prop_assert_eq!(bytes.capacity(), object.encoded_len_max(), "grown while encoding");
        let mut clock = Vec::new();
        object.clock.encode_clock(&mut clock);
        prop_assert!(clock.len() <= object.clock.encoded_len_max());
    }

    /// On damaged bytes (a byte changed, cut short, or bytes added), the
    /// decoder accepts nothing the serde decoder refused, and reads the
    /// same object from what both accept; where the serde decoder accepts
    /// bytes in the form it writes, so does this one.
    #[test]
    fn the_decoder_accepts_no_more_than_the_serde_one(
        object in wide_object(),
        damage in any_damage(),
    ) {
        let bytes = damage.to(object.encode());
        let ours = Object::decode(&bytes).ok();
        let theirs = reference::decode(&bytes);
        if let Some(ours) = &ours {
            prop_assert_eq!(Some(ours), theirs.as_ref(), "accepted what serde refused");
        }
        if let Some(theirs) = &theirs {
            if reference::encode(theirs) == bytes {
                prop_assert_eq!(ours.as_ref(), Some(theirs), "refused a canonical form");
            }
        }
    }
}

/// The widest clock entry and sibling (every integer a `uint64`, the
/// longest version actor, a value with a `bin32` header, an expiry) take
/// exactly the most bytes reserved for them: the reserve is only the
/// array headers' (one byte each here, five reserved).
#[test]
fn the_widest_object_fills_the_size_reserved_but_for_array_headers() {
    let node = NodeId::parse_version_actor(&format!("{}#ffffffff", "z".repeat(64))).unwrap();
    let mut clock = VersionVector::new();
    clock.insert(
        node.clone(),
        ClockEntry {
            counter: u64::MAX,
            updated_ms: u64::MAX,
        },
    );
    let sibling = Sibling {
        dot: Dot {
            node,
            counter: u64::MAX,
        },
        value: Some(vec![7; 65_536]),
        written_ms: u64::MAX,
        expires_ms: Some(u64::MAX),
    };
    let object = Object::from_parts(clock, vec![sibling]).unwrap();
    let bytes = object.encode();
    assert_eq!(object.encoded_len_max() - bytes.len(), 4 + 4);
}

/// Every single-byte change and every cut of the golden objects (both
/// formats): the decoder accepts nothing the serde decoder refused, and
/// reads what it read.
#[test]
fn every_byte_changed_decodes_as_serde_decoded() {
    let mut expiring = golden_object();
    expiring.siblings[0].expires_ms = Some(70_000);
    for bytes in [GOLDEN_OBJECT.to_vec(), expiring.encode()] {
        for bytes in every_damage(&bytes) {
            if let Ok(ours) = Object::decode(&bytes) {
                assert_eq!(Some(ours), reference::decode(&bytes), "{bytes:02x?}");
            }
        }
    }
}
