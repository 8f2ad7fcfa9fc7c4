//! Whole SSTables: `Table::open` (header, footer, index and bloom filter
//! sections with their checksums, the first block), then every block read
//! and every key looked up through the bloom filter and the index.
//!
//! The first byte picks the mode: even, the rest is a table file as is;
//! odd, the same with every checksum the footer and index lead to fixed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::storage::lsm::fuzz;
use ringkv_fuzz::{fix_table, mode};

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = mode(data);
    let mut table = rest.to_vec();
    if mode % 2 == 1 {
        fix_table(&mut table);
    }
    let _ = fuzz::table(&table);
});
