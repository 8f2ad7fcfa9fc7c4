//! The writer's reaps, driven job by job: a reaped key does not take back
//! a version its tombstone covers, and a reap removes the object and
//! raises the counter floor durably in one batch.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tokio::sync::oneshot;

use super::engine::Engine;
use super::keys;
use super::lsm::vfs::fault::FaultVfs;
use super::lsm::{LsmEngine, LsmOptions};
use super::worker::{Mutation, WriterJob};
use super::writer::Writer;
use super::writer_tests::{counts, job, merge, writer, Reply};
use super::MemoryEngine;

/// A reap job whose check answers `verdict` (and records what it saw).
fn reap(
    key: &[u8],
    verdict: super::worker::ReapVerdict,
) -> (
    WriterJob,
    oneshot::Receiver<Result<bool, super::StorageError>>,
) {
    reap_casting(key, verdict, b"", 0)
}

/// A reap job whose check answers `verdict` and whose shadow, lasting
/// `for_ms`, covers exactly `covered`.
fn reap_casting(
    key: &[u8],
    verdict: super::worker::ReapVerdict,
    covered: &[u8],
    for_ms: u64,
) -> (
    WriterJob,
    oneshot::Receiver<Result<bool, super::StorageError>>,
) {
    let (reply, rx) = oneshot::channel();
    let covered = covered.to_vec();
    let job = WriterJob::Reap {
        key: keys::data_key(&crate::ring::storage_key(key)),
        decide: Box::new(move |_, _| Ok(verdict)),
        shadow: super::worker::ReapShadow {
            covers: Box::new(move |object| object == covered.as_slice()),
            for_ms,
        },
        reply,
    };
    (job, rx)
}

/// Runs one job alone; its reply.
fn alone(w: &mut Writer, (job, reply): (WriterJob, Reply)) -> Option<Vec<u8>> {
    w.group(vec![job]);
    reply.blocking_recv().unwrap().unwrap()
}

#[test]
fn a_reaped_key_does_not_take_back_a_version_its_tombstone_covers() {
    const DROP: super::worker::ReapVerdict = super::worker::ReapVerdict {
        delete: true,
        counter_floor: 0,
    };
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::default());
    let (mut w, _) = writer(engine.clone(), None);
    let data = |k: &[u8]| keys::data_key(&crate::ring::storage_key(k));
    alone(&mut w, merge(b"k", b"tombstone", None));
    let (job, reply) = reap_casting(b"k", DROP, b"old", 60_000);
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().unwrap());

    // The old value, read before the delete reached its source, lands
    // after the reap: not stored, and no hint is kept for it.
    assert_eq!(alone(&mut w, merge(b"k", b"old", None)), None);
    assert_eq!(alone(&mut w, merge(b"k", b"old", Some("n2"))), None);
    assert_eq!(engine.get(&data(b"k")).unwrap(), None);
    assert_eq!(counts(&mut w), Vec::new());
    // A version the tombstone does not cover is stored.
    assert_eq!(
        alone(&mut w, merge(b"k", b"new", None)),
        Some(b"new".to_vec())
    );
    assert_eq!(engine.get(&data(b"k")).unwrap(), Some(b"new".to_vec()));

    // A member that held nothing when the reap reached it keeps the
    // shadow too; a write later in the same group already sees it.
    let (job, reply) = reap_casting(b"empty", DROP, b"old", 60_000);
    let (late, late_reply) = merge(b"empty", b"old", None);
    w.group(vec![job, late]);
    assert!(
        !reply.blocking_recv().unwrap().unwrap(),
        "nothing to remove"
    );
    assert_eq!(late_reply.blocking_recv().unwrap().unwrap(), None);
    assert_eq!(engine.get(&data(b"empty")).unwrap(), None);

    // A shadow that has ended covers nothing.
    alone(&mut w, merge(b"brief", b"tombstone", None));
    let (job, reply) = reap_casting(b"brief", DROP, b"old", 0);
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().unwrap());
    assert_eq!(
        alone(&mut w, merge(b"brief", b"old", None)),
        Some(b"old".to_vec())
    );
}

/// A mutation that records the counter floor it was given.
fn floor_probe(key: &[u8]) -> (WriterJob, Reply) {
    let mutation: Mutation =
        Box::new(|_, mint| Ok(Some(mint.counter_floor.to_be_bytes().to_vec())));
    job(key, mutation, 8, None, None)
}

#[test]
fn a_reap_removes_the_object_and_raises_the_floor_durably_in_one_batch() {
    let vfs = FaultVfs::new();
    let open = || -> Arc<dyn Engine> {
        Arc::new(LsmEngine::open(Arc::new(vfs.clone()), "/db", LsmOptions::default()).unwrap())
    };
    let engine = open();
    let (mut w, _) = writer(engine.clone(), None);
    let (put, reply) = merge(b"k", b"tombstone", None);
    w.group(vec![put]);
    reply.blocking_recv().unwrap().unwrap();

    let (job, reply) = reap(
        b"k",
        super::worker::ReapVerdict {
            delete: true,
            counter_floor: 7,
        },
    );
    // A mint later in the same group already sees the raised floor.
    let (probe, probed) = floor_probe(b"other");
    w.group(vec![job, probe]);
    assert!(reply.blocking_recv().unwrap().unwrap(), "removed");
    assert_eq!(
        probed.blocking_recv().unwrap().unwrap().unwrap(),
        7u64.to_be_bytes()
    );
    let data = keys::data_key(&crate::ring::storage_key(b"k"));
    assert_eq!(engine.get(&data).unwrap(), None);
    assert_eq!(w.counter_floor(), 7);
    // A coordinator that sees the key gone mints above it too.
    assert_eq!(w.gate().minting_as().unwrap().counter_floor, 7);

    // A check that keeps the object: nothing removed; a lower floor does
    // not lower it.
    let (put, reply) = merge(b"k2", b"value", None);
    w.group(vec![put]);
    reply.blocking_recv().unwrap().unwrap();
    let (job, reply) = reap(
        b"k2",
        super::worker::ReapVerdict {
            delete: false,
            counter_floor: 3,
        },
    );
    w.group(vec![job]);
    assert!(!reply.blocking_recv().unwrap().unwrap(), "kept");
    let data2 = keys::data_key(&crate::ring::storage_key(b"k2"));
    assert!(engine.get(&data2).unwrap().is_some());
    assert_eq!(w.counter_floor(), 7);

    // The floor survives a restart (the engine reopened from its files).
    drop(w);
    engine.flush().unwrap();
    drop(engine);
    let (mut again, _) = writer(open(), None);
    assert_eq!(again.counter_floor(), 7);
    let (probe, probed) = floor_probe(b"after");
    again.group(vec![probe]);
    assert_eq!(
        probed.blocking_recv().unwrap().unwrap().unwrap(),
        7u64.to_be_bytes()
    );
}
