//! Tests of the Storage actor (`actor.rs`).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::storage::{KeyValues, MemoryEngine, WriteOp};

/// A memory engine that says it holds in memory only keys ending in
/// `hot`, and counts the reads that reached `get` (a reader thread);
/// it notes the thread and size of each batch written, and says a write
/// may wait (a stall) while `may_wait` is set.
#[derive(Default)]
struct HotCold {
    inner: MemoryEngine,
    gets: AtomicUsize,
    batches: std::sync::Mutex<Vec<(std::thread::ThreadId, usize)>>,
    may_wait: std::sync::atomic::AtomicBool,
    /// How long each batch takes, in milliseconds (a slow disk).
    batch_ms: std::sync::atomic::AtomicU64,
}

impl Engine for HotCold {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn get_cached(&self, key: &[u8]) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        key.ends_with(b"hot").then(|| self.inner.get(key))
    }

    fn write_batch(&self, ops: &[WriteOp]) -> Result<(), StorageError> {
        let batch = (std::thread::current().id(), ops.len());
        self.batches.lock().unwrap().push(batch);
        std::thread::sleep(Duration::from_millis(self.batch_ms.load(Ordering::SeqCst)));
        self.inner.write_batch(ops)
    }

    fn write_may_wait(&self) -> bool {
        self.may_wait.load(Ordering::SeqCst)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyValues, StorageError> {
        self.inner.scan(start, end, limit)
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A store of node n1 on `engine`, not started.
fn storage_on(engine: Arc<HotCold>, threading: StorageThreading) -> Storage {
    Storage::new(
        &NodeId::new("n1").unwrap(),
        engine,
        StorageOptions {
            threading,
            // A writer on the loop keeps its groups there however long a
            // loaded test machine takes over one.
            loop_slow_group_ms: 60_000,
            ..StorageOptions::default()
        },
        Backend::in_memory(),
        1,
    )
    .unwrap()
}

fn put(key: &[u8], value: &[u8]) -> LocalApply {
    let value = value.to_vec();
    LocalApply {
        key: key.to_vec(),
        bytes: value.len(),
        mutation: Box::new(move |_, _| Ok(Some(value))),
        trace: 0,
        minted: None,
        handed_out: false,
        hint_for: None,
    }
}

/// Closes `storage` for writes (its writer, `which`, must end and
/// flush within 10 s), then checks that `queue` refuses a write.
async fn close_and_see_the_queue_refuse(storage: &Addr<Storage>, queue: &WriterQueue, which: &str) {
    let closed = tokio::time::timeout(Duration::from_secs(10), storage.send(CloseWrites)).await;
    let closed = closed.unwrap_or_else(|_| panic!("{which} did not end"));
    assert_eq!(closed.unwrap(), Ok(()));
    let refused = queue.apply(put(b"k-hot", b"late")).await;
    assert!(
        matches!(refused, Err(ApplyError::Storage(StorageError::Stopped))),
        "{refused:?}"
    );
}

/// `MemoryReads` answers what a `LocalRead` answers for keys the
/// engine holds in memory, without a message or a reader, and leaves
/// the rest to Storage; a store served inline leaves it every read.
#[actix_rt::test]
async fn memory_reads_answer_held_keys_and_leave_the_rest_to_storage() {
    let engine = Arc::new(HotCold::default());
    let storage = storage_on(engine.clone(), StorageThreading::Threads);
    let memory = storage.memory_reads();
    let storage = storage.start();
    storage.send(put(b"k-hot", b"h")).await.unwrap().unwrap();
    storage.send(put(b"k-cold", b"c")).await.unwrap().unwrap();
    let writes = engine.gets.load(Ordering::SeqCst);
    assert_eq!(memory.get(b"k-hot").unwrap().unwrap(), Some(b"h".to_vec()));
    assert_eq!(memory.get(b"absent-hot").unwrap().unwrap(), None);
    assert!(memory.get(b"k-cold").is_none(), "needs a reader");
    assert_eq!(engine.gets.load(Ordering::SeqCst), writes);
    assert!(MemoryReads::none().get(b"k-hot").is_none());

    let inline = storage_on(Arc::new(HotCold::default()), StorageThreading::Inline);
    assert!(inline.memory_reads().get(b"k-hot").is_none());
}

/// A write handed to the writer's queue directly is answered and
/// stored as one sent to the actor; once the store is closed for
/// writes, the queue refuses, and the writer thread ends although a
/// caller still holds the queue.
#[actix_rt::test]
async fn writes_handed_to_the_queue_directly_end_with_the_store() {
    let engine = Arc::new(HotCold::default());
    let storage = storage_on(engine.clone(), StorageThreading::Threads);
    let queue = storage.writer_queue().expect("a writer thread");
    let storage = storage.start();
    assert_eq!(
        queue.apply(put(b"k-hot", b"direct")).await.unwrap(),
        Some(b"direct".to_vec())
    );
    assert_eq!(
        storage
            .send(LocalRead {
                key: b"k-hot".to_vec()
            })
            .await
            .unwrap()
            .unwrap(),
        Some(b"direct".to_vec())
    );
    close_and_see_the_queue_refuse(&storage, &queue, "the writer thread").await;
    assert_eq!(
        engine
            .inner
            .get(&keys::data_key(&storage_key(b"k-hot")))
            .unwrap(),
        Some(b"direct".to_vec())
    );

    let inline = storage_on(Arc::new(HotCold::default()), StorageThreading::Inline);
    assert!(
        inline.writer_queue().is_none(),
        "an inline writer takes jobs only through the actor"
    );
}

/// `StorageThreading::Task`: jobs wait in the writer's queue until
/// the writer's task takes them on its tick (on this same thread, so
/// nothing is applied before the test yields), the mint gate is
/// published as by the writer thread (a key whose minting job waits
/// is not minted here; once it is stored, it is), reads are served in
/// place, and closing the store ends the task.
#[actix_rt::test]
async fn a_writer_on_the_clock_holds_jobs_until_its_tick_and_keeps_the_mint_gate() {
    use futures_util::FutureExt as _;
    let engine = Arc::new(HotCold::default());
    let storage = storage_on(engine.clone(), StorageThreading::Task { every_ms: 5 });
    let queue = storage.writer_queue().expect("a queue in task mode");
    let memory = storage.memory_reads();
    let storage = storage.start();
    let mut first = Box::pin(queue.apply(put(b"k-hot", b"v1")));
    assert!(
        first.as_mut().now_or_never().is_none(),
        "applied before a tick"
    );
    assert_eq!(first.await.unwrap(), Some(b"v1".to_vec()));
    assert_eq!(memory.get(b"k-hot").unwrap().unwrap(), Some(b"v1".to_vec()));

    // A version minted here: its job waits for the tick, and while it
    // does the key is not minted here again.
    let permit = queue
        .mint_here(b"k-hot", || memory.get(b"k-hot")?.ok())
        .expect("the gate lets a stored key be minted here");
    assert_eq!(permit.stored, Some(b"v1".to_vec()));
    let stored = permit
        .queue(LocalApply {
            handed_out: true,
            ..put(b"k-hot", b"v2")
        })
        .unwrap();
    assert!(queue.mint_here(b"k-hot", || Some(None)).is_none());
    assert_eq!(stored.await.unwrap(), Some(b"v2".to_vec()));
    assert!(queue.mint_here(b"k-hot", || Some(None)).is_some());

    // A read the engine's memory does not hold: served in place.
    queue.apply(put(b"k-cold", b"c")).await.unwrap();
    let read = storage.send(LocalRead {
        key: b"k-cold".to_vec(),
    });
    assert_eq!(read.await.unwrap().unwrap(), Some(b"c".to_vec()));

    close_and_see_the_queue_refuse(&storage, &queue, "the writer task").await;
}

/// `StorageThreading::Loop`: the writer commits on the event loop (this
/// test's thread), one group for every job queued while it yields; a
/// group while the engine may stall goes to a blocking thread (when
/// `blocking_off_loop`) and is answered all the same; cold reads go to
/// the reader threads; closing the store ends the task after its flush.
#[actix_rt::test]
async fn a_writer_on_the_loop_gathers_a_group_and_hands_stalls_to_a_thread() {
    let engine = Arc::new(HotCold::default());
    let threading = StorageThreading::Loop {
        blocking_off_loop: true,
    };
    let storage = storage_on(engine.clone(), threading);
    let queue = storage.writer_queue().expect("a queue on the loop");
    let storage = storage.start();
    let here = std::thread::current().id();
    // The first group also ends the start-up rebuild of the Merkle
    // leaves (an empty store: one page), on a blocking thread.
    assert_eq!(
        queue.apply(put(b"first-hot", b"1")).await.unwrap(),
        Some(b"1".to_vec())
    );
    engine.batches.lock().unwrap().clear();

    // Twenty jobs queued before the loop runs: one group, on the loop.
    let puts: Vec<_> = (0..20)
        .map(|i| queue.apply(put(format!("k{i}-hot").as_bytes(), b"v")))
        .collect();
    for answer in futures_util::future::join_all(puts).await {
        assert_eq!(answer.unwrap(), Some(b"v".to_vec()));
    }
    assert_eq!(*engine.batches.lock().unwrap(), vec![(here, 20)]);

    // While the engine may stall, the group goes to a thread.
    engine.may_wait.store(true, Ordering::SeqCst);
    engine.batches.lock().unwrap().clear();
    assert_eq!(
        queue.apply(put(b"k-cold", b"c")).await.unwrap(),
        Some(b"c".to_vec())
    );
    let batches = engine.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1);
    assert_ne!(batches[0].0, here, "a group that may stall ran on the loop");

    // A read the engine's memory does not hold: a reader thread's.
    let gets = engine.gets.load(Ordering::SeqCst);
    let read = storage.send(LocalRead {
        key: b"k-cold".to_vec(),
    });
    assert_eq!(read.await.unwrap().unwrap(), Some(b"c".to_vec()));
    assert_eq!(engine.gets.load(Ordering::SeqCst), gets + 1);

    close_and_see_the_queue_refuse(&storage, &queue, "the writer on the loop").await;
}

/// `StorageThreading::Loop`: after a group slower than
/// `loop_slow_group_ms` (a slow disk), the next group goes to a thread,
/// and after one that is fast there, groups are back on the loop.
#[actix_rt::test]
async fn a_writer_on_the_loop_hands_groups_to_a_thread_after_a_slow_one() {
    let engine = Arc::new(HotCold::default());
    let metrics = crate::metrics::Metrics::default();
    let storage = Storage::new(
        &NodeId::new("n1").unwrap(),
        engine.clone(),
        StorageOptions {
            threading: StorageThreading::Loop {
                blocking_off_loop: true,
            },
            // Far above what a batch takes on a loaded machine, far
            // below the slow batch's.
            loop_slow_group_ms: 300,
            metrics: metrics.clone(),
            ..StorageOptions::default()
        },
        Backend::in_memory(),
        1,
    )
    .unwrap();
    let queue = storage.writer_queue().expect("a queue on the loop");
    let _storage = storage.start();
    let here = std::thread::current().id();
    // The start-up rebuild's group, on a thread.
    queue.apply(put(b"first-hot", b"1")).await.unwrap();
    engine.batches.lock().unwrap().clear();
    engine.batch_ms.store(600, Ordering::SeqCst);
    queue.apply(put(b"slow-hot", b"1")).await.unwrap();
    engine.batch_ms.store(0, Ordering::SeqCst);
    queue.apply(put(b"after-hot", b"1")).await.unwrap();
    queue.apply(put(b"again-hot", b"1")).await.unwrap();
    let threads: Vec<bool> = engine
        .batches
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.0 == here)
        .collect();
    assert_eq!(threads, vec![true, false, true], "on the loop, per batch");
    // With the start-up rebuild's group: two on each.
    let text = metrics.encode();
    for on in ["loop", "thread"] {
        let line = format!("ringkv_writer_groups_total{{on=\"{on}\"}} 2");
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// `StorageThreading::Loop` in place (simulations): a group that may stall
/// runs on the loop too, and reads are served in place.
#[actix_rt::test]
async fn a_writer_on_the_loop_in_place_keeps_every_step_on_the_loop() {
    let engine = Arc::new(HotCold::default());
    engine.may_wait.store(true, Ordering::SeqCst);
    let threading = StorageThreading::Loop {
        blocking_off_loop: false,
    };
    let storage = storage_on(engine.clone(), threading);
    let queue = storage.writer_queue().expect("a queue on the loop");
    let storage = storage.start();
    for key in [&b"a-hot"[..], b"b-cold"] {
        assert_eq!(
            queue.apply(put(key, b"v")).await.unwrap(),
            Some(b"v".to_vec())
        );
    }
    let here = std::thread::current().id();
    assert!(engine.batches.lock().unwrap().iter().all(|b| b.0 == here));
    let gets = engine.gets.load(Ordering::SeqCst);
    let read = storage.send(LocalRead {
        key: b"b-cold".to_vec(),
    });
    assert_eq!(read.await.unwrap().unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        engine.gets.load(Ordering::SeqCst),
        gets + 1,
        "served in place"
    );
    close_and_see_the_queue_refuse(&storage, &queue, "the writer on the loop").await;
}

#[actix_rt::test]
async fn reads_held_in_memory_are_answered_without_a_reader_thread() {
    let engine = Arc::new(HotCold::default());
    let storage = storage_on(engine.clone(), StorageThreading::Threads).start();
    storage.send(put(b"k-hot", b"h")).await.unwrap().unwrap();
    storage.send(put(b"k-cold", b"c")).await.unwrap().unwrap();
    // The writer's read-modify-write reads through `get` too.
    let writes = engine.gets.load(Ordering::SeqCst);
    let read = |key: &[u8]| storage.send(LocalRead { key: key.to_vec() });
    assert_eq!(read(b"k-hot").await.unwrap().unwrap(), Some(b"h".to_vec()));
    assert_eq!(read(b"absent-hot").await.unwrap().unwrap(), None);
    assert_eq!(
        engine.gets.load(Ordering::SeqCst),
        writes,
        "no reader was asked"
    );
    assert_eq!(read(b"k-cold").await.unwrap().unwrap(), Some(b"c".to_vec()));
    assert_eq!(
        engine.gets.load(Ordering::SeqCst),
        writes + 1,
        "a reader read the cold key"
    );
}
