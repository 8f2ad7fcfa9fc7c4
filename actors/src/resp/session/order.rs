//! The per-key order of one connection's commands: a command waits for
//! every earlier command of the connection on one of its keys that is
//! still running, so a GET pipelined behind a SET of the same key sees it;
//! commands on other keys run side by side. Keys are known by a 64-bit
//! hash ([`key_order`]): no copy of a key per command.

use fnv::FnvHashMap;
use tokio::sync::oneshot;

/// The keys a command is ordered by, as their [`key_order`] hashes.
pub(in crate::resp) enum KeyOrder {
    /// A command on no key (INFO, SCAN, KEYS, DBSIZE).
    None,
    /// A command on one key (GET, SET, ...).
    One(u64),
    /// A command on several (MGET, MSET, DEL, EXISTS).
    Many(Vec<u64>),
}

impl KeyOrder {
    /// A command on `key`.
    pub(in crate::resp) fn of(key: &[u8]) -> Self {
        KeyOrder::One(key_order(key))
    }

    /// A command on each of `keys`.
    pub(in crate::resp) fn of_all<'a>(keys: impl IntoIterator<Item = &'a Vec<u8>>) -> Self {
        KeyOrder::Many(keys.into_iter().map(|k| key_order(k)).collect())
    }

    fn hashes(&self) -> &[u64] {
        match self {
            KeyOrder::None => &[],
            KeyOrder::One(hash) => std::slice::from_ref(hash),
            KeyOrder::Many(hashes) => hashes,
        }
    }
}

/// The hash a session orders its commands on a key by. Two keys with one
/// hash (one chance in 2^64 per pair) only make a command wait for an
/// earlier one it did not need to: never a wrong answer.
fn key_order(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The running commands of a connection, by key; each command is known by
/// its reply slot (`seq`).
#[derive(Default)]
pub(in crate::resp) struct KeyTails {
    /// Per key hash, the last command on it still running.
    tails: FnvHashMap<u64, u64>,
    /// Per running command, the commands waiting for it to be done: made
    /// only when a command on one of its keys comes while it runs, so a
    /// command nobody waits for costs a map entry per key and no channel.
    waiters: FnvHashMap<u64, Vec<oneshot::Sender<()>>>,
}

impl KeyTails {
    /// Command `seq` on `keys` starts: answers what it must wait for (one
    /// receiver per earlier running command on one of its keys; each is
    /// sent, or dropped when the session stops, when that one is done).
    pub(in crate::resp) fn enter(
        &mut self,
        keys: &KeyOrder,
        seq: u64,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut before = Vec::new();
        for key in keys.hashes() {
            if let Some(&tail) = self.tails.get(key) {
                let (done, wait) = oneshot::channel::<()>();
                self.waiters.entry(tail).or_default().push(done);
                before.push(wait);
            }
        }
        for &key in keys.hashes() {
            self.tails.insert(key, seq);
        }
        before
    }

    /// Command `seq` on `keys` is done: the commands waiting for it go on.
    pub(in crate::resp) fn leave(&mut self, keys: &KeyOrder, seq: u64) {
        for key in keys.hashes() {
            if self.tails.get(key) == Some(&seq) {
                self.tails.remove(key);
            }
        }
        for done in self.waiters.remove(&seq).into_iter().flatten() {
            let _ = done.send(());
        }
    }

    /// Whether a command on `key` is running.
    pub(in crate::resp) fn running(&self, key: &[u8]) -> bool {
        self.tails.contains_key(&key_order(key))
    }
}
