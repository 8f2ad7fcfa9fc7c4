//! The client protocol (PROTOCOL.md): request parsing with precise errors, and
//! response encoding. Both directions live here so the node and the Rust
//! client share one definition.
//!
//! Parsing goes through `rmpv::Value` rather than serde derive so that every
//! rejection can name the field at fault, `str` is accepted where `bin` is
//! expected, and unknown keys are ignored (forward compatibility).

mod encode;
mod parse;

use rmpv::Value;

pub use encode::{encode_request, encode_response, map_field, map_str, parse_response};
pub use parse::parse_request;

/// Default limit on a key, from PROTOCOL.md (1 KiB).
pub const MAX_KEY_BYTES_DEFAULT: usize = 1024;
/// Default limit on a value, from PROTOCOL.md (1 MiB).
pub const MAX_VALUE_BYTES_DEFAULT: usize = 1024 * 1024;
/// Largest `limit` of a `list` request, in keys (PROTOCOL.md version 2).
pub const LIST_LIMIT_MAX: usize = 1000;
/// `limit` of a `list` request that sends none, in keys (PROTOCOL.md).
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Deepest MessagePack nesting a request may have; requests are flat maps, so
/// anything deeper is garbage and is refused before it costs stack.
pub(crate) const REQUEST_DEPTH_MAX: usize = 16;

/// The error codes of PROTOCOL.md; the wire spelling is [`ErrorCode::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// A field is missing, of the wrong type, or out of range.
    BadRequest,
    /// Key, value, frame or sibling set over its limit.
    TooLarge,
    /// `op` is not one the node knows.
    UnknownOp,
    /// Fewer live replicas than R or W needs; nothing was promised.
    Unavailable,
    /// The replicas did not answer in time; a write may or may not have happened.
    Timeout,
    /// A bug or an I/O failure on the node.
    Internal,
    /// No `auth` yet on a node with a client token, a wrong token, or an
    /// admin op without the admin token (PROTOCOL.md version 2).
    Unauthorized,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Every code, in the order of PROTOCOL.md's table (version 2's last).
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::UnknownOp,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
    ];
}

/// Peers carry codes as their wire spelling; a code this build does not
/// know (from a newer peer) reads as `internal` rather than failing the
/// whole frame.
impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&code).unwrap_or(ErrorCode::Internal))
    }
}

/// A protocol-level failure: what goes in a response's `error` map.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ClientError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// What happened, for a person.
    pub message: String,
}

impl ClientError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Longest `ttl_ms` a put may ask for, in milliseconds: 100 years, far
/// beyond any use and far from wall-clock overflow.
pub const TTL_MS_MAX: u64 = 100 * 365 * 24 * 3_600 * 1_000;

/// The limits a request is checked against while it is parsed.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Replication factor: `r` and `w` must lie in 1..=N.
    pub replicas: usize,
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// What to do.
    pub op: ClientOp,
    /// Overrides the node's `request_timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// A get's, put's or delete's consistency level instead of `r` / `w`
    /// (PROTOCOL.md version 2; never together with them).
    pub consistency: Option<Consistency>,
}

/// A request's consistency level (the `consistency` key): how many
/// replicas, and in which data centers, must answer. `local_*` count the
/// replicas in the coordinator's data center, `each_quorum` a quorum in
/// every data center of `--dc-replication`; without per-DC replication the
/// whole ring is one data center.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// One replica.
    One,
    /// A majority of the key's N replicas.
    Quorum,
    /// All N replicas.
    All,
    /// One replica in the coordinator's data center.
    LocalOne,
    /// A majority of the key's replicas in the coordinator's data center.
    LocalQuorum,
    /// A majority of the key's replicas in every data center.
    EachQuorum,
}

impl Consistency {
    /// Every level, in the order the protocol lists them.
    pub const LEVELS: [Consistency; 6] = [
        Consistency::One,
        Consistency::Quorum,
        Consistency::All,
        Consistency::LocalOne,
        Consistency::LocalQuorum,
        Consistency::EachQuorum,
    ];

    /// The level's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::One => "one",
            Consistency::Quorum => "quorum",
            Consistency::All => "all",
            Consistency::LocalOne => "local_one",
            Consistency::LocalQuorum => "local_quorum",
            Consistency::EachQuorum => "each_quorum",
        }
    }

    /// The level named `name` (`None`: no such level).
    pub fn from_name(name: &str) -> Option<Consistency> {
        Self::LEVELS.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client token as it came in an `auth` request. Its `Debug` shows only
/// its length, so that no log line can ever hold a token.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(pub Vec<u8>);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthToken({} bytes)", self.0.len())
    }
}

/// The operations of the protocol, with their fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Liveness check.
    Ping,
    /// Read every live sibling of `key`.
    Get {
        /// The key.
        key: Vec<u8>,
        /// Replies to wait for (default from config).
        r: Option<usize>,
        /// Of those, replies from the key's primaries (default 0).
        pr: Option<usize>,
    },
    /// Write `value` under `key`, replacing what `context` covers.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Opaque context from an earlier get (absent: concurrent with all).
        context: Option<Vec<u8>>,
        /// Durable acknowledgements to wait for (default from config).
        w: Option<usize>,
        /// Of those, acknowledgements from primaries (default 0).
        pw: Option<usize>,
        /// The value expires this long after the write was accepted, in
        /// milliseconds (absent: never).
        ttl_ms: Option<u64>,
    },
    /// Write a tombstone under `key`, replacing what `context` covers.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// Opaque context from an earlier get.
        context: Option<Vec<u8>>,
        /// Durable acknowledgements to wait for.
        w: Option<usize>,
        /// Of those, acknowledgements from primaries (default 0).
        pw: Option<usize>,
    },
    /// Membership and health.
    Status,
    /// One page of the cluster's live keys, in ring order (PROTOCOL.md
    /// version 2).
    List {
        /// Where the previous page stopped (absent: the first page).
        cursor: Option<Vec<u8>>,
        /// Keys per page, 1..=`LIST_LIMIT_MAX` (absent: the default).
        limit: Option<usize>,
    },
    /// Presents a token: the client token grants every op but the admin
    /// ops, the admin token every op (PROTOCOL.md version 2; the policy is
    /// `client_api::access`).
    Auth {
        /// The token.
        token: AuthToken,
    },
    /// Admin: the answering node hands its ranges off and leaves the
    /// cluster.
    Leave,
    /// Admin: a dead member is removed for good; its ranges are
    /// re-replicated from the other replicas.
    Forget {
        /// The member's id.
        node: String,
    },
    /// Admin (ringkv extension): every member with its state, place,
    /// tokens, ring share, the hints held here for it and (for the
    /// answering node) its load in bytes.
    Members,
    /// Admin (ringkv extension): the ring's token ranges with their
    /// replicas, consecutive ranges with the same replicas merged.
    Ring,
    /// Admin (ringkv extension): an anti-entropy exchange now with `peer`
    /// (or every peer), or, with `key`, the read repair of that key.
    Repair {
        /// One peer (absent: every peer).
        peer: Option<String>,
        /// One key to read-repair instead.
        key: Option<Vec<u8>>,
    },
}

impl ClientOp {
    /// The op's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Ping => "ping",
            ClientOp::Get { .. } => "get",
            ClientOp::Put { .. } => "put",
            ClientOp::Delete { .. } => "delete",
            ClientOp::Status => "status",
            ClientOp::List { .. } => "list",
            ClientOp::Auth { .. } => "auth",
            ClientOp::Leave => "leave",
            ClientOp::Forget { .. } => "forget",
            ClientOp::Members => "members",
            ClientOp::Ring => "ring",
            ClientOp::Repair { .. } => "repair",
        }
    }
}

/// One member as `status` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberStatus {
    /// Node id.
    pub id: String,
    /// Peer (node-to-node) address.
    pub addr: String,
    /// Client address.
    pub client_addr: String,
    /// Data center.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// `alive`, `suspect`, `down` or `left`.
    pub state: String,
    /// Fraction of the ring this member owns as primary, 0.0..=1.0.
    pub ring_share: f64,
    /// How long ago this node last saw the member's heartbeat advance, in
    /// milliseconds of its monotonic clock (0 for itself).
    pub heartbeat_age_ms: u64,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientReply {
    /// `ping`: the answering node.
    Pong {
        /// The node's id.
        node: String,
    },
    /// `auth`: the token was accepted; nothing more to say.
    Authenticated,
    /// `get`: live siblings and the context covering every version seen.
    Values {
        /// Live sibling values (empty: absent or deleted).
        values: Vec<Vec<u8>>,
        /// Absent when nothing was ever written.
        context: Option<Vec<u8>>,
    },
    /// `put` / `delete`: the context of the version just written.
    Written {
        /// The new version's causal context.
        context: Vec<u8>,
    },
    /// `list`: one page of keys.
    Keys {
        /// Live keys, in ring order.
        keys: Vec<Vec<u8>>,
        /// Where the next page starts; absent on the last page.
        cursor: Option<Vec<u8>>,
    },
    /// `status`.
    Status {
        /// The answering node.
        node: String,
        /// Every member known.
        members: Vec<MemberStatus>,
        /// Extra top-level keys (`n`, `r`, `w`, `ring_vnodes`, ...).
        extra: Vec<(String, Value)>,
    },
    /// The admin extensions (`members`, `ring`, `repair`): top-level keys
    /// as the op's section of docs/protocol.md lists them.
    Admin {
        /// The answer's keys.
        fields: Vec<(String, Value)>,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
