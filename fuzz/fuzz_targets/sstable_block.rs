//! SSTable data blocks: `Block::decode` (trailer, checksum, LZ4, entries)
//! then every entry read and every key sought.
//!
//! The first byte picks the mode: 0 the rest is a stored block as is; 1
//! the same with its checksum fixed; 2 the rest is a block body, sealed
//! uncompressed; 3 the rest is a block body, sealed with LZ4.
//!
//! Law: a body that decodes is the canonical encoding of its entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::storage::lsm::fuzz;
use ringkv_fuzz::{block_body, fix_block, mode, seal_block, COMPRESSION_LZ4, COMPRESSION_NONE};

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = mode(data);
    let stored = match mode % 4 {
        0 => rest.to_vec(),
        1 => {
            let mut stored = rest.to_vec();
            fix_block(&mut stored);
            stored
        }
        2 => seal_block(rest, COMPRESSION_NONE),
        _ => seal_block(rest, COMPRESSION_LZ4),
    };
    let decoded = fuzz::block(&stored);
    if mode % 4 >= 2 {
        if let Ok(entries) = decoded {
            assert_eq!(block_body(&entries), rest, "a block body is not canonical");
        }
    }
});
