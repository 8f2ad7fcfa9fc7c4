//! The `list` op on real nodes: every live key exactly once, in ring order,
//! at any page size, with a replica killed, and the documented refusals.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::Cluster;
use futures_util::future::join_all;
use ringkv::client::{Client, Error, RequestOptions};
use ringkv_actors::ring::Ring;
use ringkv_actors::wire::client::ErrorCode;

const KEYS: usize = 2000;
const DELETED: usize = 100;

/// Every replica acknowledges (N=2, W=2), so any one replica of a range
/// holds all of it: what a stable store is.
const ALL_REPLICAS: RequestOptions = RequestOptions {
    w: Some(2),
    ..RequestOptions::DEFAULT
};

fn key(i: usize) -> Vec<u8> {
    format!("user:{i:05}").into_bytes()
}

/// Walks every page with `limit`, checking each page's size, and returns
/// the keys in the order listed.
async fn pass(client: &Client, limit: usize) -> Vec<Vec<u8>> {
    let (mut all, mut cursor) = (Vec::new(), None::<Vec<u8>>);
    loop {
        let page = client
            .list_page(cursor.as_deref(), Some(limit))
            .await
            .unwrap_or_else(|e| panic!("a page of limit {limit}: {e}"));
        assert!(page.keys.len() <= limit, "{} > {limit}", page.keys.len());
        all.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

/// Exactly the expected keys, each once, in ring order (token, then key).
fn assert_exact(listed: &[Vec<u8>], expected: &BTreeSet<Vec<u8>>, what: &str) {
    let unique: BTreeSet<Vec<u8>> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "{what}: a key listed twice");
    let missing = expected.difference(&unique).count();
    let extra = unique.difference(expected).count();
    assert!(
        missing == 0 && extra == 0,
        "{what}: {missing} keys missing, {extra} not expected (deleted ones?)"
    );
    let order = |k: &Vec<u8>| (Ring::key_token(k), k.clone());
    assert!(
        listed.windows(2).all(|w| order(&w[0]) < order(&w[1])),
        "{what}: not in ring order"
    );
}

#[tokio::test]
async fn every_live_key_is_listed_once_in_ring_order_even_with_a_node_killed() {
    let mut cluster = Cluster::start(3, &["--n", "2"]).await;
    let client = cluster.nodes[0].client().await;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(200) {
        let writes = chunk.iter().map(|&i| {
            let client = client.clone();
            async move {
                client
                    .put_with(&key(i), b"v", None, ALL_REPLICAS)
                    .await
                    .unwrap()
            }
        });
        join_all(writes).await;
    }
    let deleted = (0..KEYS).step_by(KEYS / DELETED);
    let deletes = deleted.clone().map(|i| {
        let client = client.clone();
        async move {
            let found = client.get(&key(i)).await.unwrap();
            client
                .delete_with(&key(i), found.context.as_ref(), ALL_REPLICAS)
                .await
                .unwrap()
        }
    });
    join_all(deletes).await;
    let gone: BTreeSet<usize> = deleted.collect();
    assert_eq!(gone.len(), DELETED);
    let expected: BTreeSet<Vec<u8>> = (0..KEYS).filter(|i| !gone.contains(i)).map(key).collect();

    for limit in [1, 7, 100, 1000] {
        let listed = pass(&client, limit).await;
        assert_exact(&listed, &expected, &format!("limit {limit}"));
    }
    // Through another node: same keys, same order.
    let other = cluster.nodes[2].client().await;
    assert_eq!(pass(&other, 100).await, pass(&client, 1000).await);

    // A replica hangs (SIGSTOP): its arcs go to the other primary once it
    // does not answer (or once the link is seen timing out).
    cluster.nodes[1].pause(true);
    let listed = pass(&client, 1000).await;
    assert_exact(&listed, &expected, "n2 paused");
    cluster.nodes[1].pause(false);

    // A replica dies: the arcs it was asked for go to the other primary.
    cluster.nodes[1].kill();
    for limit in [1000, 7] {
        let listed = pass(&client, limit).await;
        assert_exact(&listed, &expected, &format!("n2 killed, limit {limit}"));
    }
}

#[tokio::test]
async fn out_of_range_limits_and_garbage_cursors_are_bad_requests() {
    let cluster = Cluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    let client = cluster.nodes[0].client().await;
    for i in 0..5 {
        client.put(&key(i), b"v", None).await.unwrap();
    }
    let bad = |result: Result<_, Error>| match result {
        Err(e) => e.code(),
        Ok(_) => None,
    };
    for limit in [0, 1001] {
        assert_eq!(
            bad(client.list_page(None, Some(limit)).await),
            Some(ErrorCode::BadRequest),
            "limit {limit}"
        );
    }
    let first = client.list_page(None, Some(2)).await.unwrap();
    let cursor = first.cursor.unwrap();
    let mut wrong_token = cursor.clone();
    wrong_token[4] ^= 0x40;
    let mut longer = cursor.clone();
    longer.push(b'!');
    for garbage in [
        vec![],
        vec![0xff; 3],
        vec![9; 40],
        wrong_token,
        longer,
        cursor[..10].to_vec(),
    ] {
        assert_eq!(
            bad(client.list_page(Some(&garbage), Some(2)).await),
            Some(ErrorCode::BadRequest),
            "cursor {garbage:?}"
        );
    }
    // The connection and the real cursor still work.
    let rest = client.list_page(Some(&cursor), Some(1000)).await.unwrap();
    assert_eq!(first.keys.len() + rest.keys.len(), 5);
    assert_eq!(rest.cursor, None);
}
