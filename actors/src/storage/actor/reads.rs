//! The Storage actor's reads: point reads (from memory in place when the
//! engine can, see [`MemoryReads`]), scans, key listings, hint listings
//! and the Merkle tree's snapshot.

use actix::prelude::*;
use tracing::warn;

use super::super::engine::StorageError;
use super::super::keys::{self, HintRecord};
use super::super::tree::TreeSnapshot;
use super::super::worker::{EngineSlot, HeldHint, KeyListing, Page, ReadJob};
use super::{LocalHints, LocalListKeys, LocalRead, LocalScan, Storage};

/// `engine.get_cached(key)` of the engine in `slot`. The slot is only
/// tried: while the writer swaps in a reopened engine, reads go to the
/// readers, which wait for it. The read is made under the slot's read
/// lock rather than on a clone of the engine's `Arc`: a memory read takes
/// well under a microsecond, and the clone and its drop were two atomic
/// operations on a line every thread's reads share (0.7% of a one-node
/// GET's samples).
pub(super) fn cached_read(
    slot: &EngineSlot,
    key: &[u8],
) -> Option<Result<Option<Vec<u8>>, StorageError>> {
    slot.try_read().ok()?.get_cached(key)
}

/// Point reads the engine answers from memory (memtables, cached blocks:
/// `Engine::get_cached`), made by the caller on its own thread: what a
/// [`LocalRead`] starts with, without the message to the Storage actor and
/// its reply. A read that needs the disk still goes to Storage (`get`
/// answers `None`), and so does every read of a store served inline (a
/// simulation's).
#[derive(Clone)]
pub struct MemoryReads {
    pub(super) slot: Option<EngineSlot>,
}

impl MemoryReads {
    /// Reads that always go to Storage.
    pub fn none() -> Self {
        Self { slot: None }
    }

    /// `key`'s stored bytes (as [`LocalRead`] answers), if the engine has
    /// them in memory; `None`: send a `LocalRead`.
    pub fn get(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        let slot = self.slot.as_ref()?;
        keys::with_user_data_key(key, |key| cached_read(slot, key))
    }
}

impl Handler<LocalRead> for Storage {
    type Result = ResponseFuture<Result<Option<Vec<u8>>, StorageError>>;

    fn handle(&mut self, msg: LocalRead, _ctx: &mut Self::Context) -> Self::Result {
        self.options
            .metrics
            .mailbox_handled(crate::metrics::Mailbox::Storage);
        let key = keys::user_data_key(&msg.key);
        if let Some(answer) = self.read_from_memory(&key) {
            return Box::pin(std::future::ready(answer));
        }
        self.read(|reply| ReadJob::Get { key, reply })
    }
}

/// A copy of the Merkle leaves (`None` while they are rebuilt at start).
#[derive(Message)]
#[rtype(result = "Option<TreeSnapshot>")]
pub struct TreeSnapshotQuery;

impl Handler<TreeSnapshotQuery> for Storage {
    type Result = MessageResult<TreeSnapshotQuery>;

    fn handle(&mut self, _: TreeSnapshotQuery, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.tree.snapshot())
    }
}

impl Handler<LocalScan> for Storage {
    type Result = ResponseFuture<Result<Page, StorageError>>;

    fn handle(&mut self, msg: LocalScan, _ctx: &mut Self::Context) -> Self::Result {
        let (start, end) = keys::data_range(&msg.start, msg.end.as_deref());
        let scan = self.read(|reply| ReadJob::Scan {
            start,
            end,
            limit: msg.limit,
            bytes_max: msg.bytes_max,
            reply,
        });
        Box::pin(async move {
            let page = scan.await?;
            Ok(Page {
                entries: page
                    .entries
                    .into_iter()
                    .filter_map(|(k, v)| keys::storage_key_of(&k).map(|k| (k.to_vec(), v)))
                    .collect(),
                more: page.more,
            })
        })
    }
}

impl Handler<LocalListKeys> for Storage {
    type Result = ResponseFuture<Result<KeyListing, StorageError>>;

    fn handle(&mut self, msg: LocalListKeys, _ctx: &mut Self::Context) -> Self::Result {
        let (start, end) = keys::data_range(&msg.start, msg.end.as_deref());
        let listing = self.read(|reply| ReadJob::ListKeys {
            start,
            end,
            bounds: msg.bounds,
            live: msg.live,
            reply,
        });
        Box::pin(async move {
            let listing = listing.await?;
            let strip = |k: Vec<u8>| keys::storage_key_of(&k).map(<[u8]>::to_vec);
            Ok(KeyListing {
                keys: listing.keys.into_iter().filter_map(strip).collect(),
                stopped_after: listing.stopped_after.and_then(strip),
            })
        })
    }
}

impl Handler<LocalHints> for Storage {
    type Result = ResponseFuture<Result<Vec<HeldHint>, StorageError>>;

    fn handle(&mut self, msg: LocalHints, _ctx: &mut Self::Context) -> Self::Result {
        let (first, end) = keys::hint_range(Some(&msg.owner));
        let start = match &msg.after {
            Some(after) => {
                let mut key = keys::hint_key(&msg.owner, after);
                key.push(0);
                key
            }
            None => first,
        };
        let scan = self.read(|reply| ReadJob::Scan {
            start,
            end,
            limit: msg.limit,
            bytes_max: usize::MAX,
            reply,
        });
        Box::pin(async move {
            let mut hints = Vec::new();
            for (key, value) in scan.await?.entries {
                let Some((owner, user_key)) = keys::parse_hint_key(&key) else {
                    warn!(key = ?key, "a key in the hints namespace is not a hint; skipped");
                    continue;
                };
                hints.push(HeldHint {
                    owner,
                    key: user_key.to_vec(),
                    record: HintRecord::decode(&value)?,
                });
            }
            Ok(hints)
        })
    }
}
