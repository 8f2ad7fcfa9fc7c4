//! Optional TLS on the client and peer ports (SECURITY.md, "TLS") across
//! real node processes, with certificates this test makes itself (rcgen).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Cluster;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use ringkv::client::{RequestOptions, TlsOptions};
use ringkv::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and one certificate (for 127.0.0.1 and `localhost`, good for both
/// server and client authentication) signed by it, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} node"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-node.pem")),
        key: dir.join(format!("{name}-node.key")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

fn tls_to(ca: &Path) -> TlsOptions {
    TlsOptions {
        ca: ca.to_path_buf(),
        server_name: None,
    }
}

/// Waits until every node, asked over TLS, sees every node alive (which
/// needs the peer links, TLS too, to work).
async fn wait_all_alive_tls(cluster: &Cluster, ca: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    'outer: loop {
        assert!(
            Instant::now() < deadline,
            "the TLS cluster did not come up; logs in {:?}",
            cluster.dir()
        );
        for node in &cluster.nodes {
            let addr = node.client.to_string();
            let alive = match Client::connect_tls(&addr, &tls_to(ca)).await {
                Ok(client) => client.status().await.map_or(0, |s| {
                    s.members.iter().filter(|m| m.state == "alive").count()
                }),
                Err(_) => 0,
            };
            if alive < cluster.nodes.len() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'outer;
            }
        }
        return;
    }
}

#[tokio::test]
async fn a_tls_cluster_serves_tls_clients_and_refuses_plaintext_and_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "cluster");
    let (cert, key, ca) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
        pki.ca.display().to_string(),
    );
    let args = [
        "--n",
        "2",
        "--r",
        "2",
        "--w",
        "2",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-ca",
        &ca,
    ];
    let mut cluster = Cluster::spawn(2, &args);
    wait_all_alive_tls(&cluster, &pki.ca).await;

    // W=2 and R=2: the write and the read cross the peer link (mutual TLS).
    let all = RequestOptions {
        r: Some(2),
        w: Some(2),
        ..RequestOptions::DEFAULT
    };
    let c1 = Client::connect_tls(&cluster.nodes[0].client.to_string(), &tls_to(&pki.ca))
        .await
        .unwrap();
    c1.put_with(b"cart", b"apples", None, all).await.unwrap();
    let by_name = TlsOptions {
        ca: pki.ca.clone(),
        server_name: Some("localhost".into()),
    };
    let c2 = Client::connect_tls(&cluster.nodes[1].client.to_string(), &by_name)
        .await
        .unwrap();
    let found = c2.get_with(b"cart", all).await.unwrap();
    assert_eq!(found.values, vec![b"apples".to_vec()]);

    // The bundled CLI over TLS.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["admin", "--addr", &cluster.nodes[0].client.to_string()])
        .args(["--tls-ca", &ca, "status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("n1") && stdout.contains("n2"), "{stdout}");

    // A plaintext client gets no answer: the connection is closed.
    let plain = Client::connect(cluster.nodes[0].client).await.unwrap();
    let refused = plain.ping().await.unwrap_err();
    assert!(refused.code().is_none(), "{refused}");
    // A client that trusts another CA refuses the node.
    let stranger = make_pki(dir.path(), "stranger");
    let addr = cluster.nodes[0].client.to_string();
    let refused = Client::connect_tls(&addr, &tls_to(&stranger.ca)).await;
    assert!(
        matches!(refused, Err(ringkv::client::Error::Tls(_))),
        "{:?}",
        refused.err()
    );
    // The peer port takes neither plaintext nor a peer whose certificate
    // the cluster's CA did not sign.
    let mut raw = tokio::net::TcpStream::connect(cluster.nodes[0].peer)
        .await
        .unwrap();
    raw.write_all(&[0, 0, 0, 4, 0x80, 0x80, 0x80, 0x80])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = raw.read(&mut buf).await.unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "plaintext on the peer port got {n} bytes that are not a TLS alert"
    );
    let rogue = ringkv_actors::tls::NodeTls::load(&ringkv_actors::tls::TlsFiles {
        cert: stranger.cert.clone(),
        key: stranger.key.clone(),
        ca: pki.ca.clone(),
        peer_name: None,
    })
    .unwrap();
    let net = rogue.peer_net(std::rc::Rc::new(ringkv_actors::net::TokioNet));
    let local = tokio::task::LocalSet::new();
    let peer = cluster.nodes[0].peer;
    let dialled = local
        .run_until(async move {
            let mut conn = net.connect(peer).await?;
            // TLS 1.3 reports a refused client certificate on the first
            // read after the handshake.
            conn.write_all(&[0, 0, 0, 1, 0x80]).await?;
            let mut buf = [0u8; 16];
            match conn.read(&mut buf).await? {
                0 => Err(std::io::Error::other("closed")),
                n => Ok(n),
            }
        })
        .await;
    // Refused in the TLS handshake (an alert), not by the peer protocol
    // after it (which would close the connection: "closed").
    let refusal = dialled.unwrap_err().to_string();
    assert!(refusal != "closed", "a stranger's certificate was taken");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.nodes[0].log_contains("invalid peer certificate") {
        assert!(
            Instant::now() < deadline,
            "no refusal of the stranger's certificate logged ({refusal})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Both nodes kept serving.
    let found = c2.get_with(b"cart", all).await.unwrap();
    assert_eq!(found.values, vec![b"apples".to_vec()]);
    assert!(cluster.nodes[0].log_contains("TLS handshake failed"));
    for node in &mut cluster.nodes {
        node.terminate();
    }
}
