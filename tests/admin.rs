//! `ringkv admin members | ring | repair` on a 4-node cluster of real
//! processes: the tables' rows, columns and values, and a repair that
//! finds what a stopped node missed.
#![allow(clippy::unwrap_used)]

mod common;

use common::{admin, Cluster};

/// The whitespace-separated columns of the row starting with `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first} in\n{table}"))
}

#[tokio::test]
async fn members_ring_and_repair_on_four_nodes() {
    // No periodic anti-entropy (the repair below is the one that runs),
    // and stand-ins refuse after one hint, so most writes n4 misses wait
    // for a repair rather than a hint delivery.
    let mut cluster = Cluster::start(
        4,
        &[
            "--anti-entropy-interval-ms",
            "0",
            "--hints-bytes-max-per-target",
            "1",
        ],
    )
    .await;
    let n1 = cluster.nodes[0].client;

    let members = admin(n1, &["members"]);
    let header = row(&members, "node");
    assert_eq!(
        header,
        ["node", "address", "state", "dc/rack", "load", "tokens", "owns", "hints", "pending"]
    );
    let mut owns = 0.0;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let cols = row(&members, &format!("n{}", i + 1));
        assert_eq!(cols[1], node.peer.to_string());
        assert_eq!(cols[2], "alive");
        assert_eq!(cols[3], "dc1/r1");
        // Load: every node answered (a number and a unit, not "?").
        assert_ne!(cols[4], "?", "{members}");
        assert_eq!(cols[6], "128", "128 vnodes each:\n{members}");
        owns += cols[7].trim_end_matches('%').parse::<f64>().unwrap();
        assert_eq!(cols[8], "0");
    }
    assert!((owns - 100.0).abs() < 0.5, "owns add up to 100%: {owns}");

    let ring = admin(n1, &["ring"]);
    assert!(ring.contains("512 tokens"), "{ring}");
    assert!(ring.contains("(N=3)"), "{ring}");
    let ranges: Vec<Vec<&str>> = ring
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(ranges.len() > 4, "{ring}");
    for r in &ranges {
        let replicas: Vec<&str> = r[3].split(',').collect();
        assert_eq!(replicas.len(), 3, "{r:?}");
        assert_eq!(replicas[0], r[2], "the primary is the first replica");
        r[0].parse::<u64>().unwrap();
        r[1].parse::<u64>().unwrap();
    }

    // n4 misses writes while it is stopped.
    cluster.nodes[3].kill();
    let client = cluster.nodes[0].client().await;
    for i in 0..40 {
        client
            .put(format!("rep-{i}").as_bytes(), b"v", None)
            .await
            .unwrap();
    }
    cluster.nodes[3].restart();
    cluster.wait_all_alive().await;
    let repair = admin(cluster.nodes[3].client, &["repair"]);
    let total = repair
        .lines()
        .find(|l| l.starts_with("total:"))
        .unwrap_or_else(|| panic!("{repair}"));
    let repaired: u64 = total.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(repaired > 0, "nothing repaired:\n{repair}");
    for peer in ["n1", "n2", "n3"] {
        assert!(row(&repair, peer).ends_with(&["ok"]), "{repair}");
    }

    // One key's read repair: each of its three replicas, all holding the
    // same version once repaired.
    let by_key = admin(n1, &["repair", "--key", "rep-1"]);
    let lines: Vec<&str> = by_key.lines().filter(|l| l.starts_with('n')).collect();
    assert_eq!(lines.len(), 3, "{by_key}");
    let after = admin(n1, &["repair", "--key", "rep-1"]);
    let rows: Vec<Vec<&str>> = after
        .lines()
        .filter(|l| l.starts_with('n'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    for r in &rows {
        assert_eq!(r[1], "yes", "every replica holds it: {after}");
        assert_eq!(r[5], "no", "nothing left to repair: {after}");
    }
    assert!(
        rows.windows(2).all(|w| w[0][6] == w[1][6]),
        "same clock: {after}"
    );
}
