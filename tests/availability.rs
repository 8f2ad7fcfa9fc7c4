//! The cluster answers from the first second: real node processes,
//! used the moment they answer `ping`, killed together while young,
//! moved to another port, and a dead member forgotten for good.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{free_addr, ring_of, Cluster};
use ringkv::client::RequestOptions;

const ALL: RequestOptions = RequestOptions {
    r: Some(3),
    w: Some(3),
    ..RequestOptions::DEFAULT
};

const ONE: RequestOptions = RequestOptions {
    r: Some(1),
    ..RequestOptions::DEFAULT
};

/// How long a test waits for a condition that takes gossip rounds.
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_cluster_takes_puts_and_gets_through_every_node_as_soon_as_it_answers_ping() {
    let cluster = Cluster::spawn(3, &[]);
    cluster.wait_ping().await;
    // No sleep, no retry: the first request through each node succeeds.
    for (i, node) in cluster.nodes.iter().enumerate() {
        let client = node.client().await;
        let key = format!("first-{i}");
        client
            .put(key.as_bytes(), b"v", None)
            .await
            .unwrap_or_else(|e| panic!("first put through {}: {e}", node.id));
    }
    for node in &cluster.nodes {
        let client = node.client().await;
        for i in 0..3 {
            let key = format!("first-{i}");
            let found = client
                .get(key.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("first get of {key} through {}: {e}", node.id));
            assert_eq!(found.values, vec![b"v".to_vec()], "{key} via {}", node.id);
        }
    }
}

#[tokio::test]
async fn a_young_cluster_killed_at_once_serves_every_acknowledged_key_right_after_restart() {
    let mut cluster = Cluster::spawn(3, &[]);
    cluster.wait_ping().await;
    // Writes for about a second after start, then kill -9 everyone.
    let started = Instant::now();
    let client = cluster.nodes[0].client().await;
    let mut acknowledged = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(1) {
        let key = format!("young-{i}");
        if client
            .put_with(key.as_bytes(), key.as_bytes(), None, ALL)
            .await
            .is_ok()
        {
            acknowledged.push(key);
        }
        i += 1;
    }
    assert!(!acknowledged.is_empty(), "no write was acknowledged");
    for node in &mut cluster.nodes {
        node.kill();
    }
    for node in &mut cluster.nodes {
        node.restart();
    }
    cluster.wait_ping().await;
    // Right away, each node alone would do (r=1): every key is read
    // through every node.
    for node in &cluster.nodes {
        let client = node.client().await;
        for key in &acknowledged {
            let found = client
                .get_with(key.as_bytes(), ONE)
                .await
                .unwrap_or_else(|e| panic!("{key} through {} after restart: {e}", node.id));
            assert_eq!(
                found.values,
                vec![key.clone().into_bytes()],
                "via {}",
                node.id
            );
        }
    }
}

#[tokio::test]
async fn a_node_restarted_on_another_port_takes_w3_writes() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    c1.put_with(b"before", b"v", None, ALL).await.unwrap();
    let moved = free_addr();
    cluster.nodes[2].restart_on(moved);
    cluster.nodes[2].wait_ping().await;
    // The others learn the new address from its gossip and dial it; a
    // W=3 write needs all three.
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    loop {
        let key = format!("after-{i}");
        match c1.put_with(key.as_bytes(), b"v", None, ALL).await {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "W=3 never succeeded after n3 moved to {moved}: {e}"
            ),
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = c1.status().await.unwrap();
    let n3 = status.members.iter().find(|m| m.id == "n3").unwrap();
    assert_eq!(n3.addr, moved.to_string(), "n1 follows n3's new address");
}

#[tokio::test]
async fn a_forgotten_member_leaves_the_ring_and_its_ranges_are_copied_again() {
    let mut cluster = Cluster::start(4, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    // Keys that n4 and n3 both replicate in the 4-node ring: when n4 is
    // forgotten, n3 stays their replica and the node that takes n4's
    // place must get them from the remaining replicas.
    let before = ring_of(4);
    let after = ring_of(3);
    let mut gained: Vec<(String, String)> = Vec::new();
    for i in 0..200 {
        let key = format!("k{i}");
        c1.put_with(key.as_bytes(), key.as_bytes(), None, ALL)
            .await
            .unwrap();
        let old = before.preference_list(key.as_bytes(), 3);
        let new = after.preference_list(key.as_bytes(), 3);
        if old.iter().any(|n| n.as_str() == "n4") {
            let newcomer = new.iter().find(|n| !old.contains(n)).unwrap();
            gained.push((newcomer.to_string(), key));
        }
    }
    cluster.nodes[3].kill();
    cluster.wait_state(0, "n4", "down").await;
    let refused = c1.forget("n1").await.unwrap_err();
    assert!(refused.to_string().contains("leave"), "{refused}");
    c1.forget("n4").await.unwrap();
    for observer in 0..3 {
        cluster.wait_state(observer, "n4", "left").await;
    }
    // Pick the node that gained the most keys; wait until it has pulled
    // them, then read it alone.
    let target = ["n1", "n2", "n3"]
        .into_iter()
        .max_by_key(|n| gained.iter().filter(|(g, _)| g == n).count())
        .unwrap();
    let index = cluster.nodes.iter().position(|n| n.id == target).unwrap();
    let deadline = Instant::now() + WAIT;
    while !cluster.nodes[index].log_contains("re-replication after forget done") {
        assert!(Instant::now() < deadline, "{target} never re-replicated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys: Vec<(String, String)> = gained
        .iter()
        .filter(|(g, _)| g == target)
        .map(|(_, k)| (k.clone(), k.clone()))
        .collect();
    assert!(!keys.is_empty());
    cluster.assert_holds_alone(index, &keys).await;
}

#[tokio::test]
async fn a_fourth_node_joining_a_cluster_that_just_started_holds_every_key_it_owns() {
    // No wait for the three to settle: load them the moment they answer
    // ping, and start the fourth at once.
    let mut cluster = Cluster::spawn(3, &[]);
    cluster.wait_ping().await;
    let c1 = cluster.nodes[0].client().await;
    let mut data = Vec::new();
    for i in 0..300 {
        let (k, v) = (format!("young-{i}"), format!("v{i}"));
        c1.put_with(k.as_bytes(), v.as_bytes(), None, ALL)
            .await
            .unwrap();
        data.push((k, v));
    }
    let n4 = cluster.add_node(0, &[]);
    cluster.nodes[n4].wait_ping().await;
    cluster.wait_state(n4, "n4", "alive").await;
    let ring = ring_of(4);
    let owned: Vec<(String, String)> = data
        .into_iter()
        .filter(|(k, _)| {
            ring.preference_list(k.as_bytes(), 3)
                .iter()
                .any(|n| n.as_str() == "n4")
        })
        .collect();
    assert!(owned.len() > 100, "n4 owns {} of 300", owned.len());
    cluster.assert_holds_alone(n4, &owned).await;
}
