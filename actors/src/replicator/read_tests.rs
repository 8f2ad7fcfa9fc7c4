//! `answer_in_place` against the coordination it stands in for: on a
//! node whose store holds the key in memory, a read of R = 1 asking only
//! this node answers at once exactly what `coordinate` answers, and every
//! other read is left to `coordinate`.

use super::super::test_support::{node, replicas};
use super::*;
use crate::conflict_resolver::{ConflictResolver, Object, VersionLimits};
use crate::replicas::ReplicaHandles;
use crate::storage::{LocalApply, MemoryReads};

/// Read repairs, dropped (nothing to repair with one answer).
struct NoRepair;

impl Actor for NoRepair {
    type Context = actix::Context<Self>;
}

impl Handler<ReadRepair> for NoRepair {
    type Result = ();

    fn handle(&mut self, _: ReadRepair, _: &mut Self::Context) {}
}

fn store(key: &[u8], object: &Object) -> LocalApply {
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
    let limits = VersionLimits::default();
    let empty = VersionVector::default();
    let write = |local: Option<&Object>, value: Option<&[u8]>, by: &str, expires_ms| {
        Object::update_expiring(
            local,
            &empty,
            value.map(<[u8]>::to_vec),
            expires_ms,
            &node(by),
            NOW_MS - 10,
            &limits,
        )
        .unwrap()
    };
    let plain = write(None, Some(b"v"), "n1", None);
    // Two writes from the empty context: siblings.
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
        NOW_MS - 5,
        &limits,
    )
    .unwrap();
    let expired = write(None, Some(b"gone"), "n1", Some(NOW_MS - 1));
    for (key, object) in [
        (&b"plain"[..], &plain),
        (b"siblings", &siblings),
        (b"tombstone", &tombstone),
        (b"expired", &expired),
    ] {
        replicas
            .storage
            .send(store(key, object))
            .await
            .unwrap()
            .unwrap();
    }
    let resolver = ConflictResolver::new(&node("n1")).start().recipient();
    let repair = NoRepair.start().recipient();
    let mut answered_values = 0;
    for key in [
        &b"plain"[..],
        b"siblings",
        b"tombstone",
        b"expired",
        b"absent",
    ] {
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
    let object = Object::update(
        None,
        &VersionVector::default(),
        Some(b"v".to_vec()),
        &node("n1"),
        NOW_MS,
        &VersionLimits::default(),
    )
    .unwrap();
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
