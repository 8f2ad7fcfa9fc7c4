//! Fuzz target `versioning`: see `ringkv_fuzz::targets::versioning`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::versioning(data));
