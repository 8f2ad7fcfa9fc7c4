//! Executing handoff transfers: pulling a token range from a peer into the
//! local store (a joining node), or pushing a local range to a peer (a
//! leaving node). Every object is merged on arrival, so a transfer can be
//! retried or overlap with live writes without losing anything. Paced by
//! [`Throttle`] so streaming never starves client traffic.

use std::time::Duration;

use serde_bytes::ByteBuf;

use super::handoff::Transfer;
use super::RepairError;
use crate::replicas::Replicas;
use crate::ring::user_key;
use crate::storage::LocalScan;
use crate::wire::peer::ScanRange;

/// Entries asked for per scan page.
pub const STREAM_PAGE_ENTRIES: usize = 256;
/// Bytes of keys and objects asked for per scan page: with large objects a
/// page of `STREAM_PAGE_ENTRIES` would not fit one peer frame.
pub const STREAM_PAGE_BYTES: u64 = 1 << 20;

/// What one transfer moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Objects copied.
    pub keys: u64,
    /// Bytes of keys and objects copied.
    pub bytes: u64,
    /// Objects that changed the receiving copy (pulls only: a push does
    /// not learn it).
    pub changed: u64,
}

impl std::ops::AddAssign for StreamStats {
    fn add_assign(&mut self, other: Self) {
        self.keys += other.keys;
        self.bytes += other.bytes;
        self.changed += other.changed;
    }
}

/// Paces streaming to `bytes_per_s_max`: pure arithmetic over what was sent
/// and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    /// The limit, in bytes per second.
    pub bytes_per_s_max: u64,
}

impl Throttle {
    /// How long to wait, after sending `bytes` in `elapsed`, to stay under
    /// the limit.
    pub fn delay(&self, bytes: u64, elapsed: Duration) -> Duration {
        if self.bytes_per_s_max == 0 {
            return Duration::ZERO;
        }
        let due = Duration::from_secs_f64(bytes as f64 / self.bytes_per_s_max as f64);
        due.saturating_sub(elapsed)
    }
}

/// Copies every object of `transfer.range` from `transfer.source` into the
/// local store (this node is the target).
pub async fn pull(
    replicas: &Replicas,
    transfer: &Transfer,
    throttle: Throttle,
    timeout_ms: u64,
    trace: u64,
) -> Result<StreamStats, RepairError> {
    let mut stats = StreamStats::default();
    let started = tokio::time::Instant::now();
    for (start, end) in transfer.range.storage_ranges() {
        let mut cursor = start;
        loop {
            let request = ScanRange {
                start: ByteBuf::from(cursor.clone()),
                end: end.clone().map(ByteBuf::from),
                limit: STREAM_PAGE_ENTRIES as u32,
                bytes_max: STREAM_PAGE_BYTES,
            };
            let page = match replicas
                .call(&transfer.source, request, trace, timeout_ms)
                .await
            {
                Ok(page) => page,
                Err(source) => {
                    return Err(RepairError::PeerScan {
                        peer: transfer.source.clone(),
                        source,
                    })
                }
            };
            for (key, object) in page.entries {
                let (key, object) = (key.into_vec(), object.into_vec());
                let user = user_key(&key)
                    .ok_or(RepairError::ShortKey("scanned"))?
                    .to_vec();
                let bytes = (key.len() + object.len()) as u64;
                let changed = replicas
                    .merge_locally(user, object, None, trace)
                    .await
                    .map_err(RepairError::LocalMerge)?;
                stats += StreamStats {
                    keys: 1,
                    bytes,
                    changed: u64::from(changed.is_some()),
                };
                cursor = successor(&key);
            }
            if let Some(resume) = page.resume {
                // The source skipped keys we do not share past the last
                // entry; never step back.
                cursor = cursor.max(resume.into_vec());
            }
            tokio::time::sleep(throttle.delay(stats.bytes, started.elapsed())).await;
            if !page.more {
                break;
            }
        }
    }
    Ok(stats)
}

/// Copies every local object of `transfer.range` to `transfer.target`
/// (this node is the source).
pub async fn push(
    replicas: &Replicas,
    transfer: &Transfer,
    throttle: Throttle,
    timeout_ms: u64,
    trace: u64,
) -> Result<StreamStats, RepairError> {
    let mut stats = StreamStats::default();
    let started = tokio::time::Instant::now();
    for (start, end) in transfer.range.storage_ranges() {
        let mut cursor = start;
        loop {
            let scan = replicas.storage.send(LocalScan {
                start: cursor.clone(),
                end: end.clone(),
                limit: STREAM_PAGE_ENTRIES,
                bytes_max: STREAM_PAGE_BYTES as usize,
            });
            let page = match scan.await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => return Err(RepairError::LocalScan(e)),
                Err(e) => return Err(RepairError::StorageGone(e)),
            };
            for (key, object) in page.entries {
                let user = user_key(&key).ok_or(RepairError::ShortKey("stored"))?;
                let bytes = (key.len() + object.len()) as u64;
                replicas
                    .write(&transfer.target, user.to_vec(), object, trace, timeout_ms)
                    .await
                    .map_err(|source| RepairError::PeerWrite {
                        peer: transfer.target.clone(),
                        source,
                    })?;
                stats += StreamStats {
                    changed: 0,
                    keys: 1,
                    bytes,
                };
                cursor = successor(&key);
            }
            tokio::time::sleep(throttle.delay(stats.bytes, started.elapsed())).await;
            if !page.more {
                break;
            }
        }
    }
    Ok(stats)
}

/// The smallest key greater than `key`.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_only_when_ahead_of_the_limit() {
        let t = Throttle {
            bytes_per_s_max: 1000,
        };
        assert_eq!(
            t.delay(500, Duration::from_millis(100)),
            Duration::from_millis(400)
        );
        assert_eq!(t.delay(500, Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(
            Throttle { bytes_per_s_max: 0 }.delay(1 << 30, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn successor_is_the_next_key() {
        assert!(successor(b"ab").as_slice() > &b"ab"[..]);
        assert!(successor(b"ab").as_slice() < &b"ab\x00\x00"[..]);
    }
}
