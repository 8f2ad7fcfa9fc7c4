//! Key heads: binary searches over sorted keys compare one `u64` first.
//!
//! Every key of a sorted run that lies between its first and its last key
//! shares their common prefix, so those bytes decide nothing. The next 8
//! bytes of a key, read as a big-endian `u64` (zero-padded when the key is
//! shorter), order two keys of the run whenever their heads differ; only
//! equal heads need the full byte comparison. A search then walks one
//! compact `u64` array instead of chasing a key slice (and calling `memcmp`)
//! at every probe: the "poor man's normalized keys" of B-tree practice
//! (Graefe, *Modern B-Tree Techniques*, §4.3; LeanStore and Umbra do the
//! same). It is an in-memory aid rebuilt when a block or an index is
//! decoded; nothing of it is stored in a table.
//!
//! Why a differing head decides: at the first byte where two heads differ,
//! the larger head has a real key byte (a padding zero cannot be larger than
//! anything), and the smaller one has either a smaller real byte or has run
//! out of key, which makes it a prefix and so smaller as well.

use std::cmp::Ordering;

/// The heads of a sorted run of keys, and the prefix all of them share.
#[derive(Debug, Default)]
pub struct KeyHeads {
    prefix_len: usize,
    /// The prefix itself when it fits, so checking a probe against it does
    /// not touch the keys (a cache miss on a cold block body).
    prefix_inline: [u8; PREFIX_INLINE_BYTES],
    heads: Vec<u64>,
}

/// Bytes of a key a head holds.
const HEAD_BYTES: usize = 8;

/// A shared prefix up to this long is kept inside [`KeyHeads`]; a longer one
/// is read from the first key.
const PREFIX_INLINE_BYTES: usize = 24;

/// The head of `rest`: its first 8 bytes, big-endian, zero-padded. Two
/// keys whose heads differ compare as their heads (see the module doc);
/// the memtable orders its keys by it too.
pub(crate) fn head(rest: &[u8]) -> u64 {
    let mut bytes = [0u8; HEAD_BYTES];
    for (to, from) in bytes.iter_mut().zip(rest) {
        *to = *from;
    }
    u64::from_be_bytes(bytes)
}

impl KeyHeads {
    /// The heads of `len` sorted keys, `key_at(i)` being key `i`.
    pub fn new<'a>(len: usize, key_at: impl Fn(usize) -> &'a [u8]) -> Self {
        let Some(last) = len.checked_sub(1) else {
            return Self::default();
        };
        let (first, last) = (key_at(0), key_at(last));
        let prefix_len = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        let mut prefix_inline = [0u8; PREFIX_INLINE_BYTES];
        if let (Some(to), Some(from)) =
            (prefix_inline.get_mut(..prefix_len), first.get(..prefix_len))
        {
            to.copy_from_slice(from);
        }
        let heads = (0..len)
            .map(|i| head(key_at(i).get(prefix_len..).unwrap_or_default()))
            .collect();
        Self {
            prefix_len,
            prefix_inline,
            heads,
        }
    }

    /// Bytes held in memory.
    pub fn size_bytes(&self) -> usize {
        self.heads.len() * std::mem::size_of::<u64>()
    }

    /// The index of the first key `>= key` (the number of keys if none), for
    /// the same run of keys the heads were built from.
    pub fn lower_bound<'a>(&self, key: &[u8], key_at: impl Fn(usize) -> &'a [u8]) -> usize {
        let len = self.heads.len();
        if len == 0 {
            return 0;
        }
        let prefix = match self.prefix_inline.get(..self.prefix_len) {
            Some(prefix) => prefix,
            None => key_at(0).get(..self.prefix_len).unwrap_or_default(),
        };
        let Some(rest) = key.strip_prefix(prefix) else {
            // Outside the prefix, `key` compares with every key of the run
            // as it compares with the prefix (never equal).
            return if key < prefix { 0 } else { len };
        };
        let probe = head(rest);
        let (mut low, mut high) = (0, len);
        while low < high {
            let middle = low + (high - low) / 2;
            let below = match self.heads.get(middle).map(|h| h.cmp(&probe)) {
                Some(Ordering::Less) => true,
                Some(Ordering::Greater) | None => false,
                Some(Ordering::Equal) => key_at(middle) < key,
            };
            if below {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    fn plain_lower_bound(keys: &[Vec<u8>], key: &[u8]) -> usize {
        keys.partition_point(|k| k.as_slice() < key)
    }

    #[test]
    fn heads_find_keys_across_prefix_lengths() {
        let keys: Vec<Vec<u8>> = ["app", "apple", "apple\0", "apples", "apply", "apz"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        let heads = KeyHeads::new(keys.len(), |i| &keys[i]);
        for probe in [
            "",
            "a",
            "ap",
            "app",
            "apple",
            "apple\0",
            "apple\0\0",
            "apq",
            "b",
        ] {
            assert_eq!(
                heads.lower_bound(probe.as_bytes(), |i| &keys[i]),
                plain_lower_bound(&keys, probe.as_bytes()),
                "probe {probe:?}"
            );
        }
    }

    /// Short byte strings rich in 0, 1 and 255, the bytes where padding and
    /// prefixes matter (the memtable's key tests use them too).
    pub(crate) fn byte_string() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
            0..20,
        )
    }

    proptest! {
        /// The heads search agrees with a plain binary search for any sorted
        /// run and any probe, including keys that share long prefixes, are
        /// prefixes of each other or end in zero bytes.
        #[test]
        fn lower_bound_equals_a_plain_search(
            prefix in proptest::collection::vec(any::<u8>(), 0..40),
            suffixes in proptest::collection::vec(byte_string(), 0..40),
            probes in proptest::collection::vec((any::<bool>(), byte_string()), 1..20),
        ) {
            let mut keys: Vec<Vec<u8>> = suffixes
                .iter()
                .map(|suffix| [prefix.as_slice(), suffix].concat())
                .collect();
            keys.sort();
            keys.dedup();
            let heads = KeyHeads::new(keys.len(), |i| &keys[i]);
            let probes: Vec<Vec<u8>> = probes
                .iter()
                .map(|(prefixed, bytes)| {
                    if *prefixed { [prefix.as_slice(), bytes].concat() } else { bytes.clone() }
                })
                .collect();
            for probe in probes.iter().chain(&keys) {
                prop_assert_eq!(
                    heads.lower_bound(probe, |i| &keys[i]),
                    plain_lower_bound(&keys, probe)
                );
            }
        }
    }
}
