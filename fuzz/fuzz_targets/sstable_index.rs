//! Fuzz target `sstable_index`: see `ringkv_fuzz::targets::sstable_index`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::sstable_index(data));
