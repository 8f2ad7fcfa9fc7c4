//! The data directory of a node: who owns it (`NODE_ID`), the lock that
//! keeps a second process out (`LOCK`), the storage engine inside it, and
//! the incarnation of that store (`INCARNATION`, with the `CLEAN_SHUTDOWN`
//! mark that lets a clean restart keep it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringkv_actors::storage::{
    keys, Backend, Engine, LsmEngine, LsmOptions, MemoryEngine, StorageError, StorageThreading,
};
use tracing::info;

use crate::config::{NodeConfig, StorageKind};
use crate::node::{NodeError, MEMBERS_FILE};

/// File in the data dir naming the node that owns it.
const NODE_ID_FILE: &str = "NODE_ID";
/// File in the data dir holding the incarnation of its store (8 hex digits;
/// see `store_incarnation`).
const INCARNATION_FILE: &str = "INCARNATION";
/// File in the data dir written by a clean shutdown (every write taken was
/// durable or failed) and removed at start: an unclean stop leaves none.
const CLEAN_SHUTDOWN_FILE: &str = "CLEAN_SHUTDOWN";
/// Lock file that keeps two processes off one data dir.
const LOCK_FILE: &str = "LOCK";
/// File written, fsynced and removed to check that the disk takes writes
/// again before a failed store is reopened.
const PROBE_FILE: &str = "PROBE";
/// Size of that probe, in bytes: a reopen replays the commit log into a
/// table, which needs room.
const PROBE_BYTES: usize = 1 << 20;
/// The file of the removed `--storage log` engine. A data dir holding one
/// is refused rather than opened as an empty LSM store: its data would be
/// silently invisible, and the node would serve as if it had lost its disk.
const LOG_ENGINE_FILE: &str = "ringkv.log";

/// Opens the data dir (lock, owner check) and the configured engine.
pub fn open_storage(config: &NodeConfig) -> Result<(NodeEnvParts, Option<File>), NodeError> {
    if config.storage == StorageKind::Memory {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::default());
        keys::check_layout(engine.as_ref())?;
        return Ok((
            NodeEnvParts {
                engine,
                members_file: None,
                // Nothing survives a restart, so every start is fresh.
                incarnation: rand::random(),
                backend: Backend::in_memory(),
                storage_threading: config.storage_writer.threading(),
            },
            None,
        ));
    }
    let dir = &config.data_dir;
    let data_err = |reason: String| NodeError::DataDir {
        dir: dir.clone(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| data_err(format!("cannot create: {e}")))?;
    let lock = File::create(dir.join(LOCK_FILE))
        .map_err(|e| data_err(format!("cannot create lock file: {e}")))?;
    lock.try_lock()
        .map_err(|_| data_err("in use by another ringkv process (LOCK is held)".into()))?;
    check_owner(dir, config.id.as_str()).map_err(data_err)?;
    refuse_log_engine_store(dir).map_err(data_err)?;
    let engine = open_lsm(dir, &config.lsm)?;
    let clean = take_clean_shutdown_mark(dir).map_err(data_err)?;
    let incarnation = store_incarnation(dir, engine.as_ref(), clean).map_err(data_err)?;
    let members_file = Some(dir.join(MEMBERS_FILE));
    let backend = Backend {
        reopen: Some({
            let (dir, options) = (dir.clone(), config.lsm.clone());
            Box::new(move || open_lsm(&dir, &options))
        }),
        probe: Some({
            let dir = dir.clone();
            Box::new(move || probe_disk(&dir))
        }),
        renew_incarnation: {
            let dir = dir.clone();
            Box::new(move || {
                let incarnation: u32 = rand::random();
                record_incarnation(&dir, incarnation)?;
                Ok(incarnation)
            })
        },
    };
    Ok((
        NodeEnvParts {
            engine,
            members_file,
            incarnation,
            backend,
            storage_threading: config.storage_writer.threading(),
        },
        Some(lock),
    ))
}

/// The LSM engine of the data dir (in a sub-directory of its own), with
/// this build's key layout; its compactions drop expired values' bytes.
fn open_lsm(dir: &Path, options: &LsmOptions) -> Result<Arc<dyn Engine>, StorageError> {
    let clock = ringkv_actors::clock::SystemClock::new();
    let options = LsmOptions {
        compaction_filter: Some(ringkv_actors::replicator::expiry::expiry_filter(
            move || ringkv_actors::clock::Clock::now_ms(&clock),
        )),
        ..options.clone()
    };
    let engine: Arc<dyn Engine> = Arc::new(LsmEngine::open_dir(dir.join("lsm"), options)?);
    keys::check_layout(engine.as_ref())?;
    Ok(engine)
}

/// Whether the disk under `dir` takes writes: writes, fsyncs and removes
/// [`PROBE_BYTES`].
fn probe_disk(dir: &Path) -> Result<(), String> {
    let path = dir.join(PROBE_FILE);
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create(&path)?;
        std::io::Write::write_all(&mut file, &vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("probe write to {}: {e}", dir.display()))
}

/// Refuses a data dir written by the removed `--storage log` engine.
fn refuse_log_engine_store(dir: &Path) -> Result<(), String> {
    if dir.join(LOG_ENGINE_FILE).exists() {
        return Err(format!(
            "holds {LOG_ENGINE_FILE}, a store of the removed `--storage log` engine, which \
             this version cannot read (the choices are lsm and memory); remove the file to \
             start this node empty, as after a lost disk, and let repair refill it"
        ));
    }
    Ok(())
}

/// Whether the last stop was clean (`CLEAN_SHUTDOWN` present); removes the
/// mark durably, so a crash from here on reads as unclean.
fn take_clean_shutdown_mark(dir: &Path) -> Result<bool, String> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("cannot sync the data dir: {e}"))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {CLEAN_SHUTDOWN_FILE}: {e}")),
    }
}

/// Marks the data dir's last stop as clean. Call only once the Storage
/// actor is closed for writes (`RunningNode::close_writes`) and the engine
/// flushed without error: then every version this node minted is durable.
pub fn record_clean_shutdown(config: &NodeConfig) -> Result<(), String> {
    if config.storage == StorageKind::Memory {
        return Ok(());
    }
    let dir = &config.data_dir;
    File::create(dir.join(CLEAN_SHUTDOWN_FILE))
        .and_then(|f| f.sync_all())
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|e| format!("cannot record {CLEAN_SHUTDOWN_FILE}: {e}"))
}

/// The incarnation of the store in `dir`: the one recorded in
/// `INCARNATION` when the last stop was `clean` and the store holds data,
/// a new random one (recorded durably before any write) otherwise.
///
/// A node picks a key's next version counter from its own stored copy, so
/// its copies must hold every version it minted under its current name.
/// An empty store (a lost disk, a wiped or new data dir) holds none. After
/// an unclean stop (a crash, SIGKILL, a power cut, a poisoned engine) the
/// store may lack a version this node minted and already sent to other
/// replicas: a write coordinator sends the new version out while its own
/// copy is still on the way to the disk (`replicator::write`). Either way it
/// gets a new name. A new name is always safe, whatever the doubt; its only
/// cost is one more clock entry in the objects it writes, which pruning
/// ages out. Two incarnations of one node collide with odds of 2^-32.
fn store_incarnation(dir: &Path, engine: &dyn Engine, clean: bool) -> Result<u32, String> {
    let path = dir.join(INCARNATION_FILE);
    let empty = keys::holds_no_data(engine)
        .map_err(|e| format!("cannot tell whether the store is empty: {e}"))?;
    if clean && !empty {
        let recorded = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| u32::from_str_radix(text.trim(), 16).ok());
        if let Some(incarnation) = recorded {
            return Ok(incarnation);
        }
    }
    let incarnation: u32 = rand::random();
    record_incarnation(dir, incarnation)?;
    info!(
        incarnation = %format!("{incarnation:08x}"),
        empty_store = empty,
        clean_stop = clean,
        "new store incarnation: writes are versioned under a new name"
    );
    Ok(incarnation)
}

/// Records `incarnation` durably in `INCARNATION`.
fn record_incarnation(dir: &Path, incarnation: u32) -> Result<(), String> {
    write_durably(
        dir,
        INCARNATION_FILE,
        format!("{incarnation:08x}\n").as_bytes(),
    )
    .map_err(|e| format!("cannot record {INCARNATION_FILE}: {e}"))
}

/// Writes `contents` to `dir/name` so that a crash or power cut leaves the
/// old file or the whole new one, never a torn or empty one: a temporary
/// file, fsynced, renamed over `name`, then the directory fsynced (only
/// that makes the rename itself durable). A temporary file a crash left
/// behind is overwritten.
fn write_durably(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let path = dir.join(name);
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    std::io::Write::write_all(&mut file, contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()
}

/// The storage half of a [`NodeEnv`](crate::node::NodeEnv).
pub struct NodeEnvParts {
    /// The engine.
    pub engine: Arc<dyn Engine>,
    /// The membership file.
    pub members_file: Option<PathBuf>,
    /// The store's incarnation.
    pub incarnation: u32,
    /// How the storage writer reopens the store and renews its
    /// incarnation after a failed write.
    pub backend: Backend,
    /// Where storage work runs (`--storage-writer`).
    pub storage_threading: StorageThreading,
}

/// A data dir belongs to one node id for life: restarting it under another
/// id would mint versions under a name whose history it does not hold.
fn check_owner(dir: &Path, id: &str) -> Result<(), String> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(owner) if owner.trim() == id => Ok(()),
        Ok(owner) => Err(format!("belongs to node {:?}, not {id:?}", owner.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_durably(dir, NODE_ID_FILE, id.as_bytes())
                .map_err(|e| format!("cannot write {NODE_ID_FILE}: {e}"))
        }
        Err(e) => Err(format!("cannot read {NODE_ID_FILE}: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_store_keeps_its_incarnation_only_across_clean_stops_with_data() {
        use ringkv_actors::storage::WriteOp;

        let dir = tempfile::tempdir().unwrap();
        let engine = MemoryEngine::default();
        let empty_first = store_incarnation(dir.path(), &engine, true).unwrap();
        let empty_again = store_incarnation(dir.path(), &engine, true).unwrap();
        assert_ne!(empty_first, empty_again, "an empty store is always new");

        engine
            .write_batch(&[WriteOp::Put {
                key: keys::data_key(b"k"),
                value: b"v".to_vec(),
            }])
            .unwrap();
        let kept = store_incarnation(dir.path(), &engine, true).unwrap();
        assert_eq!(kept, empty_again, "a store with data keeps its name");
        assert_eq!(store_incarnation(dir.path(), &engine, true).unwrap(), kept);

        let after_crash = store_incarnation(dir.path(), &engine, false).unwrap();
        assert_ne!(after_crash, kept, "an unclean stop gets a new name");

        std::fs::write(dir.path().join(INCARNATION_FILE), "not hex").unwrap();
        let after_damage = store_incarnation(dir.path(), &engine, true).unwrap();
        assert_ne!(
            after_damage, after_crash,
            "an unreadable record gets a new name"
        );
        let text = std::fs::read_to_string(dir.path().join(INCARNATION_FILE)).unwrap();
        assert_eq!(text.trim(), format!("{after_damage:08x}"));
    }

    #[test]
    fn a_data_dir_of_the_removed_log_engine_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(refuse_log_engine_store(dir.path()).is_ok());
        std::fs::write(dir.path().join(LOG_ENGINE_FILE), b"old records").unwrap();
        let e = refuse_log_engine_store(dir.path()).unwrap_err();
        assert!(
            e.contains("--storage log") && e.contains("lsm and memory"),
            "{e}"
        );
    }

    #[test]
    fn the_owner_is_recorded_whole_and_then_enforced() {
        let dir = tempfile::tempdir().unwrap();
        // A temporary file from a crash mid-write does not get in the way.
        std::fs::write(dir.path().join("NODE_ID.tmp"), "half").unwrap();
        check_owner(dir.path(), "n1").unwrap();
        let owner = std::fs::read_to_string(dir.path().join(NODE_ID_FILE)).unwrap();
        assert_eq!(owner, "n1");
        assert!(
            !dir.path().join("NODE_ID.tmp").exists(),
            "renamed into place"
        );
        check_owner(dir.path(), "n1").unwrap();
        let e = check_owner(dir.path(), "n2").unwrap_err();
        assert!(e.contains("belongs to node \"n1\""), "{e}");
    }

    #[test]
    fn the_clean_stop_mark_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_clean_shutdown_mark(dir.path()).unwrap());
        std::fs::write(dir.path().join(CLEAN_SHUTDOWN_FILE), "").unwrap();
        assert!(take_clean_shutdown_mark(dir.path()).unwrap());
        assert!(
            !take_clean_shutdown_mark(dir.path()).unwrap(),
            "removed at start"
        );
    }
}
