//! Sloppy quorum and hinted handoff on real processes: writes for a dead
//! replica go to a stand-in, which hands them over when it comes back.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use ringkv_actors::NodeId;

#[tokio::test]
async fn writes_missed_by_a_dead_replica_reach_it_when_it_returns() {
    let mut cluster = Cluster::start(4, &[]).await;
    cluster.nodes[3].kill();
    cluster.wait_state(0, "n4", "down").await;

    let c1 = cluster.nodes[0].client().await;
    let data: Vec<(String, String)> = (0..80)
        .map(|i| (format!("hk-{i}"), format!("hv-{i}")))
        .collect();
    for (k, v) in &data {
        c1.put(k.as_bytes(), v.as_bytes(), None).await.unwrap();
    }

    cluster.nodes[3].restart();
    cluster.wait_all_alive().await;

    // The keys n4 is a replica of.
    let ring = common::ring_of(4);
    let n4 = NodeId::new("n4").unwrap();
    let owned: Vec<_> = data
        .iter()
        .filter(|(k, _)| ring.preference_list(k.as_bytes(), 3).contains(&n4))
        .collect();
    assert!(!owned.is_empty());

    // Wait until the stand-ins report their hints delivered.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let delivered: usize = (0..3)
            .map(|i| {
                std::fs::read_to_string(cluster.nodes[i].data_dir.with_extension("log"))
                    .unwrap_or_default()
            })
            .map(|log| {
                log.lines()
                    .filter(|l| l.contains("hinted handoff: delivered"))
                    .count()
            })
            .sum();
        if delivered > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no hint was ever delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // n4 alone holds every write it missed while dead.
    cluster.assert_holds_alone(3, owned).await;
}
