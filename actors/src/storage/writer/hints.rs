//! The writer's count of the hints it holds, per owner (see the parent
//! module's "Hints").

use tracing::warn;

use super::Writer;
use crate::storage::engine::{Engine, StorageError};
use crate::storage::group_writes::GroupWrites;
use crate::storage::keys::{self, HintRecord};
use crate::storage::worker::{current, HintCounts};

/// Hint records read per page while counting them.
const HINT_SCAN_PAGE_ENTRIES: usize = 1024;

impl Writer {
    /// Rebuilds the per-owner hint counts from the hints namespace.
    pub(super) fn count_hints(&mut self) -> Result<(), StorageError> {
        let engine = current(&self.slot);
        let (mut cursor, end) = keys::hint_range(None);
        self.hints.clear();
        loop {
            let page = engine.scan(&cursor, Some(&end), HINT_SCAN_PAGE_ENTRIES)?;
            let full = page.len() == HINT_SCAN_PAGE_ENTRIES;
            for (key, value) in &page {
                let Some((owner, _)) = keys::parse_hint_key(key) else {
                    warn!(key = ?key, "a key in the hints namespace is not a hint; ignored");
                    continue;
                };
                let record = HintRecord::decode(value)?;
                let held = self.hints.entry(owner).or_default();
                held.0 += 1;
                held.1 += record.object_bytes;
                self.hint_seq = self.hint_seq.max(record.seq);
            }
            match page.last() {
                Some((last, _)) if full => {
                    cursor = last.clone();
                    cursor.push(0);
                }
                _ => return Ok(()),
            }
        }
    }

    /// Whether any owner's hint is held for each of `user_keys` (as this
    /// group sees the store).
    pub(super) fn hints_pending(
        &self,
        engine: &dyn Engine,
        writes: &GroupWrites,
        user_keys: &[Vec<u8>],
    ) -> Result<Vec<bool>, StorageError> {
        let mut pending = Vec::with_capacity(user_keys.len());
        for key in user_keys {
            let mut held = false;
            for owner in self.hints.keys() {
                if writes.read(engine, &keys::hint_key(owner, key))?.is_some() {
                    held = true;
                    break;
                }
            }
            pending.push(held);
        }
        Ok(pending)
    }

    /// Hints held, per owner.
    pub(super) fn hint_counts(&self) -> HintCounts {
        let mut counts: HintCounts = self
            .hints
            .iter()
            .map(|(owner, (count, bytes))| (owner.clone(), *count, *bytes))
            .collect();
        counts.sort();
        counts
    }
}
