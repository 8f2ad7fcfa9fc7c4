//! What the Replicator's coordination tests share: a node's `Replicas`
//! over a real store in memory.

use std::sync::Arc;

use actix::{Actor, AsyncContext};

use crate::bridge::{Bridge, LinkDirectory};
use crate::metrics::Metrics;
use crate::replicas::{ReplicaHandles, Replicas};
use crate::storage::{Backend, MemoryEngine, Storage, StorageOptions, StorageThreading};
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
