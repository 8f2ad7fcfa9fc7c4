//! Fuzz target `sstable_block`: see `ringkv_fuzz::targets::sstable_block`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::sstable_block(data));
