//! SSTable block indexes: `BlockIndex::parse`, then every block's last
//! key and handle read and every last key sought.
//!
//! Input: the index's offset in its table (u64 LE), then the index bytes.
//!
//! Law: an index that parses is the canonical encoding of its blocks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::storage::lsm::fuzz;
use ringkv_fuzz::index_section;

fuzz_target!(|data: &[u8]| {
    let Some((offset, index)) = data.split_first_chunk::<8>() else {
        return;
    };
    if let Some(blocks) = fuzz::index(index, u64::from_le_bytes(*offset)) {
        let blocks: Vec<_> = blocks
            .into_iter()
            .map(|block| block.expect("a parsed index names all its blocks"))
            .collect();
        assert_eq!(index_section(&blocks), index, "an index is not canonical");
    }
});
