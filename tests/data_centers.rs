//! Data centers on real processes: two DCs of three nodes on loopback,
//! `--dc-replication dc1:3,dc2:3`. With every node of dc2 killed,
//! `local_quorum` reads and writes through dc1 go on, `each_quorum` is
//! refused up front (`unavailable`, before anything is sent); dc2 comes
//! back on its data dirs, catches up by anti-entropy, and each dc2 node,
//! read alone, holds every write.
#![allow(clippy::unwrap_used)]

mod common;

use common::Cluster;
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

fn code(result: Result<impl std::fmt::Debug, Error>) -> (ErrorCode, String) {
    match result {
        Err(Error::Server { code, message }) => (code, message),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dead_dc_stops_each_quorum_not_local_quorum_and_catches_up() {
    // No periodic anti-entropy: the repair below is the one that runs.
    let mut cluster = Cluster::plan(
        6,
        &[
            "--dc-replication",
            "dc1:3,dc2:3",
            "--anti-entropy-interval-ms",
            "3600000",
        ],
    );
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        let dc = if DC1.contains(&i) { "dc1" } else { "dc2" };
        node.args.extend(["--dc".to_owned(), dc.to_owned()]);
    }
    cluster.spawn_all();
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
    for level in Consistency::ALL {
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
