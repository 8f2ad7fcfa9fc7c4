//! What the Replicator's coordination tests share: a node's `Replicas`
//! over a real store in memory.

use std::sync::Arc;

use actix::{Actor, AsyncContext, Handler};

use super::ReadRepair;
use crate::bridge::{Bridge, LinkDirectory};
use crate::conflict_resolver::{Object, VersionLimits, VersionVector};
use crate::metrics::Metrics;
use crate::replicas::{ReplicaHandles, Replicas};
use crate::storage::{
    Backend, LocalApply, MemoryEngine, Storage, StorageOptions, StorageThreading,
};
use crate::NodeId;

pub(super) fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

/// Node n1's replicas: its store in memory, served by threads (so reads
/// of what it holds are answered in memory, and its writes go to the
/// writer thread's queue), and a Bridge never started (no other node is
/// asked).
pub(super) fn replicas() -> Replicas {
    let own = node("n1");
    let storage = Storage::new(
        &own,
        Arc::new(MemoryEngine::default()),
        StorageOptions {
            threading: StorageThreading::Threads,
            ..StorageOptions::default()
        },
        Backend::in_memory(),
        1,
    )
    .unwrap();
    let memory = storage.memory_reads();
    let writer = storage.writer_queue();
    Replicas::from(ReplicaHandles {
        own,
        storage: storage.start(),
        memory,
        writer,
        bridge: actix::Context::<Bridge>::new().address(),
        links: LinkDirectory::default(),
        metrics: Metrics::default(),
    })
}

/// Read repairs, dropped (nothing to repair with one answer).
pub(super) struct NoRepair;

impl Actor for NoRepair {
    type Context = actix::Context<Self>;
}

impl Handler<ReadRepair> for NoRepair {
    type Result = ();

    fn handle(&mut self, _: ReadRepair, _: &mut Self::Context) {}
}

/// Stores `object` under `key` as it is (a job that replaces what is there).
pub(super) fn store(key: &[u8], object: &Object) -> LocalApply {
    let bytes = object.encode();
    LocalApply {
        key: key.to_vec(),
        bytes: bytes.len(),
        mutation: Box::new(move |_, _| Ok(Some(bytes))),
        trace: 0,
        minted: None,
        handed_out: false,
        hint_for: None,
    }
}

/// One key of each kind a read answers, as of `now_ms`: `plain` (one
/// value), `siblings` (two, from writes that did not see each other),
/// `tombstone` (a delete that saw the value) and `expired` (a value whose
/// TTL ran out a millisecond ago).
pub(super) fn versions_of_each_kind(now_ms: u64) -> Vec<(&'static [u8], Object)> {
    let limits = VersionLimits::default();
    let empty = VersionVector::default();
    let write = |local: Option<&Object>, value: Option<&[u8]>, by: &str, expires_ms| {
        Object::update_expiring(
            local,
            &empty,
            value.map(<[u8]>::to_vec),
            expires_ms,
            &node(by),
            now_ms - 10,
            &limits,
        )
        .unwrap()
    };
    let plain = write(None, Some(b"v"), "n1", None);
    let siblings = write(
        Some(&write(None, Some(b"a"), "n1", None)),
        Some(b"b"),
        "n2",
        None,
    );
    let tombstone = Object::update(
        Some(&plain),
        plain.context(),
        None,
        &node("n1"),
        now_ms - 5,
        &limits,
    )
    .unwrap();
    let expired = write(None, Some(b"gone"), "n1", Some(now_ms - 1));
    vec![
        (b"plain", plain),
        (b"siblings", siblings),
        (b"tombstone", tombstone),
        (b"expired", expired),
    ]
}

/// The keys of [`versions_of_each_kind`], and one never written.
pub(super) fn kinds_and_absent(now_ms: u64) -> Vec<&'static [u8]> {
    versions_of_each_kind(now_ms)
        .into_iter()
        .map(|(key, _)| key)
        .chain([&b"absent"[..]])
        .collect()
}

/// One value written by `by` at `now_ms`.
pub(super) fn one_value(by: &str, now_ms: u64) -> Object {
    Object::update(
        None,
        &VersionVector::default(),
        Some(b"v".to_vec()),
        &node(by),
        now_ms,
        &VersionLimits::default(),
    )
    .unwrap()
}
