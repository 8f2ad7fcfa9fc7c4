//! `answer_in_place` against the coordination it stands in for: on a
//! node whose store holds the key in memory, a read of R = 1 asking only
//! this node answers at once exactly what `coordinate` answers, and every
//! other read is left to `coordinate`.

use super::super::test_support::{
    kinds_and_absent, node, one_value, replicas, store, versions_of_each_kind, NoRepair,
};
use super::*;
use crate::conflict_resolver::ConflictResolver;
use crate::replicas::ReplicaHandles;
use crate::storage::MemoryReads;

const NOW_MS: u64 = 1_000_000;

fn plan(key: &[u8], r: usize, primaries: &[&str], asking: Asking, lww: bool) -> ReadPlan {
    ReadPlan {
        key: key.to_vec(),
        timers: TimerHub::default(),
        r,
        pr: 0,
        primaries: primaries.iter().map(|n| (node(n), Reach::Usable)).collect(),
        asking,
        spare: Vec::new(),
        scope: DcScope::default(),
        policy: SloppyPolicy {
            replace_failed: true,
            replace_silent: true,
        },
        stand_in_after_ms: 250,
        retry_after_ms: 20,
        timeout_ms: 2_000,
        trace: 1,
        contexts: ContextKey::from_cluster_name("in-place"),
        last_writer_wins: lww,
        with_context: true,
        now_ms: NOW_MS,
    }
}

#[actix_rt::test]
async fn a_read_answered_in_place_answers_what_its_coordination_answers() {
    let replicas = replicas();
    for (key, object) in versions_of_each_kind(NOW_MS) {
        replicas
            .storage
            .send(store(key, &object))
            .await
            .unwrap()
            .unwrap();
    }
    let resolver = ConflictResolver::new(&node("n1")).start().recipient();
    let repair = NoRepair.start().recipient();
    let mut answered_values = 0;
    for key in kinds_and_absent(NOW_MS) {
        for lww in [false, true] {
            for (primaries, asking) in [
                (&["n1"][..], Asking::Every),
                (&["n1", "n2", "n3"][..], Asking::Needed),
            ] {
                let in_place = answer_in_place(&replicas, &plan(key, 1, primaries, asking, lww))
                    .expect("only n1's copy, held in memory: answered in place");
                let (tx, rx) = oneshot::channel();
                coordinate(
                    replicas.clone(),
                    Arc::new(ReadHelpers {
                        resolver: resolver.clone(),
                        read_repair: repair.clone(),
                    }),
                    plan(key, 1, primaries, asking, lww),
                    tx,
                )
                .await;
                let coordinated = rx.await.unwrap();
                assert_eq!(in_place, coordinated, "key {key:?}, lww {lww}");
                answered_values += in_place.unwrap().0.len();
            }
        }
    }
    // plain: 1 value, siblings: 2 (1 with lww), the rest none; 2 plans each.
    assert_eq!(answered_values, 2 * (1 + 1) + 2 * (2 + 1));
}

#[actix_rt::test]
async fn reads_needing_more_than_the_local_copy_in_memory_are_coordinated() {
    let replicas = replicas();
    let object = one_value("n1", NOW_MS);
    replicas
        .storage
        .send(store(b"k", &object))
        .await
        .unwrap()
        .unwrap();
    let in_place = |r, primaries: &[&str], asking| {
        answer_in_place(&replicas, &plan(b"k", r, primaries, asking, false)).is_some()
    };
    assert!(in_place(1, &["n1", "n2"], Asking::Needed));
    // R = 2: another replica must answer too.
    assert!(!in_place(2, &["n1", "n2"], Asking::Needed));
    // Every primary asked, not only this node.
    assert!(!in_place(1, &["n1", "n2"], Asking::Every));
    // This node is not the key's first primary (or not one at all).
    assert!(!in_place(1, &["n2", "n1"], Asking::Needed));
    assert!(!in_place(1, &["n2", "n3"], Asking::Needed));
    // The store does not hold the key in memory (a disk read).
    let cold = Replicas::from(ReplicaHandles {
        memory: MemoryReads::none(),
        ..(*replicas).clone()
    });
    assert!(answer_in_place(&cold, &plan(b"k", 1, &["n1"], Asking::Needed, false)).is_none());
}
