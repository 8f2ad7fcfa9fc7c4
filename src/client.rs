//! The async Rust client: one TCP connection, many requests in flight
//! (pipelining), responses matched by id.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringkv::client::Error> {
//! let client = ringkv::Client::connect("127.0.0.1:7001").await?;
//! let context = client.put(b"cart:42", b"apples", None).await?;
//! let found = client.get(b"cart:42").await?;
//! assert_eq!(found.values, vec![b"apples".to_vec()]);
//! // Overwrite what we read: pass its context.
//! client.put(b"cart:42", b"pears", found.context.as_ref()).await?;
//! # let _ = context; Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use ringkv_actors::client_api::access::{TokenFile, TokenFileError};
use ringkv_actors::wire::client::{
    encode_request, map_field, map_str, parse_response, AuthToken, ClientOp, ClientRequest,
};
use ringkv_actors::wire::{FrameCodec, MAX_FRAME_BYTES_DEFAULT};

/// A request's consistency level ([`RequestOptions::consistency`]).
pub use ringkv_actors::wire::client::Consistency;
use rmpv::Value;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Largest response frame body the client reads, in bytes: a node answers
/// in frames of at most its `--max-frame-bytes`, so this reads nodes
/// configured with up to twice the default. A larger frame fails every
/// waiting call with a protocol error and closes the connection.
pub const RESPONSE_FRAME_BYTES_MAX: usize = MAX_FRAME_BYTES_DEFAULT * 2;

/// Requests queued for the writer task before callers wait.
const OUTBOX_REQUESTS_MAX: usize = 1024;

/// Bytes of queued requests the writer task gathers into one write at
/// most (`FramedWrite`'s backpressure boundary).
const WRITE_BURST_BYTES_MAX: usize = 64 * 1024;

mod admin;
mod list;
mod types;

pub use types::{
    printable_key, Context, Error, Found, KeyPage, Member, RequestOptions, Status, TlsOptions,
};

/// The token a client presents from a token file (`--token-file`): the
/// file holds the client token on its first line and, optionally, the
/// admin token on its second (the node's `--client-token-file` has this
/// shape). `admin`: the admin token if the file has one, else the client
/// token; otherwise the client token.
pub fn token_from_file(path: &Path, admin: bool) -> Result<Vec<u8>, TokenFileError> {
    let file = TokenFile::read(path)?;
    Ok(if admin {
        file.admin_or_client().to_vec()
    } else {
        file.client
    })
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The connection's writer task: sends what `queued` holds until it
/// closes or a write fails. Every request queued by the time it writes
/// goes out in one write, so a burst of calls costs one system call, not
/// one each.
async fn write_requests<W>(
    sink: &mut FramedWrite<W, FrameCodec>,
    queued: &mut mpsc::Receiver<Bytes>,
) where
    W: tokio::io::AsyncWrite + Unpin,
{
    while let Some(first) = queued.recv().await {
        if write_burst(sink, queued, first).await.is_err() {
            return;
        }
    }
}

/// Writes `first` and every request queued behind it, then flushes once.
async fn write_burst<W>(
    sink: &mut FramedWrite<W, FrameCodec>,
    queued: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
) -> Result<(), ringkv_actors::wire::FrameError>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    sink.feed(first).await?;
    // Callers woken together (one read answers many) queue their next
    // requests in the same turn: let them run before gathering.
    tokio::task::yield_now().await;
    while let Ok(frame) = queued.try_recv() {
        // Writes out what it holds past WRITE_BURST_BYTES_MAX first.
        sink.feed(frame).await?;
    }
    sink.flush().await
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Error>>>>>;

/// A connection to one node. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    outbox: mpsc::Sender<Bytes>,
    waiters: Waiters,
    next_id: Arc<AtomicU64>,
    /// Set once the connection is gone, so new calls fail at once.
    closed: Arc<AtomicBool>,
    /// Client-side wait limit per call (the server has its own deadline).
    wait: Duration,
}

impl Client {
    /// Connects to a node's client address.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::over(stream))
    }

    /// Connects to a node's client address over TLS (a node started with
    /// `--tls-cert`): its certificate must chain to `tls.ca` and name
    /// `tls.server_name`, or the host part of `addr`.
    pub async fn connect_tls(addr: &str, tls: &TlsOptions) -> Result<Client, Error> {
        let config =
            ringkv_actors::tls::client_config(&tls.ca).map_err(|e| Error::Tls(e.to_string()))?;
        let name = match &tls.server_name {
            Some(name) => name.clone(),
            None => host_of(addr).to_owned(),
        };
        let name = ringkv_actors::tls::server_name(&name).map_err(|e| Error::Tls(e.to_string()))?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| Error::Tls(format!("handshake with {addr}: {e}")))?;
        Ok(Self::over(stream))
    }

    /// A client over an open stream (plain TCP or TLS).
    fn over<S>(stream: S) -> Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let codec = FrameCodec::new(RESPONSE_FRAME_BYTES_MAX);
        let waiters: Waiters = Arc::default();
        let (outbox, mut outgoing) = mpsc::channel::<Bytes>(OUTBOX_REQUESTS_MAX);
        let mut sink = FramedWrite::new(write, codec.clone());
        sink.set_backpressure_boundary(WRITE_BURST_BYTES_MAX);
        tokio::spawn(async move { write_requests(&mut sink, &mut outgoing).await });
        let mut frames = FramedRead::new(read, codec);
        let reader_waiters = waiters.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let reader_closed = closed.clone();
        tokio::spawn(async move {
            while let Some(read) = frames.next().await {
                // A frame that cannot be read or parsed leaves the stream
                // out of step: fail every waiting call with the reason at
                // once (rather than letting each wait out its deadline),
                // and close.
                let parsed = read
                    .map_err(|e| format!("unreadable frame: {e}"))
                    .and_then(|frame| {
                        parse_response(&frame).map_err(|e| {
                            format!("a response that does not follow the protocol: {e}")
                        })
                    });
                let (id, result) = match parsed {
                    Ok(response) => response,
                    Err(why) => {
                        reader_closed.store(true, Ordering::SeqCst);
                        if let Ok(mut w) = reader_waiters.lock() {
                            for (_, waiter) in w.drain() {
                                let _ = waiter.send(Err(Error::Protocol(why.clone())));
                            }
                        }
                        break;
                    }
                };
                let waiter = reader_waiters.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result.map_err(|e| Error::Server {
                        code: e.code,
                        message: e.message,
                    }));
                }
            }
            // Connection gone: fail whoever still waits, and every later call.
            reader_closed.store(true, Ordering::SeqCst);
            if let Ok(mut w) = reader_waiters.lock() {
                w.clear();
            }
        });
        Client {
            outbox,
            waiters,
            next_id: Arc::new(AtomicU64::new(1)),
            closed,
            wait: Duration::from_secs(30),
        }
    }

    /// Sets the client-side wait limit per call (default 30 s).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    async fn call(&self, op: ClientOp, timeout_ms: Option<u64>) -> Result<Value, Error> {
        self.call_at(op, timeout_ms, None).await
    }

    async fn call_at(
        &self,
        op: ClientOp,
        timeout_ms: Option<u64>,
        consistency: Option<Consistency>,
    ) -> Result<Value, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(&ClientRequest {
            id,
            op,
            timeout_ms,
            consistency,
        });
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|_| Error::Closed)?
            .insert(id, tx);
        // Checked after registering: the reader sets `closed` before it
        // clears the waiters, so a call racing the close still fails fast.
        if self.closed.load(Ordering::SeqCst) {
            if let Ok(mut w) = self.waiters.lock() {
                w.remove(&id);
            }
            return Err(Error::Closed);
        }
        if self.outbox.send(Bytes::from(frame)).await.is_err() {
            return Err(Error::Closed);
        }
        match tokio::time::timeout(self.wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                if let Ok(mut w) = self.waiters.lock() {
                    w.remove(&id);
                }
                Err(Error::TimedOut(self.wait))
            }
        }
    }

    /// Liveness check; answers the node's id.
    pub async fn ping(&self) -> Result<String, Error> {
        let body = self.call(ClientOp::Ping, None).await?;
        map_str(&body, "node").ok_or_else(|| Error::Protocol("ping answer has no `node`".into()))
    }

    /// Reads every live sibling of `key` with the node's default R.
    pub async fn get(&self, key: &[u8]) -> Result<Found, Error> {
        self.get_with(key, RequestOptions::default()).await
    }

    /// Reads with options.
    pub async fn get_with(&self, key: &[u8], options: RequestOptions) -> Result<Found, Error> {
        let op = ClientOp::Get {
            key: key.to_vec(),
            r: options.r,
            pr: options.pr,
        };
        let body = self
            .call_at(op, options.timeout_ms, options.consistency)
            .await?;
        let values = match map_field(&body, "values") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Binary(b) => Ok(b.clone()),
                    _ => Err(Error::Protocol("a value is not bin".into())),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(Error::Protocol("get answer has no `values` array".into())),
        };
        Ok(Found {
            values,
            context: context_of(&body)?,
        })
    }

    /// Writes `value`; with `context`, it replaces the versions that context
    /// covers. Answers the new version's context.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
    ) -> Result<Context, Error> {
        self.put_with(key, value, context, RequestOptions::default())
            .await
    }

    /// Writes with options.
    pub async fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        context: Option<&Context>,
        options: RequestOptions,
    ) -> Result<Context, Error> {
        let op = ClientOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            context: context.map(|c| c.0.clone()),
            w: options.w,
            pw: options.pw,
            ttl_ms: options.ttl_ms,
        };
        self.write(op, options).await
    }

    /// Deletes (writes a tombstone covering `context`).
    pub async fn delete(&self, key: &[u8], context: Option<&Context>) -> Result<Context, Error> {
        self.delete_with(key, context, RequestOptions::default())
            .await
    }

    /// Deletes with options.
    pub async fn delete_with(
        &self,
        key: &[u8],
        context: Option<&Context>,
        options: RequestOptions,
    ) -> Result<Context, Error> {
        let op = ClientOp::Delete {
            key: key.to_vec(),
            context: context.map(|c| c.0.clone()),
            w: options.w,
            pw: options.pw,
        };
        self.write(op, options).await
    }

    async fn write(&self, op: ClientOp, options: RequestOptions) -> Result<Context, Error> {
        let body = self
            .call_at(op, options.timeout_ms, options.consistency)
            .await?;
        context_of(&body)?.ok_or_else(|| Error::Protocol("write answer has no `context`".into()))
    }

    /// Presents a token (PROTOCOL.md version 2 `auth`): the client token
    /// grants every op, the admin token the admin ops from any address too.
    /// Required first on a node with a client token; a wrong token answers
    /// `unauthorized` (and the connection has nothing granted).
    pub async fn auth(&self, token: &[u8]) -> Result<(), Error> {
        self.call(
            ClientOp::Auth {
                token: AuthToken(token.to_vec()),
            },
            None,
        )
        .await
        .map(|_| ())
    }
}

fn context_of(body: &Value) -> Result<Option<Context>, Error> {
    match map_field(body, "context") {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Binary(b)) => Ok(Some(Context(b.clone()))),
        Some(_) => Err(Error::Protocol("`context` is not bin".into())),
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
