//! The manifest: `Manifest::decode`.
//!
//! The first byte picks the mode: even, the rest as is; odd, the rest with
//! its trailing checksum fixed.
//!
//! Law: a manifest that decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::storage::lsm::fuzz;
use ringkv_fuzz::{fix_manifest, mode};

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = mode(data);
    let mut manifest = rest.to_vec();
    if mode % 2 == 1 {
        fix_manifest(&mut manifest);
    }
    if let Ok(encoded) = fuzz::manifest(&manifest) {
        assert_eq!(encoded, manifest, "a manifest does not round-trip");
    }
});
