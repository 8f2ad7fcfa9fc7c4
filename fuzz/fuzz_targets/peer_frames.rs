//! Fuzz target `peer_frames`: see `ringkv_fuzz::targets::peer_frames`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::peer_frames(data));
