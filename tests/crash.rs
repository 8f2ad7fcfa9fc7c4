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
    sigkill_under_write_load(&[]).await;
}

/// The same with every node's storage writer on a thread of its own
/// (`--storage-writer thread`; the default is the event loop).
#[tokio::test]
async fn sigkill_under_write_load_with_the_writer_on_a_thread_loses_no_acknowledged_write() {
    sigkill_under_write_load(&["--storage-writer", "thread"]).await;
}

/// Writes at W=3 through n2, SIGKILLs n1 (`nodes[0]`) once writes are
/// being acknowledged, and reads every acknowledged write from n1 alone
/// once it is restarted on its data dir.
async fn sigkill_under_write_load(extra: &[&str]) {
    let mut cluster = Cluster::start(3, extra).await;
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
    // Kill n1 in the middle of the load, once writes are acknowledged.
    while acked.lock().unwrap().len() < 300 && !writers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

/// The name a node versions its writes under, from `admin status`.
async fn version_actor(cluster: &Cluster) -> String {
    let status = cluster.nodes[0].client().await.status().await.unwrap();
    ringkv_actors::wire::client::map_str(&status.raw, "version_actor").unwrap()
}

/// A clean stop (SIGTERM) keeps the store's incarnation; a crash (SIGKILL)
/// gets a new one, since a write coordinator sends a new version to the
/// other replicas before its own copy is durable.
#[tokio::test]
async fn a_clean_stop_keeps_the_version_actor_and_a_crash_changes_it() {
    let mut cluster = Cluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    cluster.nodes[0]
        .client()
        .await
        .put(b"k", b"v", None)
        .await
        .unwrap();
    let first = version_actor(&cluster).await;
    assert!(first.starts_with("n1#"), "{first}");

    cluster.nodes[0].terminate();
    cluster.nodes[0].restart();
    cluster.wait_all_alive().await;
    assert_eq!(
        version_actor(&cluster).await,
        first,
        "kept across a clean stop"
    );

    cluster.nodes[0].restart(); // SIGKILL, then start
    cluster.wait_all_alive().await;
    let after_crash = version_actor(&cluster).await;
    assert_ne!(after_crash, first, "a crash must not keep the name");
    // Writes go on under the new name, and the old value is still there.
    let c = cluster.nodes[0].client().await;
    let found = c.get(b"k").await.unwrap();
    assert_eq!(found.values, vec![b"v".to_vec()]);
    c.put(b"k", b"w", Some(&found.context.unwrap()))
        .await
        .unwrap();
    assert_eq!(c.get(b"k").await.unwrap().values, vec![b"w".to_vec()]);
}
