//! Tests of the async client (`client.rs`).

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn keys_print_as_text_or_hex_on_one_line() {
    assert_eq!(printable_key(b"cart:42"), "cart:42");
    assert_eq!(printable_key(b"a b"), "0x612062");
    assert_eq!(printable_key(&[0, 0xff]), "0x00ff");
    assert_eq!(
        printable_key(b"0x12"),
        "0x30783132",
        "no confusion with hex"
    );
}

#[test]
fn context_hex_round_trip() {
    let c = Context(vec![0x01, 0xab, 0xff]);
    assert_eq!(c.to_string(), "01abff");
    assert_eq!("01abff".parse::<Context>().unwrap(), c);
    assert!("abc".parse::<Context>().is_err());
    assert!("zz".parse::<Context>().is_err());
}

#[test]
fn resolve_calls_merge_only_for_siblings() {
    let one = Found {
        values: vec![b"a".to_vec()],
        context: None,
    };
    assert_eq!(
        one.resolve(|_| panic!("no merge for one value")),
        Some(b"a".to_vec())
    );
    let two = Found {
        values: vec![b"a".to_vec(), b"b".to_vec()],
        context: None,
    };
    assert_eq!(two.resolve(|vs| vs.concat()), Some(b"ab".to_vec()));
    let none = Found {
        values: vec![],
        context: None,
    };
    assert_eq!(none.resolve(|vs| vs.concat()), None);
}

/// A node answering with a frame that is not a response fails the
/// waiting call with a protocol error at once (it used to be skipped,
/// and the caller waited out its 30 s), and the connection closes.
#[tokio::test]
async fn a_response_that_cannot_be_parsed_fails_the_call_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut length = [0u8; 4];
        socket.read_exact(&mut length).await.unwrap();
        let mut request = vec![0u8; u32::from_be_bytes(length) as usize];
        socket.read_exact(&mut request).await.unwrap();
        // A well-framed body that is not MessagePack (0xc1 is never used).
        socket.write_all(&[0, 0, 0, 2, 0xc1, 0xc1]).await.unwrap();
        socket
    });
    let client = Client::connect(addr).await.unwrap();
    let answer = client.ping().await;
    assert!(
        matches!(answer, Err(Error::Protocol(_))),
        "expected a protocol error, got {answer:?}"
    );
    assert!(matches!(client.ping().await, Err(Error::Closed)));
    drop(server.await.unwrap());
}

/// What a writer was asked to write, one entry per `poll_write`.
#[derive(Clone, Default)]
struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

impl tokio::io::AsyncWrite for Writes {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().push(buf.to_vec());
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Requests queued while the writer task waits its turn go out in one
/// write, in order: the one it woke for, those already queued, and
/// one queued by a caller that ran after the writer woke (the yield
/// in `write_burst`; without it that request is a second write).
#[tokio::test(flavor = "current_thread")]
async fn requests_queued_in_one_turn_go_out_in_one_write() {
    let writes = Writes::default();
    let mut sink = FramedWrite::new(writes.clone(), FrameCodec::new(1024));
    let (outbox, mut queued) = mpsc::channel::<Bytes>(16);
    let writer = tokio::spawn(async move { write_requests(&mut sink, &mut queued).await });
    outbox.send(Bytes::from_static(b"a")).await.unwrap();
    outbox.send(Bytes::from_static(b"b")).await.unwrap();
    // The writer runs now, then this task once more.
    tokio::task::yield_now().await;
    outbox.send(Bytes::from_static(b"c")).await.unwrap();
    drop(outbox);
    writer.await.unwrap();
    let writes = writes.0.lock().unwrap().clone();
    let framed = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
    assert_eq!(
        writes,
        vec![[framed(b"a"), framed(b"b"), framed(b"c")].concat()],
        "one write of every queued frame, in order"
    );
}
