//! What a misbehaving client gets: the documented errors, and nobody else
//! is disturbed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Cluster;
use ringkv_actors::bridge::handshake::PeerKey;
use ringkv_actors::wire::client::{map_field, map_str, parse_response, ErrorCode};
use ringkv_actors::wire::frame::encode_frame;
use ringkv_actors::wire::peer::{PeerFrame, PeerRequest, ReplicaRead};
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

fn map(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let v = Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    );
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &v).unwrap();
    out
}

async fn expect_error(stream: &mut TcpStream, id: u64, code: ErrorCode) {
    let frame = read_frame(stream).await.expect("an answer");
    let (got_id, result) = parse_response(&frame).unwrap();
    assert_eq!(got_id, id);
    assert_eq!(result.unwrap_err().code, code);
}

#[tokio::test]
async fn bad_clients_get_documented_errors_and_others_keep_being_served() {
    let cluster = Cluster::start(3, &["--max-frame-bytes", "1100000"]).await;
    let good = cluster.nodes[0].client().await;
    good.put(b"k", b"v", None).await.unwrap();

    let mut bad = TcpStream::connect(cluster.nodes[0].client).await.unwrap();
    // Garbage inside a valid length: bad_request, id 0, connection stays.
    bad.write_all(&encode_frame(&[0xc1, 0xff, 0x13]))
        .await
        .unwrap();
    expect_error(&mut bad, 0, ErrorCode::BadRequest).await;
    // An empty frame and a non-map are bad requests too.
    bad.write_all(&encode_frame(&[])).await.unwrap();
    expect_error(&mut bad, 0, ErrorCode::BadRequest).await;
    bad.write_all(&encode_frame(&[0x93, 1, 2, 3]))
        .await
        .unwrap();
    expect_error(&mut bad, 0, ErrorCode::BadRequest).await;
    // Unknown op: unknown_op with the request's id.
    bad.write_all(&encode_frame(&map(vec![
        ("id", Value::from(7)),
        ("op", Value::from("frobnicate")),
    ])))
    .await
    .unwrap();
    expect_error(&mut bad, 7, ErrorCode::UnknownOp).await;
    // Missing key: bad_request naming the field.
    bad.write_all(&encode_frame(&map(vec![
        ("id", Value::from(8)),
        ("op", Value::from("get")),
    ])))
    .await
    .unwrap();
    let (id, result) = parse_response(&read_frame(&mut bad).await.unwrap()).unwrap();
    assert_eq!(id, 8);
    assert!(result.unwrap_err().message.contains("`key`"));
    // Pipelined: two requests, both answered, matched by id.
    let mut two = encode_frame(&map(vec![
        ("id", Value::from(10)),
        ("op", Value::from("ping")),
    ]));
    two.extend(encode_frame(&map(vec![
        ("id", Value::from(11)),
        ("op", Value::from("get")),
        ("key", Value::from("k")),
    ])));
    bad.write_all(&two).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let frame = read_frame(&mut bad).await.unwrap();
        let (id, body) = parse_response(&frame).unwrap();
        let body = body.unwrap();
        if id == 11 {
            assert_eq!(
                map_field(&body, "values"),
                Some(&Value::Array(vec![Value::Binary(b"v".to_vec())]))
            );
        } else {
            assert_eq!(map_str(&body, "node").as_deref(), Some("n1"));
        }
        ids.push(id);
    }
    ids.sort();
    assert_eq!(ids, vec![10, 11]);
    // Value over max_value_bytes: too_large.
    let big = Value::Binary(vec![0; 1024 * 1024 + 1]);
    bad.write_all(&encode_frame(&map(vec![
        ("id", Value::from(12)),
        ("op", Value::from("put")),
        ("key", Value::from("k")),
        ("value", big),
    ])))
    .await
    .unwrap();
    expect_error(&mut bad, 12, ErrorCode::TooLarge).await;
    // The other client was never disturbed.
    assert_eq!(good.get(b"k").await.unwrap().values, vec![b"v".to_vec()]);

    // A length over max_frame_bytes: too_large (id 0), then the node closes.
    bad.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    expect_error(&mut bad, 0, ErrorCode::TooLarge).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "connection should be closed: {closed:?}"
    );

    // A client that vanishes mid-frame costs nothing either.
    let mut torn = TcpStream::connect(cluster.nodes[0].client).await.unwrap();
    torn.write_all(&100u32.to_be_bytes()).await.unwrap();
    torn.write_all(b"half").await.unwrap();
    drop(torn);
    good.put(b"k2", b"v2", None).await.unwrap();
    assert_eq!(good.get(b"k2").await.unwrap().values, vec![b"v2".to_vec()]);
}

/// A dialler naming another cluster gets a `Challenge` (which names no
/// cluster), then a closed connection after its `Proof`; the reason is in
/// the node's log only.
#[tokio::test]
async fn a_peer_from_another_cluster_is_refused_with_a_logged_reason() {
    let cluster = Cluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    let mut stranger = common::peer::credentials(
        common::peer::member("x1", common::free_addr(), common::free_addr()),
        PeerKey::ProtectedMode,
    );
    stranger.cluster = "other".into();
    let dialled = common::peer::connect_and_dial(cluster.nodes[0].peer, &stranger).await;
    assert_eq!(
        dialled.outcome.err().as_deref(),
        Some("closed after our proof: refused")
    );
    for frame in &dialled.received {
        assert!(
            !frame.windows(6).any(|w| w == b"ringkv"),
            "the node told a stranger its cluster's name"
        );
    }
    // Logged (synchronously, to stderr) before the connection closed.
    assert!(
        cluster.nodes[0].log_contains("refusing peer"),
        "{}",
        common::log_excerpt(&cluster.nodes[0])
    );
    assert!(cluster.nodes[0].log_contains("is not ours"));
    // The refused peer never joined the membership.
    let status = cluster.nodes[0].client().await.status().await.unwrap();
    assert_eq!(status.members.len(), 1);
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_not_buffered_forever() {
    let cluster = Cluster::start(
        1,
        &[
            "--n",
            "1",
            "--r",
            "1",
            "--w",
            "1",
            "--client-inflight-max",
            "4",
        ],
    )
    .await;
    let good = cluster.nodes[0].client().await;
    good.put(b"big", &vec![7u8; 100 * 1024], None)
        .await
        .unwrap();

    let mut greedy = TcpStream::connect(cluster.nodes[0].client).await.unwrap();
    let asked = 500u64;
    let mut frames = Vec::new();
    for id in 1..=asked {
        frames.extend(encode_frame(&map(vec![
            ("id", Value::from(id)),
            ("op", Value::from("get")),
            ("key", Value::from("big")),
        ])));
    }
    greedy.write_all(&frames).await.unwrap();
    // Never read while the node answers ~50 MB; it must give up on us.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(good.get(b"big").await.unwrap().values[0].len(), 100 * 1024);
    let mut answers = 0u64;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), async {
            let mut len = [0u8; 4];
            greedy.read_exact(&mut len).await?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            greedy.read_exact(&mut body).await
        })
        .await
        {
            Ok(Ok(_)) => answers += 1,
            Ok(Err(_)) => break, // closed by the node
            Err(_) => panic!("the node neither answered nor closed"),
        }
    }
    assert!(
        answers < asked,
        "all {asked} answers were buffered for a client that did not read"
    );
    let log = std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log")).unwrap();
    assert!(log.contains("client does not read its responses"), "{log}");
}

#[tokio::test]
async fn a_peer_that_never_reads_is_cut_off_not_buffered_forever() {
    // Two nodes, both replicas of every key: n1 serves n2's reads.
    let cluster = Cluster::start(2, &["--n", "2", "--r", "1", "--w", "2"]).await;
    let good = cluster.nodes[0].client().await;
    let value = vec![7u8; 1_000_000];
    good.put(b"big", &value, None).await.unwrap();

    // A peer of the same cluster (protected mode: on loopback, the
    // public key), under a member's id (peers are served only for ranges
    // they share, so a stranger's reads would be refused at once): a
    // handshake, then reads of the big object (about 150 MB
    // of answers, past the 64 MiB peer_write_queue_bytes_max), and never a
    // read of the socket.
    let mut greedy = TcpStream::connect(cluster.nodes[0].peer).await.unwrap();
    let me = common::peer::credentials(
        common::peer::member("n2", common::free_addr(), common::free_addr()),
        PeerKey::ProtectedMode,
    );
    let (_, mut session) = common::peer::dial(&mut greedy, &me).await.outcome.unwrap();
    let mut frames = Vec::new();
    let asked = 150u64;
    for id in 1..=asked {
        let request = PeerFrame::Request {
            id,
            trace: id,
            timeout_ms: 30_000,
            body: PeerRequest::Read(ReplicaRead {
                key: serde_bytes::ByteBuf::from(b"big".to_vec()),
            }),
        };
        let sealed = session.seal(request.encode().unwrap()).unwrap();
        frames.extend(encode_frame(&sealed));
    }
    greedy.write_all(&frames).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Clients are still served meanwhile.
    assert_eq!(good.get(b"big").await.unwrap().values[0].len(), value.len());

    let mut answers = 0u64;
    loop {
        match read_frame_within(&mut greedy, Duration::from_secs(10)).await {
            Ok(Some(_)) => answers += 1,
            Ok(None) => break, // closed by the node
            Err(()) => panic!("the node neither answered nor closed"),
        }
    }
    // Fewer answers than asked.
    assert!(
        answers < asked,
        "all {asked} answers were buffered for a peer that did not read"
    );
    let log = std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log")).unwrap();
    assert!(log.contains("peer does not read its responses"), "{log}");
}

/// One frame, `Ok(None)` once the other side closed, `Err` on a timeout.
async fn read_frame_within(stream: &mut TcpStream, limit: Duration) -> Result<Option<Vec<u8>>, ()> {
    tokio::time::timeout(limit, async {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    })
    .await
    .map_err(|_| ())
}

/// The `list` op's wire shape (PROTOCOL.md version 2): `keys` is an array
/// of bin (keys written as str come back as bin), `cursor` a bin present on
/// every page but the last; a bad `limit` or `cursor` is `bad_request`
/// with the request's id, and the connection stays usable.
#[tokio::test]
async fn list_pages_carry_bin_keys_and_a_bin_cursor_until_the_last() {
    let cluster = Cluster::start(1, &["--n", "1", "--r", "1", "--w", "1"]).await;
    let mut stream = TcpStream::connect(cluster.nodes[0].client).await.unwrap();
    for (id, key) in [(1u64, "a"), (2, "b"), (3, "c")] {
        let put = map(vec![
            ("id", Value::from(id)),
            ("op", Value::from("put")),
            ("key", Value::from(key)),
            ("value", Value::from("v")),
        ]);
        stream.write_all(&encode_frame(&put)).await.unwrap();
        let (_, result) = parse_response(&read_frame(&mut stream).await.unwrap()).unwrap();
        result.unwrap();
    }
    let (mut listed, mut cursor, mut id) = (Vec::new(), None::<Value>, 10u64);
    loop {
        let mut request = vec![
            ("id", Value::from(id)),
            ("op", Value::from("list")),
            ("limit", Value::from(2)),
        ];
        if let Some(c) = cursor.take() {
            request.push(("cursor", c));
        }
        stream
            .write_all(&encode_frame(&map(request)))
            .await
            .unwrap();
        let frame = read_frame(&mut stream).await.unwrap();
        let (got, result) = parse_response(&frame).unwrap();
        assert_eq!(got, id);
        let body = result.unwrap();
        let Some(Value::Array(keys)) = map_field(&body, "keys") else {
            panic!("no `keys` array: {body}");
        };
        assert!(keys.len() <= 2);
        for k in keys {
            let Value::Binary(k) = k else {
                panic!("a key that is not bin: {k}");
            };
            listed.push(k.clone());
        }
        match map_field(&body, "cursor") {
            None => break,
            Some(c @ Value::Binary(_)) => cursor = Some(c.clone()),
            Some(other) => panic!("a cursor that is not bin: {other}"),
        }
        id += 1;
    }
    listed.sort();
    assert_eq!(listed, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    for (field, value) in [
        ("limit", Value::from(0)),
        ("limit", Value::from(1001)),
        ("limit", Value::from("2")),
        ("cursor", Value::from(5)),
        ("cursor", Value::Binary(vec![1, 2, 3])),
    ] {
        let request = map(vec![
            ("id", Value::from(99)),
            ("op", Value::from("list")),
            (field, value),
        ]);
        stream.write_all(&encode_frame(&request)).await.unwrap();
        let frame = read_frame(&mut stream).await.unwrap();
        let (got, result) = parse_response(&frame).unwrap();
        assert_eq!(got, 99);
        let error = result.unwrap_err();
        assert_eq!(error.code, ErrorCode::BadRequest, "{field}: {error:?}");
        assert!(error.message.contains(field), "{}", error.message);
    }
}
