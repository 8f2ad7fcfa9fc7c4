//! An in-memory [`Vfs`] that misbehaves on request, for crash and corruption
//! tests.
//!
//! It models the durability rules a careful engine must assume from a POSIX
//! file system:
//! - appended bytes survive a power cut only once the file was synced;
//! - a created, renamed or removed directory entry survives only once its
//!   directory was synced (so an fsynced file whose directory was not synced
//!   can vanish);
//! - a power cut may keep any prefix of the un-synced tail (a torn write).
//!
//! Faults: [`FaultVfs::crash_after`] makes every mutating call fail from the
//! n-th one on (the process "dies" mid-operation), [`FaultVfs::fail_next`]
//! fails one kind of call with an OS error (ENOSPC, EIO),
//! [`FaultVfs::fail_all`] fails every mutating call until lifted, and
//! [`FaultVfs::flip_bit`] damages stored bytes.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{ReadableFile, Vfs, WritableFile};

/// Linux `ENOSPC`: no space left on device.
pub const ENOSPC: i32 = 28;
/// Linux `EIO`: I/O error (what a failed fsync reports).
pub const EIO: i32 = 5;

/// Which call an injected error hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// [`WritableFile::append`].
    Append,
    /// [`WritableFile::sync`].
    Sync,
    /// [`Vfs::rename`].
    Rename,
    /// [`Vfs::sync_dir`].
    SyncDir,
}

/// What a power cut keeps of bytes that were written but never synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsyncedTail {
    /// Everything not synced is lost.
    Lost,
    /// A random prefix of each file's un-synced tail survives (torn writes),
    /// chosen by an RNG with this seed.
    TornPrefix(u64),
}

#[derive(Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a power cut: `data` as of the last sync.
    durable: Vec<u8>,
}

impl Inode {
    /// Length of the prefix `data` and `durable` share: writes since the
    /// last sync all lie after it (files are written front to back).
    fn synced_prefix_len(&self) -> usize {
        self.data
            .iter()
            .zip(&self.durable)
            .take_while(|(a, b)| a == b)
            .count()
    }
}

type InodeRef = Arc<Mutex<Inode>>;

#[derive(Default)]
struct State {
    names: BTreeMap<PathBuf, InodeRef>,
    durable_names: BTreeMap<PathBuf, InodeRef>,
    mutations: u64,
    crash_after_mutations: Option<u64>,
    injected: VecDeque<(FaultOp, i32)>,
    /// Every mutating call fails with this OS error while set.
    failing: Option<i32>,
}

/// The fault-injecting in-memory file system. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct FaultVfs {
    state: Arc<Mutex<State>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the file system from the others.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is gone")
}

impl State {
    /// Counts one mutating call and fails it if the crash point was reached
    /// or an error was injected for `op`.
    fn mutate(&mut self, op: Option<FaultOp>) -> io::Result<()> {
        if let Some(limit) = self.crash_after_mutations {
            if self.mutations >= limit {
                return Err(crashed());
            }
        }
        self.mutations += 1;
        if let Some(code) = self.failing {
            return Err(io::Error::from_raw_os_error(code));
        }
        if let Some(op) = op {
            if let Some(position) = self.injected.iter().position(|(o, _)| *o == op) {
                if let Some((_, code)) = self.injected.remove(position) {
                    return Err(io::Error::from_raw_os_error(code));
                }
            }
        }
        Ok(())
    }
}

impl FaultVfs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file system holding `files`, all durable (see [`Self::snapshot`]).
    pub fn from_snapshot(files: &[(PathBuf, Vec<u8>)]) -> Self {
        let vfs = Self::new();
        {
            let mut state = lock(&vfs.state);
            for (path, data) in files {
                let inode = Arc::new(Mutex::new(Inode {
                    data: data.clone(),
                    durable: data.clone(),
                }));
                state.names.insert(path.clone(), inode.clone());
                state.durable_names.insert(path.clone(), inode);
            }
        }
        vfs
    }

    /// Every file and its current contents.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let state = lock(&self.state);
        state
            .names
            .iter()
            .map(|(path, inode)| (path.clone(), lock(inode).data.clone()))
            .collect()
    }

    /// Every mutating call after the first `mutations` ones fails, as if the
    /// process died there. `None` lifts the limit.
    pub fn crash_after(&self, mutations: Option<u64>) {
        let mut state = lock(&self.state);
        state.mutations = 0;
        state.crash_after_mutations = mutations;
    }

    /// Mutating calls made since the last [`crash_after`](Self::crash_after).
    pub fn mutations(&self) -> u64 {
        lock(&self.state).mutations
    }

    /// The next call of kind `op` fails with OS error `code`.
    pub fn fail_next(&self, op: FaultOp, code: i32) {
        lock(&self.state).injected.push_back((op, code));
    }

    /// Every mutating call fails with OS error `code` until this is called
    /// with `None`: a disk that is full (`ENOSPC`) or failing (`EIO`) for a
    /// while.
    pub fn fail_all(&self, code: Option<i32>) {
        lock(&self.state).failing = code;
    }

    /// Simulates a power cut: un-synced bytes and directory entries are lost
    /// (or torn, per `tail`). Faults are cleared.
    pub fn power_cut(&self, tail: UnsyncedTail) {
        let mut state = lock(&self.state);
        let mut rng = match tail {
            UnsyncedTail::TornPrefix(seed) => Some(SmallRng::seed_from_u64(seed)),
            UnsyncedTail::Lost => None,
        };
        state.names = state.durable_names.clone();
        for inode in state.names.values() {
            let mut inode = lock(inode);
            let synced = inode.synced_prefix_len();
            let unsynced = inode.data.len().saturating_sub(synced);
            let kept = match rng.as_mut() {
                Some(rng) if unsynced > 0 => rng.gen_range(0..=unsynced),
                _ => 0,
            };
            let mut survivor = inode.data.get(..synced + kept).unwrap_or_default().to_vec();
            if let Some(rest) = inode.durable.get(survivor.len()..) {
                survivor.extend_from_slice(rest);
            }
            inode.durable = survivor.clone();
            inode.data = survivor;
        }
        state.crash_after_mutations = None;
        state.injected.clear();
        state.failing = None;
    }

    /// Flips bit `bit` (counted from the file's first byte) of `path`.
    pub fn flip_bit(&self, path: &Path, bit: u64) -> io::Result<()> {
        let inode = self.inode(path)?;
        let mut inode = lock(&inode);
        let index = usize::try_from(bit / 8).map_err(io::Error::other)?;
        if let Some(byte) = inode.durable.get_mut(index) {
            *byte ^= 1 << (bit % 8);
        }
        match inode.data.get_mut(index) {
            Some(byte) => {
                *byte ^= 1 << (bit % 8);
                Ok(())
            }
            None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }

    /// Cuts `path` to `len_bytes` (durably), as a torn append would.
    pub fn truncate(&self, path: &Path, len_bytes: usize) -> io::Result<()> {
        let inode = self.inode(path)?;
        let mut inode = lock(&inode);
        inode.data.truncate(len_bytes);
        inode.durable.truncate(len_bytes);
        Ok(())
    }

    /// Zeroes `path` from `offset` on (durably), as a torn write into
    /// preallocated space leaves it.
    pub fn zero_from(&self, path: &Path, offset: usize) -> io::Result<()> {
        let inode = self.inode(path)?;
        let mut guard = lock(&inode);
        let inode = &mut *guard;
        for bytes in [&mut inode.data, &mut inode.durable] {
            if let Some(tail) = bytes.get_mut(offset..) {
                tail.fill(0);
            }
        }
        Ok(())
    }

    /// A copy of the current contents of `path`.
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        let inode = self.inode(path)?;
        let data = lock(&inode).data.clone();
        Ok(data)
    }

    /// Every file path, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        lock(&self.state).names.keys().cloned().collect()
    }

    fn inode(&self, path: &Path) -> io::Result<InodeRef> {
        lock(&self.state)
            .names
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

struct FaultWritable {
    vfs: FaultVfs,
    inode: InodeRef,
    /// Where the next append lands (before the end after a preallocation).
    position: usize,
}

impl WritableFile for FaultWritable {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        lock(&self.vfs.state).mutate(Some(FaultOp::Append))?;
        let mut inode = lock(&self.inode);
        let end = self.position + bytes.len();
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        if let Some(target) = inode.data.get_mut(self.position..end) {
            target.copy_from_slice(bytes);
        }
        self.position = end;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        lock(&self.vfs.state).mutate(Some(FaultOp::Sync))?;
        let mut inode = lock(&self.inode);
        inode.durable = inode.data.clone();
        Ok(())
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<()> {
        lock(&self.vfs.state).mutate(None)?;
        let len = usize::try_from(len_bytes).map_err(io::Error::other)?;
        let mut inode = lock(&self.inode);
        if inode.data.len() < len {
            inode.data.resize(len, 0);
        }
        Ok(())
    }
}

struct FaultReadable {
    inode: InodeRef,
}

impl ReadableFile for FaultReadable {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let inode = lock(&self.inode);
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        start
            .checked_add(len)
            .and_then(|end| inode.data.get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(lock(&self.inode).data.len() as u64)
    }
}

impl Vfs for FaultVfs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut state = lock(&self.state);
        state.mutate(None)?;
        let inode = InodeRef::default();
        state.names.insert(path.to_owned(), inode.clone());
        Ok(Box::new(FaultWritable {
            vfs: self.clone(),
            inode,
            position: 0,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        Ok(Arc::new(FaultReadable {
            inode: self.inode(path)?,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.mutate(Some(FaultOp::Rename))?;
        let inode = state
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        state.names.insert(to.to_owned(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.mutate(None)?;
        state
            .names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = lock(&self.state);
        Ok(state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.mutate(Some(FaultOp::SyncDir))?;
        let State {
            names,
            durable_names,
            ..
        } = &mut *state;
        durable_names.retain(|path, _| path.parent() != Some(dir));
        for (path, inode) in names.iter() {
            if path.parent() == Some(dir) {
                durable_names.insert(path.clone(), inode.clone());
            }
        }
        Ok(())
    }
}
