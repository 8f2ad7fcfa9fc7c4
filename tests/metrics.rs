//! The `--metrics-listen` endpoint on real processes: `/metrics` parses as
//! the Prometheus text format (the `prometheus-parse` crate) and its
//! counters move by exactly what was sent; other paths answer 404.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::{http_get, Cluster};
use prometheus_parse::{Scrape, Value};
use ringkv::client::RequestOptions;

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `metric` whose labels include `labels` (a
/// histogram reads as its observation count).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_count_the_requests_sent_and_the_members() {
    let mut cluster = Cluster::plan(3, &[]);
    let metrics_addrs = cluster.add_metrics_listeners();
    cluster.spawn_all();
    cluster.wait_all_alive().await;
    let n1 = metrics_addrs[0];
    let before = scrape(n1);
    let count = |s: &Scrape, op: &str, result: &str| {
        value(
            s,
            "ringkv_requests_total",
            &[("op", op), ("result", result)],
        )
        .unwrap_or(0.0)
    };

    let client = cluster.nodes[0].client().await;
    const PUTS: usize = 5;
    const GETS: usize = 7;
    for i in 0..PUTS {
        client
            .put(format!("m-{i}").as_bytes(), b"v", None)
            .await
            .unwrap();
    }
    let mut context = None;
    for i in 0..GETS {
        let found = client
            .get(format!("m-{}", i % PUTS).as_bytes())
            .await
            .unwrap();
        if i == 0 {
            context = found.context;
        }
    }
    // A delete that covers the value leaves a tombstone.
    client.delete(b"m-0", context.as_ref()).await.unwrap();

    let after = scrape(n1);
    assert_eq!(
        count(&after, "put", "ok") - count(&before, "put", "ok"),
        PUTS as f64
    );
    assert_eq!(
        count(&after, "get", "ok") - count(&before, "get", "ok"),
        GETS as f64
    );
    assert_eq!(
        count(&after, "delete", "ok") - count(&before, "delete", "ok"),
        1.0
    );
    let observed = |s: &Scrape, op: &str| {
        value(s, "ringkv_request_duration_seconds", &[("op", op)]).unwrap_or(0.0)
    };
    assert_eq!(
        observed(&after, "put") - observed(&before, "put"),
        PUTS as f64
    );
    assert_eq!(
        observed(&after, "get") - observed(&before, "get"),
        GETS as f64
    );
    assert_eq!(
        value(&after, "ringkv_members", &[("state", "alive")]),
        Some(3.0)
    );
    assert_eq!(
        value(&after, "ringkv_members", &[("state", "down")]),
        Some(0.0)
    );
    // Every put and get reached both other replicas (N=3): each peer saw
    // requests from n1 and answered them.
    for peer in ["n2", "n3"] {
        let ok = value(
            &after,
            "ringkv_replica_requests_total",
            &[("peer", peer), ("result", "ok")],
        );
        assert!(ok.unwrap_or(0.0) >= 1.0, "no replica requests to {peer}");
    }
    // Nothing is queued once every answer is in.
    assert_eq!(
        value(
            &after,
            "ringkv_actor_mailbox_depth",
            &[("actor", "replicator")]
        ),
        Some(0.0)
    );
    // The delete made a tombstone on the coordinator.
    assert!(value(&after, "ringkv_tombstones", &[]).unwrap() >= 1.0);
    // The LSM engine's own metrics: every put was fsynced.
    let fsyncs = value(&after, "ringkv_storage_fsync_duration_seconds", &[]).unwrap();
    assert!(fsyncs >= PUTS as f64, "fsyncs {fsyncs}");
    assert!(value(&after, "ringkv_storage_memtable_bytes", &[]).unwrap() > 0.0);
    // The event loop's lag probe samples every 50 ms from the start
    // (`ringkv::event_loop`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while value(&scrape(n1), "ringkv_event_loop_lag_seconds", &[]).unwrap() < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no event loop lag sample in 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for name in [
        "ringkv_hints_pending",
        "ringkv_hints_delivered_total",
        "ringkv_anti_entropy_keys_repaired_total",
        "ringkv_read_repairs_total",
        "ringkv_storage_tables",
        "ringkv_storage_compactions_total",
        "ringkv_storage_write_stall_seconds_total",
    ] {
        assert!(value(&after, name, &[]).is_some(), "{name} missing");
    }
    for direction in ["in", "out"] {
        assert!(value(
            &after,
            "ringkv_anti_entropy_bytes_total",
            &[("direction", direction)]
        )
        .is_some());
    }

    // A put whose key's last version is in the engine (W=3: the put
    // before it answered once its own copy was written) and in memory is
    // minted on the coordinator's event loop; every put is minted once.
    let minted = |s: &Scrape, on: &str| {
        value(s, "ringkv_versions_minted_total", &[("on", on)]).unwrap_or(0.0)
    };
    let all = RequestOptions {
        w: Some(3),
        ..RequestOptions::default()
    };
    let before = scrape(n1);
    let mut context = None;
    for value in [&b"x"[..], b"y", b"z"] {
        let written = client
            .put_with(b"minted", value, context.as_ref(), all)
            .await
            .unwrap();
        context = Some(written);
    }
    let after = scrape(n1);
    let here = minted(&after, "event_loop") - minted(&before, "event_loop");
    let by_writer = minted(&after, "writer") - minted(&before, "writer");
    assert_eq!(here + by_writer, 3.0, "{here} + {by_writer}");
    assert!(here >= 2.0, "minted on the event loop: {here}");

    let (status, _) = http_get(n1, "/");
    assert_eq!(status, 404);
    let (status, _) = http_get(n1, "/metrics/x");
    assert_eq!(status, 404);
}

/// A get asks as many replicas as R needs, its coordinator's own copy
/// first (`read_asks = needed`, the default): on 3 nodes an R=1 get sends
/// no replica request, an R=2 get one, an R=3 get two; with `--read-asks
/// all` every get asks both other replicas.
#[tokio::test]
async fn a_get_asks_only_the_replicas_its_r_needs() {
    for (extra, per_get) in [
        (&[][..], [0.0, 1.0, 2.0]),
        (&["--read-asks", "all"][..], [2.0; 3]),
    ] {
        let mut cluster = Cluster::plan(3, extra);
        let metrics_addrs = cluster.add_metrics_listeners();
        cluster.spawn_all();
        cluster.wait_all_alive().await;
        let client = cluster.nodes[0].client().await;
        let every = RequestOptions {
            w: Some(3),
            ..RequestOptions::DEFAULT
        };
        const KEYS: usize = 10;
        for i in 0..KEYS {
            let key = format!("r-{i}");
            client
                .put_with(key.as_bytes(), b"v", None, every)
                .await
                .unwrap();
        }
        let sent = |s: &Scrape| -> f64 {
            ["n2", "n3"]
                .iter()
                .map(|peer| {
                    ["ok", "timeout", "error"]
                        .iter()
                        .filter_map(|result| {
                            value(
                                s,
                                "ringkv_replica_requests_total",
                                &[("peer", peer), ("result", result)],
                            )
                        })
                        .sum::<f64>()
                })
                .sum()
        };
        for (r, per_get) in (1..=3).zip(per_get) {
            let before = sent(&scrape(metrics_addrs[0]));
            let with_r = RequestOptions {
                r: Some(r),
                ..RequestOptions::DEFAULT
            };
            for i in 0..KEYS {
                let found = client
                    .get_with(format!("r-{i}").as_bytes(), with_r)
                    .await
                    .unwrap();
                assert_eq!(found.values, vec![b"v".to_vec()]);
            }
            // Replies the read stopped waiting for still arrive and are
            // counted: read until every request is in.
            let expected = before + per_get * KEYS as f64;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let now = sent(&scrape(metrics_addrs[0]));
                if now == expected {
                    break;
                }
                assert!(
                    now < expected && std::time::Instant::now() < deadline,
                    "{extra:?} R={r}: {} replica requests for {KEYS} gets, expected {}",
                    now - before,
                    expected - before
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
