//! `LogEngine`: the simple durable backend that serves until the LSM engine
//! lands — an append-only log of checksummed records, fsynced before a batch
//! is acknowledged, replayed into an in-memory map on open.
//!
//! Temporary by design: the whole data set lives in memory and the log is
//! never compacted. It exists so that data survives restarts from day one.
//!
//! ## Format
//!
//! The file `ringkv.log` is a sequence of records:
//!
//! ```text
//! +-------------+--------------+-------------+-------------------------+
//! | len: u32 BE | crc: u32 BE  | seq: u64 BE | payload (len bytes)     |
//! +-------------+--------------+-------------+-------------------------+
//! payload = op: u8 (1 put, 2 delete) | key_len: u32 BE | key | value
//! ```
//!
//! `crc` is CRC32C over `seq` and the payload. On open, a record that is
//! incomplete or fails its checksum *and reaches the end of the file* is a
//! torn final write and is cut off; a bad record followed by more data is
//! corruption and opening fails, naming the file and offset.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::engine::{Engine, KeyValues, StorageError, WriteOp};
use super::memory_engine::MemoryEngine;

/// File name of the log inside the data directory.
pub const LOG_FILE_NAME: &str = "ringkv.log";
/// Bytes before the payload: len, crc, seq.
const RECORD_HEADER_BYTES: usize = 4 + 4 + 8;
/// Largest payload accepted on replay; anything bigger is corruption (a
/// record holds one key and one value, both far smaller).
const RECORD_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// The append-only log engine.
pub struct LogEngine {
    path: PathBuf,
    /// The log file and the next sequence number, written under one lock.
    log: Mutex<(File, u64)>,
    /// Everything, in memory (the memory engine serves every read).
    map: MemoryEngine,
    /// Set once an fsync failed: writes are refused from then on.
    poisoned: Mutex<Option<String>>,
}

impl LogEngine {
    /// Opens (or creates) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(LOG_FILE_NAME);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(format!("opening {}", path.display()), e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io(format!("reading {}", path.display()), e))?;
        let (map, next_seq, good_len) = replay(&path, &bytes)?;
        if good_len < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                offset = good_len,
                dropped_bytes = bytes.len() - good_len,
                "dropping a torn final record from the log"
            );
            file.set_len(good_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io(format!("truncating {}", path.display()), e))?;
        }
        Ok(Self {
            path,
            log: Mutex::new((file, next_seq)),
            map,
            poisoned: Mutex::new(None),
        })
    }

    fn poison_reason(&self) -> Option<String> {
        self.poisoned
            .lock()
            .map(|p| p.clone())
            .unwrap_or(Some("lock poisoned".into()))
    }
}

fn io(context: String, source: std::io::Error) -> StorageError {
    StorageError::Io { context, source }
}

/// Replays `bytes`; returns the map, the next sequence number and the length
/// of the valid prefix.
fn replay(path: &Path, bytes: &[u8]) -> Result<(MemoryEngine, u64, usize), StorageError> {
    let map = MemoryEngine::default();
    let mut offset = 0usize;
    let mut next_seq = 1u64;
    while offset < bytes.len() {
        match decode_record(&bytes[offset..]) {
            Ok((seq, op, consumed)) => {
                map.write_batch(std::slice::from_ref(&op))?;
                next_seq = seq + 1;
                offset += consumed;
            }
            Err(reason) => {
                let record_end = record_extent(&bytes[offset..]).map(|n| offset + n);
                let torn = record_end.is_none_or(|end| end >= bytes.len());
                if torn {
                    return Ok((map, next_seq, offset));
                }
                return Err(StorageError::Corruption {
                    file: path.to_path_buf(),
                    offset: offset as u64,
                    reason,
                });
            }
        }
    }
    Ok((map, next_seq, offset))
}

/// Total bytes the record at the start of `bytes` claims, if its header is whole.
fn record_extent(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    Some(RECORD_HEADER_BYTES + len)
}

fn decode_record(bytes: &[u8]) -> Result<(u64, WriteOp, usize), String> {
    let total = record_extent(bytes).ok_or("incomplete record header")?;
    if total - RECORD_HEADER_BYTES > RECORD_PAYLOAD_BYTES_MAX {
        return Err(format!("record length {total} over the limit"));
    }
    let record = bytes.get(..total).ok_or("incomplete record")?;
    let crc = u32::from_be_bytes(record[4..8].try_into().map_err(|_| "short header")?);
    let checked = &record[8..];
    if crc32c::crc32c(checked) != crc {
        return Err("checksum mismatch".into());
    }
    let seq = u64::from_be_bytes(checked[..8].try_into().map_err(|_| "short header")?);
    let payload = &checked[8..];
    let (&op, rest) = payload.split_first().ok_or("empty payload")?;
    let key_len = u32::from_be_bytes(
        rest.get(..4)
            .ok_or("short payload")?
            .try_into()
            .map_err(|_| "short payload")?,
    ) as usize;
    let key = rest
        .get(4..4 + key_len)
        .ok_or("key runs past the record")?
        .to_vec();
    let value = rest.get(4 + key_len..).ok_or("short payload")?.to_vec();
    let op = match op {
        OP_PUT => WriteOp::Put { key, value },
        OP_DELETE => WriteOp::Delete { key },
        other => return Err(format!("unknown op {other}")),
    };
    Ok((seq, op, total))
}

fn encode_record(seq: u64, op: &WriteOp, out: &mut Vec<u8>) {
    let (tag, key, value): (u8, &[u8], &[u8]) = match op {
        WriteOp::Put { key, value } => (OP_PUT, key, value),
        WriteOp::Delete { key } => (OP_DELETE, key, &[]),
    };
    let payload_len = 1 + 4 + key.len() + value.len();
    let start = out.len();
    out.extend_from_slice(&(payload_len as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(tag);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

fn lock_error() -> StorageError {
    StorageError::Stopped
}

impl Engine for LogEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.map.get(key)
    }

    fn write_batch(&self, ops: &[WriteOp]) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Some(reason) = self.poison_reason() {
            return Err(StorageError::Poisoned { reason });
        }
        let mut log = self.log.lock().map_err(|_| lock_error())?;
        let mut buf = Vec::new();
        for op in ops {
            encode_record(log.1, op, &mut buf);
            log.1 += 1;
        }
        let written = log.0.write_all(&buf).and_then(|()| log.0.sync_data());
        if let Err(e) = written {
            let reason = format!("write or fsync of {} failed: {e}", self.path.display());
            tracing::error!(%reason, "storage poisoned: refusing writes from now on");
            if let Ok(mut p) = self.poisoned.lock() {
                *p = Some(reason.clone());
            }
            return Err(StorageError::Poisoned { reason });
        }
        self.map.write_batch(ops)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyValues, StorageError> {
        self.map.scan(start, end, limit)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Every acknowledged batch is already fsynced.
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> WriteOp {
        WriteOp::Put {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.write_batch(&[put("a", "1"), put("b", "2")]).unwrap();
            e.write_batch(&[WriteOp::Delete { key: b"a".to_vec() }, put("c", "3")])
                .unwrap();
        }
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.get(b"a").unwrap(), None);
        assert_eq!(e.get(b"b").unwrap(), Some(b"2".to_vec()));
        let all = e.scan(b"", None, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(e.scan(b"a", Some(b"c"), 10).unwrap().len(), 1);
    }

    #[test]
    fn torn_tail_is_dropped_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        e.write_batch(&[put("a", "1")]).unwrap();
        e.write_batch(&[put("b", "2")]).unwrap();
        drop(e);
        let path = dir.path().join(LOG_FILE_NAME);
        let full = std::fs::read(&path).unwrap();
        let first_len = full.len() / 2;
        for cut in first_len..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let e = LogEngine::open(dir.path()).unwrap();
            assert_eq!(e.get(b"a").unwrap(), Some(b"1".to_vec()), "cut {cut}");
            assert_eq!(e.get(b"b").unwrap(), None, "cut {cut}");
            // The torn bytes are gone, so new writes follow the good prefix.
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first_len);
        }
    }

    #[test]
    fn corruption_in_the_middle_is_an_error_naming_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        e.write_batch(&[put("a", "1")]).unwrap();
        e.write_batch(&[put("b", "2")]).unwrap();
        drop(e);
        let path = dir.path().join(LOG_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[RECORD_HEADER_BYTES + 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        match LogEngine::open(dir.path()) {
            Err(StorageError::Corruption { offset, .. }) => assert_eq!(offset, 0),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("corruption was not detected"),
        }
    }
}
