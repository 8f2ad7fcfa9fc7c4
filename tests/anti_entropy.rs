//! Merkle anti-entropy on real processes: a replica that missed writes
//! (and is never read, so read repair never runs) catches up by itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Cluster;

#[tokio::test]
async fn a_replica_that_missed_writes_catches_up_without_being_read() {
    let mut cluster = Cluster::start(3, &["--anti-entropy-interval-ms", "200"]).await;
    cluster.nodes[2].kill();
    let c1 = cluster.nodes[0].client().await;
    let data: Vec<(String, String)> = (0..60)
        .map(|i| (format!("ae-{i}"), format!("v-{i}")))
        .collect();
    for (k, v) in &data {
        c1.put(k.as_bytes(), v.as_bytes(), None).await.unwrap();
    }
    // Failed exchanges are logged at debug: shown if the wait below fails.
    cluster.nodes[2].log_filter = "info,ringkv_actors::repair=debug".to_owned();
    cluster.nodes[2].restart();
    cluster.wait_all_alive().await;

    // n3 finds the differing slices and pulls them.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = std::fs::read_to_string(cluster.nodes[2].data_dir.with_extension("log"))
            .unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains("anti-entropy: replicas differed"))
        {
            break;
        }
        if Instant::now() > deadline {
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "anti-entropy never synced n3; its log ends:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let both partners' exchanges finish.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    cluster.assert_holds_alone(2, &data).await;
}

/// Runs `ringkv admin --addr <addr> repair` (an exchange with every peer,
/// now); the keys pulled and repaired of its total line, and its output.
/// Asked again while the node's merkle tree is still rebuilt after start.
fn repair(addr: std::net::SocketAddr) -> (u64, u64, String) {
    for _ in 0..100 {
        let stdout = common::admin(addr, &["repair"]);
        if stdout.contains("being rebuilt") {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let total: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with("total:"))
            .unwrap_or_else(|| panic!("{stdout}"))
            .split_whitespace()
            .collect();
        for line in stdout.lines().filter(|l| l.starts_with('n')) {
            assert!(line.ends_with("ok"), "an exchange failed:\n{stdout}");
        }
        return (total[1].parse().unwrap(), total[4].parse().unwrap(), stdout);
    }
    panic!("the merkle tree of {addr} was never ready");
}

#[tokio::test]
async fn an_in_sync_exchange_moves_no_keys_and_a_diverged_one_exactly_the_differing_ones() {
    let mut cluster = Cluster::start(3, &["--anti-entropy-interval-ms", "0"]).await;
    let c1 = cluster.nodes[0].client().await;
    let all = ringkv::client::RequestOptions {
        w: Some(3),
        ..Default::default()
    };
    let mut data: Vec<(String, String)> = (0..50)
        .map(|i| (format!("sync-{i}"), format!("v-{i}")))
        .collect();
    for (k, v) in &data {
        c1.put_with(k.as_bytes(), v.as_bytes(), None, all)
            .await
            .unwrap();
    }
    // Every replica holds every write: each node's exchanges find nothing.
    for node in &cluster.nodes {
        let (pulled, repaired, out) = repair(node.client);
        assert_eq!((pulled, repaired), (0, 0), "{}:\n{out}", node.id);
    }

    // n3 misses 6 new keys and 4 overwrites.
    cluster.nodes[2].kill();
    for i in 50..56 {
        data.push((format!("sync-{i}"), format!("v-{i}")));
    }
    for (i, (_, v)) in data.iter_mut().take(4).enumerate() {
        *v = format!("new-{i}");
    }
    for (k, v) in data[..4].iter().chain(&data[50..]) {
        let found = c1.get(k.as_bytes()).await.unwrap();
        c1.put(k.as_bytes(), v.as_bytes(), found.context.as_ref())
            .await
            .unwrap();
    }
    cluster.nodes[2].restart();
    cluster.wait_all_alive().await;

    // n3 pulls exactly those 10 keys (from n1; then it is in sync with n2).
    let (pulled, repaired, out) = repair(cluster.nodes[2].client);
    assert_eq!((pulled, repaired), (10, 10), "{out}");
    let (pulled, repaired, out) = repair(cluster.nodes[2].client);
    assert_eq!((pulled, repaired), (0, 0), "in sync again:\n{out}");
    cluster.assert_holds_alone(2, &data).await;
}
