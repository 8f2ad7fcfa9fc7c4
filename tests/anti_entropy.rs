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
