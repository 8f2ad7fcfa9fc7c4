//! Black-box tests of a 3-node cluster of real `ringkv node` processes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, REQUEST_TIMEOUT_MS};
use ringkv::client::{Error, RequestOptions};
use ringkv_actors::wire::client::ErrorCode;

#[tokio::test]
async fn put_through_one_node_get_through_the_others() {
    let cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    c1.put(b"cart:42", b"apples", None).await.unwrap();
    for node in &cluster.nodes[1..] {
        let found = node.client().await.get(b"cart:42").await.unwrap();
        assert_eq!(found.values, vec![b"apples".to_vec()], "via {}", node.id);
        assert!(found.context.is_some());
    }
    let missing = c1.get(b"never-written").await.unwrap();
    assert!(missing.values.is_empty() && missing.context.is_none());
    assert_eq!(c1.ping().await.unwrap(), "n1");
    // Every node runs with transparent huge pages off (src/huge_pages.rs),
    // and says so.
    for node in &cluster.nodes {
        let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid().unwrap()));
        let status = status.unwrap();
        assert!(status.contains("THP_enabled:\t0"), "{}: {status}", node.id);
        assert!(
            node.log_contains("transparent huge pages off"),
            "{}",
            node.id
        );
    }
}

#[tokio::test]
async fn quorum_survives_one_loss_refuses_two_and_data_survives_restarts() {
    let mut cluster = Cluster::start(3, &[]).await;
    let mut acknowledged = Vec::new();
    let c1 = cluster.nodes[0].client().await;
    for i in 0..20 {
        let key = format!("k{i}");
        c1.put(key.as_bytes(), format!("v{i}").as_bytes(), None)
            .await
            .unwrap();
        acknowledged.push(key);
    }

    cluster.nodes[2].kill();
    let quorum = RequestOptions {
        r: Some(2),
        w: Some(2),
        ..RequestOptions::DEFAULT
    };
    for i in 20..30 {
        let key = format!("k{i}");
        c1.put_with(key.as_bytes(), format!("v{i}").as_bytes(), None, quorum)
            .await
            .unwrap();
        acknowledged.push(key);
    }
    let found = c1.get_with(b"k25", quorum).await.unwrap();
    assert_eq!(found.values, vec![b"v25".to_vec()]);

    cluster.nodes[1].kill();
    let started = Instant::now();
    let err = c1.put(b"k-lost", b"x", None).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Some(ErrorCode::Unavailable) | Some(ErrorCode::Timeout)
        ),
        "{err}"
    );
    let err = c1.get(b"k1").await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Some(ErrorCode::Unavailable) | Some(ErrorCode::Timeout)
        ),
        "{err}"
    );
    // Within the request timeout (plus scheduling slack), never a hang.
    assert!(
        started.elapsed() < Duration::from_millis(3 * REQUEST_TIMEOUT_MS),
        "{:?}",
        started.elapsed()
    );

    for node in &mut cluster.nodes {
        node.restart();
    }
    cluster.wait_all_alive().await;
    let c2 = cluster.nodes[1].client().await;
    for (i, key) in acknowledged.iter().enumerate() {
        let found = c2.get(key.as_bytes()).await.unwrap();
        assert_eq!(
            found.values,
            vec![format!("v{i}").into_bytes()],
            "{key} after restart"
        );
    }
}

#[tokio::test]
async fn sigstopped_replica_gives_timeout_not_hang() {
    let cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    c1.put(b"k", b"v", None).await.unwrap();
    cluster.nodes[1].pause(true);
    cluster.nodes[2].pause(true);
    let started = Instant::now();
    let err = c1
        .put_with(
            b"k",
            b"v2",
            None,
            RequestOptions {
                w: Some(3),
                timeout_ms: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Timeout), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // R=1 is served by the coordinator's own replica meanwhile.
    let one = RequestOptions {
        r: Some(1),
        ..Default::default()
    };
    assert!(!c1.get_with(b"k", one).await.unwrap().values.is_empty());
    cluster.nodes[1].pause(false);
    cluster.nodes[2].pause(false);
    // Paused peers answer again once resumed (links that kept timing out
    // were redialled, which takes a backoff step).
    let all = RequestOptions {
        r: Some(3),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c1.get_with(b"k", all).await {
            Ok(found) => {
                assert!(!found.values.is_empty());
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "R=3 never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn per_request_quorum_is_validated() {
    let cluster = Cluster::start(3, &[]).await;
    let c = cluster.nodes[0].client().await;
    let err = c
        .get_with(
            b"k",
            RequestOptions {
                r: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Server {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{err}"
    );
    let err = c
        .put(b"k", b"v", Some(&ringkv::client::Context(vec![0xde, 0xad])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
}

/// A get asks R replicas; when one of them is SIGSTOPped (silent, not
/// failed), the read asks the third after `--read-retry-after-ms`, long
/// before the stand-in delay or the request's deadline. With the stand-in
/// delay (900 ms) past the reads' deadline (600 ms), and gossip slow
/// enough (a round a second, suspicion after 5 s) that no timed-out
/// gossip request tears the paused node's link down first, only that
/// retry can answer the reads that asked the paused node (with
/// `--read-retry-after-ms 900` they time out, which was checked).
#[tokio::test]
async fn a_read_that_asked_a_paused_replica_asks_the_next_one_in_time() {
    let mut cluster = Cluster::plan(
        3,
        &[
            "--stand-in-after-ms",
            "900",
            "--gossip-interval-ms",
            "1000",
            "--suspect-after-ms",
            "5000",
        ],
    );
    let metrics = cluster.add_metrics_listeners();
    cluster.spawn_all();
    cluster.wait_all_alive().await;
    let c1 = cluster.nodes[0].client().await;
    let every = RequestOptions {
        w: Some(3),
        ..Default::default()
    };
    const KEYS: usize = 20;
    for i in 0..KEYS {
        c1.put_with(format!("k{i}").as_bytes(), b"v", None, every)
            .await
            .unwrap();
    }
    cluster.nodes[1].pause(true);
    // All at once, before anything marks n2 doubtful: the keys whose
    // second replica (after n1's own) is n2 ask it.
    let quorum = RequestOptions {
        r: Some(2),
        timeout_ms: Some(600),
        ..Default::default()
    };
    let reads = (0..KEYS).map(|i| {
        let c1 = &c1;
        async move { c1.get_with(format!("k{i}").as_bytes(), quorum).await }
    });
    let results = futures_util::future::join_all(reads).await;
    cluster.nodes[1].pause(false);
    for (i, result) in results.into_iter().enumerate() {
        let found = result.unwrap_or_else(|e| panic!("k{i}: {e}"));
        assert_eq!(found.values, vec![b"v".to_vec()], "k{i}");
    }
    // The retries answered them, and n1 counted each.
    let retries = counter(metrics[0], "ringkv_read_retries_total");
    assert!(retries >= 1.0, "no read retry counted: {retries}");
}

/// The value of the unlabelled counter `name` on the metrics endpoint at
/// `addr`.
fn counter(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing: {body}"))
}
