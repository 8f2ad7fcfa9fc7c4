//! Data centers on real processes: two DCs of three nodes on loopback,
//! `--dc-replication dc1:3,dc2:3`. With every node of dc2 killed,
//! `local_quorum` reads and writes through dc1 go on, `each_quorum` is
//! refused up front (`unavailable`, before anything is sent); dc2 comes
//! back on its data dirs, catches up by anti-entropy, and each dc2 node,
//! read alone, holds every write. And with `dc1:2,dc2:2` (fewer replicas
//! than nodes per DC): two replicas in each DC per range, writes forwarded
//! by a non-replica keep their per-DC counts, and a dead dc2 replica's
//! stand-in is a dc2 node, whose hints reach it when it returns.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{admin, Cluster};
use ringkv::client::{Consistency, Error, RequestOptions};
use ringkv_actors::wire::client::{map_field, ClientOp, ErrorCode};

const DC1: [usize; 3] = [0, 1, 2];
const DC2: [usize; 3] = [3, 4, 5];

fn at(level: Consistency) -> RequestOptions {
    RequestOptions {
        consistency: Some(level),
        ..RequestOptions::DEFAULT
    }
}

/// Plans six nodes, n1-n3 in dc1 and n4-n6 in dc2, with `extra`.
fn two_dcs(extra: &[&str]) -> Cluster {
    let mut cluster = Cluster::plan(6, extra);
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        let dc = if DC1.contains(&i) { "dc1" } else { "dc2" };
        node.args.extend(["--dc".to_owned(), dc.to_owned()]);
    }
    cluster.spawn_all();
    cluster
}

/// Hints `holder` keeps for `target` (its `members` row).
async fn hints_for(cluster: &Cluster, holder: usize, target: &str) -> u64 {
    let client = cluster.nodes[holder].client().await;
    let answer = client.admin(ClientOp::Members).await.unwrap();
    let Some(rmpv::Value::Array(rows)) = map_field(&answer, "members") else {
        panic!("no members in {answer:?}");
    };
    rows.iter()
        .find(|r| map_field(r, "id").and_then(rmpv::Value::as_str) == Some(target))
        .and_then(|r| map_field(r, "hints_pending"))
        .and_then(rmpv::Value::as_u64)
        .unwrap()
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> (ErrorCode, String) {
    match result {
        Err(Error::Server { code, message }) => (code, message),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dead_dc_stops_each_quorum_not_local_quorum_and_catches_up() {
    // No periodic anti-entropy: the repair below is the one that runs.
    let mut cluster = two_dcs(&[
        "--dc-replication",
        "dc1:3,dc2:3",
        "--anti-entropy-interval-ms",
        "3600000",
    ]);
    cluster.wait_all_alive().await;
    let n1 = cluster.nodes[0].client().await;
    let status = n1.status().await.unwrap();
    assert_eq!(
        status
            .members
            .iter()
            .filter(|m| m.dc == "dc2")
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["n4", "n5", "n6"]
    );

    // Both DCs up: every level is met (a read of all six sees each write).
    for level in Consistency::LEVELS {
        let key = format!("both-{level}");
        n1.put_with(key.as_bytes(), b"v", None, at(level))
            .await
            .unwrap();
        let found = n1.get_with(key.as_bytes(), at(level)).await.unwrap();
        assert!(found.values.len() <= 1, "{level}");
        let found = n1
            .get_with(key.as_bytes(), at(Consistency::All))
            .await
            .unwrap();
        assert_eq!(found.values, [b"v".to_vec()], "{level}");
    }
    // `consistency` and `r` / `w` together are refused.
    let both = RequestOptions {
        r: Some(1),
        ..at(Consistency::One)
    };
    assert_eq!(
        code(n1.get_with(b"both-one", both).await).0,
        ErrorCode::BadRequest
    );

    // dc2 dies at once; dc1 sees it down.
    for i in DC2 {
        cluster.nodes[i].kill();
    }
    for id in ["n4", "n5", "n6"] {
        cluster.wait_state(0, id, "down").await;
    }
    let mut written = Vec::new();
    for i in 0..20 {
        let (key, value) = (format!("dc1-only-{i}"), format!("v{i}"));
        n1.put_with(
            key.as_bytes(),
            value.as_bytes(),
            None,
            at(Consistency::LocalQuorum),
        )
        .await
        .unwrap();
        let found = n1
            .get_with(key.as_bytes(), at(Consistency::LocalQuorum))
            .await
            .unwrap();
        assert_eq!(found.values, [value.as_bytes().to_vec()]);
        written.push((key, value));
    }
    // each_quorum: refused before anything is sent (the up-front check's
    // message), for reads and writes alike; nothing was written.
    let (c, message) = code(
        n1.put_with(b"each", b"v", None, at(Consistency::EachQuorum))
            .await,
    );
    assert_eq!(c, ErrorCode::Unavailable, "{message}");
    assert!(
        message.contains("replicas in dc2 are reachable"),
        "{message}"
    );
    let (c, message) = code(
        n1.get_with(b"dc1-only-0", at(Consistency::EachQuorum))
            .await,
    );
    assert_eq!(c, ErrorCode::Unavailable, "{message}");
    assert!(message.contains("in dc2"), "{message}");
    let found = n1
        .get_with(b"each", at(Consistency::LocalOne))
        .await
        .unwrap();
    assert!(found.context.is_none(), "a refused write wrote nothing");

    // dc2 returns on its data dirs and pulls what it missed from dc1.
    for i in DC2 {
        cluster.nodes[i].restart();
    }
    cluster.wait_all_alive().await;
    for i in DC2 {
        let client = cluster.nodes[i].client().await;
        let answer = client
            .admin(ClientOp::Repair {
                peer: None,
                key: None,
            })
            .await
            .unwrap();
        let Some(rmpv::Value::Array(exchanges)) = map_field(&answer, "exchanges") else {
            panic!("no exchanges in {answer:?}");
        };
        assert_eq!(exchanges.len(), 5, "{answer:?}");
        for exchange in exchanges {
            let ok = map_field(exchange, "ok").and_then(rmpv::Value::as_bool);
            assert_eq!(ok, Some(true), "{exchange:?}");
        }
    }
    let n4 = cluster.nodes[3].client().await;
    let found = n4
        .get_with(b"dc1-only-3", at(Consistency::EachQuorum))
        .await
        .unwrap();
    assert_eq!(found.values, [b"v3".to_vec()]);

    // Each dc2 node alone (every other node stopped) answers every write
    // from its own replica.
    for i in DC1 {
        cluster.nodes[i].kill();
    }
    for alone in DC2 {
        for other in DC2.into_iter().filter(|o| *o != alone) {
            cluster.nodes[other].kill();
        }
        if cluster.nodes[alone].child.is_none() {
            cluster.nodes[alone].restart();
        }
        cluster.nodes[alone].wait_ping().await;
        let client = cluster.nodes[alone].client().await;
        for (key, value) in &written {
            let found = client
                .get_with(key.as_bytes(), at(Consistency::One))
                .await
                .unwrap();
            assert_eq!(
                found.values,
                [value.as_bytes().to_vec()],
                "{} alone: {key}",
                cluster.nodes[alone].id
            );
        }
    }
}

#[tokio::test]
async fn two_replicas_per_dc_forwarded_writes_and_same_dc_stand_ins() {
    let mut cluster = two_dcs(&[
        "--dc-replication",
        "dc1:2,dc2:2",
        "--anti-entropy-interval-ms",
        "3600000",
    ]);
    cluster.wait_all_alive().await;
    let n1 = cluster.nodes[0].client().await;

    // Every range: two replicas in each DC, as `admin ring` shows them.
    let ring = n1.admin(ClientOp::Ring).await.unwrap();
    assert_eq!(
        map_field(&ring, "dc_replication").and_then(rmpv::Value::as_str),
        Some("dc1:2,dc2:2")
    );
    let Some(rmpv::Value::Array(ranges)) = map_field(&ring, "ranges") else {
        panic!("no ranges in {ring:?}");
    };
    let mut n1_replicates = 0;
    for range in ranges {
        let Some(rmpv::Value::Array(dcs)) = map_field(range, "dcs") else {
            panic!("no dcs in {range:?}");
        };
        let count = |dc: &str| dcs.iter().filter(|d| d.as_str() == Some(dc)).count();
        assert_eq!((count("dc1"), count("dc2")), (2, 2), "{range:?}");
        let Some(rmpv::Value::Array(replicas)) = map_field(range, "replicas") else {
            panic!("no replicas in {range:?}");
        };
        n1_replicates += usize::from(replicas.iter().any(|r| r.as_str() == Some("n1")));
    }
    assert!(
        n1_replicates < ranges.len(),
        "n1 replicates every range: no write would be forwarded"
    );
    // The CLI shows the same: each replica with its DC, and the setting.
    let addr = cluster.nodes[0].client;
    let ring = admin(addr, &["ring"]);
    assert!(ring.contains("per DC dc1:2,dc2:2"), "{ring}");
    let replicas = ring
        .lines()
        .nth(2)
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_default();
    assert_eq!(replicas.matches("@dc1").count(), 2, "{ring}");
    assert_eq!(replicas.matches("@dc2").count(), 2, "{ring}");
    let status = admin(addr, &["status"]);
    assert!(
        status.contains("replicas per data center: dc1:2,dc2:2"),
        "{status}"
    );

    // One dc2 node dies: each_quorum writes still meet dc2's quorum, its
    // keys' third dc2 node standing in (n1 forwards the keys it does not
    // replicate, with the counts it resolved).
    cluster.nodes[3].kill();
    cluster.wait_state(0, "n4", "down").await;
    let data: Vec<(String, String)> = (0..40)
        .map(|i| (format!("dc-{i}"), format!("v{i}")))
        .collect();
    for (key, value) in &data {
        n1.put_with(
            key.as_bytes(),
            value.as_bytes(),
            None,
            at(Consistency::EachQuorum),
        )
        .await
        .unwrap();
    }
    // The hints for n4 sit in dc2 only.
    for holder in DC1 {
        assert_eq!(
            hints_for(&cluster, holder, "n4").await,
            0,
            "n{}",
            holder + 1
        );
    }
    let in_dc2 = hints_for(&cluster, 4, "n4").await + hints_for(&cluster, 5, "n4").await;
    assert!(in_dc2 > 0, "no dc2 node stood in for n4");

    // n4 returns: its stand-ins hand the writes over.
    cluster.nodes[3].restart();
    cluster.wait_all_alive().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while hints_for(&cluster, 4, "n4").await + hints_for(&cluster, 5, "n4").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the hints for n4 were never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n4 = cluster.nodes[3].client().await;
    for (key, value) in &data {
        let found = n4
            .get_with(key.as_bytes(), at(Consistency::EachQuorum))
            .await
            .unwrap();
        assert_eq!(found.values, [value.as_bytes().to_vec()], "{key}");
    }
}
