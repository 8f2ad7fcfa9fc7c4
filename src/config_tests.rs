//! Validation of node settings, and the config file.
use ringkv_actors::ring::VNODES_PER_WEIGHT_MAX;
use ringkv_actors::wire::peer::NODE_WEIGHT_MAX;

use super::*;

pub(super) fn base() -> NodeArgs {
    NodeArgs {
        id: Some("n1".into()),
        listen: Some("127.0.0.1:7101".parse().unwrap()),
        client_listen: Some("127.0.0.1:7001".parse().unwrap()),
        data_dir: Some("/tmp/x".into()),
        ..NodeArgs::default()
    }
}

#[test]
fn defaults_are_n3_r2_w2() {
    let c = base().validate().unwrap();
    assert_eq!((c.n, c.r, c.w), (3, 2, 2));
    assert_eq!(c.storage, StorageKind::Lsm);
}

#[test]
fn bad_settings_are_named() {
    let cases: Vec<(NodeArgs, &str)> = vec![
        (NodeArgs { id: None, ..base() }, "--id"),
        (
            NodeArgs {
                r: Some(4),
                ..base()
            },
            "--r",
        ),
        (
            NodeArgs {
                n: Some(0),
                ..base()
            },
            "--n",
        ),
        (
            NodeArgs {
                request_timeout_ms: Some(0),
                ..base()
            },
            "--request-timeout-ms",
        ),
        (
            NodeArgs {
                weight: Some(NODE_WEIGHT_MAX + 1),
                ..base()
            },
            "--weight",
        ),
        (
            NodeArgs {
                weight: Some(NODE_WEIGHT_MAX),
                vnodes: Some(VNODES_PER_WEIGHT_MAX),
                ..base()
            },
            "ring tokens",
        ),
        (
            NodeArgs {
                dc: Some("eu west".into()),
                ..base()
            },
            "--dc",
        ),
        (
            NodeArgs {
                generation_skew_ms_max: Some(0),
                ..base()
            },
            "--generation-skew-ms-max",
        ),
        (
            NodeArgs {
                max_frame_bytes: Some(100),
                ..base()
            },
            "--max-frame-bytes",
        ),
        (
            NodeArgs {
                id: Some("bad id".into()),
                ..base()
            },
            "--id",
        ),
    ];
    for (args, needle) in cases {
        let e = args.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{e:?} should name {needle}");
    }
}

#[test]
fn file_keys_take_either_spelling_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringkv.toml");
    std::fs::write(
        &path,
        "id = \"fromfile\"\nclient-listen = \"127.0.0.1:9\"\nrequest_timeout_ms = 77\nn = 5\n",
    )
    .unwrap();
    let flags = NodeArgs {
        config: Some(path.clone()),
        id: Some("fromflag".into()),
        ..NodeArgs::default()
    };
    let merged = flags.with_file().unwrap();
    assert_eq!(merged.id.as_deref(), Some("fromflag"));
    assert_eq!(merged.client_listen, Some("127.0.0.1:9".parse().unwrap()));
    assert_eq!(merged.request_timeout_ms, Some(77));
    std::fs::write(&path, "no_such_setting = 1\n").unwrap();
    let e = NodeArgs {
        config: Some(path),
        ..NodeArgs::default()
    }
    .with_file()
    .unwrap_err();
    assert!(matches!(e, ConfigError::File { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("no_such_setting"), "{e}");
}

/// `--storage log` (the removed append-only engine) is refused, from a
/// flag or from the file, with a message naming what is left.
#[test]
fn the_removed_log_storage_is_refused_naming_the_choices() {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }
    let e = Cli::try_parse_from(["ringkv", "--storage", "log"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("'log'") && e.contains("lsm, memory"), "{e}");
    let ok = Cli::try_parse_from(["ringkv", "--storage", "memory"]).unwrap();
    assert_eq!(ok.node.storage, Some(StorageKind::Memory));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringkv.toml");
    std::fs::write(&path, "storage = \"log\"\n").unwrap();
    let e = NodeArgs {
        config: Some(path),
        ..NodeArgs::default()
    }
    .with_file()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`log`") && e.contains("`lsm` or `memory`"),
        "{e}"
    );
}

/// The settings table in README.md, generated from the flags' own help
/// (the one place each setting is described, default included).
fn settings_table() -> String {
    use clap::CommandFactory;
    #[derive(clap::Parser)]
    struct Node {
        #[command(flatten)]
        args: NodeArgs,
    }
    let mut table = String::from("| flag (`--config` key) | what it sets |\n|---|---|\n");
    for arg in Node::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let value = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| format!(" {name}"))
            .unwrap_or_default();
        // `--config` names the file; it is not a key inside one.
        let key = match long {
            "config" => String::new(),
            _ => format!(" (`{}`)", long.replace('-', "_")),
        };
        table.push_str(&format!(
            "| `--{long}{value}`{key} | {} |\n",
            help.replace('|', "\\|")
        ));
    }
    table
}

/// README.md's settings table is exactly what the flags say; after adding
/// or changing a setting, `RINGKV_WRITE_README=1 cargo test -p ringkv
/// readme` rewrites it.
#[test]
fn the_readme_settings_table_is_generated_from_the_flags() {
    const BEGIN: &str =
        "<!-- settings table: generated from `ringkv node --help` by src/config_tests.rs -->\n";
    const END: &str = "<!-- end of settings table -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README.md has the settings table's begin marker")
        + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .expect("README.md has the end marker");
    let expected = settings_table();
    if readme[start..end] != expected && std::env::var_os("RINGKV_WRITE_README").is_some() {
        let mut updated = readme.clone();
        updated.replace_range(start..end, &expected);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        readme[start..end],
        expected,
        "README.md's settings table is out of date: RINGKV_WRITE_README=1 cargo test -p ringkv readme"
    );
}

#[test]
fn the_resp_listener_is_off_by_default_and_checked_like_the_client_port() {
    let c = base().validate().unwrap();
    assert_eq!(c.resp_listen, None);
    assert_eq!(c.resp_siblings, RespSiblings::Error);
    let on = NodeArgs {
        resp_listen: Some("127.0.0.1:6401".parse().unwrap()),
        resp_siblings: Some(RespSiblings::Lww),
        ..base()
    }
    .validate()
    .unwrap();
    assert_eq!(on.resp_listen, Some("127.0.0.1:6401".parse().unwrap()));
    assert_eq!(on.resp_siblings, RespSiblings::Lww);
    let same = NodeArgs {
        resp_listen: Some("127.0.0.1:7001".parse().unwrap()),
        ..base()
    };
    assert!(same
        .validate()
        .unwrap_err()
        .to_string()
        .contains("--resp-listen"));
    // Protected mode: loopback only.
    let wide = NodeArgs {
        resp_listen: Some("0.0.0.0:6401".parse().unwrap()),
        ..base()
    };
    let e = wide.validate().unwrap_err().to_string();
    assert!(
        e.contains("--resp-listen") && e.contains("protected mode"),
        "{e}"
    );
}

#[test]
fn resp_settings_come_from_the_config_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringkv.toml");
    std::fs::write(
        &path,
        "resp_listen = \"127.0.0.1:6402\"\nresp-siblings = \"lww\"\n",
    )
    .unwrap();
    let c = NodeArgs {
        config: Some(path),
        ..base()
    }
    .with_file()
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(c.resp_listen, Some("127.0.0.1:6402".parse().unwrap()));
    assert_eq!(c.resp_siblings, RespSiblings::Lww);
}

#[test]
fn dc_replication_sets_n_and_is_checked_against_n_and_dc() {
    let with = |text: &str, n: Option<usize>, dc: &str| NodeArgs {
        dc_replication: Some(text.into()),
        n,
        dc: Some(dc.into()),
        ..base()
    };
    let c = with("dc2:2,dc1:3", None, "dc2").validate().unwrap();
    assert_eq!((c.n, c.r, c.w), (5, 2, 2));
    assert_eq!(c.dc_replication.to_string(), "dc1:3,dc2:2");
    assert_eq!(with("dc1:2,dc2:2", Some(4), "dc1").validate().unwrap().n, 4);
    for (args, says) in [
        (with("dc1:2,dc2:2", Some(3), "dc1"), "--n (3) must equal"),
        (with("dc1:2,dc2:2", None, "dc3"), "--dc dc3 is not one of"),
        (with("dc1:0", None, "dc1"), "--dc-replication"),
        (with("dc1:2,dc1:1", None, "dc1"), "named twice"),
    ] {
        let e = args.validate().unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    // Without it, N is --n over the whole ring.
    assert!(base().validate().unwrap().dc_replication.is_empty());
}

/// The storage writer runs on the event loop, with its blocking steps on
/// a thread, unless `--storage-writer thread` (or `storage_writer =
/// "thread"` in the file) gives it a thread of its own.
#[test]
fn the_storage_writer_is_on_the_loop_unless_asked_for_a_thread() {
    use ringkv_actors::storage::StorageThreading;
    let c = base().validate().unwrap();
    assert_eq!(c.storage_writer, StorageWriter::Loop);
    assert_eq!(
        c.storage_writer.threading(),
        StorageThreading::Loop {
            blocking_off_loop: true
        }
    );
    let thread = NodeArgs {
        storage_writer: Some(StorageWriter::Thread),
        ..base()
    }
    .validate()
    .unwrap();
    assert_eq!(thread.storage_writer.threading(), StorageThreading::Threads);
    let file: NodeArgs = toml::from_str("storage_writer = \"thread\"").unwrap();
    assert_eq!(file.storage_writer, Some(StorageWriter::Thread));
}

#[test]
fn reads_ask_what_r_needs_and_retry_before_any_stand_in() {
    let c = base().validate().unwrap();
    assert_eq!(c.read_asks, ReadAsks::Needed);
    assert_eq!(c.read_retry_after_ms, 20);
    let all = NodeArgs {
        read_asks: Some(ReadAsks::All),
        read_retry_after_ms: Some(5),
        ..base()
    }
    .validate()
    .unwrap();
    assert_eq!((all.read_asks, all.read_retry_after_ms), (ReadAsks::All, 5));
    // A short stand-in delay bounds the default retry.
    let quick = NodeArgs {
        stand_in_after_ms: Some(10),
        ..base()
    }
    .validate()
    .unwrap();
    assert_eq!(quick.read_retry_after_ms, 10);
    let late = NodeArgs {
        stand_in_after_ms: Some(100),
        read_retry_after_ms: Some(101),
        ..base()
    };
    let err = late.validate().unwrap_err().to_string();
    assert!(
        err.contains("--read-retry-after-ms (101) must not exceed"),
        "{err}"
    );
    let zero = NodeArgs {
        read_retry_after_ms: Some(0),
        ..base()
    };
    assert!(zero.validate().is_err());
}
