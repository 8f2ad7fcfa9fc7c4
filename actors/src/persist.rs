//! Keeps small state (the membership, the hint book) on disk without
//! blocking the arbiter: snapshots go to a thread of their own, which writes
//! only the newest one queued
//! (write a temp file, fsync, rename, fsync the directory: a crash leaves
//! the old list or the new one, never a mix).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};

use tracing::warn;

/// Hands snapshots to the writer thread.
pub struct Persister {
    snapshots: Sender<Vec<u8>>,
}

impl Persister {
    /// Starts the writer thread for `path`.
    pub fn start(path: PathBuf, span: tracing::Span) -> std::io::Result<Self> {
        let (snapshots, queued) = channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("ringkv-persist".into())
            .spawn(move || {
                let _span = span.enter();
                while let Ok(mut bytes) = queued.recv() {
                    // Only the newest snapshot matters.
                    while let Ok(newer) = queued.try_recv() {
                        bytes = newer;
                    }
                    if let Err(e) = write_atomically(&path, &bytes) {
                        warn!(error = %e, file = %path.display(), "could not persist a snapshot");
                    }
                }
            })?;
        Ok(Self { snapshots })
    }

    /// Queues an encoded snapshot (never blocks).
    pub fn save(&self, bytes: Vec<u8>) {
        let _ = self.snapshots.send(bytes);
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_snapshot_lands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members.mpk");
        let p = Persister::start(path.clone(), tracing::Span::none()).unwrap();
        for i in 0..50u8 {
            p.save(vec![i; 10]);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read(&path).ok() != Some(vec![49; 10]) {
            assert!(
                std::time::Instant::now() < deadline,
                "last snapshot never written"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!path.with_extension("tmp").exists());
    }
}
