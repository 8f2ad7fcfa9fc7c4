//! Fuzz target `manifest`: see `ringkv_fuzz::targets::manifest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::manifest(data));
