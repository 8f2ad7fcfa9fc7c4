//! Siblings, contexts and deletes across real node processes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use ringkv::client::RequestOptions;

const ALL: RequestOptions = RequestOptions {
    r: Some(3),
    w: Some(3),
    ..RequestOptions::DEFAULT
};
const ONE: RequestOptions = RequestOptions {
    r: Some(1),
    w: Some(1),
    ..RequestOptions::DEFAULT
};

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Reads `key` from node `i` alone (the others killed, then restarted).
async fn read_replica_alone(cluster: &mut Cluster, i: usize, key: &[u8]) -> Vec<Vec<u8>> {
    for j in 0..cluster.nodes.len() {
        if j != i {
            cluster.nodes[j].kill();
        }
    }
    let values = cluster.nodes[i]
        .client()
        .await
        .get_with(key, ONE)
        .await
        .unwrap()
        .values;
    for j in 0..cluster.nodes.len() {
        if j != i {
            cluster.nodes[j].restart();
        }
    }
    cluster.wait_all_alive().await;
    values
}

#[tokio::test]
async fn concurrent_writes_become_siblings_and_a_merged_write_resolves_them_everywhere() {
    let mut cluster = Cluster::start(3, &[]).await;
    let (c1, c2) = (
        cluster.nodes[0].client().await,
        cluster.nodes[1].client().await,
    );
    c1.put(b"cart", b"apples", None).await.unwrap();
    c2.put(b"cart", b"pears", None).await.unwrap();
    let found = cluster.nodes[2].client().await.get(b"cart").await.unwrap();
    assert_eq!(
        sorted(found.values.clone()),
        vec![b"apples".to_vec(), b"pears".to_vec()]
    );

    let merged = found.resolve(|vs| vs.join(&b'+')).unwrap();
    c1.put_with(b"cart", &merged, found.context.as_ref(), ALL)
        .await
        .unwrap();
    for i in 0..3 {
        let values = read_replica_alone(&mut cluster, i, b"cart").await;
        assert_eq!(values, vec![merged.clone()], "replica n{}", i + 1);
    }
}

/// Blind writes of one key in flight together through every node (each
/// coordinator mints some on its event loop and, while one of the key is
/// still on its way to the engine, leaves the next to its writer): every
/// acknowledged value survives as a sibling of its own, so no two of them
/// got the same dot.
#[tokio::test]
async fn blind_writes_of_one_key_in_flight_together_through_every_node_all_survive() {
    const PER_NODE: usize = 20;
    let cluster = Cluster::start(3, &[]).await;
    let mut clients = Vec::new();
    for node in &cluster.nodes {
        clients.push(node.client().await);
    }
    let mut writes = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        for j in 0..PER_NODE {
            let value = format!("n{}-{j}", i + 1).into_bytes();
            writes.push(async move {
                client.put(b"hot", &value, None).await.unwrap();
                value
            });
        }
    }
    let written = futures_util::future::join_all(writes).await;
    let found = clients[0].get_with(b"hot", ALL).await.unwrap();
    let text = |values: Vec<Vec<u8>>| -> Vec<String> {
        sorted(values)
            .into_iter()
            .map(|v| String::from_utf8(v).unwrap())
            .collect()
    };
    assert_eq!(text(found.values), text(written));
}

#[tokio::test]
async fn two_writes_through_one_node_from_one_stale_context_both_survive() {
    let cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    c1.put(b"k", b"v0", None).await.unwrap();
    let stale = c1.get(b"k").await.unwrap().context;
    c1.put(b"k", b"a", stale.as_ref()).await.unwrap();
    c1.put(b"k", b"b", stale.as_ref()).await.unwrap();
    let found = cluster.nodes[1].client().await.get(b"k").await.unwrap();
    assert_eq!(sorted(found.values), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[tokio::test]
async fn a_delete_is_not_undone_by_a_stale_replica_coming_back() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    c1.put_with(b"gone", b"v1", None, ALL).await.unwrap();
    let seen = c1.get(b"gone").await.unwrap().context;

    cluster.nodes[2].kill();
    c1.delete(b"gone", seen.as_ref()).await.unwrap();
    let after = c1.get(b"gone").await.unwrap();
    assert!(after.values.is_empty(), "{:?}", after.values);
    assert!(after.context.is_some(), "a deleted key still has a context");

    // n3 comes back holding v1; reads merge it away and repair it.
    cluster.nodes[2].restart();
    cluster.wait_all_alive().await;
    let found = cluster.nodes[2]
        .client()
        .await
        .get_with(b"gone", ALL)
        .await
        .unwrap();
    assert!(found.values.is_empty(), "resurrected: {:?}", found.values);
    // Read repair reaches n3 in the background: poll its own replica.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let values = read_replica_alone(&mut cluster, 2, b"gone").await;
        if values.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n3 still serves the deleted value"
        );
        cluster.nodes[0]
            .client()
            .await
            .get_with(b"gone", ALL)
            .await
            .unwrap();
    }
    // A put with the tombstone's context replaces it.
    let c1 = cluster.nodes[0].client().await;
    let ctx = c1.get(b"gone").await.unwrap().context;
    c1.put(b"gone", b"back", ctx.as_ref()).await.unwrap();
    assert_eq!(
        c1.get(b"gone").await.unwrap().values,
        vec![b"back".to_vec()]
    );
}

#[tokio::test]
async fn a_write_past_siblings_max_is_refused_and_resolving_clears_it() {
    let cluster = Cluster::start(3, &["--siblings-max", "2"]).await;
    let c = cluster.nodes[0].client().await;
    c.put(b"hot", b"a", None).await.unwrap();
    c.put(b"hot", b"b", None).await.unwrap();
    let err = c.put(b"hot", b"c", None).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ringkv_actors::wire::client::ErrorCode::TooLarge),
        "{err}"
    );
    assert!(err.to_string().contains("siblings_max"), "{err}");
    // Writing back with the context replaces both: one value again.
    let found = c.get(b"hot").await.unwrap();
    assert_eq!(found.values.len(), 2);
    c.put(b"hot", b"ab", found.context.as_ref()).await.unwrap();
    assert_eq!(c.get(b"hot").await.unwrap().values, vec![b"ab".to_vec()]);
}

/// A node that lost its disk comes back under its old id and joins again.
/// A write it coordinates before its ranges are streamed back must not mint
/// a version (dot) that the other replicas remember for an older write:
/// the old value and the new one, written blind (concurrent with
/// everything), both survive as siblings on every replica.
#[tokio::test]
async fn a_node_that_lost_its_disk_does_not_reuse_an_old_version() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    c1.put_with(b"k", b"old", None, ALL).await.unwrap();
    drop(c1);

    cluster.nodes[0].kill();
    std::fs::remove_dir_all(&cluster.nodes[0].data_dir).unwrap();
    // A long settle keeps the returning node joining while it coordinates.
    let args = &mut cluster.nodes[0].args;
    let settle = args.iter().position(|a| a == "--join-settle-ms").unwrap();
    args[settle + 1] = "3000".to_owned();
    cluster.nodes[0].restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let c1 = loop {
        if let Ok(client) = ringkv::client::Client::connect(cluster.nodes[0].client).await {
            break client;
        }
        assert!(
            Instant::now() < deadline,
            "n1 did not come back: {}",
            std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log"))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = c1.status().await.unwrap();
    let own = status.members.iter().find(|m| m.id == "n1").unwrap();
    assert_eq!(own.state, "joining", "the write must land while n1 joins");
    c1.put_with(b"k", b"new", None, ALL).await.unwrap();
    cluster.wait_state(0, "n1", "alive").await;

    for i in 0..3 {
        assert_eq!(
            sorted(read_replica_alone(&mut cluster, i, b"k").await),
            vec![b"new".to_vec(), b"old".to_vec()],
            "replica n{}",
            i + 1
        );
    }
}

/// On a node that is its keys' only replica a get at R = 1 is answered by
/// the client session itself (`replicator::LocalReads`): its context is
/// the same sealed context, so a put with it supersedes the value instead
/// of adding a sibling, and a get the session cannot answer (R = 2 with
/// one replica up) is still refused by the coordinator.
#[tokio::test]
async fn a_get_answered_by_its_session_hands_out_a_context_that_supersedes() {
    let cluster = Cluster::start(1, &["--n", "3", "--r", "1", "--w", "1"]).await;
    let client = cluster.nodes[0].client().await;
    client.put(b"k", b"v1", None).await.unwrap();
    let found = client.get(b"k").await.unwrap();
    assert_eq!(found.values, vec![b"v1".to_vec()]);
    client
        .put(b"k", b"v2", found.context.as_ref())
        .await
        .unwrap();
    let found = client.get(b"k").await.unwrap();
    assert_eq!(found.values, vec![b"v2".to_vec()], "superseded, no sibling");
    let absent = client.get(b"never").await.unwrap();
    assert!(absent.values.is_empty() && absent.context.is_none());
    let two = RequestOptions {
        r: Some(2),
        ..RequestOptions::DEFAULT
    };
    let refused = client.get_with(b"k", two).await.unwrap_err();
    assert!(refused.to_string().contains("Unavailable"), "{refused}");
}
