//! The file-system seam: every byte the LSM engine reads or writes goes
//! through [`Vfs`], so tests can swap in [`fault::FaultVfs`] and inject torn
//! writes, power cuts, bit flips and I/O errors.
//!
//! The trait is deliberately small: append-only writable files (the engine
//! never overwrites a byte in place), positional reads, and the directory
//! operations needed for the manifest's write-temp/fsync/rename/fsync-dir dance.

pub mod counting;
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
    file: File,
}

impl WritableFile for StdWritable {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        // The write cursor stays at 0: appends overwrite the zeros.
        self.file.set_len(len_bytes)
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
        Ok(Box::new(StdWritable { file }))
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
