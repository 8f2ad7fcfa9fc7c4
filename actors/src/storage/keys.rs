//! The engine's keyspace: a namespace byte, then that namespace's layout.
//!
//! ## Format
//!
//! | namespace | byte | key after the byte | value |
//! |---|---|---|---|
//! | meta | `0x00` | a name (`layout`, `counter_floor`) | the fact (`layout`: the layout version, one byte; `counter_floor`: the minting floor, u64 BE) |
//! | data | `0x01` | token (u64 BE) + user key | the encoded object (sibling set) |
//! | hints | `0x02` | owner id length (u8) + owner id + user key | a [`HintRecord`] (MessagePack) |
//!
//! Data keys are in ring order, so a token range is one engine scan (what
//! handoff and anti-entropy stream); the Storage actor's `LocalRead`,
//! `LocalApply` and `LocalScan` speak "storage keys" (token + user key)
//! and add the data byte here. Hints sit in the same engine as the data,
//! so a stand-in's hint is written in the same batch (one fsync) as the
//! object it points to.
//!
//! A store written before namespaces existed (layout 1: bare storage keys)
//! is refused at start with a message ([`check_layout`]): its keys cannot
//! be told apart from namespaced ones.

use serde::{Deserialize, Serialize};

use super::engine::{Engine, StorageError, WriteOp};
use crate::NodeId;

/// The meta namespace.
pub const META: u8 = 0x00;
/// The data namespace.
pub const DATA: u8 = 0x01;
/// The hints namespace.
pub const HINTS: u8 = 0x02;

/// This build's key layout (1: bare storage keys; 2: namespaces).
pub const LAYOUT_VERSION: u8 = 2;

/// The meta key holding the layout version.
pub const LAYOUT_KEY: &[u8] = b"\x00layout";

/// The meta key holding the counter floor (`storage::MintAs`): a u64, big
/// endian. Absent: 0.
pub const COUNTER_FLOOR_KEY: &[u8] = b"\x00counter_floor";

/// The counter floor stored under [`COUNTER_FLOOR_KEY`] (0 when absent).
pub fn read_counter_floor(engine: &dyn Engine) -> Result<u64, StorageError> {
    let Some(bytes) = engine.get(COUNTER_FLOOR_KEY)? else {
        return Ok(0);
    };
    let raw: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::Corruption {
            file: std::path::PathBuf::from("(meta key counter_floor)"),
            offset: 0,
            reason: format!("a counter floor of {} bytes (8 expected)", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(raw))
}

/// The write that records counter floor `floor`.
pub fn counter_floor_op(floor: u64) -> WriteOp {
    WriteOp::Put {
        key: COUNTER_FLOOR_KEY.to_vec(),
        value: floor.to_be_bytes().to_vec(),
    }
}

/// Bytes of a data engine key before the user key: the namespace byte and
/// the 8-byte ring token.
const DATA_KEY_HEAD_BYTES: usize = 1 + 8;

/// Writes the engine key of user key `key` into `out`, which is exactly
/// [`DATA_KEY_HEAD_BYTES`] longer than `key`.
fn put_user_data_key(out: &mut [u8], key: &[u8]) {
    let (head, user) = out.split_at_mut(DATA_KEY_HEAD_BYTES);
    head[0] = DATA;
    head[1..].copy_from_slice(&crate::ring::Ring::key_token(key).0.to_be_bytes());
    user.copy_from_slice(key);
}

/// The engine key of user key `key`: [`data_key`] of its storage key
/// (`ring::storage_key`: token + key), built in one allocation (every
/// read and write of a key makes it).
pub fn user_data_key(key: &[u8]) -> Vec<u8> {
    let mut out = vec![0; DATA_KEY_HEAD_BYTES + key.len()];
    put_user_data_key(&mut out, key);
    out
}

/// Engine keys of user keys up to this long (55-byte user keys) are built
/// on the stack by [`with_user_data_key`].
pub const USER_DATA_KEY_INLINE_BYTES: usize = 64;

/// Calls `f` with [`user_data_key`] of `key`, built on the stack when it
/// fits [`USER_DATA_KEY_INLINE_BYTES`]: a point read answered from memory
/// then allocates nothing for its probe.
pub fn with_user_data_key<R>(key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut inline = [0u8; USER_DATA_KEY_INLINE_BYTES];
    let Some(buf) = inline.get_mut(..DATA_KEY_HEAD_BYTES + key.len()) else {
        return f(&user_data_key(key));
    };
    put_user_data_key(buf, key);
    f(buf)
}

/// The engine key of a storage key (token + user key).
pub fn data_key(storage_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + storage_key.len());
    out.push(DATA);
    out.extend_from_slice(storage_key);
    out
}

/// The storage key inside a data engine key (`None`: not a data key).
pub fn storage_key_of(engine_key: &[u8]) -> Option<&[u8]> {
    match engine_key.split_first() {
        Some((&DATA, rest)) => Some(rest),
        _ => None,
    }
}

/// The engine range of a storage-key range `[start, end)` (`end` `None`:
/// to the end of the data namespace).
pub fn data_range(start: &[u8], end: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    (
        data_key(start),
        end.map_or_else(|| vec![DATA + 1], data_key),
    )
}

/// The engine key of the hint that `user_key` is held for `owner`.
pub fn hint_key(owner: &NodeId, user_key: &[u8]) -> Vec<u8> {
    let id = owner.as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + user_key.len());
    out.push(HINTS);
    // Node ids are at most NODE_ID_BYTES_MAX (64) bytes.
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(user_key);
    out
}

/// The owner and user key of a hint engine key (`None`: not one).
pub fn parse_hint_key(engine_key: &[u8]) -> Option<(NodeId, &[u8])> {
    let (&HINTS, rest) = engine_key.split_first()? else {
        return None;
    };
    let (&len, rest) = rest.split_first()?;
    let id = rest.get(..len as usize)?;
    let user_key = rest.get(len as usize..)?;
    let owner = NodeId::new(std::str::from_utf8(id).ok()?).ok()?;
    Some((owner, user_key))
}

/// The engine range of every hint held for `owner` (all owners: `None`).
pub fn hint_range(owner: Option<&NodeId>) -> (Vec<u8>, Vec<u8>) {
    match owner {
        None => (vec![HINTS], vec![HINTS + 1]),
        Some(owner) => {
            let start = hint_key(owner, b"");
            let mut end = start.clone();
            // The prefix's successor: the id length byte bounds the id, so
            // bumping the last byte of the prefix is exact.
            if let Some(last) = end.last_mut() {
                *last = last.saturating_add(1);
            }
            if end == start {
                end.push(0xff);
            }
            (start, end)
        }
    }
}

/// What a hint record says: which write of the hint this is, and how large
/// the object was when it was hinted (for the per-owner byte bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintRecord {
    /// Increases with every (re-)hint of the key; delivery clears the hint
    /// only if it is still the one it delivered, so a key re-hinted while
    /// its delivery runs is delivered again.
    pub seq: u64,
    /// The object's size when hinted, in bytes.
    pub object_bytes: u64,
}

impl HintRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of two integers always encodes.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes a record; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        rmp_serde::from_slice(bytes).map_err(|e| StorageError::Corruption {
            file: "hints namespace".into(),
            offset: 0,
            reason: format!("hint record does not decode: {e}"),
        })
    }
}

/// Checks that `engine` holds this build's layout, and marks a new
/// (empty) store with it.
pub fn check_layout(engine: &dyn Engine) -> Result<(), StorageError> {
    match engine.get(LAYOUT_KEY)? {
        Some(v) if v == [LAYOUT_VERSION] => Ok(()),
        Some(v) => Err(StorageError::Layout {
            found: format!("{v:?}"),
        }),
        None if engine.scan(b"", None, 1)?.is_empty() => engine.write_batch(&[WriteOp::Put {
            key: LAYOUT_KEY.to_vec(),
            value: vec![LAYOUT_VERSION],
        }]),
        None => Err(StorageError::Layout {
            found: "1 (keys without namespaces)".into(),
        }),
    }
}

/// Whether the store holds no object (hints and meta keys do not count).
pub fn holds_no_data(engine: &dyn Engine) -> Result<bool, StorageError> {
    let (start, end) = data_range(b"", None);
    Ok(engine.scan(&start, Some(&end), 1)?.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::MemoryEngine;

    #[test]
    fn a_user_keys_data_key_is_its_storage_keys() {
        for key in [&b""[..], b"k", b"a longer key, past one word"] {
            let expected = data_key(&crate::ring::storage_key(key));
            assert_eq!(user_data_key(key), expected);
            assert_eq!(user_data_key(key).capacity(), expected.len());
        }
    }

    /// Built on the stack or not, it is the same key: up to and past the
    /// inline size.
    #[test]
    fn a_user_data_key_on_the_stack_is_the_same_key() {
        for len in [0, 1, 54, 55, 56, 200] {
            let key = vec![b'k'; len];
            with_user_data_key(&key, |built| {
                assert_eq!(built, user_data_key(&key), "{len}")
            });
        }
    }

    #[test]
    fn namespaces_never_overlap_and_keys_round_trip() {
        let owner = NodeId::new("n1").unwrap();
        let hint = hint_key(&owner, b"k");
        assert_eq!(parse_hint_key(&hint), Some((owner.clone(), &b"k"[..])));
        assert_eq!(parse_hint_key(&data_key(b"x")), None);
        assert_eq!(storage_key_of(&data_key(b"xyz")), Some(&b"xyz"[..]));
        assert_eq!(storage_key_of(&hint), None);
        let (start, end) = data_range(b"", None);
        assert!(start.as_slice() < hint.as_slice() && end.as_slice() <= hint.as_slice());
        assert!(LAYOUT_KEY < start.as_slice());
        let (start, end) = hint_range(Some(&owner));
        assert!(start <= hint && hint < end);
        // n1's range holds none of n10's hints (the length byte differs).
        let other = hint_key(&NodeId::new("n10").unwrap(), b"k");
        assert!(!(start <= other && other < end));
        let (all_start, all_end) = hint_range(None);
        assert!(all_start <= other && other < all_end);
    }

    #[test]
    fn a_new_store_is_marked_and_an_old_layout_is_refused() {
        let engine = MemoryEngine::default();
        check_layout(&engine).unwrap();
        check_layout(&engine).unwrap();
        assert!(holds_no_data(&engine).unwrap());
        let old = MemoryEngine::default();
        old.write_batch(&[WriteOp::Put {
            key: vec![0x3a; 9],
            value: vec![1],
        }])
        .unwrap();
        let error = check_layout(&old).unwrap_err();
        assert!(error.to_string().contains("layout"), "{error}");
    }

    #[test]
    fn hint_records_round_trip_and_garbage_is_corruption() {
        let r = HintRecord {
            seq: 7,
            object_bytes: 100,
        };
        assert_eq!(HintRecord::decode(&r.encode()).unwrap(), r);
        assert!(HintRecord::decode(&[0xc1]).is_err());
    }
}
