//! Small tmpfs file systems for node data dirs (root only), so that a test
//! can fill a node's disk ([`Tmpfs::fill`]) and free it again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the file that fills a disk, in the data dir's root (the node
/// keeps its files in subdirectories and named files it never lists).
const FILLER: &str = "nemesis-filler";

/// A tmpfs of a fixed size mounted at `<tempdir>/data`: a node's data dir
/// there keeps its log (`<data_dir>.log`, written by the harness beside
/// it) on the real disk. Unmounted when dropped (lazily: a node still
/// holding a file open does not keep it mounted).
pub struct Tmpfs {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes (panics when it cannot: the caller
    /// checked that it runs as root).
    pub fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&data)
            .output()
            .unwrap_or_else(|e| panic!("mount: {e}"));
        assert!(
            out.status.success(),
            "mount tmpfs at {}: {}",
            data.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            filler: data.join(FILLER),
            dir,
        }
    }

    /// Where the file system is mounted (the data dir).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Fills the file system with a filler file, then gives back `leave`
    /// bytes of it (the node's next writes fail with ENOSPC soon after).
    /// Returns the filler's size.
    pub fn fill(&self, leave: u64) -> u64 {
        let mut file = std::fs::File::create(&self.filler).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        // The last write may have been partly done: the file's length says.
        let size = file.metadata().unwrap().len().saturating_sub(leave);
        file.set_len(size).unwrap();
        size
    }

    /// Removes the filler: the space is back.
    pub fn free(&self) {
        if let Err(e) = std::fs::remove_file(&self.filler) {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        }
    }

    /// Bytes free on the file system now.
    pub fn available(&self) -> u64 {
        available(&self.path())
    }
}

fn available(path: &Path) -> u64 {
    rustix::fs::statvfs(path).map_or(0, |s| s.f_bavail * s.f_frsize)
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}
