//! The engines under test behind one interface: ringkv's `LsmEngine`,
//! fjall and sled, each opened the same way (`Kind::open`).

use std::hint::black_box;
use std::path::Path;

use ringkv_actors::storage::lsm::{LsmEngine, LsmOptions, SyncPolicy};
use ringkv_actors::storage::{Engine, WriteOp};

/// What every engine under test can do.
pub(crate) trait Store: Send + Sync {
    fn put(&self, key: &[u8], value: &[u8]);
    fn put_durable(&self, key: &[u8], value: &[u8]);
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn scan(&self, start: &[u8], count: usize) -> usize;
    fn settle(&self);
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Ringkv,
    Fjall,
    Sled,
}

pub(crate) const KINDS: [Kind; 3] = [Kind::Ringkv, Kind::Fjall, Kind::Sled];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ringkv => "ringkv",
            Kind::Fjall => "fjall",
            Kind::Sled => "sled",
        }
    }

    pub(crate) fn open(self, dir: &Path, cache_bytes: usize, durable: bool) -> Box<dyn Store> {
        match self {
            Kind::Ringkv => {
                let sync = if durable {
                    SyncPolicy::Always
                } else {
                    SyncPolicy::Periodic {
                        sync_interval_ms: 1_000,
                    }
                };
                let options = LsmOptions {
                    block_cache_bytes: cache_bytes,
                    sync,
                    ..LsmOptions::default()
                };
                Box::new(LsmEngine::open_dir(dir, options).expect("open ringkv"))
            }
            Kind::Fjall => {
                let keyspace = fjall::Config::new(dir)
                    .cache_size(cache_bytes as u64)
                    .open()
                    .expect("open fjall");
                let partition = keyspace
                    .open_partition("bench", fjall::PartitionCreateOptions::default())
                    .expect("open fjall partition");
                Box::new(FjallStore {
                    keyspace,
                    partition,
                })
            }
            Kind::Sled => Box::new(
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(cache_bytes as u64)
                    .open()
                    .expect("open sled"),
            ),
        }
    }
}

impl Store for LsmEngine {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.write_batch(&[WriteOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }])
        .expect("ringkv put");
    }
    fn put_durable(&self, key: &[u8], value: &[u8]) {
        Store::put(self, key, value);
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        Engine::get(self, key).expect("ringkv get")
    }
    fn scan(&self, start: &[u8], count: usize) -> usize {
        Engine::scan(self, start, None, count)
            .expect("ringkv scan")
            .len()
    }
    fn settle(&self) {
        Engine::flush(self).expect("ringkv flush");
    }
}

struct FjallStore {
    keyspace: fjall::Keyspace,
    partition: fjall::PartitionHandle,
}

impl Store for FjallStore {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.partition.insert(key, value).expect("fjall put");
    }
    fn put_durable(&self, key: &[u8], value: &[u8]) {
        self.put(key, value);
        self.keyspace
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.partition
            .get(key)
            .expect("fjall get")
            .map(|v| v.to_vec())
    }
    fn scan(&self, start: &[u8], count: usize) -> usize {
        let mut found = 0;
        for item in self.partition.range(start.to_vec()..).take(count) {
            black_box(item.expect("fjall scan"));
            found += 1;
        }
        found
    }
    fn settle(&self) {
        self.keyspace
            .persist(fjall::PersistMode::SyncAll)
            .expect("fjall persist");
    }
}

impl Store for sled::Db {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.insert(key, value).expect("sled put");
    }
    fn put_durable(&self, key: &[u8], value: &[u8]) {
        self.insert(key, value).expect("sled put");
        self.flush().expect("sled flush");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        sled::Tree::get(self, key)
            .expect("sled get")
            .map(|v| v.to_vec())
    }
    fn scan(&self, start: &[u8], count: usize) -> usize {
        let mut found = 0;
        for item in self.range(start..).take(count) {
            black_box(item.expect("sled scan"));
            found += 1;
        }
        found
    }
    fn settle(&self) {
        self.flush().expect("sled flush");
    }
}
