//! A [`Vfs`] wrapper that counts the bytes written through it, to measure
//! write amplification (bytes the engine writes per byte the user wrote).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{ReadableFile, Vfs, WritableFile};

/// Forwards every call to `inner` and counts appended bytes.
pub struct CountingVfs<V> {
    inner: V,
    written_bytes: Arc<AtomicU64>,
}

impl<V: Vfs> CountingVfs<V> {
    /// Wraps `inner`.
    pub fn new(inner: V) -> Self {
        Self {
            inner,
            written_bytes: Arc::default(),
        }
    }

    /// A handle on the byte count that outlives the engine owning `self`.
    pub fn written_bytes(&self) -> Arc<AtomicU64> {
        self.written_bytes.clone()
    }
}

struct CountingFile {
    inner: Box<dyn WritableFile>,
    written_bytes: Arc<AtomicU64>,
}

impl WritableFile for CountingFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.written_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.inner.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        self.inner.preallocate(len_bytes)
    }

    fn bypass_page_cache(&mut self) -> io::Result<bool> {
        self.inner.bypass_page_cache()
    }
}

impl<V: Vfs> Vfs for CountingVfs<V> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(CountingFile {
            inner: self.inner.create(path)?,
            written_bytes: self.written_bytes.clone(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        self.inner.open(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}
