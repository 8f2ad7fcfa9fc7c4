//! The settings that guard a node, checked at start: the cluster secret
//! and its file, protected mode (loopback only without a secret), the
//! client token file, and the TLS files.

use super::tests::base;
use super::*;

#[test]
fn the_cluster_secret_is_read_from_its_file_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("secret");
    std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
    let c = NodeArgs {
        cluster_secret_file: Some(good.clone()),
        ..base()
    }
    .validate()
    .unwrap();
    let (path, secret) = c.cluster_secret.unwrap();
    assert_eq!(path, good);
    assert_eq!(format!("{secret:?}"), "ClusterSecret(64 bytes)");

    let short = dir.path().join("short");
    std::fs::write(&short, "too short").unwrap();
    for (file, expect) in [
        (short, "9 bytes"),
        (dir.path().join("absent"), "cannot read"),
    ] {
        let err = NodeArgs {
            cluster_secret_file: Some(file),
            ..base()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(err, ConfigError::Secret(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("--cluster-secret-file") && err.contains(expect),
            "{err}"
        );
    }
}

/// Without a cluster secret a node listens on loopback only (protected
/// mode); with one, anywhere.
#[test]
fn without_a_secret_only_loopback_addresses_are_accepted() {
    let any = |s: &str| -> Option<SocketAddr> { Some(s.parse().unwrap()) };
    let cases = [
        (
            NodeArgs {
                listen: any("0.0.0.0:7101"),
                advertise_addr: any("127.0.0.1:7101"),
                ..base()
            },
            "--listen 0.0.0.0:7101",
        ),
        (
            NodeArgs {
                client_listen: any("10.0.0.5:7001"),
                ..base()
            },
            "--client-listen 10.0.0.5:7001",
        ),
        (
            NodeArgs {
                advertise_addr: any("10.0.0.5:7101"),
                ..base()
            },
            "--advertise-addr 10.0.0.5:7101",
        ),
        (
            NodeArgs {
                listen: any("[::]:7101"),
                ..base()
            },
            "--listen [::]:7101",
        ),
        (
            NodeArgs {
                seeds: Some(vec![
                    "127.0.0.1:7102".parse().unwrap(),
                    "10.0.0.6:7101".parse().unwrap(),
                ]),
                ..base()
            },
            "--seeds 10.0.0.6:7101",
        ),
        (
            NodeArgs {
                metrics_listen: any("10.0.0.5:9101"),
                ..base()
            },
            "--metrics-listen 10.0.0.5:9101",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "ab".repeat(32)).unwrap();
    for (args, flag) in cases {
        let e = args.clone().validate().unwrap_err().to_string();
        assert!(
            e.contains(flag) && e.contains("--cluster-secret-file") && e.contains("protected mode"),
            "{e}"
        );
        let with_secret = NodeArgs {
            cluster_secret_file: Some(secret.clone()),
            // A wildcard listen address still needs an address to advertise.
            advertise_addr: args.advertise_addr.or(any("10.0.0.5:7101")),
            ..args
        };
        assert!(with_secret.validate().is_ok(), "{flag} with a secret");
    }
    // Every loopback address is fine without a secret.
    let ok = NodeArgs {
        listen: any("127.0.0.2:7101"),
        client_listen: any("[::1]:7001"),
        ..base()
    };
    assert!(ok.validate().unwrap().cluster_secret.is_none());
}

#[test]
fn the_client_token_file_is_read_and_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("tokens");
    std::fs::write(&good, "client-token-0123456789\nadmin-token-0123456789\n").unwrap();
    let c = NodeArgs {
        client_token_file: Some(good),
        ..base()
    }
    .validate()
    .unwrap();
    assert_eq!(
        format!("{:?}", c.client_tokens),
        "ClientTokens { client: set, admin: set }"
    );
    assert!(!format!("{c:?}").contains("token-0123"));
    let short = dir.path().join("short");
    std::fs::write(&short, "short\n").unwrap();
    for (file, expect) in [
        (short, "5 bytes"),
        (dir.path().join("absent"), "cannot read"),
    ] {
        let err = NodeArgs {
            client_token_file: Some(file),
            ..base()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--client-token-file") && err.contains(expect),
            "{err}"
        );
    }
}

#[test]
fn tls_files_go_together_and_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        Some(path)
    };
    let not_pem = file("not.pem", "not a certificate\n");
    let err = NodeArgs {
        tls_cert: not_pem.clone(),
        ..base()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("go together"), "{err}");
    let err = NodeArgs {
        tls_peer_name: Some("ringkv".into()),
        ..base()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.contains("--tls-peer-name"), "{err}");
    let err = NodeArgs {
        tls_cert: not_pem.clone(),
        tls_key: not_pem.clone(),
        tls_ca: not_pem,
        ..base()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--tls-cert") && err.contains("no PEM certificate"),
        "{err}"
    );
    assert!(base().validate().unwrap().tls.is_none());
}
