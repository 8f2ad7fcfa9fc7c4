//! The client's own types: errors, contexts, what a call answers, and
//! per-request options.

use std::fmt;
use std::time::Duration;

use ringkv_actors::wire::client::{Consistency, ErrorCode};
use rmpv::Value;

/// What can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node answered with an error.
    #[error("{code:?}: {message}")]
    Server {
        /// The protocol error code.
        code: ErrorCode,
        /// The node's message.
        message: String,
    },
    /// Connecting or the connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The connection closed before the answer came.
    #[error("connection closed")]
    Closed,
    /// The node's answer did not follow the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The TLS settings could not be loaded, or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// No answer within the client-side deadline.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

impl Error {
    /// The server's error code, if the node answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// How a client reaches a node over TLS (`--tls-ca`, `--tls-server-name`).
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The CA certificate(s) (PEM) the node's certificate must chain to.
    pub ca: std::path::PathBuf,
    /// The name the node's certificate must carry (`None`: the host part
    /// of the address dialled).
    pub server_name: Option<String>,
}

/// The opaque causal context of a key: hand it back on the next write so it
/// replaces exactly the versions you saw.
#[derive(Clone, PartialEq, Eq)]
pub struct Context(pub Vec<u8>);

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Context({self})")
    }
}

impl fmt::Display for Context {
    /// Hex, as the client example prints it (and accepts with `--context`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Context {
    type Err = String;

    fn from_str(hex: &str) -> Result<Self, String> {
        if !hex.len().is_multiple_of(2) {
            return Err("a context is an even number of hex digits".into());
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| format!("not hex at position {i}"))
            })
            .collect::<Result<Vec<u8>, String>>()
            .map(Context)
    }
}

/// What a get found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Every live sibling: one value normally, several after concurrent
    /// writes, none when the key is absent or deleted.
    pub values: Vec<Vec<u8>>,
    /// Covers every version seen; `None` when the key was never written.
    pub context: Option<Context>,
}

impl Found {
    /// Reconciles siblings with `merge` (called only when there are two or
    /// more) and returns the value to write back with [`Found::context`].
    /// `None` when there is nothing live.
    pub fn resolve(&self, merge: impl FnOnce(&[Vec<u8>]) -> Vec<u8>) -> Option<Vec<u8>> {
        match self.values.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(merge(many)),
        }
    }
}

/// One member in a status answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Node id.
    pub id: String,
    /// Peer address.
    pub addr: String,
    /// Client address (if the node reports it).
    pub client_addr: Option<String>,
    /// Data center.
    pub dc: String,
    /// Rack (if reported).
    pub rack: Option<String>,
    /// `alive`, `suspect`, `down` or `left`.
    pub state: String,
    /// Share of the ring (if reported).
    pub ring_share: Option<f64>,
    /// Milliseconds since the answering node saw this member's heartbeat
    /// advance (if reported).
    pub heartbeat_age_ms: Option<u64>,
}

/// A status answer.
#[derive(Clone, Debug)]
pub struct Status {
    /// The answering node.
    pub node: String,
    /// Every member it knows.
    pub members: Vec<Member>,
    /// The whole answer, for keys this client does not know.
    pub raw: Value,
}

/// One page of a key listing ([`Client::list_page`](super::Client::list_page)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Live keys, in ring order.
    pub keys: Vec<Vec<u8>>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<Vec<u8>>,
}

/// A key as one line of text: itself when it is printable ASCII (no
/// spaces), else `0x` and its hex (so any key prints on one line, and the
/// two forms cannot be confused unless a key itself starts with `0x`).
pub fn printable_key(key: &[u8]) -> String {
    if !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic()) && !key.starts_with(b"0x") {
        String::from_utf8_lossy(key).into_owned()
    } else {
        let mut out = String::with_capacity(2 + key.len() * 2);
        out.push_str("0x");
        for b in key {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Per-request options (`None`: the node's default).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestOptions {
    /// Read quorum for a get.
    pub r: Option<usize>,
    /// Write quorum for a put or delete.
    pub w: Option<usize>,
    /// Of the R replies, how many must come from the key's primaries
    /// rather than sloppy-quorum stand-ins (default 0).
    pub pr: Option<usize>,
    /// Of the W acknowledgements, how many must come from primaries
    /// (default 0).
    pub pw: Option<usize>,
    /// Server-side deadline, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// A put's value expires this long after the node accepted it, in
    /// milliseconds; reads then find the key absent (default: never).
    pub ttl_ms: Option<u64>,
    /// A consistency level instead of `r` / `w` (`local_quorum`,
    /// `each_quorum`, ...; PROTOCOL.md version 2). Never together with them:
    /// the node answers `bad_request`.
    pub consistency: Option<Consistency>,
}

impl RequestOptions {
    /// Every option at the node's default (usable in a `const`).
    pub const DEFAULT: RequestOptions = RequestOptions {
        r: None,
        w: None,
        pr: None,
        pw: None,
        timeout_ms: None,
        ttl_ms: None,
        consistency: None,
    };
}
