//! The node's compaction filter: a stored object whose values have expired
//! (puts with `ttl_ms`) is rewritten with those siblings as tombstones of
//! the same dots (`Object::without_expired`), so compaction frees their
//! bytes while the clock and the dots stay and no older version can come
//! back. Keys outside the data namespace, objects that do not decode and
//! objects with nothing expired are copied as they are. It lives here, not
//! in `storage`, because it reads objects (`conflict_resolver`); the node
//! hands it to the engine when it opens the data dir.

use std::sync::Arc;

use crate::conflict_resolver::Object;
use crate::storage::keys::storage_key_of;
use crate::storage::lsm::CompactionFilter;

/// The filter, reading wall time (ms) from `now_ms` at each value.
pub fn expiry_filter(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> CompactionFilter {
    CompactionFilter(Arc::new(move |key: &[u8], value: &[u8]| {
        storage_key_of(key)?;
        let object = Object::decode(value).ok()?;
        if !object.has_expiry() {
            return None;
        }
        object.without_expired(now_ms()).map(|o| o.encode())
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conflict_resolver::{VersionLimits, VersionVector};
    use crate::storage::keys::{data_key, hint_key};
    use crate::storage::lsm::vfs::fault::FaultVfs;
    use crate::storage::lsm::LsmEngine;
    use crate::storage::lsm::LsmOptions;
    use crate::storage::{Engine, WriteOp};
    use crate::NodeId;

    fn object(value: &[u8], expires_ms: Option<u64>) -> Vec<u8> {
        Object::update_expiring(
            None,
            &VersionVector::new(),
            Some(value.to_vec()),
            expires_ms,
            &NodeId::new("a").unwrap(),
            1,
            &VersionLimits::default(),
        )
        .unwrap()
        .encode()
    }

    #[test]
    fn the_filter_purges_only_expired_data_values() {
        let filter = expiry_filter(|| 1_000);
        let key = data_key(b"k");
        assert!((filter.0)(&key, &object(b"v", None)).is_none());
        assert!((filter.0)(&key, &object(b"v", Some(1_001))).is_none());
        let purged = (filter.0)(&key, &object(b"v", Some(1_000))).unwrap();
        let purged = Object::decode(&purged).unwrap();
        assert!(purged.siblings()[0].is_purged());
        // Not a data key, or not an object: untouched.
        let hint = hint_key(&NodeId::new("b").unwrap(), b"k");
        assert!((filter.0)(&hint, &object(b"v", Some(1))).is_none());
        assert!((filter.0)(&key, b"garbage").is_none());
    }

    /// Through a real compaction: the expired value's bytes are gone from
    /// the tables, the unexpired one is kept.
    #[test]
    fn compaction_drops_the_bytes_of_expired_values() {
        let options = LsmOptions {
            compaction_filter: Some(expiry_filter(|| 1_000)),
            ..LsmOptions::default()
        };
        let engine = LsmEngine::open(Arc::new(FaultVfs::new()), "/db", options).unwrap();
        let big = vec![7u8; 100_000];
        let write = |k: &[u8], v: Vec<u8>| {
            engine
                .write_batch(&[WriteOp::Put {
                    key: data_key(k),
                    value: v,
                }])
                .unwrap()
        };
        write(b"gone", object(&big, Some(500)));
        write(b"kept", object(&big, Some(5_000)));
        engine.flush().unwrap();
        write(b"other", object(b"x", None));
        engine.flush().unwrap();
        engine.compact_all().unwrap();
        let gone = Object::decode(&engine.get(&data_key(b"gone")).unwrap().unwrap()).unwrap();
        assert!(gone.siblings()[0].value.is_none());
        let kept = Object::decode(&engine.get(&data_key(b"kept")).unwrap().unwrap()).unwrap();
        assert_eq!(kept.siblings()[0].value.as_deref(), Some(big.as_slice()));
        assert!(
            engine.table_bytes() < 150_000,
            "{} bytes",
            engine.table_bytes()
        );
    }
}
