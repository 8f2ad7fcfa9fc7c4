//! Fuzz target `commit_log`: see `ringkv_fuzz::targets::commit_log`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringkv_fuzz::targets::commit_log(data));
