//! No acknowledged write lost to a failing disk, a lost hint or a huge
//! value; nothing a client stores can hang a node. Real node processes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ring_of, Cluster};
use ringkv::client::RequestOptions;
use ringkv_actors::wire::client::ErrorCode;

/// How long a test waits for a condition that takes gossip rounds or a
/// delivery.
const WAIT: Duration = Duration::from_secs(30);

const W3: RequestOptions = RequestOptions {
    w: Some(3),
    ..RequestOptions::DEFAULT
};

const R3: RequestOptions = RequestOptions {
    r: Some(3),
    ..RequestOptions::DEFAULT
};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A small tmpfs mounted for a test at `<tempdir>/data` (so that files
/// beside it, a node's log, stay on the real disk), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path().join("data"))
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs failed");
        Tmpfs { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Fills the file system of `dir` with `filler`, then frees `leave`
/// bytes of it.
fn fill(filler: &Path, leave: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut written = 0u64;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = file.flush();
    file.set_len(written.saturating_sub(leave)).unwrap();
    file.sync_all().unwrap();
}

/// Waits until `check` holds, panicking with `what` and `node`'s log
/// after [`WAIT`].
async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    node: &common::NodeProc,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "never: {what}; {}'s log:\n{}",
            node.id,
            common::log_excerpt(node)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cluster of `count` nodes planned with `extra` flags, whose n1 keeps
/// its data (and its log: a node must outlive a log it cannot write) on a
/// small tmpfs, with small LSM files so that the disk fills with a few
/// writes; started, every node alive. The tmpfs is unmounted when
/// dropped, after the cluster.
async fn n1_on_a_small_tmpfs(count: usize, extra: &[&str]) -> (Cluster, Tmpfs) {
    let tmpfs = Tmpfs::mount(24 << 20);
    let mut cluster = Cluster::plan(count, extra);
    cluster.nodes[0].move_data_dir(tmpfs.path().join("n1"));
    cluster.nodes[0].args.extend(
        [
            "--lsm-memtable-bytes-max",
            "131072",
            "--lsm-log-preallocate-bytes",
            "0",
            "--lsm-log-segment-bytes-max",
            "131072",
        ]
        .map(String::from),
    );
    cluster.spawn_all();
    cluster.wait_all_alive().await;
    (cluster, tmpfs)
}

/// Waits until n1 (on a disk that filled) has reopened its store and
/// mints again.
async fn until_n1_mints_again(cluster: &Cluster) {
    let n1 = &cluster.nodes[0];
    until("n1 mints again", n1, || async {
        n1.status_field("minting").await.and_then(|v| v.as_bool()) == Some(true)
    })
    .await;
}

#[tokio::test]
async fn a_node_whose_disk_fills_loses_no_acknowledged_write_and_recovers_when_space_is_back() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let (cluster, tmpfs) = n1_on_a_small_tmpfs(3, &[]).await;
    let before = cluster.nodes[0]
        .status_field("version_actor")
        .await
        .unwrap();
    let filler = tmpfs.path().join("filler");
    fill(&filler, 64 << 10);

    // 30 blind puts of one key through n1 at w=2: the disk fills under
    // them. Before, n1 went on minting under the same name after its own
    // copy failed, and replicas took every later write as already seen.
    let c1 = cluster.nodes[0].client().await;
    let mut acknowledged = BTreeSet::new();
    let mut refused = Vec::new();
    for i in 0..30 {
        let value = format!("v{i:02}-{}", "x".repeat(8 << 10));
        match c1.put(b"full", value.as_bytes(), None).await {
            Ok(_) => {
                acknowledged.insert(value.into_bytes());
            }
            Err(e) => refused.push(format!("{i}: {e}")),
        }
    }
    assert!(
        acknowledged.len() >= 20,
        "{} acknowledged; refused: {refused:?}",
        acknowledged.len()
    );
    // Every acknowledged value is a sibling (read at R=N, through n2).
    let found = cluster.nodes[1]
        .client()
        .await
        .get_with(b"full", R3)
        .await
        .unwrap();
    let values: BTreeSet<Vec<u8>> = found.values.into_iter().collect();
    let lost: Vec<_> = acknowledged.difference(&values).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost",
        lost.len(),
        acknowledged.len()
    );
    // The full disk stopped n1 minting. A failed batch gives back its
    // space, so n1 may already have found room to reopen under a new name
    // (it retries every second): either is proof of the stop.
    let minting = cluster.nodes[0].status_field("minting").await.unwrap();
    let during = cluster.nodes[0]
        .status_field("version_actor")
        .await
        .unwrap();
    assert!(
        minting.as_bool() == Some(false) || during != before,
        "the full disk never stopped n1 minting (still {during} and minting)"
    );

    // Space comes back: n1 reopens its store and mints under a new name.
    std::fs::remove_file(&filler).unwrap();
    until_n1_mints_again(&cluster).await;
    let n1 = &cluster.nodes[0];
    let after = n1.status_field("version_actor").await.unwrap();
    assert_ne!(before, after, "a new incarnation after the failure");
    c1.put(b"after", b"space is back", None).await.unwrap();
    drop(cluster);
    drop(tmpfs);
}

#[tokio::test]
async fn a_lone_node_whose_disk_fills_acknowledges_only_what_it_stored() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    // N = 1: the node's own copy is the whole quorum, and its answer is
    // the write's (no replica to wait for). A put whose batch fails on
    // the full disk must be refused, never acknowledged.
    let (cluster, tmpfs) = n1_on_a_small_tmpfs(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    let filler = tmpfs.path().join("filler");
    fill(&filler, 64 << 10);

    let c1 = cluster.nodes[0].client().await;
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..30 {
        let key = format!("k{i:02}");
        let value = format!("v{i:02}-{}", "x".repeat(8 << 10));
        match c1.put(key.as_bytes(), value.as_bytes(), None).await {
            Ok(_) => acknowledged.push((key, value)),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0, "the full disk refused no put");

    // Space comes back and the store reopens: every acknowledged put is
    // there.
    std::fs::remove_file(&filler).unwrap();
    until_n1_mints_again(&cluster).await;
    for (key, value) in &acknowledged {
        let found = c1.get(key.as_bytes()).await.unwrap();
        assert_eq!(
            found.values,
            vec![value.clone().into_bytes()],
            "acknowledged put of {key} ({} acknowledged, {refused} refused)",
            acknowledged.len()
        );
    }
    drop(cluster);
    drop(tmpfs);
}

/// Keys the 4-node ring replicates exactly on n1, n2 and n3 (n4 is their
/// only possible stand-in).
fn keys_on_n1_n2_n3(count: usize) -> Vec<String> {
    let ring = ring_of(4);
    (0..10_000)
        .map(|i| format!("h{i}"))
        .filter(|k| {
            let mut list: Vec<String> = ring
                .preference_list(k.as_bytes(), 3)
                .iter()
                .map(|n| n.to_string())
                .collect();
            list.sort();
            list == ["n1", "n2", "n3"]
        })
        .take(count)
        .collect()
}

/// Waits until `node` holds no hint.
async fn until_hints_delivered(cluster: &Cluster, node: usize) {
    let n = &cluster.nodes[node];
    until("the hints are delivered", n, || async {
        n.status_field("hints_pending")
            .await
            .and_then(|v| v.as_u64())
            == Some(0)
    })
    .await;
}

#[tokio::test]
async fn a_stand_in_killed_right_after_hinted_writes_hands_every_one_over() {
    let mut cluster = Cluster::start(4, &[]).await;
    let keys = keys_on_n1_n2_n3(20);
    cluster.nodes[2].kill();
    // W=3 with n3 gone: n1, n2 and the stand-in n4, which keeps a hint.
    let c1 = cluster.nodes[0].client().await;
    let mut acknowledged = Vec::new();
    for key in &keys {
        c1.put_with(key.as_bytes(), key.as_bytes(), None, W3)
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        acknowledged.push((key.clone(), key.clone()));
    }
    let held = cluster.nodes[3].status_field("hints_pending").await;
    assert_eq!(held.and_then(|v| v.as_u64()), Some(keys.len() as u64));
    // The stand-in dies at once; both come back.
    cluster.nodes[3].kill();
    cluster.nodes[2].restart();
    cluster.nodes[3].restart();
    cluster.wait_all_alive().await;
    until_hints_delivered(&cluster, 3).await;
    cluster.assert_holds_alone(2, &acknowledged).await;
}

#[tokio::test]
async fn hints_past_the_byte_bound_are_refused_not_dropped() {
    let mut cluster = Cluster::plan(4, &[]);
    cluster.nodes[3]
        .args
        .extend(["--hints-bytes-max-per-target", "20000"].map(String::from));
    cluster.spawn_all();
    cluster.wait_all_alive().await;
    let keys = keys_on_n1_n2_n3(6);
    cluster.nodes[2].kill();
    let c1 = cluster.nodes[0].client().await;
    let value = vec![b'x'; 8 << 10];
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for key in &keys {
        match c1.put_with(key.as_bytes(), &value, None, W3).await {
            Ok(_) => acknowledged.push(key.clone()),
            Err(e) => {
                // The stand-in said why; W=3 is not met, nothing promised.
                assert!(e.to_string().contains("hints_bytes_max_per_target"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!(acknowledged.len(), 2, "two 8 KiB hints fit in 20,000 bytes");
    assert_eq!(refused, keys.len() - 2);
    cluster.nodes[2].restart();
    cluster.wait_all_alive().await;
    until_hints_delivered(&cluster, 3).await;
    let expected: Vec<(String, String)> = acknowledged
        .iter()
        .map(|k| (k.clone(), String::from_utf8(value.clone()).unwrap()))
        .collect();
    cluster.assert_holds_alone(2, &expected).await;
}

#[tokio::test]
async fn hints_for_a_forgotten_replica_go_to_the_keys_current_owners() {
    let mut cluster = Cluster::start(4, &[]).await;
    let keys = keys_on_n1_n2_n3(10);
    cluster.nodes[2].kill();
    let c1 = cluster.nodes[0].client().await;
    for key in &keys {
        c1.put_with(key.as_bytes(), key.as_bytes(), None, W3)
            .await
            .unwrap();
    }
    cluster.wait_state(0, "n3", "down").await;
    c1.forget("n3").await.unwrap();
    // n3 never comes back: without re-routing, n4's hints would wait for
    // it forever.
    until_hints_delivered(&cluster, 3).await;
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), k.clone())).collect();
    // n4 took n3's place for these keys.
    cluster.assert_holds_alone(3, &pairs).await;
}

#[tokio::test]
async fn megabyte_values_answer_too_large_and_never_hang_a_get() {
    let cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    let mut acknowledged = 0;
    let mut refusal = None;
    for i in 0..6u8 {
        let value = vec![b'a' + i; 1 << 20];
        match c1.put(b"big", &value, None).await {
            Ok(_) => acknowledged += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("the object passed object_bytes_max at last");
    assert_eq!(refusal.code(), Some(ErrorCode::TooLarge), "{refusal}");
    assert!(
        refusal.to_string().contains("object_bytes_max"),
        "{refusal}"
    );
    assert!(acknowledged >= 3, "{acknowledged} acknowledged");
    // A get answers (the client gives up after 10 s; it must not need to).
    let found = c1.get(b"big").await.unwrap();
    assert_eq!(found.values.len(), acknowledged);
    // And the siblings can be resolved with the context.
    c1.put(b"big", b"resolved", found.context.as_ref())
        .await
        .unwrap();
    let found = cluster.nodes[2].client().await.get(b"big").await.unwrap();
    assert_eq!(found.values, vec![b"resolved".to_vec()]);
}

#[tokio::test]
async fn a_node_joins_a_cluster_that_holds_large_values() {
    let mut cluster = Cluster::start(3, &[]).await;
    let c1 = cluster.nodes[0].client().await;
    let mut data = Vec::new();
    for i in 0..300 {
        let key = format!("large-{i}");
        let value = format!("{i:03}{}", "y".repeat((64 << 10) - 3));
        c1.put_with(key.as_bytes(), value.as_bytes(), None, W3)
            .await
            .unwrap();
        data.push((key, value));
    }
    let n4 = cluster.add_node(0, &[]);
    cluster.nodes[n4].wait_ping().await;
    // Before, a scan page of 256 such values did not fit a peer frame and
    // the join retried forever.
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
    cluster.assert_holds_alone(n4, &owned).await;
}
