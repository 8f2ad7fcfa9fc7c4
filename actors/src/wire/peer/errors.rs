//! A peer request's failure as the serving peer reports it
//! ([`RemoteError`]), the refusals made before acting ([`PeerRefusal`]),
//! and frames that do not encode or decode.

use serde::{Deserialize, Serialize};

use super::InvalidMember;
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// A failed peer request, as the serving peer reports it. The code is a
/// client protocol error code, so a forwarded write's failure reaches the
/// client unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct RemoteError {
    /// A PROTOCOL.md error code (`unavailable`, `timeout`, `internal`, ...).
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
    /// The peer refused before acting on the request (nothing was
    /// written), so the caller may send it to another node. Absent on the
    /// wire when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untouched: bool,
}

impl RemoteError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            untouched: false,
        }
    }

    /// A refusal made before anything was done: the request may go to
    /// another node.
    pub fn untouched(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            untouched: true,
            ..Self::new(code, message)
        }
    }
}

impl From<ClientError> for RemoteError {
    fn from(e: ClientError) -> Self {
        Self::new(e.code, e.message)
    }
}

/// Why a node refuses a peer's request before acting on it: the checks
/// that hold for every session, authenticated or not (issue 12). Sent as a
/// [`RemoteError`] marked untouched, and logged on the refusing side.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// The sender has no place on this node's rings (not a member whose
    /// own gossip reached us, or one that left): it shares no range.
    #[error("{peer} is not a member with a place on this node's ring")]
    NotAMember {
        /// The sender.
        peer: NodeId,
    },
    /// This node is neither a replica nor a stand-in candidate of the key
    /// in its own view, so it serves nothing of it.
    #[error("this node does not hold that key's range")]
    NotShared,
    /// A Merkle-leaves request for a pair that does not include the sender.
    #[error("{peer} asked for the Merkle tree shared with {with}")]
    NotThePair {
        /// The sender.
        peer: NodeId,
        /// The node named in the request.
        with: NodeId,
    },
    /// The sender's announced description is out of bounds.
    #[error("{peer} announced an invalid member: {why}")]
    InvalidMember {
        /// The sender.
        peer: NodeId,
        /// What is wrong.
        why: InvalidMember,
    },
    /// The sender asked for more scans or Merkle trees than its rate
    /// limit allows; it may ask again later.
    #[error("{peer} sends {request} requests faster than {per_s_max} per second")]
    RateLimited {
        /// The sender.
        peer: NodeId,
        /// The request type.
        request: &'static str,
        /// The limit.
        per_s_max: u32,
    },
}

impl From<PeerRefusal> for RemoteError {
    fn from(refusal: PeerRefusal) -> Self {
        let code = match refusal {
            PeerRefusal::RateLimited { .. } => ErrorCode::Unavailable,
            _ => ErrorCode::BadRequest,
        };
        RemoteError::untouched(code, refusal.to_string())
    }
}

/// Why a peer frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable peer frame: {0}")]
pub struct PeerDecodeError(pub(super) String);

/// Why a peer frame could not be encoded (only a value serde cannot
/// express, which our types never hold; reported, never sent as garbage).
#[derive(Debug, thiserror::Error)]
#[error("unencodable peer frame: {0}")]
pub struct PeerEncodeError(pub(super) String);
