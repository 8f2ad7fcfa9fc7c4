//! The writer's rules, driven job by job: a dot is never minted twice
//! after a failed write, a failed batch fails every job in it, hints are
//! durable with their object, bounded per owner and cleared only when
//! still current, and a poisoned store is reopened (reaps: in
//! `writer_reap_tests.rs`, with these helpers).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;

use super::engine::Engine;
use super::keys::{self, HintRecord};
use super::lsm::vfs::fault::{FaultOp, FaultVfs, EIO};
use super::lsm::{LsmEngine, LsmOptions};
use super::worker::{ApplyError, ApplyJob, EngineSlot, HintCounts, Mutation, WriterJob};
use super::writer::{Answer, Backend, MintState, Writer, WriterLimits};
use super::MemoryEngine;
use crate::NodeId;

const LIMITS: WriterLimits = WriterLimits {
    batch_max: 64,
    batch_bytes_max: 1 << 20,
    hints_bytes_max_per_target: 100,
    reopen_interval_ms: 0,
};

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

pub(super) type Reply = oneshot::Receiver<Result<Option<Vec<u8>>, ApplyError>>;

/// A job whose mutation stores the name it was minted under.
fn mint(key: &[u8]) -> (WriterJob, oneshot::Receiver<Vec<u8>>, Reply) {
    let mutation: Mutation = Box::new(|_, mint| Ok(Some(mint.actor.as_str().as_bytes().to_vec())));
    let (minted_tx, minted) = oneshot::channel();
    let (job, reply) = job(key, mutation, 8, Some(minted_tx), None);
    (job, minted, reply)
}

/// Asserts that `w` refuses a minting job of `key`: nothing minted, the
/// job answered `CannotMint`.
fn refuses_to_mint(w: &mut Writer, key: &[u8]) {
    let (job, minted, reply) = mint(key);
    w.group(vec![job]);
    assert!(minted.blocking_recv().is_err(), "nothing minted");
    assert!(matches!(
        reply.blocking_recv().unwrap(),
        Err(ApplyError::CannotMint { .. })
    ));
}

/// A replica-side job storing `value` (a hinted one with `hint_for`).
pub(super) fn merge(key: &[u8], value: &[u8], hint_for: Option<&str>) -> (WriterJob, Reply) {
    let stored = value.to_vec();
    let mutation: Mutation = Box::new(move |_, _| Ok(Some(stored)));
    job(key, mutation, value.len(), None, hint_for.map(id))
}

pub(super) fn job(
    key: &[u8],
    mutation: Mutation,
    bytes: usize,
    minted: Option<oneshot::Sender<Vec<u8>>>,
    hint_for: Option<NodeId>,
) -> (WriterJob, Reply) {
    let (reply, rx) = oneshot::channel();
    let job = WriterJob::Apply(ApplyJob {
        key: keys::data_key(&crate::ring::storage_key(key)),
        user_key: key.to_vec(),
        mutation,
        trace: 0,
        bytes,
        reply,
        minted,
        handed_out: false,
        hint_for,
    });
    (job, rx)
}

/// Sends every answer the writer handed over (what the Storage actor does).
fn send_handed_over(deliveries: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Answer>>) {
    while let Ok(answers) = deliveries.try_recv() {
        answers.into_iter().for_each(Answer::send);
    }
}

pub(super) fn counts(writer: &mut Writer) -> HintCounts {
    let (reply, rx) = oneshot::channel();
    writer.group(vec![WriterJob::HintCounts { reply }]);
    rx.blocking_recv().unwrap()
}

/// A writer over `engine`, renewing incarnations 2, 3, ... and recording
/// every minting state it publishes.
pub(super) fn writer(
    engine: Arc<dyn Engine>,
    reopen: Option<FaultVfs>,
) -> (Writer, Arc<Mutex<Vec<MintState>>>) {
    let slot: EngineSlot = Arc::new(RwLock::new(engine));
    let published = Arc::new(Mutex::new(Vec::new()));
    let seen = published.clone();
    let mut next = 1u32;
    let backend = Backend {
        reopen: reopen.map(|vfs| {
            Box::new(move || {
                let engine: Arc<dyn Engine> = Arc::new(LsmEngine::open(
                    Arc::new(vfs.clone()),
                    "/db",
                    LsmOptions::default(),
                )?);
                Ok(engine)
            }) as super::writer::Reopen
        }),
        probe: None,
        renew_incarnation: Box::new(move || {
            next += 1;
            Ok(next)
        }),
    };
    let w = Writer::new(
        slot,
        backend,
        id("n1"),
        1,
        LIMITS,
        Box::new(move |state| seen.lock().unwrap().push(state)),
        Arc::new(super::tree::KeyTree::new(super::tree::raw_digest())),
    )
    .unwrap();
    (w, published)
}

#[test]
fn after_a_failed_batch_that_handed_out_a_version_no_dot_is_minted_again_under_that_name() {
    let vfs = FaultVfs::new();
    let engine =
        Arc::new(LsmEngine::open(Arc::new(vfs.clone()), "/db", LsmOptions::default()).unwrap());
    let (mut w, published) = writer(engine, Some(vfs.clone()));
    // Coordinators minting on their own thread see the same name.
    let gate = w.gate();
    let minting = |gate: &super::writer::MintGate| gate.minting_as().map(|m| m.actor);
    assert_eq!(minting(&gate), Some(id("n1").version_actor(1)));
    let (job, minted, reply) = mint(b"k0");
    w.group(vec![job]);
    assert_eq!(minted.blocking_recv().unwrap(), b"n1#00000001");
    assert!(reply.blocking_recv().unwrap().is_ok());

    // The version is handed out, then its batch fails (a failed fsync).
    vfs.fail_next(FaultOp::Sync, EIO);
    let (job, minted, reply) = mint(b"k1");
    w.group(vec![job]);
    assert_eq!(minted.blocking_recv().unwrap(), b"n1#00000001");
    assert!(matches!(
        reply.blocking_recv().unwrap(),
        Err(ApplyError::Storage(_))
    ));
    assert!(published.lock().unwrap().last().unwrap().stopped.is_some());
    assert_eq!(minting(&gate), None, "nor on a coordinator's thread");

    // From now on nothing is minted under n1#00000001: the next write of
    // k1 would reuse the dot the failed one handed out.
    refuses_to_mint(&mut w, b"k1");

    // Recovery reopens the store from what is durable and takes a new name.
    w.recover(u64::MAX);
    let state = published.lock().unwrap().last().cloned().unwrap();
    assert_eq!(state.stopped, None);
    assert_eq!(state.version_actor.as_str(), "n1#00000002");
    assert_eq!(minting(&gate), Some(id("n1").version_actor(2)));
    let (job, minted, reply) = mint(b"k1");
    w.group(vec![job]);
    assert_eq!(minted.blocking_recv().unwrap(), b"n1#00000002");
    assert!(reply.blocking_recv().unwrap().is_ok());
    let (job, reply) = merge(b"k0", b"again", None);
    w.group(vec![job]);
    assert!(
        reply.blocking_recv().unwrap().is_ok(),
        "the reopened store takes writes"
    );
}

/// A job storing a version its coordinator minted on its own thread and
/// handed out (`handed_out`).
fn handed_out(key: &[u8], value: &[u8]) -> (WriterJob, Reply) {
    let (mut job, reply) = merge(key, value, None);
    if let WriterJob::Apply(apply) = &mut job {
        apply.handed_out = true;
    }
    (job, reply)
}

/// A version a coordinator minted on its own thread and handed out is
/// stored even while the writer mints nothing (its dot is fresh: the
/// coordinator minted it only with no minting job of the key pending),
/// and when its batch fails the writer stops minting, as for a version it
/// handed out itself.
#[test]
fn a_version_handed_out_already_is_stored_even_while_minting_is_stopped_and_its_loss_stops_minting()
{
    let vfs = FaultVfs::new();
    let engine =
        Arc::new(LsmEngine::open(Arc::new(vfs.clone()), "/db", LsmOptions::default()).unwrap());
    let (mut w, published) = writer(engine.clone(), None);
    vfs.fail_next(FaultOp::Sync, EIO);
    let (job, reply) = handed_out(b"k", b"v1");
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().is_err());
    assert!(
        published.lock().unwrap().last().unwrap().stopped.is_some(),
        "a lost version that was handed out stops minting"
    );
    assert!(w.gate().minting_as().is_none());
    // The engine refuses writes now (poisoned), so the job fails, but as a
    // storage error, not as a refusal to mint.
    let (job, reply) = handed_out(b"k", b"v2");
    w.group(vec![job]);
    assert!(matches!(
        reply.blocking_recv().unwrap(),
        Err(ApplyError::Storage(_))
    ));

    // A writer that stopped minting over a memory store that takes writes
    // (its minting job was refused) still stores a handed-out version.
    let (mut w, _) = writer(Arc::new(MemoryEngine::default()), None);
    let (job, _, _) = mint(b"x");
    w.group(vec![job]);
    w.stop_minting_for_test("a test");
    refuses_to_mint(&mut w, b"k");
    let (job, reply) = handed_out(b"k", b"v3");
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().is_ok(), "stored");
}

/// A handed-out version whose job fails before its batch (its stored
/// object does not decode, so it cannot be merged in) stops minting too.
#[test]
fn a_handed_out_version_that_cannot_be_stored_stops_minting() {
    let (mut w, published) = writer(Arc::new(MemoryEngine::default()), None);
    let (stored, reply) = merge(b"k", b"v", None);
    w.group(vec![stored]);
    assert!(reply.blocking_recv().unwrap().is_ok());
    assert!(w.gate().minting_as().is_some());
    let refused: Mutation = Box::new(|_, _| {
        Err(crate::wire::client::ClientError::new(
            crate::wire::client::ErrorCode::Internal,
            "stored object does not decode",
        ))
    });
    let (mut lost, reply) = job(b"k", refused, 0, None, None);
    if let WriterJob::Apply(apply) = &mut lost {
        apply.handed_out = true;
    }
    w.group(vec![lost]);
    assert!(reply.blocking_recv().unwrap().is_err());
    assert!(published.lock().unwrap().last().unwrap().stopped.is_some());
    assert!(w.gate().minting_as().is_none());
}

#[test]
fn every_job_of_a_failed_batch_fails_even_one_that_changed_nothing() {
    let vfs = FaultVfs::new();
    let engine =
        Arc::new(LsmEngine::open(Arc::new(vfs.clone()), "/db", LsmOptions::default()).unwrap());
    let (mut w, _) = writer(engine, None);
    vfs.fail_next(FaultOp::Sync, EIO);
    let (write, written) = merge(b"k", b"v", None);
    // Sees `v` from the same (failing) batch and changes nothing.
    let unchanged: Mutation = Box::new(|current, _| {
        assert_eq!(current, Some(&b"v"[..]));
        Ok(None)
    });
    let (noop, no_change) = job(b"k", unchanged, 0, None, None);
    w.group(vec![write, noop]);
    assert!(written.blocking_recv().unwrap().is_err());
    assert!(
        no_change.blocking_recv().unwrap().is_err(),
        "the value it saw never became durable"
    );
}

#[test]
fn a_hint_is_written_with_its_object_and_refused_past_the_owners_byte_bound() {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::default());
    let (mut w, _) = writer(engine.clone(), None);
    let (job, reply) = merge(b"a", &[1; 60], Some("n3"));
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().is_ok());
    let record = engine
        .get(&keys::hint_key(&id("n3"), b"a"))
        .unwrap()
        .unwrap();
    assert_eq!(HintRecord::decode(&record).unwrap().object_bytes, 60);
    assert_eq!(counts(&mut w), vec![(id("n3"), 1, 60)]);

    // 60 more bytes for n3 would pass 100: refused, nothing written.
    let (job, reply) = merge(b"b", &[2; 60], Some("n3"));
    w.group(vec![job]);
    assert!(matches!(
        reply.blocking_recv().unwrap(),
        Err(ApplyError::HintsFull { limit: 100, .. })
    ));
    assert_eq!(
        engine
            .get(&keys::data_key(&crate::ring::storage_key(b"b")))
            .unwrap(),
        None
    );
    // Another owner has its own bound; a hinted key may be hinted again.
    let (job, reply) = merge(b"b", &[2; 60], Some("n4"));
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().is_ok());
    let (job, reply) = merge(b"a", &[3; 50], Some("n3"));
    w.group(vec![job]);
    assert!(reply.blocking_recv().unwrap().is_ok());
    assert_eq!(counts(&mut w), vec![(id("n3"), 1, 50), (id("n4"), 1, 60)]);

    // A new writer over the same store (a restart) counts them again.
    let (mut again, _) = writer(engine, None);
    assert_eq!(
        counts(&mut again),
        vec![(id("n3"), 1, 50), (id("n4"), 1, 60)]
    );
}

#[test]
fn a_delivered_hint_is_cleared_only_if_it_was_not_hinted_again() {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::default());
    let (mut w, _) = writer(engine.clone(), None);
    let hint = keys::hint_key(&id("n3"), b"k");
    let seq = |engine: &Arc<dyn Engine>| {
        HintRecord::decode(&engine.get(&hint).unwrap().unwrap())
            .unwrap()
            .seq
    };
    let (job, _) = merge(b"k", b"v1", Some("n3"));
    w.group(vec![job]);
    let delivered = seq(&engine);
    // Hinted again while the first delivery runs.
    let (job, _) = merge(b"k", b"v2", Some("n3"));
    w.group(vec![job]);
    let clear = |w: &mut Writer, seq: u64| {
        let (reply, rx) = oneshot::channel();
        w.group(vec![WriterJob::ClearHint {
            owner: id("n3"),
            key: b"k".to_vec(),
            seq,
            reply,
        }]);
        rx.blocking_recv().unwrap().unwrap();
    };
    clear(&mut w, delivered);
    assert!(
        engine.get(&hint).unwrap().is_some(),
        "v2 still has to be delivered"
    );
    assert_eq!(counts(&mut w).len(), 1);
    let current = seq(&engine);
    clear(&mut w, current);
    assert!(engine.get(&hint).unwrap().is_none());
    assert!(counts(&mut w).is_empty());
}

/// The leaves a rebuild from scratch finds in `engine` now.
fn rebuilt_leaves(engine: &dyn Engine) -> Vec<u64> {
    let tree = Arc::new(super::tree::KeyTree::new(super::tree::raw_digest()));
    let mut w = super::tree::TreeWriter::new(tree.clone());
    w.rebuild_all(engine).unwrap();
    tree.snapshot().unwrap().leaves
}

#[test]
fn the_writer_keeps_the_merkle_leaves_through_writes_and_a_failed_batch() {
    let vfs = FaultVfs::new();
    let engine =
        Arc::new(LsmEngine::open(Arc::new(vfs.clone()), "/db", LsmOptions::default()).unwrap());
    let slot: EngineSlot = Arc::new(RwLock::new(engine.clone() as Arc<dyn Engine>));
    let tree = Arc::new(super::tree::KeyTree::new(super::tree::raw_digest()));
    let mut w = Writer::new(
        slot,
        Backend::in_memory(),
        id("n1"),
        1,
        LIMITS,
        Box::new(|_| {}),
        tree.clone(),
    )
    .unwrap();
    // New keys, overwrites in one group and across groups, a hint.
    let (a, _) = merge(b"a", b"1", None);
    let (b, _) = merge(b"b", b"2", Some("n2"));
    let (a2, _) = merge(b"a", b"3", None);
    w.group(vec![a, b, a2]);
    let (b2, _) = merge(b"b", b"4", None);
    w.group(vec![b2]);
    let kept = tree.snapshot().expect("rebuilt after the first group");
    assert_eq!(kept.leaves, rebuilt_leaves(&*engine));
    assert_eq!(kept.leaves.iter().filter(|h| **h != 0).count(), 2);

    // A failed batch: whatever it left in the engine, the leaves match it
    // once rebuilt (a group steps the rebuild).
    vfs.fail_next(FaultOp::Sync, EIO);
    let (c, _) = merge(b"c", b"5", None);
    w.group(vec![c]);
    let (noop, _) = job(b"d", Box::new(|_, _| Ok(None)), 0, None, None);
    w.group(vec![noop]);
    let kept = tree.snapshot().expect("rebuilt after the failed batch");
    assert_eq!(kept.leaves, rebuilt_leaves(&*engine));
}

#[test]
fn hints_pending_sees_every_owners_hint_for_a_key() {
    let (mut w, _) = writer(Arc::new(MemoryEngine::default()), None);
    let (hinted, reply) = merge(b"k", b"v", Some("n2"));
    w.group(vec![hinted]);
    reply.blocking_recv().unwrap().unwrap();
    let (reply, rx) = oneshot::channel();
    w.group(vec![WriterJob::HintsPending {
        keys: vec![b"k".to_vec(), b"other".to_vec()],
        reply,
    }]);
    assert_eq!(rx.blocking_recv().unwrap().unwrap(), vec![true, false]);
}

/// With a place to deliver them, a group's minted versions are handed
/// over in one batch before its write, and its answers in one batch after
/// it; nothing reaches a caller until the batch is run where the callers
/// wait. With that end gone, the writer answers each caller itself.
#[test]
fn a_groups_answers_are_handed_over_together_where_the_callers_wait() {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::default());
    let (mut w, _) = writer(engine, None);
    let (deliver, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    w.deliver_through(deliver);
    let (first, mut first_minted, mut first_reply) = mint(b"a");
    let (second, mut second_minted, mut second_reply) = mint(b"b");
    let (replica, mut replica_reply) = merge(b"c", b"v", None);
    w.group(vec![first, second, replica]);
    assert!(first_minted.try_recv().is_err(), "handed over, not sent");
    assert!(first_reply.try_recv().is_err());
    let minted = deliveries.try_recv().unwrap();
    assert_eq!(minted.len(), 2, "both minted versions, together");
    let answers = deliveries.try_recv().unwrap();
    assert_eq!(answers.len(), 3, "every job's answer, together");
    assert!(deliveries.try_recv().is_err());
    minted.into_iter().for_each(Answer::send);
    assert_eq!(first_minted.try_recv().unwrap(), b"n1#00000001");
    assert_eq!(second_minted.try_recv().unwrap(), b"n1#00000001");
    assert!(second_reply.try_recv().is_err(), "not durable yet");
    answers.into_iter().for_each(Answer::send);
    assert!(first_reply.try_recv().unwrap().is_ok());
    assert!(second_reply.try_recv().unwrap().is_ok());
    assert!(replica_reply.try_recv().unwrap().is_ok());
    // The receiving end is gone (the actor stopped): answered directly.
    drop(deliveries);
    let (job, minted, reply) = mint(b"d");
    w.group(vec![job]);
    assert_eq!(minted.blocking_recv().unwrap(), b"n1#00000001");
    assert!(reply.blocking_recv().unwrap().is_ok());
}

/// A minting job whose caller does not wait for the minted version (it
/// has no other replica to send it to, and dropped the receiving end) gets
/// no hand-over, and is a minting job all the same: once a failed batch
/// has handed out a version, it is refused like any other.
#[test]
fn a_minting_job_nobody_waits_for_is_not_handed_over_but_still_mints() {
    let vfs = FaultVfs::new();
    let engine =
        Arc::new(LsmEngine::open(Arc::new(vfs.clone()), "/db", LsmOptions::default()).unwrap());
    let (mut w, _) = writer(engine, None);
    let (deliver, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    w.deliver_through(deliver);
    let (job, minted, reply) = mint(b"k0");
    drop(minted);
    w.group(vec![job]);
    let answers = deliveries.try_recv().unwrap();
    assert_eq!(answers.len(), 1, "its answer only, no minted version");
    assert!(deliveries.try_recv().is_err());
    answers.into_iter().for_each(Answer::send);
    assert!(reply.blocking_recv().unwrap().is_ok());

    // A version is handed out, then its batch fails: minting stops.
    vfs.fail_next(FaultOp::Sync, EIO);
    let (job, minted, reply) = mint(b"k1");
    w.group(vec![job]);
    send_handed_over(&mut deliveries);
    assert_eq!(minted.blocking_recv().unwrap(), b"n1#00000001");
    assert!(reply.blocking_recv().unwrap().is_err());
    let (job, minted, reply) = mint(b"k1");
    drop(minted);
    w.group(vec![job]);
    send_handed_over(&mut deliveries);
    assert!(matches!(
        reply.blocking_recv().unwrap(),
        Err(ApplyError::CannotMint { .. })
    ));
}
