//! The RESP (Redis protocol) front end across real node processes: raw
//! RESP2/RESP3 over a TCP socket (the replies read with the
//! `redis-protocol` crate), the write rule (SETs supersede the
//! coordinator's copy), siblings, tokens; then redis-py, redis-cli and
//! redis-benchmark unchanged against a node. The external tools come from
//! apt (`redis-tools`, `python3-redis`; `.ci/run` installs them): missing
//! under CI is a failure, missing elsewhere a loud skip.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use common::{free_addr, Cluster};
use redis_protocol::resp2::types::OwnedFrame as F2;
use redis_protocol::resp3::types::OwnedFrame as F3;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One node holding every key (N=1): siblings come only from writes that
/// do not supersede, and nothing depends on timing.
const ONE_NODE: &[&str] = &["--n", "1", "--r", "1", "--w", "1"];

/// Safety net for a reply that never comes (a bug): the test fails with a
/// message instead of hanging. Not a timing assertion.
const REPLY_WAIT: Duration = Duration::from_secs(30);

/// `count` nodes (flags `extra`), each with a RESP listener, and their RESP
/// addresses.
async fn node(count: usize, extra: &[&str]) -> (Cluster, Vec<SocketAddr>) {
    let resp: Vec<SocketAddr> = (0..count).map(|_| free_addr()).collect();
    let mut cluster = Cluster::plan(count, extra);
    for (node, addr) in cluster.nodes.iter_mut().zip(&resp) {
        node.args.push("--resp-listen".into());
        node.args.push(addr.to_string());
    }
    cluster.spawn_all();
    cluster.wait_all_alive().await;
    (cluster, resp)
}

/// A raw RESP connection.
struct Resp {
    stream: TcpStream,
    buf: BytesMut,
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bulk(s: &str) -> F2 {
    F2::BulkString(s.as_bytes().to_vec())
}

fn error_of(frame: &F2) -> &str {
    match frame {
        F2::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

impl Resp {
    async fn connect(addr: SocketAddr) -> Resp {
        Resp {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> bool {
        let read = tokio::time::timeout(REPLY_WAIT, self.stream.read_buf(&mut self.buf))
            .await
            .expect("the node answers");
        read.unwrap() > 0
    }

    async fn read2(&mut self) -> F2 {
        loop {
            if let Some((frame, used)) = redis_protocol::resp2::decode::decode(&self.buf).unwrap() {
                let _ = self.buf.split_to(used);
                return frame;
            }
            assert!(self.fill().await, "connection closed before a reply");
        }
    }

    async fn read3(&mut self) -> F3 {
        loop {
            if let Some((frame, used)) =
                redis_protocol::resp3::decode::complete::decode(&self.buf).unwrap()
            {
                let _ = self.buf.split_to(used);
                return frame;
            }
            assert!(self.fill().await, "connection closed before a reply");
        }
    }

    async fn cmd(&mut self, args: &[&str]) -> F2 {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&command(&args)).await;
        self.read2().await
    }

    /// Whether the node closed the connection (nothing more to read).
    async fn closed(&mut self) -> bool {
        self.buf.clear();
        !self.fill().await
    }
}

#[tokio::test]
async fn strings_round_trip_over_raw_resp() {
    let (_cluster, resp) = node(1, ONE_NODE).await;
    let mut c = Resp::connect(resp[0]).await;
    assert_eq!(c.cmd(&["PING"]).await, F2::SimpleString(b"PONG".to_vec()));
    assert_eq!(c.cmd(&["ping", "hi"]).await, bulk("hi"));
    assert_eq!(c.cmd(&["ECHO", "hello"]).await, bulk("hello"));
    assert_eq!(
        c.cmd(&["SELECT", "0"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(c.cmd(&["GET", "nope"]).await, F2::Null);
    assert_eq!(
        c.cmd(&["SET", "k1", "v1"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(c.cmd(&["GET", "k1"]).await, bulk("v1"));
    assert_eq!(
        c.cmd(&["MSET", "a", "1", "b", "2"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(
        c.cmd(&["MGET", "a", "nope", "b"]).await,
        F2::Array(vec![bulk("1"), F2::Null, bulk("2")])
    );
    assert_eq!(
        c.cmd(&["EXISTS", "a", "b", "nope", "a"]).await,
        F2::Integer(3)
    );
    assert_eq!(c.cmd(&["DEL", "a", "k1"]).await, F2::Integer(2));
    assert_eq!(c.cmd(&["GET", "a"]).await, F2::Null);
    assert_eq!(c.cmd(&["EXISTS", "a", "b"]).await, F2::Integer(1));
    // A binary value, CRLF inside.
    c.send(&command(&[b"SET", b"bin", b"\r\n\x00\xff"])).await;
    assert_eq!(c.read2().await, F2::SimpleString(b"OK".to_vec()));
    assert_eq!(
        c.cmd(&["GET", "bin"]).await,
        F2::BulkString(b"\r\n\x00\xff".to_vec())
    );
    // What ringkv refuses, and why.
    let e = c.cmd(&["NOSUCH", "x"]).await;
    assert!(
        error_of(&e).starts_with("ERR unknown command 'nosuch'"),
        "{e:?}"
    );
    let e = c.cmd(&["INCR", "k"]).await;
    assert!(error_of(&e).contains("atomic read-modify-write"), "{e:?}");
    let e = c.cmd(&["SET", "k", "v", "NX"]).await;
    assert!(error_of(&e).contains("atomic read-modify-write"), "{e:?}");
    let e = c.cmd(&["SET", "k", "v", "KEEPTTL"]).await;
    assert!(error_of(&e).contains("atomic read-modify-write"), "{e:?}");
    let e = c.cmd(&["FLUSHALL"]).await;
    assert!(error_of(&e).contains("not supported yet"), "{e:?}");
    let e = c.cmd(&["GET"]).await;
    assert!(error_of(&e).contains("wrong number of arguments"), "{e:?}");
    // The connection is still fine after all of them.
    assert_eq!(c.cmd(&["GET", "b"]).await, bulk("2"));
    assert_eq!(c.cmd(&["QUIT"]).await, F2::SimpleString(b"OK".to_vec()));
    assert!(c.closed().await);
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    // The default in-flight limit (1,024: the whole batch read at once),
    // and a limit of 2, where the session stops reading after two commands
    // until one is done, many times over.
    let low_limit: Vec<&str> = ONE_NODE
        .iter()
        .copied()
        .chain(["--client-inflight-max", "2"])
        .collect();
    for flags in [ONE_NODE, low_limit.as_slice()] {
        let (_cluster, resp) = node(1, flags).await;
        let mut c = Resp::connect(resp[0]).await;
        const COMMANDS: usize = 300;
        let mut batch = Vec::new();
        for i in 0..COMMANDS {
            let (key, value) = (format!("p{}", i % 7), format!("v{i}"));
            batch.extend(command(&[b"SET", key.as_bytes(), value.as_bytes()]));
            batch.extend(command(&[b"GET", key.as_bytes()]));
        }
        batch.extend_from_slice(b"PING\r\n"); // inline, as redis-benchmark sends it
        c.send(&batch).await;
        for i in 0..COMMANDS {
            assert_eq!(
                c.read2().await,
                F2::SimpleString(b"OK".to_vec()),
                "SET {i} {flags:?}"
            );
            // Each GET sees the SET just before it on this connection.
            assert_eq!(c.read2().await, bulk(&format!("v{i}")), "GET {i} {flags:?}");
        }
        assert_eq!(c.read2().await, F2::SimpleString(b"PONG".to_vec()));
    }
}

#[tokio::test]
async fn a_pipelined_command_waits_for_every_earlier_one_on_any_of_its_keys() {
    // Commands on several keys, pipelined: each starts once the earlier
    // commands on each of its keys are done (a command can wait on two at
    // once, and two can wait on one), many times over.
    let (_cluster, resp) = node(1, ONE_NODE).await;
    let mut c = Resp::connect(resp[0]).await;
    const ROUNDS: usize = 50;
    let mut batch = Vec::new();
    for i in 0..ROUNDS {
        let (a, b) = (format!("a{i}"), format!("b{}", i + 1));
        batch.extend(command(&[b"SET", b"a", a.as_bytes()]));
        batch.extend(command(&[b"SET", b"b", b.as_bytes()]));
        batch.extend(command(&[b"MGET", b"a", b"b"]));
        batch.extend(command(&[b"DEL", b"a", b"b"]));
        batch.extend(command(&[b"EXISTS", b"a", b"b"]));
        batch.extend(command(&[b"MSET", b"a", b.as_bytes(), b"b", a.as_bytes()]));
        batch.extend(command(&[b"GET", b"b"]));
        batch.extend(command(&[b"GET", b"a"]));
    }
    c.send(&batch).await;
    for i in 0..ROUNDS {
        let (a, b) = (format!("a{i}"), format!("b{}", i + 1));
        let ok = F2::SimpleString(b"OK".to_vec());
        assert_eq!(c.read2().await, ok, "SET a, round {i}");
        assert_eq!(c.read2().await, ok, "SET b, round {i}");
        assert_eq!(
            c.read2().await,
            F2::Array(vec![bulk(&a), bulk(&b)]),
            "MGET, round {i}"
        );
        assert_eq!(c.read2().await, F2::Integer(2), "DEL, round {i}");
        assert_eq!(c.read2().await, F2::Integer(0), "EXISTS, round {i}");
        assert_eq!(c.read2().await, ok, "MSET, round {i}");
        assert_eq!(c.read2().await, bulk(&a), "GET b, round {i}");
        assert_eq!(c.read2().await, bulk(&b), "GET a, round {i}");
    }
}

#[tokio::test]
async fn a_malformed_frame_is_answered_and_the_connection_kept_where_it_can_be() {
    let (_cluster, resp) = node(1, ONE_NODE).await;
    let mut c = Resp::connect(resp[0]).await;
    // Frames, but is no command: an error, and the next command runs.
    c.send(b":5\r\n*2\r\n$3\r\nGET\r\n:1\r\n*1\r\n$4\r\nPING\r\n")
        .await;
    assert!(error_of(&c.read2().await).contains("Protocol error"));
    assert!(error_of(&c.read2().await).contains("Protocol error"));
    assert_eq!(c.read2().await, F2::SimpleString(b"PONG".to_vec()));
    // Cannot be framed: an error, then the node closes the connection,
    // after the replies before it.
    c.send(b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\nPING\r\n").await;
    assert_eq!(c.read2().await, F2::SimpleString(b"PONG".to_vec()));
    assert!(error_of(&c.read2().await).contains("Protocol error"));
    assert!(c.closed().await);
    // Nested arrays (a stack-depth attack on a recursive parser) too.
    let mut c = Resp::connect(resp[0]).await;
    c.send(&b"*1\r\n".repeat(100_000)).await;
    assert!(error_of(&c.read2().await).contains("nested"));
    assert!(c.closed().await);
    // The node is fine.
    let mut c = Resp::connect(resp[0]).await;
    assert_eq!(c.cmd(&["PING"]).await, F2::SimpleString(b"PONG".to_vec()));
}

#[tokio::test]
async fn hello_3_speaks_resp3_and_client_info_and_command_answer() {
    let (_cluster, resp) = node(1, ONE_NODE).await;
    let mut c = Resp::connect(resp[0]).await;
    c.send(&command(&[b"HELLO", b"3", b"SETNAME", b"app"]))
        .await;
    let F3::Map { data, .. } = c.read3().await else {
        panic!("HELLO 3 answers a map")
    };
    let field = |name: &str| {
        data.iter()
            .find(|(k, _)| matches!(k, F3::BlobString { data, .. } if data == name.as_bytes()))
            .map(|(_, v)| v.clone())
    };
    assert!(matches!(field("proto"), Some(F3::Number { data: 3, .. })));
    assert!(matches!(field("server"), Some(F3::BlobString { data, .. }) if data == b"ringkv"));
    // RESP3 from here: nil is `_`.
    c.send(&command(&[b"GET", b"nope"])).await;
    assert_eq!(c.read3().await, F3::Null);
    c.send(&command(&[b"CLIENT", b"GETNAME"])).await;
    assert!(matches!(c.read3().await, F3::BlobString { data, .. } if data == b"app"));
    c.send(&command(&[b"CLIENT", b"ID"])).await;
    assert!(matches!(c.read3().await, F3::Number { data, .. } if data > 0));
    c.send(&command(&[b"CLIENT", b"INFO"])).await;
    let F3::BlobString { data: info, .. } = c.read3().await else {
        panic!("CLIENT INFO answers text")
    };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains(" name=app ") && info.contains(" resp=3 "),
        "{info}"
    );
    c.send(&command(&[b"INFO"])).await;
    let F3::BlobString { data: info, .. } = c.read3().await else {
        panic!("INFO answers text")
    };
    let info = String::from_utf8(info).unwrap();
    for needle in ["# Server", "# Clients", "# Replication", "# Keyspace"] {
        assert!(info.contains(needle), "{info}");
    }
    assert!(info.contains("ringkv_member0:id=n1,state=alive"), "{info}");
    assert!(info.contains("connected_clients:1"), "{info}");
    c.send(&command(&[b"COMMAND", b"COUNT"])).await;
    let F3::Number { data: count, .. } = c.read3().await else {
        panic!("COMMAND COUNT answers a number")
    };
    c.send(&command(&[b"COMMAND"])).await;
    let F3::Array { data: all, .. } = c.read3().await else {
        panic!("COMMAND answers an array")
    };
    assert_eq!(all.len() as i64, count);
    // Back to RESP2.
    c.send(&command(&[b"HELLO", b"2"])).await;
    assert!(matches!(c.read2().await, F2::Array(_)));
    assert_eq!(c.cmd(&["GET", "nope"]).await, F2::Null);
}

#[tokio::test]
async fn auth_takes_the_client_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "client-token-0123456789\n").unwrap();
    let tokens = tokens.display().to_string();
    let mut extra = ONE_NODE.to_vec();
    extra.extend(["--client-token-file", &tokens]);
    // The harness's readiness check speaks the native protocol without a
    // token: wait on the RESP port instead.
    let resp = [free_addr()];
    let mut cluster = Cluster::plan(1, &extra);
    cluster.nodes[0].args.push("--resp-listen".into());
    cluster.nodes[0].args.push(resp[0].to_string());
    cluster.spawn_all();
    let mut c = loop {
        if let Ok(stream) = TcpStream::connect(resp[0]).await {
            let mut c = Resp {
                stream,
                buf: BytesMut::new(),
            };
            c.send(b"AUTH client-token-0123456789\r\nPING\r\n").await;
            let ok = c.read2().await;
            if c.read2().await == F2::SimpleString(b"PONG".to_vec()) {
                assert_eq!(ok, F2::SimpleString(b"OK".to_vec()));
                break Resp::connect(resp[0]).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let e = c.cmd(&["GET", "k"]).await;
    assert!(error_of(&e).starts_with("NOAUTH"), "{e:?}");
    let e = c.cmd(&["AUTH", "wrong-token-0123456789"]).await;
    assert!(error_of(&e).starts_with("WRONGPASS"), "{e:?}");
    assert_eq!(
        c.cmd(&["AUTH", "client-token-0123456789"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(
        c.cmd(&["SET", "k", "v"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    // HELLO with AUTH on a new connection, the username `default`.
    let mut c = Resp::connect(resp[0]).await;
    let e = c.cmd(&["HELLO", "3"]).await;
    assert!(error_of(&e).starts_with("NOAUTH"), "{e:?}");
    c.send(&command(&[
        b"HELLO",
        b"3",
        b"AUTH",
        b"default",
        b"client-token-0123456789",
    ]))
    .await;
    assert!(matches!(c.read3().await, F3::Map { .. }));
    c.send(&command(&[b"GET", b"k"])).await;
    assert!(matches!(c.read3().await, F3::BlobString { data, .. } if data == b"v"));
    // Three wrong tokens close the connection, as on the client port.
    let mut c = Resp::connect(resp[0]).await;
    for _ in 0..3 {
        let e = c.cmd(&["AUTH", "wrong-token-0123456789"]).await;
        assert!(error_of(&e).starts_with("WRONGPASS"), "{e:?}");
    }
    assert!(c.closed().await);
}

/// Two concurrent versions of `key`, written through the native client
/// with no context.
async fn two_siblings(cluster: &Cluster, key: &[u8]) {
    let client = cluster.nodes[0].client().await;
    client.put(key, b"left", None).await.unwrap();
    client.put(key, b"right", None).await.unwrap();
    assert_eq!(client.get(key).await.unwrap().values.len(), 2);
}

#[tokio::test]
async fn siblings_are_an_error_on_get_and_resolve_fixes_them() {
    let (cluster, resp) = node(1, ONE_NODE).await;
    two_siblings(&cluster, b"s").await;
    let mut c = Resp::connect(resp[0]).await;
    let e = c.cmd(&["GET", "s"]).await;
    assert!(error_of(&e).contains("2 siblings"), "{e:?}");
    assert!(error_of(&e).contains("RINGKV.RESOLVE"), "{e:?}");
    let F2::Array(mut values) = c.cmd(&["RINGKV.SIBLINGS", "s"]).await else {
        panic!("RINGKV.SIBLINGS answers an array")
    };
    values.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(values, vec![bulk("left"), bulk("right")]);
    // MGET answers the error in the key's place.
    let F2::Array(items) = c.cmd(&["MGET", "s", "none"]).await else {
        panic!()
    };
    assert!(error_of(&items[0]).contains("siblings"));
    assert_eq!(items[1], F2::Null);
    assert_eq!(
        c.cmd(&["RINGKV.RESOLVE", "s", "merged"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(c.cmd(&["GET", "s"]).await, bulk("merged"));
    let native = cluster.nodes[0].client().await;
    assert_eq!(
        native.get(b"s").await.unwrap().values,
        vec![b"merged".to_vec()]
    );
}

#[tokio::test]
async fn lww_mode_answers_the_last_writer() {
    let mut extra = ONE_NODE.to_vec();
    extra.extend(["--resp-siblings", "lww"]);
    let (cluster, resp) = node(1, &extra).await;
    two_siblings(&cluster, b"s").await;
    let mut c = Resp::connect(resp[0]).await;
    // The later write (same node: later or equal time, larger counter).
    assert_eq!(c.cmd(&["GET", "s"]).await, bulk("right"));
    assert_eq!(c.cmd(&["EXISTS", "s"]).await, F2::Integer(1));
    let F2::Array(values) = c.cmd(&["RINGKV.SIBLINGS", "s"]).await else {
        panic!()
    };
    assert_eq!(values.len(), 2, "the siblings are still there");
}

#[tokio::test]
async fn repeated_sets_replace_each_other_instead_of_piling_up_siblings() {
    let (cluster, resp) = node(1, ONE_NODE).await;
    let mut c = Resp::connect(resp[0]).await;
    for i in 0..20 {
        let value = format!("v{i}");
        assert_eq!(
            c.cmd(&["SET", "hot", &value]).await,
            F2::SimpleString(b"OK".to_vec())
        );
    }
    let native = cluster.nodes[0].client().await;
    assert_eq!(
        native.get(b"hot").await.unwrap().values,
        vec![b"v19".to_vec()]
    );
    // A SET supersedes siblings the coordinator holds, too.
    two_siblings(&cluster, b"s").await;
    assert_eq!(
        c.cmd(&["SET", "s", "x"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(native.get(b"s").await.unwrap().values, vec![b"x".to_vec()]);
    // And DEL: the key is gone, no sibling left behind.
    two_siblings(&cluster, b"d").await;
    assert_eq!(c.cmd(&["DEL", "d"]).await, F2::Integer(1));
    assert!(native.get(b"d").await.unwrap().values.is_empty());
}

#[tokio::test]
async fn consistency_all_writes_every_replica_in_a_three_node_cluster() {
    let (cluster, resp) = node(3, &[]).await;
    let mut c = Resp::connect(resp[1]).await;
    assert_eq!(
        c.cmd(&["RINGKV.CONSISTENCY", "all"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    for i in 0..10 {
        let value = format!("v{i}");
        assert_eq!(
            c.cmd(&["SET", "k", &value]).await,
            F2::SimpleString(b"OK".to_vec())
        );
    }
    // Every replica acknowledged every SET, each replacing the one before:
    // a read of one copy, anywhere, finds only the last.
    for (node, addr) in cluster.nodes.iter().zip(&resp) {
        let mut one = Resp::connect(*addr).await;
        assert_eq!(
            one.cmd(&["RINGKV.CONSISTENCY", "one"]).await,
            F2::SimpleString(b"OK".to_vec())
        );
        assert_eq!(one.cmd(&["GET", "k"]).await, bulk("v9"), "via {}", node.id);
    }
    let e = c.cmd(&["RINGKV.CONSISTENCY", "most"]).await;
    assert!(error_of(&e).contains("one, quorum, all, local_one"));
    // The DC-aware levels too (one data center here: local_quorum is a
    // quorum of the three).
    assert_eq!(
        c.cmd(&["RINGKV.CONSISTENCY", "local_quorum"]).await,
        F2::SimpleString(b"OK".to_vec())
    );
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v9"));
}

/// Whether `tool` can run; under CI a missing tool fails the test.
fn have(tool: &str, check: &mut Command, package: &str) -> bool {
    let ok = check
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing under CI: `.ci/run` installs it (apt-get install {package})"
        );
        eprintln!("\n*** skipped: {tool} is missing; install it: apt-get install {package} ***\n");
    }
    ok
}

/// apt's python (the one with `redis`), not a pyenv shim.
const PYTHON: &str = "/usr/bin/python3";

#[tokio::test]
async fn redis_py_works_unchanged() {
    if !have(
        "redis-py",
        Command::new(PYTHON).args(["-c", "import redis"]),
        "python3-redis",
    ) {
        return;
    }
    let (cluster, resp) = node(1, ONE_NODE).await;
    let script = r#"
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
assert r.ping() is True
assert r.set("greeting", "hello") is True
assert r.get("greeting") == b"hello"
assert r.mset({"a": "1", "b": "2"}) is True
assert r.mget(["a", "nope", "b"]) == [b"1", None, b"2"]
assert r.exists("a", "b", "nope") == 2
assert r.delete("a") == 1
assert r.get("a") is None
assert r.echo("x") == b"x"
r.client_setname("pytest")
assert r.client_getname() in ("pytest", b"pytest")
assert "redis_version" in r.info()
try:
    r.incr("counter")
    raise SystemExit("INCR should have failed")
except redis.ResponseError as e:
    assert "read-modify-write" in str(e), e
p = r.pipeline(transaction=False)
for i in range(50):
    p.set("k%d" % i, "v%d" % i)
    p.get("k%d" % i)
out = p.execute()
assert out == [x for i in range(50) for x in (True, ("v%d" % i).encode())], out
print("redis-py ok")
"#;
    let out = Command::new(PYTHON)
        .args(["-c", script, &resp[0].port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("redis-py ok"),
        "redis-py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let native = cluster.nodes[0].client().await;
    assert_eq!(
        native.get(b"greeting").await.unwrap().values,
        vec![b"hello".to_vec()]
    );
}

#[tokio::test]
async fn redis_cli_and_redis_benchmark_work_unchanged() {
    if !have(
        "redis-cli",
        Command::new("redis-cli").arg("--version"),
        "redis-tools",
    ) || !have(
        "redis-benchmark",
        Command::new("redis-benchmark").arg("--version"),
        "redis-tools",
    ) {
        return;
    }
    let (cluster, resp) = node(1, ONE_NODE).await;
    let port = resp[0].port().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "cli", "works"]), "OK");
    assert_eq!(cli(&["GET", "cli"]), "works");
    assert_eq!(cli(&["-3", "GET", "cli"]), "works");
    for pipeline in ["1", "16"] {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args([
                "-t",
                "set,get,mset,ping",
                "-n",
                "10000",
                "-q",
                "-P",
                pipeline,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("redis-benchmark -P {pipeline}:\n{stdout}");
        assert!(out.status.success(), "redis-benchmark: {out:?}");
        for test in [
            "SET:",
            "GET:",
            "MSET (10 keys):",
            "PING_INLINE:",
            "PING_MBULK:",
        ] {
            // Progress lines end in `\r`; the result line of a test is the
            // one with its rate.
            let line = stdout
                .split(['\r', '\n'])
                .map(str::trim)
                .find(|l| {
                    l.starts_with(test) && !l.contains("rps=") && l.contains("requests per second")
                })
                .unwrap_or_else(|| panic!("no {test} line in:\n{stdout}"));
            assert!(line.contains("requests per second"), "{line}");
        }
        assert!(
            !stdout.to_lowercase().contains("error"),
            "redis-benchmark saw errors:\n{stdout}"
        );
    }
    // The hammered key holds one value, not a pile of siblings.
    let native = cluster.nodes[0].client().await;
    let found = native.get(b"key:__rand_int__").await.unwrap();
    assert_eq!(found.values.len(), 1, "{:?}", found.values.len());
}

#[tokio::test]
async fn a_set_through_a_node_that_is_no_replica_is_forwarded_with_the_rule() {
    // N=1 on two nodes: about half the keys live on the other node, and
    // their SETs are forwarded to it (`ForwardedWrite::supersede_local`).
    let (cluster, resp) = node(2, ONE_NODE).await;
    let mut c = Resp::connect(resp[1]).await;
    for round in 0..3 {
        for k in 0..8 {
            let (key, value) = (format!("f{k}"), format!("v{round}"));
            assert_eq!(
                c.cmd(&["SET", &key, &value]).await,
                F2::SimpleString(b"OK".to_vec())
            );
        }
    }
    let ring = common::ring_of(2);
    let forwarded = (0..8)
        .filter(|k| ring.preference_list(format!("f{k}").as_bytes(), 1)[0].as_str() == "n1")
        .count();
    assert!(
        forwarded > 0,
        "some key lives on n1 and its SETs were forwarded"
    );
    let native = cluster.nodes[0].client().await;
    for k in 0..8 {
        let key = format!("f{k}");
        let found = native.get(key.as_bytes()).await.unwrap();
        assert_eq!(found.values, vec![b"v2".to_vec()], "{key}");
    }
}

/// SET EX/PX and SETEX: the value reads as absent once expired (TTL is
/// part of the version: `tests/ttl.rs` covers the replicas).
#[tokio::test]
async fn set_with_a_time_to_live_expires() {
    let (_cluster, resp) = node(1, ONE_NODE).await;
    let mut c = Resp::connect(resp[0]).await;
    let ok = F2::SimpleString(b"OK".to_vec());
    assert_eq!(c.cmd(&["SET", "short", "v", "PX", "300"]).await, ok);
    assert_eq!(c.cmd(&["SETEX", "long", "3600", "w"]).await, ok);
    let e = c.cmd(&["SET", "k", "v", "EX", "0"]).await;
    assert!(error_of(&e).contains("invalid expire time"), "{e:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.cmd(&["GET", "short"]).await != F2::Null {
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(c.cmd(&["GET", "long"]).await, bulk("w"));
    assert_eq!(c.cmd(&["EXISTS", "short", "long"]).await, F2::Integer(1));
}

/// SCAN pages through every key once (MATCH filters, COUNT sizes the
/// pages), KEYS and DBSIZE see the same keys, on a 3-node cluster.
#[tokio::test]
async fn scan_keys_and_dbsize_see_every_key_once() {
    let (_cluster, resp) = node(3, &[]).await;
    let mut c = Resp::connect(resp[0]).await;
    let mut written = std::collections::BTreeSet::new();
    for i in 0..150 {
        let key = format!("{}:{i}", if i % 3 == 0 { "user" } else { "item" });
        let mut cmd = vec!["SET".to_string(), key.clone(), "v".into()];
        if i == 149 {
            cmd = vec!["DEL".into(), "user:0".into()];
        }
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        c.cmd(&args).await;
        if i != 149 {
            written.insert(key);
        }
    }
    written.remove("user:0");
    for (pattern, count) in [(None, "7"), (Some("user:*"), "1000"), (None, "1")] {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        loop {
            let mut args = vec!["SCAN", cursor.as_str(), "COUNT", count];
            if let Some(p) = pattern {
                args.extend(["MATCH", p]);
            }
            let F2::Array(reply) = c.cmd(&args).await else {
                panic!("SCAN answered no array")
            };
            let [F2::BulkString(next), F2::Array(keys)] = reply.as_slice() else {
                panic!("SCAN answered {reply:?}")
            };
            for k in keys {
                let F2::BulkString(k) = k else {
                    panic!("{k:?}")
                };
                seen.push(String::from_utf8(k.clone()).unwrap());
            }
            cursor = String::from_utf8(next.clone()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "a key came twice");
        let expected: Vec<String> = written
            .iter()
            .filter(|k| pattern.is_none() || k.starts_with("user:"))
            .cloned()
            .collect();
        assert_eq!(sorted, expected, "pattern {pattern:?} count {count}");
    }
    let F2::Array(keys) = c.cmd(&["KEYS", "item:1*"]).await else {
        panic!("KEYS answered no array")
    };
    let expected = written.iter().filter(|k| k.starts_with("item:1")).count();
    assert_eq!(keys.len(), expected);
    assert_eq!(c.cmd(&["DBSIZE"]).await, F2::Integer(written.len() as i64));
    let F2::BulkString(info) = c.cmd(&["INFO", "keyspace"]).await else {
        panic!("INFO answered no bulk string")
    };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains(&format!("db0:keys={}\r\n", written.len())),
        "{info}"
    );
    let F2::Array(reply) = c.cmd(&["SCAN", "0", "TYPE", "hash"]).await else {
        panic!("SCAN answered no array")
    };
    assert_eq!(reply[1], F2::Array(vec![]));
}

/// The RESP port's data commands count in `ringkv_requests_total` as the
/// client protocol's ops (GET/MGET/EXISTS as get, SET/MSET as put, DEL as
/// delete, SCAN as list), errors by their native code.
#[tokio::test]
async fn resp_commands_count_in_the_request_metrics() {
    let metrics = free_addr();
    let mut extra: Vec<String> = ONE_NODE.iter().map(|s| s.to_string()).collect();
    extra.extend(["--metrics-listen".into(), metrics.to_string()]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (_cluster, resp) = node(1, &extra).await;
    let count = |op: &str, result: &str| -> u64 {
        let (_, body) = common::http_get(metrics, "/metrics");
        let wanted = format!("ringkv_requests_total{{op=\"{op}\",result=\"{result}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let mut c = Resp::connect(resp[0]).await;
    c.cmd(&["SET", "a", "1"]).await;
    c.cmd(&["MSET", "b", "2", "c", "3"]).await;
    c.cmd(&["GET", "a"]).await;
    c.cmd(&["EXISTS", "a", "b"]).await;
    c.cmd(&["DEL", "a"]).await;
    c.cmd(&["SCAN", "0"]).await;
    c.cmd(&["PING"]).await;
    c.cmd(&["INCR", "a"]).await;
    assert_eq!(count("put", "ok"), 2);
    assert_eq!(count("get", "ok"), 2);
    assert_eq!(count("delete", "ok"), 1);
    assert_eq!(count("list", "ok"), 1);
    assert_eq!(
        count("ping", "ok"),
        0,
        "connection commands are not requests"
    );
}
