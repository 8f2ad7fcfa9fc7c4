//! SIGKILL a node under write load, restart it on its data dir, and read
//! every acknowledged key from it alone.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Cluster;
use ringkv::client::RequestOptions;

#[tokio::test]
async fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, &[]).await;
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    // W=3 while all are up: every acknowledged write is on n1's disk.
    let all = RequestOptions {
        w: Some(3),
        ..Default::default()
    };
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = cluster.nodes[1].client().await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let (k, v) = (format!("w{w}-{i}"), format!("value-{w}-{i}"));
                match client.put_with(k.as_bytes(), v.as_bytes(), None, all).await {
                    Ok(_) => acked.lock().unwrap().push((k, v)),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nodes[0].kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too little load to mean anything: {}",
        acked.len()
    );

    // n1 alone, restarted: every write acknowledged before the kill is there.
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    cluster.nodes[0].restart();
    cluster.wait_all_alive().await;
    let c = cluster.nodes[0].client().await;
    let one = RequestOptions {
        r: Some(1),
        ..Default::default()
    };
    for (k, v) in &acked {
        let found = c.get_with(k.as_bytes(), one).await.unwrap();
        assert_eq!(found.values, vec![v.clone().into_bytes()], "{k}");
    }
}
