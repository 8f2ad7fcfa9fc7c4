//! Gossip membership on real processes: failure detection, a join and a
//! leave with data moving by itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use ringkv::client::RequestOptions;
use ringkv_actors::NodeId;

const KEYS: usize = 300;

async fn load(cluster: &Cluster) -> Vec<(String, String)> {
    let c = cluster.nodes[0].client().await;
    let all = RequestOptions {
        w: Some(3),
        ..Default::default()
    };
    let mut data = Vec::new();
    for i in 0..KEYS {
        let (k, v) = (format!("key-{i}"), format!("value-{i}"));
        c.put_with(k.as_bytes(), v.as_bytes(), None, all)
            .await
            .unwrap();
        data.push((k, v));
    }
    data
}

/// Waits until every running node reports `node` in `state`.
async fn wait_everywhere(cluster: &Cluster, node: &str, state: &str) {
    for i in 0..cluster.nodes.len() {
        if cluster.nodes[i].child.is_some() && cluster.nodes[i].id != node {
            cluster.wait_state(i, node, state).await;
        }
    }
}

#[tokio::test]
async fn a_killed_node_is_reported_down_and_alive_again_after_restart() {
    let mut cluster = Cluster::start(3, &[]).await;
    cluster.nodes[2].kill();
    wait_everywhere(&cluster, "n3", "down").await;
    // The survivors log who reported it.
    let log = std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log")).unwrap();
    assert!(
        log.contains("member state changed") && log.contains("to=\"down\""),
        "{log}"
    );
    cluster.nodes[2].restart();
    wait_everywhere(&cluster, "n3", "alive").await;
    // The restarted node took its old place: same ring, data still served.
    let status = cluster.nodes[2].client().await.status().await.unwrap();
    assert_eq!(status.members.len(), 3);
}

#[tokio::test]
async fn a_fourth_node_joins_takes_a_quarter_and_no_key_becomes_unreadable() {
    let mut cluster = Cluster::start(3, &[]).await;
    let data = Arc::new(load(&cluster).await);

    // Read every key at R=2 over and over while the fourth node joins.
    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(AtomicU64::new(0));
    let reader = {
        let (c, data, stop, misses, rounds) = (
            cluster.nodes[1].client().await,
            data.clone(),
            stop.clone(),
            misses.clone(),
            rounds.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                for (k, v) in data.iter() {
                    match c.get(k.as_bytes()).await {
                        Ok(found) if found.values == vec![v.clone().into_bytes()] => {}
                        Ok(found) => {
                            eprintln!("{k}: wrong answer {:?}", found.values);
                            misses.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            eprintln!("{k}: {e}");
                            misses.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    let n4 = cluster.add_node(0, &[]);
    wait_everywhere(&cluster, "n4", "alive").await;
    cluster.wait_state(n4, "n4", "alive").await;
    // One more full pass with n4 serving reads.
    let seen = rounds.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rounds.load(Ordering::SeqCst) < seen + 2 {
        assert!(Instant::now() < deadline, "reader stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    assert_eq!(
        misses.load(Ordering::SeqCst),
        0,
        "keys became unreadable during the join"
    );

    let status = cluster.nodes[0].client().await.status().await.unwrap();
    let share = status
        .members
        .iter()
        .find(|m| m.id == "n4")
        .unwrap()
        .ring_share
        .unwrap();
    assert!((0.15..=0.35).contains(&share), "n4 owns {share}");

    // n4 holds what it owns: read its copy of every key it is a replica of.
    let log = std::fs::read_to_string(cluster.nodes[n4].data_dir.with_extension("log")).unwrap();
    let done = log
        .lines()
        .find(|l| l.contains("handoff done"))
        .expect("n4 logged its handoff");
    let keys: f64 = done
        .split("keys=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    // Ideal: with N=3 on 4 nodes, a new node holds 3/4 of the keys.
    let ideal = KEYS as f64 * 3.0 / 4.0;
    eprintln!(
        "join moved {keys} keys; ideal {ideal}; ratio {:.3}",
        keys / ideal
    );
    assert!(
        keys / ideal <= 1.2,
        "moved {keys} keys for an ideal of {ideal}"
    );

    // Every key n4 is now a replica of is on n4's own disk: stop the others
    // and read n4 alone.
    let ring = common::ring_of(4);
    let n4_id = NodeId::new("n4").unwrap();
    let owned: Vec<_> = data
        .iter()
        .filter(|(k, _)| ring.preference_list(k.as_bytes(), 3).contains(&n4_id))
        .collect();
    assert_eq!(
        owned.len() as f64,
        keys,
        "n4 received exactly the keys it owns"
    );
    cluster.assert_holds_alone(n4, owned).await;
}

#[tokio::test]
async fn a_leaving_node_hands_off_so_every_key_keeps_n_replicas() {
    let mut cluster = Cluster::start(4, &[]).await;
    let data = load(&cluster).await;
    let leaver = cluster.nodes[3].client().await;
    assert_eq!(leaver.leave().await.unwrap(), "n4");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = leaver.status().await.unwrap();
        if status
            .members
            .iter()
            .any(|m| m.id == "n4" && m.state == "left")
        {
            break;
        }
        assert!(Instant::now() < deadline, "n4 never left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_everywhere(&cluster, "n4", "left").await;
    cluster.nodes[3].kill();

    // With N=3 on the 3 nodes left, each of them must hold every key:
    // read each one alone (the other two stopped).
    for alone in 0..3 {
        cluster.assert_holds_alone(alone, &data).await;
        for other in 0..3 {
            if other != alone {
                cluster.nodes[other].restart();
            }
        }
        cluster.wait_all_alive().await;
    }
}
