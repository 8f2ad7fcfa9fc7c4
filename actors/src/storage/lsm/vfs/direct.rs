//! Appends that bypass the page cache (`O_DIRECT`), for the commit log.
//!
//! With `SyncPolicy::Always` every group commit is an append followed by an
//! fdatasync. Through the page cache that is a copy into a dirty page, a
//! write-back of that page, then a device cache flush. Written with
//! `O_DIRECT` into space `fallocate` reserved, the append goes to the device
//! at once and the fdatasync is left with the flush (and, once per 4 KiB
//! block, the conversion of the reserved extent to written). On this
//! project's machines that gave 4-10% more single-writer durable commits
//! (`benches/README.md`, "Commit log writes").
//!
//! `O_DIRECT` needs the buffer address, the file offset and the length to be
//! multiples of the device's logical block size. [`DirectWriter`] keeps the
//! last, partial block of the file in an aligned buffer: each append copies
//! its bytes after that partial block and writes from the start of the
//! partial block to the next block boundary, zero-padded. The padding
//! overwrites zeros the preallocation already holds, and the next append
//! rewrites that block with the same old bytes plus its own, so the file
//! reads exactly as if it had been appended to normally. A power cut while
//! the partial block is rewritten is the same torn-tail case as with the
//! page cache, which writes back whole pages too: its earlier bytes are
//! rewritten with the values they already had.
//!
//! Space `fallocate` reserved is *unwritten* to the file system: the first
//! write into a block converts its extent to written, a change of the
//! inode that the next fdatasync must write and wait for, one more device
//! round trip. Converted 4 KiB at a time, that was nearly every group
//! commit's sync once groups carry a few KiB: in a C probe on this
//! project's machines (2 KB appended per fdatasync) 99-100 µs and 40 µs of
//! CPU per append+sync, against 78 µs and 28 µs into blocks already
//! written. So an append that reaches past the blocks written so far writes
//! zeros on to the next [`DIRECT_ZERO_AHEAD_BYTES`] boundary (within the
//! preallocation): one conversion per 64 KiB of log instead of one per 4
//! KiB. The zeros are what the reserved space reads as anyway, and the
//! next appends overwrite them as they overwrite the padding.

use std::fs::File;
use std::io;
use std::path::Path;

/// Buffer, offset and length alignment of every direct write: 4 KiB, a
/// multiple of every common logical block size (512 B or 4 KiB).
pub const DIRECT_ALIGN_BYTES: usize = 4096;

/// An append that reaches past the blocks written so far writes zeros on
/// to the next multiple of this, within the preallocated length (see the
/// module doc): 64 KiB, a sixteenth of the conversions of 4 KiB writes.
pub const DIRECT_ZERO_AHEAD_BYTES: u64 = 64 << 10;

/// The aligned buffer starts this big and grows to the largest append
/// (rounded up to whole blocks); it never shrinks while the file is open.
const DIRECT_BUFFER_BYTES_MIN: usize = 64 << 10;

/// Reserves `len_bytes` of real blocks for `file` (its length becomes
/// `len_bytes`, reading as zeros). `Err` when the file system cannot.
#[cfg(target_os = "linux")]
pub fn allocate(file: &File, len_bytes: u64) -> io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len_bytes)
        .map_err(io::Error::from)
}

/// Reserving blocks is only done on Linux; elsewhere the caller falls back.
#[cfg(not(target_os = "linux"))]
pub fn allocate(_file: &File, _len_bytes: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Where a direct write that must reach `data_end` (block aligned) ends:
/// there when the blocks up to it were written before (`written_end`),
/// else at the next [`DIRECT_ZERO_AHEAD_BYTES`] boundary, but not past the
/// last whole block of the preallocation (`allocated_end`) and never short
/// of `data_end`.
pub fn write_end(data_end: u64, written_end: u64, allocated_end: u64) -> u64 {
    if data_end <= written_end {
        return data_end;
    }
    let allocated_blocks_end = allocated_end - allocated_end % DIRECT_ALIGN_BYTES as u64;
    data_end
        .next_multiple_of(DIRECT_ZERO_AHEAD_BYTES)
        .min(allocated_blocks_end)
        .max(data_end)
}

/// An `O_DIRECT` handle on a file, and the file's partial last block.
pub struct DirectWriter {
    file: File,
    /// Holds the aligned window at `window_start`; never resized in place
    /// (that could move it off the alignment), only replaced.
    buffer: Vec<u8>,
    /// Where the aligned window starts in `buffer`.
    window_start: usize,
    /// Bytes of the aligned window (a multiple of `DIRECT_ALIGN_BYTES`).
    window_bytes: usize,
    /// File offset of the window's first byte (block aligned).
    block_offset: u64,
    /// Bytes of the file's partial last block, at the window's start.
    tail_bytes: usize,
    /// File offset up to which this writer has written blocks (so their
    /// extents are converted).
    written_end: u64,
    /// The preallocated length: zeros are written ahead only up to it.
    allocated_end: u64,
}

impl DirectWriter {
    /// Opens `path` again with `O_DIRECT` to append at `position`, which
    /// must be block aligned (a fresh file is), in a file preallocated to
    /// `allocated_bytes`. `None` when the position is not aligned or the
    /// file system refuses `O_DIRECT` (tmpfs does).
    #[cfg(target_os = "linux")]
    pub fn open(path: &Path, position: u64, allocated_bytes: u64) -> Option<Self> {
        use std::os::unix::fs::OpenOptionsExt;

        if !position.is_multiple_of(DIRECT_ALIGN_BYTES as u64) {
            return None;
        }
        let flags = i32::try_from(rustix::fs::OFlags::DIRECT.bits()).ok()?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(path)
            .ok()?;
        let mut writer = Self {
            file,
            buffer: Vec::new(),
            window_start: 0,
            window_bytes: 0,
            block_offset: position,
            tail_bytes: 0,
            written_end: position,
            allocated_end: allocated_bytes,
        };
        writer.reserve(DIRECT_BUFFER_BYTES_MIN);
        Some(writer)
    }

    /// `O_DIRECT` is only used on Linux.
    #[cfg(not(target_os = "linux"))]
    pub fn open(_path: &Path, _position: u64, _allocated_bytes: u64) -> Option<Self> {
        None
    }

    /// Makes the aligned window at least `bytes` long, keeping the partial
    /// block at its start.
    fn reserve(&mut self, bytes: usize) {
        if bytes <= self.window_bytes {
            return;
        }
        let window_bytes = bytes
            .max(DIRECT_BUFFER_BYTES_MIN)
            .next_multiple_of(DIRECT_ALIGN_BYTES);
        let mut buffer = vec![0u8; window_bytes + DIRECT_ALIGN_BYTES];
        let window_start = buffer.as_ptr().align_offset(DIRECT_ALIGN_BYTES);
        let old = self
            .buffer
            .get(self.window_start..self.window_start + self.tail_bytes)
            .unwrap_or_default();
        if let Some(to) = buffer.get_mut(window_start..window_start + old.len()) {
            to.copy_from_slice(old);
        }
        self.buffer = buffer;
        self.window_start = window_start;
        self.window_bytes = window_bytes;
    }

    /// Writes `bytes` after the file's current end (not yet durable).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;

        let end = self.tail_bytes + bytes.len();
        let padded = self.zeroing_ahead(end.next_multiple_of(DIRECT_ALIGN_BYTES));
        self.reserve(padded);
        let window = self
            .buffer
            .get_mut(self.window_start..self.window_start + padded)
            .ok_or_else(|| io::Error::other("direct write buffer too small"))?;
        let (filled, padding) = window.split_at_mut(end);
        if let Some(to) = filled.get_mut(self.tail_bytes..) {
            to.copy_from_slice(bytes);
        }
        padding.fill(0);
        self.file.write_all_at(window, self.block_offset)?;
        self.written_end = self.written_end.max(self.block_offset + padded as u64);
        let whole = end - end % DIRECT_ALIGN_BYTES;
        window.copy_within(whole..end, 0);
        self.tail_bytes = end - whole;
        self.block_offset += whole as u64;
        Ok(())
    }

    /// The length of a write of `padded` bytes at the window: longer when
    /// it zeroes ahead (see [`write_end`]).
    fn zeroing_ahead(&self, padded: usize) -> usize {
        let end = write_end(
            self.block_offset + padded as u64,
            self.written_end,
            self.allocated_end,
        );
        usize::try_from(end - self.block_offset).unwrap_or(padded)
    }

    /// Makes every appended byte durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use crate::storage::lsm::vfs::{StdVfs, Vfs};

    /// Appends of every awkward size (empty, one byte, exactly a block,
    /// across several blocks, past the preallocated end) read back exactly
    /// as the same appends through the page cache, zeros after them.
    #[test]
    fn direct_appends_read_back_like_ordinary_ones() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = StdVfs;
        let mut sizes = vec![0, 1, 4095, 1, 4096, 8192 + 17, 3, 100_000, 0, 4093];
        let mut rng = SmallRng::seed_from_u64(9);
        sizes.extend((0..300).map(|_| rng.gen_range(0..700)));
        let preallocated = 64 << 10;
        let mut contents = Vec::new();
        let (direct_path, plain_path) = (dir.path().join("direct"), dir.path().join("plain"));
        let mut direct = vfs.create(&direct_path).unwrap();
        direct.preallocate(preallocated).unwrap();
        let bypassed = direct.bypass_page_cache().unwrap();
        let mut plain = vfs.create(&plain_path).unwrap();
        plain.preallocate(preallocated).unwrap();
        for (n, size) in sizes.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..size).map(|_| rng.gen_range(1..=255)).collect();
            direct.append(&bytes).unwrap();
            plain.append(&bytes).unwrap();
            contents.extend_from_slice(&bytes);
            if n % 7 == 0 {
                direct.sync().unwrap();
            }
        }
        direct.sync().unwrap();
        plain.sync().unwrap();
        let direct_bytes = std::fs::read(&direct_path).unwrap();
        let plain_bytes = std::fs::read(&plain_path).unwrap();
        assert!(
            contents.len() > preallocated as usize,
            "the test writes past the preallocation"
        );
        assert_eq!(&direct_bytes[..contents.len()], &contents[..]);
        assert!(direct_bytes[contents.len()..].iter().all(|b| *b == 0));
        assert_eq!(&plain_bytes[..contents.len()], &contents[..]);
        // Where the file system supports it (ext4, xfs, btrfs) the direct
        // path must really be taken, or this test checks nothing new.
        if cfg!(target_os = "linux") && std::env::var_os("RINGKV_ALLOW_NO_DIRECT_IO").is_none() {
            assert!(
                bypassed,
                "O_DIRECT was refused on {}; set RINGKV_ALLOW_NO_DIRECT_IO=1 on a file system without it",
                dir.path().display()
            );
        }
    }

    /// A write into blocks not written before zeroes on to the next 64 KiB
    /// boundary, within the preallocation's whole blocks; one into blocks
    /// already written is only as long as its data.
    #[test]
    fn writes_past_the_written_blocks_zero_ahead_within_the_preallocation() {
        use super::{write_end, DIRECT_ZERO_AHEAD_BYTES};
        const KIB: u64 = 1 << 10;
        let allocated = 32 << 20;
        assert_eq!(DIRECT_ZERO_AHEAD_BYTES, 64 * KIB);
        assert_eq!(write_end(4 * KIB, 0, allocated), 64 * KIB);
        assert_eq!(write_end(8 * KIB, 64 * KIB, allocated), 8 * KIB);
        assert_eq!(write_end(64 * KIB, 64 * KIB, allocated), 64 * KIB);
        assert_eq!(write_end(68 * KIB, 64 * KIB, allocated), 128 * KIB);
        assert_eq!(write_end(200 * KIB, 64 * KIB, allocated), 256 * KIB);
        // Near the end of the preallocation, up to its last whole block.
        assert_eq!(write_end(100 * KIB, 96 * KIB, 110 * KIB + 5), 108 * KIB);
        assert_eq!(write_end(100 * KIB, 96 * KIB, 100 * KIB), 100 * KIB);
        // Past it: only the data (the file grows, nothing is reserved).
        assert_eq!(write_end(120 * KIB, 100 * KIB, 100 * KIB), 120 * KIB);
        assert_eq!(write_end(4 * KIB, 0, 0), 4 * KIB);
    }

    #[test]
    fn without_reserved_blocks_the_page_cache_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = StdVfs.create(&dir.path().join("log")).unwrap();
        assert!(!file.bypass_page_cache().unwrap());
        file.append(b"abc").unwrap();
        file.sync().unwrap();
        assert_eq!(std::fs::read(dir.path().join("log")).unwrap(), b"abc");
    }
}
