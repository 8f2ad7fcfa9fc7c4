//! The client-facing security checks across real node processes
//! (SECURITY.md): contexts that cannot be forged, client and admin tokens.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, NodeProc};
use ringkv::client::{Context, Error};
use ringkv::Client;
use ringkv_actors::conflict_resolver::{ContextKey, VersionVector};
use ringkv_actors::secret::ClusterSecret;
use ringkv_actors::wire::client::ErrorCode;

/// One node holding every key (N=1): siblings come from writes without a
/// context, and nothing depends on timing.
const ONE_NODE: &[&str] = &["--n", "1", "--r", "1", "--w", "1"];

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// The error code of a result that must have failed.
fn code_of<T: std::fmt::Debug>(result: Result<T, Error>) -> Option<ErrorCode> {
    result.unwrap_err().code()
}

/// Writes two concurrent versions of `key` (neither with a context).
async fn two_siblings(client: &Client, key: &[u8]) {
    client.put(key, b"left", None).await.unwrap();
    client.put(key, b"right", None).await.unwrap();
    let found = client.get(key).await.unwrap();
    assert_eq!(
        sorted(found.values),
        vec![b"left".to_vec(), b"right".to_vec()]
    );
}

#[tokio::test]
async fn a_context_from_another_key_or_altered_is_bad_request_and_no_sibling_is_lost() {
    let cluster = Cluster::start(1, ONE_NODE).await;
    let client = cluster.nodes[0].client().await;
    two_siblings(&client, b"k1").await;
    two_siblings(&client, b"k2").await;
    let k1 = client.get(b"k1").await.unwrap().context.unwrap();
    let k2 = client.get(b"k2").await.unwrap().context.unwrap();
    // k1's context covers k1's siblings; k2's clock is the same shape (the
    // same node, the same counters), so only the MAC tells them apart.
    let refused = client.put(b"k2", b"merged", Some(&k1)).await;
    assert_eq!(code_of(refused), Some(ErrorCode::BadRequest));
    let refused = client.delete(b"k2", Some(&k1)).await;
    assert_eq!(code_of(refused), Some(ErrorCode::BadRequest));
    // Any single bit flipped, anywhere: the format byte, the clock, the tag.
    for at in 0..k2.0.len() {
        let mut flipped = k2.clone();
        flipped.0[at] ^= 0x01;
        let refused = client.put(b"k2", b"merged", Some(&flipped)).await;
        assert_eq!(code_of(refused), Some(ErrorCode::BadRequest), "byte {at}");
    }
    // Cut short, or a byte more.
    let cut = Context(k2.0[..k2.0.len() - 1].to_vec());
    assert_eq!(
        code_of(client.put(b"k2", b"merged", Some(&cut)).await),
        Some(ErrorCode::BadRequest)
    );
    let padded = Context([k2.0.as_slice(), &[0]].concat());
    assert_eq!(
        code_of(client.put(b"k2", b"merged", Some(&padded)).await),
        Some(ErrorCode::BadRequest)
    );
    // Nothing was merged: both keys keep both siblings.
    for key in [b"k1", b"k2"] {
        let found = client.get(key).await.unwrap();
        assert_eq!(
            sorted(found.values),
            vec![b"left".to_vec(), b"right".to_vec()],
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    // The genuine context still resolves k2 (the refusals were the MAC's).
    client.put(b"k2", b"merged", Some(&k2)).await.unwrap();
    assert_eq!(
        client.get(b"k2").await.unwrap().values,
        vec![b"merged".to_vec()]
    );
    let log = std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn with_a_secret_contexts_pass_between_members_and_the_public_scheme_cannot_forge_one() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("secret");
    std::fs::write(
        &secret_path,
        "6b1f0c9e2d4a7b3c5e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3\n",
    )
    .unwrap();
    let secret = secret_path.display().to_string();
    let args = [
        "--n",
        "2",
        "--r",
        "1",
        "--w",
        "2",
        "--cluster-secret-file",
        &secret,
    ];
    let cluster = Cluster::start(2, &args).await;
    let (c1, c2) = (
        cluster.nodes[0].client().await,
        cluster.nodes[1].client().await,
    );
    two_siblings(&c1, b"cart").await;
    // The clock n1 issued, resealed under the key a cluster without a
    // secret uses (which anyone can compute): refused by every member.
    let issued = c1.get(b"cart").await.unwrap().context.unwrap();
    let secret_key = ContextKey::from_secret(&ClusterSecret::from_file(&secret_path).unwrap());
    let clock: VersionVector = secret_key.open(b"cart", &issued.0).unwrap();
    let public = Context(ContextKey::from_cluster_name("ringkv").seal(b"cart", &clock));
    for client in [&c1, &c2] {
        assert_eq!(
            code_of(client.put(b"cart", b"wiped", Some(&public)).await),
            Some(ErrorCode::BadRequest)
        );
    }
    let found = c2.get(b"cart").await.unwrap();
    assert_eq!(
        sorted(found.values),
        vec![b"left".to_vec(), b"right".to_vec()]
    );
    // The same clock sealed with the secret's key is a context n1 could
    // have issued: taken (so the refusals above were the key's doing).
    let resealed = Context(secret_key.seal(b"cart", &clock));
    assert_eq!(resealed, issued);
    // A context issued by n2 is taken by n1: every member has the same key.
    c1.put(b"cart", b"both", found.context.as_ref())
        .await
        .unwrap();
    assert_eq!(
        c2.get(b"cart").await.unwrap().values,
        vec![b"both".to_vec()]
    );
}

const CLIENT_TOKEN: &str = "client-token-7f3a9c51e2b84d06";
const ADMIN_TOKEN: &str = "admin-token-0c5e8b2f1a9d7436";

/// A one-node cluster whose `--client-token-file` holds `lines`; returns
/// it once the node answers `ping` after `auth` with the first line.
async fn with_tokens(lines: &[&str]) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let file = file.display().to_string();
    let mut args = ONE_NODE.to_vec();
    args.extend(["--client-token-file", &file]);
    let cluster = Cluster::spawn(1, &args);
    wait_ping_with(&cluster.nodes[0], lines[0].as_bytes()).await;
    (cluster, dir)
}

/// Waits until `node` answers `ping` on a connection that sent `token`.
async fn wait_ping_with(node: &NodeProc, token: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(client) = Client::connect(node.client).await {
            if client.auth(token).await.is_ok() && client.ping().await.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{} never answered", node.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_a_client_token_nothing_but_auth_is_served_before_auth() {
    let (cluster, _dir) = with_tokens(&[CLIENT_TOKEN]).await;
    let client = cluster.nodes[0].client().await;
    assert_eq!(
        code_of(client.get(b"k").await),
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(
        code_of(client.put(b"k", b"v", None).await),
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(code_of(client.ping().await), Some(ErrorCode::Unauthorized));
    assert_eq!(
        code_of(client.status().await),
        Some(ErrorCode::Unauthorized)
    );
    client.auth(CLIENT_TOKEN.as_bytes()).await.unwrap();
    client.put(b"k", b"v", None).await.unwrap();
    assert_eq!(client.get(b"k").await.unwrap().values, vec![b"v".to_vec()]);
    // Nothing was written before `auth`.
    assert_eq!(client.get(b"k").await.unwrap().values.len(), 1);
    // Another connection starts with nothing granted.
    let other = cluster.nodes[0].client().await;
    assert_eq!(
        code_of(other.get(b"k").await),
        Some(ErrorCode::Unauthorized)
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_logged_with_the_peer_address_and_never_logged_itself() {
    let (cluster, _dir) = with_tokens(&[CLIENT_TOKEN]).await;
    let client = cluster.nodes[0].client().await;
    let wrong = "client-token-7f3a9c51e2b84d07";
    let refused = client.auth(wrong.as_bytes()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized));
    assert_eq!(
        code_of(client.get(b"k").await),
        Some(ErrorCode::Unauthorized)
    );
    // A good token, then a wrong one: the grant is taken back.
    client.auth(CLIENT_TOKEN.as_bytes()).await.unwrap();
    client.get(b"k").await.unwrap();
    client.auth(b"not-the-token-at-all").await.unwrap_err();
    assert_eq!(
        code_of(client.get(b"k").await),
        Some(ErrorCode::Unauthorized)
    );
    // The third wrong token on one connection also closes it.
    client.auth(b"still-not-the-token").await.unwrap_err();
    assert!(client.ping().await.unwrap_err().code().is_none());

    let log = std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log")).unwrap();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client sent a wrong token"))
        .collect();
    assert_eq!(refusals.len(), 3, "{log}");
    for line in refusals {
        assert!(
            line.contains("client=127.0.0.1:"),
            "no peer address: {line}"
        );
    }
    for secret in [
        CLIENT_TOKEN,
        wrong,
        "not-the-token-at-all",
        "still-not-the-token",
    ] {
        assert!(!log.contains(secret), "a token in the log: {secret}");
    }
}

#[tokio::test]
async fn admin_ops_need_the_admin_token_when_the_node_has_one() {
    let (mut cluster, _dir) = with_tokens(&[CLIENT_TOKEN, ADMIN_TOKEN]).await;
    let client = cluster.nodes[0].client().await;
    client.auth(CLIENT_TOKEN.as_bytes()).await.unwrap();
    let refused = client.leave().await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");
    assert_eq!(
        code_of(client.forget("n9").await),
        Some(ErrorCode::Unauthorized)
    );
    // Still a member, still serving.
    client.put(b"k", b"v", None).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(status.members[0].state, "alive");
    // The admin token grants the admin ops (and the others): `forget` of
    // an unknown member now gets past the check to `bad_request`.
    client.auth(ADMIN_TOKEN.as_bytes()).await.unwrap();
    assert_eq!(
        code_of(client.forget("n9").await),
        Some(ErrorCode::BadRequest)
    );
    client.get(b"k").await.unwrap();
    // `ringkv admin --token-file` sends the admin token (the file's second
    // line) and gets through; without the file it is refused.
    let token_file = _dir.path().join("tokens");
    let admin = |with_file: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"));
        command.args(["admin", "--addr", &cluster.nodes[0].client.to_string()]);
        if with_file {
            command.args(["--token-file", &token_file.display().to_string()]);
        }
        command.args(["forget", "n9"]).output().unwrap()
    };
    let refused = admin(false);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"),
        "{refused:?}"
    );
    let past_auth = admin(true);
    let stderr = String::from_utf8_lossy(&past_auth.stderr);
    assert!(stderr.contains("BadRequest"), "{past_auth:?}");
    cluster.nodes[0].terminate();
}
