//! Keys on the ring: the 64-bit hash that places keys and tokens on the
//! circle, and the engine key that stores a user key in ring order.

use super::Ring;

/// The engine key of a user key: its token (big-endian), then the key.
/// Storing keys in ring order makes "every key in this token range" one
/// range scan, which is what handoff and anti-entropy stream.
pub fn storage_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&Ring::key_token(key).0.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The user key inside an engine key (`None` for a key too short to be one).
pub fn user_key(storage_key: &[u8]) -> Option<&[u8]> {
    storage_key.get(8..)
}

/// 64-bit hash for tokens and keys: FNV-1a, then the murmur3 finalizer,
/// because FNV alone leaves short, similar inputs (`n1#0`, `n1#1`) clustered.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// murmur3's 64-bit finalizer: spreads every input bit over the output
/// (`hash_bytes`'s, and the key filters' `sstable::filter::key_hash`, whose
/// values are stored in every table: never change it).
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
