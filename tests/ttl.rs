//! TTL on real processes: a put with `ttl_ms` reads as absent once it has
//! expired, on every replica, and a replica that was away for the write
//! and still holds the older value never brings it back.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use ringkv::client::{Client, RequestOptions};

/// How long the tests wait for an expiry or a repair, at most.
const WAIT_MAX: Duration = Duration::from_secs(20);

fn with_r(r: usize) -> RequestOptions {
    RequestOptions {
        r: Some(r),
        ..RequestOptions::DEFAULT
    }
}

/// Reads `key` with `options` until it is absent; fails after [`WAIT_MAX`].
/// Every answer seen on the way must be one of `allowed`.
async fn until_absent(client: &Client, key: &[u8], options: RequestOptions, allowed: &[&[u8]]) {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let found = client.get_with(key, options).await.unwrap();
        if found.values.is_empty() {
            return;
        }
        for v in &found.values {
            assert!(
                allowed.contains(&v.as_slice()),
                "{:?} read back",
                String::from_utf8_lossy(v)
            );
        }
        assert!(Instant::now() < deadline, "{key:?} never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_expired_value_reads_as_absent_everywhere() {
    let cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    let ttl_ms = 1_500;
    let put = Instant::now();
    c1.put_with(
        b"session:1",
        b"token",
        None,
        RequestOptions {
            ttl_ms: Some(ttl_ms),
            ..RequestOptions::DEFAULT
        },
    )
    .await
    .unwrap();
    c1.put(b"forever", b"v", None).await.unwrap();
    let found = c1.get_with(b"session:1", with_r(3)).await.unwrap();
    if put.elapsed() < Duration::from_millis(ttl_ms) {
        assert_eq!(found.values, vec![b"token".to_vec()]);
    }
    // Expired: absent through every node, alone and at R=3, while the key
    // without a TTL stays.
    for node in &cluster.nodes {
        let c = node.client().await;
        until_absent(&c, b"session:1", with_r(1), &[b"token"]).await;
        until_absent(&c, b"session:1", with_r(3), &[b"token"]).await;
        let kept = c.get_with(b"forever", with_r(3)).await.unwrap();
        assert_eq!(kept.values, vec![b"v".to_vec()]);
    }
    // The expired read still hands out a context: a put with it replaces
    // the expired version (no sibling).
    let expired = c1.get_with(b"session:1", with_r(3)).await.unwrap();
    assert!(expired.values.is_empty());
    c1.put(b"session:1", b"again", expired.context.as_ref())
        .await
        .unwrap();
    let again = c1.get_with(b"session:1", with_r(3)).await.unwrap();
    assert_eq!(again.values, vec![b"again".to_vec()]);
}

/// n3 is paused while "old" is replaced by an expiring "new"; once n3 is
/// back and "new" has expired, "old" never shows: the expired version's
/// dot still covers it, and read repair hands n3 the merged object.
#[tokio::test]
async fn a_stale_replica_back_after_the_expiry_brings_nothing_back() {
    let cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    let all = RequestOptions {
        w: Some(3),
        ..RequestOptions::DEFAULT
    };
    c1.put_with(b"k", b"old", None, all).await.unwrap();
    let context = c1.get_with(b"k", with_r(3)).await.unwrap().context;

    cluster.nodes[2].pause(true);
    c1.put_with(
        b"k",
        b"new",
        context.as_ref(),
        RequestOptions {
            w: Some(2),
            ttl_ms: Some(500),
            ..RequestOptions::DEFAULT
        },
    )
    .await
    .unwrap();
    until_absent(&c1, b"k", with_r(1), &[b"new"]).await;
    cluster.nodes[2].pause(false);
    cluster.wait_all_alive().await;

    // Through the stale replica, at R=3: the merge covers "old".
    let c3 = cluster.nodes[2].client().await;
    until_absent(&c3, b"k", with_r(3), &[]).await;
    // Read repair brings n3 the expired version. n3 alone (n1 and n2
    // paused, so an R=1 read through n3 is answered by n3's own copy) then
    // answers absent, never "old": until the repair lands it may still
    // hold "old" (that is staleness, not resurrection), so each round
    // reads at R=3 first, which repairs it.
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        until_absent(&c3, b"k", with_r(3), &[]).await;
        cluster.nodes[0].pause(true);
        cluster.nodes[1].pause(true);
        let alone = c3.get_with(b"k", with_r(1)).await.unwrap();
        let repaired = alone.values.is_empty();
        if repaired {
            for _ in 0..5 {
                let again = c3.get_with(b"k", with_r(1)).await.unwrap();
                assert!(again.values.is_empty(), "{:?}", again.values);
            }
        }
        cluster.nodes[0].pause(false);
        cluster.nodes[1].pause(false);
        if repaired {
            break;
        }
        assert_eq!(alone.values, vec![b"old".to_vec()]);
        assert!(Instant::now() < deadline, "read repair never reached n3");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
