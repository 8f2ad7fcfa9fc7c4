//! Fuzz target `hints_and_gossip`: see `ringkv_fuzz::targets::hints_and_gossip`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::hints_and_gossip(data));
