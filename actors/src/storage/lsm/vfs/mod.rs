//! The file-system seam: every byte the LSM engine reads or writes goes
//! through [`Vfs`], so tests can swap in [`fault::FaultVfs`] and inject torn
//! writes, power cuts, bit flips and I/O errors.
//!
//! The trait is deliberately small: append-only writable files (the engine
//! never overwrites a byte in place), positional reads, and the directory
//! operations needed for the manifest's write-temp/fsync/rename/fsync-dir dance.

pub mod counting;
mod direct;
pub mod fault;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened for appending. Bytes are durable only after [`sync`](Self::sync).
pub trait WritableFile: Send {
    /// Appends `bytes` at the end of the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable (fsync / fdatasync).
    fn sync(&mut self) -> io::Result<()>;

    /// Extends a freshly created, empty file with zeros to `len_bytes`;
    /// appends then overwrite the zeros from the start. A later fdatasync
    /// need not update the file size, which makes it markedly cheaper (the
    /// commit log uses this). Optional: the default does nothing.
    fn preallocate(&mut self, _len_bytes: u64) -> io::Result<()> {
        Ok(())
    }

    /// Asks that later appends bypass the OS page cache: each `append`
    /// writes whole aligned blocks straight to the device (`O_DIRECT`), so
    /// the following [`sync`](Self::sync) only has to flush the device's
    /// cache instead of first writing back dirty pages. Meant for a freshly
    /// preallocated file that is synced after every append (the commit log
    /// under `SyncPolicy::Always`); the durability rule is unchanged: bytes
    /// are durable only after `sync`. Returns whether it took effect; the
    /// default (and any file system that refuses) keeps ordinary appends.
    fn bypass_page_cache(&mut self) -> io::Result<bool> {
        Ok(false)
    }
}

/// A file opened for positional reads; shared between reader threads.
pub trait ReadableFile: Send + Sync {
    /// Reads exactly `len` bytes at `offset`; a short file is an error.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The file's length in bytes.
    fn len_bytes(&self) -> io::Result<u64>;
}

/// The file system as the engine sees it.
pub trait Vfs: Send + Sync + 'static {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates (or truncates) `path` for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens `path` for reading.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdVfs;

struct StdWritable {
    path: PathBuf,
    file: File,
    /// Bytes appended so far: where the next append goes.
    position: u64,
    /// Whether `preallocate` reserved real blocks (`fallocate`) rather than
    /// a hole: direct writes into a hole fall back to the page cache and
    /// allocate, which would make them slower, not faster.
    allocated: bool,
    /// The length `preallocate` set (0: none).
    allocated_bytes: u64,
    /// Set by `bypass_page_cache`.
    direct: Option<direct::DirectWriter>,
}

impl WritableFile for StdWritable {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.direct {
            Some(direct) => direct.append(bytes)?,
            None => self.file.write_all(bytes)?,
        }
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        match &self.direct {
            Some(direct) => direct.sync(),
            None => self.file.sync_data(),
        }
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        // The write cursor stays at 0: appends overwrite the zeros.
        if direct::allocate(&self.file, len_bytes).is_ok() {
            self.allocated = true;
            self.allocated_bytes = len_bytes;
            return Ok(());
        }
        self.file.set_len(len_bytes)
    }

    fn bypass_page_cache(&mut self) -> io::Result<bool> {
        if self.direct.is_some() {
            return Ok(true);
        }
        if !self.allocated {
            return Ok(false);
        }
        self.direct = direct::DirectWriter::open(&self.path, self.position, self.allocated_bytes);
        Ok(self.direct.is_some())
    }
}

struct StdReadable {
    file: File,
}

impl ReadableFile for StdReadable {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buffer = vec![0; len];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(buffer)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl Vfs for StdVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdWritable {
            path: path.to_owned(),
            file,
            position: 0,
            allocated: false,
            allocated_bytes: 0,
            direct: None,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        let file = File::open(path)?;
        Ok(Arc::new(StdReadable { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// `dir/name`, the one way the engine builds file paths.
pub fn file_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
