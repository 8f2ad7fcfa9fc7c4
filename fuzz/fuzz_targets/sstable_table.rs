//! Fuzz target `sstable_table`: see `ringkv_fuzz::targets::sstable_table`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::sstable_table(data));
