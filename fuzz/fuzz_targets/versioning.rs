//! The versioning decoders: `Object::decode` (stored values, replica
//! writes) and `VersionVector::decode_context` (client contexts), both run
//! on every input.
//!
//! Laws, where a decode succeeds: encode then decode gives the same value
//! and the encoding is stable; `merge` with itself changes nothing (and
//! read repair sees nothing stale); a coordinator's write on top of the
//! object gives an object that encodes and decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::conflict_resolver::{is_stale, Object, VersionLimits, VersionVector};
use ringkv_actors::NodeId;

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = Object::decode(data) {
        let encoded = object.encode();
        let again = Object::decode(&encoded).expect("an encoded object decodes");
        assert_eq!(again, object, "an object does not round-trip");
        assert_eq!(
            again.encode(),
            encoded,
            "an object's encoding is not stable"
        );
        assert_eq!(object.merge(&object), object, "merge is not idempotent");
        assert!(
            !is_stale(Some(&object), &object),
            "an object is stale to itself"
        );
        check_clock(object.context());
        let coordinator = NodeId::new("fuzz").expect("a valid node id");
        let limits = VersionLimits::default();
        let written = Object::update(
            Some(&object),
            object.context(),
            Some(b"v".to_vec()),
            &coordinator,
            0,
            &limits,
        );
        if let Ok(written) = written {
            let again = Object::decode(&written.encode()).expect("a written object decodes");
            assert_eq!(again, written);
        }
    }
    if let Ok(clock) = VersionVector::decode_context(data) {
        check_clock(&clock);
    }
});

fn check_clock(clock: &VersionVector) {
    let encoded = clock.encode_context();
    let again = VersionVector::decode_context(&encoded).expect("an encoded context decodes");
    assert_eq!(&again, clock, "a context does not round-trip");
    let mut merged = clock.clone();
    merged.merge(clock);
    assert_eq!(&merged, clock, "clock merge is not idempotent");
    assert!(clock.descends(clock));
}
