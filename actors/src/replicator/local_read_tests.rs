//! [`LocalReads`] against the Replicator it stands in for: a read it
//! answers is answered as `CoordinateGet` answers it, and it declines the
//! reads the Replicator must coordinate (or hold, before it is ready).

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use fnv::FnvHashSet;

use super::super::test_support::{
    self, kinds_and_absent, node, one_value, replicas, versions_of_each_kind, NoRepair,
};
use super::super::{Asking, CoordinateGet, ReplicationOptions, Replicator};
use super::{LocalRead, LocalReads};
use crate::clock::Clock;
use crate::conflict_resolver::{ConflictResolver, ContextKey, Object, VersionLimits};
use crate::membership::MembershipChanged;
use crate::replicas::Replicas;
use crate::ring::{DcReplication, Ring, RingMember};
use crate::wire::client::Consistency;

const NOW_MS: u64 = 1_000_000;

/// Wall time that stands still, so both answers expire alike.
struct Fixed;

impl Clock for Fixed {
    fn now_ms(&self) -> u64 {
        NOW_MS
    }

    fn monotonic_ms(&self) -> u64 {
        0
    }
}

fn options(n: usize, r: usize) -> ReplicationOptions {
    ReplicationOptions {
        n,
        r,
        w: 1,
        request_timeout_ms: 2_000,
        limits: VersionLimits::default(),
        object_bytes_max: 1 << 20,
        stand_in_after_ms: 250,
        read_asks: Asking::Needed,
        read_retry_after_ms: 20,
        contexts: ContextKey::from_cluster_name("local-reads"),
        dc: "dc1".into(),
        dc_replication: DcReplication::default(),
    }
}

fn ring(ids: &[&str]) -> Arc<Ring> {
    let members: Vec<RingMember> = ids
        .iter()
        .map(|id| RingMember {
            id: node(id),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        })
        .collect();
    Arc::new(Ring::new(&members, 8))
}

/// A started Replicator of node n1 over `replicas`, its local reads, and
/// whether it was told it is ready in a cluster of `members`.
fn replicator(
    replicas: &Replicas,
    options: ReplicationOptions,
    members: &[&str],
    ready: bool,
) -> (Addr<Replicator>, Rc<LocalReads>) {
    let replicator = Replicator::new(
        options,
        replicas.clone(),
        ConflictResolver::new(&node("n1")).start().recipient(),
        NoRepair.start().recipient(),
        Rc::new(Fixed),
    );
    let local_reads = replicator.local_reads();
    let replicator = replicator.start();
    let all: FnvHashSet<_> = members.iter().map(|id| node(id)).collect();
    replicator.do_send(MembershipChanged {
        read_ring: ring(members),
        write_ring: ring(members),
        reachable: Arc::new(all.clone()),
        healthy: Arc::new(all),
        peers: Arc::new(Vec::new()),
        ready,
    });
    (replicator, local_reads)
}

async fn store(replicas: &Replicas, key: &[u8], object: &Object) {
    replicas
        .storage
        .send(test_support::store(key, object))
        .await
        .unwrap()
        .unwrap();
}

fn get(key: &[u8], consistency: Option<Consistency>, lww: bool) -> CoordinateGet {
    CoordinateGet {
        key: key.to_vec(),
        r: None,
        pr: None,
        consistency,
        timeout_ms: None,
        trace: 1,
        last_writer_wins: lww,
        with_context: false,
    }
}

/// A read that returns once the Replicator handled what was sent before.
/// `read`'s fields as `LocalReads` takes them.
fn local(read: &CoordinateGet) -> LocalRead<'_> {
    LocalRead {
        key: &read.key,
        r: read.r,
        pr: read.pr,
        consistency: read.consistency,
        last_writer_wins: read.last_writer_wins,
        with_context: read.with_context,
        trace: read.trace,
    }
}

fn sync() -> CoordinateGet {
    CoordinateGet {
        timeout_ms: Some(10),
        ..get(b"absent", Some(Consistency::One), false)
    }
}

#[actix_rt::test]
async fn a_local_read_answers_what_the_replicator_answers() {
    let replicas = replicas();
    for (key, object) in versions_of_each_kind(NOW_MS) {
        store(&replicas, key, &object).await;
    }
    let (replicator, local_reads) = replicator(&replicas, options(1, 1), &["n1"], true);
    // The first message makes the Replicator ready (and publishes).
    replicator
        .send(get(b"plain", None, false))
        .await
        .unwrap()
        .unwrap();
    let mut values = 0;
    for key in kinds_and_absent(NOW_MS) {
        for lww in [false, true] {
            for consistency in [None, Some(Consistency::One), Some(Consistency::All)] {
                for (r, pr, with_context) in [(None, None, false), (Some(1), Some(1), true)] {
                    let read = CoordinateGet {
                        r,
                        pr,
                        with_context,
                        ..get(key, consistency, lww)
                    };
                    let answered = local_reads
                        .answer(&local(&read))
                        .expect("N = 1 on this node, in memory: answered locally");
                    let asked = replicator.send(read).await.unwrap();
                    assert_eq!(answered, asked, "key {key:?}, lww {lww}, {consistency:?}");
                    let (found, context) = answered.unwrap();
                    // A context for a key ever written, when asked for.
                    assert_eq!(context.is_some(), with_context && *key != b"absent"[..]);
                    values += found.len();
                }
            }
        }
    }
    // plain: 1 value, siblings: 2 (1 with lww), the rest none; 3 levels,
    // 2 requests each.
    assert_eq!(values, 2 * 3 * ((1 + 1) + (2 + 1)));
}

#[actix_rt::test]
async fn reads_the_replicator_must_coordinate_or_hold_are_declined() {
    let replicas = replicas();
    let object = one_value("n1", NOW_MS);
    store(&replicas, b"k", &object).await;
    let answers_read = |options, members: &[&str], ready, read: CoordinateGet| {
        let (replicator, local_reads) = replicator(&replicas, options, members, ready);
        async move {
            // Handled after MembershipChanged (one mailbox, in order);
            // held for its 10 ms when the node is not ready.
            let _ = replicator.send(sync()).await;
            local_reads.answer(&local(&read)).is_some()
        }
    };
    let answers = |options, members: &[&str], ready, consistency| {
        answers_read(options, members, ready, get(b"k", consistency, false))
    };
    assert!(answers(options(1, 1), &["n1"], true, None).await);
    // Not ready: the Replicator holds reads until it is.
    assert!(!answers(options(1, 1), &["n1"], false, None).await);
    // R = 2 (a level or the node's R) needs another replica.
    assert!(!answers(options(3, 2), &["n1"], true, None).await);
    assert!(!answers(options(3, 1), &["n1"], true, Some(Consistency::All)).await);
    assert!(answers(options(3, 1), &["n1"], true, Some(Consistency::One)).await);
    let with = |r, pr| CoordinateGet {
        r,
        pr,
        ..get(b"k", None, false)
    };
    assert!(!answers_read(options(1, 1), &["n1"], true, with(Some(2), None)).await);
    assert!(answers_read(options(3, 2), &["n1"], true, with(Some(1), Some(1))).await);
    // PR above R: the Replicator refuses it and says why.
    assert!(!answers_read(options(1, 1), &["n1"], true, with(Some(1), Some(2))).await);
    // Other primaries hold the key too (N = 3 over three nodes), or the
    // key is another node's (N = 1 over three: n1 holds a third).
    assert!(!answers(options(3, 1), &["n1", "n2", "n3"], true, None).await);
    let mut declined = 0;
    for i in 0..30u32 {
        let key = format!("k{i}");
        store(&replicas, key.as_bytes(), &object).await;
        let (replicator, local_reads) =
            replicator(&replicas, options(1, 1), &["n1", "n2", "n3"], true);
        let _ = replicator.send(sync()).await;
        let primary = ring(&["n1", "n2", "n3"]).preference_list(key.as_bytes(), 1);
        let read = get(key.as_bytes(), None, false);
        let answered = local_reads.answer(&local(&read)).is_some();
        assert_eq!(answered, primary == vec![node("n1")], "key {key}");
        declined += usize::from(!answered);
    }
    assert!(declined > 0, "some keys are other nodes'");
    // Per-DC replication: quorums per data center, always coordinated.
    let mut per_dc = options(1, 1);
    per_dc.dc_replication = DcReplication::parse("dc1:1", 1).unwrap();
    assert!(!answers(per_dc, &["n1"], true, None).await);
}

#[actix_rt::test]
async fn a_replica_read_in_place_answers_what_the_replicator_answers_or_is_declined() {
    use crate::bridge::{Incoming, PeerDirect};
    use crate::wire::peer::ReplicaRead;
    use serde_bytes::ByteBuf;

    let replicas = replicas();
    let object = one_value("n1", NOW_MS);
    let members = ["n1", "n2", "n3"];
    let (serving, local_reads) = replicator(&replicas, options(1, 1), &members, true);
    let _ = serving.send(sync()).await;
    let (mut answered, mut declined) = (0, 0);
    for i in 0..30u32 {
        let key = format!("k{i}");
        store(&replicas, key.as_bytes(), &object).await;
        for (from, key) in [("n2", key.as_str()), ("n2", "absent"), ("n9", key.as_str())] {
            let request = ReplicaRead {
                key: ByteBuf::from(key.as_bytes().to_vec()),
            };
            let in_place = local_reads.replica_read(&node(from), &request);
            let asked = serving
                .send(Incoming {
                    from: node(from),
                    trace: 1,
                    timeout_ms: 1_000,
                    request,
                })
                .await
                .unwrap();
            match in_place {
                Some(answer) => {
                    assert_eq!(answer.unwrap(), asked.unwrap(), "{from} {key}");
                    answered += 1;
                }
                // Declined: what the Replicator refuses (n9 is no member;
                // n1 holds a third of the keys at N = 1), never what it serves.
                None => {
                    assert!(asked.is_err(), "{from} {key}: served, yet declined");
                    declined += 1;
                }
            }
        }
    }
    assert!(answered > 0 && declined > 0, "{answered} / {declined}");
    // Before the node is ready the Replicator answers alone.
    let (holding, local_reads) = replicator(&replicas, options(1, 1), &members, false);
    let _ = holding.send(sync()).await;
    let request = ReplicaRead {
        key: ByteBuf::from(b"k0".to_vec()),
    };
    assert!(local_reads.replica_read(&node("n2"), &request).is_none());
}

#[actix_rt::test]
async fn a_replica_write_goes_straight_to_the_store_when_the_replicator_would_take_it() {
    use crate::bridge::{Incoming, PeerDirect};
    use crate::wire::peer::{Durable, ReplicaWrite};
    use serde_bytes::ByteBuf;

    let replicas = replicas();
    let object = one_value("n2", NOW_MS);
    let (serving, local_reads) = replicator(&replicas, options(1, 1), &["n1", "n2", "n3"], true);
    let _ = serving.send(sync()).await;
    let (mut direct, mut declined) = (0, 0);
    for i in 0..30u32 {
        for from in ["n2", "n9"] {
            let key = format!("{from}-k{i}");
            let request = || ReplicaWrite {
                key: ByteBuf::from(key.as_bytes().to_vec()),
                object: ByteBuf::from(object.encode()),
            };
            let asked = |request| {
                serving.send(Incoming {
                    from: node(from),
                    trace: 1,
                    timeout_ms: 1_000,
                    request,
                })
            };
            match local_reads.replica_write(&node(from), 1, request()) {
                Ok(write) => {
                    assert_eq!(write.await, Ok(Durable), "{key}");
                    let stored = replicas.read_in_memory(key.as_bytes()).unwrap().unwrap();
                    assert_eq!(stored, Some(object.encode()), "{key}");
                    // The Replicator takes the same write (joined: no change).
                    assert_eq!(asked(request()).await.unwrap(), Ok(Durable), "{key}");
                    direct += 1;
                }
                // Declined, given back whole: what the Replicator refuses.
                Err(back) => {
                    assert_eq!(back, request());
                    assert!(
                        asked(back).await.unwrap().is_err(),
                        "{key}: taken, yet declined"
                    );
                    assert_eq!(
                        replicas.read_in_memory(key.as_bytes()).unwrap().unwrap(),
                        None
                    );
                    declined += 1;
                }
            }
        }
    }
    assert!(direct > 0 && declined > 0, "{direct} / {declined}");
}
